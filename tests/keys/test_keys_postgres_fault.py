"""The keys service while its PostgreSQL goes away and comes back.

Uses a private PostgreSQL cluster (PrivatePostgres: initdb in a temporary directory, its own
port) that the tests stop and restart under running keys processes, so the shared server
other tests use is never disturbed. Needs root or the postgres binaries (initdb runs as the
postgres user) and, like the other PostgreSQL tests, POLICY_TEST_PG_URL or not
POLICY_TEST_REQUIRE_PG=1: the variable is not used, but a run that requires PostgreSQL
must not skip.

Run: /usr/bin/python3 -m unittest -v tests.keys.test_keys_postgres_fault
"""

import contextlib
import sys
import time
import unittest
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.keys import keys_support as ks  # noqa: E402
from tests.support import policy_testing as pt  # noqa: E402

import grpc  # noqa: E402
from policy.keys.v1 import keys_pb2  # noqa: E402

C = grpc.StatusCode
FLAGS = dict(max_staleness="1s", watch_heartbeat="200ms", health_interval="100ms")

PG = None
DB = None
PEPPER = None
_stack = None


def setUpModule():
    global PG, DB, PEPPER, _stack
    pt.require_pg_url()  # skip or fail the same way as every PostgreSQL test
    pt.service_binary("keys")
    _stack = contextlib.ExitStack()
    try:
        PG = _stack.enter_context(pt.PrivatePostgres())
        DB = _stack.enter_context(pt.test_database(PG.url, "keys_fault"))
        PEPPER = ks.new_pepper()
    except BaseException:
        _stack.close()
        raise


def tearDownModule():
    if PG is not None and not PG.running:
        PG.start()  # so that the database can be dropped cleanly
    _stack.close()


def code_of(fn, *args, **kwargs):
    """(code, details) of an RPC; (OK, '') when it succeeds."""
    try:
        fn(*args, **kwargs)
        return C.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details()


def verify_code(process, secret):
    return code_of(ks.stub(process).VerifyKey, keys_pb2.VerifyKeyRequest(secret=secret.encode()),
                   timeout=5)[0]


def start(name, **flags):
    process = ks.start_keys(DB.url, PEPPER, name=name, **{**FLAGS, **flags})
    try:
        return ks.wait_serving(process)
    except BaseException:
        process.cleanup()
        raise


class PostgresFaultTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        if not PG.running:
            PG.start()
        self.processes = []

    def tearDown(self):
        for process in self.processes:
            process.cleanup()

    def started(self, name, **flags):
        process = start(name, **flags)
        self.processes.append(process)
        return process

    def test_outage_fails_closed_then_recovers_without_restart(self):
        keys = self.started("keys-fault")
        trusted = self.started("keys-fault-trusted", reveal_denial_reasons=True)
        stub = ks.stub(keys)
        created = stub.CreateKey(ks.create_request("alice", "proj-fault"), timeout=10)
        secret = created.secret
        self.assertEqual(stub.VerifyKey(keys_pb2.VerifyKeyRequest(secret=secret.encode())).key.state,
                         keys_pb2.KEY_STATE_ACTIVE)
        pt.wait_until(lambda: verify_code(trusted, secret) == C.OK, timeout=2)

        # --- PostgreSQL goes away -------------------------------------------------------
        PG.stop(mode="fast")
        stopped = time.monotonic()
        # The cache's last proof came before PostgreSQL stopped: a verification asked more
        # than max_staleness (1 s) after that is refused, however slow the machine.
        def refused():
            asked = time.monotonic()
            code = verify_code(keys, secret)
            if code == C.OK:
                self.assertLess(asked - stopped, 1.05, "VerifyKey answered from a stale cache")
            return code == C.UNAVAILABLE
        pt.wait_until(refused, timeout=10, interval=0.02,
                      message="VerifyKey UNAVAILABLE once the cache is stale")
        failed_closed = time.monotonic() - stopped
        pt.wait_until(lambda: pt.health_status(keys.channel) == "NOT_SERVING", timeout=10,
                      interval=0.02, message="health NOT_SERVING")
        not_serving = time.monotonic() - stopped
        print(f"\n  VerifyKey refused {failed_closed:.2f} s and health NOT_SERVING "
              f"{not_serving:.2f} s after PostgreSQL stopped (bound 1 s + heartbeat)")
        self.assertLess(not_serving, 3.0, "health stayed SERVING")

        # Fails closed for every key, with a retryable code; malformed keys are still
        # refused as such.
        error = pt.call_error(stub.VerifyKey, keys_pb2.VerifyKeyRequest(secret=secret.encode()))
        self.assertEqual(error.code(), C.UNAVAILABLE)
        self.assertIn("stale", error.details())
        self.assertIsNone(pt.error_reason(error))
        self.assertEqual(verify_code(keys, ks.forge_secret()), C.UNAVAILABLE)
        self.assertEqual(verify_code(keys, "psk_proj_nonsense"), C.INVALID_ARGUMENT)
        pt.wait_until(lambda: verify_code(trusted, secret) == C.UNAVAILABLE, timeout=5)
        error = pt.call_error(ks.stub(trusted).VerifyKey,
                              keys_pb2.VerifyKeyRequest(secret=secret.encode()))
        self.assertEqual(pt.error_reason(error), ("KEY_CACHE_STALE", ks.DOMAIN))
        pt.wait_until(lambda: pt.health_status(trusted.channel) == "NOT_SERVING", timeout=5)
        self.assertEqual(pt.metric_value(pt.scrape_metrics(keys.metrics_port),
                                         "policy_keys_cache_in_sync"), 0)

        # Writes and reads that need the database: UNAVAILABLE (retryable), not INTERNAL.
        key_id = created.key.key_id
        calls = {
            "CreateKey": lambda: stub.CreateKey(ks.create_request("bob", "proj-fault"),
                                                timeout=20),
            "GetKey": lambda: stub.GetKey(keys_pb2.GetKeyRequest(key_id=key_id), timeout=20),
            "ListKeys": lambda: stub.ListKeys(keys_pb2.ListKeysRequest(), timeout=20),
            "RotateKey": lambda: stub.RotateKey(keys_pb2.RotateKeyRequest(key_id=key_id),
                                                timeout=20),
            "RevokeKey": lambda: stub.RevokeKey(keys_pb2.RevokeKeyRequest(key_id=key_id),
                                                timeout=20),
            "GetRotationReport": lambda: stub.GetRotationReport(
                keys_pb2.GetRotationReportRequest(), timeout=20),
        }
        for name, call in calls.items():
            with self.subTest(name):
                began = time.monotonic()
                code, details = code_of(call)
                self.assertEqual(code, C.UNAVAILABLE, f"{name}: {code}: {details}")
                self.assertLess(time.monotonic() - began, 10, f"{name} hung")

        # --- PostgreSQL comes back; the same processes recover on their own ----------------
        PG.start()
        restarted = time.monotonic()
        pt.wait_until(lambda: verify_code(keys, secret) == C.OK, timeout=10, interval=0.05,
                      message="VerifyKey succeeds again")
        pt.wait_until(lambda: pt.health_status(keys.channel) == "SERVING", timeout=10,
                      message="health SERVING again")
        recovered = time.monotonic() - restarted
        self.assertLess(recovered, 10)
        fresh = stub.CreateKey(ks.create_request("carol", "proj-fault"), timeout=10)
        self.assertEqual(stub.VerifyKey(keys_pb2.VerifyKeyRequest(secret=fresh.secret.encode())).key.key_id,
                         fresh.key.key_id)
        # The key stayed untouched by the refused RevokeKey/RotateKey.
        self.assertEqual(stub.GetKey(keys_pb2.GetKeyRequest(key_id=key_id)).key.state,
                         keys_pb2.KEY_STATE_ACTIVE)
        # The other replica recovers too and sees the key created after the outage.
        pt.wait_until(lambda: verify_code(trusted, fresh.secret) == C.OK, timeout=10)
        pt.wait_until(lambda: pt.health_status(trusted.channel) == "SERVING", timeout=2,
                      message="the other replica's health SERVING again")
        self.assertEqual(pt.metric_value(pt.scrape_metrics(keys.metrics_port),
                                         "policy_keys_cache_in_sync"), 1)
        for process in (keys, trusted):
            self.assertEqual(process.terminate(), 0, process.log_tail())
        print(f"\n  verify failed closed {failed_closed:.2f} s after the stop, health "
              f"NOT_SERVING after {not_serving:.2f} s; recovered {recovered:.2f} s after the "
              f"start", file=sys.stderr)

    def test_writes_work_at_once_after_a_restart(self):
        # Nothing may use the pool while PostgreSQL restarts (no sweeps), so every idle
        # pooled connection is dead when it comes back.
        keys = self.started("keys-restart", sweep_interval="1h")
        stub = ks.stub(keys)
        secret = stub.CreateKey(ks.create_request("dave", "proj-restart"), timeout=10).secret
        with ThreadPoolExecutor(8) as pool:  # fill the connection pool (8 by default)
            list(pool.map(lambda _: stub.ListKeys(keys_pb2.ListKeysRequest(), timeout=10),
                          range(64)))

        PG.restart()
        pt.wait_until(lambda: verify_code(keys, secret) == C.OK, timeout=10,
                      message="VerifyKey succeeds again")
        pt.wait_until(lambda: pt.health_status(keys.channel) == "SERVING", timeout=10)

        # The service says it is healthy: database calls must work now, not after retries.
        results = []
        for _ in range(6):
            code, details = code_of(stub.CreateKey, ks.create_request("erin", "proj-restart"),
                                    timeout=10)
            results.append(code.name + (f" ({details})" if details else ""))
        self.assertEqual(results, ["OK"] * 6, "CreateKey calls, one after the other, right "
                         "after PostgreSQL restarted (health SERVING, VerifyKey OK)")
        self.assertEqual(keys.terminate(), 0, keys.log_tail())


if __name__ == "__main__":
    unittest.main(verbosity=2)
