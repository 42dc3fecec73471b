"""The authz service while its PostgreSQL goes away and comes back.

Uses a private PostgreSQL cluster (PrivatePostgres) that the test stops and restarts under a
running authz process, so the shared server other tests use is never disturbed. Like the
other PostgreSQL tests it skips without POLICY_TEST_PG_URL unless POLICY_TEST_REQUIRE_PG=1.

Run: /usr/bin/python3 -m unittest -v tests.authz.test_authz_postgres_fault
"""

import contextlib
import sys
import tempfile
import time
import unittest
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.authz import test_authz_process as tap  # noqa: E402
from tests.support import policy_testing as pt  # noqa: E402

import grpc  # noqa: E402
from policy.authz.v1 import authz_pb2  # noqa: E402

C = grpc.StatusCode
PG = DB = ORG_FILE = None
_stack = None


def setUpModule():
    global PG, DB, ORG_FILE, _stack
    pt.require_pg_url()
    pt.service_binary("authz")
    _stack = contextlib.ExitStack()
    try:
        PG = _stack.enter_context(pt.PrivatePostgres())
        DB = _stack.enter_context(pt.test_database(PG.url, "authz_fault"))
        directory = Path(_stack.enter_context(tempfile.TemporaryDirectory()))
        ORG_FILE = directory / "org.yaml"
        ORG_FILE.write_text(tap.ORG_FILE)
    except BaseException:
        _stack.close()
        raise


def tearDownModule():
    if PG is not None and not PG.running:
        PG.start()
    _stack.close()


class PostgresFaultTest(unittest.TestCase):
    def test_outage_fails_closed_then_recovers_without_restart(self):
        authz = tap.start_authz(DB.url, "authz-fault", ORG_FILE, **tap.FLAGS)
        self.addCleanup(authz.cleanup)
        self.assertEqual(tap.check(authz, "mia", "support").verdict, tap.ALLOW)

        PG.stop(mode="fast")
        stopped = time.monotonic()
        # The snapshot's last proof came before PostgreSQL stopped: a Check asked more than
        # the staleness bound after that is refused, however slow the machine.
        def refused():
            asked = time.monotonic()
            code = pt.call_code(tap.check, authz, "mia", "support")
            if code == C.OK:
                self.assertLess(asked - stopped, tap.STALENESS_S + 0.05,
                                "Check answered from a stale snapshot")
            return code == C.UNAVAILABLE
        pt.wait_until(refused, timeout=10, interval=0.02, message="Check UNAVAILABLE once stale")
        failed_closed = time.monotonic() - stopped
        print(f"\n  decisions failed closed {failed_closed:.2f} s after PostgreSQL stopped "
              f"(bound {tap.STALENESS_S} s + heartbeat)")
        # Refused at first for whichever read failed (the rate limits' database, or the
        # snapshot once it is stale), and once the bound has passed, as stale.
        def refused_as_stale():
            return "stale" in pt.call_error(tap.check, authz, "mia", "support").details()
        pt.wait_until(refused_as_stale, timeout=tap.STALENESS_S + 2.0, interval=0.05,
                      message="Check refused as stale once the staleness bound passed")
        pt.wait_until(lambda: pt.health_status(authz.channel) == "NOT_SERVING", timeout=5,
                      message="health NOT_SERVING")
        # Writes fail with a retryable status, not INTERNAL.
        code = pt.call_code(tap.stub(authz).ArchiveProject, authz_pb2.ArchiveProjectRequest(
            actor=tap.actor("olivia"), id="limited"), timeout=20)
        self.assertEqual(code, C.UNAVAILABLE)

        PG.start()
        pt.wait_until(lambda: pt.call_code(tap.check, authz, "mia", "support") == C.OK, timeout=15,
                      interval=0.1, message="Check answers again after PostgreSQL is back")
        self.assertEqual(tap.check(authz, "mia", "support").verdict, tap.ALLOW)
        pt.wait_until(lambda: pt.health_status(authz.channel) == "SERVING", timeout=10)
        archived = tap.stub(authz).ArchiveProject(authz_pb2.ArchiveProjectRequest(
            actor=tap.actor("olivia"), id="limited"), timeout=10)
        self.assertTrue(archived.archived)


if __name__ == "__main__":
    unittest.main()
