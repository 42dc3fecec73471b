"""The region service while its PostgreSQL goes away and comes back.

A private PostgreSQL cluster (PrivatePostgres) is stopped and restarted under a running
region process: routing fails closed once the registry is older than --max_staleness,
readiness drops, administration answers UNAVAILABLE (never INTERNAL), and everything recovers
without restarting the service. Skips without POLICY_TEST_PG_URL unless
POLICY_TEST_REQUIRE_PG=1.

Run: /usr/bin/python3 -m unittest -v tests.region.test_region_postgres_fault
"""

import contextlib
import sys
import time
import unittest
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.region import test_region_process as trp  # noqa: E402
from tests.support import policy_testing as pt  # noqa: E402

import grpc  # noqa: E402
from policy.pii.v1 import pii_pb2  # noqa: E402
from policy.region.v1 import region_pb2 as R  # noqa: E402

C = grpc.StatusCode
STALENESS_S = 0.5
PG = DB = None
_stack = None


def setUpModule():
    global PG, DB, _stack
    pt.require_pg_url()
    pt.service_binary("region")
    _stack = contextlib.ExitStack()
    try:
        PG = _stack.enter_context(pt.PrivatePostgres())
        DB = _stack.enter_context(pt.test_database(PG.url, "region_fault"))
    except BaseException:
        _stack.close()
        raise


def tearDownModule():
    if PG is not None and not PG.running:
        PG.start()
    _stack.close()


class PostgresFaultTest(unittest.TestCase):
    def test_outage_fails_closed_then_recovers_without_restart(self):
        region = pt.ServiceProcess(pt.service_binary("region"), name="region-fault",
                                   flags={"sync_interval": "100ms",
                                          "max_staleness": f"{int(STALENESS_S * 1000)}ms"},
                                   env={"POLICY_REGION_DATABASE_URL": DB.url}).start()
        self.addCleanup(region.cleanup)
        pt.wait_until(lambda: pt.health_status(region.channel) == "SERVING", timeout=15,
                      message="SERVING", ignore=(grpc.RpcError,))
        stub = trp.stub(region)
        stub.CreateEndpoint(R.CreateEndpointRequest(endpoint=trp.endpoint(
            "westeurope-fault", R.RESIDENCY_EU, models=["gpt-4.1"]), actor=trp.ACTOR), timeout=10)

        def route():
            return stub.Route(R.RouteRequest(residency=R.RESIDENCY_EU,
                                             data_class=pii_pb2.DATA_CLASS_PII,
                                             model="gpt-4.1"), timeout=5)

        self.assertEqual(route().endpoint.id, "westeurope-fault")
        PG.stop(mode="fast")
        stopped = time.monotonic()
        pt.wait_until(lambda: pt.call_code(route) == C.UNAVAILABLE, timeout=5, interval=0.02,
                      message="Route UNAVAILABLE once the registry is stale")
        failed_closed = time.monotonic() - stopped
        print(f"\n  routing failed closed {failed_closed:.2f} s after PostgreSQL stopped "
              f"(bound {STALENESS_S} s)")
        self.assertLess(failed_closed, STALENESS_S + 1.0)
        self.assertIn("stale", pt.call_error(route).details())
        pt.wait_until(lambda: pt.health_status(region.channel) == "NOT_SERVING", timeout=5,
                      message="health NOT_SERVING")
        # Administration answers with a retryable status, never INTERNAL.
        self.assertEqual(pt.call_code(stub.ListEndpoints, R.ListEndpointsRequest(), timeout=10),
                         C.UNAVAILABLE)
        # Outcome reports still reach the breaker (memory only).
        self.assertEqual(stub.ReportOutcome(R.ReportOutcomeRequest(
            endpoint_id="westeurope-fault", success=True), timeout=5).breaker_state,
            R.BREAKER_STATE_CLOSED)

        PG.start()
        pt.wait_until(lambda: pt.call_code(route) == C.OK, timeout=20, interval=0.1,
                      message="Route recovers without a restart")
        self.assertEqual(route().endpoint.id, "westeurope-fault")
        pt.wait_until(lambda: pt.health_status(region.channel) == "SERVING", timeout=10,
                      message="health SERVING again")
        self.assertEqual(region.terminate(), 0)


if __name__ == "__main__":
    unittest.main()
