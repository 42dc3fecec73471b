"""Key lifecycle events reach the audit ledger: real keys and audit processes on one
PostgreSQL database, the keys service started with --audit_target.

Checks that creating, rotating (with the overlap ending) and revoking a key each append the
entry the issue names to the ledger of the key's project and environment, with the owner as a
pseudonymised subject and a request id derived from the event, and that events of changes
made while the audit service does not answer wait in the keys service's outbox (in
PostgreSQL), survive a restart of the keys process, and are each recorded exactly once when
audit answers again.

Needs POLICY_TEST_PG_URL (as tools/dev pg sets up); skips without it, or fails when
POLICY_TEST_REQUIRE_PG=1.
Run: /usr/bin/python3 -m unittest -v tests.audit.test_key_events
"""

import contextlib
import sys
import time
import unittest
import uuid
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.audit import audit_support as aus  # noqa: E402
from tests.keys import keys_support as ks  # noqa: E402
from tests.support import policy_testing as pt  # noqa: E402

from google.protobuf import duration_pb2  # noqa: E402
from policy.audit.v1 import audit_pb2 as A  # noqa: E402
from policy.keys.v1 import keys_pb2 as K  # noqa: E402

PG_URL = DB = AUDIT_KEYS = PEPPER = None
AUDIT = KEYS = None
_stack = None



def start_keys():
    return ks.wait_serving(ks.start_keys(DB.url, PEPPER, "keys",
                                         audit_target=AUDIT.address,
                                         sweep_interval="100ms"))


def setUpModule():
    global PG_URL, DB, AUDIT_KEYS, PEPPER, AUDIT, KEYS, _stack
    PG_URL = pt.require_pg_url()
    pt.service_binary("audit")
    pt.service_binary("keys")
    _stack = contextlib.ExitStack()
    try:
        DB = _stack.enter_context(pt.test_database(PG_URL, "key_events"))
        AUDIT_KEYS = aus.new_keys()
        PEPPER = ks.new_pepper()
        AUDIT = aus.start_serving_on_a_free_port(DB.url, AUDIT_KEYS)
        KEYS = start_keys()
        _stack.callback(lambda: KEYS.cleanup())
        _stack.callback(lambda: AUDIT.cleanup())
    except BaseException:
        _stack.close()
        raise


def tearDownModule():
    try:
        code = KEYS.terminate()
        if code != 0:
            raise AssertionError(f"keys exited {code} on SIGTERM\n{KEYS.log_tail()}")
    finally:
        _stack.close()


def ledger_entries(project, environment="development"):
    return aus.export_entries(aus.stub(AUDIT), aus.ledger(project, environment),
                              requested_by="auditor@test")


def key_entries(project, environment="development"):
    return [e for e in ledger_entries(project, environment)
            if e.action != A.ACTION_AUDIT_READ]


def pending_events():
    return pt.metric_value(pt.scrape_metrics(KEYS.metrics_port),
                           "policy_keys_audit_events_pending")


def outbox_rows(where="true"):
    return int(DB.sql(f"SELECT count(*) FROM keys.ledger_outbox WHERE {where}").strip())


