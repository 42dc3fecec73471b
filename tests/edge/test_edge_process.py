"""End-to-end tests of the decision flow: PostgreSQL and all six services as separate
processes (keys, authz, pii, region, audit, edge), driven from Python over gRPC with Debian's
python3-grpcio, as a non-C++ backend would.

Plays the seed's scenarios through the edge: an allowed request with its PII redacted and
routed to the EU, recorded in the ledger (which then verifies); a key that does not verify;
a model off the project's allowlist; a secret in the prompt; a residency nothing complies
with; a rate limit; the usage report after the LLM call feeding the endpoint's health until
the next decision fails over inside the EU; and fail-closed behaviour while a dependency is
stopped or killed, recovering when it returns.

Needs POLICY_TEST_PG_URL (as tools/dev pg sets up); skips without it, or fails when
POLICY_TEST_REQUIRE_PG=1.
Run: /usr/bin/python3 -m unittest -v tests.edge.test_edge_process
"""

import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import unittest
import uuid
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.edge import edge_support as es  # noqa: E402
from tests.edge import envoy_upstream  # noqa: E402
from tests.support import policy_testing as pt  # noqa: E402

import grpc  # noqa: E402
from envoy.service.auth.v3 import external_auth_pb2 as X, external_auth_pb2_grpc  # noqa: E402
from policy.audit.v1 import audit_pb2, audit_pb2_grpc  # noqa: E402
from policy.authz.v1 import authz_pb2  # noqa: E402
from policy.edge.v1 import admin_pb2, edge_pb2 as E  # noqa: E402
from policy.keys.v1 import keys_pb2, keys_pb2_grpc  # noqa: E402
from policy.pii.v1 import pii_pb2  # noqa: E402
from policy.region.v1 import region_pb2 as R, region_pb2_grpc  # noqa: E402

C = grpc.StatusCode
TICKET = es.TICKET

SUITE = None
P = {}  # name -> ServiceProcess, SUITE's
_stack = None


def setUpModule():
    global SUITE, P, _stack
    url = pt.require_pg_url()
    es.require_binaries()
    _stack = contextlib.ExitStack()
    try:
        db = _stack.enter_context(pt.test_database(url, "edge_process"))
        SUITE = es.Suite(db.url)
        P = SUITE.p
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


# Drives docs/edge.md's Node.js example (edge_example.js beside it) against the edge at
# argv[2], with the proto files of argv[3] and the key argv[4]; prints what happened as JSON.
NODE_DRIVER = r"""
const {edgeClient, ask} = require("./edge_example.js");
const [address, protoDir, key] = process.argv.slice(2);
const edge = edgeClient(address, protoDir);
const calls = [];
async function callLlm(endpoint, headers, messages) {
  const contents = messages.map((m) => m.content.toString("utf8"));
  calls.push({headers, contents});
  const placeholder = contents[0].match(/<EMAIL_ADDRESS_[0-9]+>/)[0];
  const text = Buffer.from(`Writing to ${placeholder} now. Zo\u00eb \u2713`, "utf8");
  const cuts = [18, text.length - 2];  // Inside the placeholder, inside the last character.
  return {status: 200, tokens: 42,
          chunks: [text.subarray(0, cuts[0]), text.subarray(...cuts), text.subarray(cuts[1])]};
}
async function timedOut(endpoint, headers) {
  calls.push({headers, contents: []});
  throw new Error("the provider did not answer");
}
async function limited(endpoint, headers, messages) {
  calls.push({headers, contents: messages.map((m) => m.content.toString("utf8"))});
  return {status: 429, tokens: 0, chunks: [Buffer.from("rate limited")]};
}
(async () => {
  const out = {};
  const conversation = [["user", "Mail jane.doe@example.com about her refund."]];
  out.first = await ask(edge, key, conversation, callLlm);
  conversation.push(["assistant", out.first], ["user", "Now draft the mail."]);
  out.second = await ask(edge, key, conversation, callLlm);
  await ask(edge, key, conversation, timedOut).catch((e) => { out.failed = e.message; });
  await ask(edge, key, conversation, limited).catch((e) => { out.refused = e.status; });
  await ask(edge, key, [["user", "Is AKIAIOSFODNN7EXAMPLE valid?"]], callLlm)
      .catch((e) => { out.denied = e.reason; });
  out.calls = calls;
  console.log(JSON.stringify(out));
  edge.close();
})().catch((e) => { console.error(e); process.exit(1); });
"""


def edge():
    return SUITE.edge()


def new_key(owner, project, environment=keys_pb2.ENVIRONMENT_PRODUCTION):
    return SUITE.new_key(owner, project, environment)


def start_pii():
    return SUITE.start_pii()


