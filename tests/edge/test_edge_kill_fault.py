"""Decisions under load while audit, or the edge, is killed with SIGKILL.

The whole suite runs on one test database; client threads send Decide requests (each with a
request id of its own) as fast as the edge answers them. Mid-load the test SIGKILLs audit and
starts it again on the same port (no other service is restarted), then does the same to the
edge. Afterwards every decision that was answered, ALLOW or DENY, must be in its ledger once,
under its audit id, with the verdict, model, tokens and reason it was answered with; no ALLOW
may have been answered while audit was down; and the ledger must verify.

Skips without POLICY_TEST_PG_URL unless POLICY_TEST_REQUIRE_PG=1.
Run: /usr/bin/python3 -m unittest -v tests.edge.test_edge_kill_fault
"""

import contextlib
import signal
import subprocess
import sys
import time
import unittest
import uuid
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.edge import edge_support as es  # noqa: E402
from tests.support import policy_testing as pt  # noqa: E402

import grpc  # noqa: E402
from policy.edge.v1 import edge_pb2 as E  # noqa: E402

C = grpc.StatusCode
PROJECT, ENVIRONMENT = "support-eu", "production"
SUITE = DB = None
_stack = None


def setUpModule():
    global SUITE, DB, _stack
    url = pt.require_pg_url()
    es.require_binaries()
    _stack = contextlib.ExitStack()
    try:
        DB, SUITE = es.start_suite(_stack, url, "edge_kill", flags={
            "audit": {"listen": f"127.0.0.1:{pt.stable_port()}"},
            "edge": {"listen": f"127.0.0.1:{pt.stable_port()}",
                     # Every answer is a decision: no key is refused at the door.
                     "denials_per_key_per_minute": "0"}})
    except BaseException:
        _stack.close()
        raise


def tearDownModule():
    _stack.close()


class EdgeKillFaultTest(unittest.TestCase):
    maxDiff = None

    def restart(self, name):
        """SIGKILL `name`, then start it again on the same port."""
        process = SUITE.p[name]
        process.proc.send_signal(signal.SIGKILL)
        process.proc.wait(10)
        process.kill()  # closes its channel
        process.start()
        pt.wait_until(lambda: pt.health_status(process.channel) == "SERVING", timeout=30,
                      message=f"{name} SERVING again", ignore=(grpc.RpcError,))

    def test_a_retry_after_an_unknown_outcome_is_answered_with_the_recorded_allow(self):
        """A decision whose ALLOW audit committed while its answer was lost (here: the
        ledger's append lock held past the caller's deadline, then audit SIGKILLed) is
        retried under its request id. Its reservation stays charged (the ledger may hold
        it), so authz refuses the retry for the rate limit: the retry must still get the
        recorded ALLOW, under the same audit id, recorded once."""
        SUITE.register_seed_endpoints_once()
        key = SUITE.new_key("alice", PROJECT)
        # alice's tokens per minute in support-eu are 20,000: after this one's 19,000 a
        # second reservation of as many is refused for most of a minute.
        request = es.decide_request(key, tokens=19_000, request_id=f"retry-{uuid.uuid4().hex}")
        entry_id = f"decision:{request.request_id}"
        warm = SUITE.edge().Decide(es.decide_request(SUITE.new_key("bob", PROJECT)), timeout=10)
        ledger_id = int(DB.sql(f"SELECT id FROM audit.ledgers WHERE project = '{PROJECT}' "
                               f"AND environment = '{ENVIRONMENT}'").strip())
        self.assertTrue(warm.audit_id)
        # Holds the ledger's append lock (postgres_ledger_store.cc, kAppendLockNamespace) in a
        # session of its own until the edge has answered DEADLINE_EXCEEDED: the append waits
        # for it, then commits once it is released.
        lock_rows = ("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND {} AND "
                     "database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                     f"AND classid = {0x41554454} AND objid = {ledger_id}")
        holder = subprocess.Popen(["psql", "-q", DB.url], stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        try:
            holder.stdin.write(f"SELECT pg_advisory_lock({0x41554454}, {ledger_id});\n")
            holder.stdin.flush()
            pt.wait_until(lambda: DB.rows(lock_rows.format("granted"))[0][0] != "0", timeout=10,
                          message="the append lock held")
            call = SUITE.edge().Decide.future(request, timeout=3)
            pt.wait_until(lambda: DB.rows(lock_rows.format("NOT granted"))[0][0] != "0",
                          timeout=10, message="the decision's append waiting for the lock")
            error = call.exception(timeout=10)
            self.assertIsNotNone(error, "the decision was answered while its append waited")
            self.assertEqual(error.code(), C.DEADLINE_EXCEEDED, error)
        finally:
            holder.stdin.close()  # psql ends its session, which releases the lock
            holder.wait(30)
        pt.wait_until(lambda: DB.rows(
            f"SELECT count(*) FROM audit.entries WHERE request_id = '{entry_id}'")[0][0] == "1",
            timeout=10, message="the first attempt's ALLOW committed")
        self.restart("audit")

        def retry():
            try:
                return SUITE.edge().Decide(request, timeout=5)
            except grpc.RpcError as e:
                if e.code() != C.UNAVAILABLE:  # the edge reconnecting to audit
                    raise
                return None
        answer = pt.wait_until(retry, timeout=20, interval=0.2,
                               message="the retry answered")
        self.assertEqual(answer.verdict, E.VERDICT_ALLOW, answer)
        (idx, action), = DB.rows("SELECT idx, action FROM audit.entries "
                                 f"WHERE request_id = '{entry_id}'")
        self.assertEqual(action, "decision_allow")
        self.assertEqual(answer.audit_id, f"{PROJECT}/{ENVIRONMENT}/{idx}")
        self.assertEqual(answer.endpoint.id, "westeurope")

    def test_answered_decisions_survive_sigkill_of_audit_and_edge(self):
        SUITE.register_seed_endpoints_once()
        keys = [SUITE.new_key("bob", PROJECT) for _ in range(2)]
        began = time.monotonic()
        with es.DecideClients(SUITE, keys) as clients:
            for name in ("audit", "audit", "edge"):
                clients.wait_for_more(30, timeout=30, message="decisions answered")
                time.sleep(0.3)
                self.restart(name)
            clients.wait_for_more(30, timeout=30,
                                  message="decisions answered after the last restart")
        # No ALLOW went out unrecorded: an ALLOW answered while audit was down would be
        # missing from the ledger, which this check of every answered decision finds.
        es.check_after_faults(self, SUITE, DB, PROJECT, ENVIRONMENT, clients, began)


if __name__ == "__main__":
    unittest.main()
