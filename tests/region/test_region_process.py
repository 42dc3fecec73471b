"""Process-level tests of the region service: two real region replicas on one PostgreSQL
database, driven over gRPC.

Checks the endpoint registry's administration (and its statuses for bad input), routing by
residency and data class, outcome reports opening a breaker and the failover staying inside
the residency, the breaker reaching the other replica within the stated convergence bound
(its opening, and its closing by a probe another replica admitted),
the regional health report, and the Prometheus metrics.

Needs POLICY_TEST_PG_URL (as tools/dev pg sets up); skips without it, or fails when
POLICY_TEST_REQUIRE_PG=1.
Run: /usr/bin/python3 -m unittest -v tests.region.test_region_process
"""

import contextlib
import sys
import unittest
import uuid
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support import policy_testing as pt  # noqa: E402

import grpc  # noqa: E402
from policy.pii.v1 import pii_pb2  # noqa: E402
from policy.region.v1 import region_pb2 as R, region_pb2_grpc  # noqa: E402

C = grpc.StatusCode
SERVICE = "policy.region.v1.RegionService"
SYNC = "100ms"
ACTOR = "region-tests@example.com"  # Who the tests' changes are recorded as.

DB = None
A = B = None
_stack = None


def start_region(name):
    process = pt.ServiceProcess(pt.service_binary("region"), name=name,
                                flags={"sync_interval": SYNC, "cool_down": "2s",
                                       "replica": name},
                                env={"POLICY_REGION_DATABASE_URL": DB.url})
    process.start()
    pt.wait_until(lambda: pt.health_status(process.channel) == "SERVING", timeout=15,
                  message=f"{name} SERVING", ignore=(grpc.RpcError,))
    return process


def setUpModule():
    global DB, A, B, _stack
    url = pt.require_pg_url()
    pt.service_binary("region")
    _stack = contextlib.ExitStack()
    try:
        DB = _stack.enter_context(pt.test_database(url, "region_process"))
        A = start_region("region-a")
        _stack.callback(lambda: A.cleanup())
        B = start_region("region-b")
        _stack.callback(lambda: B.cleanup())
    except BaseException:
        _stack.close()
        raise


def tearDownModule():
    try:
        for p in (A, B):
            code = p.terminate()
            if code != 0:
                raise AssertionError(f"{p.name} exited {code} on SIGTERM\n{p.log_tail()}")
    finally:
        _stack.close()


def stub(process):
    return region_pb2_grpc.RegionServiceStub(process.channel)


def endpoint(id_, residency, priority=1, zdr=True, private=True, cached=False,
             models=("gpt-4.1",), provider=R.PROVIDER_AZURE, enabled=True, weight=100):
    return R.Endpoint(
        id=id_, region=id_.split("-")[0], provider=provider,
        base_url=f"https://{id_}.openai.azure.com", deployment="gpt-4-1",
        residency=residency, capabilities=R.Capabilities(
            zero_data_retention=zdr, private_link=private, cached=cached),
        models=list(models), priority=priority, weight=weight, enabled=enabled)


