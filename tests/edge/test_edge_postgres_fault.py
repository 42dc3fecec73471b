"""The whole suite while its PostgreSQL goes away and comes back, or is tampered with.

All six services run on a private PostgreSQL cluster (PrivatePostgres), which is stopped and
restarted under them: decisions fail closed (UNAVAILABLE or DEADLINE_EXCEEDED within the
caller's deadline, never an ALLOW), the services backed by the database report NOT_SERVING,
and once the database is back decisions are allowed and recorded again without restarting any
service; the ledger still verifies. Then a decision rewritten in the database is found by the
ledger's verification through the admin API, at its index. Skips without POLICY_TEST_PG_URL unless
POLICY_TEST_REQUIRE_PG=1.

Run: /usr/bin/python3 -m unittest -v tests.edge.test_edge_postgres_fault
"""

import contextlib
import sys
import time
import unittest
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.edge import edge_support as es  # noqa: E402
from tests.support import policy_testing as pt  # noqa: E402

import grpc  # noqa: E402
from policy.audit.v1 import audit_pb2, audit_pb2_grpc  # noqa: E402
from policy.edge.v1 import edge_pb2 as E  # noqa: E402

C = grpc.StatusCode
DEADLINE_S = 2.0
PG = SUITE = None
_stack = None


def setUpModule():
    global PG, SUITE, _stack
    pt.require_pg_url()
    es.require_binaries()
    _stack = contextlib.ExitStack()
    try:
        PG = _stack.enter_context(pt.PrivatePostgres())
        # The role audit's transactions run as (tools/dev pg creates it in its cluster).
        pt.psql(PG.url, "CREATE ROLE policy_audit_writer NOLOGIN")
        db = _stack.enter_context(pt.test_database(PG.url, "edge_fault"))
        SUITE = es.Suite(db.url, flags={name: {"max_staleness": "1s"}
                                        for name in ("keys", "authz", "region")})
        _stack.callback(SUITE.cleanup)
        SUITE.start()
    except BaseException:
        _stack.close()
        raise


def tearDownModule():
    if PG is not None and not PG.running:
        PG.start()
    _stack.close()


class EdgePostgresFaultTest(unittest.TestCase):
    def decide(self, key):
        return SUITE.edge().Decide(es.decide_request(key), timeout=DEADLINE_S)

    def test_outage_fails_decisions_closed_then_recovers_without_restart(self):
        SUITE.register_seed_endpoints_once()
        key = SUITE.new_key("bob", "support-eu")
        self.assertEqual(self.decide(key).verdict, E.VERDICT_ALLOW)

        PG.stop(mode="fast")
        try:
            outcomes = []
            until = time.monotonic() + 4
            while time.monotonic() < until:
                started = time.monotonic()
                code = pt.call_code(self.decide, key)
                outcomes.append((code, time.monotonic() - started))
            # Nothing is allowed while the ledger cannot record it; every answer comes within
            # the caller's deadline.
            for code, elapsed in outcomes:
                self.assertIn(code, (C.UNAVAILABLE, C.DEADLINE_EXCEEDED), outcomes)
                self.assertLess(elapsed, DEADLINE_S + 0.5, outcomes)
            for name in ("keys", "authz", "region", "audit", "edge"):
                pt.wait_until(lambda: pt.health_status(SUITE.p[name].channel) == "NOT_SERVING",
                              timeout=10, message=f"{name} NOT_SERVING without its database",
                              ignore=(grpc.RpcError,))
        finally:
            PG.start()

        pt.wait_until(lambda: pt.call_code(self.decide, key) == C.OK, timeout=30, interval=0.2,
                      message="decisions allowed again once PostgreSQL is back")
        decided = self.decide(key)
        self.assertEqual(decided.verdict, E.VERDICT_ALLOW)
        for name in es.SERVICES:
            self.assertTrue(SUITE.p[name].running(), f"{name} was not restarted")
        report = audit_pb2_grpc.AuditServiceStub(SUITE.p["audit"].channel).VerifyLedger(
            audit_pb2.VerifyLedgerRequest(ledger=audit_pb2.LedgerRef(
                project="support-eu", environment="production")), timeout=30).report
        self.assertTrue(report.valid, report)

    def test_tampering_with_a_decision_is_detected_through_the_admin_api(self):
        SUITE.register_seed_endpoints_once()
        key = SUITE.new_key("bob", "support-eu-staging", es.keys_pb2.ENVIRONMENT_STAGING)
        decided = [SUITE.edge().Decide(es.decide_request(key, model="gpt-4o-mini", tokens=100),
                                       timeout=10) for _ in range(3)]
        for d in decided:
            self.assertEqual(d.verdict, E.VERDICT_ALLOW, d.reason)
        admin = SUITE.admin()
        alice = es.bearer(SUITE.new_admin_key("alice"))
        ledger = audit_pb2.LedgerRef(project="support-eu-staging", environment="staging")

        def verify():
            return admin.VerifyLedger(audit_pb2.VerifyLedgerRequest(ledger=ledger),
                                      metadata=alice, timeout=30).report

        self.assertTrue(verify().valid)
        # A superuser gets past the append-only triggers and rewrites the second decision's
        # tokens.
        index = int(decided[1].audit_id.rsplit("/", 1)[1])
        pt.psql(SUITE.url, "SET session_replication_role = replica; UPDATE audit.entries e SET tokens = tokens + 1000 FROM audit.ledgers l "
                f"WHERE e.ledger_id = l.id AND l.project = 'support-eu-staging' AND e.idx = {index}")
        report = verify()
        self.assertFalse(report.valid)
        self.assertEqual(report.first_bad_index, index)


if __name__ == "__main__":
    unittest.main()
