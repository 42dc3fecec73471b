"""The region service while a statement stalls without failing: its registry table is locked.

Another session holds `LOCK TABLE region.registry IN ACCESS EXCLUSIVE MODE` (as a migration or
VACUUM FULL does): the sync round blocks on it. Readiness must not block with it: health goes
NOT_SERVING within about --max_staleness, the staleness gauge keeps growing, and SIGTERM ends
the process promptly rather than when the lock goes. Skips without POLICY_TEST_PG_URL unless
POLICY_TEST_REQUIRE_PG=1.

Run: /usr/bin/python3 -m unittest -v tests.region.test_region_lock
"""

import signal
import subprocess
import sys
import time
import unittest
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support import policy_testing as pt  # noqa: E402

import grpc  # noqa: E402

STALENESS_S = 1.0
LOCK_S = 20


class RegistryLockTest(unittest.TestCase):
    def test_a_locked_registry_turns_health_off_and_sigterm_exits_promptly(self):
        url = pt.require_pg_url()
        db = self.enterContext(pt.test_database(url, "region_lock"))
        region = pt.ServiceProcess(pt.service_binary("region"), name="region-lock",
                                   flags={"sync_interval": "200ms", "health_listen": "127.0.0.1:0",
                                          "max_staleness": f"{int(STALENESS_S * 1000)}ms"},
                                   env={"POLICY_REGION_DATABASE_URL": db.url}).start()
        self.addCleanup(region.cleanup)
        health = grpc.insecure_channel(f"127.0.0.1:{region.health_port}")
        self.addCleanup(health.close)
        pt.wait_until(lambda: pt.health_status(health) == "SERVING", timeout=15,
                      message="SERVING", ignore=(grpc.RpcError,))
        # Breaker times are shared on the database's clock; here both clocks are this host's.
        offset = pt.metric_value(pt.scrape_metrics(region.metrics_port),
                                 "policy_region_clock_offset_seconds")
        self.assertIsNotNone(offset, "policy_region_clock_offset_seconds is exported")
        self.assertLess(abs(offset), 0.5)

        locker = subprocess.Popen(
            [pt.PSQL, "-X", "-q", "-d", db.url, "-c",
             "BEGIN; LOCK TABLE region.registry IN ACCESS EXCLUSIVE MODE; "
             f"SELECT pg_sleep({LOCK_S}); COMMIT;"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        self.addCleanup(locker.wait)
        self.addCleanup(locker.kill)
        pt.wait_until(lambda: db.sql("SELECT count(*) FROM pg_locks l JOIN pg_class c ON "
                                     "c.oid = l.relation WHERE c.relname = 'registry' AND "
                                     "l.mode = 'AccessExclusiveLock' AND l.granted").strip()
                      == "1", timeout=10, message="the lock is held")
        locked = time.monotonic()
        pt.wait_until(lambda: pt.health_status(health, timeout=1) == "NOT_SERVING",
                      timeout=STALENESS_S + 3, interval=0.05,
                      message="health NOT_SERVING while the registry is locked")
        turned = time.monotonic() - locked
        print(f"\n  health NOT_SERVING {turned:.2f} s after the lock (bound {STALENESS_S} s)")
        self.assertLess(turned, STALENESS_S + 1.0)
        # The gauge is not frozen: it goes on growing past the bound.
        first = pt.metric_value(pt.scrape_metrics(region.metrics_port),
                                "policy_region_registry_staleness_seconds")
        time.sleep(0.5)
        second = pt.metric_value(pt.scrape_metrics(region.metrics_port),
                                 "policy_region_registry_staleness_seconds")
        self.assertGreater(first, STALENESS_S)
        self.assertGreater(second, first)

        signalled = time.monotonic()
        region.proc.send_signal(signal.SIGTERM)
        region.proc.wait(timeout=LOCK_S)
        took = time.monotonic() - signalled
        print(f"  exited {took:.2f} s after SIGTERM, the lock still held")
        self.assertEqual(region.proc.returncode, 0)
        self.assertLess(took, 3.0)
        self.assertIsNone(locker.poll())  # The lock was still held throughout.


if __name__ == "__main__":
    unittest.main()
