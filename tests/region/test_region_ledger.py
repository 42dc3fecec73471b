"""The endpoint registry's changes reach the audit ledger: real region and audit processes on
one PostgreSQL database, region started with --audit_target.

Checks that creating, updating and deleting an endpoint each append an ENDPOINT_CHANGED entry
to the organisation's ledger, by the request's actor, with the metadata the ledger has always
held for them (change, endpoint, and region, residency, enabled for a creation or an update);
and that the records of changes made while the audit service does not answer (SIGSTOP) wait
in region's outbox (in PostgreSQL), survive a restart of the region process, and are each
recorded exactly once, in order, when audit answers again.

Needs POLICY_TEST_PG_URL (as tools/dev pg sets up); skips without it, or fails when
POLICY_TEST_REQUIRE_PG=1.
Run: /usr/bin/python3 -m unittest -v tests.region.test_region_ledger
"""

import contextlib
import re
import sys
import time
import unittest
import uuid
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.audit import audit_support as aus  # noqa: E402
from tests.region import test_region_process as trp  # noqa: E402
from tests.support import policy_testing as pt  # noqa: E402

import grpc  # noqa: E402
from policy.audit.v1 import audit_pb2 as A  # noqa: E402
from policy.region.v1 import region_pb2 as R  # noqa: E402

DB = AUDIT_KEYS = None
AUDIT = REGION = None
_stack = None



def start_region():
    process = pt.ServiceProcess(pt.service_binary("region"), name="region",
                                flags={"sync_interval": "100ms",
                                       "audit_target": AUDIT.address},
                                env={"POLICY_REGION_DATABASE_URL": DB.url})
    process.start()
    try:
        pt.wait_until(lambda: pt.health_status(process.channel) == "SERVING", timeout=15,
                      message="region SERVING", ignore=(grpc.RpcError,))
    except BaseException:
        process.cleanup()
        raise
    return process


def setUpModule():
    global DB, AUDIT_KEYS, AUDIT, REGION, _stack
    url = pt.require_pg_url()
    pt.service_binary("audit")
    pt.service_binary("region")
    _stack = contextlib.ExitStack()
    try:
        DB = _stack.enter_context(pt.test_database(url, "region_ledger"))
        AUDIT_KEYS = aus.new_keys()
        AUDIT = aus.start_serving_on_a_free_port(DB.url, AUDIT_KEYS)
        _stack.callback(lambda: AUDIT.cleanup())
        REGION = start_region()
        _stack.callback(lambda: REGION.cleanup())
    except BaseException:
        _stack.close()
        raise


def tearDownModule():
    try:
        code = REGION.terminate()
        if code != 0:
            raise AssertionError(f"region exited {code} on SIGTERM\n{REGION.log_tail()}")
    finally:
        _stack.close()


def endpoint_entries(endpoint_id):
    """The organisation ledger's entries of changes to `endpoint_id`, in ledger order."""
    entries = aus.export_entries(aus.stub(AUDIT), aus.ledger("", ""),
                                 requested_by="auditor@test")
    return [e for e in entries if e.action == A.ACTION_ENDPOINT_CHANGED
            and e.metadata["endpoint"] == endpoint_id]


def pending_records():
    return pt.metric_value(pt.scrape_metrics(REGION.metrics_port),
                           "policy_region_audit_events_pending")


def outbox_rows():
    return int(DB.sql("SELECT count(*) FROM region.ledger_outbox").strip())