class KeyEventsTest(unittest.TestCase):
    def setUp(self):
        self.keys = ks.stub(KEYS)
        self.project = f"ke-{uuid.uuid4().hex[:10]}"
        self.owner = f"alice-{uuid.uuid4().hex[:6]}@example.com"

    def wait_entries(self, count, environment="development"):
        pt.wait_until(lambda: len(key_entries(self.project, environment)) >= count, timeout=15,
                      message=f"{count} key entries in {self.project}/{environment}")
        return key_entries(self.project, environment)

    def create_rotate_revoke(self, overlap_ns):
        """A key created, rotated with an overlap of `overlap_ns`, and its successor revoked;
        the key and the successor's id."""
        created = self.keys.CreateKey(ks.create_request(self.owner, project=self.project),
                                      timeout=10).key
        rotated = self.keys.RotateKey(K.RotateKeyRequest(
            key_id=created.key_id, overlap=duration_pb2.Duration(nanos=overlap_ns)), timeout=10)
        successor = rotated.new_key.key_id
        self.keys.RevokeKey(K.RevokeKeyRequest(key_id=successor, reason="laptop lost"),
                            timeout=10)
        return created, successor

    def test_create_rotate_overlap_end_and_revoke_are_recorded(self):
        created, successor = self.create_rotate_revoke(200_000_000)
        # created, created (successor), rotated, revoked, and the old key's overlap ending.
        entries = self.wait_entries(5)
        got = sorted((A.Action.Name(e.action), e.metadata["key_id"]) for e in entries)
        self.assertEqual(got, sorted([
            ("ACTION_KEY_CREATED", created.key_id), ("ACTION_KEY_CREATED", successor),
            ("ACTION_KEY_ROTATED", created.key_id), ("ACTION_KEY_REVOKED", successor),
            ("ACTION_KEY_OVERLAP_ENDED", created.key_id)]))
        for e in entries:
            self.assertEqual(e.actor, "keys-service")
            self.assertEqual(e.subject, self.owner)
            self.assertEqual(len(e.subject_ref), 32)
            self.assertEqual(e.request_id, "keys:{}:{}".format(
                {A.ACTION_KEY_CREATED: "key_created", A.ACTION_KEY_ROTATED: "key_rotated",
                 A.ACTION_KEY_REVOKED: "key_revoked",
                 A.ACTION_KEY_OVERLAP_ENDED: "key_auto_revoked"}[e.action],
                e.metadata["key_id"]))
            self.assertEqual(e.metadata["kind"], "project")
            self.assertEqual(e.metadata["owner_type"], "member")
        by_action = {e.action: e for e in entries if e.metadata["key_id"] == created.key_id}
        self.assertEqual(by_action[A.ACTION_KEY_ROTATED].metadata["related_key_id"], successor)
        revoked = [e for e in entries if e.action == A.ACTION_KEY_REVOKED][0]
        self.assertEqual(revoked.metadata["reason"], "laptop lost")
        # Nothing about the secret reaches the ledger.
        dump = pt.psql(DB.url, "SELECT encode(metadata, 'escape') FROM audit.entries")
        self.assertNotIn("psk_", dump)
        # The owner can be found (subject access) and the ledger verifies.
        access = aus.stub(AUDIT).ExportSubject(A.ExportSubjectRequest(
            subject=self.owner, requested_by="dpo@test"), timeout=10).entries
        self.assertEqual(len(access), 5)
        report = aus.stub(AUDIT).VerifyLedger(A.VerifyLedgerRequest(
            ledger=aus.ledger(self.project, "development")), timeout=10).report
        self.assertTrue(report.valid, report.problem)

    def test_admin_keys_go_to_the_organisations_ledger(self):
        created = self.keys.CreateKey(ks.create_request(
            self.owner, kind=K.KEY_KIND_ADMIN), timeout=10).key
        pt.wait_until(lambda: any(e.metadata.get("key_id") == created.key_id for e in
                                  ledger_entries("", "")),
                      timeout=15, message="the admin key's entry in the organisation's ledger")

    def test_events_wait_for_the_audit_service_and_arrive_once(self):
        # The audit service stops answering (SIGSTOP: it keeps its port, calls time out).
        AUDIT.stop()
        try:
            created = self.keys.CreateKey(ks.create_request(self.owner, project=self.project),
                                          timeout=10).key
            # The change itself does not wait for the ledger; the event waits in the outbox.
            self.assertGreaterEqual(outbox_rows(), 1)
            pt.wait_until(lambda: pending_events() >= 1, timeout=15,
                          message="policy_keys_audit_events_pending at least 1")
            time.sleep(0.5)
            self.assertGreaterEqual(pending_events(), 1)
        finally:
            AUDIT.resume()
        self.wait_entries(1)
        pt.wait_until(lambda: pending_events() == 0, timeout=15,
                      message="policy_keys_audit_events_pending back to 0")
        entries = key_entries(self.project)
        self.assertEqual([(e.action, e.metadata["key_id"]) for e in entries],
                         [(A.ACTION_KEY_CREATED, created.key_id)])
        recorded = pt.metric_value(pt.scrape_metrics(KEYS.metrics_port),
                                   "policy_keys_audit_events_total", result="recorded")
        self.assertGreaterEqual(recorded, 1)

    def test_events_survive_a_keys_restart_while_audit_is_down(self):
        global KEYS
        AUDIT.stop()
        try:
            created, successor = self.create_rotate_revoke(100_000_000)
            # The sweeper ends the old key's overlap (and records that) before the member goes.
            pt.wait_until(lambda: outbox_rows(f"request_id = 'keys:key_auto_revoked:"
                                              f"{created.key_id}'") == 1,
                          timeout=15, message="the overlap's end in keys.ledger_outbox")
            other = self.keys.CreateKey(ks.create_request(self.owner, project=self.project),
                                        timeout=10).key
            removed = self.keys.RevokePrincipalKeys(K.RevokePrincipalKeysRequest(
                request_id=f"remove-{uuid.uuid4().hex}", owner=ks.principal(self.owner),
                reason="member removed"), timeout=10).keys
            self.assertEqual([k.key_id for k in removed], [other.key_id])
            expected = sorted([
                ("ACTION_KEY_CREATED", created.key_id), ("ACTION_KEY_CREATED", successor),
                ("ACTION_KEY_ROTATED", created.key_id), ("ACTION_KEY_REVOKED", successor),
                ("ACTION_KEY_OVERLAP_ENDED", created.key_id),
                ("ACTION_KEY_CREATED", other.key_id), ("ACTION_KEY_REVOKED", other.key_id)])
            # Every acknowledged change has its event in the outbox.
            self.assertGreaterEqual(outbox_rows(), len(expected))
            # The keys process restarts while audit still does not answer.
            code = KEYS.terminate()
            self.assertEqual(code, 0, KEYS.log_tail())
            KEYS = start_keys()
            self.keys = ks.stub(KEYS)
            self.assertGreaterEqual(outbox_rows(), len(expected))
        finally:
            AUDIT.resume()
        entries = self.wait_entries(len(expected))
        pt.wait_until(lambda: pending_events() == 0, timeout=15,
                      message="policy_keys_audit_events_pending back to 0")
        # Exactly once each, nothing more, and the outbox is empty.
        entries = key_entries(self.project)
        got = sorted((A.Action.Name(e.action), e.metadata["key_id"]) for e in entries)
        self.assertEqual(got, expected)
        self.assertEqual(outbox_rows(), 0)
        by_key = {(A.Action.Name(e.action), e.metadata["key_id"]): e for e in entries}
        self.assertEqual(by_key[("ACTION_KEY_REVOKED", other.key_id)].metadata["reason"],
                         "member removed")
        self.assertEqual(by_key[("ACTION_KEY_ROTATED", created.key_id)]
                         .metadata["related_key_id"], successor)


if __name__ == "__main__":
    unittest.main()
