"""Decisions under load while PostgreSQL crashes (an immediate shutdown: no checkpoint, no
flush of what it has not yet written).

The whole suite runs on a private PostgreSQL cluster (PrivatePostgres), which, as many a
development or tuned server, commits asynchronously (synchronous_commit=off: a COMMIT returns
before its WAL is flushed). Client threads send Decide requests as fast as the edge answers;
the test stops the cluster with `pg_ctl -m immediate` mid-load, three times, starting it again
each time without restarting any service. Afterwards every decision that was answered, ALLOW
or DENY, must be in the ledger once, under its audit id, as it was answered (the services'
sessions commit durably whatever the server's default), and the ledger must verify.

Skips without POLICY_TEST_PG_URL unless POLICY_TEST_REQUIRE_PG=1.
Run: /usr/bin/python3 -m unittest -v tests.edge.test_edge_postgres_kill
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


CRASHES = 3
PROJECT, ENVIRONMENT = "support-eu", "production"
PG = SUITE = DB = None
_stack = None


def setUpModule():
    global PG, SUITE, DB, _stack
    pt.require_pg_url()
    es.require_binaries()
    _stack = contextlib.ExitStack()
    try:
        PG = _stack.enter_context(pt.PrivatePostgres())
        # The role audit's transactions run as (tools/dev pg creates it in its cluster).
        pt.psql(PG.url, "CREATE ROLE policy_audit_writer NOLOGIN")
        DB, SUITE = es.start_suite(_stack, PG.url, "edge_pg_kill", flags={
            **{name: {"max_staleness": "1s"} for name in ("keys", "authz", "region")},
            # Every answer is a decision: no key is refused at the door.
            "edge": {"denials_per_key_per_minute": "0"}})
    except BaseException:
        _stack.close()
        raise


def tearDownModule():
    if PG is not None and not PG.running:
        PG.start()
    _stack.close()


class EdgePostgresKillTest(unittest.TestCase):
    def test_answered_decisions_survive_a_postgres_crash(self):
        self.assertEqual(pt.psql_rows(DB.url, "SHOW synchronous_commit"), [["off"]])
        SUITE.register_seed_endpoints_once()
        keys = [SUITE.new_key("bob", PROJECT) for _ in range(2)]
        began = time.monotonic()
        with es.DecideClients(SUITE, keys) as clients:
            for _ in range(CRASHES):
                clients.wait_for_more(30, timeout=40, message="decisions answered")
                time.sleep(0.2)
                PG.stop(mode="immediate")
                time.sleep(0.5)
                PG.start()
            clients.wait_for_more(30, timeout=40,
                                  message="decisions answered after the last crash")
        es.check_after_faults(self, SUITE, DB, PROJECT, ENVIRONMENT, clients, began)


if __name__ == "__main__":
    unittest.main()