class RegionProcessTest(unittest.TestCase):
    def setUp(self):
        self.u = uuid.uuid4().hex[:6]
        self.model = f"gpt-test-{self.u}"  # Each test routes its own model.

    def create(self, e, process=None):
        return stub(process or A).CreateEndpoint(R.CreateEndpointRequest(endpoint=e,
                                                                          actor=ACTOR),
                                                 timeout=10)

    def route(self, process, residency=R.RESIDENCY_EU, data_class=pii_pb2.DATA_CLASS_PII):
        return stub(process).Route(R.RouteRequest(residency=residency, data_class=data_class,
                                                  model=self.model), timeout=5)

    def eu_registry(self):
        ids = {name: f"{name}-{self.u}" for name in ("westeurope", "sweden", "eastus")}
        self.create(endpoint(ids["westeurope"], R.RESIDENCY_EU, 1, models=[self.model]))
        self.create(endpoint(ids["sweden"], R.RESIDENCY_EU, 2, models=[self.model]))
        self.create(endpoint(ids["eastus"], R.RESIDENCY_US, 1, models=[self.model]))
        # Replica B learns of them within its sync interval.
        pt.wait_until(lambda: self.route(B).endpoint.id == ids["westeurope"], timeout=5,
                      message="replica B routes to the new endpoints", ignore=(grpc.RpcError,))
        return ids

    def test_bad_input_gets_a_status_naming_the_field(self):
        good = endpoint(f"bad-{self.u}", R.RESIDENCY_EU, models=[self.model])
        cases = [
            ("base_url", lambda e: setattr(e, "base_url", "http://insecure.example.com")),
            ("base_url", lambda e: setattr(e, "base_url", "https://user@host/x")),
            ("weight", lambda e: setattr(e, "weight", 5000)),
            ("priority", lambda e: setattr(e, "priority", -1)),
            ("residency", lambda e: setattr(e, "residency", 9)),
            ("residency", lambda e: setattr(e, "residency", R.RESIDENCY_UNSPECIFIED)),
            ("provider", lambda e: setattr(e, "provider", R.PROVIDER_UNSPECIFIED)),
            ("deployment", lambda e: setattr(e, "deployment", "")),
            ("models", lambda e: e.ClearField("models")),
            ("id", lambda e: setattr(e, "id", "Bad Id")),
        ]
        for field, mutate in cases:
            e = R.Endpoint()
            e.CopyFrom(good)
            mutate(e)
            with self.subTest(field=field):
                with self.assertRaises(grpc.RpcError) as ctx:
                    self.create(e)
                self.assertEqual(ctx.exception.code(), C.INVALID_ARGUMENT)
                self.assertIn(field, ctx.exception.details())
        self.create(good)
        self.create(good)  # A retried creation of the same endpoint: OK, nothing changed.
        other = R.Endpoint()
        other.CopyFrom(good)
        other.weight = good.weight + 1
        with self.assertRaises(grpc.RpcError) as ctx:
            self.create(other)
        self.assertEqual(ctx.exception.code(), C.ALREADY_EXISTS)
        self.assertIn("different weight", ctx.exception.details())
        with self.assertRaises(grpc.RpcError) as ctx:
            stub(A).UpdateEndpoint(R.UpdateEndpointRequest(
                endpoint=endpoint(f"missing-{self.u}", R.RESIDENCY_EU), actor=ACTOR), timeout=5)
        self.assertEqual(ctx.exception.code(), C.NOT_FOUND)
        for request, field in [
                (R.RouteRequest(residency=7, model=self.model), "residency"),
                (R.RouteRequest(model=""), "model"),
                (R.RouteRequest(model=self.model, preference=9), "preference"),
                (R.RouteRequest(model=self.model, data_class=42), "data_class")]:
            with self.subTest(route=field):
                with self.assertRaises(grpc.RpcError) as ctx:
                    stub(A).Route(request, timeout=5)
                self.assertEqual(ctx.exception.code(), C.INVALID_ARGUMENT)
                self.assertIn(field, ctx.exception.details())
        # A model no endpoint serves is no mistake of the request's: nothing complies.
        unserved = stub(A).Route(R.RouteRequest(model=f"unknown-{self.u}"), timeout=5)
        self.assertEqual(unserved.decision, R.DECISION_BLOCKED)
        self.assertEqual(unserved.reason,
                         f"NO_COMPLIANT_REGION: no endpoint serves model 'unknown-{self.u}'")
        with self.assertRaises(grpc.RpcError) as ctx:
            stub(A).ReportOutcome(R.ReportOutcomeRequest(endpoint_id=f"nope-{self.u}"),
                                  timeout=5)
        self.assertEqual(ctx.exception.code(), C.NOT_FOUND)

    def test_every_change_names_its_actor(self):
        # Each change is recorded in the audit ledger as its actor's: none goes without one.
        e = endpoint(f"actor-{self.u}", R.RESIDENCY_EU, models=[self.model])
        calls = [
            lambda actor: stub(A).CreateEndpoint(R.CreateEndpointRequest(endpoint=e, actor=actor),
                                                 timeout=5),
            lambda actor: stub(A).UpdateEndpoint(R.UpdateEndpointRequest(endpoint=e, actor=actor),
                                                 timeout=5),
            lambda actor: stub(A).DeleteEndpoint(R.DeleteEndpointRequest(id=e.id, actor=actor),
                                                 timeout=5),
        ]
        for i, call in enumerate(calls):
            for actor in ("", "x" * 129, "nul\0inside"):
                with self.subTest(call=i, actor=actor[:8]):
                    with self.assertRaises(grpc.RpcError) as ctx:
                        call(actor)
                    self.assertEqual(ctx.exception.code(), C.INVALID_ARGUMENT)
                    self.assertTrue(ctx.exception.details().startswith("actor: "),
                                    ctx.exception.details())
        self.assertIn("required", pt.call_error(calls[0], "").details())
        # Nothing was created; with an actor of 128 bytes, each change is made.
        listed = [x.id for x in stub(A).ListEndpoints(R.ListEndpointsRequest(),
                                                      timeout=5).endpoints]
        self.assertNotIn(e.id, listed)
        for call in calls:
            call("a" * 128)

    def test_huge_values_are_invalid_argument_naming_the_field_not_echoed(self):
        # A reply quoting a 1 MB value would exceed gRPC's metadata limit (RESOURCE_EXHAUSTED).
        huge = "x" * (1 << 20)
        good = endpoint(f"huge-{self.u}", R.RESIDENCY_EU, models=[self.model])
        calls = [("id", lambda: stub(A).DeleteEndpoint(R.DeleteEndpointRequest(id=huge,
                                                                               actor=ACTOR),
                                                       timeout=10)),
                 ("actor", lambda: stub(A).DeleteEndpoint(
                     R.DeleteEndpointRequest(id=f"huge-{self.u}", actor=huge), timeout=10)),
                 ("actor", lambda: stub(A).CreateEndpoint(
                     R.CreateEndpointRequest(endpoint=good, actor=huge), timeout=10)),
                 ("endpoint_id", lambda: stub(A).ReportOutcome(
                     R.ReportOutcomeRequest(endpoint_id=huge), timeout=10)),
                 ("reporter", lambda: stub(A).ReportOutcome(
                     R.ReportOutcomeRequest(endpoint_id=f"huge-{self.u}", reporter=huge),
                     timeout=10)),
                 ("model", lambda: stub(A).Route(R.RouteRequest(model=huge), timeout=10))]
        for field, value in [("base_url", "https://" + huge), ("region", huge),
                             ("deployment", huge), ("id", huge), ("models[0]", huge)]:
            e = R.Endpoint()
            e.CopyFrom(good)
            if field == "models[0]":
                e.models[0] = value
            else:
                setattr(e, field, value)
            calls.append((field, lambda e=e: self.create(e)))
        for field, call in calls:
            with self.subTest(field=field):
                with self.assertRaises(grpc.RpcError) as ctx:
                    call()
                self.assertEqual(ctx.exception.code(), C.INVALID_ARGUMENT,
                                 ctx.exception.details()[:200])
                self.assertIn(f"{field}: longer than", ctx.exception.details())
                self.assertLess(len(ctx.exception.details()), 300)

    def test_classification_and_residency(self):
        ids = self.eu_registry()
        std = f"standard-{self.u}"
        self.create(endpoint(std, R.RESIDENCY_EU, 1, zdr=False, private=False,
                             models=[self.model]))
        # PII never to the standard endpoint; internal data may use it.
        self.assertEqual(self.route(A).endpoint.id, ids["westeurope"])
        internal = self.route(A, data_class=pii_pb2.DATA_CLASS_INTERNAL)
        self.assertEqual(internal.decision, R.DECISION_ROUTED)
        us = self.route(A, residency=R.RESIDENCY_US)
        self.assertEqual(us.endpoint.id, ids["eastus"])
        # A routed decision lists the candidates of the residency only.
        self.assertEqual([(c.endpoint_id, c.chosen) for c in us.candidates],
                         [(ids["eastus"], True)])
        pii = self.route(A)
        self.assertEqual({c.endpoint_id: c.exclusion for c in pii.candidates},
                         {ids["westeurope"]: R.EXCLUSION_UNSPECIFIED,
                          ids["sweden"]: R.EXCLUSION_UNSPECIFIED,
                          std: R.EXCLUSION_CLASSIFICATION})
        # A blocked one says why each endpoint serving the model was excluded.
        apac = self.route(A, residency=R.RESIDENCY_APAC)
        self.assertEqual(apac.decision, R.DECISION_BLOCKED)
        self.assertIn("NO_COMPLIANT_REGION", apac.reason)
        self.assertEqual({c.endpoint_id: c.exclusion for c in apac.candidates},
                         {ids["westeurope"]: R.EXCLUSION_RESIDENCY,
                          ids["sweden"]: R.EXCLUSION_RESIDENCY,
                          ids["eastus"]: R.EXCLUSION_RESIDENCY,
                          std: R.EXCLUSION_RESIDENCY})

    def test_failures_open_the_breaker_failover_stays_in_residency_and_reaches_the_replica(self):
        ids = self.eu_registry()
        west = ids["westeurope"]
        for i in range(3):
            state = stub(A).ReportOutcome(R.ReportOutcomeRequest(endpoint_id=west, success=False),
                                          timeout=5).breaker_state
        self.assertEqual(state, R.BREAKER_STATE_OPEN)
        failover = self.route(A)
        self.assertEqual(failover.endpoint.id, ids["sweden"])
        self.assertTrue(failover.failover)
        # The other replica adopts the open breaker within the convergence bound.
        bound = stub(B).GetHealthReport(R.GetHealthReportRequest(), timeout=5).convergence_bound
        bound_s = bound.seconds + bound.nanos / 1e9
        self.assertAlmostEqual(bound_s, 0.2)
        pt.wait_until(lambda: self.route(B).endpoint.id == ids["sweden"],
                      timeout=bound_s + 3.0, message="replica B fails over too")
        # Both EU endpoints down: blocked, never routed to the US.
        for i in range(3):
            stub(A).ReportOutcome(R.ReportOutcomeRequest(endpoint_id=ids["sweden"],
                                                         success=False), timeout=5)
        blocked = self.route(A)
        self.assertEqual(blocked.decision, R.DECISION_BLOCKED)
        self.assertFalse(blocked.HasField("endpoint"))
        self.assertIn("unhealthy", blocked.reason)

        report = stub(A).GetHealthReport(R.GetHealthReportRequest(), timeout=5)
        self.assertGreaterEqual(report.failovers, 1)
        self.assertGreaterEqual(report.blocked, 1)
        mine = {e.endpoint.id: e for e in report.endpoints}
        self.assertEqual(mine[west].breaker_state, R.BREAKER_STATE_OPEN)
        self.assertEqual(mine[west].failures, 3)
        self.assertTrue(mine[west].HasField("half_open_at"))
        # The metrics show it (refreshed every sync interval).
        pt.wait_until(lambda: pt.metric_value(pt.scrape_metrics(A.metrics_port),
                                              "policy_region_breaker_state", llm_endpoint=west,
                                              state="open") == 1,
                      timeout=5, message="policy_region_breaker_state open = 1")

    def test_a_close_reported_to_one_replica_frees_the_probe_another_admitted(self):
        # The edge's Route and its ReportOutcome may reach different replicas.
        west = f"westeurope-{self.u}"
        self.create(endpoint(west, R.RESIDENCY_EU, models=[self.model]))
        pt.wait_until(lambda: self.route(B).endpoint.id == west, timeout=5,
                      message="replica B routes to the new endpoint", ignore=(grpc.RpcError,))
        for i in range(3):
            stub(A).ReportOutcome(R.ReportOutcomeRequest(endpoint_id=west, success=False),
                                  timeout=5)
        pt.wait_until(lambda: self.route(B).decision == R.DECISION_BLOCKED, timeout=5,
                      message="replica B adopts the open breaker")
        # After the cool-down (2 s) B admits its one probe; the next request finds it held.
        pt.wait_until(lambda: self.route(B).decision == R.DECISION_ROUTED, timeout=5,
                      message="replica B admits a probe")
        self.assertEqual(self.route(B).decision, R.DECISION_BLOCKED)
        # The probe's success is reported to A, which closes; B follows within the bound
        # (not after probe_timeout, 30 s).
        state = stub(A).ReportOutcome(R.ReportOutcomeRequest(endpoint_id=west, success=True),
                                      timeout=5).breaker_state
        self.assertEqual(state, R.BREAKER_STATE_CLOSED)
        bound = stub(B).GetHealthReport(R.GetHealthReportRequest(), timeout=5).convergence_bound
        pt.wait_until(lambda: self.route(B).decision == R.DECISION_ROUTED,
                      timeout=bound.seconds + bound.nanos / 1e9 + 3.0,
                      message="replica B routes to the endpoint again")
        self.assertEqual(self.route(B).endpoint.id, west)
        mine = {e.endpoint.id: e for e in
                stub(B).GetHealthReport(R.GetHealthReportRequest(), timeout=5).endpoints}
        self.assertEqual(mine[west].breaker_state, R.BREAKER_STATE_CLOSED)

    def test_one_tenant_alone_cannot_open_an_endpoint_another_uses(self):
        ids = self.eu_registry()
        west = ids["westeurope"]

        def report(success, reporter):
            return stub(A).ReportOutcome(R.ReportOutcomeRequest(
                endpoint_id=west, success=success, reporter=reporter), timeout=5).breaker_state

        self.assertEqual(report(True, "support-eu"), R.BREAKER_STATE_CLOSED)
        for _ in range(5):
            self.assertEqual(report(False, "billing-us"), R.BREAKER_STATE_CLOSED)
        self.assertEqual(self.route(A).endpoint.id, west)
        mine = {e.endpoint.id: e for e in stub(A).GetHealthReport(
            R.GetHealthReportRequest(), timeout=5).endpoints}
        self.assertEqual(mine[west].trips_withheld, 3)
        pt.wait_until(lambda: pt.metric_value(pt.scrape_metrics(A.metrics_port),
                                              "policy_region_breaker_trips_withheld_total",
                                              llm_endpoint=west) == 3,
                      timeout=5, message="policy_region_breaker_trips_withheld_total = 3")
        # A second tenant's failure in the run opens it.
        self.assertEqual(report(False, "support-eu"), R.BREAKER_STATE_OPEN)

    def test_a_bad_breaker_min_reporters_stops_the_service_naming_it(self):
        for value in ("0", "9"):
            with self.subTest(value=value):
                result = pt.run_binary(pt.service_binary("region"), flags={
                    "breaker_min_reporters": value, "store": "memory",
                    "listen": "127.0.0.1:0", "metrics_listen": ""})
                self.assertNotEqual(result.returncode, 0)
                self.assertIn(f"breaker_min_reporters must be between 1 and 8, not {value}",
                              result.stdout + result.stderr)

    def test_a_bad_probe_timeout_stops_the_service_naming_it(self):
        result = pt.run_binary(pt.service_binary("region"), flags={
            "probe_timeout": "0s", "store": "memory", "listen": "127.0.0.1:0",
            "metrics_listen": ""})
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("probe_timeout must be positive and finite", result.stdout + result.stderr)

    def test_latency_reports_steer_the_lowest_latency_preference(self):
        ids = self.eu_registry()
        for id_, ms in ((ids["westeurope"], 90), (ids["sweden"], 20)):
            stub(A).ReportOutcome(R.ReportOutcomeRequest(
                endpoint_id=id_, success=True, latency={"nanos": ms * 1_000_000}), timeout=5)
        fastest = stub(A).Route(R.RouteRequest(
            residency=R.RESIDENCY_EU, data_class=pii_pb2.DATA_CLASS_PII, model=self.model,
            preference=R.PREFERENCE_LOWEST_LATENCY), timeout=5)
        self.assertEqual(fastest.endpoint.id, ids["sweden"])

    def test_delete_reaches_every_replica(self):
        ids = self.eu_registry()
        stub(A).DeleteEndpoint(R.DeleteEndpointRequest(id=ids["westeurope"], actor=ACTOR),
                               timeout=5)
        self.assertEqual(self.route(A).endpoint.id, ids["sweden"])
        pt.wait_until(lambda: self.route(B).endpoint.id == ids["sweden"], timeout=5,
                      message="replica B forgets the deleted endpoint")
        listed = [e.id for e in stub(B).ListEndpoints(R.ListEndpointsRequest(),
                                                      timeout=5).endpoints]
        self.assertNotIn(ids["westeurope"], listed)
        self.assertIn(ids["sweden"], listed)

    def test_the_load_generator_leaves_the_registry_as_it_found_it(self):
        # loadgen registers loadgen-ep-0..99 for region.route; one of them already exists and
        # is somebody else's: it must survive, and the others must go when loadgen ends.
        kept = "loadgen-ep-7"
        self.create(endpoint(kept, R.RESIDENCY_EU, models=["gpt-4o"]))
        self.addCleanup(lambda: stub(A).DeleteEndpoint(R.DeleteEndpointRequest(id=kept,
                                                                               actor=ACTOR),
                                                       timeout=5))
        loadgen = pt.BUILD_DIR / "tools" / "loadgen"
        done = pt.run_binary(loadgen, flags={
            "target": f"127.0.0.1:{A.grpc_port}", "rpc": "region.route", "duration": "200ms",
            "warmup": "100ms", "rounds": "1", "concurrency": "4"}, timeout=120)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertIn("region.route", done.stdout)
        listed = [e.id for e in stub(A).ListEndpoints(R.ListEndpointsRequest(),
                                                      timeout=5).endpoints]
        self.assertEqual([i for i in listed if i.startswith("loadgen-ep-")], [kept])


if __name__ == "__main__":
    unittest.main()
