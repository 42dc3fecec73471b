"""policyctl as an operator's script drives it: the whole suite as separate processes (keys,
authz, pii, region, audit, edge on one PostgreSQL database) and policyctl run as a subprocess,
its exit code, stdout and stderr checked.

Needs POLICY_TEST_PG_URL (as tools/dev pg sets up); skips without it, or fails when
POLICY_TEST_REQUIRE_PG=1.
Run: /usr/bin/python3 -m unittest -v tests.edge.test_policyctl_process
"""

import contextlib
import datetime
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest
import uuid
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.edge import edge_support as es  # noqa: E402
from tests.support import policy_testing as pt  # noqa: E402

SUITE = None
_stack = None


def setUpModule():
    global SUITE, _stack
    url = pt.require_pg_url()
    es.require_binaries()
    _stack = contextlib.ExitStack()
    try:
        db = _stack.enter_context(pt.test_database(url, "policyctl_process"))
        SUITE = es.Suite(db.url)
        _stack.callback(SUITE.cleanup)
        SUITE.start()
    except BaseException:
        _stack.close()
        raise


def tearDownModule():
    try:
        SUITE.terminate()
    finally:
        _stack.close()


def run_policyctl(*args, admin_key=None, api_key=None, stdout=subprocess.PIPE):
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLICY_POLICYCTL_")}
    env["POLICY_POLICYCTL_EDGE"] = SUITE.p["edge"].address
    if admin_key is not None:
        env["POLICY_POLICYCTL_ADMIN_KEY"] = admin_key
    if api_key is not None:
        env["POLICY_POLICYCTL_API_KEY"] = api_key
    return subprocess.run([str(pt.BUILD_DIR / "tools" / "policyctl"), *args], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=30, env=env,
                          stdin=subprocess.DEVNULL)


class PolicyctlProcessTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.alice = SUITE.new_admin_key("alice")

    def test_a_key_read_with_its_newline_works_and_a_bad_byte_is_refused_unshown(self):
        # A Kubernetes secret or a file read whole ends the key in a newline (CRLF on Windows).
        for ending in ("\n", "\r\n", " "):
            listed = run_policyctl("members", "list", "--output=json",
                                   admin_key=self.alice + ending)
            self.assertEqual(listed.returncode, 0, listed.stderr)
            self.assertIn("alice", [m["id"] for m in json.loads(listed.stdout)["members"]])
        # A byte no key holds is a usage error naming the setting: no crash, and the key is
        # never printed (gRPC would abort, printing the metadata whole).
        for bad in (self.alice + "\rX", self.alice[:20] + "\n" + self.alice[20:],
                    self.alice + "\u00e9"):
            refused = run_policyctl("members", "list", admin_key=bad)
            self.assertEqual(refused.returncode, 2, refused.stderr)
            self.assertIn("POLICY_POLICYCTL_ADMIN_KEY", refused.stderr)
            for shown in (refused.stdout, refused.stderr):
                self.assertNotIn(self.alice[10:30], shown)
                self.assertNotIn(self.alice[10:30].encode().hex(" "), shown)

    def test_numbers_out_of_range_and_negative_durations_are_usage_errors(self):
        """An int32 field's flag is never wrapped round into range (4294967326 days would be
        sent as 30), nor a negative duration taken for the server's default: nothing is
        made."""
        refused = [
            ("retention_days", ("projects", "create", "--id=wrapped", "--name=Wrapped",
                                "--environment=staging", "--models=gpt-4o",
                                "--retention_days=4294967326")),
            ("priority", ("endpoints", "create", "--id=wrapped", "--region=westeurope",
                          "--residency=eu", "--base_url=https://wrapped.example",
                          "--deployment=d", "--models=gpt-4o", "--priority=4294967297")),
            ("weight", ("endpoints", "create", "--id=wrapped", "--region=westeurope",
                        "--residency=eu", "--base_url=https://wrapped.example",
                        "--deployment=d", "--models=gpt-4o", "--weight=4294967396")),
            ("page_size", ("members", "list", "--page_size=4294967297")),
            ("tree_size", ("audit", "checkpoint", "--project=", "--environment=",
                           "--tree_size=-1")),
            ("ttl", ("keys", "create", "--owner=alice", "--project=support-eu",
                     "--ttl=-24h")),
            ("valid_for", ("invitations", "create", "--email=wrapped@acme.example",
                           "--role=member", "--projects=support-eu", "--valid_for=-1h")),
            # Sent in whole seconds, 500ms would be 0: the default of seven days.
            ("valid_for", ("invitations", "create", "--email=wrapped@acme.example",
                           "--role=member", "--projects=support-eu", "--valid_for=500ms")),
            ("overlap", ("keys", "rotate", "key_AAAAAAAAAAAAAAAAA", "--overlap=1500ms")),
        ]
        for flag, args in refused:
            with self.subTest(flag=flag):
                run = run_policyctl(*args, admin_key=self.alice)
                self.assertEqual(run.returncode, 2, run.stdout + run.stderr)
                self.assertIn(f"--{flag}", run.stderr.splitlines()[0])
        projects = run_policyctl("projects", "list", "--include_archived", "--output=json",
                                 admin_key=self.alice)
        self.assertNotIn("wrapped", [p["id"] for p in json.loads(projects.stdout)["projects"]])
        endpoints = run_policyctl("endpoints", "list", "--output=json", admin_key=self.alice)
        self.assertNotIn("wrapped", [e["id"] for e in json.loads(endpoints.stdout)["endpoints"]])
        invitations = run_policyctl("invitations", "list", "--output=json",
                                    admin_key=self.alice)
        self.assertNotIn("wrapped@acme.example",
                         [i["email"] for i in json.loads(invitations.stdout)["invitations"]])

    def test_a_zero_duration_given_is_sent_not_taken_for_the_default(self):
        """--ttl=0s is refused by keys (at least 1 s), not a key of the default 90 days; and
        --overlap=0s rotates a key that stops at once, not one that verifies for 24 h more."""
        listed = run_policyctl("keys", "list", "--owner=alice", "--output=json",
                               admin_key=self.alice)
        before = len(json.loads(listed.stdout).get("keys", []))
        zero = run_policyctl("keys", "create", "--owner=alice", "--project=support-eu",
                             "--ttl=0s", admin_key=self.alice)
        self.assertEqual(zero.returncode, 1, zero.stdout + zero.stderr)
        self.assertIn("INVALID_ARGUMENT", zero.stderr)
        self.assertIn("ttl", zero.stderr)
        listed = run_policyctl("keys", "list", "--owner=alice", "--output=json",
                               admin_key=self.alice)
        self.assertEqual(len(json.loads(listed.stdout).get("keys", [])), before)

        # A service account's key too, though the edge gives such a key asking for no lifetime
        # its account's maximum.
        zero = run_policyctl("keys", "create", "--owner=sa-support-prod",
                             "--owner_type=service_account", "--ttl=0s", admin_key=self.alice)
        self.assertEqual(zero.returncode, 1, zero.stdout + zero.stderr)
        self.assertIn("INVALID_ARGUMENT", zero.stderr)

        made = run_policyctl("keys", "create", "--owner=alice", "--project=support-eu",
                             "--ttl=1h", "--output=json", admin_key=self.alice)
        self.assertEqual(made.returncode, 0, made.stderr)
        key = json.loads(made.stdout)["key"]
        rotated = run_policyctl("keys", "rotate", key["key_id"], "--overlap=0s", "--output=json",
                                admin_key=self.alice)
        self.assertEqual(rotated.returncode, 0, rotated.stderr)
        old = json.loads(rotated.stdout)["old_key"]
        ends = datetime.datetime.fromisoformat(old["overlap_end_time"].replace("Z", "+00:00"))
        self.assertLess(abs((ends - datetime.datetime.now(datetime.timezone.utc)).total_seconds()),
                        60, old)

    def test_json_output_names_the_request_id_policyctl_made_up_so_a_retry_repeats_nothing(self):
        """With --output=json stdout is the response alone, which holds no request id; stderr
        names the one policyctl made up, and a retry under it answers with the same key."""
        def made_up(run):
            self.assertEqual(run.returncode, 0, run.stderr)
            ids = re.findall(r"request id (\S+)", run.stderr)
            self.assertEqual(len(ids), 1, run.stderr)
            return ids[0]

        created = run_policyctl("keys", "create", "--owner=alice", "--project=support-eu",
                                "--output=json", admin_key=self.alice)
        request_id = made_up(created)
        key = json.loads(created.stdout)
        self.assertNotIn(key["secret"], created.stderr)
        retried = run_policyctl("keys", "create", "--owner=alice", "--project=support-eu",
                                f"--request_id={request_id}", "--output=json",
                                admin_key=self.alice)
        self.assertEqual(retried.returncode, 0, retried.stderr)
        self.assertEqual(json.loads(retried.stdout)["key"]["key_id"], key["key"]["key_id"])

        rotated = run_policyctl("keys", "rotate", key["key"]["key_id"], "--output=json",
                                admin_key=self.alice)
        request_id = made_up(rotated)
        new_key = json.loads(rotated.stdout)["new_key"]["key_id"]
        again = run_policyctl("keys", "rotate", key["key"]["key_id"],
                              f"--request_id={request_id}", "--output=json",
                              admin_key=self.alice)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(json.loads(again.stdout)["new_key"]["key_id"], new_key)

        added = run_policyctl("members", "add", "--id=leaver", "--email=leaver@acme.example",
                              "--roles=member@playground", admin_key=self.alice)
        self.assertEqual(added.returncode, 0, added.stderr)
        removed = run_policyctl("members", "remove", "leaver", "--output=json",
                                admin_key=self.alice)
        request_id = made_up(removed)
        audit_id = json.loads(removed.stdout)["audit_id"]
        again = run_policyctl("members", "remove", "leaver", f"--request_id={request_id}",
                              "--output=json", admin_key=self.alice)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(json.loads(again.stdout)["audit_id"], audit_id)

    def test_invitations_create_names_its_request_id_and_a_retry_answers_the_same_invitation(
            self):
        """invitations create hands out a secret id: policyctl makes up a request id when none
        is given and shows it, and a retry under it answers the same invitation with a fresh
        secret id that replaces the first; other content under it is refused."""
        invite = ("invitations", "create", "--email=retried@acme.example", "--role=member",
                  "--projects=support-eu")
        created = run_policyctl(*invite, "--output=json", admin_key=self.alice)
        self.assertEqual(created.returncode, 0, created.stderr)
        ids = re.findall(r"request id (\S+)", created.stderr)
        self.assertEqual(len(ids), 1, created.stderr)
        first = json.loads(created.stdout)
        self.assertNotIn(first["id"], created.stderr)
        retried = run_policyctl(*invite, f"--request_id={ids[0]}", "--output=json",
                                admin_key=self.alice)
        self.assertEqual(retried.returncode, 0, retried.stderr)
        again = json.loads(retried.stdout)
        self.assertEqual((again["ref"], again["expires_at"]), (first["ref"], first["expires_at"]))
        self.assertTrue(again["id"].startswith("inv_"), again)
        self.assertNotEqual(again["id"], first["id"])
        listed = run_policyctl("invitations", "list", "--output=json", admin_key=self.alice)
        self.assertEqual([i["ref"] for i in json.loads(listed.stdout)["invitations"]
                          if i["email"] == "retried@acme.example"], [first["ref"]])
        # The first secret id accepts nothing any more: the same NOT_FOUND as an unknown one.
        stale = run_policyctl("invitations", "accept", first["id"],
                              "--email=retried@acme.example")
        self.assertEqual(stale.returncode, 1, stale.stderr)
        self.assertIn("NOT_FOUND", stale.stderr)
        # Text output names the request id too.
        text = run_policyctl(*invite, f"--request_id={ids[0]}", admin_key=self.alice)
        self.assertEqual(text.returncode, 0, text.stderr)
        self.assertIn(f"request {ids[0]}", text.stdout)
        other = run_policyctl("invitations", "create", "--email=other@acme.example",
                              "--role=member", "--projects=support-eu",
                              f"--request_id={ids[0]}", admin_key=self.alice)
        self.assertEqual(other.returncode, 1, other.stderr)
        self.assertIn("ALREADY_EXISTS", other.stderr)
        self.assertIn("email", other.stderr)
        # Only the newest secret id, the text retry's, accepts the invitation.
        newest = re.search(r"secret id \(send it to the invitee\): (\S+)", text.stdout)
        self.assertIsNotNone(newest, text.stdout)
        accepted = run_policyctl("invitations", "accept", newest.group(1),
                                 "--email=retried@acme.example", "--member_id=retried")
        self.assertEqual(accepted.returncode, 0, accepted.stderr)

    def test_audit_forget_names_the_request_id_it_made_up_so_a_retry_repeats_nothing(self):
        """An erasure is a change a retry must not repeat: like keys create, rotate and
        members remove, policyctl makes up a request id when none is given, and shows it (on
        stderr with --output=json, in the answer's text otherwise)."""
        subject = f"forget-{uuid.uuid4().hex[:8]}@example.com"
        first = run_policyctl("audit", "forget", subject, "--output=json", admin_key=self.alice)
        self.assertEqual(first.returncode, 0, first.stderr)
        ids = re.findall(r"request id (\S+)", first.stderr)
        self.assertEqual(len(ids), 1, first.stderr)
        self.assertRegex(ids[0], r"^policyctl-\d+-[0-9a-f]{8}$")
        entry = json.loads(first.stdout)["entry"]
        again = run_policyctl("audit", "forget", subject, f"--request_id={ids[0]}",
                              "--output=json", admin_key=self.alice)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(json.loads(again.stdout)["entry"]["index"], entry["index"])
        text = run_policyctl("audit", "forget", f"forget-{uuid.uuid4().hex[:8]}@example.com",
                             admin_key=self.alice)
        self.assertEqual(text.returncode, 0, text.stderr)
        self.assertRegex(text.stdout, r"\(request policyctl-\d+-[0-9a-f]{8}\)")

    def test_decide_takes_every_residency_the_product_knows(self):
        """global (none of the request's own) is a residency like eu, us and apac; others are usage
        errors naming the four."""
        SUITE.register_seed_endpoints_once()  # EU and US endpoints, none in APAC.
        key = SUITE.new_key("bob", "support-eu")

        def decide(residency):
            return run_policyctl("decide", "--model=gpt-4o", "--message=Summarise the ticket.",
                                 f"--residency={residency}", "--output=json", api_key=key)

        for residency in ("global", "GLOBAL", "eu"):
            with self.subTest(residency=residency):
                run = decide(residency)
                self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
                self.assertEqual(json.loads(run.stdout)["verdict"], "VERDICT_ALLOW")
        apac = decide("apac")  # Sent, and refused: support-eu keeps its calls in the EU.
        self.assertEqual(apac.returncode, 3, apac.stdout + apac.stderr)
        self.assertEqual(json.loads(apac.stdout)["reason"], "RESIDENCY_NOT_ALLOWED")
        for bad in ("mars", "unspecified"):
            with self.subTest(residency=bad):
                run = decide(bad)
                self.assertEqual(run.returncode, 2, run.stderr)
                self.assertIn("--residency must be eu, us, apac or global",
                              run.stderr.splitlines()[0])

    def test_a_reader_lists_the_members_of_a_project_it_reads_and_changes_nothing(self):
        carol = SUITE.new_admin_key("carol")  # A reader in support-eu, a member in playground.
        listed = run_policyctl("members", "list", "--project=support-eu", "--output=json",
                               admin_key=carol)
        self.assertEqual(listed.returncode, 0, listed.stderr)
        ids = {m["id"] for m in json.loads(listed.stdout)["members"]}
        self.assertTrue({"bob", "carol"} <= ids, ids)
        self.assertNotIn("dan", ids)
        for args, action in ((("members", "list"), "org.read"),
                             (("members", "list", "--project=internal-copilot"), "settings.read"),
                             (("members", "add", "--id=carols-friend",
                               "--email=carols-friend@acme.example",
                               "--roles=reader@support-eu"), "members.manage"),
                             (("members", "set-roles", "carol", "--roles=admin"),
                              "members.manage"),
                             (("members", "remove", "bob"), "members.manage")):
            with self.subTest(args=args):
                run = run_policyctl(*args, admin_key=carol)
                self.assertEqual(run.returncode, 1, run.stdout + run.stderr)
                self.assertIn("PERMISSION_DENIED", run.stderr)
                self.assertIn(action, run.stderr)
        everyone = run_policyctl("members", "list", "--output=json", admin_key=self.alice)
        self.assertEqual(everyone.returncode, 0, everyone.stderr)
        members = {m["id"]: m for m in json.loads(everyone.stdout)["members"]}
        self.assertNotIn("carols-friend", members)
        self.assertNotIn("removed_at", members["bob"])
        self.assertEqual([g["role"] for g in members["carol"]["grants"]], ["member", "reader"])

    def assert_plan_and_apply_refuse(self, org_file, code, message):
        """`org plan` and `org apply` of `org_file` both exit 1 with `code` and `message`."""
        for verb in ("plan", "apply"):
            with self.subTest(verb=verb):
                run = run_policyctl("org", verb, str(org_file), admin_key=self.alice)
                self.assertEqual(run.returncode, 1, run.stdout + run.stderr)
                self.assertIn(code, run.stderr)
                self.assertIn(message, run.stderr)

    def exported_playground(self):
        """The organisation file as exported, and where the playground's entry starts and
        ends in it (projects come first, each from its "- id:")."""
        exported = run_policyctl("org", "export", admin_key=self.alice)
        self.assertEqual(exported.returncode, 0, exported.stderr)
        text = exported.stdout
        start = text.index("- id: playground\n")
        return text, start, text.find("- id:", start + 1)

    def test_an_organisation_file_changing_a_projects_environment_is_refused(self):
        """Moving the playground (no service accounts to hold it back) from sandbox to
        production would silently take its keys from its members (production: service
        accounts only): plan and apply refuse it, naming the environment, and nothing
        changes."""
        text, start, end = self.exported_playground()
        entry = text[start:end]
        self.assertEqual(entry.count("environment: sandbox"), 1, entry)
        moved = text[:start] + entry.replace("environment: sandbox",
                                             "environment: production") + text[end:]
        org_file = Path(tempfile.mkdtemp()) / "org.yaml"
        org_file.write_text(moved)
        self.assert_plan_and_apply_refuse(org_file, "FAILED_PRECONDITION",
                                          "project 'playground': environment: sandbox cannot "
                                          "change to production")
        projects = run_policyctl("projects", "list", "--output=json", admin_key=self.alice)
        self.assertEqual(projects.returncode, 0, projects.stderr)
        playground = [p for p in json.loads(projects.stdout)["projects"]
                      if p["id"] == "playground"]
        self.assertEqual([(p["environment"], p["key_holders"]) for p in playground],
                         [("sandbox", "KEY_HOLDERS_MEMBERS")])
        # The file as exported still plans to nothing.
        org_file.write_text(text)
        plan = run_policyctl("org", "plan", str(org_file), "--output=json", admin_key=self.alice)
        self.assertEqual(plan.returncode, 0, plan.stderr)
        self.assertEqual(json.loads(plan.stdout)["changes"], [])

    def test_a_plan_warns_of_what_would_count_for_nothing(self):
        """A grant already past its expiry and a model no endpoint serves are applied as
        stated, yet grant and route nothing: the plan says so beside its changes, and still
        succeeds (an export keeps lapsed grants)."""
        text, start, end = self.exported_playground()
        entry = text[start:end]
        self.assertEqual(entry.count("models: [gpt-4o-mini]"), 1, entry)
        changed = text[:start] + entry.replace("models: [gpt-4o-mini]",
                                               "models: [gpt-4o-mini, no-such-model]") + text[end:]
        members = changed.index("members:\n") + len("members:\n")
        changed = (changed[:members] + "  - id: lapsed-contractor\n"
                   "    email: lapsed@contractor.example\n"
                   "    roles: [{role: member, project: playground, "
                   "expires: 2026-01-01T00:00:00Z}]\n" + changed[members:])
        org_file = Path(tempfile.mkdtemp()) / "org.yaml"
        org_file.write_text(changed)
        plan = run_policyctl("org", "plan", str(org_file), admin_key=self.alice)
        self.assertEqual(plan.returncode, 0, plan.stdout + plan.stderr)
        self.assertRegex(plan.stdout, r"\nwarning: line \d+: members\[0\]: member "
                                      r"'lapsed-contractor': the member grant on project "
                                      r"'playground' lapsed at 2026-01-01T00:00:00Z and grants "
                                      r"nothing\n")
        self.assertIn("\nwarning: project 'playground': no enabled endpoint serves model "
                      "'no-such-model' (its decisions would be denied NO_COMPLIANT_REGION)\n",
                      plan.stdout)
        as_json = run_policyctl("org", "plan", str(org_file), "--output=json",
                                admin_key=self.alice)
        self.assertEqual(as_json.returncode, 0, as_json.stderr)
        warnings = json.loads(as_json.stdout)["warnings"]
        self.assertEqual(len([w for w in warnings if "lapsed-contractor" in w or
                              "no-such-model" in w]), 2, warnings)
        # The organisation as it is warns of neither.
        org_file.write_text(text)
        plan = run_policyctl("org", "plan", str(org_file), "--output=json", admin_key=self.alice)
        self.assertEqual(plan.returncode, 0, plan.stderr)
        self.assertEqual([w for w in json.loads(plan.stdout)["warnings"]
                          if "lapsed-contractor" in w or "no-such-model" in w], [])

    def test_an_organisation_files_project_pii_rules_are_checked_against_pii(self):
        """A rule for a type pii does not detect would fail every decision in the project:
        apply refuses it, naming the project and the type, and nothing changes; a rule pii
        applies is applied, listed and exported."""
        text, start, end = self.exported_playground()
        entry = text[start:end]
        self.assertNotIn("pii:", entry)
        org_file = Path(tempfile.mkdtemp()) / "org.yaml"

        def with_rules(rules):
            changed = re.sub(r"(data_policy: \{[^}]*)\}", r"\1, pii: {" + rules + "}}", entry,
                             count=1)
            self.assertNotEqual(changed, entry)
            org_file.write_text(text[:start] + changed + text[end:])

        with_rules("EMPLOYEE_ID: block")
        # The plan a pull request's check runs refuses it as the apply after the merge would.
        self.assert_plan_and_apply_refuse(org_file, "INVALID_ARGUMENT",
                                          "project playground: data_policy.pii.rules[0]: the "
                                          "pii service detects no entity type 'EMPLOYEE_ID'")
        listed = run_policyctl("projects", "list", admin_key=self.alice)
        self.assertNotIn("pii ", [line for line in listed.stdout.splitlines()
                                  if line.startswith("playground ")][0])

        with_rules("US_SSN: block, EMAIL_ADDRESS: allow")
        self.addCleanup(lambda: (org_file.write_text(text), run_policyctl(
            "org", "apply", str(org_file), admin_key=self.alice)))
        plan = run_policyctl("org", "plan", str(org_file), admin_key=self.alice)
        self.assertEqual(plan.returncode, 0, plan.stderr)
        self.assertIn("data_policy.pii: [] -> [EMAIL_ADDRESS=allow, US_SSN=block]", plan.stdout)
        # As a drift check: exit 3 while the organisation is not what the file says.
        drift = run_policyctl("org", "plan", str(org_file), "--detailed_exit_code",
                              admin_key=self.alice)
        self.assertEqual(drift.returncode, 3, drift.stderr)
        self.assertEqual(drift.stdout, plan.stdout.replace(
            re.search(r"fingerprint=(\w+)", plan.stdout)[1],
            re.search(r"fingerprint=(\w+)", drift.stdout)[1]))
        run = run_policyctl("org", "apply", str(org_file), "--reference=git:0a1b2c3",
                            admin_key=self.alice)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        # What was applied, as the plan showed it.
        self.assertIn("data_policy.pii: [] -> [EMAIL_ADDRESS=allow, US_SSN=block]", run.stdout)
        self.assertRegex(run.stdout, r"\napplied: 1 changes, organisation version \d+, "
                                     r"0 keys revoked\n$")
        # The organisation's ledger names the file applied: its SHA-256 and the reference.
        digest = hashlib.sha256(org_file.read_bytes()).hexdigest()
        deadline = time.monotonic() + 10
        while True:
            query = run_policyctl("audit", "query", "--action=org_file_applied", "--output=json",
                                  admin_key=self.alice)
            self.assertEqual(query.returncode, 0, query.stderr)
            applied = [e["metadata"] for e in json.loads(query.stdout).get("entries", [])
                       if e["metadata"].get("reference") == "git:0a1b2c3"]
            if applied or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertEqual([m["file_sha256"] for m in applied], [digest])
        bad = run_policyctl("org", "apply", str(org_file), "--reference=bob@acme.example",
                            admin_key=self.alice)
        self.assertEqual(bad.returncode, 1, bad.stdout)
        self.assertIn("INVALID_ARGUMENT: reference: at most 128 bytes", bad.stderr)
        listed = run_policyctl("projects", "list", admin_key=self.alice)
        self.assertIn("pii EMAIL_ADDRESS=allow,US_SSN=block", [
            line for line in listed.stdout.splitlines() if line.startswith("playground ")][0])
        again = run_policyctl("org", "export", admin_key=self.alice)
        self.assertIn("pii: {EMAIL_ADDRESS: allow, US_SSN: block}", again.stdout)
        in_sync = run_policyctl("org", "plan", str(org_file), "--detailed_exit_code",
                                admin_key=self.alice)
        self.assertEqual(in_sync.returncode, 0, in_sync.stdout + in_sync.stderr)
        self.assertIn("0 changes", in_sync.stdout)

    def test_entity_types_lists_what_project_rules_may_name(self):
        listed = run_policyctl("entity-types", admin_key=self.alice)
        self.assertEqual(listed.returncode, 0, listed.stderr)
        lines = {line.split()[0]: line for line in listed.stdout.splitlines()
                 if not line.startswith("hash:")}
        self.assertRegex(lines["US_SSN"], r"^US_SSN +pii$")
        self.assertIn("blocked in every project", lines["PRIVATE_KEY"])
        self.assertNotIn("blocked", lines["EMAIL_ADDRESS"])
        self.assertRegex(listed.stdout, r"\nhash: (available|not available) ")
        as_json = run_policyctl("entity-types", "--output=json", admin_key=self.alice)
        self.assertEqual(as_json.returncode, 0, as_json.stderr)
        document = json.loads(as_json.stdout)
        self.assertIn("PRIVATE_KEY", document["blocked_everywhere"])
        self.assertEqual(sorted(t["entity_type"] for t in document["entity_types"]),
                         sorted(lines))
        # Listing needs org.read: carol, a reader in one project, may not.
        carol = SUITE.new_admin_key("carol")
        refused = run_policyctl("entity-types", admin_key=carol)
        self.assertEqual(refused.returncode, 1, refused.stdout + refused.stderr)
        self.assertIn("PERMISSION_DENIED", refused.stderr)
        self.assertEqual(run_policyctl("entity-types", "extra", admin_key=self.alice).returncode,
                         2)

    def test_an_answer_that_cannot_be_written_is_a_failure_and_names_the_retry(self):
        """stdout on a full disk: the key is made, but its secret (shown once) never reaches
        the operator, so the exit code says so, and stderr names the request id under which a
        retry shows the same key again."""
        with open("/dev/full", "w") as full:
            created = run_policyctl("keys", "create", "--owner=alice", "--project=playground",
                                    admin_key=self.alice, stdout=full)
            self.assertEqual(created.returncode, 1, created.stderr)
            self.assertIn("could not be written", created.stderr)
            request_id = re.search(r"--request_id=(\S+)", created.stderr).group(1)
            listed = run_policyctl("members", "list", "--output=json", admin_key=self.alice,
                                   stdout=full)
            self.assertEqual(listed.returncode, 1, listed.stderr)
        shown = run_policyctl("keys", "create", "--owner=alice", "--project=playground",
                              f"--request_id={request_id}", "--output=json",
                              admin_key=self.alice)
        self.assertEqual(shown.returncode, 0, shown.stderr)
        key = json.loads(shown.stdout)
        self.assertTrue(key["secret"].startswith("psk_proj_"))
        keys = run_policyctl("keys", "list", "--owner=alice", "--project=playground",
                             "--output=json", admin_key=self.alice)
        self.assertEqual([k["key_id"] for k in json.loads(keys.stdout)["keys"]],
                         [key["key"]["key_id"]])

    def test_text_that_is_not_utf8_is_a_usage_error_naming_it(self):
        """Typed in a Latin-1 terminal: refused before any call, naming the flag or argument,
        never sent on to fail UNIMPLEMENTED with an empty message."""
        latin1 = "M\xfcller".encode("latin-1")
        binary = str(pt.BUILD_DIR / "tools" / "policyctl").encode()
        env = {k: v for k, v in os.environ.items() if not k.startswith("POLICY_POLICYCTL_")}
        env.update(POLICY_POLICYCTL_EDGE=SUITE.p["edge"].address,
                   POLICY_POLICYCTL_ADMIN_KEY=self.alice)
        for args, named in (
                ([b"keys", b"revoke", b"key_AAAAAAAAAAAAAAAAA", b"--reason=" + latin1],
                 "--reason"),
                ([b"projects", b"create", b"--id=latin", b"--name=" + latin1,
                  b"--environment=staging"], "--name"),
                ([b"audit", b"subject-export", latin1], "argument 2")):
            with self.subTest(named=named):
                run = subprocess.run([binary, *args], capture_output=True, timeout=30, env=env,
                                     stdin=subprocess.DEVNULL)
                stderr = run.stderr.decode(errors="replace")
                self.assertEqual(run.returncode, 2, stderr)
                self.assertIn(f"{named}", stderr.splitlines()[0])
                self.assertIn("not UTF-8", stderr.splitlines()[0])
                self.assertNotIn("UNIMPLEMENTED", stderr)
        # An organisation file saved in Latin-1: named, with the offending byte.
        org_file = Path(tempfile.mkdtemp()) / "org.yaml"
        org_file.write_bytes(b"members:\n  - id: mueller\n    email: m@acme.example\n"
                             b"    # " + latin1 + b"\n")
        for verb in ("plan", "apply"):
            run = run_policyctl("org", verb, str(org_file), admin_key=self.alice)
            self.assertEqual(run.returncode, 2, run.stderr)
            self.assertIn(f"{org_file}: not UTF-8", run.stderr.splitlines()[0])
            self.assertNotIn("UNIMPLEMENTED", run.stderr)
        # Decide's messages are bytes: pii judges them, and says which field is wrong.
        key = SUITE.new_key("bob", "support-eu")
        decided = subprocess.run([binary, b"decide", b"--model=gpt-4o", b"--message=" + latin1],
                                 capture_output=True, timeout=30,
                                 env=dict(env, POLICY_POLICYCTL_API_KEY=key),
                                 stdin=subprocess.DEVNULL)
        self.assertEqual(decided.returncode, 1, decided.stderr)
        self.assertIn(b"INVALID_ARGUMENT", decided.stderr)

    def test_a_flag_or_argument_the_verb_does_not_take_is_a_usage_error(self):
        # Each refused before any call: a flag of another verb would otherwise be ignored
        # without a word (audit verify would pass without checking a signature).
        for args, problem in (
                (("audit", "verify", "--project=support-eu", "--environment=production",
                  "--public_key=" + "ab" * 32), "audit verify takes no --public_key"),
                (("keys", "revoke", "key_x", "--request_id=r1"), "keys revoke takes no --request_id"),
                (("members", "add", "--id=x", "--email=x@example.com", "--request_id=r1"),
                 "members add takes no --request_id"),
                (("decide", "--model=gpt-4o", "--message=hi", "--project=p"),
                 "decide takes no --project"),
                (("decide", "--model=gpt-4o", "--message=a", "--message", "b"),
                 "--message is given twice"),
                (("keys", "list", "stray"), "keys list takes 0 arguments, not 1: 'stray'"),
                (("audit", "subject-export", "a@example.com", "b"),
                 "audit subject-export takes 1 argument, not 2: 'b'")):
            with self.subTest(args=args):
                ran = run_policyctl(*args, admin_key=self.alice, api_key="psk_x")
                self.assertEqual(ran.returncode, 2, ran.stderr)
                self.assertEqual(ran.stdout, "")
                self.assertTrue(ran.stderr.startswith(f"policyctl: {problem}\n"), ran.stderr)
                # The usage shown is the verb's own, not the whole usage.
                self.assertIn("usage: policyctl [global flags] ", ran.stderr)
                self.assertLess(ran.stderr.count("\n"), 40, ran.stderr)
        # A required flag left out is named as the flag, before any call.
        for args, problem in ((("keys", "create", "--project=support-eu"),
                               "keys create needs --owner"),
                              (("projects", "create", "--id=p-x", "--environment=staging"),
                               "projects create needs --name"),
                              (("members", "add", "--id=m-x"), "members add needs --email"),
                              (("decide", "--model=gpt-4o"), "decide needs --message")):
            with self.subTest(args=args):
                ran = run_policyctl(*args, admin_key=self.alice, api_key="psk_x")
                self.assertEqual(ran.returncode, 2, ran.stderr)
                self.assertEqual(ran.stderr.splitlines()[0], f"policyctl: {problem}")
        # What the usage lists is taken: lists their page size, checkpoint its public keys.
        ran = run_policyctl("members", "list", "--page_size=2", admin_key=self.alice)
        self.assertEqual(ran.returncode, 0, ran.stderr)

    def test_a_flag_and_its_value_may_be_two_arguments_but_a_switch_takes_none(self):
        spaced = run_policyctl("--output", "json", "members", "list", "--email",
                               "alice@acme.example", admin_key=self.alice)
        self.assertEqual(spaced.returncode, 0, spaced.stderr)
        joined = run_policyctl("--output=json", "members", "list",
                               "--email=alice@acme.example", admin_key=self.alice)
        self.assertEqual(json.loads(spaced.stdout), json.loads(joined.stdout))
        self.assertEqual(len(json.loads(spaced.stdout)["members"]), 1)
        # A switch never takes the next word: here it is an argument the verb does not take.
        stray = run_policyctl("members", "list", "--include_removed", "yes",
                              admin_key=self.alice)
        self.assertEqual(stray.returncode, 2, stray.stderr)
        self.assertEqual(stray.stderr.splitlines()[0],
                         "policyctl: members list takes 0 arguments, not 1: 'yes'")
        # A flag at the end, or before another flag, still needs its value.
        for args in (("members", "list", "--email"),
                     ("members", "list", "--email", "--include_removed")):
            with self.subTest(args=args):
                ran = run_policyctl(*args, admin_key=self.alice)
                self.assertEqual(ran.returncode, 2, ran.stderr)
                self.assertEqual(ran.stderr.splitlines()[0],
                                 "policyctl: flag --email needs a value")

    def test_usage_errors_show_the_commands_usage_and_never_echo_a_key(self):
        # An unknown verb is named before the missing admin key, with the command's usage.
        ran = run_policyctl("keys", "frobnicate")
        self.assertEqual(ran.returncode, 2, ran.stderr)
        self.assertEqual(ran.stderr.splitlines()[0], "policyctl: keys: unknown verb 'frobnicate'")
        self.assertIn("  keys inventory", ran.stderr)
        self.assertNotIn("  audit query", ran.stderr)
        # A word of the usage's prose is no verb either.
        for command, word in (("keys", "admin"), ("audit", "the"), ("members", "ID")):
            with self.subTest(word=word):
                prose = run_policyctl(command, word)
                self.assertEqual(prose.stderr.splitlines()[0],
                                 f"policyctl: {command}: unknown verb '{word}'")
        for command, verbs in (("keys", "create, rotate, revoke, list, report or inventory"),
                               ("endpoints", "list, create, update, delete or health")):
            with self.subTest(command=command):
                ran = run_policyctl(command, admin_key=self.alice)
                self.assertEqual(ran.returncode, 2, ran.stderr)
                self.assertEqual(ran.stderr.splitlines()[0], f"policyctl: {command}: {verbs}")
        # invitations' verbs are on one usage line: each is known.
        ran = run_policyctl("invitations", "revoke", admin_key=self.alice)
        self.assertNotIn("unknown verb", ran.stderr)
        # A key pasted where a command or an argument goes is not shown.
        secret = "psk_admin_" + "Q" * 60
        for args in ((secret, "members", "list"), ("keys", "list", secret), ("keys", secret),
                     ("health", secret), ("members", secret, "--help=x"),
                     ("audit", "forget", secret)):
            with self.subTest(args=args[:2]):
                ran = run_policyctl(*args, admin_key=self.alice)
                self.assertEqual(ran.returncode, 2, ran.stderr)
                self.assertNotIn("Q" * 20, ran.stderr)
                self.assertIn("looks like a key (70 characters, not shown)", ran.stderr)
        # A file that cannot be read is no usage error: exit 1, saying why.
        ran = run_policyctl("org", "plan", "/nonexistent/org.yaml", admin_key=self.alice)
        self.assertEqual(ran.returncode, 1, ran.stderr)
        self.assertEqual(ran.stderr.splitlines(),
                         ["policyctl: cannot read /nonexistent/org.yaml: No such file or directory"])

    def test_projects_update_changes_only_the_settings_given(self):
        project = f"upd-{uuid.uuid4().hex[:6]}"
        created = run_policyctl("projects", "create", f"--id={project}", "--name=Before",
                                "--environment=staging", "--models=gpt-4o,gpt-4o-mini",
                                "--rpm=100", "--tpm=20000", "--member_rpm=5",
                                "--residency=apac", "--data_class=phi", admin_key=self.alice)
        self.assertEqual(created.returncode, 0, created.stderr)
        self.assertIn("rpm 100 tpm 20000  per member rpm 5 tpm -  key holders: members  "
                      "residency apac  class phi\n", created.stdout)
        updated = run_policyctl("projects", "update", project, "--tpm=0", "--name", "After",
                                "--output=json", admin_key=self.alice)
        self.assertEqual(updated.returncode, 0, updated.stderr)
        p = json.loads(updated.stdout)
        self.assertEqual((p["name"], p["allowed_models"], p["environment"]),
                         ("After", ["gpt-4o", "gpt-4o-mini"], "staging"))
        self.assertEqual((p["limits"]["rpm"], p["limits"]["tpm"], p["member_limits"]["rpm"]),
                         ("100", "0", "5"))
        self.assertEqual(p["data_policy"]["residency"], "RESIDENCY_APAC")  # Not given: kept.
        self.assertEqual(p["data_policy"]["data_class"], "DATA_CLASS_PHI")  # So is this.
        anywhere = run_policyctl("projects", "update", project, "--residency=global",
                                 "--data_class=internal", "--output=json", admin_key=self.alice)
        self.assertEqual(anywhere.returncode, 0, anywhere.stderr)
        self.assertEqual(json.loads(anywhere.stdout)["data_policy"]["residency"],
                         "RESIDENCY_GLOBAL")
        self.assertEqual(json.loads(anywhere.stdout)["data_policy"]["data_class"],
                         "DATA_CLASS_INTERNAL")
        shown = run_policyctl("projects", "list", admin_key=self.alice)
        self.assertIn(f"{project}  staging  After  models [gpt-4o,gpt-4o-mini]  rpm 100 "
                      "tpm 0 (none)  per member rpm 5 tpm -", shown.stdout)
        for args, code, said in (((project, "--environment=production"), 2,
                                  "projects update takes no --environment"),
                                 ((project, "--residency=mars"), 2,
                                  "--residency must be eu, us, apac or global"),
                                 ((project, "--data_class=secret"), 2,
                                  "--data_class must be public, internal, pii or phi"),
                                 (("no-such-project", "--rpm=1"), 1,
                                  "NOT_FOUND: no project 'no-such-project'")):
            with self.subTest(args=args):
                ran = run_policyctl("projects", "update", *args, admin_key=self.alice)
                self.assertEqual(ran.returncode, code, ran.stderr)
                self.assertIn(said, ran.stderr.splitlines()[0])
        # A service account's key lifetime, as the organisation file sets it.
        account = f"sa-{uuid.uuid4().hex[:6]}"
        sa = run_policyctl("service-accounts", "create", f"--id={account}",
                           f"--project={project}", "--environment=staging",
                           "--max_key_lifetime=2d", "--output=json", admin_key=self.alice)
        self.assertEqual(sa.returncode, 0, sa.stderr)
        self.assertEqual(json.loads(sa.stdout)["max_key_lifetime"], "172800s")

    def test_a_group_sync_provisions_newcomers_and_revokes_the_keys_of_leavers(self):
        folder = Path(tempfile.mkdtemp())
        joined, left = folder / "joined.txt", folder / "left.txt"
        joined.write_text("# data-science, from the identity provider\nheidi@acme.example\n"
                          "IVAN@acme.example\n\nnewcomer@acme.example\n")
        left.write_text("heidi@acme.example\nivan@acme.example\n")
        synced = run_policyctl("org", "sync-group", "data-science", str(joined), "--output=json",
                               admin_key=self.alice)
        self.assertEqual(synced.returncode, 0, synced.stderr)
        provisioned = json.loads(synced.stdout)["provisioned"]
        self.assertEqual(len(provisioned), 1, synced.stdout)
        newcomer = provisioned[0]
        self.assertRegex(newcomer, r"^idp:\d+$")
        key = SUITE.new_key(newcomer, "playground", es.keys_pb2.ENVIRONMENT_SANDBOX)
        # The identity provider drops the newcomer: removed, and their key revoked.
        synced = run_policyctl("org", "sync-group", "data-science", str(left),
                               admin_key=self.alice)
        self.assertEqual(synced.returncode, 0, synced.stderr)
        self.assertRegex(synced.stdout, rf"^removed {newcomer}\nsynced: group 'data-science', "
                                        r"2 e-mails, organisation version \d+, "
                                        r"1 keys revoked\n$")
        keys = run_policyctl("keys", "list", f"--owner={newcomer}", "--output=json",
                             admin_key=self.alice)
        self.assertEqual(keys.returncode, 0, keys.stderr)
        self.assertEqual([k["state"] for k in json.loads(keys.stdout)["keys"]],
                         ["KEY_STATE_REVOKED"])
        decided = run_policyctl("decide", "--model=gpt-4o-mini", "--message=hi", api_key=key)
        self.assertEqual(decided.returncode, 1, decided.stdout)
        self.assertIn("UNAUTHENTICATED", decided.stderr)
        # Repeated, it changes nothing; an empty list (an identity provider's fault, more
        # often than not) removes no one without --allow_empty.
        again = run_policyctl("org", "sync-group", "data-science", str(left), "--output=json",
                              admin_key=self.alice)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(json.loads(again.stdout)["deprovisioned"], [])
        self.assertEqual(json.loads(again.stdout)["revoked_keys"], [])
        empty = run_policyctl("org", "sync-group", "data-science", "-", admin_key=self.alice)
        self.assertEqual(empty.returncode, 1, empty.stdout)
        self.assertIn("FAILED_PRECONDITION", empty.stderr)
        self.assertIn("state allow_empty to remove them all", empty.stderr)
        listed = run_policyctl("members", "list", "--email=heidi@acme.example",
                               admin_key=self.alice)
        self.assertIn("member@internal-copilot(group)", listed.stdout)
        # Only members.manage syncs: carol, a reader, may not.
        carol = run_policyctl("org", "sync-group", "data-science", str(left),
                              admin_key=SUITE.new_admin_key("carol"))
        self.assertEqual(carol.returncode, 1, carol.stdout)
        self.assertIn("members.manage", carol.stderr)

    def test_members_list_shows_what_their_groups_grant(self):
        # heidi is provisioned by the identity provider's data-science group (org.yaml).
        listed = run_policyctl("members", "list", "--email=heidi@acme.example",
                               admin_key=self.alice)
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertRegex(listed.stdout, r"^idp:\d+  heidi@acme\.example  "
                                        r"member@internal-copilot\(group\) "
                                        r"member@playground\(group\)\n$")

    def test_a_service_accounts_key_without_a_project_tells_no_stranger_that_it_exists(self):
        carol = SUITE.new_admin_key("carol")  # No role in internal-copilot.
        answers = {}
        for account in ("sa-copilot-ci", "sa-nobody"):
            ran = run_policyctl("keys", "create", "--owner_type=service_account",
                                f"--owner={account}", admin_key=carol)
            self.assertEqual(ran.returncode, 1, ran.stderr)
            answers[account] = ran.stderr.replace(account, "ACCOUNT")
        self.assertEqual(answers["sa-copilot-ci"], answers["sa-nobody"])
        self.assertIn("NOT_FOUND: owner: no service account 'ACCOUNT' that member 'carol' may "
                      "read", answers["sa-nobody"])
        self.assertNotIn("internal-copilot", answers["sa-copilot-ci"])

    def test_refusals_say_whose_key_and_why_in_words(self):
        forged = run_policyctl("members", "list", admin_key="psk_admin_" + "A" * 60)
        self.assertEqual(forged.returncode, 1, forged.stderr)
        self.assertEqual(forged.stderr.strip(), "policyctl: UNAUTHENTICATED: admin key is not valid")
        carol = SUITE.new_admin_key("carol")  # A reader in support-eu, no organisation role.
        denied = run_policyctl("members", "list", admin_key=carol)
        self.assertEqual(denied.returncode, 1, denied.stderr)
        self.assertEqual(denied.stderr.strip(), "policyctl: PERMISSION_DENIED: member 'carol' may "
                                                "not org.read (no role of theirs grants it)")

    def test_a_closed_pipe_is_exit_1_not_a_signal(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("POLICY_POLICYCTL_")}
        env.update(POLICY_POLICYCTL_EDGE=SUITE.p["edge"].address,
                   POLICY_POLICYCTL_ADMIN_KEY=self.alice)
        reader, writer = os.pipe()
        os.close(reader)  # The reader is gone before policyctl writes anything.
        try:
            ran = subprocess.run([str(pt.BUILD_DIR / "tools" / "policyctl"), "audit", "export"],
                                 stdout=writer, stderr=subprocess.PIPE, text=True, timeout=30,
                                 env=env, stdin=subprocess.DEVNULL)
        finally:
            os.close(writer)
        self.assertEqual(ran.returncode, 1, ran.stderr)
        self.assertIn("the answer could not be written to stdout", ran.stderr)

    def test_health_exits_4_only_when_every_failure_is_for_now(self):
        edge = SUITE.p["edge"].address
        unreachable = "127.0.0.1:1"
        for targets, code in (((edge,), 0), ((unreachable,), 4),
                              ((edge, unreachable), 4)):
            with self.subTest(targets=targets):
                ran = run_policyctl("health", *targets, "--timeout=3s")
                self.assertEqual(ran.returncode, code, ran.stdout + ran.stderr)
        # A service the target does not know is no failure for now: it outranks one that
        # is, in either order.
        for targets in ((edge, unreachable), (unreachable, edge)):
            with self.subTest(targets=targets):
                ran = run_policyctl("health", *targets, "--service=no.such.Service",
                                    "--timeout=3s", "--output=json")
                self.assertEqual(ran.returncode, 1, ran.stdout + ran.stderr)
                codes = {json.loads(line)["target"]: json.loads(line)["code"]
                         for line in ran.stdout.splitlines()}
                self.assertEqual(codes, {edge: "NOT_FOUND", unreachable: "UNAVAILABLE"})

    def test_only_the_global_flags_are_read_from_the_environment(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("POLICY_POLICYCTL_")}
        env.update(POLICY_POLICYCTL_EDGE=SUITE.p["edge"].address,
                   POLICY_POLICYCTL_ADMIN_KEY=self.alice, POLICY_POLICYCTL_OUTPUT="json",
                   POLICY_POLICYCTL_PROJECT="no-such-project")
        ran = subprocess.run([str(pt.BUILD_DIR / "tools" / "policyctl"), "members", "list"],
                             capture_output=True, text=True, timeout=30, env=env,
                             stdin=subprocess.DEVNULL)
        # A leftover POLICY_POLICYCTL_PROJECT neither filters the list nor fails it.
        self.assertEqual(ran.returncode, 0, ran.stderr)
        self.assertIn("policyctl: ignoring POLICY_POLICYCTL_PROJECT: only the global flags are "
                      "read from the environment", ran.stderr)
        self.assertGreater(len(json.loads(ran.stdout)["members"]), 1)

    def test_a_timeout_that_is_not_positive_or_an_empty_edge_is_a_usage_error(self):
        for args, named in ((("--timeout=0s", "members", "list"), "--timeout"),
                            (("--timeout=-5s", "members", "list"), "--timeout"),
                            (("--edge=", "members", "list"), "--edge"),
                            # Dialled, it would wrap round to port 34463: another service.
                            (("--edge=127.0.0.1:99999", "members", "list"), "--edge"),
                            (("--edge=nonsense:::", "members", "list"), "--edge"),
                            (("health", "127.0.0.1:0"), "health: argument 1")):
            with self.subTest(args=args):
                run = run_policyctl(*args, admin_key=self.alice)
                self.assertEqual(run.returncode, 2, run.stderr)
                self.assertIn(named, run.stderr.splitlines()[0])

    def test_a_project_that_does_not_exist_is_not_found_not_a_permission(self):
        """An owner mistyping a project is told it does not exist, as authz's own calls say,
        not PERMISSION_DENIED, which a script takes for a role the caller lacks."""
        for args in (("keys", "list", "--project=no-such-project"),
                     ("keys", "report", "--project=no-such-project"),
                     ("keys", "inventory", "--project=no-such-project"),
                     ("keys", "create", "--owner=alice", "--project=no-such-project"),
                     ("service-accounts", "list", "--project=no-such-project")):
            with self.subTest(args=args):
                run = run_policyctl(*args, admin_key=self.alice)
                self.assertEqual(run.returncode, 1, run.stderr)
                self.assertIn("NOT_FOUND", run.stderr)
                self.assertIn("no-such-project", run.stderr)
                self.assertNotIn("PERMISSION_DENIED", run.stderr)

    def test_set_roles_without_roles_is_a_usage_error_and_takes_nothing_away(self):
        def grants():
            listed = run_policyctl("members", "list", "--output=json", admin_key=self.alice)
            self.assertEqual(listed.returncode, 0, listed.stderr)
            return [m["grants"] for m in json.loads(listed.stdout)["members"]
                    if m["id"] == "keeper"][0]

        added = run_policyctl("members", "add", "--id=keeper", "--email=keeper@acme.example",
                              "--roles=member@playground", admin_key=self.alice)
        self.assertEqual(added.returncode, 0, added.stderr)
        forgot = run_policyctl("members", "set-roles", "keeper", admin_key=self.alice)
        self.assertEqual(forgot.returncode, 2, forgot.stderr)
        self.assertIn("--roles", forgot.stderr.splitlines()[0])
        self.assertEqual(grants(), [{"role": "member", "project": "playground"}])
        # On purpose, it is done.
        emptied = run_policyctl("members", "set-roles", "keeper", "--roles=",
                                admin_key=self.alice)
        self.assertEqual(emptied.returncode, 0, emptied.stderr)
        self.assertEqual(grants(), [])

    def test_a_retried_add_of_the_same_member_is_done_and_other_content_is_refused(self):
        # A retry after an answer that never came (exit 4) finds the member it added: done.
        flags = ("--id=twice", "--email=twice@acme.example", "--roles=member@playground")
        first = run_policyctl("members", "add", *flags, admin_key=self.alice)
        self.assertEqual(first.returncode, 0, first.stderr)
        again = run_policyctl("members", "add", *flags, admin_key=self.alice)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(again.stdout, first.stdout)
        other = run_policyctl("members", "add", "--id=twice", "--email=other@acme.example",
                              "--roles=member@playground", admin_key=self.alice)
        self.assertEqual(other.returncode, 1, other.stderr)
        self.assertIn("ALREADY_EXISTS", other.stderr)
        self.assertIn("email", other.stderr)
        listed = run_policyctl("members", "list", "--output=json", admin_key=self.alice)
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertEqual([m["email"] for m in json.loads(listed.stdout)["members"]
                          if m["id"] == "twice"], ["twice@acme.example"])


if __name__ == "__main__":
    unittest.main()
