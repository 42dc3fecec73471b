"""The keys and region outboxes while audit is killed with SIGKILL mid-relay.

The whole suite runs on one test database. Threads create keys (keys records key_created for
each) and endpoints (region records endpoint_changed) as fast as the services answer, while
the test SIGKILLs audit three times, starting it again on the same port. The changes never
wait for the ledger; once audit is back and the outboxes are empty, every acknowledged change
is in the ledger exactly once, nothing marked failed stays behind, and the ledgers verify.

Skips without POLICY_TEST_PG_URL unless POLICY_TEST_REQUIRE_PG=1.
Run: /usr/bin/python3 -m unittest -v tests.audit.test_outbox_kill_fault
"""

import collections
import contextlib
import signal
import sys
import threading
import time
import unittest
import uuid
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.edge import edge_support as es  # noqa: E402
from tests.support import policy_testing as pt  # noqa: E402

import grpc  # noqa: E402
from policy.audit.v1 import audit_pb2, audit_pb2_grpc  # noqa: E402
from policy.keys.v1 import keys_pb2, keys_pb2_grpc  # noqa: E402
from policy.region.v1 import region_pb2 as R, region_pb2_grpc  # noqa: E402

KILLS = 3
PROJECT = "outbox-kill"
SUITE = DB = None
_stack = None


def setUpModule():
    global SUITE, DB, _stack
    url = pt.require_pg_url()
    es.require_binaries()
    _stack = contextlib.ExitStack()
    try:
        DB, SUITE = es.start_suite(_stack, url, "outbox_kill", flags={
            "audit": {"listen": f"127.0.0.1:{pt.stable_port()}"}})
    except BaseException:
        _stack.close()
        raise


def tearDownModule():
    _stack.close()


class OutboxKillFaultTest(unittest.TestCase):
    def test_records_arrive_once_across_sigkills_of_audit(self):
        stop = threading.Event()
        lock = threading.Lock()
        keys, endpoints, failed = [], [], collections.Counter()

        def create_keys():
            with grpc.insecure_channel(SUITE.p["keys"].address) as channel:
                stub = keys_pb2_grpc.KeyServiceStub(channel)
                while not stop.is_set():
                    try:
                        key = stub.CreateKey(keys_pb2.CreateKeyRequest(
                            request_id=uuid.uuid4().hex, kind=keys_pb2.KEY_KIND_PROJECT,
                            owner=keys_pb2.Principal(type=keys_pb2.PRINCIPAL_TYPE_MEMBER,
                                                     id="bob"),
                            project=PROJECT, environment=keys_pb2.ENVIRONMENT_PRODUCTION,
                            scopes=["chat.completions"]), timeout=20).key
                    except grpc.RpcError as e:
                        with lock:
                            failed[f"keys {e.code().name}"] += 1
                        continue
                    with lock:
                        keys.append(key.key_id)

        def create_endpoints(number):
            with grpc.insecure_channel(SUITE.p["region"].address) as channel:
                stub = region_pb2_grpc.RegionServiceStub(channel)
                seq = 0
                while not stop.is_set():
                    endpoint_id = f"obx-{number}-{seq}"
                    seq += 1
                    try:
                        stub.CreateEndpoint(R.CreateEndpointRequest(
                            endpoint=es.endpoint(endpoint_id, R.RESIDENCY_EU, 9),
                            actor=es.OPERATOR), timeout=20)
                    except grpc.RpcError as e:
                        with lock:
                            failed[f"region {e.code().name}"] += 1
                        continue
                    with lock:
                        endpoints.append(endpoint_id)

        threads = [threading.Thread(target=create_keys, daemon=True) for _ in range(3)]
        threads += [threading.Thread(target=create_endpoints, args=(i,), daemon=True)
                    for i in range(2)]
        for t in threads:
            t.start()
        audit = SUITE.p["audit"]
        try:
            for _ in range(KILLS):
                time.sleep(1.0)
                audit.proc.send_signal(signal.SIGKILL)
                audit.proc.wait(10)
                audit.kill()
                time.sleep(0.5)  # changes made meanwhile wait in the outboxes
                audit.start()
            time.sleep(1.0)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        # The changes themselves never waited for the ledger.
        self.assertEqual(dict(failed), {})
        self.assertGreater(len(keys), 0)
        self.assertGreater(len(endpoints), 0)

        def outboxes():
            return int(DB.sql("SELECT (SELECT count(*) FROM keys.ledger_outbox) + "
                              "(SELECT count(*) FROM region.ledger_outbox)").strip())
        pt.wait_until(lambda: outboxes() == 0, timeout=30, interval=0.2,
                      message="the outboxes drained")

        counts = {request_id: int(n) for request_id, n in DB.rows(
            "SELECT request_id, count(*) FROM audit.entries "
            "WHERE request_id LIKE 'keys:key_created:%' OR action = 'endpoint_changed' "
            "GROUP BY 1")}
        self.assertEqual({r: n for r, n in counts.items() if n > 1}, {}, "recorded twice")
        missing = [k for k in keys if f"keys:key_created:{k}" not in counts]
        self.assertEqual(missing, [], "key creations missing from the ledger")
        changed = sum(1 for r in counts if not r.startswith("keys:"))
        self.assertEqual(changed, len(endpoints), "endpoint changes in the ledger")

        audit_stub = audit_pb2_grpc.AuditServiceStub(audit.channel)
        for project, environment in ((PROJECT, "production"), ("", "")):
            report = audit_stub.VerifyLedger(audit_pb2.VerifyLedgerRequest(
                ledger=audit_pb2.LedgerRef(project=project, environment=environment)),
                timeout=30).report
            self.assertTrue(report.valid, report)
        print(f"\n  {len(keys)} keys, {len(endpoints)} endpoints recorded once across "
              f"{KILLS} SIGKILLs of audit", file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
