"""Process-level tests of the authz service: real authz binaries, real PostgreSQL, gRPC.

One database per module shared by two replicas, A and B, bootstrapped from ORG_FILE below.
Tests keep out of each other's way by working on projects and members of their own.
Needs POLICY_TEST_PG_URL (a role with CREATEDB); skips without it, or fails when
POLICY_TEST_REQUIRE_PG=1. Run: /usr/bin/python3 -m unittest -v tests.authz.test_authz_process
"""

import contextlib
import hashlib
import sys
import tempfile
import time
import unittest
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.keys import keys_support as ks  # noqa: E402
from tests.support import policy_testing as pt  # noqa: E402

import grpc  # noqa: E402
from policy.authz.v1 import authz_pb2, authz_pb2_grpc  # noqa: E402
from policy.keys.v1 import keys_pb2  # noqa: E402
from policy.pii.v1 import pii_pb2  # noqa: E402
from policy.region.v1 import region_pb2  # noqa: E402

C = grpc.StatusCode
MEMBER = authz_pb2.PRINCIPAL_KIND_MEMBER
SA = authz_pb2.PRINCIPAL_KIND_SERVICE_ACCOUNT
ALLOW = authz_pb2.VERDICT_ALLOW
DENY = authz_pb2.VERDICT_DENY
STALENESS_S = 1.0

ORG_FILE = """
projects:
  - id: support
    name: Support
    environment: production
    key_holders: members
    data_policy: {zero_data_retention: true, retention_days: 0, residency: eu,
                  pii: {US_SSN: block, EMAIL_ADDRESS: placeholder}, data_class: phi}
    models: [gpt-4o, gpt-4o-mini]
    limits: {rpm: 100000, tpm: 100000000}
  - id: limited
    name: Rate-limited project
    environment: development
    models: [gpt-4o-mini]
    limits: {rpm: 60, tpm: 6000}
  - id: tokens
    name: Token-limited project
    environment: development
    models: [gpt-4o-mini]
    limits: {rpm: 100000, tpm: 1000}
members:
  - id: olivia
    email: olivia@acme.example
    roles: [{role: owner}]
  - id: adam
    email: adam@acme.example
    roles: [{role: admin}]
  - id: mia
    email: mia@acme.example
    roles:
      - {role: member, project: support}
      - {role: member, project: limited}
      - {role: member, project: tokens}
  - id: rita
    email: rita@acme.example
    roles: [{role: reader, project: support}]
service_accounts:
  - id: sa-bot
    project: support
    permissions: [chat.completions]
    ip_allowlist: [10.20.0.0/16, "2001:db8:20::/48"]
    limits: {rpm: 100000, tpm: 100000000}
    max_key_lifetime: 30d
idp_groups:
  - name: support-engineers
    grants: [{role: member, project: support}]
    members: []
"""

PG_URL = DB = A = B = KEYS = None
_stack = None
FLAGS = dict(max_staleness=f"{STALENESS_S}s", watch_heartbeat="200ms", health_interval="100ms")


def start_authz(database_url, name, org_file, **flags):
    process = pt.ServiceProcess(pt.service_binary("authz"), flags=dict(flags, bootstrap_org_file=org_file),
                                env={"POLICY_AUTHZ_DATABASE_URL": database_url}, name=name)
    process.start()
    pt.wait_until(lambda: pt.health_status(process.channel) == "SERVING", timeout=10,
                  message=f"{name} SERVING", ignore=(grpc.RpcError,))
    return process


def setUpModule():
    global PG_URL, DB, A, B, KEYS, _stack
    PG_URL = pt.require_pg_url()
    pt.service_binary("authz")
    pt.service_binary("keys")
    _stack = contextlib.ExitStack()
    try:
        DB = _stack.enter_context(pt.test_database(PG_URL, "authz_process"))
        directory = Path(_stack.enter_context(tempfile.TemporaryDirectory()))
        org_file = directory / "org.yaml"
        org_file.write_text(ORG_FILE)
        KEYS = ks.start_keys(DB.url, ks.new_pepper(), name="keys")
        _stack.callback(KEYS.cleanup)
        ks.wait_serving(KEYS)
        # A lists removed members' keys; B's keys service is down (nothing listens there).
        A = start_authz(DB.url, "authz-a", org_file, keys_address=KEYS.address, **FLAGS)
        _stack.callback(A.cleanup)
        B = start_authz(DB.url, "authz-b", org_file,
                        keys_address=f"127.0.0.1:{pt.free_port()}", **FLAGS)
        _stack.callback(B.cleanup)
    except BaseException:
        _stack.close()
        raise


def tearDownModule():
    _stack.close()


def stub(process):
    return authz_pb2_grpc.AuthzServiceStub(process.channel)


def actor(member_id):
    return authz_pb2.Actor(member_id=member_id)


def check(process, principal, project, action="chat.completions", model="gpt-4o", kind=MEMBER,
          **fields):
    return stub(process).Check(authz_pb2.CheckRequest(
        principal=authz_pb2.Principal(kind=kind, id=principal), project=project, action=action,
        model=model, **fields), timeout=5)