class RegionLedgerTest(unittest.TestCase):
    def setUp(self):
        self.id_ = f"westeurope-{uuid.uuid4().hex[:8]}"
        self.actor = f"alice-{uuid.uuid4().hex[:6]}@example.com"

    def change_create_update_delete(self):
        """The endpoint created (EU, enabled), updated (APAC, disabled) and deleted, by
        self.actor; the metadata the ledger should hold for each, in order."""
        region = trp.stub(REGION)
        e = trp.endpoint(self.id_, R.RESIDENCY_EU)
        region.CreateEndpoint(R.CreateEndpointRequest(endpoint=e, actor=self.actor), timeout=10)
        e.residency, e.region, e.enabled = R.RESIDENCY_APAC, "japaneast", False
        region.UpdateEndpoint(R.UpdateEndpointRequest(endpoint=e, actor=self.actor), timeout=10)
        # The same update again (a retry, say) changes nothing, and records nothing.
        region.UpdateEndpoint(R.UpdateEndpointRequest(endpoint=e, actor=self.actor), timeout=10)
        region.DeleteEndpoint(R.DeleteEndpointRequest(id=self.id_, actor=self.actor),
                              timeout=10)
        # A delete of nothing changes nothing, and records nothing.
        self.assertEqual(pt.call_code(region.DeleteEndpoint, R.DeleteEndpointRequest(
            id=self.id_, actor=self.actor), timeout=10), grpc.StatusCode.NOT_FOUND)
        return [
            {"change": "created", "endpoint": self.id_, "region": "westeurope",
             "residency": "RESIDENCY_EU", "enabled": "true"},
            {"change": "updated", "endpoint": self.id_, "region": "japaneast",
             "residency": "RESIDENCY_APAC", "enabled": "false",
             "fields": "region,residency,enabled"},
            {"change": "deleted", "endpoint": self.id_},
        ]

    def wait_entries(self, count):
        pt.wait_until(lambda: len(endpoint_entries(self.id_)) >= count, timeout=15,
                      message=f"{count} ENDPOINT_CHANGED entries for {self.id_}")
        return endpoint_entries(self.id_)

    def test_each_change_is_recorded_by_its_actor(self):
        expected = self.change_create_update_delete()
        entries = self.wait_entries(len(expected))
        self.assertEqual([dict(e.metadata) for e in entries], expected)
        for e in entries:
            self.assertEqual(e.actor, self.actor)
            self.assertEqual((e.ledger.project, e.ledger.environment, e.subject), ("", "", ""))
            self.assertEqual(e.outcome, A.OUTCOME_SUCCESS)
            self.assertRegex(e.request_id, re.compile(r"^region:endpoint:[0-9a-f]{32}$"))
        self.assertEqual(len({e.request_id for e in entries}), len(entries))
        pt.wait_until(lambda: pending_records() == 0, timeout=15,
                      message="policy_region_audit_events_pending 0")
        self.assertEqual(outbox_rows(), 0)
        report = aus.stub(AUDIT).VerifyLedger(A.VerifyLedgerRequest(
            ledger=aus.ledger("", "")), timeout=10).report
        self.assertTrue(report.valid, report.problem)

    def test_changes_made_while_audit_is_stopped_arrive_once_in_order(self):
        global REGION
        # The audit service stops answering (SIGSTOP: it keeps its port, calls time out).
        AUDIT.stop()
        try:
            started = time.monotonic()
            expected = self.change_create_update_delete()
            # The changes do not wait for the ledger (an Append would wait out its 5 s
            # deadline); their records wait in the outbox.
            self.assertLess(time.monotonic() - started, 4.0)
            self.assertGreaterEqual(outbox_rows(), len(expected))
            pt.wait_until(lambda: pending_records() >= len(expected), timeout=15,
                          message=f"policy_region_audit_events_pending at least {len(expected)}")
            # The region process restarts while audit still does not answer: the records stay.
            code = REGION.terminate()
            self.assertEqual(code, 0, REGION.log_tail())
            REGION = start_region()
            self.assertGreaterEqual(outbox_rows(), len(expected))
        finally:
            AUDIT.resume()
        entries = self.wait_entries(len(expected))
        pt.wait_until(lambda: pending_records() == 0, timeout=15,
                      message="policy_region_audit_events_pending back to 0")
        # Exactly once each, in the order of the changes, and the outbox is empty.
        entries = endpoint_entries(self.id_)
        self.assertEqual([dict(e.metadata) for e in entries], expected)
        self.assertEqual({e.actor for e in entries}, {self.actor})
        self.assertEqual(outbox_rows(), 0)
        recorded = pt.metric_value(pt.scrape_metrics(REGION.metrics_port),
                                   "policy_region_audit_events_total", result="recorded")
        self.assertGreaterEqual(recorded, 1)


if __name__ == "__main__":
    unittest.main()