def run_policyctl(*args, admin_key=None, api_key=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLICY_POLICYCTL_")}
    env["POLICY_POLICYCTL_EDGE"] = P["edge"].address
    if admin_key:
        env["POLICY_POLICYCTL_ADMIN_KEY"] = admin_key
    if api_key:
        env["POLICY_POLICYCTL_API_KEY"] = api_key
    return subprocess.run([str(pt.BUILD_DIR / "tools" / "policyctl"), *args], capture_output=True,
                          text=True, timeout=30, env=env, stdin=subprocess.DEVNULL)


def org_ledger(admin_key):
    """The organisation's ledger, every entry, through policyctl audit export."""
    exported = run_policyctl("audit", "export", "--project=", "--environment=",
                             admin_key=admin_key)
    assert exported.returncode == 0, exported.stderr
    return [json.loads(line) for line in exported.stdout.splitlines()]


def org_ledger_once(admin_key, action, **metadata):
    """The organisation's ledger once it holds an entry of `action` with `metadata`.

    Services record their changes through outboxes, a moment after they answer; each outbox
    delivers in order, so once a service's last change is in, so are its earlier ones.
    """
    return pt.wait_until(
        lambda: (lambda entries: entries if recorded(entries, action, **metadata) else None)(
            org_ledger(admin_key)),
        timeout=15, message=f"{action} {metadata} in the organisation's ledger")


def digest_of(entity_id):
    """The first 32 hex digits of the SHA-256 of `entity_id`: what a request id must not carry
    of a person, since anyone reading the ledger could test a guessed id against it."""
    return hashlib.sha256(entity_id.encode()).hexdigest()[:32]


def recorded(entries, action, **metadata):
    """The entries of `action` whose metadata holds `metadata`."""
    return [e for e in entries if e["action"] == action
            and all(e.get("metadata", {}).get(k) == v for k, v in metadata.items())]


def org_ledger_holding(admin_key, action, timeout=15, **metadata):
    """The organisation's ledger once it holds an entry of `action` with `metadata`: a service
    that records its changes through an outbox (region) delivers them moments after it
    answered. Each look is an export, itself recorded (AUDIT_READ)."""
    def holding():
        entries = org_ledger(admin_key)
        return entries if recorded(entries, action, **metadata) else None
    return pt.wait_until(holding, timeout=timeout, interval=0.2,
                         message=f"{action} {metadata} in the organisation's ledger")


class EdgeProcessTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        SUITE.register_seed_endpoints()
        cls.bob = new_key("bob", "support-eu")

    def decide(self, key=None, timeout=10, **kw):
        return edge().Decide(es.decide_request(key or self.bob, **kw), timeout=timeout)

    def key_for_this_test(self, owner, project, environment):
        """A new key of `owner`'s, revoked when the test ends (the offboarding test counts the
        keys a member holds)."""
        secret = new_key(owner, project, environment)
        self.addCleanup(keys_pb2_grpc.KeyServiceStub(P["keys"].channel).RevokeKey,
                        keys_pb2.RevokeKeyRequest(key_id="key_" + secret[len("psk_proj_"):][:17],
                                                  reason="test over"), timeout=10)
        return secret

    def bobs_support_key(self, admin, alice):
        """A production key of bob's in support-eu, made through the admin API by `alice`."""
        return admin.CreateKey(keys_pb2.CreateKeyRequest(
            request_id=uuid.uuid4().hex, kind=keys_pb2.KEY_KIND_PROJECT,
            owner=keys_pb2.Principal(type=keys_pb2.PRINCIPAL_TYPE_MEMBER, id="bob"),
            project="support-eu", environment=keys_pb2.ENVIRONMENT_PRODUCTION,
            scopes=["chat.completions"]), metadata=alice, timeout=10)

    def ledger_entries(self, project="support-eu", environment="production"):
        audit = audit_pb2_grpc.AuditServiceStub(P["audit"].channel)
        return audit.QueryEntries(audit_pb2.QueryEntriesRequest(
            ledger=audit_pb2.LedgerRef(project=project, environment=environment),
            page_size=1000, requested_by="e2e-auditor"), timeout=10).entries

    def usage_entry(self, request_id, project="support-eu", environment="production"):
        """The ledger entry of the usage reported for the decision under `request_id`."""
        audit = audit_pb2_grpc.AuditServiceStub(P["audit"].channel)
        return audit.GetEntry(audit_pb2.GetEntryRequest(
            ledger=audit_pb2.LedgerRef(project=project, environment=environment),
            request_id="usage:" + request_id), timeout=10).entry

    def ledger_entry(self, request_id, project="support-eu", environment="production"):
        """The ledger entry of the decision made under `request_id`."""
        found = [e for e in self.ledger_entries(project, environment)
                 if e.request_id == "decision:" + request_id]
        self.assertEqual(len(found), 1, f"one ledger entry for {request_id}")
        return found[0]

    def test_allowed_request_is_redacted_routed_to_the_eu_and_recorded(self):
        request_id = f"e2e-{uuid.uuid4().hex[:12]}"
        r = self.decide(request_id=request_id, return_mapping=True)
        self.assertEqual(r.verdict, E.VERDICT_ALLOW, r.message)
        sent = b"".join(m.content for m in r.messages)
        self.assertNotIn(b"jane.doe@example.com", sent)
        self.assertNotIn(b"4111 1111 1111 1111", sent)
        self.assertIn(b"<EMAIL_ADDRESS_1>", sent)
        self.assertEqual(r.messages[0].role, "system")
        self.assertEqual({m.placeholder: m.value for m in r.mapping}["<EMAIL_ADDRESS_1>"],
                         b"jane.doe@example.com")
        self.assertEqual(r.endpoint.id, "westeurope")
        self.assertEqual(r.data_class, pii_pb2.DATA_CLASS_PII)
        self.assertEqual(r.pii_counts["CREDIT_CARD"], 1)
        self.assertEqual(r.request_id, request_id)
        self.assertTrue(r.audit_id.startswith("support-eu/production/"), r.audit_id)
        self.assertEqual(r.headers["x-policy-audit-id"], r.audit_id)
        self.assertEqual(r.headers["x-policy-zero-data-retention"], "true")

        entry = self.ledger_entry(request_id)
        self.assertEqual(entry.action, audit_pb2.ACTION_DECISION_ALLOW)
        self.assertEqual(str(entry.index), r.audit_id.rsplit("/", 1)[1])
        self.assertEqual(entry.actor, "bob")
        self.assertEqual(entry.metadata["endpoint"], "westeurope")
        self.assertEqual(len(entry.content_hash), 32)
        # The ledger holds counts and a hash, never the values.
        self.assertNotIn("jane", str(entry))
        verified = audit_pb2_grpc.AuditServiceStub(P["audit"].channel).VerifyLedger(
            audit_pb2.VerifyLedgerRequest(
                ledger=audit_pb2.LedgerRef(project="support-eu", environment="production")),
            timeout=30)
        self.assertTrue(verified.report.valid, verified)
        self.assertGreater(verified.report.entries_checked, entry.index)

        # A retry with the same request id is recorded once.
        again = self.decide(request_id=request_id)
        self.assertEqual(again.audit_id, r.audit_id)

    def test_a_callers_request_id_cannot_take_the_id_of_a_keys_revocation(self):
        # keys records a revocation as "keys:key_revoked:<key id>", and the key id is in the
        # secret: its holder asks for a decision under that id before the key is revoked.
        admin = SUITE.admin()
        alice = es.bearer(SUITE.new_admin_key("alice"))
        created = self.bobs_support_key(admin, alice)
        revocation_id = f"keys:key_revoked:{created.key.key_id}"
        r = self.decide(key=created.secret, request_id=revocation_id)
        self.assertEqual(r.verdict, E.VERDICT_ALLOW, r.message)
        # The leaked secret pasted into the reason is taken, and kept only redacted.
        revoked = admin.RevokeKey(keys_pb2.RevokeKeyRequest(
            key_id=created.key.key_id, reason=f"compromised: {created.secret} was pasted"),
            metadata=alice, timeout=10)
        self.assertNotIn(created.secret, revoked.key.revocation_reason)
        self.assertIn(f"compromised: {created.secret[:9]}...", revoked.key.revocation_reason)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            entries = self.ledger_entries()
            actions = {e.request_id: e.action for e in entries}
            if revocation_id in actions:
                break
            time.sleep(0.2)
        self.assertEqual(actions.get(revocation_id), audit_pb2.ACTION_KEY_REVOKED)
        self.assertFalse([e.index for e in entries if created.secret in str(e)])
        self.assertEqual(actions.get("decision:" + revocation_id), audit_pb2.ACTION_DECISION_ALLOW)

    def test_a_key_that_does_not_verify_is_unauthenticated_whatever_the_reason(self):
        forged = "psk_proj_" + "A" * 66
        for key in (forged, "not a key", self.bob[:-1] + ("x" if self.bob[-1] != "x" else "y")):
            code = pt.call_code(self.decide, key=key)
            self.assertEqual(code, C.UNAUTHENTICATED, key[:12])

    def test_bad_input_names_the_field(self):
        err = pt.call_error(self.decide, model="")
        self.assertEqual(err.code(), C.INVALID_ARGUMENT)
        self.assertIn("model", err.details())
        err = pt.call_error(self.decide, request_id="bad id")
        self.assertEqual(err.code(), C.INVALID_ARGUMENT)
        self.assertIn("request_id", err.details())
        # Content that is not UTF-8, refused by pii, reaches the caller as its own mistake.
        err = pt.call_error(edge().Decide, E.DecideRequest(
            api_key=self.bob.encode(), source_ip="10.20.1.7", model="gpt-4o",
            messages=[pii_pb2.ChatMessage(role="user", content=b"caf\xe9")]), timeout=10)
        self.assertEqual(err.code(), C.INVALID_ARGUMENT)
        self.assertIn("messages", err.details())

    def test_a_prompt_at_the_size_limit_dense_with_personal_data_is_decided(self):
        # The edge asks pii for counts, not for a finding per address (which would make
        # pii's answer several times the text). The prompt counts against the tokens-per-minute
        # limits as a token per 4 bytes, whatever its estimate: more than bob's minute holds.
        text = " ".join(f"u{i:05d}@x.io" for i in range(75000))
        self.assertLess(len(text), 1 << 20)
        r = self.decide(text=text, tokens=1, timeout=60)
        self.assertEqual((r.verdict, r.reason), (E.VERDICT_DENY, "RATE_LIMITED"), r.message)
        self.assertEqual(r.pii_counts["EMAIL_ADDRESS"], 75000)
        self.assertGreaterEqual(r.estimated_tokens, len(text) // 4)

        # In a project whose minute holds it, it is allowed; with its placeholder mapping the
        # answer would pass gRPC clients' default 4 MiB, and it is refused before anything is
        # recorded.
        alice = es.bearer(SUITE.new_admin_key("alice"))
        project_id = f"bulk-{uuid.uuid4().hex[:6]}"
        SUITE.admin().CreateProject(authz_pb2.CreateProjectRequest(project=authz_pb2.Project(
            id=project_id, name="Bulk redaction", environment="development",
            allowed_models=["gpt-4o"], limits=authz_pb2.RateLimits(rpm=100, tpm=10000000))),
            metadata=alice, timeout=10)
        key = new_key("alice", project_id, keys_pb2.ENVIRONMENT_DEVELOPMENT)
        request_id = f"bulk-{uuid.uuid4().hex[:12]}"
        err = pt.call_error(edge().Decide, es.decide_request(
            key, text=text, tokens=1, return_mapping=True, request_id=request_id), timeout=60)
        self.assertEqual(err.code(), C.INVALID_ARGUMENT, err.details())
        self.assertIn("return_mapping", err.details())
        self.assertIn("max_answer_bytes", err.details())
        self.assertEqual([e for e in self.ledger_entries(project_id, "development")
                          if e.request_id == "decision:" + request_id], [])
        r = self.decide(key=key, text=text, tokens=1, request_id=request_id, timeout=60)
        self.assertEqual(r.verdict, E.VERDICT_ALLOW, (r.reason, r.message))
        self.assertEqual(r.pii_counts["EMAIL_ADDRESS"], 75000)
        self.assertTrue(r.messages[1].content.startswith(b"<EMAIL_ADDRESS_1> <EMAIL_ADDRESS_2> "))
        self.assertEqual(self.ledger_entry(request_id, project_id, "development").tokens,
                         r.estimated_tokens)

    def test_a_projects_own_pii_rules_decide_what_becomes_of_its_prompts(self):
        admin = SUITE.admin()
        alice = es.bearer(SUITE.new_admin_key("alice"))
        project_id = f"pii-{uuid.uuid4().hex[:6]}"

        def rule(entity_type, action, operator=0):
            return pii_pb2.EntityRule(entity_type=entity_type, action=action, operator=operator)

        def project(*rules):
            return authz_pb2.Project(
                id=project_id, name="HR assistant", environment="development",
                allowed_models=["gpt-4o"], limits=authz_pb2.RateLimits(rpm=100, tpm=100000),
                data_policy=authz_pb2.DataPolicy(pii=authz_pb2.PiiPolicy(rules=list(rules))))

        # A rule pii could not apply would fail every decision: refused, naming it.
        err = pt.call_error(admin.CreateProject, authz_pb2.CreateProjectRequest(
            project=project(rule("EMPLOYEE_ID", pii_pb2.ACTION_BLOCK))), metadata=alice,
            timeout=10)
        self.assertEqual(err.code(), C.INVALID_ARGUMENT, err.details())
        self.assertIn("project.data_policy.pii.rules[0]: the pii service detects no entity type "
                      "'EMPLOYEE_ID'", err.details())
        # Nor can a project let through what the edge blocks everywhere (its secrets).
        err = pt.call_error(admin.CreateProject, authz_pb2.CreateProjectRequest(
            project=project(rule("PRIVATE_KEY", pii_pb2.ACTION_ALLOW))), metadata=alice,
            timeout=10)
        self.assertEqual(err.code(), C.INVALID_ARGUMENT, err.details())
        self.assertIn("the edge blocks PRIVATE_KEY in every project", err.details())
        # A caller who may not create projects learns that, and nothing about pii.
        err = pt.call_error(admin.CreateProject, authz_pb2.CreateProjectRequest(
            project=project(rule("EMPLOYEE_ID", pii_pb2.ACTION_BLOCK))),
            metadata=es.bearer(SUITE.new_admin_key("carol")), timeout=10)
        self.assertEqual(err.code(), C.PERMISSION_DENIED, err.details())
        # HR's own rules: e-mail addresses go through, social security numbers block.
        created = admin.CreateProject(authz_pb2.CreateProjectRequest(project=project(
            rule("US_SSN", pii_pb2.ACTION_BLOCK), rule("EMAIL_ADDRESS", pii_pb2.ACTION_ALLOW))),
            metadata=alice, timeout=10)
        self.assertEqual([r.entity_type for r in created.data_policy.pii.rules],
                         ["EMAIL_ADDRESS", "US_SSN"])
        key = self.key_for_this_test("alice", project_id, keys_pb2.ENVIRONMENT_DEVELOPMENT)
        mail = "Draft a reply to jane.doe@example.com about her leave."

        def repeated_redactions():
            return pt.metric_value(pt.scrape_metrics(P["edge"].metrics_port),
                                   "policy_edge_redactions_repeated_total", api="decide")

        repeated_before = repeated_redactions()

        def decide(text):
            return self.decide(key=key, text=text, residency=R.RESIDENCY_UNSPECIFIED)

        allowed = decide(mail)
        self.assertEqual(allowed.verdict, E.VERDICT_ALLOW, (allowed.reason, allowed.message))
        self.assertIn(b"jane.doe@example.com", allowed.messages[1].content)
        self.assertEqual(allowed.pii_counts["EMAIL_ADDRESS"], 1)
        recorded = self.ledger_entry(allowed.request_id, project_id, "development").metadata
        self.assertEqual(recorded["pii_counts"], "EMAIL_ADDRESS=1")
        self.assertEqual(recorded["pii_allowed"], "EMAIL_ADDRESS=1")  # Went out as sent.
        # The project's first decision redacted twice (the edge had not seen its rules); the
        # next ones once.
        self.assertEqual(repeated_redactions(), repeated_before + 1)
        blocked = decide("Her SSN is 123-45-6789.")
        self.assertEqual((blocked.verdict, blocked.reason), (E.VERDICT_DENY, "PII_BLOCKED"))
        self.assertIn("US_SSN", blocked.message)
        self.assertEqual(repeated_redactions(), repeated_before + 1)
        # Through Envoy, which forwards the prompt as sent: what the project allows goes
        # through; what Decide would redact is refused, as everywhere.
        def body(text):
            return json.dumps({"model": "gpt-4o", "max_tokens": 50,
                               "messages": [{"role": "user", "content": text}]})
        through = self.envoy_check(body(mail), key=key, residency=None)
        self.assertEqual(through.status.code, 0, through)
        refused = self.envoy_check(body("Refund card 4111 1111 1111 1111."), key=key,
                                   residency=None)
        self.assertEqual(refused.denied_response.status.code, 403, refused)
        self.assertIn("CREDIT_CARD", refused.denied_response.body)
        # Another project of the same edge keeps the deployment's policy: placeholders.
        redacted = self.decide(text=mail)
        self.assertEqual(redacted.verdict, E.VERDICT_ALLOW, (redacted.reason, redacted.message))
        self.assertIn(b"<EMAIL_ADDRESS_1>", redacted.messages[1].content)
        # Rules removed (present, none): the next decision follows the deployment's policy.
        admin.UpdateProject(authz_pb2.UpdateProjectRequest(project=project()), metadata=alice,
                            timeout=10)
        after = pt.wait_until(
            lambda: (lambda r: r if b"<EMAIL_ADDRESS_1>" in r.messages[1].content else None)(
                decide(mail)), timeout=10, message="the project's rules gone")
        self.assertEqual(after.verdict, E.VERDICT_ALLOW)
        self.assertNotIn(b"jane.doe@example.com", after.messages[1].content)

        # policyctl sets them, lists them, and refuses a treatment it does not know.
        admin_key = SUITE.new_admin_key("alice")
        # The compliance summary accounts for what went out as sent: the address in the
        # allowed Decide and in Envoy's allowed check.
        summary = run_policyctl("audit", "summary", f"--project={project_id}",
                                "--environment=development", admin_key=admin_key)
        self.assertEqual(summary.returncode, 0, summary.stderr)
        self.assertIn("personal data sent as is (a rule allowed it): EMAIL_ADDRESS 2\n",
                      summary.stdout)
        updated = run_policyctl("projects", "update", project_id,
                                "--pii=EMAIL_ADDRESS=mask,US_SSN=block", admin_key=admin_key)
        self.assertEqual(updated.returncode, 0, updated.stderr)
        self.assertIn("pii EMAIL_ADDRESS=mask,US_SSN=block", updated.stdout)
        listed = run_policyctl("projects", "list", admin_key=admin_key)
        self.assertIn(f"{project_id}  development  HR assistant", listed.stdout)
        self.assertIn("pii EMAIL_ADDRESS=mask,US_SSN=block", listed.stdout)
        masked = pt.wait_until(
            lambda: (lambda r: r if b"jane.doe@example.com" not in r.messages[1].content
                     and b"<EMAIL" not in r.messages[1].content else None)(decide(mail)),
            timeout=10, message="e-mail addresses masked")
        self.assertIn(b"*", masked.messages[1].content)
        # An update that does not name --pii keeps them.
        renamed = run_policyctl("projects", "update", project_id, "--name=HR", admin_key=admin_key)
        self.assertEqual(renamed.returncode, 0, renamed.stderr)
        self.assertIn("pii EMAIL_ADDRESS=mask,US_SSN=block", renamed.stdout)
        bad = run_policyctl("projects", "update", project_id, "--pii=US_SSN=forbid",
                            admin_key=admin_key)
        self.assertEqual(bad.returncode, 2, bad.stderr)
        self.assertIn("'forbid' is not one of redact, mask, replace, hash, placeholder, block, "
                      "allow", bad.stderr)
        cleared = run_policyctl("projects", "update", project_id, "--pii=none",
                                admin_key=admin_key)
        self.assertEqual(cleared.returncode, 0, cleared.stderr)
        self.assertNotIn("pii ", cleared.stdout)

    def new_playground_member(self, prefix):
        """A new member of the playground (10 requests a minute of their own), added by alice,
        and a key of theirs: (id, secret)."""
        member = f"{prefix}-{uuid.uuid4().hex[:6]}"
        SUITE.admin().AddMember(authz_pb2.AddMemberRequest(member=authz_pb2.Member(
            id=member, email=f"{member}@acme.example",
            grants=[authz_pb2.RoleGrant(role="member", project="playground")])),
            metadata=es.bearer(SUITE.new_admin_key("alice")), timeout=10)
        return member, new_key(member, "playground", keys_pb2.ENVIRONMENT_SANDBOX)

    def apac_endpoint_for_this_test(self, id_, cached=False):
        """An APAC endpoint that keeps data (no zero data retention, no private link; a cache
        when `cached`), deleted when the test ends."""
        region = region_pb2_grpc.RegionServiceStub(P["region"].channel)
        endpoint = es.endpoint(id_, R.RESIDENCY_APAC, 1)
        endpoint.capabilities.zero_data_retention = False
        endpoint.capabilities.private_link = False
        endpoint.capabilities.cached = cached
        region.CreateEndpoint(R.CreateEndpointRequest(endpoint=endpoint, actor=es.OPERATOR),
                              timeout=10)
        self.addCleanup(region.DeleteEndpoint,
                        R.DeleteEndpointRequest(id=id_, actor=es.OPERATOR), timeout=10)

    def test_a_project_that_keeps_no_data_is_routed_only_where_nothing_is_kept(self):
        # APAC's one endpoint keeps data (no zero data retention).
        self.apac_endpoint_for_this_test("apac-standard")
        clean = "Summarise our refund policy in three sentences."
        # support-eu-staging's data policy requires zero data retention, even for internal
        # data (and, unlike support-eu's, no residency).
        staging = self.key_for_this_test("bob", "support-eu-staging", keys_pb2.ENVIRONMENT_STAGING)
        zdr = self.decide(key=staging, text=clean, residency=R.RESIDENCY_APAC)
        self.assertEqual((zdr.verdict, zdr.reason), (E.VERDICT_DENY, "NO_COMPLIANT_REGION"))
        self.assertIn("with zero data retention", zdr.message)
        self.assertIn("apac-standard: retention", zdr.message)
        # internal-copilot's does not: its internal data may go there.
        erin = self.key_for_this_test("erin", "internal-copilot", keys_pb2.ENVIRONMENT_DEVELOPMENT)
        routed = self.decide(key=erin, text=clean, residency=R.RESIDENCY_APAC)
        self.assertEqual(routed.verdict, E.VERDICT_ALLOW, routed.reason)
        self.assertEqual(routed.endpoint.id, "apac-standard", routed.message)
        self.assertEqual(routed.headers["x-policy-zero-data-retention"], "false")

    def test_a_projects_data_class_decides_where_its_prompts_may_go(self):
        """org.yaml: the playground's prompts are public (a cache may answer them), support-eu's
        personal data whether pii finds any or not; what pii finds raises a prompt's class."""
        self.apac_endpoint_for_this_test("apac-cache", cached=True)
        member, playground = self.new_playground_member("pia")
        clean = "Explain what a haiku is."

        def decide(key, text, request_id, model="gpt-4o-mini"):
            return self.decide(key=key, text=text, model=model, residency=R.RESIDENCY_APAC,
                               tokens=10, request_id=request_id)

        public = decide(playground, clean, f"public-{member}")
        self.assertEqual(public.verdict, E.VERDICT_ALLOW, public.reason + public.message)
        self.assertEqual((public.endpoint.id, public.data_class),
                         ("apac-cache", pii_pb2.DATA_CLASS_PUBLIC))
        self.assertEqual(public.headers["x-policy-zero-data-retention"], "false")
        entry = self.ledger_entry(f"public-{member}", "playground", "sandbox")
        self.assertEqual(entry.metadata["data_class"], "public")
        # An e-mail address makes the playground's prompt personal data: never to a cache.
        personal = decide(playground, "Write to ops@acme.example about it.", f"pii-{member}")
        self.assertEqual((personal.verdict, personal.reason), (E.VERDICT_DENY,
                                                               "NO_COMPLIANT_REGION"))
        self.assertEqual(personal.data_class, pii_pb2.DATA_CLASS_PII)
        self.assertIn("apac-cache: classification", personal.message)
        # internal-copilot states no class: internal, never to a cache either.
        erin = self.key_for_this_test("erin", "internal-copilot", keys_pb2.ENVIRONMENT_DEVELOPMENT)
        internal = decide(erin, clean, f"internal-{member}", model="gpt-4o")
        self.assertEqual((internal.verdict, internal.reason), (E.VERDICT_DENY,
                                                               "NO_COMPLIANT_REGION"))
        self.assertEqual(internal.data_class, pii_pb2.DATA_CLASS_INTERNAL)
        # support-eu's clean prompt is personal data all the same.
        support = self.decide(text=clean, request_id=f"support-{member}")
        self.assertEqual(support.verdict, E.VERDICT_ALLOW, support.reason)
        self.assertEqual(support.data_class, pii_pb2.DATA_CLASS_PII)
        self.assertEqual(self.ledger_entry(f"support-{member}").metadata["data_class"], "pii")

    def test_a_model_off_the_allowlist_is_a_recorded_deny(self):
        request_id = f"e2e-{uuid.uuid4().hex[:12]}"
        r = self.decide(model="o3-mini", request_id=request_id)
        self.assertEqual(r.verdict, E.VERDICT_DENY)
        self.assertEqual(r.reason, "MODEL_NOT_ALLOWED")
        self.assertEqual(len(r.messages), 0)
        self.assertEqual(self.ledger_entry(request_id).action, audit_pb2.ACTION_DECISION_DENY)

    def test_an_allowed_model_no_endpoint_serves_is_a_recorded_deny(self):
        # internal-copilot allows o3-mini; no endpoint of the registry serves it.
        erin = self.key_for_this_test("erin", "internal-copilot", keys_pb2.ENVIRONMENT_DEVELOPMENT)
        request_id = f"e2e-{uuid.uuid4().hex[:12]}"
        r = self.decide(key=erin, model="o3-mini", request_id=request_id,
                        text="Summarise our refund policy.")
        self.assertEqual((r.verdict, r.reason), (E.VERDICT_DENY, "NO_COMPLIANT_REGION"))
        self.assertIn("no endpoint serves model 'o3-mini'", r.message)
        entry = self.ledger_entry(request_id, project="internal-copilot",
                                  environment="development")
        self.assertEqual(entry.action, audit_pb2.ACTION_DECISION_DENY)
        self.assertEqual(entry.metadata["reason"], "NO_COMPLIANT_REGION")
        # Through Envoy: a 403 naming the reason, not a 400.
        body = ('{"model": "o3-mini", "max_tokens": 50, "messages": '
                '[{"role": "user", "content": "Summarise our refund policy."}]}')
        denied = self.envoy_check(body, key=erin)
        self.assertEqual(denied.denied_response.status.code, 403, denied)
        self.assertIn("NO_COMPLIANT_REGION", denied.denied_response.body)

    def test_a_secret_in_the_prompt_is_blocked(self):
        r = self.decide(text="Why does boto reject AKIAIOSFODNN7EXAMPLE in us-east-1?")
        self.assertEqual(r.verdict, E.VERDICT_DENY)
        self.assertEqual(r.reason, "PII_BLOCKED")
        self.assertIn("AWS_ACCESS_KEY", r.message)

    def test_an_entity_type_pii_does_not_detect_keeps_the_edge_unready_and_not_the_callers(self):
        """A misspelt --blocked_entity_types: with all five services up, the edge stays
        NOT_SERVING, says why once and exports it, and a Decide sent to it anyway is
        UNAVAILABLE naming the setting, never INVALID_ARGUMENT about a field callers never
        send."""
        flags = {"keys_target": P["keys"].address, "authz_target": P["authz"].address,
                 "pii_target": f"127.0.0.1:{SUITE.pii_port}",
                 "region_target": P["region"].address, "audit_target": P["audit"].address,
                 "blocked_entity_types": "PRIVATE_KEY,AWS_ACCESS_KEYS",
                 "dependency_check_interval": "100ms",
                 # It never becomes ready, so it writes no ready file naming its ports.
                 "listen": f"127.0.0.1:{pt.stable_port()}",
                 "metrics_listen": f"127.0.0.1:{pt.stable_port()}"}
        typo = pt.ServiceProcess(pt.service_binary("edge"), flags=flags, name="edge-typo")
        typo.start(wait_ready=False)
        try:
            def metric(name, **labels):
                return pt.metric_value(pt.scrape_metrics(typo.metrics_port), name, **labels)

            pt.wait_until(lambda: metric("policy_edge_config_valid") == 0, timeout=10,
                          message="policy_edge_config_valid 0")
            for service in ("keys", "authz", "pii", "region", "audit"):
                self.assertEqual(metric("policy_edge_dependency_up", dependency=service), 1, service)
            self.assertEqual(pt.health_status(typo.channel), "NOT_SERVING")

            with self.assertRaises(grpc.RpcError) as raised:
                es.edge_pb2_grpc.EdgeServiceStub(typo.channel).Decide(
                    es.decide_request(self.bob), timeout=10)
            self.assertEqual(raised.exception.code(), C.UNAVAILABLE, raised.exception.details())
            details = raised.exception.details()
            self.assertIn("the edge's redaction policy is refused by the pii service", details)
            self.assertIn("blocked_entity_types", details)
            self.assertIn("'AWS_ACCESS_KEYS'", details)

            # Checked every 100 ms, said once: the log line names the type and the setting.
            time.sleep(0.5)
            said = [line for line in typo.log_text().splitlines()
                    if "AWS_ACCESS_KEYS" in line and "not ready" in line]
            self.assertEqual(len(said), 1, typo.log_tail())
            self.assertIn("blocked_entity_types", said[0])
            self.assertEqual(pt.health_status(typo.channel), "NOT_SERVING")
        finally:
            typo.cleanup()

    def envoy_check(self, body, key=None, residency="eu", request_id=None, no_key=False,
                    path="/v1/chat/completions", method="POST"):
        headers = {"authorization": f"Bearer {key or self.bob}", "content-type": "application/json",
                   "x-request-id": request_id or str(uuid.uuid4())}
        if no_key:
            del headers["authorization"]
        if residency:
            headers["x-policy-residency"] = residency
        attributes = X.AttributeContext(
            source=X.AttributeContext.Peer(address={"socket_address": {
                "address": "10.20.1.7", "port_value": 51234}}),
            request=X.AttributeContext.Request(http=X.AttributeContext.HttpRequest(
                method=method, path=path, host="llm.acme.example",
                headers=headers, body=body)))
        return external_auth_pb2_grpc.AuthorizationStub(P["edge"].channel).Check(
            X.CheckRequest(attributes=attributes), timeout=10)

    def test_the_model_api_a_call_names_is_what_its_key_and_authz_decide_on(self):
        """Decide's api and Envoy's request path name the model API: a key scoped to embeddings
        decides embeddings calls and no chat; the ledger records which; a call of no model API
        is the caller's mistake."""
        embeddings = SUITE.new_key("bob", "support-eu", scopes=("embeddings",))
        text = "Embed our refund policy."
        allowed = self.decide(key=embeddings, text=text, model="gpt-4o", api="embeddings",
                              request_id=f"embed-{uuid.uuid4().hex[:8]}")
        self.assertEqual(allowed.verdict, E.VERDICT_ALLOW, allowed.message)
        self.assertEqual(self.ledger_entry(allowed.request_id).metadata["api"], "embeddings")
        chat = self.decide(key=embeddings, text=text)
        self.assertEqual((chat.verdict, chat.reason), (E.VERDICT_DENY, "KEY_SCOPE"))
        self.assertEqual(chat.message, "the key does not grant chat.completions")
        with self.assertRaises(grpc.RpcError) as raised:
            self.decide(key=embeddings, text=text, api="files.read")
        self.assertEqual(raised.exception.code(), C.INVALID_ARGUMENT)
        self.assertIn("api: 'files.read' is not a model API", raised.exception.details())
        # Through Envoy, the path names it; the client's response names its decision.
        body = '{"model": "gpt-4o", "input": ["Embed our refund policy."]}'
        ok = self.envoy_check(body, key=embeddings, path="/v1/embeddings")
        self.assertEqual(ok.status.code, 0, ok)
        to_client = {h.header.key: h.header.value for h in ok.ok_response.response_headers_to_add}
        self.assertEqual(sorted(to_client), ["x-policy-audit-id", "x-policy-request-id"])
        self.assertEqual(self.ledger_entry(to_client["x-policy-request-id"]).metadata["api"],
                         "embeddings")
        refused = self.envoy_check(body, key=embeddings)  # /v1/chat/completions
        self.assertEqual(refused.denied_response.status.code, 403)
        self.assertIn("the key does not grant chat.completions", refused.denied_response.body)
        listing = self.envoy_check("", key=embeddings, path="/v1/models", method="GET")
        self.assertEqual(listing.denied_response.status.code, 400)
        self.assertIn("model calls are POST", listing.denied_response.body)
        # policyctl decide names the API too.
        run = run_policyctl("decide", "--model=gpt-4o", "--api=embeddings", f"--message={text}",
                            "--residency=eu", "--output=json", api_key=embeddings)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(json.loads(run.stdout)["verdict"], "VERDICT_ALLOW")

    def test_envoy_ext_authz_answers_checks_written_with_envoys_own_messages(self):
        """A check as Envoy writes it with upstream's messages (the body packed as bytes, TLS,
        metadata and route fields the subset leaves out; headers in `headers` or, with
        encode_raw_headers, in `header_map`), answered as Envoy reads it."""
        up = envoy_upstream.Messages()
        clean = (b'{"model": "gpt-4o", "max_tokens": 50, "messages": '
                 b'[{"role": "user", "content": "Summarise our refund policy."}]}')

        def check(body, raw_headers=False):
            request = up["CheckRequest"]()
            a = request.attributes
            a.source.address.socket_address.address = "10.20.1.7"
            a.source.address.socket_address.port_value = 51234
            a.destination.address.socket_address.address = "10.0.0.5"
            a.destination.address.socket_address.port_value = 443
            a.request.time.GetCurrentTime()
            http = a.request.http
            http.id, http.method, http.path = "17", "POST", "/v1/chat/completions"
            http.host, http.scheme, http.protocol, http.size = ("llm.acme.example", "https",
                                                                "HTTP/1.1", len(body))
            http.raw_body = body
            headers = {":authority": "llm.acme.example", ":method": "POST",
                       ":path": "/v1/chat/completions", "authorization": f"Bearer {self.bob}",
                       "content-type": "application/json", "x-policy-residency": "eu",
                       "x-envoy-auth-partial-body": "false"}
            for key, value in headers.items():
                if raw_headers:
                    entry = http.header_map.headers.add()
                    entry.key, entry.raw_value = key, value.encode()
                else:
                    http.headers[key] = value
            a.context_extensions["route"] = "llm"
            a.metadata_context.filter_metadata["envoy.filters.http.jwt_authn"].update(
                {"sub": "svc"})
            a.tls_session.sni = "llm.acme.example"
            return up.check(P["edge"].channel, request)

        overwrite = up["envoy.config.core.v3.HeaderValueOption"].OVERWRITE_IF_EXISTS_OR_ADD
        for raw_headers in (False, True):
            with self.subTest(raw_headers=raw_headers):
                ok = check(clean, raw_headers)
                self.assertEqual(ok.status.code, 0, ok)
                self.assertTrue(ok.HasField("ok_response"), ok)
                upstream = {h.header.key: h for h in ok.ok_response.headers}
                self.assertIn(upstream["x-policy-endpoint"].header.value,
                              ("westeurope", "swedencentral"))
                for option in ok.ok_response.headers:
                    # Envoy then overwrites a client's own x-policy-* values, in every release.
                    self.assertEqual(option.append_action, overwrite, option)
                    self.assertFalse(option.HasField("append"), option)
                self.assertTrue({"authorization", "x-api-key", "api-key"}.issubset(
                    ok.ok_response.headers_to_remove))
                to_client = {h.header.key for h in ok.ok_response.response_headers_to_add}
                self.assertEqual(to_client, {"x-policy-audit-id", "x-policy-request-id"})
                self.assertEqual(
                    self.ledger_entry(upstream["x-policy-request-id"].header.value).action,
                    audit_pb2.ACTION_DECISION_ALLOW)

        denied = check(clean.replace(b"our refund policy", b"the ticket of jane.doe@example.com"))
        self.assertEqual(denied.status.code, C.PERMISSION_DENIED.value[0])
        self.assertEqual(denied.denied_response.status.code, 403)
        self.assertEqual(json.loads(denied.denied_response.body)["error"]["code"], "PII_BLOCKED")
        self.assertIn("content-type", {h.header.key for h in denied.denied_response.headers})
        # Bytes that are not UTF-8, which pack_as_bytes forwards as they are: the caller's 400.
        bad = check(clean.replace(b"Summarise", b"Summ\xffarise"))
        self.assertEqual(bad.denied_response.status.code, 400, bad)

    def test_envoy_ext_authz_looks_at_the_key_before_the_body(self):
        # Neither a missing key nor one keys does not verify gets the body read: both are 401,
        # however malformed or large the body, and without its parsing's cost.
        for body in ("not json", "{}", "[" * 40 + "]" * 40, "{" + '"a": {},' * 150000 + "}"):
            with self.subTest(body=body[:20]):
                missing = self.envoy_check(body, no_key=True)
                self.assertEqual(missing.denied_response.status.code, 401, missing)
                self.assertIn("no API key", missing.denied_response.body)
                forged = self.envoy_check(body, key="psk_proj_forged")
                self.assertEqual(forged.denied_response.status.code, 401, forged)
                self.assertIn("API key is not valid", forged.denied_response.body)
        # A key that verifies has its body read: a bad body is then the caller's 400.
        bad = self.envoy_check("not json")
        self.assertEqual(bad.denied_response.status.code, 400, bad)
        self.assertIn("not a JSON object", bad.denied_response.body)

    def test_envoy_ext_authz_allows_with_headers_and_denies_with_http_statuses(self):
        clean = ('{"model": "gpt-4o", "max_tokens": 50, "messages": '
                 '[{"role": "user", "content": "Summarise our refund policy."}]}')
        ok = self.envoy_check(clean)
        self.assertEqual(ok.status.code, 0, ok)
        headers = {h.header.key: h.header.value for h in ok.ok_response.headers}
        self.assertIn(headers["x-policy-endpoint"], ("westeurope", "swedencentral"))
        self.assertTrue(headers["x-policy-audit-id"].startswith("support-eu/production/"))
        self.assertIn("authorization", ok.ok_response.headers_to_remove)
        self.assertEqual(self.ledger_entry(headers["x-policy-request-id"]).action,
                         audit_pb2.ACTION_DECISION_ALLOW)

        # Envoy cannot forward a redacted body: personal data refuses the request.
        pii = clean.replace("our refund policy", "the ticket of jane.doe@example.com")
        denied = self.envoy_check(pii)
        self.assertEqual(denied.denied_response.status.code, 403)
        self.assertIn("PII_BLOCKED", denied.denied_response.body)
        self.assertIn("EMAIL_ADDRESS", denied.denied_response.body)
        self.assertEqual(self.envoy_check(clean, key="psk_proj_forged").denied_response.status.code,
                         401)
        bad = self.envoy_check('{"model": "gpt-4o"}')
        self.assertEqual(bad.denied_response.status.code, 400)
        self.assertIn("messages", bad.denied_response.body)
        off_list = self.envoy_check(clean.replace("gpt-4o", "o3-mini"))
        self.assertEqual(off_list.denied_response.status.code, 403)
        self.assertIn("MODEL_NOT_ALLOWED", off_list.denied_response.body)
        # Personal data anywhere in the body, not only in the messages' contents, is seen.
        tool = clean.replace('"messages"', '"tools": [{"type": "function", "function": '
                             '{"description": "Escalate to jane.doe@example.com"}}], "messages"')
        denied = self.envoy_check(tool)
        self.assertEqual(denied.denied_response.status.code, 403, denied)
        self.assertIn("EMAIL_ADDRESS", denied.denied_response.body)
        # A header's bad value is named, not echoed whole.
        huge = self.envoy_check(clean, residency="x" * 100000)
        self.assertEqual(huge.denied_response.status.code, 400)
        self.assertLess(len(huge.denied_response.body), 1000)
        # Nesting a small body deep is refused at once, not parsed for minutes.
        deep = clean.replace('"messages"', '"x": ' + "[" * 100000 + "]" * 100000 + ', "messages"')
        started = time.monotonic()
        self.assertEqual(self.envoy_check(deep).denied_response.status.code, 400)
        self.assertLess(time.monotonic() - started, 2)
        # Each check is a call of its own, charged and recorded, whatever x-request-id the
        # client repeats (a repeat must not pass as a free retry of the first).
        request_id = str(uuid.uuid4())
        first = self.envoy_check(clean, request_id=request_id)
        second = self.envoy_check(clean, request_id=request_id)
        audit_ids = [{h.header.key: h.header.value for h in c.ok_response.headers}
                     ["x-policy-audit-id"] for c in (first, second)]
        self.assertNotEqual(audit_ids[0], audit_ids[1])

    def test_callers_without_a_valid_key_do_not_crowd_out_an_owners_admin_calls(self):
        admin = SUITE.admin()
        alice = es.bearer(SUITE.new_admin_key("alice"))
        forged = es.bearer("psk_admin_" + "x" * 40)
        flood, owners = [], []
        try:
            # Acceptances of invitations that do not exist (each one makes authz take the
            # organisation's lock), calls with a forged key and with none, 600 in flight, and
            # among them 20 calls of an owner.
            for i in range(200):
                flood.append(admin.AcceptInvitation.future(authz_pb2.AcceptInvitationRequest(
                    id=uuid.uuid4().hex, email=f"x{i}@acme.example"), timeout=20))
                flood.append(admin.ListMembers.future(admin_pb2.ListMembersRequest(),
                                                      metadata=forged, timeout=20))
                flood.append(admin.ListMembers.future(admin_pb2.ListMembersRequest(),
                                                      timeout=20))
                if i % 10 == 9:
                    owners.append(admin.ListMembers.future(admin_pb2.ListMembersRequest(),
                                                           metadata=alice, timeout=20))
            failed = []
            for call in owners:
                try:
                    call.result()
                except grpc.RpcError as e:
                    failed.append((e.code(), e.details()))
            self.assertEqual(failed, [])
        finally:
            codes = {}
            for call in flood:
                try:
                    call.result()
                    code = C.OK
                except grpc.RpcError as e:
                    code = e.code()
                codes[code] = codes.get(code, 0) + 1
        # The keyless and forged calls were refused for their key, never queued; acceptances
        # beyond their own bound were told to retry.
        self.assertEqual(codes.get(C.UNAUTHENTICATED), 400, codes)
        self.assertEqual(set(codes) - {C.UNAUTHENTICATED, C.NOT_FOUND, C.RESOURCE_EXHAUSTED},
                         set(), codes)

    def test_admin_api_needs_an_admin_key_and_a_role(self):
        admin = SUITE.admin()
        query = audit_pb2.QueryEntriesRequest(
            ledger=audit_pb2.LedgerRef(project="support-eu", environment="production"))
        err = pt.call_error(admin.QueryAudit, query, timeout=10)
        self.assertEqual(err.code(), C.UNAUTHENTICATED)
        err = pt.call_error(admin.QueryAudit, query, metadata=es.bearer(self.bob), timeout=10)
        self.assertEqual(err.code(), C.PERMISSION_DENIED)
        self.assertIn("admin key", err.details())
        err = pt.call_error(admin.QueryAudit, query, metadata=es.bearer("psk_admin_forged"),
                            timeout=10)
        self.assertEqual(err.code(), C.UNAUTHENTICATED)
        # carol is a reader and a member, not an administrator.
        carol = SUITE.new_admin_key("carol")
        err = pt.call_error(admin.QueryAudit, query, metadata=es.bearer(carol), timeout=10)
        self.assertEqual(err.code(), C.PERMISSION_DENIED)
        self.assertIn("audit.read", err.details())
        err = pt.call_error(admin.CreateKey, keys_pb2.CreateKeyRequest(
            request_id=uuid.uuid4().hex, kind=keys_pb2.KEY_KIND_PROJECT,
            owner=keys_pb2.Principal(type=keys_pb2.PRINCIPAL_TYPE_MEMBER, id="carol"),
            project="support-eu", environment=keys_pb2.ENVIRONMENT_PRODUCTION,
            scopes=["chat.completions"]), metadata=es.bearer(carol), timeout=10)
        self.assertEqual(err.code(), C.PERMISSION_DENIED)
        self.assertIn("keys.manage", err.details())

        alice = SUITE.new_admin_key("alice")
        # Two keys in one call are ambiguous, whichever comes first.
        for pair in ((alice, carol), (carol, alice), (alice, alice)):
            err = pt.call_error(admin.QueryAudit, query,
                                metadata=es.bearer(pair[0]) + es.bearer(pair[1]), timeout=10)
            self.assertEqual(err.code(), C.UNAUTHENTICATED)
            self.assertEqual(err.details(), "more than one authorization entry in the metadata: "
                                            "send one admin key")
        page = admin.QueryAudit(query, metadata=es.bearer(alice), timeout=10)
        self.assertGreater(len(page.entries), 0)
        report = admin.VerifyLedger(audit_pb2.VerifyLedgerRequest(ledger=query.ledger),
                                    metadata=es.bearer(alice), timeout=30).report
        self.assertTrue(report.valid)

    def test_offboarding_revokes_every_key_and_records_both_once(self):
        admin = SUITE.admin()
        alice = es.bearer(SUITE.new_admin_key("alice"))
        keys = []
        for _ in range(2):
            created = admin.CreateKey(keys_pb2.CreateKeyRequest(
                request_id=uuid.uuid4().hex, kind=keys_pb2.KEY_KIND_PROJECT,
                owner=keys_pb2.Principal(type=keys_pb2.PRINCIPAL_TYPE_MEMBER, id="erin"),
                project="internal-copilot", environment=keys_pb2.ENVIRONMENT_DEVELOPMENT,
                scopes=["chat.completions"]), metadata=alice, timeout=10)
            keys.append(created)
        decided = self.decide(key=keys[0].secret, residency=R.RESIDENCY_UNSPECIFIED,
                              text="Explain this stack trace.")
        self.assertEqual(decided.verdict, E.VERDICT_ALLOW, decided.reason)

        request_id = f"offboard-erin-{uuid.uuid4().hex[:8]}"
        removed = admin.RemoveMember(es.admin_pb2.RemoveMemberRequest(
            member_id="erin", request_id=request_id), metadata=alice, timeout=10)
        self.assertTrue(removed.member.HasField("removed_at"))
        self.assertEqual({k.key_id for k in removed.revoked_keys},
                         {k.key.key_id for k in keys})
        self.assertTrue(removed.audit_id.startswith("//"), removed.audit_id)
        for k in keys:
            self.assertEqual(pt.call_code(self.decide, key=k.secret), C.UNAUTHENTICATED)

        # A retry repeats nothing: the same keys, the same ledger entry.
        again = admin.RemoveMember(es.admin_pb2.RemoveMemberRequest(
            member_id="erin", request_id=request_id), metadata=alice, timeout=10)
        self.assertEqual(again.audit_id, removed.audit_id)
        self.assertEqual({k.key_id for k in again.revoked_keys},
                         {k.key.key_id for k in keys})
        # Another admin removing them again changes nothing and is answered with the removal's
        # entry, which stays alice's.
        dan = es.bearer(SUITE.new_admin_key("dan"))
        by_dan = admin.RemoveMember(es.admin_pb2.RemoveMemberRequest(
            member_id="erin", request_id=f"dan-{request_id}"), metadata=dan, timeout=10)
        self.assertEqual(by_dan.audit_id, removed.audit_id)
        self.assertEqual(list(by_dan.revoked_keys), [])

        # Both are in the ledger: the removal in the organisation's, once (authz's record and
        # the edge's are one), each revocation (recorded by keys) in the project's.
        org = admin.QueryAudit(audit_pb2.QueryEntriesRequest(
            ledger=audit_pb2.LedgerRef(), action=audit_pb2.ACTION_MEMBER_REMOVED),
            metadata=alice, timeout=10)
        removals = [e for e in org.entries if e.subject == "erin"]
        self.assertEqual(len(removals), 1)
        # Named by an id authz drew for the removal, never by a digest of who was removed, so
        # that once erin is forgotten nothing in the ledger can be tested against her id.
        self.assertRegex(removals[0].request_id, r"^authz:member-removed:[0-9a-f]{32}$")
        self.assertNotIn(digest_of("erin"), removals[0].request_id)
        self.assertEqual(f"//{removals[0].index}", removed.audit_id)
        self.assertEqual(removals[0].subject, "erin")
        self.assertEqual(removals[0].actor, "alice")

        def revocations():
            page = admin.QueryAudit(audit_pb2.QueryEntriesRequest(
                ledger=audit_pb2.LedgerRef(project="internal-copilot", environment="development"),
                action=audit_pb2.ACTION_KEY_REVOKED), metadata=alice, timeout=10)
            return {e.metadata.get("key_id", "") for e in page.entries}
        pt.wait_until(lambda: {k.key.key_id for k in keys} <= revocations(), timeout=10,
                      message="keys recorded each revocation in the project's ledger")
        # The acting admin is named as the actor (sealed, shredded when alice is forgotten),
        # never in plain text: no metadata value names her.
        page = admin.QueryAudit(audit_pb2.QueryEntriesRequest(
            ledger=audit_pb2.LedgerRef(project="internal-copilot", environment="development"),
            action=audit_pb2.ACTION_KEY_REVOKED), metadata=alice, timeout=10)
        mine = [e for e in page.entries
                if e.metadata.get("key_id") in {k.key.key_id for k in keys}]
        self.assertEqual(len(mine), len(keys))
        for e in mine:
            self.assertEqual(e.actor, "alice")
            self.assertEqual(e.subject, "erin")
            self.assertEqual([v for v in e.metadata.values() if "alice" in v or "erin" in v],
                             [], dict(e.metadata))

    def test_one_request_id_for_two_removals_revokes_the_keys_of_each(self):
        admin = SUITE.admin()
        alice_key = SUITE.new_admin_key("alice")
        alice = es.bearer(alice_key)
        suffix = uuid.uuid4().hex[:6]
        members = [f"rq1-{suffix}", f"rq2-{suffix}", f"rq3-{suffix}"]
        keys = {}
        for member in members:
            admin.AddMember(authz_pb2.AddMemberRequest(member=authz_pb2.Member(
                id=member, email=f"{member}@acme.example",
                grants=[authz_pb2.RoleGrant(role="member", project="internal-copilot")])),
                metadata=alice, timeout=10)
            keys[member] = admin.CreateKey(keys_pb2.CreateKeyRequest(
                request_id=uuid.uuid4().hex, kind=keys_pb2.KEY_KIND_PROJECT,
                owner=keys_pb2.Principal(type=keys_pb2.PRINCIPAL_TYPE_MEMBER, id=member),
                project="internal-copilot", environment=keys_pb2.ENVIRONMENT_DEVELOPMENT,
                scopes=["chat.completions"]), metadata=alice, timeout=10).key.key_id
        request_id = f"offboard-{suffix}"
        # alice sends one id for two members; through policyctl too.
        first = admin.RemoveMember(es.admin_pb2.RemoveMemberRequest(
            member_id=members[0], request_id=request_id), metadata=alice, timeout=10)
        self.assertEqual([k.key_id for k in first.revoked_keys], [keys[members[0]]])
        second = run_policyctl("members", "remove", members[1], f"--request_id={request_id}",
                               "--output=json", admin_key=alice_key)
        self.assertEqual(second.returncode, 0, second.stderr)
        self.assertEqual([k["key_id"] for k in json.loads(second.stdout)["revoked_keys"]],
                         [keys[members[1]]])
        # Another admin picking the same id revokes the keys of the member they remove.
        dan = es.bearer(SUITE.new_admin_key("dan"))
        third = admin.RemoveMember(es.admin_pb2.RemoveMemberRequest(
            member_id=members[2], request_id=request_id), metadata=dan, timeout=10)
        self.assertEqual([k.key_id for k in third.revoked_keys], [keys[members[2]]])
        for member in members:
            listed = admin.ListKeys(keys_pb2.ListKeysRequest(owner=keys_pb2.Principal(
                type=keys_pb2.PRINCIPAL_TYPE_MEMBER, id=member)), metadata=alice, timeout=10)
            self.assertEqual({(k.key_id, k.state) for k in listed.keys},
                             {(keys[member], keys_pb2.KEY_STATE_REVOKED)})
        # alice's retry of her first removal repeats it.
        again = admin.RemoveMember(es.admin_pb2.RemoveMemberRequest(
            member_id=members[0], request_id=request_id), metadata=alice, timeout=10)
        self.assertEqual([k.key_id for k in again.revoked_keys], [keys[members[0]]])

    def test_policyctl_names_the_request_id_it_made_up_when_a_removal_is_cut_short(self):
        admin = SUITE.admin()
        alice_key = SUITE.new_admin_key("alice")
        alice = es.bearer(alice_key)
        member = f"cut-{uuid.uuid4().hex[:6]}"
        admin.AddMember(authz_pb2.AddMemberRequest(member=authz_pb2.Member(
            id=member, email=f"{member}@acme.example",
            grants=[authz_pb2.RoleGrant(role="member", project="internal-copilot")])),
            metadata=alice, timeout=10)
        key_id = admin.CreateKey(keys_pb2.CreateKeyRequest(
            request_id=uuid.uuid4().hex, kind=keys_pb2.KEY_KIND_PROJECT,
            owner=keys_pb2.Principal(type=keys_pb2.PRINCIPAL_TYPE_MEMBER, id=member),
            project="internal-copilot", environment=keys_pb2.ENVIRONMENT_DEVELOPMENT,
            scopes=["chat.completions"]), metadata=alice, timeout=10).key.key_id
        # The removal commits in authz, then cannot revoke the keys: their table is locked
        # past the call's deadline.
        locker = subprocess.Popen(
            [pt.PSQL, SUITE.url, "-c", "BEGIN; LOCK TABLE keys.api_keys IN ACCESS EXCLUSIVE "
             "MODE; SELECT pg_sleep(5); COMMIT;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(locker.kill)
        pt.wait_until(lambda: pt.psql(SUITE.url, "SELECT count(*) FROM pg_locks WHERE "
                                      "mode = 'AccessExclusiveLock' AND relation = "
                                      "'keys.api_keys'::regclass").strip() != "0",
                      timeout=10, message="the lock on keys.api_keys")
        cut_short = run_policyctl("members", "remove", member, "--timeout=2s",
                                  admin_key=alice_key)
        self.assertEqual(cut_short.returncode, 4, cut_short.stderr)  # Failed for now.
        advice = [line for line in cut_short.stderr.splitlines() if "retry with" in line]
        self.assertEqual(len(advice), 1, cut_short.stderr)
        request_id = advice[0].rsplit("--request_id=", 1)[1]
        self.assertRegex(request_id, r"^policyctl-\d+-[0-9a-f]{8}$", advice[0])
        locker.wait(timeout=15)
        # The retry the advice names finishes the removal: the member's key is revoked.
        retried = run_policyctl("members", "remove", member, f"--request_id={request_id}",
                                "--output=json", admin_key=alice_key)
        self.assertEqual(retried.returncode, 0, retried.stderr)
        self.assertEqual([k["key_id"] for k in json.loads(retried.stdout)["revoked_keys"]],
                         [key_id])

    def test_an_admin_change_made_while_audit_is_stopped_reaches_the_ledger(self):
        admin = SUITE.admin()
        alice_key = SUITE.new_admin_key("alice")
        newcomer = f"quinn-{uuid.uuid4().hex[:6]}"

        def pending():
            return pt.metric_value(pt.scrape_metrics(P["authz"].metrics_port),
                                   "policy_authz_audit_events_pending")

        decided = self.decide()
        self.assertEqual(decided.verdict, E.VERDICT_ALLOW, decided.message)
        logged = len(P["edge"].log_text().splitlines())
        # audit stops answering (SIGSTOP): the change does not wait for the ledger, its record
        # waits in authz's outbox, committed with the change.
        P["audit"].stop()
        try:
            # A usage report, which must reach the ledger, fails, and the edge says so.
            err = pt.call_error(edge().ReportUsage, E.ReportUsageRequest(
                api_key=self.bob.encode(), request_id=decided.request_id, model="gpt-4o",
                actual_tokens=120, latency={"nanos": 200_000_000},
                outcome=E.UPSTREAM_OUTCOME_SUCCESS, http_status=200), timeout=3)
            self.assertIn(err.code(), (C.UNAVAILABLE, C.DEADLINE_EXCEEDED), err.details())

            def usage_failures():
                return [json.loads(line) for line in P["edge"].log_text().splitlines()[logged:]
                        if "a usage report failed" in line]
            pt.wait_until(lambda: usage_failures(), timeout=10,
                          message="the edge logs the failed usage report")
            self.assertEqual(usage_failures()[0]["request_id"], decided.request_id)
            added = admin.AddMember(authz_pb2.AddMemberRequest(member=authz_pb2.Member(
                id=newcomer, email=f"{newcomer}@acme.example",
                grants=[authz_pb2.RoleGrant(role="reader", project="support-eu")])),
                metadata=es.bearer(alice_key), timeout=10)
            self.assertEqual(added.id, newcomer)
            pt.wait_until(lambda: pending() >= 1, timeout=10,
                          message="policy_authz_audit_events_pending at least 1")
        finally:
            P["audit"].resume()
        # Its readiness lapsed while it stood still; callers route to it once it is back.
        pt.wait_until(lambda: pt.health_status(P["audit"].channel) == "SERVING", timeout=10,
                      message="audit SERVING again", ignore=(grpc.RpcError,))
        # The edge's channel learns it from a health watch of its own, a moment later (on a
        # loaded machine, seconds): later tests would otherwise find audit unreachable.
        pt.wait_until(lambda: run_policyctl("audit", "export", "--project=", "--environment=",
                                            admin_key=alice_key).returncode == 0,
                      timeout=20, message="the edge reaches audit again")
        # And judges it healthy again (logged now, not in a later test's window).
        pt.wait_until(lambda: pt.metric_value(pt.scrape_metrics(P["edge"].metrics_port),
                                              "policy_edge_dependency_up", dependency="audit") == 1,
                      timeout=20, message="the edge judges audit healthy again")
        entries = org_ledger_once(alice_key, "ACTION_MEMBER_ADDED", roles="reader@support-eu")
        added = [e for e in recorded(entries, "ACTION_MEMBER_ADDED") if e.get("subject") == newcomer]
        self.assertEqual(len(added), 1)
        self.assertEqual(added[0]["actor"], "alice")
        pt.wait_until(lambda: pending() == 0, timeout=10,
                      message="authz's outbox drained once audit answers")

    def test_key_rotation_with_overlap_through_the_admin_api(self):
        admin = SUITE.admin()
        alice = es.bearer(SUITE.new_admin_key("alice"))
        old = self.bobs_support_key(admin, alice)
        rotated = admin.RotateKey(keys_pb2.RotateKeyRequest(
            request_id=uuid.uuid4().hex, key_id=old.key.key_id, overlap={"seconds": 3600}),
            metadata=alice, timeout=10)
        # During the overlap both keys decide.
        for secret in (old.secret, rotated.secret):
            self.assertEqual(self.decide(key=secret).verdict, E.VERDICT_ALLOW)
        admin.RevokeKey(keys_pb2.RevokeKeyRequest(key_id=old.key.key_id, reason="rotated"),
                        metadata=alice, timeout=10)
        self.assertEqual(pt.call_code(self.decide, key=old.secret), C.UNAUTHENTICATED)
        self.assertEqual(self.decide(key=rotated.secret).verdict, E.VERDICT_ALLOW)
        listed = admin.ListKeys(keys_pb2.ListKeysRequest(project="support-eu"),
                                metadata=alice, timeout=10)
        states = {k.key_id: k.state for k in listed.keys}
        self.assertEqual(states[old.key.key_id], keys_pb2.KEY_STATE_REVOKED)
        self.assertEqual(states[rotated.new_key.key_id], keys_pb2.KEY_STATE_ACTIVE)

    def test_the_ledger_names_the_administrator_who_changed_a_key(self):
        admin = SUITE.admin()
        alice = es.bearer(SUITE.new_admin_key("alice"))
        suffix = uuid.uuid4().hex[:6]
        adam, account, member = f"adam-{suffix}", f"sa-actor-{suffix}", f"leaver-{suffix}"
        admin.AddMember(authz_pb2.AddMemberRequest(member=authz_pb2.Member(
            id=adam, email=f"{adam}@acme.example", grants=[authz_pb2.RoleGrant(role="admin")])),
            metadata=alice, timeout=10)
        by_adam = es.bearer(SUITE.new_admin_key(adam))
        admin.CreateServiceAccount(authz_pb2.CreateServiceAccountRequest(
            service_account=authz_pb2.ServiceAccount(
                id=account, project="internal-copilot", environment="development",
                permissions=["chat.completions"], ip_allowlist=["10.0.0.0/8"])),
            metadata=alice, timeout=10)
        admin.AddMember(authz_pb2.AddMemberRequest(member=authz_pb2.Member(
            id=member, email=f"{member}@acme.example",
            grants=[authz_pb2.RoleGrant(role="member", project="internal-copilot")])),
            metadata=alice, timeout=10)
        # adam creates a key (naming someone else as actor: the edge names him), alice rotates
        # it, adam revokes the new key, then offboards a member holding a key alice created.
        created = admin.CreateKey(keys_pb2.CreateKeyRequest(
            request_id=uuid.uuid4().hex, kind=keys_pb2.KEY_KIND_SERVICE_ACCOUNT,
            owner=keys_pb2.Principal(type=keys_pb2.PRINCIPAL_TYPE_SERVICE_ACCOUNT, id=account),
            project="internal-copilot", environment=keys_pb2.ENVIRONMENT_DEVELOPMENT,
            scopes=["chat.completions"], actor="mallory"), metadata=by_adam, timeout=10)
        rotated = admin.RotateKey(keys_pb2.RotateKeyRequest(
            request_id=uuid.uuid4().hex, key_id=created.key.key_id, actor="mallory"),
            metadata=alice, timeout=10)
        admin.RevokeKey(keys_pb2.RevokeKeyRequest(key_id=rotated.new_key.key_id, reason="test",
                                                  actor="mallory"),
                        metadata=by_adam, timeout=10)
        leavers = admin.CreateKey(keys_pb2.CreateKeyRequest(
            request_id=uuid.uuid4().hex, kind=keys_pb2.KEY_KIND_PROJECT,
            owner=keys_pb2.Principal(type=keys_pb2.PRINCIPAL_TYPE_MEMBER, id=member),
            project="internal-copilot", environment=keys_pb2.ENVIRONMENT_DEVELOPMENT,
            scopes=["chat.completions"]), metadata=alice, timeout=10).key.key_id
        admin.RemoveMember(es.admin_pb2.RemoveMemberRequest(
            member_id=member, request_id=uuid.uuid4().hex), metadata=by_adam, timeout=10)

        def actors(action, key_id):
            page = admin.QueryAudit(audit_pb2.QueryEntriesRequest(
                ledger=audit_pb2.LedgerRef(project="internal-copilot", environment="development"),
                action=action, page_size=1000), metadata=alice, timeout=10)
            return [e.actor for e in page.entries if e.metadata.get("key_id") == key_id]

        expected = [
            (audit_pb2.ACTION_KEY_CREATED, created.key.key_id, adam),
            (audit_pb2.ACTION_KEY_ROTATED, created.key.key_id, "alice"),
            (audit_pb2.ACTION_KEY_CREATED, rotated.new_key.key_id, "alice"),
            (audit_pb2.ACTION_KEY_REVOKED, rotated.new_key.key_id, adam),
            (audit_pb2.ACTION_KEY_CREATED, leavers, "alice"),
            (audit_pb2.ACTION_KEY_REVOKED, leavers, adam),
        ]
        for action, key_id, actor in expected:
            found = pt.wait_until(lambda: actors(action, key_id), timeout=15,
                                  message=f"{action} of {key_id} in the ledger")
            self.assertEqual(found, [actor], (action, key_id))

    def test_issuing_keys_cannot_lift_a_caller_above_their_role(self):
        admin = SUITE.admin()
        alice = es.bearer(SUITE.new_admin_key("alice"))  # the owner
        dan = es.bearer(SUITE.new_admin_key("dan"))  # an administrator, not an owner
        member, account = keys_pb2.PRINCIPAL_TYPE_MEMBER, keys_pb2.PRINCIPAL_TYPE_SERVICE_ACCOUNT

        def create(caller, kind, owner, owner_type=member, **fields):
            fields.setdefault("request_id", uuid.uuid4().hex)
            if kind == keys_pb2.KEY_KIND_ADMIN:
                fields.setdefault("environment", keys_pb2.ENVIRONMENT_PRODUCTION)
            scopes = ["admin"] if kind == keys_pb2.KEY_KIND_ADMIN else ["chat.completions"]
            return admin.CreateKey(keys_pb2.CreateKeyRequest(
                kind=kind, owner=keys_pb2.Principal(type=owner_type, id=owner), scopes=scopes,
                **fields), metadata=caller, timeout=10)

        def refused(code, text, call, *args, **kwargs):
            err = pt.call_error(call, *args, **kwargs)
            self.assertEqual(err.code(), code, err.details())
            self.assertIn(text, err.details())

        # A key acts as its owner: an admin key for the owner would make dan the owner, a
        # project key for bob would let him decide as bob, rotating the owner's key would hand
        # him its successor, revoking it would lock the owner out.
        refused(C.PERMISSION_DENIED, "owners.manage", create, dan, keys_pb2.KEY_KIND_ADMIN, "alice")
        refused(C.PERMISSION_DENIED, "owners.manage", create, dan, keys_pb2.KEY_KIND_PROJECT,
                "bob", project="support-eu")
        alices = create(alice, keys_pb2.KEY_KIND_ADMIN, "alice")
        refused(C.PERMISSION_DENIED, "owners.manage", admin.RotateKey, keys_pb2.RotateKeyRequest(
            request_id=uuid.uuid4().hex, key_id=alices.key.key_id), metadata=dan, timeout=10)
        refused(C.PERMISSION_DENIED, "owners.manage", admin.RevokeKey,
                keys_pb2.RevokeKeyRequest(key_id=alices.key.key_id), metadata=dan, timeout=10)
        # His own keys are his to issue, rotate and revoke.
        dans = create(dan, keys_pb2.KEY_KIND_ADMIN, "dan")
        admin.RotateKey(keys_pb2.RotateKeyRequest(request_id=uuid.uuid4().hex,
                                                  key_id=dans.key.key_id),
                        metadata=dan, timeout=10)
        admin.RevokeKey(keys_pb2.RevokeKeyRequest(key_id=dans.key.key_id), metadata=dan,
                        timeout=10)

        # A key for nobody would be an orphan credential.
        refused(C.NOT_FOUND, "ghost", create, alice, keys_pb2.KEY_KIND_PROJECT, "ghost",
                project="support-eu")

        # A project key lives in its project's environment.
        refused(C.INVALID_ARGUMENT, "production", create, alice, keys_pb2.KEY_KIND_PROJECT, "bob",
                project="support-eu", environment=keys_pb2.ENVIRONMENT_DEVELOPMENT)
        bobs = create(alice, keys_pb2.KEY_KIND_PROJECT, "bob", project="support-eu")
        self.assertEqual(bobs.key.environment, keys_pb2.ENVIRONMENT_PRODUCTION)

        # A service account's key: its project, its environment, its max_key_lifetime (12 h).
        refused(C.INVALID_ARGUMENT, "belongs to internal-copilot", create, alice,
                keys_pb2.KEY_KIND_SERVICE_ACCOUNT, "sa-copilot-ci", owner_type=account,
                project="support-eu")
        refused(C.INVALID_ARGUMENT, "at most 12h", create, alice,
                keys_pb2.KEY_KIND_SERVICE_ACCOUNT, "sa-copilot-ci", owner_type=account,
                project="internal-copilot", ttl={"seconds": 30 * 86400})
        ci = create(alice, keys_pb2.KEY_KIND_SERVICE_ACCOUNT, "sa-copilot-ci",
                    owner_type=account, project="internal-copilot")
        lifetime = ci.key.expire_time.seconds - ci.key.create_time.seconds
        self.assertTrue(11 * 3600 < lifetime <= 12 * 3600, lifetime)
        self.assertEqual(ci.key.environment, keys_pb2.ENVIRONMENT_DEVELOPMENT)
        refused(C.INVALID_ARGUMENT, "at most 12h", admin.RotateKey, keys_pb2.RotateKeyRequest(
            request_id=uuid.uuid4().hex, key_id=ci.key.key_id, ttl={"seconds": 86400}),
            metadata=alice, timeout=10)

        # A retry returns the secret to the caller who asked, and to no one else; without a
        # request id a retry would issue a second key.
        refused(C.INVALID_ARGUMENT, "request_id: required", create, alice,
                keys_pb2.KEY_KIND_PROJECT, "alice", project="support-eu", request_id="")
        request_id = uuid.uuid4().hex
        first = create(alice, keys_pb2.KEY_KIND_PROJECT, "alice", project="internal-copilot",
                       request_id=request_id)
        again = create(alice, keys_pb2.KEY_KIND_PROJECT, "alice", project="internal-copilot",
                       request_id=request_id)
        self.assertEqual((again.key.key_id, again.secret), (first.key.key_id, first.secret))
        dans_own = create(dan, keys_pb2.KEY_KIND_ADMIN, "dan", request_id=request_id)
        self.assertNotEqual(dans_own.key.key_id, first.key.key_id)
        self.assertNotEqual(dans_own.secret, first.secret)

        # No key for calls its holder's roles would refuse every time: dan administers the
        # organisation but calls no model, carol only reads support-eu.
        for owner, project in (("dan", "internal-copilot"), ("carol", "support-eu")):
            refused(C.FAILED_PRECONDITION,
                    f"owner: member '{owner}' may not use chat.completions in {project} (no "
                    "role of theirs grants it)", create, alice, keys_pb2.KEY_KIND_PROJECT,
                    owner, project=project)

    def test_a_reused_request_id_is_named_as_the_caller_sent_it(self):
        admin = SUITE.admin()
        alice_key = SUITE.new_admin_key("alice")
        alice = es.bearer(alice_key)
        member = keys_pb2.PRINCIPAL_TYPE_MEMBER

        def create(owner, project, request_id):
            return admin.CreateKey(keys_pb2.CreateKeyRequest(
                request_id=request_id, kind=keys_pb2.KEY_KIND_PROJECT,
                owner=keys_pb2.Principal(type=member, id=owner), project=project,
                scopes=["chat.completions"]), metadata=alice, timeout=10)

        def refused_naming(request_id, call, *args):
            err = pt.call_error(call, *args, metadata=alice, timeout=10)
            self.assertEqual(err.code(), C.FAILED_PRECONDITION, err.details())
            self.assertIn(f"request_id {request_id} ", err.details())
            self.assertNotIn("admin:", err.details())

        request_id = f"reuse-{uuid.uuid4().hex}"
        created = create("bob", "support-eu", request_id)
        refused_naming(request_id, admin.CreateKey, keys_pb2.CreateKeyRequest(
            request_id=request_id, kind=keys_pb2.KEY_KIND_PROJECT,
            owner=keys_pb2.Principal(type=member, id="alice"), project="internal-copilot",
            scopes=["chat.completions"]))
        rotation = f"rotate-{uuid.uuid4().hex}"
        admin.RotateKey(keys_pb2.RotateKeyRequest(request_id=rotation,
                                                  key_id=created.key.key_id),
                        metadata=alice, timeout=10)
        other = create("bob", "support-eu", uuid.uuid4().hex)
        refused_naming(rotation, admin.RotateKey,
                       keys_pb2.RotateKeyRequest(request_id=rotation, key_id=other.key.key_id))
        # policyctl names it too, and does not advise retrying with it.
        again = run_policyctl("keys", "create", "--owner=alice", "--project=internal-copilot",
                              f"--request_id={request_id}", admin_key=alice_key)
        self.assertEqual(again.returncode, 1, again.stderr)
        self.assertIn(f"FAILED_PRECONDITION: request_id {request_id} ", again.stderr)
        self.assertNotIn("retry with", again.stderr)
        self.assertNotIn("admin:", again.stderr)

    def test_policyctl_exit_codes_and_json(self):
        alice = SUITE.new_admin_key("alice")

        def policyctl(*args, admin=True, api_key=None):
            return run_policyctl(*args, admin_key=alice if admin else None, api_key=api_key)

        created = policyctl("keys", "create", "--owner=bob", "--project=support-eu",
                            "--environment=production", "--output=json")
        self.assertEqual(created.returncode, 0, created.stderr)
        key = json.loads(created.stdout)
        self.assertTrue(key["secret"].startswith("psk_proj_"))
        allowed = policyctl("decide", "--model=gpt-4o", "--residency=eu",
                            "--message=Mail jane.doe@example.com the refund", "--output=json",
                            api_key=key["secret"])
        self.assertEqual(allowed.returncode, 0, allowed.stderr)
        decision = json.loads(allowed.stdout)
        self.assertEqual(decision["verdict"], "VERDICT_ALLOW")
        self.assertNotIn("jane.doe", allowed.stdout)
        # The text shows the mapping asked for, and a denial's reason once.
        mapped = policyctl("decide", "--model=gpt-4o", "--residency=eu", "--return_mapping",
                           "--message=Mail jane.doe@example.com the refund\x1b[2J\nnow",
                           api_key=key["secret"])
        self.assertEqual(mapped.returncode, 0, mapped.stderr)
        # What the prompt holds cannot drive the operator's terminal, nor add lines.
        self.assertIn("  user: Mail <EMAIL_ADDRESS_1> the refund\\x1b[2J\\nnow\n", mapped.stdout)
        # What was found, counted, and the class it was routed as.
        self.assertIn("\n  data class pii; found EMAIL_ADDRESS 1\n", mapped.stdout)
        self.assertNotIn("\x1b", mapped.stdout)
        self.assertIn("  <EMAIL_ADDRESS_1> = jane.doe@example.com\n", mapped.stdout)
        apac = policyctl("decide", "--model=gpt-4o", "--residency=apac", "--message=hi",
                         api_key=key["secret"])
        self.assertEqual(apac.returncode, 3, apac.stderr)
        self.assertRegex(apac.stdout, r"^DENY   RESIDENCY_NOT_ALLOWED: the request requires "
                                      r"apac; the project's data policy keeps its calls in eu ")
        # A key as keys mints it, pasted into a prompt, is found as the secret it is: by
        # default its presence refuses the request, and the answer does not repeat it.
        leaked = policyctl("decide", "--model=gpt-4o", "--residency=eu",
                           f"--message=our key is {key['secret']}, is that ok?", "--output=json",
                           api_key=key["secret"])
        self.assertEqual(leaked.returncode, 3, leaked.stdout + leaked.stderr)
        self.assertEqual(json.loads(leaked.stdout)["verdict"], "VERDICT_DENY")
        self.assertEqual(int(json.loads(leaked.stdout)["pii_counts"]["POLICY_SUITE_KEY"]), 1)
        self.assertNotIn(key["secret"], leaked.stdout)
        denied = policyctl("decide", "--model=o3-mini", "--message=hi", api_key=key["secret"])
        self.assertEqual(denied.returncode, 3)
        self.assertIn("MODEL_NOT_ALLOWED", denied.stdout)
        listed = policyctl("keys", "list", "--project=support-eu", "--output=json")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn(key["key"]["key_id"], [k["key_id"] for k in json.loads(listed.stdout)["keys"]])
        revoked = policyctl("keys", "revoke", key["key"]["key_id"], "--reason=test")
        self.assertEqual(revoked.returncode, 0, revoked.stderr)
        self.assertIn("KEY_STATE_REVOKED", revoked.stdout)
        gone = policyctl("decide", "--model=gpt-4o", "--message=hi", api_key=key["secret"])
        self.assertEqual(gone.returncode, 1)
        self.assertIn("UNAUTHENTICATED", gone.stderr)
        verified = policyctl("audit", "verify", "--project=support-eu",
                             "--environment=production")
        self.assertEqual(verified.returncode, 0, verified.stderr)
        self.assertIn("valid", verified.stdout)
        # The rotation report names a key expiring within the warning window (7 days), and
        # not bob's key of the default lifetime.
        short = policyctl("keys", "create", "--owner=bob", "--project=support-eu",
                          "--environment=production", "--ttl=60h", "--output=json")
        self.assertEqual(short.returncode, 0, short.stderr)
        short_id = json.loads(short.stdout)["key"]["key_id"]
        report = policyctl("keys", "report", "--output=json")
        self.assertEqual(report.returncode, 0, report.stderr)
        entries = {e["key"]["key_id"]: e for e in json.loads(report.stdout).get("entries", [])}
        self.assertEqual(entries[short_id]["urgency"], "URGENCY_WARNING")
        self.assertEqual(int(entries[short_id]["days_remaining"]), 2)
        self.assertNotIn(key["key"]["key_id"], entries)
        text_report = policyctl("keys", "report")
        self.assertEqual(text_report.returncode, 0, text_report.stderr)
        self.assertIn(short_id, text_report.stdout)
        members = policyctl("members", "list", "--project=support-eu", "--output=json")
        self.assertEqual(members.returncode, 0, members.stderr)
        self.assertIn("bob", [m["id"] for m in json.loads(members.stdout)["members"]])
        summary = policyctl("audit", "summary", "--project=support-eu",
                            "--environment=production", "--output=json")
        self.assertEqual(summary.returncode, 0, summary.stderr)
        totals = json.loads(summary.stdout)
        self.assertGreater(int(totals["action_breakdown"]["decision_allow"]), 0)
        # Where the allowed calls went: every one of this EU project's within the EU.
        self.assertEqual(set(totals["allowed_by_residency"]), {"eu"})
        # Its data is personal data, whatever pii found (org.yaml's data_class: pii).
        self.assertEqual(set(totals["allowed_by_data_class"]), {"pii"})
        self.assertEqual(sum(map(int, totals["allowed_by_region"].values())),
                         int(totals["action_breakdown"]["decision_allow"]))
        self.assertTrue(set(totals["allowed_by_region"]) <= {"westeurope", "swedencentral"},
                        totals["allowed_by_region"])
        self.assertGreater(int(totals["denials_by_reason"]["MODEL_NOT_ALLOWED"]), 0)
        # A period: the text shows it with the unaccounted subjects; a period before the ledger
        # holds nothing; a time that is not RFC 3339 is a usage error.
        text = policyctl("audit", "summary", "--project=support-eu", "--environment=production",
                         "--start=2000-01-01T00:00:00Z")
        self.assertEqual(text.returncode, 0, text.stderr)
        self.assertRegex(text.stdout, r"^from 20\d\d-.* to 20\d\d-.*: \d+ entries, .* "
                                      r"0 unaccounted subjects, integrity valid\n")
        self.assertRegex(text.stdout, r"\nallowed by residency: eu \d+\nallowed by data class: "
                                      r"pii \d+\nallowed by model API: chat.completions \d+"
                                      r"(, embeddings \d+)?\ndenials by reason: .*"
                                      r"MODEL_NOT_ALLOWED \d+")
        past = ("--start=2000-01-01T00:00:00Z", "--end=2000-01-02T00:00:00.5+01:00")
        before = policyctl("audit", "summary", "--project=support-eu",
                           "--environment=production", *past, "--output=json")
        self.assertEqual(before.returncode, 0, before.stderr)
        self.assertEqual(json.loads(before.stdout)["total_entries"], "0")
        queried = policyctl("audit", "query", "--project=support-eu", "--environment=production",
                            *past, "--output=json")
        self.assertEqual(queried.returncode, 0, queried.stderr)
        self.assertEqual(json.loads(queried.stdout)["entries"], [])
        queried = policyctl("audit", "query", "--project=support-eu", "--environment=production",
                            "--start=2000-01-01T00:00:00Z", "--limit=1", "--output=json")
        self.assertEqual(queried.returncode, 0, queried.stderr)
        self.assertEqual(len(json.loads(queried.stdout)["entries"]), 1)
        for flag in ("--start=yesterday", "--end=2026-13-01T00:00:00Z"):
            bad = policyctl("audit", "summary", "--project=support-eu",
                            "--environment=production", flag)
            self.assertEqual(bad.returncode, 2, bad.stderr)
            self.assertIn(flag.split("=")[0], bad.stderr)
        exported = policyctl("audit", "export", "--project=support-eu",
                             "--environment=production")
        self.assertEqual(exported.returncode, 0, exported.stderr)
        # Every key is there whatever its value, entry 0's index too.
        indexes = [int(json.loads(line)["index"]) for line in exported.stdout.splitlines()]
        self.assertEqual(indexes, list(range(len(indexes))))
        created = policyctl("endpoints", "create", "--id=francecentral", "--region=francecentral",
                            "--residency=eu", "--base_url=https://acme-fr.openai.azure.com",
                            "--deployment=gpt-4o", "--models=gpt-4o", "--zdr", "--private_link",
                            "--priority=3")
        self.assertEqual(created.returncode, 0, created.stderr)
        listed = policyctl("endpoints", "list", "--output=json")
        self.assertIn("francecentral",
                      [e["id"] for e in json.loads(listed.stdout)["endpoints"]])
        bad = policyctl("endpoints", "create", "--id=bad", "--region=x", "--residency=eu",
                        "--base_url=http://insecure.example.com", "--deployment=d")
        self.assertEqual(bad.returncode, 1)
        self.assertIn("INVALID_ARGUMENT", bad.stderr)
        self.assertIn("base_url", bad.stderr)
        # An update changes only the settings given.
        disabled = policyctl("endpoints", "update", "francecentral", "--disabled", "--weight=7",
                             "--output=json")
        self.assertEqual(disabled.returncode, 0, disabled.stderr)
        e = json.loads(disabled.stdout)["endpoint"]
        self.assertEqual((e["enabled"], e["weight"], e["priority"], e["models"],
                          e["capabilities"]["zero_data_retention"]),
                         (False, 7, 3, ["gpt-4o"], True))
        enabled = policyctl("endpoints", "update", "francecentral", "--disabled=false",
                            "--output=json")
        self.assertEqual(enabled.returncode, 0, enabled.stderr)
        self.assertEqual((json.loads(enabled.stdout)["endpoint"]["enabled"],
                          json.loads(enabled.stdout)["endpoint"]["weight"]), (True, 7))
        missing = policyctl("endpoints", "update", "nowhere", "--weight=1")
        self.assertEqual(missing.returncode, 1, missing.stderr)
        self.assertIn("NOT_FOUND: no endpoint 'nowhere'", missing.stderr)
        self.assertEqual(policyctl("endpoints", "delete", "francecentral").returncode, 0)
        # Region records its changes through its outbox: they reach the ledger moments later.
        entries = org_ledger_holding(alice, "ACTION_ENDPOINT_CHANGED", change="deleted",
                                     endpoint="francecentral")
        created = recorded(entries, "ACTION_ENDPOINT_CHANGED", change="created",
                           endpoint="francecentral", residency="RESIDENCY_EU")
        deleted = recorded(entries, "ACTION_ENDPOINT_CHANGED", change="deleted",
                           endpoint="francecentral")
        self.assertEqual(len(created), 1)
        self.assertEqual(len(deleted), 1)
        self.assertEqual([created[0]["actor"], deleted[0]["actor"]], ["alice", "alice"])
        self.assertEqual(policyctl("keys", "list", admin=False).returncode, 2)
        self.assertEqual(policyctl("frobnicate").returncode, 2)
        self.assertEqual(policyctl("audit", "verify", "--bogus=1").returncode, 2)

    def test_org_apply_offboards_the_members_it_removes(self):
        admin = SUITE.admin()
        alice_key = SUITE.new_admin_key("alice")
        alice = es.bearer(alice_key)
        # A key of dan's, made on the keys service itself (the admin API issues no project key
        # to an organisation admin, whose role calls no model).
        dans = keys_pb2.CreateKeyResponse(secret=new_key("dan", "internal-copilot",
                                                         keys_pb2.ENVIRONMENT_DEVELOPMENT))
        dans.key.CopyFrom(keys_pb2_grpc.KeyServiceStub(P["keys"].channel).VerifyKey(
            keys_pb2.VerifyKeyRequest(secret=dans.secret.encode()), timeout=10).key)
        # The organisation file without dan (and without erin, whom another test removes).
        text = es.ORG_FILE.read_text()
        for gone, following in (("dan", "bob"), ("erin", None)):
            start = text.index(f"  - id: {gone}\n")
            end = (text.index(f"  - id: {following}\n") if following
                   else text.index("\nservice_accounts:") + 1)
            text = text[:start] + text[end:]
        path = Path(self.id().replace(".", "_"))
        org_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"{path}.yaml"
        org_file.write_text(text)
        self.addCleanup(org_file.unlink)

        plan = run_policyctl("org", "plan", str(org_file), "--output=json", admin_key=alice_key)
        self.assertEqual(plan.returncode, 0, plan.stderr)
        planned = json.loads(plan.stdout)
        dan = [c for c in planned["changes"] if c["kind"] == "member" and c["id"] == "dan"]
        self.assertEqual(len(dan), 1, planned)
        self.assertIn("removed_at", [f["field"] for f in dan[0]["fields"]])
        applied = run_policyctl("org", "apply", str(org_file),
                                f"--plan_fingerprint={planned['plan_fingerprint']}",
                                "--output=json", admin_key=alice_key)
        self.assertEqual(applied.returncode, 0, applied.stderr)
        revoked = [k["key_id"] for k in json.loads(applied.stdout)["revoked_keys"]]
        self.assertIn(dans.key.key_id, revoked)
        self.assertEqual(pt.call_code(self.decide, key=dans.secret), C.UNAUTHENTICATED)
        version = str(json.loads(applied.stdout)["org_version"])
        entries = org_ledger_once(alice_key, "ACTION_ORG_FILE_APPLIED", org_version=version)
        self.assertIn("dan", [e.get("subject") for e in entries
                              if e["action"] == "ACTION_MEMBER_REMOVED"])
        # Planning and applying the same file again changes nothing and revokes nothing, and
        # the JSON says so with every key.
        replan = run_policyctl("org", "plan", str(org_file), "--output=json", admin_key=alice_key)
        self.assertEqual(replan.returncode, 0, replan.stderr)
        self.assertEqual(json.loads(replan.stdout)["changes"], [])
        again = run_policyctl("org", "apply", str(org_file), "--output=json", admin_key=alice_key)
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(json.loads(again.stdout)["revoked_keys"], [])
        self.assertEqual(json.loads(again.stdout)["changes"], [])
        # The apply recorded once, under the organisation version it made.
        found = recorded(org_ledger(alice_key), "ACTION_ORG_FILE_APPLIED", org_version=version)
        self.assertEqual(len(found), 1)
        self.assertEqual(found[0]["actor"], "alice")

    def test_a_member_revokes_a_key_of_their_own_and_no_one_elses(self):
        """Self-service: a member who leaked a key kills it without an admin, whatever their
        roles, recorded as their act; others' keys stay keys.manage's."""
        admin = SUITE.admin()
        alice = es.bearer(SUITE.new_admin_key("alice"))
        leaky = f"leaky-{uuid.uuid4().hex[:6]}"
        admin.AddMember(authz_pb2.AddMemberRequest(member=authz_pb2.Member(
            id=leaky, email=f"{leaky}@acme.example",
            grants=[authz_pb2.RoleGrant(role="member", project="internal-copilot")])),
            metadata=alice, timeout=10)
        leaky_admin_key = SUITE.new_admin_key(leaky)
        by_leaky = es.bearer(leaky_admin_key)

        def project_key(owner):
            return admin.CreateKey(keys_pb2.CreateKeyRequest(
                request_id=uuid.uuid4().hex, kind=keys_pb2.KEY_KIND_PROJECT,
                owner=keys_pb2.Principal(type=keys_pb2.PRINCIPAL_TYPE_MEMBER, id=owner),
                project="internal-copilot", scopes=["chat.completions"]),
                metadata=alice, timeout=10).key

        own, others = project_key(leaky), project_key("alice")
        keys = keys_pb2_grpc.KeyServiceStub(P["keys"].channel)

        def state(key_id):
            return keys.GetKey(keys_pb2.GetKeyRequest(key_id=key_id), timeout=10).key.state

        # Someone else's key is not theirs to revoke, nor is rotating their own (it hands
        # out a new secret) self-service.
        err = pt.call_error(admin.RevokeKey, keys_pb2.RevokeKeyRequest(
            key_id=others.key_id, reason="not mine"), metadata=by_leaky, timeout=10)
        self.assertEqual(err.code(), C.PERMISSION_DENIED, err.details())
        self.assertIn("keys.manage", err.details())
        self.assertEqual(state(others.key_id), keys_pb2.KEY_STATE_ACTIVE)
        err = pt.call_error(admin.RotateKey, keys_pb2.RotateKeyRequest(
            request_id=uuid.uuid4().hex, key_id=own.key_id), metadata=by_leaky, timeout=10)
        self.assertEqual(err.code(), C.PERMISSION_DENIED, err.details())

        revoked = admin.RevokeKey(keys_pb2.RevokeKeyRequest(
            key_id=own.key_id, reason="pasted into a public gist", actor="mallory"),
            metadata=by_leaky, timeout=10)
        self.assertTrue(revoked.changed)
        self.assertEqual(revoked.key.state, keys_pb2.KEY_STATE_REVOKED)
        self.assertEqual(state(own.key_id), keys_pb2.KEY_STATE_REVOKED)

        def revocations():
            page = admin.QueryAudit(audit_pb2.QueryEntriesRequest(
                ledger=audit_pb2.LedgerRef(project="internal-copilot", environment="development"),
                action=audit_pb2.ACTION_KEY_REVOKED, page_size=1000), metadata=alice, timeout=10)
            return [e.actor for e in page.entries if e.metadata.get("key_id") == own.key_id]

        self.assertEqual(pt.wait_until(revocations, timeout=15,
                                       message="the revocation in the ledger"), [leaky])

        # Their admin key too: from then on it authenticates nothing.
        admin_key_id = keys.VerifyKey(keys_pb2.VerifyKeyRequest(
            secret=leaky_admin_key.encode()), timeout=10).key.key_id
        admin.RevokeKey(keys_pb2.RevokeKeyRequest(key_id=admin_key_id, reason="leaked"),
                        metadata=by_leaky, timeout=10)
        self.assertEqual(state(admin_key_id), keys_pb2.KEY_STATE_REVOKED)
        pt.wait_until(lambda: pt.call_code(admin.ListMembers, admin_pb2.ListMembersRequest(
            project="internal-copilot"), metadata=by_leaky, timeout=10) == C.UNAUTHENTICATED,
            timeout=10, message="the revoked admin key refused")

    def test_a_projects_environment_cannot_change_through_the_admin_api(self):
        admin = SUITE.admin()
        alice = es.bearer(SUITE.new_admin_key("alice"))
        project = admin.CreateProject(authz_pb2.CreateProjectRequest(project=authz_pb2.Project(
            id=f"env-{uuid.uuid4().hex[:6]}", name="Env", environment="development",
            allowed_models=["gpt-4o"])), metadata=alice, timeout=10)
        self.assertEqual(project.key_holders, authz_pb2.KEY_HOLDERS_MEMBERS)
        moved = authz_pb2.Project()
        moved.CopyFrom(project)
        moved.environment = "production"
        moved.key_holders = authz_pb2.KEY_HOLDERS_UNSPECIFIED
        err = pt.call_error(admin.UpdateProject, authz_pb2.UpdateProjectRequest(project=moved),
                            metadata=alice, timeout=10)
        self.assertEqual(err.code(), C.FAILED_PRECONDITION, err.details())
        self.assertIn("environment: development cannot change to production", err.details())
        listed = admin.ListProjects(authz_pb2.ListProjectsRequest(page_size=500),
                                    metadata=alice, timeout=10)
        stored = [p for p in listed.projects if p.id == project.id]
        self.assertEqual([(p.environment, p.key_holders) for p in stored],
                         [("development", authz_pb2.KEY_HOLDERS_MEMBERS)])
        # The same environment restated: an update like any other.
        project.name = "Env, renamed"
        updated = admin.UpdateProject(authz_pb2.UpdateProjectRequest(project=project),
                                      metadata=alice, timeout=10)
        self.assertEqual((updated.name, updated.environment), ("Env, renamed", "development"))

    def test_a_production_projects_keys_are_held_by_service_accounts_only(self):
        admin = SUITE.admin()
        alice = es.bearer(SUITE.new_admin_key("alice"))
        project_id, account = f"prod-{uuid.uuid4().hex[:6]}", f"sa-prod-{uuid.uuid4().hex[:6]}"
        project = admin.CreateProject(authz_pb2.CreateProjectRequest(project=authz_pb2.Project(
            id=project_id, name="Claims triage", environment="production",
            allowed_models=["gpt-4o"], limits=authz_pb2.RateLimits(rpm=100, tpm=100000))),
            metadata=alice, timeout=10)
        self.assertEqual(project.key_holders, authz_pb2.KEY_HOLDERS_SERVICE_ACCOUNTS)
        admin.CreateServiceAccount(authz_pb2.CreateServiceAccountRequest(
            service_account=authz_pb2.ServiceAccount(
                id=account, project=project_id, environment="production",
                permissions=["chat.completions"], ip_allowlist=["10.20.0.0/16"])),
            metadata=alice, timeout=10)

        def issue(owner_type, owner, kind):
            return admin.CreateKey(keys_pb2.CreateKeyRequest(
                request_id=uuid.uuid4().hex, kind=kind,
                owner=keys_pb2.Principal(type=owner_type, id=owner), project=project_id,
                scopes=["chat.completions"]), metadata=alice, timeout=10)

        # The admin API issues no member key there, not even the owner's own.
        with self.assertRaises(grpc.RpcError) as refused:
            issue(keys_pb2.PRINCIPAL_TYPE_MEMBER, "alice", keys_pb2.KEY_KIND_PROJECT)
        self.assertEqual(refused.exception.code(), C.FAILED_PRECONDITION)
        self.assertIn("service accounts only", refused.exception.details())
        # A member key made on the keys service directly is denied at every decision, and
        # gets no successor.
        member_key = new_key("alice", project_id)
        member_key_id = keys_pb2_grpc.KeyServiceStub(P["keys"].channel).VerifyKey(
            keys_pb2.VerifyKeyRequest(secret=member_key.encode()), timeout=10).key.key_id
        with self.assertRaises(grpc.RpcError) as no_successor:
            admin.RotateKey(keys_pb2.RotateKeyRequest(request_id=uuid.uuid4().hex,
                                                      key_id=member_key_id),
                            metadata=alice, timeout=10)
        self.assertEqual(no_successor.exception.code(), C.FAILED_PRECONDITION)
        self.assertIn("revoked, not rotated", no_successor.exception.details())
        denied = self.decide(key=member_key, residency=R.RESIDENCY_UNSPECIFIED,
                             text="Summarise the claim.")
        self.assertEqual(denied.verdict, E.VERDICT_DENY)
        self.assertEqual(denied.reason, "KEY_HOLDER_NOT_ALLOWED")
        self.assertEqual(self.ledger_entry(denied.request_id, project=project_id).metadata[
            "reason"], "KEY_HOLDER_NOT_ALLOWED")
        # The project's service account decides.
        sa_key = issue(keys_pb2.PRINCIPAL_TYPE_SERVICE_ACCOUNT, account,
                       keys_pb2.KEY_KIND_SERVICE_ACCOUNT).secret
        self.assertEqual(self.decide(key=sa_key, residency=R.RESIDENCY_UNSPECIFIED,
                                     text="Summarise the claim.").verdict, E.VERDICT_ALLOW)
        # Opened to members, the owner's key decides; an update that leaves key_holders
        # unspecified keeps it.
        project.key_holders = authz_pb2.KEY_HOLDERS_MEMBERS
        admin.UpdateProject(authz_pb2.UpdateProjectRequest(project=project), metadata=alice,
                            timeout=10)
        project.key_holders = authz_pb2.KEY_HOLDERS_UNSPECIFIED
        project.name = "Claims triage (pilot)"
        updated = admin.UpdateProject(authz_pb2.UpdateProjectRequest(project=project),
                                      metadata=alice, timeout=10)
        self.assertEqual(updated.key_holders, authz_pb2.KEY_HOLDERS_MEMBERS)
        own = issue(keys_pb2.PRINCIPAL_TYPE_MEMBER, "alice", keys_pb2.KEY_KIND_PROJECT).secret
        pt.wait_until(lambda: self.decide(key=own, residency=R.RESIDENCY_UNSPECIFIED,
                                          text="Summarise the claim.").verdict == E.VERDICT_ALLOW,
                      timeout=10, message="the owner's key allowed once members hold keys")
        # policyctl says who holds a project's keys, and sets it.
        alice_key = SUITE.new_admin_key("alice")
        for holders, expected in ((None, "KEY_HOLDERS_SERVICE_ACCOUNTS"),
                                  ("members", "KEY_HOLDERS_MEMBERS")):
            other = f"prod-{uuid.uuid4().hex[:6]}"
            created = run_policyctl(
                "projects", "create", f"--id={other}", "--name=Pilot", "--environment=production",
                "--models=gpt-4o", "--rpm=10", "--tpm=1000", "--output=json",
                *([f"--key_holders={holders}"] if holders else []), admin_key=alice_key)
            self.assertEqual(created.returncode, 0, created.stderr)
            self.assertEqual(json.loads(created.stdout)["key_holders"], expected)
        bad = run_policyctl("projects", "create", "--id=x", "--name=x", "--environment=staging",
                            "--key_holders=everyone", admin_key=alice_key)
        self.assertEqual(bad.returncode, 2, bad.stderr)

    def test_org_apply_retried_after_it_was_cut_short_finishes_the_offboarding(self):
        admin = SUITE.admin()
        alice = es.bearer(SUITE.new_admin_key("alice"))
        suffix = uuid.uuid4().hex[:6]
        member, account = f"frank-{suffix}", f"sa-batch-{suffix}"
        admin.AddMember(authz_pb2.AddMemberRequest(member=authz_pb2.Member(
            id=member, email=f"{member}@acme.example",
            grants=[authz_pb2.RoleGrant(role="member", project="internal-copilot")])),
            metadata=alice, timeout=10)
        admin.CreateServiceAccount(authz_pb2.CreateServiceAccountRequest(
            service_account=authz_pb2.ServiceAccount(
                id=account, project="internal-copilot", environment="development",
                permissions=["chat.completions"], ip_allowlist=["10.0.0.0/8"])),
            metadata=alice, timeout=10)
        keys = {}
        for owner, owner_type, kind in (
                (member, keys_pb2.PRINCIPAL_TYPE_MEMBER, keys_pb2.KEY_KIND_PROJECT),
                (account, keys_pb2.PRINCIPAL_TYPE_SERVICE_ACCOUNT,
                 keys_pb2.KEY_KIND_SERVICE_ACCOUNT)):
            keys[owner] = admin.CreateKey(keys_pb2.CreateKeyRequest(
                request_id=uuid.uuid4().hex, kind=kind,
                owner=keys_pb2.Principal(type=owner_type, id=owner),
                project="internal-copilot", environment=keys_pb2.ENVIRONMENT_DEVELOPMENT,
                scopes=["chat.completions"]), metadata=alice, timeout=10).key.key_id
        # The organisation as it stands, without the two.
        text = admin.ExportOrgFile(authz_pb2.ExportOrgFileRequest(), metadata=alice,
                                   timeout=10).yaml
        for gone in (member, account):
            lines, skipping = [], False
            for line in text.splitlines(keepends=True):
                if line.startswith("  - "):
                    skipping = line == f"  - id: {gone}\n"
                elif not line.startswith("    "):
                    skipping = False
                if not skipping:
                    lines.append(line)
            text = "".join(lines)
        self.assertNotIn(member, text)
        self.assertNotIn(account, text)

        # The first attempt commits in authz, then cannot list or revoke the keys: their
        # table is locked past its deadline.
        locker = subprocess.Popen(
            [pt.PSQL, SUITE.url, "-c", "BEGIN; LOCK TABLE keys.api_keys IN ACCESS EXCLUSIVE "
             "MODE; SELECT pg_sleep(5); COMMIT;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(locker.kill)
        pt.wait_until(lambda: pt.psql(SUITE.url, "SELECT count(*) FROM pg_locks WHERE "
                                      "mode = 'AccessExclusiveLock' AND relation = "
                                      "'keys.api_keys'::regclass").strip() != "0",
                      timeout=10, message="the lock on keys.api_keys")
        cut_short = pt.call_code(admin.ApplyOrgFile, admin_pb2.ApplyOrgFileRequest(yaml=text),
                                 metadata=alice, timeout=2)
        self.assertIn(cut_short, (C.DEADLINE_EXCEEDED, C.UNAVAILABLE))
        locker.wait(timeout=15)
        keys_service = keys_pb2_grpc.KeyServiceStub(P["keys"].channel)

        def state(key_id):
            return keys_service.GetKey(keys_pb2.GetKeyRequest(key_id=key_id), timeout=10).key.state

        # The retry changes nothing (the first attempt committed), and revokes what is left.
        retried = admin.ApplyOrgFile(admin_pb2.ApplyOrgFileRequest(yaml=text), metadata=alice,
                                     timeout=20)
        self.assertEqual(len(retried.changes), 0)
        for owner, key_id in keys.items():
            self.assertEqual(state(key_id), keys_pb2.KEY_STATE_REVOKED, owner)

    def test_projects_and_service_accounts_through_policyctl(self):
        alice = SUITE.new_admin_key("alice")

        def policyctl(*args):
            return run_policyctl(*args, admin_key=alice)

        project = f"proj-{uuid.uuid4().hex[:6]}"
        created = policyctl("projects", "create", f"--id={project}", "--name=Pilot",
                            "--environment=development", "--models=gpt-4o", "--rpm=100",
                            "--tpm=10000", "--output=json")
        self.assertEqual(created.returncode, 0, created.stderr)
        listed = policyctl("projects", "list", "--output=json")
        self.assertIn(project, [p["id"] for p in json.loads(listed.stdout)["projects"]])
        account = f"sa-{uuid.uuid4().hex[:6]}"
        sa = policyctl("service-accounts", "create", f"--id={account}", f"--project={project}",
                       "--environment=development", "--permissions=chat.completions",
                       "--ip_allowlist=10.20.0.0/16")
        self.assertEqual(sa.returncode, 0, sa.stderr)
        key = policyctl("keys", "create", "--kind=service_account", "--owner_type=service_account",
                        f"--owner={account}", f"--project={project}",
                        "--environment=development", "--output=json")
        self.assertEqual(key.returncode, 0, key.stderr)
        secret = json.loads(key.stdout)["secret"]
        self.assertEqual(self.decide(key=secret, residency=R.RESIDENCY_UNSPECIFIED,
                                     text="Summarise the design doc.").verdict, E.VERDICT_ALLOW)
        # The owner alone: a service account's key, in the account's project and environment.
        implied = policyctl("keys", "create", "--owner_type=service_account", f"--owner={account}",
                            "--output=json")
        self.assertEqual(implied.returncode, 0, implied.stderr)
        implied_key = json.loads(implied.stdout)["key"]
        self.assertEqual((implied_key["kind"], implied_key["project"], implied_key["environment"]),
                         ("KEY_KIND_SERVICE_ACCOUNT", project, "ENVIRONMENT_DEVELOPMENT"))
        removed = policyctl("service-accounts", "remove", account, "--output=json")
        self.assertEqual(removed.returncode, 0, removed.stderr)
        self.assertEqual(len(json.loads(removed.stdout)["revoked_keys"]), 2)
        self.assertEqual(pt.call_code(self.decide, key=secret), C.UNAUTHENTICATED)
        # Another admin removing it again changes nothing, and revokes nothing.
        other = f"adam-{uuid.uuid4().hex[:6]}"
        SUITE.admin().AddMember(authz_pb2.AddMemberRequest(member=authz_pb2.Member(
            id=other, email=f"{other}@acme.example", grants=[authz_pb2.RoleGrant(role="admin")])),
            metadata=es.bearer(alice), timeout=10)
        again = run_policyctl("service-accounts", "remove", account, "--output=json",
                              admin_key=SUITE.new_admin_key(other))
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(json.loads(again.stdout).get("revoked_keys", []), [])
        archived = policyctl("projects", "archive", project, "--output=json")
        self.assertEqual(archived.returncode, 0, archived.stderr)
        self.assertTrue(json.loads(archived.stdout)["archived"])
        # Nothing but reading happens in an archived project: a precondition, not a permission.
        late = policyctl("keys", "create", "--owner=alice", f"--project={project}")
        self.assertEqual(late.returncode, 1, late.stderr)
        self.assertIn("FAILED_PRECONDITION", late.stderr)
        self.assertIn("archived", late.stderr)
        # Each change in the organisation's ledger, alice as the actor.
        entries = org_ledger_once(alice, "ACTION_PROJECT_DELETED", project=project)
        for action, metadata in [
                ("ACTION_PROJECT_CREATED", {"project": project}),
                ("ACTION_SERVICE_ACCOUNT_CREATED", {"service_account": account}),
                ("ACTION_SERVICE_ACCOUNT_REMOVED", {"service_account": account,
                                                    "project": project}),
                ("ACTION_PROJECT_DELETED", {"project": project})]:
            found = recorded(entries, action, **metadata)
            self.assertEqual(len(found), 1, f"{action} {metadata}")
            self.assertEqual(found[0]["actor"], "alice")
        # A reader cannot create projects: authz refuses, policyctl exits 1 naming it.
        carol = SUITE.new_admin_key("carol")
        refused = run_policyctl("projects", "create", "--id=nope", "--name=x",
                                "--environment=development", admin_key=carol)
        self.assertEqual(refused.returncode, 1)
        self.assertIn("PERMISSION_DENIED", refused.stderr)

    def test_policyctl_keys_in_the_holders_environment_retried_and_listed_whole(self):
        alice = SUITE.new_admin_key("alice")

        def policyctl(*args):
            return run_policyctl(*args, admin_key=alice)

        # Without --environment a key lives in its holder's: internal-copilot is development.
        created = policyctl("keys", "create", "--owner=alice", "--project=internal-copilot")
        self.assertEqual(created.returncode, 0, created.stderr)
        self.assertIn("ENVIRONMENT_DEVELOPMENT", created.stdout)
        key_id = created.stdout.split()[0]
        request_ids = [line.split()[1] for line in created.stdout.splitlines()
                       if line.startswith("request ")]
        self.assertEqual(len(request_ids), 1, created.stdout)
        # A retry with the printed request id answers with the same key, not a second one.
        again = policyctl("keys", "create", "--owner=alice", "--project=internal-copilot",
                          f"--request_id={request_ids[0]}")
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(again.stdout.split()[0], key_id)
        rotation = f"rotate-{uuid.uuid4().hex}"
        rotated = [policyctl("keys", "rotate", key_id, f"--request_id={rotation}",
                             "--output=json") for _ in range(2)]
        for r in rotated:
            self.assertEqual(r.returncode, 0, r.stderr)
        successor = json.loads(rotated[0].stdout)["new_key"]["key_id"]
        self.assertEqual(json.loads(rotated[1].stdout)["new_key"]["key_id"], successor)
        # A call that may have happened unanswered names the request id to retry with; a
        # refusal does not (the same id would be refused again).
        unanswered = policyctl("keys", "create", "--owner=alice", "--project=internal-copilot",
                               "--request_id=retry-me", "--edge=127.0.0.1:1", "--timeout=2s")
        self.assertEqual(unanswered.returncode, 4)  # Failed for now: a retry may succeed.
        self.assertIn("UNAVAILABLE", unanswered.stderr)
        self.assertIn("--request_id=retry-me", unanswered.stderr)
        refused = policyctl("keys", "create", "--owner=alice", "--project=no-such-project",
                            "--request_id=retry-me")
        self.assertEqual(refused.returncode, 1)
        self.assertIn("NOT_FOUND: no project 'no-such-project'", refused.stderr)
        self.assertNotIn("retry with", refused.stderr)

        # A service account's key, listed by its owner; one entry a page still lists them all.
        account = f"sa-{uuid.uuid4().hex[:6]}"
        sa = policyctl("service-accounts", "create", f"--id={account}",
                       "--project=internal-copilot", "--environment=development")
        self.assertEqual(sa.returncode, 0, sa.stderr)
        sa_key = policyctl("keys", "create", "--kind=service_account",
                           "--owner_type=service_account", f"--owner={account}",
                           "--project=internal-copilot", "--output=json")
        self.assertEqual(sa_key.returncode, 0, sa_key.stderr)
        sa_key_id = json.loads(sa_key.stdout)["key"]["key_id"]
        listed = policyctl("keys", "list", f"--owner={account}", "--owner_type=service_account",
                           "--output=json")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertEqual([k["key_id"] for k in json.loads(listed.stdout)["keys"]], [sa_key_id])
        listed = policyctl("keys", "list", "--owner=alice", "--project=internal-copilot",
                           "--page_size=1", "--output=json")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        ids = [k["key_id"] for k in json.loads(listed.stdout)["keys"]]
        self.assertIn(key_id, ids)
        self.assertIn(successor, ids)
        self.assertNotIn(sa_key_id, ids)
        self.assertEqual(json.loads(listed.stdout)["next_page_token"], "")

        for _ in range(2):
            invited = policyctl("invitations", "create",
                                f"--email=pager-{uuid.uuid4().hex[:6]}@acme.example",
                                "--role=member", "--projects=internal-copilot")
            self.assertEqual(invited.returncode, 0, invited.stderr)
        for command, field in [(("members", "list", "--include_removed"), "members"),
                               (("invitations", "list"), "invitations"),
                               (("projects", "list", "--include_archived"), "projects"),
                               (("service-accounts", "list", "--include_removed"),
                                "service_accounts")]:
            whole = policyctl(*command, "--output=json")
            paged = policyctl(*command, "--page_size=1", "--output=json")
            self.assertEqual(whole.returncode, 0, whole.stderr)
            self.assertEqual(paged.returncode, 0, paged.stderr)
            entries = [e["id"] for e in json.loads(whole.stdout)[field]]
            self.assertGreater(len(entries), 1, command)
            self.assertEqual([e["id"] for e in json.loads(paged.stdout)[field]], entries, command)

        # audit query too: every entry up to the ledger's size at the first page, in order
        # (keys records the key changes above in the project's ledger through its outbox).
        ledger = ("--project=internal-copilot", "--environment=development")
        pt.wait_until(lambda: len(policyctl("audit", "export", *ledger).stdout.splitlines()) >= 3,
                      timeout=15, message="key changes in internal-copilot's ledger")
        for output in ("json", "text"):
            paged = policyctl("audit", "query", *ledger, "--page_size=2", f"--output={output}")
            self.assertEqual(paged.returncode, 0, paged.stderr)
            if output == "json":
                page = json.loads(paged.stdout)
                self.assertEqual(page["next_page_token"], "")
                indexes = [int(e["index"]) for e in page["entries"]]
            else:
                indexes = [int(line.split()[0]) for line in paged.stdout.splitlines()]
            self.assertGreaterEqual(len(indexes), 3, output)
            self.assertEqual(indexes, list(range(len(indexes))), output)

    def test_policyctl_audit_query_stops_at_its_limit_and_resumes_from_its_token(self):
        alice = SUITE.new_admin_key("alice")

        def policyctl(*args):
            return run_policyctl(*args, admin_key=alice)

        # A ledger of this test's own: five entries, then only the reads the queries record.
        project = f"limit-{uuid.uuid4().hex[:8]}"
        audit = audit_pb2_grpc.AuditServiceStub(P["audit"].channel)
        for i in range(5):
            audit.Append(audit_pb2.AppendRequest(entry=audit_pb2.EntryInput(
                action=audit_pb2.ACTION_API_CALL, actor="e2e@example.com", project=project,
                environment="development", model="gpt-4o", request_id=f"{project}-{i}")),
                timeout=10)
        ledger = (f"--project={project}", "--environment=development")

        def reads_by_alice():
            entries = audit.QueryEntries(audit_pb2.QueryEntriesRequest(
                ledger=audit_pb2.LedgerRef(project=project, environment="development"),
                page_size=1000, requested_by="e2e-auditor"), timeout=10).entries
            return sum(1 for e in entries
                       if e.action == audit_pb2.ACTION_AUDIT_READ and e.actor == "alice")

        def indexes(listed):
            return [int(e["index"]) for e in json.loads(listed.stdout)["entries"]]

        # --limit stops after that many entries, one call per --page_size entries: a busy
        # ledger is neither read whole nor recorded as one read per entry.
        before = reads_by_alice()
        first = policyctl("audit", "query", *ledger, "--action=api_call", "--limit=2",
                          "--page_size=1", "--output=json")
        self.assertEqual(first.returncode, 0, first.stderr)
        self.assertEqual(indexes(first), [0, 1])
        token = json.loads(first.stdout)["next_page_token"]
        self.assertIn(f"--page_token={token}", first.stderr)
        self.assertEqual(reads_by_alice(), before + 2)
        # The token continues where the limit stopped.
        rest = policyctl("audit", "query", *ledger, "--action=api_call", f"--page_token={token}",
                         "--limit=0", "--output=json")
        self.assertEqual(rest.returncode, 0, rest.stderr)
        self.assertEqual(indexes(rest), [2, 3, 4])
        self.assertEqual(json.loads(rest.stdout)["next_page_token"], "")
        self.assertEqual(rest.stderr, "")
        text = policyctl("audit", "query", *ledger, "--action=api_call", "--limit=3")
        self.assertEqual(text.returncode, 0, text.stderr)
        self.assertEqual([int(line.split()[0]) for line in text.stdout.splitlines()], [0, 1, 2])
        self.assertIn("--page_token=", text.stderr)
        # By default a query shows up to 1000 entries, asking for 1000 a call: one read here.
        before = reads_by_alice()
        whole = policyctl("audit", "query", *ledger, "--output=json")
        self.assertEqual(whole.returncode, 0, whole.stderr)
        self.assertEqual(indexes(whole), list(range(len(indexes(whole)))))
        self.assertGreaterEqual(len(indexes(whole)), 9)  # five entries and four reads
        self.assertEqual(json.loads(whole.stdout)["next_page_token"], "")
        self.assertEqual(reads_by_alice(), before + 1)
        # By actor: the five calls are e2e's, the reads alice's.
        by_actor = policyctl("audit", "query", *ledger, "--actor=e2e@example.com", "--output=json")
        self.assertEqual(by_actor.returncode, 0, by_actor.stderr)
        self.assertEqual(indexes(by_actor), [0, 1, 2, 3, 4])
        by_actor = policyctl("audit", "query", *ledger, "--actor=alice", "--output=json")
        self.assertEqual(by_actor.returncode, 0, by_actor.stderr)
        self.assertGreaterEqual(len(indexes(by_actor)), 4)
        self.assertNotIn(0, indexes(by_actor))
        # Nothing matched: an empty response, still JSON, every key there.
        none = policyctl("audit", "query", *ledger, "--action=decision_deny", "--output=json")
        self.assertEqual(none.returncode, 0, none.stderr)
        self.assertEqual(json.loads(none.stdout), {"entries": [], "next_page_token": ""})
        for bad in ("--limit=-1", "--page_size=0", "--page_size=1001"):
            refused = policyctl("audit", "query", *ledger, bad)
            self.assertEqual(refused.returncode, 2, bad)
            self.assertIn(bad.split("=")[0], refused.stderr)

    def test_policyctl_help_anywhere_prints_usage_and_runs_nothing(self):
        alice = SUITE.new_admin_key("alice")

        def policyctl(*args):
            return run_policyctl(*args, admin_key=alice)

        erin = f"erin-{uuid.uuid4().hex[:6]}"
        added = policyctl("members", "add", f"--id={erin}", f"--email={erin}@acme.example",
                          "--roles=member@support-eu")
        self.assertEqual(added.returncode, 0, added.stderr)

        def keys_of(owner):
            listed = policyctl("keys", "list", f"--owner={owner}", "--output=json")
            self.assertEqual(listed.returncode, 0, listed.stderr)
            return json.loads(listed.stdout).get("keys", [])

        for args in (("members", "remove", erin, "--help"),
                     ("members", "remove", erin, "-h", "--request_id=r1"),
                     ("keys", "create", f"--owner={erin}", "--project=support-eu", "--help"),
                     ("keys", "--help", "create", f"--owner={erin}", "--project=support-eu")):
            shown = policyctl(*args)
            self.assertEqual(shown.returncode, 0, (args, shown.stderr))
            self.assertEqual(shown.stderr, "", args)
            self.assertIn(f"{args[0]} {args[1] if args[1] != '--help' else args[2]}", shown.stdout)
            self.assertIn("global flags", shown.stdout)
        members = policyctl("members", "list", "--include_removed", "--output=json")
        erins = [m for m in json.loads(members.stdout)["members"] if m["id"] == erin]
        self.assertEqual(len(erins), 1)
        self.assertNotIn("removed_at", erins[0])
        self.assertEqual(keys_of(erin), [])
        # A plan fingerprint after --help is not skipped into an apply either.
        applied = policyctl("org", "apply", "/nonexistent/org.yaml", "--help",
                            "--plan_fingerprint=X")
        self.assertEqual(applied.returncode, 0, applied.stderr)
        self.assertIn("org apply", applied.stdout)
        self.assertNotIn("org plan", applied.stdout)
        endpoint = policyctl("endpoints", "create", "--help")
        self.assertEqual(endpoint.returncode, 0, endpoint.stderr)
        self.assertIn("--deployment (Azure's deployment name: required for azure, the default\n"
                      "                    provider)", endpoint.stdout)
        for args in (("--help",), ("-h",), ("help",)):
            whole = run_policyctl(*args)
            self.assertEqual(whole.returncode, 0, args)
            self.assertIn("commands:", whole.stdout)
        self.assertEqual(run_policyctl().returncode, 2)

    def test_onboarding_through_policyctl(self):
        alice = SUITE.new_admin_key("alice")

        def policyctl(*args):
            return run_policyctl(*args, admin_key=alice)

        newcomer = f"nina-{uuid.uuid4().hex[:6]}"
        added = policyctl("members", "add", f"--id={newcomer}", f"--email={newcomer}@acme.example",
                          "--roles=member@support-eu", "--output=json")
        self.assertEqual(added.returncode, 0, added.stderr)
        self.assertEqual(json.loads(added.stdout)["grants"][0]["project"], "support-eu")
        key = policyctl("keys", "create", f"--owner={newcomer}", "--project=support-eu",
                        "--environment=production", "--output=json")
        self.assertEqual(key.returncode, 0, key.stderr)
        secret = json.loads(key.stdout)["secret"]
        self.assertEqual(self.decide(key=secret).verdict, E.VERDICT_ALLOW)
        # Made a reader: decisions for model calls are refused from then on, and the key gets
        # no successor.
        demoted = policyctl("members", "set-roles", newcomer, "--roles=reader@support-eu")
        self.assertEqual(demoted.returncode, 0, demoted.stderr)
        pt.wait_until(lambda: self.decide(key=secret).verdict == E.VERDICT_DENY, timeout=10,
                      message="a reader's model calls are denied")
        rotated = policyctl("keys", "rotate", json.loads(key.stdout)["key"]["key_id"])
        self.assertEqual(rotated.returncode, 1, rotated.stdout + rotated.stderr)
        self.assertIn(f"FAILED_PRECONDITION: owner: member '{newcomer}' may not use "
                      "chat.completions in support-eu", rotated.stderr)
        invited = policyctl("invitations", "create", f"--email=omar-{newcomer}@acme.example",
                            "--role=member", "--projects=support-eu", "--output=json")
        self.assertEqual(invited.returncode, 0, invited.stderr)
        invitation = json.loads(invited.stdout)
        # Lists name an invitation by its ref; the secret id is shown once, at creation.
        self.assertTrue(invitation["ref"].startswith("sha256:"), invitation)
        listed = policyctl("invitations", "list", "--output=json")
        listed_invitations = json.loads(listed.stdout)["invitations"]
        self.assertIn(invitation["ref"], [i["ref"] for i in listed_invitations])
        self.assertNotIn(invitation["id"], listed.stdout)
        self.assertTrue(all(not i.get("id") for i in listed_invitations), listed_invitations)
        revoked = policyctl("invitations", "revoke", invitation["ref"], "--output=json")
        self.assertEqual(revoked.returncode, 0, revoked.stderr)
        self.assertEqual(json.loads(revoked.stdout)["state"], "revoked")
        # Each change in the organisation's ledger: the newcomer and the invitee as subjects.
        digest = "sha256:" + hashlib.sha256(invitation["id"].encode()).hexdigest()[:32]
        entries = org_ledger_once(alice, "ACTION_INVITATION_CHANGED", change="revoked",
                                  invitation=digest)
        added = recorded(entries, "ACTION_MEMBER_ADDED", roles="member@support-eu")
        self.assertIn(newcomer, [e.get("subject") for e in added])
        demotions = recorded(entries, "ACTION_MEMBER_ROLE_CHANGED", roles="reader@support-eu")
        self.assertIn(newcomer, [e.get("subject") for e in demotions])
        # The ledger names an invitation by a digest: its id, which accepts it, stays out.
        for change in ("created", "revoked"):
            found = recorded(entries, "ACTION_INVITATION_CHANGED", change=change,
                             invitation=digest)
            self.assertEqual(len(found), 1, change)
            self.assertEqual(found[0]["subject"], f"omar-{newcomer}@acme.example")
        self.assertNotIn(invitation["id"], json.dumps(entries))

        # An invitee, who has no key, accepts with the invitation's id and their e-mail.
        invitee = f"pia-{newcomer}@acme.example"
        invited = policyctl("invitations", "create", f"--email={invitee}", "--role=member",
                            "--projects=support-eu", "--output=json")
        self.assertEqual(invited.returncode, 0, invited.stderr)
        invitation = json.loads(invited.stdout)
        wrong = run_policyctl("invitations", "accept", invitation["id"],
                              "--email=someone-else@acme.example")
        self.assertEqual(wrong.returncode, 1)
        self.assertIn("NOT_FOUND", wrong.stderr)
        accepted = run_policyctl("invitations", "accept", invitation["id"], f"--email={invitee}",
                                 f"--member_id=pia-{newcomer}", "--output=json")
        self.assertEqual(accepted.returncode, 0, accepted.stderr)
        self.assertEqual(json.loads(accepted.stdout)["grants"][0]["project"], "support-eu")
        key = policyctl("keys", "create", f"--owner=pia-{newcomer}", "--project=support-eu",
                        "--environment=production", "--output=json")
        self.assertEqual(key.returncode, 0, key.stderr)
        self.assertEqual(self.decide(key=json.loads(key.stdout)["secret"]).verdict,
                         E.VERDICT_ALLOW)
        # The invitee, as the actor, accepted the invitation and became a member.
        digest = "sha256:" + hashlib.sha256(invitation["id"].encode()).hexdigest()[:32]
        entries = org_ledger_once(alice, "ACTION_INVITATION_CHANGED", change="accepted",
                                  invitation=digest)
        accepted = recorded(entries, "ACTION_INVITATION_CHANGED", change="accepted",
                            invitation=digest)
        self.assertEqual(len(accepted), 1)
        self.assertEqual(accepted[0]["actor"], f"pia-{newcomer}")
        added = [e for e in recorded(entries, "ACTION_MEMBER_ADDED", roles="member@support-eu")
                 if e.get("subject") == f"pia-{newcomer}"]
        self.assertEqual(len(added), 1)
        self.assertEqual(added[0]["actor"], f"pia-{newcomer}")

    def test_operators_reports_proofs_and_a_data_subjects_requests_through_policyctl(self):
        alice = SUITE.new_admin_key("alice")  # an owner
        carol = SUITE.new_admin_key("carol")  # a reader

        def policyctl(*args, key=alice):
            return run_policyctl(*args, admin_key=key)

        exported = policyctl("org", "export")
        self.assertEqual(exported.returncode, 0, exported.stderr)
        self.assertIn("support-eu", exported.stdout)
        self.assertIn("alice@acme.example", exported.stdout)
        health = policyctl("endpoints", "health", "--output=json")
        self.assertEqual(health.returncode, 0, health.stderr)
        self.assertIn("westeurope", [h["endpoint"]["id"]
                                     for h in json.loads(health.stdout)["endpoints"]])
        health = policyctl("endpoints", "health")
        self.assertEqual(health.returncode, 0, health.stderr)
        self.assertRegex(health.stdout, r"(?m)^westeurope  [A-Z_]+  latency \d+ us  \d+ routed, "
                                        r"\d+ ok, \d+ failed, \d+ trips withheld$")
        inventory = policyctl("keys", "inventory", "--project=support-eu", "--output=json")
        self.assertEqual(inventory.returncode, 0, inventory.stderr)
        self.assertGreater(len(json.loads(inventory.stdout)["entries"]), 0)

        # A data subject: a member who made a decision, asks for their entries, then to be
        # forgotten.
        subject = f"dora-{uuid.uuid4().hex[:6]}"
        email = f"{subject}@acme.example"
        added = policyctl("members", "add", f"--id={subject}", f"--email={email}",
                          "--roles=member@support-eu")
        self.assertEqual(added.returncode, 0, added.stderr)
        # Invited to another project: the ledger names her by her e-mail address there.
        invited = policyctl("invitations", "create", f"--email={email}", "--role=reader",
                            "--projects=support-eu")
        self.assertEqual(invited.returncode, 0, invited.stderr)
        key = policyctl("keys", "create", f"--owner={subject}", "--project=support-eu",
                        "--environment=production", "--output=json")
        self.assertEqual(key.returncode, 0, key.stderr)
        decision = self.decide(key=json.loads(key.stdout)["secret"])
        self.assertEqual(decision.verdict, E.VERDICT_ALLOW)

        # The decision's inclusion in a signed checkpoint, once one covers it.
        ledger = ("--project=support-eu", "--environment=production")

        def proved():
            r = policyctl("audit", "prove", *ledger,
                          f"--request_id=decision:{decision.request_id}", "--output=json")
            return r if r.returncode == 0 else None
        proof = json.loads(pt.wait_until(proved, timeout=30, message="a checkpoint covers it")
                           .stdout)
        self.assertEqual(proof["entry"]["request_id"], "decision:" + decision.request_id)
        checkpoint = policyctl("audit", "checkpoint", *ledger, "--output=json")
        self.assertEqual(checkpoint.returncode, 0, checkpoint.stderr)
        self.assertGreaterEqual(int(json.loads(checkpoint.stdout)["checkpoint"]["tree_size"]),
                                int(proof["checkpoint"]["tree_size"]))

        # Every record naming them is in before they ask for their entries: authz's and keys'
        # outboxes deliver theirs a moment after the change.
        def exported():
            r = policyctl("audit", "subject-export", subject)
            self.assertEqual(r.returncode, 0, r.stderr)
            actions = {json.loads(line)["action"] for line in r.stdout.splitlines()}
            return r if {"ACTION_MEMBER_ADDED", "ACTION_KEY_CREATED"} <= actions else None
        mine = pt.wait_until(exported, timeout=15, message="the records naming the subject")

        def exported_by_email():
            r = policyctl("audit", "subject-export", email)
            self.assertEqual(r.returncode, 0, r.stderr)
            return "ACTION_INVITATION_CHANGED" in r.stdout
        pt.wait_until(exported_by_email, timeout=15, message="the invitation naming her e-mail")
        entries = [json.loads(line) for line in mine.stdout.splitlines()]
        self.assertIn("decision:" + decision.request_id, [e.get("request_id") for e in entries])
        self.assertTrue(all(subject in (e.get("actor"), e.get("subject")) for e in entries))

        # Erasure is the owners': a reader may read, not forget.
        refused = policyctl("audit", "forget", subject, key=carol)
        self.assertEqual(refused.returncode, 1)
        self.assertIn("PERMISSION_DENIED", refused.stderr)
        self.assertIn("owners.manage", refused.stderr)
        erasure = f"erase-{subject}"
        forgotten = policyctl("audit", "forget", subject, f"--request_id={erasure}",
                              "--output=json")
        self.assertEqual(forgotten.returncode, 0, forgotten.stderr)
        self.assertTrue(json.loads(forgotten.stdout)["forgotten"])
        # She is a member: forgotten under her e-mail address too, in one request.
        self.assertTrue(json.loads(forgotten.stdout)["email_forgotten"])
        self.assertNotIn(email, forgotten.stdout)
        # The erasure's id names them; its record does not.
        self.assertNotIn(subject, json.loads(forgotten.stdout)["entry"]["request_id"])
        again = policyctl("audit", "forget", subject, f"--request_id={erasure}", "--output=json")
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual(json.loads(again.stdout)["entry"]["index"],
                         json.loads(forgotten.stdout)["entry"]["index"])
        self.assertEqual(json.loads(again.stdout)["email_entry"]["index"],
                         json.loads(forgotten.stdout)["email_entry"]["index"])
        for name in (subject, email):
            after = policyctl("audit", "subject-export", name)
            self.assertEqual(after.returncode, 0, after.stderr)
            self.assertNotIn(subject, after.stdout)
        verified = policyctl("audit", "verify", *ledger)
        self.assertEqual(verified.returncode, 0, verified.stdout + verified.stderr)
        # Still a member: the organisation keeps her address.
        self.assertFalse(json.loads(forgotten.stdout)["member_erased"])

        # Once removed, her erasure erases her address in the organisation too: the invitation
        # to it goes, and the ledger records the erasure under no name.
        removed = policyctl("members", "remove", subject, "--output=json")
        self.assertEqual(removed.returncode, 0, removed.stderr)
        removal_index = json.loads(removed.stdout)["audit_id"].rsplit("/", 1)[1]

        # Erased at once: keys records the revocation of her key a moment after the removal,
        # through its outbox, so the record may reach the ledger after the erasure. Made
        # before it, it names her for nobody, whenever it arrives.
        erasure = f"erase-again-{subject}"
        erased = policyctl("audit", "forget", subject, f"--request_id={erasure}", "--output=json")
        self.assertEqual(erased.returncode, 0, erased.stderr)
        self.assertTrue(json.loads(erased.stdout)["member_erased"])
        revocation = f"keys:key_revoked:{json.loads(key.stdout)['key']['key_id']}"

        def revoked():
            r = policyctl("audit", "query", *ledger, "--action=key_revoked", "--output=json")
            self.assertEqual(r.returncode, 0, r.stderr)
            return [e for e in json.loads(r.stdout)["entries"]
                    if e.get("request_id") == revocation] or None
        revocations = pt.wait_until(revoked, timeout=15, message="the record of her revocation")
        self.assertEqual(len(revocations), 1)
        self.assertNotIn(subject, json.dumps(revocations))
        for name in (subject, email):
            after = policyctl("audit", "subject-export", name)
            self.assertEqual(after.returncode, 0, after.stderr)
            self.assertNotIn(subject, after.stdout)
        members = policyctl("members", "list", "--include_removed", "--output=json")
        self.assertEqual(members.returncode, 0, members.stderr)
        doras = [m for m in json.loads(members.stdout)["members"] if m["id"] == subject]
        self.assertEqual(len(doras), 1)
        self.assertEqual(doras[0]["email"], "")
        self.assertIn("erased_at", doras[0])
        invitations = policyctl("invitations", "list", "--output=json")
        self.assertEqual(invitations.returncode, 0, invitations.stderr)
        self.assertNotIn(email, invitations.stdout)
        entries = org_ledger_once(alice, "ACTION_MEMBER_ERASED", invitations_deleted="1")
        removal = [e for e in entries if str(e["index"]) == removal_index]
        self.assertEqual(len(removal), 1)
        erasures = recorded(entries, "ACTION_MEMBER_ERASED", removal=removal[0]["request_id"])
        self.assertEqual(len(erasures), 1)
        self.assertEqual(erasures[0]["subject"], "")
        self.assertNotIn(email, json.dumps(entries))
        # A retry repeats nothing; the address is known no more, so it is not named again.
        again = policyctl("audit", "forget", subject, f"--request_id={erasure}", "--output=json")
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertTrue(json.loads(again.stdout)["member_erased"])
        self.assertEqual(json.loads(again.stdout)["entry"]["index"],
                         json.loads(erased.stdout)["entry"]["index"])
        self.assertNotIn("email_entry", json.loads(again.stdout))

    def test_an_erasure_by_e_mail_address_forgets_every_member_with_it(self):
        alice = SUITE.new_admin_key("alice")

        def policyctl(*args):
            return run_policyctl(*args, admin_key=alice)
        # Eve left once and came back under a new id: two members with her address.
        old = f"eve-{uuid.uuid4().hex[:6]}"
        new = f"{old}-again"
        email = f"{old}@acme.example"
        for member in (old, new):
            added = policyctl("members", "add", f"--id={member}", f"--email={email}",
                              "--roles=member@support-eu")
            self.assertEqual(added.returncode, 0, added.stderr)
            if member == old:
                removed = policyctl("members", "remove", old)
                self.assertEqual(removed.returncode, 0, removed.stderr)
        listed = policyctl("members", "list", "--include_removed", f"--email={email.upper()}",
                           "--output=json")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertEqual(sorted(m["id"] for m in json.loads(listed.stdout)["members"]),
                         sorted([old, new]))

        # The records naming them are in before they are forgotten.
        def named(member, action):
            r = policyctl("audit", "subject-export", member)
            self.assertEqual(r.returncode, 0, r.stderr)
            return action in r.stdout
        pt.wait_until(lambda: named(old, "ACTION_MEMBER_REMOVED") and
                      named(new, "ACTION_MEMBER_ADDED"), timeout=15,
                      message="the records naming both members")

        erasure = f"erase-{old}"
        forgotten = policyctl("audit", "forget", email, f"--request_id={erasure}", "--output=json")
        self.assertEqual(forgotten.returncode, 0, forgotten.stderr)
        members = {m["id"]: m for m in json.loads(forgotten.stdout)["members"]}
        self.assertEqual(set(members), {old, new})
        self.assertTrue(members[old]["forgotten"])
        self.assertTrue(members[new]["forgotten"])
        # The removed membership is erased in the organisation; the active one keeps it.
        self.assertTrue(members[old]["erased"])
        self.assertFalse(members[new]["erased"])
        for member in (old, new):
            after = policyctl("audit", "subject-export", member)
            self.assertEqual(after.returncode, 0, after.stderr)
            self.assertNotIn(member, after.stdout)
        listed = policyctl("members", "list", "--include_removed", f"--email={email}",
                           "--output=json")
        self.assertEqual([m["id"] for m in json.loads(listed.stdout)["members"]], [new])
        text = policyctl("members", "list", "--include_removed")
        self.assertRegex(text.stdout, rf"(?m)^{old}  \(address erased\)  .*\(removed\)$")
        # A retry repeats nothing; it finds only the member who still has the address.
        again = policyctl("audit", "forget", email, f"--request_id={erasure}", "--output=json")
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertEqual([(m["id"], m["entry"]["index"])
                          for m in json.loads(again.stdout)["members"]],
                         [(new, members[new]["entry"]["index"])])

    def test_policyctl_audit_prove_checks_the_proof_and_the_signature_itself(self):
        alice = SUITE.new_admin_key("alice")

        def policyctl(*args):
            return run_policyctl(*args, admin_key=alice)
        decision = self.decide()
        self.assertEqual(decision.verdict, E.VERDICT_ALLOW)
        ledger = ("--project=support-eu", "--environment=production")
        request_id = "decision:" + decision.request_id
        public_key = audit_pb2_grpc.AuditServiceStub(P["audit"].channel).GetCheckpoint(
            audit_pb2.GetCheckpointRequest(ledger=audit_pb2.LedgerRef(
                project="support-eu", environment="production")), timeout=10).public_key.hex()

        def proved():
            r = policyctl("audit", "prove", *ledger, f"--request_id={request_id}")
            return r if r.returncode == 0 else None
        unsigned = pt.wait_until(proved, timeout=30, message="a checkpoint covers it")
        self.assertIn("proof of", unsigned.stdout)
        # The checkpoints' sizes, smallest first, are those --tree_size takes.
        listed = policyctl("audit", "checkpoints", *ledger, "--output=json")
        self.assertEqual(listed.returncode, 0, listed.stderr)
        sizes = [int(c["tree_size"]) for c in json.loads(listed.stdout)["checkpoints"]]
        self.assertEqual(sizes, sorted(set(sizes)))
        newest = policyctl("audit", "checkpoint", *ledger, "--output=json")
        self.assertLessEqual(sizes[-1], int(json.loads(newest.stdout)["checkpoint"]["tree_size"]))
        text = policyctl("audit", "checkpoints", *ledger)
        self.assertRegex(text.stdout.splitlines()[0],
                         rf"^tree size {sizes[0]}  \d{{4}}-\d\d-\d\dT[0-9:]+Z  key [0-9a-f]{{16}}  "
                         r"root [0-9a-f]{64}$")
        at_size = policyctl("audit", "prove", *ledger, f"--request_id={request_id}",
                            f"--tree_size={sizes[-1]}")
        self.assertEqual(at_size.returncode, 0, at_size.stderr)
        self.assertIn(f"is in the tree of {sizes[-1]} ", at_size.stdout)
        self.assertIn("root NOT verified against a signature", unsigned.stdout)
        signed = policyctl("audit", "prove", *ledger, f"--request_id={request_id}",
                           f"--public_key={public_key}")
        self.assertEqual(signed.returncode, 0, signed.stderr)
        self.assertIn("signed by --public_key", signed.stdout)
        other_key = policyctl("audit", "prove", *ledger, f"--request_id={request_id}",
                              "--public_key=" + "ab" * 32)
        self.assertEqual(other_key.returncode, 3, other_key.stdout)
        self.assertIn("NOT PROVEN", other_key.stderr)
        self.assertIn("does NOT carry a valid signature", other_key.stderr)
        # With --output=json, exit 3 comes with the answer, as audit checkpoint's does.
        other_key_json = policyctl("audit", "prove", *ledger, f"--request_id={request_id}",
                                   "--public_key=" + "ab" * 32, "--output=json")
        self.assertEqual(other_key_json.returncode, 3, other_key_json.stderr)
        self.assertEqual(json.loads(other_key_json.stdout)["entry"]["request_id"], request_id)
        self.assertIn("does NOT carry a valid signature", other_key_json.stderr)
        self.assertEqual(policyctl("audit", "prove", *ledger, f"--request_id={request_id}",
                                   "--public_key=xyz").returncode, 2)
        # audit checkpoint calls nothing signed it did not check.
        checkpoint = policyctl("audit", "checkpoint", *ledger)
        self.assertEqual(checkpoint.returncode, 0, checkpoint.stderr)
        self.assertIn("NOT verified", checkpoint.stdout)
        self.assertNotIn("signed by", checkpoint.stdout)
        checkpoint = policyctl("audit", "checkpoint", *ledger, f"--public_key={public_key}")
        self.assertEqual(checkpoint.returncode, 0, checkpoint.stderr)
        self.assertIn("signed by --public_key", checkpoint.stdout)

        # The entry changed in the database: the service does not prove it. (Changed back
        # after, so that the ledger verifies for the other tests.)
        def tamper(delta):
            pt.psql(SUITE.url,
                    "BEGIN; ALTER TABLE audit.entries DISABLE TRIGGER USER; "
                    f"UPDATE audit.entries SET tokens = tokens + ({delta}) "
                    f"WHERE request_id = '{request_id}'; "
                    "ALTER TABLE audit.entries ENABLE TRIGGER USER; COMMIT;")
        tamper(1)
        try:
            changed = policyctl("audit", "prove", *ledger, f"--request_id={request_id}",
                                f"--public_key={public_key}")
            summary = policyctl("audit", "summary", *ledger)
            verified = policyctl("audit", "verify", *ledger)
            verified_json = policyctl("audit", "verify", *ledger, "--output=json")
        finally:
            tamper(-1)
        # verify names the first bad index, exit code 3 (text and JSON alike).
        self.assertEqual(verified.returncode, 3, verified.stdout + verified.stderr)
        self.assertRegex(verified.stdout, r"^INVALID at index \d+: ")
        self.assertEqual(verified_json.returncode, 3, verified_json.stderr)
        self.assertFalse(json.loads(verified_json.stdout).get("valid", False))
        # The summary's totals come with the verdict, and its exit code says it as verify's.
        self.assertEqual(summary.returncode, 3, summary.stdout + summary.stderr)
        self.assertIn("integrity INVALID at index", summary.stdout)
        self.assertEqual(changed.returncode, 1, changed.stdout)
        self.assertIn("DATA_LOSS", changed.stderr)
        self.assertIn("its fields do not match its leaf hash", changed.stderr)
        self.assertEqual(policyctl("audit", "prove", *ledger, f"--request_id={request_id}",
                                   f"--public_key={public_key}").returncode, 0)

    def test_no_compliant_region_is_a_deny(self):
        staging = self.key_for_this_test("bob", "support-eu-staging", keys_pb2.ENVIRONMENT_STAGING)
        r = self.decide(key=staging, residency=R.RESIDENCY_APAC)
        self.assertEqual(r.verdict, E.VERDICT_DENY)
        self.assertEqual(r.reason, "NO_COMPLIANT_REGION")

    def test_a_project_kept_in_the_eu_routes_every_call_there(self):
        """support-eu's data policy keeps its calls in the EU: a request requiring no
        residency (or global) is routed within it, one requiring another is a recorded DENY,
        and the ledger says where each allowed call had to stay."""
        for residency in (R.RESIDENCY_UNSPECIFIED, R.RESIDENCY_GLOBAL, R.RESIDENCY_EU):
            with self.subTest(residency=R.Residency.Name(residency)):
                request_id = f"e2e-{uuid.uuid4().hex[:12]}"
                r = self.decide(residency=residency, request_id=request_id)
                self.assertEqual(r.verdict, E.VERDICT_ALLOW, (r.reason, r.message))
                self.assertEqual(r.endpoint.residency, R.RESIDENCY_EU, r.endpoint.id)
                self.assertEqual(self.ledger_entry(request_id).metadata["residency"], "eu")
        for residency, name in ((R.RESIDENCY_US, "us"), (R.RESIDENCY_APAC, "apac")):
            with self.subTest(residency=name):
                request_id = f"e2e-{uuid.uuid4().hex[:12]}"
                r = self.decide(residency=residency, request_id=request_id)
                self.assertEqual((r.verdict, r.reason), (E.VERDICT_DENY, "RESIDENCY_NOT_ALLOWED"))
                self.assertEqual(r.message,
                                 f"the request requires {name}; the project's data policy keeps "
                                 "its calls in eu (rule project.residency)")
                entry = self.ledger_entry(request_id)
                self.assertEqual(entry.action, audit_pb2.ACTION_DECISION_DENY)
                self.assertEqual(entry.metadata["reason"], "RESIDENCY_NOT_ALLOWED")
        # A project without a residency of its own records none: anywhere would do.
        staging = self.key_for_this_test("bob", "support-eu-staging", keys_pb2.ENVIRONMENT_STAGING)
        request_id = f"e2e-{uuid.uuid4().hex[:12]}"
        r = self.decide(key=staging, residency=R.RESIDENCY_UNSPECIFIED, request_id=request_id)
        self.assertEqual(r.verdict, E.VERDICT_ALLOW, (r.reason, r.message))
        self.assertNotIn("residency",
                         self.ledger_entry(request_id, "support-eu-staging", "staging").metadata)
        # Through Envoy, the header asking for another residency is refused alike.
        denied = self.envoy_check('{"model": "gpt-4o", "max_tokens": 50, "messages": '
                                  '[{"role": "user", "content": "Summarise it."}]}',
                                  residency="us")
        self.assertEqual(denied.denied_response.status.code, 403, denied)
        self.assertIn("RESIDENCY_NOT_ALLOWED", denied.denied_response.body)

    def test_rate_limited_with_retry_after(self):
        # playground: 10 requests a minute per member; carol is a member there.
        key = new_key("carol", "playground", keys_pb2.ENVIRONMENT_SANDBOX)
        verdicts = [self.decide(key=key, model="gpt-4o-mini", residency=R.RESIDENCY_UNSPECIFIED,
                                text="Say hello.", tokens=10) for _ in range(12)]
        denied = [v for v in verdicts if v.verdict == E.VERDICT_DENY]
        self.assertTrue(denied, [v.reason for v in verdicts])
        self.assertEqual(denied[0].reason, "RATE_LIMITED")
        self.assertGreater(denied[0].retry_after.seconds + denied[0].retry_after.nanos, 0)
        # policyctl's text names when to retry.
        text = run_policyctl("decide", "--model=gpt-4o-mini", "--message=Say hello.",
                             "--tokens=10", api_key=key)
        self.assertEqual(text.returncode, 3, text.stdout + text.stderr)
        self.assertRegex(text.stdout, r"^DENY   RATE_LIMITED: .*  retry after \d")

    def test_retries_and_denials_after_the_check_give_the_request_unit_back(self):
        # A member of playground of their own: 10 requests a minute.
        _, key = self.new_playground_member("rita")

        def decide(request_id, text="Say hello.", tokens=10):
            return self.decide(key=key, model="gpt-4o-mini", residency=R.RESIDENCY_UNSPECIFIED,
                               text=text, tokens=tokens, request_id=request_id)

        # One request retried twice the member's minute over: one decision, one request unit.
        request_id = f"retry-{uuid.uuid4().hex[:12]}"
        answers = [decide(request_id) for _ in range(20)]
        self.assertEqual({(a.verdict, a.audit_id) for a in answers},
                         {(E.VERDICT_ALLOW, answers[0].audit_id)}, [a.reason for a in answers])
        # Allowed by authz, then blocked by the content (nothing estimated): never sent to the
        # model, so the request unit comes back. The edge gives it back after answering: a
        # request right after may find it still on its way (RATE_LIMITED), never for long.
        def answered(prefix, wanted, **fields):
            answer = decide(f"{prefix}-{uuid.uuid4().hex[:12]}", **fields)
            if answer.reason == "RATE_LIMITED":
                return False
            self.assertTrue(wanted(answer), (answer.verdict, answer.reason, answer.message))
            return True

        for i in range(12):
            pt.wait_until(lambda: answered(
                "blocked", lambda a: a.reason == "PII_BLOCKED", tokens=0,
                text="Why does boto reject AKIAIOSFODNN7EXAMPLE in us-east-1?"),
                timeout=5, interval=0.05, message=f"blocked request {i} judged on its content")
        # The minute is not used up: a new request is allowed.
        pt.wait_until(lambda: answered("fresh", lambda a: a.verdict == E.VERDICT_ALLOW),
                      timeout=5, interval=0.05, message="a new request allowed")

    def test_a_key_denied_in_a_loop_is_refused_at_the_door_unrecorded(self):
        # The edge runs with the default denial budget: 100 denials in a row, then ten a second.
        key = new_key("bob", "support-eu")
        key_id = "key_" + key[len("psk_proj_"):][:17]
        denied, let_in = 0, 0

        def spend_budget():
            """Denied requests until the key is refused; returns the refusal."""
            nonlocal denied
            for _ in range(400):
                try:
                    r = self.decide(key=key, model="o3-mini")  # Off support-eu's allowlist.
                except grpc.RpcError as e:
                    return e
                self.assertEqual(r.reason, "MODEL_NOT_ALLOWED")
                denied += 1
            self.fail("400 denials of one key and no refusal")

        refused = spend_budget()
        self.assertGreaterEqual(denied, 100)
        self.assertEqual(refused.code(), C.RESOURCE_EXHAUSTED, refused.details())
        self.assertRegex(refused.details(),
                         r"^too many denied requests for this key; retry after \d+ s$")
        self.assertEqual(pt.error_reason(refused), ("TOO_MANY_DENIALS", "edge.policy-suite"))
        from google.rpc import status_pb2
        retry = [d for d in pt.error_status(refused).details
                 if d.type_url == "type.googleapis.com/google.rpc.RetryInfo"]
        self.assertEqual(len(retry), 1)
        info = status_pb2.RetryInfo()
        info.ParseFromString(retry[0].value)
        self.assertGreater(info.retry_delay.seconds * 10**9 + info.retry_delay.nanos, 0)

        # Even a request that would be allowed, and through Envoy too (429, before the body).
        # The budget refills at ten a second, so each is tried right after the budget is spent
        # again: a pause of a loaded machine in between may let one in, not ten in a row.
        def refused_once_spent(attempt):
            for _ in range(10):
                spend_budget()
                refusal = attempt()
                if refusal is not None:
                    return refusal
            self.fail("a spent budget let ten requests in a row through")

        def decide_allowed():
            nonlocal let_in
            try:
                self.assertEqual(self.decide(key=key).verdict, E.VERDICT_ALLOW)
            except grpc.RpcError as e:
                return e
            let_in += 1
            return None

        allowed = refused_once_spent(decide_allowed)
        self.assertEqual(allowed.code(), C.RESOURCE_EXHAUSTED)

        def envoy_throttled():
            r = self.envoy_check("not json", key=key)
            return r if r.denied_response.status.code == 429 else None

        throttled = refused_once_spent(envoy_throttled)
        self.assertIn("TOO_MANY_DENIALS", throttled.denied_response.body)
        self.assertTrue(any(h.header.key == "retry-after"
                            for h in throttled.denied_response.headers), throttled)
        # The ledger holds the decisions and nothing of the refusals (besides the key's
        # creation).
        entries = [e for e in self.ledger_entries() if e.metadata["key_id"] == key_id
                   and e.request_id.startswith("decision:")]
        self.assertEqual(len([e for e in entries if e.action == audit_pb2.ACTION_DECISION_DENY]),
                         denied)
        self.assertEqual(len(entries), denied + let_in)
        metrics = pt.scrape_metrics(P["edge"].metrics_port)
        self.assertGreaterEqual(pt.metric_value(
            metrics, "policy_edge_denial_budget_refusals_total", api="decide"), 2)
        self.assertGreaterEqual(pt.metric_value(
            metrics, "policy_edge_denial_budget_refusals_total", api="ext_authz"), 1)
        # Another key of the same member is unaffected.
        self.assertEqual(self.decide(key=new_key("bob", "support-eu")).verdict, E.VERDICT_ALLOW)

    def test_usage_reports_feed_health_until_the_eu_fails_over_inside_the_eu(self):
        r = self.decide()
        self.assertEqual(r.endpoint.id, "westeurope")
        usage = edge().ReportUsage(E.ReportUsageRequest(
            api_key=self.bob.encode(), request_id=r.request_id, endpoint_id=r.endpoint.id,
            model="gpt-4o", estimated_tokens=200, actual_tokens=150,
            latency={"nanos": 300_000_000}, outcome=E.UPSTREAM_OUTCOME_SUCCESS,
            http_status=200), timeout=10)
        self.assertEqual(usage.adjusted_tokens, -50)
        self.assertTrue(usage.audit_id.startswith("support-eu/production/"))
        for _ in range(3):
            d = self.decide()
            edge().ReportUsage(E.ReportUsageRequest(
                api_key=self.bob.encode(), request_id=d.request_id, endpoint_id="westeurope",
                model="gpt-4o", estimated_tokens=200, actual_tokens=0,
                outcome=E.UPSTREAM_OUTCOME_ERROR, http_status=503), timeout=10)
        r = self.decide()
        self.assertEqual(r.verdict, E.VERDICT_ALLOW)
        self.assertEqual(r.endpoint.id, "swedencentral")
        self.assertTrue(r.failover)
        err = pt.call_error(edge().ReportUsage, E.ReportUsageRequest(
            api_key=self.bob.encode(), request_id=r.request_id, endpoint_id="nowhere",
            model="gpt-4o", outcome=E.UPSTREAM_OUTCOME_SUCCESS), timeout=10)
        self.assertEqual(err.code(), C.INVALID_ARGUMENT)
        self.assertIn("endpoint_id", err.details())
        # Usage of a request never decided (a budget refilled for free), or of another key's
        # decision, changes nothing.
        err = pt.call_error(edge().ReportUsage, E.ReportUsageRequest(
            api_key=self.bob.encode(), request_id=f"never-{uuid.uuid4().hex}", model="gpt-4o",
            estimated_tokens=10_000_000, actual_tokens=0, outcome=E.UPSTREAM_OUTCOME_SUCCESS),
            timeout=10)
        self.assertEqual(err.code(), C.FAILED_PRECONDITION, err.details())
        err = pt.call_error(edge().ReportUsage, E.ReportUsageRequest(
            api_key=new_key("bob", "support-eu").encode(), request_id=r.request_id,
            model="gpt-4o", actual_tokens=0, outcome=E.UPSTREAM_OUTCOME_ERROR), timeout=10)
        # Answered as no decision at all: nothing about another key's requests shows.
        self.assertEqual((err.code(), err.details()),
                         (C.FAILED_PRECONDITION,
                          "request_id: no decision of this key was made under this id"))

    def test_a_call_outliving_its_key_still_reports_its_usage(self):
        """A call decided before its key expired finishes after: its usage is still taken
        with that key, which decides nothing more. Past a rotation's overlap the successor
        reports for the old key; a revoked key reports nothing."""
        keys = keys_pb2_grpc.KeyServiceStub(P["keys"].channel)

        def report(secret, decided):
            return edge().ReportUsage(E.ReportUsageRequest(
                api_key=secret.encode(), request_id=decided.request_id, model="gpt-4o",
                actual_tokens=120, latency={"nanos": 200_000_000},
                outcome=E.UPSTREAM_OUTCOME_SUCCESS, http_status=200), timeout=10)

        short_lived = keys.CreateKey(keys_pb2.CreateKeyRequest(
            request_id=uuid.uuid4().hex, kind=keys_pb2.KEY_KIND_PROJECT,
            owner=keys_pb2.Principal(type=keys_pb2.PRINCIPAL_TYPE_MEMBER, id="bob"),
            project="support-eu", environment=keys_pb2.ENVIRONMENT_PRODUCTION,
            scopes=["chat.completions"], ttl={"seconds": 2}), timeout=10).secret
        decided = self.decide(key=short_lived)
        self.assertEqual(decided.verdict, E.VERDICT_ALLOW, decided.message)
        pt.wait_until(lambda: pt.call_code(self.decide, key=short_lived) == C.UNAUTHENTICATED,
                      timeout=10, message="the key expires")
        self.assertTrue(report(short_lived, decided).audit_id.startswith("support-eu/"))
        self.assertEqual(self.usage_entry(decided.request_id).action, audit_pb2.ACTION_API_CALL)
        # Of a request it never decided, the expired key is not valid, as a revoked one is.
        never = E.DecideResponse(request_id=f"never-{uuid.uuid4().hex}")
        err = pt.call_error(report, short_lived, never)
        self.assertEqual((err.code(), err.details()), (C.UNAUTHENTICATED, "API key is not valid"))

        old = self.key_for_this_test("bob", "support-eu", keys_pb2.ENVIRONMENT_PRODUCTION)
        decided = self.decide(key=old)
        self.assertEqual(decided.verdict, E.VERDICT_ALLOW, decided.message)
        rotated = keys.RotateKey(keys_pb2.RotateKeyRequest(
            request_id=uuid.uuid4().hex, key_id="key_" + old[len("psk_proj_"):][:17],
            overlap={"nanos": 1_000_000}), timeout=10)
        self.addCleanup(keys.RevokeKey, keys_pb2.RevokeKeyRequest(
            key_id=rotated.new_key.key_id, reason="test over"), timeout=10)
        time.sleep(0.05)  # The overlap is over.
        self.assertEqual(pt.call_code(report, old, decided), C.UNAUTHENTICATED)
        report(rotated.secret, decided)
        self.assertEqual(self.usage_entry(decided.request_id).action, audit_pb2.ACTION_API_CALL)

        leaked = self.key_for_this_test("bob", "support-eu", keys_pb2.ENVIRONMENT_PRODUCTION)
        decided = self.decide(key=leaked)
        self.assertEqual(decided.verdict, E.VERDICT_ALLOW, decided.message)
        keys.RevokeKey(keys_pb2.RevokeKeyRequest(
            key_id="key_" + leaked[len("psk_proj_"):][:17], reason="leaked"), timeout=10)
        err = pt.call_error(report, leaked, decided)
        self.assertEqual(err.code(), C.UNAUTHENTICATED, err.details())

    def test_the_docs_backend_example_chats_restores_and_reports(self):
        """docs/edge.md's Python example, run as written: two turns of a chat through the
        edge with a model answering in chunks that cut a placeholder, each turn's usage
        reported; a failed model call reported as such; a DENY raised."""
        doc = (pt.REPO_ROOT / "docs" / "edge.md").read_text()
        blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
        self.assertEqual(len(blocks), 1)
        example = {"__name__": "edge_example"}
        exec(blocks[0], example)  # noqa: S102 - the documentation's own code
        ask = example["ask"]
        calls = []

        def call_llm(endpoint, headers, messages):
            calls.append((headers, [m.content for m in messages]))
            placeholder = re.search(rb"<EMAIL_ADDRESS_[0-9]+>", messages[0].content).group(0)
            return 200, [b"Writing to " + placeholder[:7], placeholder[7:] + b" now."], 42

        key = self.key_for_this_test("bob", "support-eu", keys_pb2.ENVIRONMENT_PRODUCTION)
        conversation = [("user", b"Mail jane.doe@example.com about her refund.")]
        answer = ask(edge(), key.encode(), conversation, call_llm)
        self.assertEqual(answer, b"Writing to jane.doe@example.com now.")
        conversation += [("assistant", answer), ("user", b"Now draft the mail.")]
        self.assertEqual(ask(edge(), key.encode(), conversation, call_llm), answer)
        self.assertEqual([len(contents) for _, contents in calls], [1, 3])

        def usage_of(headers):
            return self.usage_entry(headers["x-policy-request-id"])

        for headers, contents in calls:
            # The model never saw the address; each call carried its decision's audit id.
            self.assertFalse(any(b"jane.doe" in c for c in contents), contents)
            self.assertTrue(headers["x-policy-audit-id"].startswith("support-eu/production/"))
            usage = usage_of(headers)
            self.assertEqual((usage.action, usage.tokens, usage.outcome),
                             (audit_pb2.ACTION_API_CALL, 42, audit_pb2.OUTCOME_SUCCESS))

        def timed_out(endpoint, headers, messages):
            calls.append((headers, []))
            raise TimeoutError("the provider did not answer")

        with self.assertRaises(TimeoutError):
            ask(edge(), key.encode(), conversation, timed_out)
        self.assertEqual(usage_of(calls[-1][0]).outcome, audit_pb2.OUTCOME_ERROR)
        with self.assertRaisesRegex(PermissionError, "^PII_BLOCKED: "):
            ask(edge(), key.encode(), [("user", b"Is AKIAIOSFODNN7EXAMPLE valid?")], call_llm)

    def test_the_docs_node_example_chats_restores_and_reports(self):
        """docs/edge.md's Node.js example, run as written with @grpc/grpc-js and
        @grpc/proto-loader from npm: two turns of a chat whose answer comes in chunks that cut
        a placeholder and a character, each turn's usage reported; a failed model call
        reported as such; a DENY rejected with its reason."""
        doc = (pt.REPO_ROOT / "docs" / "edge.md").read_text()
        blocks = re.findall(r"```js\n(.*?)```", doc, re.S)
        self.assertEqual(len(blocks), 1)
        client = Path(os.environ.get("POLICY_BUILD_DIR", pt.REPO_ROOT / "build")) / "node-client"
        pt.npm_ci(Path(__file__).resolve().parent / "node_client", client,
                  "docs/edge.md's Node.js example")
        (client / "edge_example.js").write_text(blocks[0])
        (client / "driver.js").write_text(NODE_DRIVER)
        key = self.key_for_this_test("bob", "support-eu", keys_pb2.ENVIRONMENT_PRODUCTION)
        run = subprocess.run(["node", str(client / "driver.js"), P["edge"].address,
                              str(pt.REPO_ROOT / "proto"), key],
                             capture_output=True, text=True, timeout=60, check=False)
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        out = json.loads(run.stdout)
        answer = "Writing to jane.doe@example.com now. Zo\u00eb \u2713"
        self.assertEqual((out["first"], out["second"]), (answer, answer))
        self.assertEqual(out["denied"], "PII_BLOCKED")
        self.assertEqual(out["failed"], "the provider did not answer")
        self.assertEqual(out["refused"], 429)  # The provider's refusal, never taken for an answer.
        self.assertEqual([len(c["contents"]) for c in out["calls"]], [1, 3, 0, 3])
        for call in out["calls"]:
            # The model never saw the address; each call carried its decision's audit id.
            self.assertFalse(any("jane.doe" in c for c in call["contents"]), call)
            self.assertTrue(call["headers"]["x-policy-audit-id"].startswith(
                "support-eu/production/"))
        usages = [self.usage_entry(c["headers"]["x-policy-request-id"]) for c in out["calls"]]
        self.assertEqual([(u.action, u.tokens, u.outcome) for u in usages[:2]],
                         [(audit_pb2.ACTION_API_CALL, 42, audit_pb2.OUTCOME_SUCCESS)] * 2)
        # No answer, and the provider's refusal: both recorded as calls that failed.
        self.assertEqual([u.outcome for u in usages[2:]], [audit_pb2.OUTCOME_ERROR] * 2)

    def test_zz_a_stopped_or_killed_dependency_fails_closed_and_recovers(self):
        # Stopped (no answer at all): the caller's deadline holds, no ALLOW.
        audit = P["audit"]
        audit.stop()
        try:
            started = time.monotonic()
            code = pt.call_code(self.decide, timeout=1.0)
            elapsed = time.monotonic() - started
        finally:
            audit.resume()
        self.assertEqual(code, C.DEADLINE_EXCEEDED)
        self.assertLess(elapsed, 2.0)
        self.assertEqual(self.decide().verdict, E.VERDICT_ALLOW)

        # Killed: UNAVAILABLE at once; the edge is no longer ready and says why in its
        # metrics; decisions resume when pii is back on its address.
        logged = len(P["edge"].log_text().splitlines())
        P["pii"].kill()
        err = pt.call_error(self.decide, timeout=5)
        self.assertEqual(err.code(), C.UNAVAILABLE)
        self.assertIn("pii", err.details())
        pt.wait_until(lambda: pt.metric_value(pt.scrape_metrics(P["edge"].metrics_port),
                                              "policy_edge_dependency_up", dependency="pii") == 0,
                      timeout=10, message="the edge sees pii down")
        pt.wait_until(lambda: pt.health_status(P["edge"].channel) == "NOT_SERVING", timeout=10,
                      message="edge NOT_SERVING without pii", ignore=(grpc.RpcError,))
        metrics = pt.scrape_metrics(P["edge"].metrics_port)
        self.assertEqual(pt.metric_value(metrics, "policy_edge_dependency_up", dependency="keys"), 1)
        self.assertGreater(pt.metric_value(metrics, "policy_edge_decisions_total", api="decide",
                                           verdict="allow", reason=""), 0)
        self.assertGreater(pt.metric_value(metrics, "policy_edge_decisions_total", api="decide",
                                           verdict="error", reason="UNAVAILABLE"), 0)
        # Each dependency's latency and outcomes as the edge sees them.
        self.assertGreater(pt.metric_value(metrics, "grpc_client_handling_seconds_count",
                                           grpc_service="policy.keys.v1.KeyService",
                                           grpc_method="VerifyKey"), 0)
        self.assertGreater(pt.metric_value(metrics, "grpc_client_handled_total",
                                           grpc_service="policy.pii.v1.PiiService",
                                           grpc_method="Redact", grpc_code="Unavailable"), 0)
        self.assertGreater(pt.metric_value(metrics, "grpc_client_handled_total",
                                           grpc_service="policy.audit.v1.AuditService",
                                           grpc_method="Append", grpc_code="OK"), 0)
        # Its log names the dependency and why, once.
        down = [json.loads(line) for line in P["edge"].log_text().splitlines()[logged:]
                if "a service the edge calls is unhealthy" in line]
        self.assertEqual([(d["dependency"], d["level"]) for d in down], [("pii", "error")])
        self.assertIn("UNAVAILABLE", down[0]["health"])
        # And the decisions that failed, a few a minute, each with its request id.
        failed = [json.loads(line) for line in P["edge"].log_text().splitlines()[logged:]
                  if "a decision failed" in line]
        self.assertTrue(failed)
        self.assertEqual(failed[0]["code"], "UNAVAILABLE")
        self.assertIn("the pii service could not answer", failed[0]["message"])
        # This test's decisions state no id: the log names the one the edge made.
        self.assertTrue(failed[0]["request_id"].startswith("edge-"), failed[0])
        self.assertLessEqual(len(failed), 10)
        start_pii()
        pt.wait_until(lambda: self.decide().verdict == E.VERDICT_ALLOW, timeout=15,
                      message="decisions resume with pii back", ignore=(grpc.RpcError,))
        pt.wait_until(lambda: pt.health_status(P["edge"].channel) == "SERVING", timeout=10,
                      message="edge SERVING again", ignore=(grpc.RpcError,))
        back = [json.loads(line) for line in P["edge"].log_text().splitlines()[logged:]
                if "a service the edge calls is healthy again" in line]
        self.assertEqual([b["dependency"] for b in back], ["pii"])


class MetricsTest(unittest.TestCase):
    """Every service's /metrics, after real traffic, as Prometheus's own linter reads it, and
    the series an operator of each service needs."""

    OPERATOR_SERIES = {
        "keys": ["policy_keys_expiring_soon", "policy_keys_cache_staleness_seconds",
                 "policy_keys_cache_in_sync", "policy_keys_verifications_total"],
        "authz": ["policy_authz_snapshot_staleness_seconds", "policy_authz_decisions_total",
                  "policy_authz_rate_limited_total"],
        "pii": ["policy_pii_findings_total", "policy_pii_scanned_bytes_total"],
        "region": ["policy_region_breaker_state", "policy_region_registry_staleness_seconds",
                   "policy_region_failovers_total"],
        "audit": ["policy_audit_ledger_entries", "policy_audit_unsigned_entries",
                  "policy_audit_checkpoint_age_seconds"],
        "edge": ["policy_edge_decisions_total", "policy_edge_dependency_up",
                 "policy_edge_config_valid",
                 "grpc_client_handled_total", "grpc_client_handling_seconds_bucket"],
    }

    def test_every_services_metrics_pass_promtool_and_show_what_operators_need(self):
        SUITE.register_seed_endpoints_once()
        key = new_key("bob", "support-eu")
        self.assertEqual(edge().Decide(es.decide_request(key), timeout=10).verdict,
                         E.VERDICT_ALLOW)
        promtool = "/usr/bin/promtool"
        self.assertTrue(os.access(promtool, os.X_OK), "promtool (Debian's prometheus) missing")
        # The ledger metrics follow the checkpoint signer (every 200 ms here).
        pt.wait_until(lambda: pt.metric_value(pt.scrape_metrics(P["audit"].metrics_port),
                                              "policy_audit_checkpoint_age_seconds",
                                              project="support-eu") is not None,
                      timeout=10, message="the support-eu ledger's checkpoint age")
        for name, series in self.OPERATOR_SERIES.items():
            with self.subTest(service=name):
                text = pt.scrape_metrics(P[name].metrics_port)
                lint = subprocess.run([promtool, "check", "metrics"], input=text,
                                      capture_output=True, text=True, timeout=30)
                self.assertEqual(lint.returncode, 0, lint.stdout + lint.stderr)
                self.assertEqual(lint.stdout + lint.stderr, "")
                for metric in series + ["grpc_server_handled_total",
                                        "grpc_server_handling_seconds_bucket"]:
                    self.assertIsNotNone(pt.metric_value(text, metric), f"{name}: {metric}")
        keys = pt.scrape_metrics(P["keys"].metrics_port)
        self.assertGreaterEqual(pt.metric_value(keys, "policy_keys_cache_staleness_seconds"), 0)
        authz = pt.scrape_metrics(P["authz"].metrics_port)
        self.assertIsNotNone(pt.metric_value(authz, "policy_authz_decisions_total",
                                             reason="RATE_LIMITED"))
        audit = pt.scrape_metrics(P["audit"].metrics_port)
        self.assertGreaterEqual(pt.metric_value(audit, "policy_audit_ledger_entries",
                                                project="support-eu"), 1)


class ConfigTest(unittest.TestCase):
    def test_a_shutdown_grace_shorter_than_a_decision_is_refused_at_start(self):
        # A decision may run max_decision_time; a shorter grace would cancel calls in flight at
        # shutdown after audit recorded them.
        flags = {"listen": "127.0.0.1:0", "metrics_listen": ""}
        result = pt.run_binary(pt.service_binary("edge"), flags={
            **flags, "shutdown_grace": "1s", "max_decision_time": "5s"}, timeout=30)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("shutdown_grace (1s) must be at least max_decision_time (5s)",
                      result.stdout + result.stderr)
        # The defaults (10s, 5s) are what P["edge"] runs with.
        self.assertIn(r"\nshutdown_grace=10s\n", P["edge"].log_text())


if __name__ == "__main__":
    unittest.main()