def error_of(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except grpc.RpcError as e:
        return e
    raise AssertionError("the call succeeded")


class DecisionTest(unittest.TestCase):
    def test_members_are_allowed_and_denied_with_reasons(self):
        allowed = check(A, "mia", "support", estimated_tokens=100)
        self.assertEqual(allowed.verdict, ALLOW)
        self.assertEqual(allowed.reason, "")
        self.assertGreater(allowed.org_version, 0)
        self.assertEqual({b.name for b in allowed.budgets}, {"project.rpm", "project.tpm"})
        # The project's data policy travels with the decision, for routing.
        self.assertTrue(allowed.zero_data_retention)
        self.assertFalse(check(A, "mia", "tokens", model="gpt-4o-mini").zero_data_retention)
        self.assertEqual(allowed.residency, region_pb2.RESIDENCY_EU)
        self.assertEqual(check(A, "mia", "tokens", model="gpt-4o-mini").residency,
                         region_pb2.RESIDENCY_GLOBAL)
        # So do the project's own PII rules, for the edge's redaction; a project without has
        # none.
        self.assertEqual([r.entity_type for r in allowed.pii.rules], ["EMAIL_ADDRESS", "US_SSN"])
        self.assertEqual(len(check(A, "mia", "tokens", model="gpt-4o-mini").pii.rules), 0)
        # And its data class; a project that states none is internal.
        self.assertEqual(allowed.data_class, pii_pb2.DATA_CLASS_PHI)
        self.assertEqual(check(A, "mia", "tokens", model="gpt-4o-mini").data_class,
                         pii_pb2.DATA_CLASS_INTERNAL)
        # A request requiring another residency than the project keeps to is refused, before
        # any budget is taken, and told the project's.
        for asked in (region_pb2.RESIDENCY_EU, region_pb2.RESIDENCY_GLOBAL):
            self.assertEqual(check(A, "mia", "support", residency=asked).verdict, ALLOW)
        elsewhere = check(A, "mia", "support", residency=region_pb2.RESIDENCY_US, explain=True)
        self.assertEqual((elsewhere.verdict, elsewhere.reason, elsewhere.rule),
                         (DENY, "RESIDENCY_NOT_ALLOWED", "project.residency"))
        self.assertEqual(elsewhere.residency, region_pb2.RESIDENCY_EU)
        self.assertEqual(len(elsewhere.budgets), 0)
        self.assertEqual(elsewhere.trace[-1].detail,
                         "the request requires us; support keeps its data in eu")
        e = error_of(check, A, "mia", "support", residency=42)
        self.assertEqual(e.code(), C.INVALID_ARGUMENT)
        self.assertEqual(e.details(), "residency: unknown value 42")
        denied = check(A, "mia", "support", model="gpt-3.5-turbo", explain=True)
        self.assertEqual((denied.verdict, denied.reason), (DENY, "MODEL_NOT_ALLOWED"))
        self.assertEqual(denied.rule, "project.model_allowlist")
        rules = [(r.rule, r.passed) for r in denied.trace]
        self.assertIn(("principal.exists", True), rules)
        self.assertEqual(rules[-1], ("project.model_allowlist", False))
        self.assertIn("gpt-3.5-turbo", denied.trace[-1].detail)
        reader = check(A, "rita", "support")
        self.assertEqual((reader.verdict, reader.reason), (DENY, "PERMISSION_DENIED"))
        self.assertEqual(check(A, "rita", "support", action="settings.read", model="").verdict,
                         ALLOW)
        self.assertEqual(check(A, "ghost", "support").reason, "UNKNOWN_PRINCIPAL")

    def test_service_accounts_are_held_to_their_allowlist_on_bits(self):
        self.assertEqual(check(A, "sa-bot", "support", kind=SA, source_ip="10.20.255.1").verdict,
                         ALLOW)
        self.assertEqual(check(A, "sa-bot", "support", kind=SA,
                               source_ip="2001:db8:20:ffff::1").verdict, ALLOW)
        # 10.21.x shares the first octet and more with 10.20.0.0/16 but not the 16 bits.
        outside = check(A, "sa-bot", "support", kind=SA, source_ip="10.21.0.1")
        self.assertEqual((outside.verdict, outside.reason), (DENY, "IP_NOT_ALLOWED"))
        self.assertEqual(check(A, "sa-bot", "support", kind=SA, source_ip="2001:db8:21::1").reason,
                         "IP_NOT_ALLOWED")
        self.assertEqual(check(A, "sa-bot", "support", kind=SA, source_ip="10.20.0.1",
                               action="embeddings").reason, "PERMISSION_DENIED")

    def test_a_source_ip_is_the_whole_text_or_invalid(self):
        # inet_pton stops at a NUL: "10.20.1.7\0junk" was read as 10.20.1.7 and allowed.
        for ip in ("10.20.1.7\x00junk", "10.21.0.1\x00", "2001:db8:20::1\x00x", "10.20.1.7 x"):
            with self.subTest(ip=ip):
                e = error_of(check, A, "sa-bot", "support", kind=SA, source_ip=ip)
                self.assertEqual(e.code(), C.INVALID_ARGUMENT, e.details())
                self.assertIn("source_ip", e.details())

    def test_malformed_requests_are_invalid_argument_naming_the_problem(self):
        cases = [
            (dict(principal="mia", project="support", action="chat.complete"), "unknown action"),
            (dict(principal="mia", project="support", model=""), "model"),
            (dict(principal="sa-bot", project="support", kind=SA), "source_ip"),
            (dict(principal="sa-bot", project="support", kind=SA, source_ip="10.0.0.256"),
             "source_ip"),
            (dict(principal="", project="support"), "principal.id"),
            (dict(principal="mia", project="support", kind=0), "principal.kind"),
            (dict(principal="mia", project="support", estimated_tokens=-1), "estimated_tokens"),
            (dict(principal="mia", project="support", estimated_tokens=10_000_000_001),
             "estimated_tokens"),
            (dict(principal="mia", project="ML.Platform"), "project"),
            (dict(principal="mia", project="support", model="m" * 129), "model"),
        ]
        for fields, needle in cases:
            with self.subTest(fields=fields):
                e = error_of(check, A, **fields)
                self.assertEqual(e.code(), C.INVALID_ARGUMENT, e.details())
                self.assertIn(needle, e.details())


class AdministrationTest(unittest.TestCase):
    def test_a_projects_pii_rules_are_checked_kept_unless_stated_and_cleared(self):
        def rule(entity_type, action, operator=0):
            return pii_pb2.EntityRule(entity_type=entity_type, action=action, operator=operator)

        project = authz_pb2.Project(
            id="pii-rules", name="PII rules", environment="development",
            allowed_models=["gpt-4o"], data_policy=authz_pb2.DataPolicy(
                retention_days=30, data_class=pii_pb2.DATA_CLASS_PUBLIC,
                pii=authz_pb2.PiiPolicy(rules=[
                    rule("US_SSN", pii_pb2.ACTION_BLOCK),
                    rule("EMAIL_ADDRESS", pii_pb2.ACTION_REDACT, pii_pb2.OPERATOR_MASK)])))
        for bad, named in (
                ([rule("us_ssn", pii_pb2.ACTION_BLOCK)],
                 "project.data_policy.pii.rules[0]: 'us_ssn' is not an entity type name"),
                ([rule("US_SSN", pii_pb2.ACTION_BLOCK), rule("US_SSN", pii_pb2.ACTION_ALLOW)],
                 "project.data_policy.pii.rules[1]: US_SSN has another rule already"),
                ([rule("US_SSN", 7)], "project.data_policy.pii.rules[0].action: unknown value 7")):
            with self.subTest(named=named):
                wrong = authz_pb2.Project()
                wrong.CopyFrom(project)
                del wrong.data_policy.pii.rules[:]
                wrong.data_policy.pii.rules.extend(bad)
                e = error_of(stub(A).CreateProject, authz_pb2.CreateProjectRequest(
                    actor=actor("olivia"), project=wrong), timeout=5)
                self.assertEqual(e.code(), C.INVALID_ARGUMENT, e.details())
                self.assertIn(named, e.details())
        created = stub(A).CreateProject(authz_pb2.CreateProjectRequest(
            actor=actor("olivia"), project=project), timeout=5)
        self.assertEqual([r.entity_type for r in created.data_policy.pii.rules],
                         ["EMAIL_ADDRESS", "US_SSN"])
        self.assertEqual(created.data_policy.data_class, pii_pb2.DATA_CLASS_PUBLIC)
        e = error_of(stub(A).UpdateProject, authz_pb2.UpdateProjectRequest(
            actor=actor("olivia"), project=authz_pb2.Project(
                id="pii-rules", name="PII rules", environment="development",
                data_policy=authz_pb2.DataPolicy(data_class=9))), timeout=5)
        self.assertEqual((e.code(), e.details()),
                         (C.INVALID_ARGUMENT, "project.data_policy.data_class: unknown value 9"))
        # An update whose data policy states no pii and no class (a client unaware of them)
        # keeps them.
        unaware = authz_pb2.Project()
        unaware.CopyFrom(project)
        unaware.data_policy.ClearField("pii")
        unaware.data_policy.ClearField("data_class")
        unaware.data_policy.retention_days = 7
        kept = stub(A).UpdateProject(authz_pb2.UpdateProjectRequest(
            actor=actor("olivia"), project=unaware), timeout=5)
        self.assertEqual(kept.data_policy.retention_days, 7)
        self.assertEqual(kept.data_policy.pii, created.data_policy.pii)
        self.assertEqual(kept.data_policy.data_class, pii_pb2.DATA_CLASS_PUBLIC)
        # Stated with no rules: none.
        unaware.data_policy.pii.SetInParent()
        cleared = stub(A).UpdateProject(authz_pb2.UpdateProjectRequest(
            actor=actor("olivia"), project=unaware), timeout=5)
        self.assertEqual(len(cleared.data_policy.pii.rules), 0)

    def test_roles_decide_who_administers_what(self):
        project = authz_pb2.Project(id="adm-1", name="Admin test", environment="staging",
                                    allowed_models=["gpt-4o"])
        e = error_of(stub(A).CreateProject, authz_pb2.CreateProjectRequest(
            actor=actor("rita"), project=project), timeout=5)
        self.assertEqual(e.code(), C.PERMISSION_DENIED)
        created = stub(A).CreateProject(authz_pb2.CreateProjectRequest(
            actor=actor("adam"), project=project), timeout=5)
        self.assertEqual(created.id, "adm-1")
        project.limits.rpm = 10
        e = error_of(stub(A).UpdateProject, authz_pb2.UpdateProjectRequest(
            actor=actor("adam"), project=project), timeout=5)
        self.assertEqual(e.code(), C.PERMISSION_DENIED)
        self.assertIn("billing.manage", e.details())
        updated = stub(A).UpdateProject(authz_pb2.UpdateProjectRequest(
            actor=actor("olivia"), project=project), timeout=5)
        self.assertEqual(updated.limits.rpm, 10)
        # A retried creation of what is stored changes nothing; other content is refused.
        again = stub(A).CreateProject(authz_pb2.CreateProjectRequest(
            actor=actor("olivia"), project=project), timeout=5)
        self.assertEqual(again, updated)
        project.name = "Another name"
        e = error_of(stub(A).CreateProject, authz_pb2.CreateProjectRequest(
            actor=actor("olivia"), project=project), timeout=5)
        self.assertEqual(e.code(), C.ALREADY_EXISTS)
        self.assertIn("different name", e.details())

    def test_a_reader_lists_the_members_of_a_project_it_reads_and_changes_nothing(self):
        # rita reads support: its members (mia, rita), not the organisation's nor limited's.
        listed = stub(A).ListMembers(authz_pb2.ListMembersRequest(
            actor=actor("rita"), project="support"), timeout=5)
        ids = {m.id for m in listed.members}
        self.assertTrue({"mia", "rita"} <= ids, ids)
        self.assertNotIn("olivia", ids)
        # ... and their roles in support, not where else they work (mia is in three projects).
        mia = next(m for m in listed.members if m.id == "mia")
        self.assertEqual([(g.role, g.project) for g in mia.grants], [("member", "support")])
        # Whoever reads the organisation sees all of them in the same listing.
        by_admin = stub(A).ListMembers(authz_pb2.ListMembersRequest(
            actor=actor("adam"), project="support"), timeout=5)
        mia = next(m for m in by_admin.members if m.id == "mia")
        self.assertEqual(sorted(g.project for g in mia.grants), ["limited", "support", "tokens"])
        for project in ("", "limited"):
            with self.subTest(project=project):
                e = error_of(stub(A).ListMembers, authz_pb2.ListMembersRequest(
                    actor=actor("rita"), project=project), timeout=5)
                self.assertEqual(e.code(), C.PERMISSION_DENIED)
        e = error_of(stub(A).ListMembers, authz_pb2.ListMembersRequest(
            actor=actor("rita"), project="no-such-project"), timeout=5)
        self.assertEqual(e.code(), C.NOT_FOUND)
        # Still read-only.
        e = error_of(stub(A).AddMember, authz_pb2.AddMemberRequest(
            actor=actor("rita"), member=authz_pb2.Member(
                id="rita-friend", email="rita-friend@acme.example",
                grants=[authz_pb2.RoleGrant(role="reader", project="support")])), timeout=5)
        self.assertEqual(e.code(), C.PERMISSION_DENIED)
        e = error_of(stub(A).SetMemberRoles, authz_pb2.SetMemberRolesRequest(
            actor=actor("rita"), id="rita",
            grants=[authz_pb2.RoleGrant(role="admin")]), timeout=5)
        self.assertEqual(e.code(), C.PERMISSION_DENIED)
        e = error_of(stub(A).RemoveMember, authz_pb2.RemoveMemberRequest(
            actor=actor("rita"), id="mia"), timeout=5)
        self.assertEqual(e.code(), C.PERMISSION_DENIED)

    def test_a_projects_environment_is_refused_a_change(self):
        project = authz_pb2.Project(id="env-1", name="Env test", environment="development",
                                    allowed_models=["gpt-4o"])
        stub(A).CreateProject(authz_pb2.CreateProjectRequest(
            actor=actor("adam"), project=project), timeout=5)
        moved = authz_pb2.Project()
        moved.CopyFrom(project)
        moved.environment = "production"
        e = error_of(stub(A).UpdateProject, authz_pb2.UpdateProjectRequest(
            actor=actor("olivia"), project=moved), timeout=5)
        self.assertEqual(e.code(), C.FAILED_PRECONDITION)
        self.assertIn("environment: development cannot change to production", e.details())
        got = stub(A).GetProject(authz_pb2.GetProjectRequest(actor=actor("adam"), id="env-1"),
                                 timeout=5)
        self.assertEqual((got.environment, got.key_holders),
                         ("development", authz_pb2.KEY_HOLDERS_MEMBERS))
        project.name = "Env test, renamed"
        renamed = stub(A).UpdateProject(authz_pb2.UpdateProjectRequest(
            actor=actor("adam"), project=project), timeout=5)
        self.assertEqual((renamed.name, renamed.environment), ("Env test, renamed", "development"))

    def test_an_update_from_a_stale_read_changes_nothing(self):
        def get():
            return stub(A).GetProject(authz_pb2.GetProjectRequest(actor=actor("adam"),
                                                                  id="cas-1"), timeout=5)

        def update(project, expected=None):
            return stub(A).UpdateProject(authz_pb2.UpdateProjectRequest(
                actor=actor("adam"), project=project, expected=expected), timeout=5)

        def copy_of(project, **fields):
            copy = authz_pb2.Project()
            copy.CopyFrom(project)
            for name, value in fields.items():
                setattr(copy, name, value)
            return copy

        stub(A).CreateProject(authz_pb2.CreateProjectRequest(actor=actor("adam"), project=(
            authz_pb2.Project(id="cas-1", name="CAS", environment="development",
                              allowed_models=["gpt-4o"]))), timeout=5)
        read = get()
        meanwhile = copy_of(read)
        meanwhile.allowed_models.append("o3")
        update(meanwhile)
        renamed = copy_of(read, name="CAS, renamed")
        e = error_of(update, renamed, read)
        self.assertEqual(e.code(), C.FAILED_PRECONDITION)
        self.assertIn("changed since it was read", e.details())
        got = get()
        self.assertEqual((got.name, list(got.allowed_models)), ("CAS", ["gpt-4o", "o3"]))
        e = error_of(update, renamed, copy_of(got, id="env-1"))
        self.assertEqual(e.code(), C.INVALID_ARGUMENT)
        self.assertIn("expected.id", e.details())

    def test_project_ids_follow_the_rule_every_service_shares(self):
        # keys and the audit ledger take only these ids: a project authz created with another
        # shape could never record a decision.
        for project_id in ("ML.Platform", "Probe-1", "a:b", "p" * 65):
            with self.subTest(project_id=project_id):
                e = error_of(stub(A).CreateProject, authz_pb2.CreateProjectRequest(
                    actor=actor("olivia"), project=authz_pb2.Project(
                        id=project_id, name="P", environment="sandbox")), timeout=5)
                self.assertEqual(e.code(), C.INVALID_ARGUMENT, e.details())
                self.assertIn("project.id", e.details())
                e = error_of(stub(A).GetProject, authz_pb2.GetProjectRequest(
                    actor=actor("olivia"), id=project_id), timeout=5)
                self.assertEqual(e.code(), C.INVALID_ARGUMENT, e.details())

    def test_limits_are_bounded_and_the_largest_work_in_every_check(self):
        def create(project_id, **limits):
            return stub(A).CreateProject(authz_pb2.CreateProjectRequest(
                actor=actor("olivia"), project=authz_pb2.Project(
                    id=project_id, name="Limits", environment="sandbox",
                    allowed_models=["gpt-4o"], limits=authz_pb2.RateLimits(**limits),
                    member_limits=authz_pb2.RateLimits(**limits))), timeout=5)

        for limits in (dict(rpm=10_000_001, tpm=1), dict(rpm=1, tpm=10_000_000_001),
                       dict(rpm=2**63 - 1, tpm=2**63 - 1)):
            with self.subTest(limits=limits):
                e = error_of(create, "over-limits", **limits)
                self.assertEqual(e.code(), C.INVALID_ARGUMENT, e.details())
                self.assertIn("more than the maximum", e.details())
        create("max-limits", rpm=10_000_000, tpm=10_000_000_000)
        stub(A).AddMember(authz_pb2.AddMemberRequest(actor=actor("olivia"), member=authz_pb2.Member(
            id="max-user", email="max-user@acme.example",
            grants=[authz_pb2.RoleGrant(role="member", project="max-limits")])), timeout=5)
        # Every bucket at its largest, against PostgreSQL: ALLOW, then a rate-limit DENY, never
        # INTERNAL ("bigint out of range").
        first = check(A, "max-user", "max-limits", estimated_tokens=10_000_000_000)
        self.assertEqual(first.verdict, ALLOW)
        second = check(A, "max-user", "max-limits", estimated_tokens=10_000_000_000)
        self.assertEqual((second.verdict, second.reason), (DENY, "RATE_LIMITED"))
        self.assertEqual(check(A, "max-user", "max-limits", estimated_tokens=0).verdict, ALLOW)

    def test_huge_values_are_invalid_argument_naming_the_field_not_echoed(self):
        # A reply quoting a 1 MB value would exceed gRPC's metadata limit (RESOURCE_EXHAUSTED).
        huge = "x" * (1 << 20)
        calls = [
            ("id", stub(A).GetMember, authz_pb2.GetMemberRequest(actor=actor("olivia"), id=huge)),
            ("id", stub(A).RemoveMember,
             authz_pb2.RemoveMemberRequest(actor=actor("olivia"), id=huge)),
            ("id", stub(A).GetProject, authz_pb2.GetProjectRequest(actor=actor("olivia"), id=huge)),
            ("actor.member_id", stub(A).ListProjects,
             authz_pb2.ListProjectsRequest(actor=actor(huge))),
            ("actor.member_id", stub(A).GetMember,
             authz_pb2.GetMemberRequest(actor=actor(huge), id="mia")),
            ("id", stub(A).GetServiceAccount,
             authz_pb2.GetServiceAccountRequest(actor=actor("olivia"), id=huge)),
            ("page_token", stub(A).ListMembers,
             authz_pb2.ListMembersRequest(actor=actor("olivia"), page_token=huge)),
            ("member.id", stub(A).AddMember, authz_pb2.AddMemberRequest(
                actor=actor("olivia"), member=authz_pb2.Member(id=huge, email="h@acme.example"))),
        ]
        for field, call, request in calls:
            with self.subTest(call=call, field=field):
                e = error_of(call, request, timeout=10)
                self.assertEqual(e.code(), C.INVALID_ARGUMENT, e.details()[:200])
                self.assertIn(field, e.details())
                self.assertLess(len(e.details()), 300)

    def test_bad_input_gets_a_clear_status(self):
        sa = authz_pb2.ServiceAccount(id="sa-bad", project="support", environment="production",
                                      permissions=["chat.completions"],
                                      ip_allowlist=["10.0.0.0/8", "10.0.0.1/8"])
        e = error_of(stub(A).CreateServiceAccount, authz_pb2.CreateServiceAccountRequest(
            actor=actor("adam"), service_account=sa), timeout=5)
        self.assertEqual(e.code(), C.INVALID_ARGUMENT)
        self.assertIn("did you mean 10.0.0.0/8", e.details())
        del sa.ip_allowlist[:]
        sa.ip_allowlist.append("10.0.0.0/8")
        sa.permissions.append("wizardry")
        e = error_of(stub(A).CreateServiceAccount, authz_pb2.CreateServiceAccountRequest(
            actor=actor("adam"), service_account=sa), timeout=5)
        self.assertEqual(e.code(), C.INVALID_ARGUMENT)
        self.assertIn("wizardry", e.details())
        e = error_of(stub(A).SetMemberRoles, authz_pb2.SetMemberRolesRequest(
            actor=actor("adam"), id="rita",
            grants=[authz_pb2.RoleGrant(role="superuser", project="support")]), timeout=5)
        self.assertEqual(e.code(), C.INVALID_ARGUMENT)
        self.assertIn("superuser", e.details())
        e = error_of(stub(A).CreateProject, authz_pb2.CreateProjectRequest(
            actor=actor("olivia"), project=authz_pb2.Project(id="p-empty", name="",
                                                             environment="staging")), timeout=5)
        self.assertEqual(e.code(), C.INVALID_ARGUMENT)
        self.assertIn("name", e.details())
        e = error_of(stub(A).RemoveMember, authz_pb2.RemoveMemberRequest(
            actor=actor("olivia"), id="olivia"), timeout=5)
        self.assertEqual(e.code(), C.FAILED_PRECONDITION)
        self.assertIn("owner", e.details())
        # A name with a control character: the organisation's own export would not parse.
        for name in ("a\x00b", "line\nbreak"):
            e = error_of(stub(A).CreateProject, authz_pb2.CreateProjectRequest(
                actor=actor("olivia"), project=authz_pb2.Project(id="p-ctl", name=name,
                                                                 environment="staging")),
                timeout=5)
            self.assertEqual(e.code(), C.INVALID_ARGUMENT)
            self.assertIn("project.name must be UTF-8 text without control characters",
                          e.details())
        # Requests about one object name it.
        for call, request in (
                (stub(A).GetMember, authz_pb2.GetMemberRequest(actor=actor("olivia"))),
                (stub(A).RemoveMember, authz_pb2.RemoveMemberRequest(actor=actor("olivia"))),
                (stub(A).EraseMember, authz_pb2.EraseMemberRequest(actor=actor("olivia"))),
                (stub(A).RemoveServiceAccount,
                 authz_pb2.RemoveServiceAccountRequest(actor=actor("olivia"))),
                (stub(A).RevokeInvitation,
                 authz_pb2.RevokeInvitationRequest(actor=actor("olivia")))):
            with self.subTest(request=type(request).__name__):
                e = error_of(call, request, timeout=5)
                self.assertEqual(e.code(), C.INVALID_ARGUMENT)
                self.assertEqual(e.details(), "id: required")

    def test_a_removed_member_is_denied_on_every_replica_within_the_bound(self):
        stub(A).AddMember(authz_pb2.AddMemberRequest(actor=actor("adam"), member=authz_pb2.Member(
            id="leaver", email="leaver@acme.example",
            grants=[authz_pb2.RoleGrant(role="member", project="support")])), timeout=5)
        pt.wait_until(lambda: check(B, "leaver", "support").verdict == ALLOW, timeout=10,
                      message="B sees the new member", ignore=(grpc.RpcError,))
        removed = stub(A).RemoveMember(authz_pb2.RemoveMemberRequest(
            actor=actor("adam"), id="leaver"), timeout=5)
        removed_at = time.monotonic()
        self.assertEqual(removed.revoke_keys_of.id, "leaver")
        self.assertEqual(removed.revoke_keys_of.kind, MEMBER)
        # On the replica that removed it, at once.
        self.assertEqual(check(A, "leaver", "support").reason, "PRINCIPAL_REMOVED")
        # On B, once it heard of it; until then B may allow it only within the bound, after
        # which it refuses (UNAVAILABLE, stale) rather than allow. A slow machine may stall B
        # past the bound: that is a refusal, never an ALLOW.
        def b_denies():
            asked_at = time.monotonic()
            try:
                answer = check(B, "leaver", "support")
            except grpc.RpcError as e:
                self.assertEqual(e.code(), C.UNAVAILABLE, e)
                return False
            if answer.verdict == ALLOW:
                self.assertLess(asked_at - removed_at, STALENESS_S + 0.2,
                                "B allowed a removed member past the staleness bound")
            return answer.reason == "PRINCIPAL_REMOVED"
        pt.wait_until(b_denies, timeout=10, interval=0.02, message="B denies the removed member")
        # The removal's ledger record is named by an id drawn for it, never by a digest of the
        # member's id (which would let anyone reading the ledger test a guess); removing again
        # answers the same one.
        self.assertRegex(removed.removal_request_id, r"^authz:member-removed:[0-9a-f]{32}$")
        self.assertNotIn(hashlib.sha256(b"leaver").hexdigest()[:32], removed.removal_request_id)
        self.assertTrue(removed.removed_now)
        again = stub(A).RemoveMember(authz_pb2.RemoveMemberRequest(
            actor=actor("adam"), id="leaver"), timeout=5)
        self.assertFalse(again.removed_now)
        self.assertEqual(again.removal_request_id, removed.removal_request_id)

    def test_removing_a_member_lists_the_keys_to_revoke(self):
        stub(A).AddMember(authz_pb2.AddMemberRequest(actor=actor("adam"), member=authz_pb2.Member(
            id="keyholder", email="keyholder@acme.example",
            grants=[authz_pb2.RoleGrant(role="member", project="support")])), timeout=5)
        keys = ks.stub(KEYS)
        held = {keys.CreateKey(ks.create_request("keyholder", project=p), timeout=5).key.key_id
                for p in ("support", "limited")}
        revoked = keys.CreateKey(ks.create_request("keyholder", project="support"),
                                 timeout=5).key.key_id
        keys.RevokeKey(keys_pb2.RevokeKeyRequest(key_id=revoked, reason="test"), timeout=5)
        keys.CreateKey(ks.create_request("someone-else", project="support"), timeout=5)

        # B cannot reach the keys service: the member is removed all the same, and denied.
        # (First B learns of the member, which A added: replicas follow within the bound.)
        pt.wait_until(lambda: check(B, "keyholder", "support").verdict == ALLOW,
                      timeout=10, message="B knows the new member", ignore=(grpc.RpcError,))
        e = error_of(stub(B).RemoveMember, authz_pb2.RemoveMemberRequest(
            actor=actor("adam"), id="keyholder"), timeout=5)
        self.assertEqual(e.code(), C.UNAVAILABLE, e)
        self.assertIn("repeating the request is safe", e.details())
        self.assertEqual(check(B, "keyholder", "support").reason, "PRINCIPAL_REMOVED")

        # Repeated where the keys service answers: the keys that still verify.
        removed = stub(A).RemoveMember(authz_pb2.RemoveMemberRequest(
            actor=actor("adam"), id="keyholder"), timeout=5)
        self.assertTrue(removed.keys_listed)
        self.assertEqual({k.key_id for k in removed.keys_to_revoke}, held)
        self.assertEqual({k.owner_id for k in removed.keys_to_revoke}, {"keyholder"})
        self.assertEqual({k.project for k in removed.keys_to_revoke}, {"support", "limited"})

    def test_lists_are_paginated(self):
        for i in range(7):
            stub(A).AddMember(authz_pb2.AddMemberRequest(actor=actor("adam"), member=authz_pb2.Member(
                id=f"page-{i}", email=f"page-{i}@acme.example")), timeout=5)
        seen, token = [], ""
        while True:
            page = stub(A).ListMembers(authz_pb2.ListMembersRequest(
                actor=actor("adam"), page_size=3, page_token=token), timeout=5)
            self.assertLessEqual(len(page.members), 3)
            seen += [m.id for m in page.members]
            token = page.next_page_token
            if not token:
                break
        self.assertEqual(seen, sorted(seen))
        self.assertEqual(len(seen), len(set(seen)))
        self.assertTrue({f"page-{i}" for i in range(7)} <= set(seen))
        e = error_of(stub(A).ListMembers, authz_pb2.ListMembersRequest(
            actor=actor("adam"), page_token="not-a-token"), timeout=5)
        self.assertEqual(e.code(), C.INVALID_ARGUMENT)
        # A token continues the listing it was issued for, not one with other filters.
        first = stub(A).ListMembers(authz_pb2.ListMembersRequest(
            actor=actor("adam"), page_size=3), timeout=5)
        self.assertNotEqual(first.next_page_token, "")
        e = error_of(stub(A).ListMembers, authz_pb2.ListMembersRequest(
            actor=actor("adam"), include_removed=True, page_token=first.next_page_token),
            timeout=5)
        self.assertEqual(e.code(), C.INVALID_ARGUMENT)
        self.assertIn("page_token: issued for other filters", e.details())
        e = error_of(stub(A).ListMembers, authz_pb2.ListMembersRequest(actor=actor("rita")),
                     timeout=5)
        self.assertEqual(e.code(), C.PERMISSION_DENIED)

    def test_service_account_policy_document(self):
        policy = stub(A).GetServiceAccountPolicy(authz_pb2.GetServiceAccountPolicyRequest(
            actor=actor("rita"), id="sa-bot"), timeout=5)
        self.assertEqual(policy.project, "support")
        self.assertEqual(list(policy.ip_allowlist), ["10.20.0.0/16", "2001:db8:20::/48"])
        self.assertTrue(policy.zero_data_retention)
        self.assertEqual(policy.residency, region_pb2.RESIDENCY_EU)
        self.assertIn('"service_account": "sa-bot"', policy.document_json)
        self.assertIn('"residency": "RESIDENCY_EU"', policy.document_json)
        self.assertEqual([(r.entity_type, r.action, r.operator) for r in policy.pii.rules],
                         [("EMAIL_ADDRESS", pii_pb2.ACTION_REDACT, pii_pb2.OPERATOR_PLACEHOLDER),
                          ("US_SSN", pii_pb2.ACTION_BLOCK, pii_pb2.OPERATOR_UNSPECIFIED)])
        self.assertIn('"entity_type": "US_SSN"', policy.document_json)

    def test_idp_group_sync_provisions_and_deprovisions(self):
        synced = stub(A).SyncIdpGroup(authz_pb2.SyncIdpGroupRequest(
            actor=actor("adam"), group="support-engineers",
            emails=["Newbie@acme.example", "mia@acme.example"]), timeout=5)
        # Under a number, not their address (which an erasure removes while ids stay).
        self.assertEqual(len(synced.provisioned), 1)
        newbie = synced.provisioned[0]
        self.assertRegex(newbie, r"^idp:[0-9]+$")
        self.assertEqual(check(A, newbie, "support").verdict, ALLOW)
        synced = stub(A).SyncIdpGroup(authz_pb2.SyncIdpGroupRequest(
            actor=actor("adam"), group="support-engineers", emails=["mia@acme.example"]),
            timeout=5)
        self.assertEqual(list(synced.deprovisioned), [newbie])
        self.assertIn(newbie, synced.offboard)
        self.assertEqual(check(A, newbie, "support").reason,
                         "PRINCIPAL_REMOVED")
        # The same sync again changes nothing, and still names whom to offboard (a retry of
        # one cut short after it committed finishes the revocations).
        again = stub(A).SyncIdpGroup(authz_pb2.SyncIdpGroupRequest(
            actor=actor("adam"), group="support-engineers", emails=["mia@acme.example"]),
            timeout=5)
        self.assertEqual(list(again.deprovisioned), [])
        self.assertIn(newbie, again.offboard)
        # mia has grants of her own: leaving the group does not remove her.
        self.assertEqual(check(A, "mia", "support").verdict, ALLOW)

    def test_org_file_plan_then_apply(self):
        exported = stub(A).ExportOrgFile(authz_pb2.ExportOrgFileRequest(actor=actor("olivia")),
                                         timeout=5)
        self.assertIn("support", exported.yaml)
        plan = stub(A).PlanOrgFile(authz_pb2.PlanOrgFileRequest(
            actor=actor("olivia"), yaml=exported.yaml), timeout=5)
        self.assertEqual(list(plan.changes), [], plan.text)
        changed = exported.yaml.replace("name: Support\n", "name: Support desk\n")
        self.assertNotEqual(changed, exported.yaml)
        plan = stub(A).PlanOrgFile(authz_pb2.PlanOrgFileRequest(
            actor=actor("olivia"), yaml=changed), timeout=5)
        self.assertIn("~ project support", plan.text)
        self.assertIn("name: Support -> Support desk", plan.text)
        e = error_of(stub(A).ApplyOrgFile, authz_pb2.ApplyOrgFileRequest(
            actor=actor("adam"), yaml=changed), timeout=5)
        self.assertEqual(e.code(), C.PERMISSION_DENIED)
        e = error_of(stub(A).ApplyOrgFile, authz_pb2.ApplyOrgFileRequest(
            actor=actor("olivia"), yaml=changed, plan_fingerprint="0" * 64), timeout=5)
        self.assertEqual(e.code(), C.FAILED_PRECONDITION)
        applied = stub(A).ApplyOrgFile(authz_pb2.ApplyOrgFileRequest(
            actor=actor("olivia"), yaml=changed, plan_fingerprint=plan.plan_fingerprint),
            timeout=5)
        self.assertEqual([(c.kind, c.id) for c in applied.changes], [("project", "support")])
        e = error_of(stub(A).PlanOrgFile, authz_pb2.PlanOrgFileRequest(
            actor=actor("olivia"), yaml="projects:\n  - id: x\n    colour: red\n"), timeout=5)
        self.assertEqual(e.code(), C.INVALID_ARGUMENT)
        self.assertIn("colour", e.details())


class RateLimitTest(unittest.TestCase):
    def test_two_replicas_never_admit_more_than_the_limit(self):
        # 60 requests per minute: a full bucket holds 60 and refills one per second.
        def one(i):
            return check(A if i % 2 else B, "mia", "limited", model="gpt-4o-mini").verdict

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            verdicts = list(pool.map(one, range(240)))
        elapsed = time.monotonic() - started
        allowed = verdicts.count(ALLOW)
        bound = 60 + int(elapsed) + 1  # capacity plus what refilled meanwhile
        print(f"\n  two replicas, 240 checks in {elapsed:.2f} s against 60 rpm: "
              f"{allowed} allowed (bound {bound})")
        self.assertGreaterEqual(allowed, 50)  # leases held idle cost at most a few
        self.assertLessEqual(allowed, bound)
        denied = check(A, "mia", "limited", model="gpt-4o-mini")
        self.assertEqual((denied.verdict, denied.reason), (DENY, "RATE_LIMITED"))
        self.assertEqual(denied.rule, "rate_limit.project.rpm")
        self.assertTrue(denied.HasField("retry_after"))
        self.assertLessEqual(denied.retry_after.seconds, 2)

    def test_usage_reports_reconcile_tokens(self):
        first = check(A, "mia", "tokens", model="gpt-4o-mini", estimated_tokens=400)
        self.assertEqual(first.verdict, ALLOW)
        # The call used 900 tokens, not 400: the 500 more are charged afterwards.
        report = authz_pb2.ReportUsageRequest(
            principal=authz_pb2.Principal(kind=MEMBER, id="mia"), project="tokens",
            estimated_tokens=400, actual_tokens=900, request_id="call-0001")
        reported = stub(A).ReportUsage(report, timeout=5)
        self.assertEqual((reported.adjusted_tokens, reported.duplicate), (500, False))
        second = check(A, "mia", "tokens", model="gpt-4o-mini", estimated_tokens=400)
        self.assertEqual((second.verdict, second.reason), (DENY, "RATE_LIMITED"))
        self.assertEqual(second.rule, "rate_limit.project.tpm")
        # A retry reaching the other replica charges nothing more: about 50 tokens are left
        # (1000 - 400 - 500 - A's lease of 50, plus the refill), not -450.
        retried = stub(B).ReportUsage(report, timeout=5)
        self.assertEqual((retried.adjusted_tokens, retried.duplicate), (500, True))
        small = check(B, "mia", "tokens", model="gpt-4o-mini", estimated_tokens=45)
        self.assertEqual(small.verdict, ALLOW, small)
        # The id with other figures, or no id at all, is refused.
        with self.assertRaises(grpc.RpcError) as conflict:
            stub(B).ReportUsage(authz_pb2.ReportUsageRequest(
                principal=report.principal, project="tokens", estimated_tokens=400,
                actual_tokens=100, request_id="call-0001"), timeout=5)
        self.assertEqual(conflict.exception.code(), grpc.StatusCode.ALREADY_EXISTS)
        self.assertIn("call-0001", conflict.exception.details())
        with self.assertRaises(grpc.RpcError) as missing:
            stub(A).ReportUsage(authz_pb2.ReportUsageRequest(
                principal=report.principal, project="tokens", estimated_tokens=1,
                actual_tokens=2), timeout=5)
        self.assertEqual(missing.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("request_id", missing.exception.details())
        # A request given back (refund_request) never reached the model: it used no tokens,
        # and is other usage than the report of a call.
        unsent = authz_pb2.ReportUsageRequest(
            principal=report.principal, project="tokens", estimated_tokens=400,
            actual_tokens=900, request_id="refund-0001", refund_request=True)
        e = error_of(stub(A).ReportUsage, unsent, timeout=5)
        self.assertEqual(e.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("refund_request", e.details())
        unsent.actual_tokens = 0
        unsent.request_id = "call-0001"
        e = error_of(stub(B).ReportUsage, unsent, timeout=5)
        self.assertEqual(e.code(), grpc.StatusCode.ALREADY_EXISTS)
        too_big = check(A, "mia", "tokens", model="gpt-4o-mini", estimated_tokens=5000)
        self.assertEqual(too_big.reason, "RATE_LIMITED")
        self.assertFalse(too_big.HasField("retry_after"))  # never fits


class MetricsTest(unittest.TestCase):
    def test_decisions_and_snapshot_are_exported(self):
        check(A, "mia", "support")
        limited = check(A, "mia", "tokens", model="gpt-4o-mini", estimated_tokens=5000)
        self.assertEqual(limited.reason, "RATE_LIMITED")
        text = pt.scrape_metrics(A.metrics_port)
        self.assertGreaterEqual(pt.metric_value(text, "policy_authz_decisions_total",
                                                verdict="allow"), 1)
        self.assertGreaterEqual(pt.metric_value(text, "policy_authz_decisions_total",
                                                reason="RATE_LIMITED"), 1)
        limit = limited.rule.removeprefix("rate_limit.")
        self.assertGreaterEqual(pt.metric_value(text, "policy_authz_rate_limited_total",
                                                limit=limit), 1, limited.rule)
        self.assertEqual(pt.metric_value(text, "policy_authz_snapshot_in_sync"), 1)
        self.assertGreater(pt.metric_value(text, "policy_authz_org_version"), 0)


if __name__ == "__main__":
    unittest.main()
