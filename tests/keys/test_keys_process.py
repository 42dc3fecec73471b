"""Process-level tests of the keys service: real keys binaries, real PostgreSQL, gRPC.

One database per module (t_keys_process_<pid>_<n>) shared by four processes:

  MAIN     the process most tests talk to (default overlap 5 s, sweep every 100 ms);
  REPLICA  a second replica on the same database (replication of creates and revokes);
  TRUSTED  a replica started with --reveal_denial_reasons;
  FOREIGN  an in-memory keys with another pepper: the source of keys MAIN never issued.

Tests keep out of each other's way by giving every key an owner and project of their own.
Needs POLICY_TEST_PG_URL (a role with CREATEDB); skips without it, or fails when
POLICY_TEST_REQUIRE_PG=1. Run: /usr/bin/python3 -m unittest -v tests.keys.test_keys_process
"""

import contextlib
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import unittest
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.keys import keys_support as ks  # noqa: E402
from tests.support import policy_testing as pt  # noqa: E402

import grpc  # noqa: E402
from policy.keys.v1 import keys_pb2  # noqa: E402

C = grpc.StatusCode
SECRET_RE = re.compile(r"^psk_(proj|svc|admin)_[0-9A-Za-z]{66}$")
DEFAULT_TTL_S = 2160 * 3600  # the binary's --default_ttl
OVERLAP_S = 5.0  # MAIN's --default_overlap: long enough for the checks made during it

# Set up by setUpModule.
PG_URL = None
DB = None
PEPPER = None
MAIN = REPLICA = TRUSTED = FOREIGN = None
_stack = None

# Staleness (fail closed when the cache cannot prove itself in sync) is tested by
# test_keys_postgres_fault.py; here a machine slow for a second must not refuse verifications.
COMMON_FLAGS = dict(default_overlap="5s", sweep_interval="100ms", max_staleness="5s",
                    watch_heartbeat="200ms")


def start_serving(database_url, pepper, name, **flags):
    """A keys process that is ready and whose health is SERVING (see test_ready_file...)."""
    process = ks.start_keys(database_url, pepper, name=name, **flags)
    try:
        return ks.wait_serving(process)
    except BaseException:
        process.cleanup()
        raise


def setUpModule():
    global PG_URL, DB, PEPPER, MAIN, REPLICA, TRUSTED, FOREIGN, _stack
    PG_URL = pt.require_pg_url()
    pt.service_binary("keys")
    _stack = contextlib.ExitStack()
    try:
        DB = _stack.enter_context(pt.test_database(PG_URL, "keys_process"))
        PEPPER = ks.new_pepper()
        MAIN = start_serving(DB.url, PEPPER, "keys-main", **COMMON_FLAGS)
        _stack.callback(MAIN.cleanup)
        REPLICA = start_serving(DB.url, PEPPER, "keys-replica", **COMMON_FLAGS)
        _stack.callback(REPLICA.cleanup)
        TRUSTED = start_serving(DB.url, PEPPER, "keys-trusted", reveal_denial_reasons=True,
                                **COMMON_FLAGS)
        _stack.callback(TRUSTED.cleanup)
        FOREIGN = start_serving(None, ks.new_pepper(), "keys-foreign", store="memory")
        _stack.callback(FOREIGN.cleanup)
    except BaseException:
        _stack.close()
        raise


def tearDownModule():
    # SIGTERM all at once (each takes ~2 s to drain), then check they all exited cleanly.
    processes = [p for p in (MAIN, REPLICA, TRUSTED, FOREIGN) if p is not None]
    try:
        with ThreadPoolExecutor(len(processes) or 1) as pool:
            codes = list(pool.map(lambda p: (p, p.terminate()), processes))
        bad = [f"{p.name}: exit {code}\n{p.log_tail()}" for p, code in codes if code != 0]
        if bad:
            raise AssertionError("keys processes did not exit 0 on SIGTERM:\n" + "\n".join(bad))
    finally:
        _stack.close()


# ---------------------------------------------------------------------------
# Small helpers.
# ---------------------------------------------------------------------------


def uid():
    return uuid.uuid4().hex[:10]


def verify(process_or_stub, secret, timeout=5):
    stub = process_or_stub if isinstance(process_or_stub, ks.keys_pb2_grpc.KeyServiceStub) \
        else ks.stub(process_or_stub)
    return stub.VerifyKey(keys_pb2.VerifyKeyRequest(secret=secret.encode()), timeout=timeout)


def verify_code(process, secret):
    """OK or the status code of VerifyKey."""
    try:
        verify(process, secret)
        return C.OK
    except grpc.RpcError as e:
        return e.code()


def seconds(ts):
    return ts.ToNanoseconds() / 1e9


def secret_middle(secret):
    return ks.split_secret(secret)[2]


class KeysTestCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.keys = ks.stub(MAIN)

    def create(self, owner, project=None, **kwargs):
        request = ks.create_request(owner, project or f"proj-{owner}", **kwargs)
        return self.keys.CreateKey(request, timeout=10)

    def assertRpcError(self, code, fn, *args, **kwargs):
        error = pt.call_error(fn, *args, **kwargs)
        self.assertEqual(error.code(), code, f"{error.code()}: {error.details()}")
        return error

    def assertNoSecret(self, message, secret):
        data = message.SerializeToString()
        self.assertNotIn(secret.encode(), data)
        self.assertNotIn(secret_middle(secret).encode(), data)


# ---------------------------------------------------------------------------
# Create, verify, get, list.
# ---------------------------------------------------------------------------


class CreateVerifyTest(KeysTestCase):
    def test_create_verify_list_get_secret_shown_once(self):
        u = uid()
        owner, project = f"alice-{u}@company.com", f"proj-{u}"
        created = self.keys.CreateKey(ks.create_request(
            owner, project, request_id=f"create-{u}", environment=keys_pb2.ENVIRONMENT_STAGING,
            scopes=("embeddings", "chat.completions", "embeddings")), timeout=10)
        secret, key = created.secret, created.key

        self.assertRegex(secret, SECRET_RE)
        self.assertTrue(secret.startswith("psk_proj_"))
        self.assertEqual(len(secret), len("psk_proj_") + 17 + 43 + 6)
        self.assertEqual(ks.checksum(secret[:-6]), secret[-6:])
        self.assertRegex(key.key_id, r"^key_[0-9A-Za-z]{17}$")
        self.assertEqual(key.key_id, ks.key_id_of(secret))
        self.assertEqual(key.redacted, "psk_proj_..." + secret[-4:])
        self.assertEqual(key.kind, keys_pb2.KEY_KIND_PROJECT)
        self.assertEqual(key.owner, ks.principal(owner))
        self.assertEqual(key.project, project)
        self.assertEqual(key.environment, keys_pb2.ENVIRONMENT_STAGING)
        self.assertEqual(sorted(key.scopes), ["chat.completions", "embeddings"])
        self.assertEqual(key.state, keys_pb2.KEY_STATE_ACTIVE)
        self.assertAlmostEqual(seconds(key.create_time), time.time(), delta=30)
        self.assertAlmostEqual(seconds(key.expire_time) - seconds(key.create_time),
                               DEFAULT_TTL_S, delta=0.001)
        self.assertFalse(key.HasField("revoke_time"))
        self.assertEqual(key.rotated_from, "")
        # The secret is in the response once, in `secret`, and nowhere in `key`.
        self.assertNoSecret(key, secret)

        verified = verify(self.keys, secret).key
        self.assertEqual(verified.key_id, key.key_id)
        self.assertEqual(verified.owner, key.owner)
        self.assertEqual(verified.project, project)
        self.assertEqual(sorted(verified.scopes), ["chat.completions", "embeddings"])
        self.assertEqual(verified.state, keys_pb2.KEY_STATE_ACTIVE)
        self.assertNoSecret(verified, secret)

        got = self.keys.GetKey(keys_pb2.GetKeyRequest(key_id=key.key_id), timeout=10)
        self.assertEqual(got.key, key)
        self.assertNoSecret(got, secret)

        for request in (keys_pb2.ListKeysRequest(owner=ks.principal(owner)),
                        keys_pb2.ListKeysRequest(project=project),
                        keys_pb2.ListKeysRequest(project=project, state=keys_pb2.KEY_STATE_ACTIVE,
                                                 kind=keys_pb2.KEY_KIND_PROJECT)):
            listing = self.keys.ListKeys(request, timeout=10)
            self.assertEqual([k.key_id for k in listing.keys], [key.key_id], request)
            self.assertEqual(listing.keys[0], key)
            self.assertEqual(listing.next_page_token, "")
            self.assertNoSecret(listing, secret)
        listing = self.keys.ListKeys(keys_pb2.ListKeysRequest(
            project=project, state=keys_pb2.KEY_STATE_REVOKED), timeout=10)
        self.assertEqual(list(listing.keys), [])

        # Neither the key's row, nor the idempotency record, nor the log holds the secret.
        for table in ("keys.api_keys", "keys.requests"):
            dump = DB.sql(f"SELECT * FROM {table}")
            self.assertNotIn(secret, dump, table)
            self.assertNotIn(secret_middle(secret), dump, table)
        row = DB.rows(f"SELECT key_id, redacted, length(secret_hash) FROM keys.api_keys "
                      f"WHERE key_id = '{key.key_id}'")
        self.assertEqual(row, [[key.key_id, key.redacted, "32"]])
        self.assertNotIn(secret_middle(secret), MAIN.log_text())

    def test_idempotent_create(self):
        u = uid()
        owner = f"idem-{u}"
        request = ks.create_request(owner, f"proj-{u}", request_id=f"req-{u}",
                                    scopes=("chat.completions",))
        first = self.keys.CreateKey(request, timeout=10)
        second = self.keys.CreateKey(request, timeout=10)
        self.assertEqual(second.key.key_id, first.key.key_id)
        self.assertEqual(second.secret, first.secret)
        # Another replica answers the retry the same way.
        third = ks.stub(REPLICA).CreateKey(request, timeout=10)
        self.assertEqual((third.key.key_id, third.secret), (first.key.key_id, first.secret))
        listing = self.keys.ListKeys(keys_pb2.ListKeysRequest(owner=ks.principal(owner)))
        self.assertEqual([k.key_id for k in listing.keys], [first.key.key_id])

        # The same request id for a different request is refused, whatever differs.
        for different in (
                ks.create_request(owner, f"proj-{u}", request_id=f"req-{u}",
                                  scopes=("embeddings",)),
                ks.create_request(owner, f"other-{u}", request_id=f"req-{u}",
                                  scopes=("chat.completions",)),
                ks.create_request(owner, f"proj-{u}", request_id=f"req-{u}",
                                  scopes=("chat.completions",), ttl_seconds=3600)):
            self.assertRpcError(C.FAILED_PRECONDITION, self.keys.CreateKey, different,
                                timeout=10)
        listing = self.keys.ListKeys(keys_pb2.ListKeysRequest(owner=ks.principal(owner)))
        self.assertEqual(len(listing.keys), 1)

    def test_concurrent_retries_create_one_key(self):
        u = uid()
        owner = f"race-{u}"
        request = ks.create_request(owner, f"proj-{u}", request_id=f"race-{u}")
        barrier = threading.Barrier(6)

        def call(i):
            barrier.wait()
            target = MAIN if i % 2 == 0 else REPLICA
            return ks.stub(target).CreateKey(request, timeout=10)

        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(call, range(6)))
        self.assertEqual({(r.key.key_id, r.secret) for r in results},
                         {(results[0].key.key_id, results[0].secret)})
        listing = self.keys.ListKeys(keys_pb2.ListKeysRequest(owner=ks.principal(owner)))
        self.assertEqual(len(listing.keys), 1)

    def test_expiry_validation(self):
        u = uid()
        owner = f"expiry-{u}"
        bad = {
            "expire_time in the past": dict(expire_time=ks.timestamp_in(-60)),
            "expire_time beyond the maximum": dict(expire_time=ks.timestamp_in(366 * 86400)),
            "ttl beyond the maximum": dict(ttl_seconds=366 * 86400),
            "negative ttl": dict(ttl_seconds=-5),
        }
        for what, kwargs in bad.items():
            with self.subTest(what):
                self.assertRpcError(C.INVALID_ARGUMENT, self.keys.CreateKey,
                                    ks.create_request(owner, f"proj-{u}", **kwargs), timeout=10)
        both = ks.create_request(owner, f"proj-{u}", ttl_seconds=3600)
        both.expire_time.CopyFrom(ks.timestamp_in(3600))
        self.assertRpcError(C.INVALID_ARGUMENT, self.keys.CreateKey, both, timeout=10)
        listing = self.keys.ListKeys(keys_pb2.ListKeysRequest(owner=ks.principal(owner)))
        self.assertEqual(list(listing.keys), [])

        # Valid ones are honoured.
        one_hour = self.create(owner, f"proj-{u}", ttl_seconds=3600).key
        self.assertAlmostEqual(seconds(one_hour.expire_time) - seconds(one_hour.create_time),
                               3600, delta=0.001)
        when = ks.timestamp_in(10 * 86400)
        when.nanos = when.nanos // 1000 * 1000  # the service keeps microseconds
        exact = self.create(owner, f"proj-{u}", expire_time=when).key
        self.assertEqual(exact.expire_time, when)

    def test_invalid_create_requests(self):
        u = uid()
        cases = {
            "no kind": ks.create_request(f"v-{u}", kind=keys_pb2.KEY_KIND_UNSPECIFIED),
            "no environment": ks.create_request(
                f"v-{u}", environment=keys_pb2.ENVIRONMENT_UNSPECIFIED),
            "no project": ks.create_request(f"v-{u}", project=""),
            "bad scope": ks.create_request(f"v-{u}", scopes=("Chat Completions",)),
            "33 scopes": ks.create_request(f"v-{u}", scopes=[f"s{i}" for i in range(33)]),
            "member owning a service-account key": ks.create_request(
                f"v-{u}", kind=keys_pb2.KEY_KIND_SERVICE_ACCOUNT, owner_type=ks.MEMBER),
            "bad owner id": ks.create_request("bad owner id"),
            "request id with a space": ks.create_request(f"v-{u}", request_id="a b"),
        }
        for what, request in cases.items():
            with self.subTest(what):
                self.assertRpcError(C.INVALID_ARGUMENT, self.keys.CreateKey, request, timeout=10)
        admin = ks.create_request(f"v-{u}", kind=keys_pb2.KEY_KIND_ADMIN)
        admin.project = "proj-x"
        self.assertRpcError(C.INVALID_ARGUMENT, self.keys.CreateKey, admin, timeout=10)

    def test_list_pagination(self):
        u = uid()
        owner = f"pages-{u}"
        ids = [self.create(owner, f"proj-{u}").key.key_id for _ in range(5)]
        seen, token, pages = [], "", 0
        while True:
            page = self.keys.ListKeys(keys_pb2.ListKeysRequest(
                owner=ks.principal(owner), page_size=2, page_token=token), timeout=10)
            pages += 1
            self.assertLessEqual(len(page.keys), 2)
            seen += [k.key_id for k in page.keys]
            token = page.next_page_token
            if not token:
                break
            self.assertLess(pages, 10)
        self.assertEqual(seen, list(reversed(ids)))  # newest first, each once
        first = self.keys.ListKeys(keys_pb2.ListKeysRequest(owner=ks.principal(owner),
                                                            page_size=2))
        self.assertRpcError(C.INVALID_ARGUMENT, self.keys.ListKeys, keys_pb2.ListKeysRequest(
            project=f"proj-{u}", page_size=2, page_token=first.next_page_token))
        self.assertRpcError(C.INVALID_ARGUMENT, self.keys.ListKeys,
                            keys_pb2.ListKeysRequest(page_token="garbage"))
        self.assertRpcError(C.INVALID_ARGUMENT, self.keys.ListKeys,
                            keys_pb2.ListKeysRequest(page_size=-1))
        # Larger pages are read as the largest (500), as keys.proto documents.
        self.keys.ListKeys(keys_pb2.ListKeysRequest(owner=ks.principal(owner), page_size=501))

    def test_projects_follow_the_rule_every_service_shares(self):
        # The audit ledger takes only [a-z0-9_-]{1,64}: a key for another shape of project
        # could never have its decisions recorded.
        for project in ("ML.Platform", "Probe-1", "a:b", "p" * 65):
            with self.subTest(project=project):
                self.assertRpcError(C.INVALID_ARGUMENT, self.keys.CreateKey,
                                    ks.create_request("rule-owner", project=project))
                self.assertRpcError(C.INVALID_ARGUMENT, self.keys.ListKeys,
                                    keys_pb2.ListKeysRequest(project=project))
                self.assertRpcError(C.INVALID_ARGUMENT, self.keys.GetRotationReport,
                                    keys_pb2.GetRotationReportRequest(project=project))
        self.keys.CreateKey(ks.create_request("rule-owner", project="p" * 64))


# ---------------------------------------------------------------------------
# Rotation and revocation.
# ---------------------------------------------------------------------------


class RotationTest(KeysTestCase):
    def test_rotation_overlap_then_old_key_revoked(self):
        u = uid()
        owner = f"rot-{u}"
        old = self.create(owner, f"proj-{u}", scopes=("chat.completions", "embeddings"))
        asked_at = time.time()
        rotated = self.keys.RotateKey(keys_pb2.RotateKeyRequest(
            request_id=f"rot-{u}", key_id=old.key.key_id), timeout=10)
        rotated_at = time.time()
        new_secret = rotated.secret

        # Errors of the new key's verifier thread, which runs through the whole switch.
        def verify_new_key(stop):
            channel = MAIN.new_channel()
            stub = ks.stub(channel)
            calls, failures = 0, []
            try:
                while not stop.is_set():
                    try:
                        response = verify(stub, new_secret)
                        if response.key.state != keys_pb2.KEY_STATE_ACTIVE:
                            failures.append(f"state {response.key.state}")
                    except grpc.RpcError as e:
                        failures.append(f"{e.code()}: {e.details()}")
                    calls += 1
                    time.sleep(0.002)
            finally:
                channel.close()
            return calls, failures

        checker = pt.Background(verify_new_key)
        try:
            self.assertRegex(new_secret, SECRET_RE)
            self.assertNotEqual(new_secret, old.secret)
            self.assertEqual(rotated.old_key.key_id, old.key.key_id)
            self.assertEqual(rotated.old_key.state, keys_pb2.KEY_STATE_ROTATING)
            self.assertEqual(rotated.old_key.rotated_to, rotated.new_key.key_id)
            self.assertEqual(rotated.new_key.rotated_from, old.key.key_id)
            self.assertEqual(rotated.new_key.state, keys_pb2.KEY_STATE_ACTIVE)
            for field in ("kind", "owner", "project", "environment", "scopes"):
                self.assertEqual(getattr(rotated.new_key, field), getattr(old.key, field), field)
            self.assertEqual(rotated.new_key.redacted, "psk_proj_..." + new_secret[-4:])
            self.assertNoSecret(rotated.old_key, new_secret)
            self.assertNoSecret(rotated.new_key, new_secret)
            overlap_end = seconds(rotated.old_key.overlap_end_time)
            self.assertGreaterEqual(overlap_end, asked_at + OVERLAP_S - 0.05)
            self.assertLessEqual(overlap_end, rotated_at + OVERLAP_S + 0.05)

            # Both verify during the overlap, the old one as ROTATING.
            self.assertEqual(verify(self.keys, old.secret).key.state, keys_pb2.KEY_STATE_ROTATING)
            self.assertEqual(verify(self.keys, new_secret).key.state, keys_pb2.KEY_STATE_ACTIVE)
            pt.wait_until(lambda: verify(REPLICA, old.secret).key.state ==
                          keys_pb2.KEY_STATE_ROTATING, timeout=3.0, interval=0.01,
                          message="the replica sees the rotation")
            got = self.keys.GetKey(keys_pb2.GetKeyRequest(key_id=old.key.key_id)).key
            self.assertEqual(got.state, keys_pb2.KEY_STATE_ROTATING)
            self.assertEqual(got.overlap_end_time, rotated.old_key.overlap_end_time)

            # After the overlap the old key stops verifying, and the sweeper revokes it.
            pt.wait_until(lambda: verify_code(MAIN, old.secret) == C.UNAUTHENTICATED,
                          timeout=OVERLAP_S + 5, interval=0.01, message="old key refused")
            refused_at = time.time()
            self.assertGreaterEqual(refused_at, overlap_end - 0.05,
                                    "old key refused before its overlap ended")
            # GetKey derives REVOKED as soon as the overlap ends; the sweeper (every 100 ms
            # here) then records the revocation with its reason and time.
            def swept():
                key = self.keys.GetKey(keys_pb2.GetKeyRequest(key_id=old.key.key_id)).key
                self.assertIn(key.state, (keys_pb2.KEY_STATE_ROTATING, keys_pb2.KEY_STATE_REVOKED))
                return key if key.revocation_reason else None

            revoked = pt.wait_until(swept, timeout=5, message="old key swept")
            self.assertEqual(revoked.state, keys_pb2.KEY_STATE_REVOKED)
            self.assertEqual(revoked.revocation_reason, "rotation overlap ended")
            self.assertTrue(revoked.HasField("revoke_time"))
            self.assertAlmostEqual(seconds(revoked.revoke_time), overlap_end, delta=2.0)
            self.assertEqual(verify_code(REPLICA, old.secret), C.UNAUTHENTICATED)
            time.sleep(0.3)  # keep the new key's verifier running a little past the sweep
        finally:
            calls, failures = checker.stop()
        self.assertEqual(failures, [], f"the new key failed {len(failures)} of {calls} times")
        self.assertGreater(calls, 50)
        self.assertEqual(verify(self.keys, new_secret).key.state, keys_pb2.KEY_STATE_ACTIVE)

        # A retry of the rotation returns the first result.
        again = self.keys.RotateKey(keys_pb2.RotateKeyRequest(
            request_id=f"rot-{u}", key_id=old.key.key_id), timeout=10)
        self.assertEqual((again.new_key.key_id, again.secret),
                         (rotated.new_key.key_id, new_secret))

    def test_concurrent_rotations_one_wins(self):
        u = uid()
        owner = f"crot-{u}"
        key = self.create(owner, f"proj-{u}").key
        barrier = threading.Barrier(8)

        def rotate(_):
            barrier.wait()
            try:
                return self.keys.RotateKey(keys_pb2.RotateKeyRequest(
                    key_id=key.key_id, overlap=ks.duration(3600)), timeout=15)
            except grpc.RpcError as e:
                return e

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(rotate, range(8)))
        wins = [r for r in results if isinstance(r, keys_pb2.RotateKeyResponse)]
        losses = [r for r in results if isinstance(r, grpc.RpcError)]
        self.assertEqual(len(wins), 1, [f"{e.code()}: {e.details()}" for e in losses])
        self.assertEqual([e.code() for e in losses], [C.FAILED_PRECONDITION] * 7,
                         [e.details() for e in losses])
        listing = self.keys.ListKeys(keys_pb2.ListKeysRequest(owner=ks.principal(owner)))
        self.assertEqual({k.key_id for k in listing.keys}, {key.key_id, wins[0].new_key.key_id})
        self.assertEqual(verify(self.keys, wins[0].secret).key.key_id, wins[0].new_key.key_id)
        # A rotating key cannot be rotated again either.
        self.assertRpcError(C.FAILED_PRECONDITION, self.keys.RotateKey,
                            keys_pb2.RotateKeyRequest(key_id=key.key_id), timeout=10)

    def test_revoke_and_errors(self):
        u = uid()
        created = self.create(f"rev-{u}", f"proj-{u}")
        key_id = created.key.key_id
        revoked = self.keys.RevokeKey(keys_pb2.RevokeKeyRequest(key_id=key_id,
                                                                reason="leaked in a log"))
        self.assertTrue(revoked.changed)
        self.assertEqual(revoked.key.state, keys_pb2.KEY_STATE_REVOKED)
        self.assertEqual(revoked.key.revocation_reason, "leaked in a log")
        self.assertTrue(revoked.key.HasField("revoke_time"))
        self.assertEqual(verify_code(MAIN, created.secret), C.UNAUTHENTICATED)
        again = self.keys.RevokeKey(keys_pb2.RevokeKeyRequest(key_id=key_id))
        self.assertFalse(again.changed)
        self.assertEqual(again.key.revocation_reason, "leaked in a log")
        self.assertEqual(again.key.revoke_time, revoked.key.revoke_time)

        self.assertRpcError(C.FAILED_PRECONDITION, self.keys.RotateKey,
                            keys_pb2.RotateKeyRequest(key_id=key_id), timeout=10)
        unknown = ks.key_id_of(ks.forge_secret())
        self.assertRpcError(C.NOT_FOUND, self.keys.RevokeKey,
                            keys_pb2.RevokeKeyRequest(key_id=unknown))
        self.assertRpcError(C.NOT_FOUND, self.keys.GetKey, keys_pb2.GetKeyRequest(key_id=unknown))
        self.assertRpcError(C.NOT_FOUND, self.keys.RotateKey,
                            keys_pb2.RotateKeyRequest(key_id=unknown))
        for bad in ("", "nope", "key_short", "key_" + "A" * 16 + "!", "KEY_" + "A" * 17,
                    created.secret):
            with self.subTest(key_id=bad):
                self.assertRpcError(C.INVALID_ARGUMENT, self.keys.RevokeKey,
                                    keys_pb2.RevokeKeyRequest(key_id=bad))
                self.assertRpcError(C.INVALID_ARGUMENT, self.keys.GetKey,
                                    keys_pb2.GetKeyRequest(key_id=bad))
                self.assertRpcError(C.INVALID_ARGUMENT, self.keys.RotateKey,
                                    keys_pb2.RotateKeyRequest(key_id=bad))
        other = self.create(f"rev2-{u}", f"proj-{u}").key.key_id
        self.assertRpcError(C.INVALID_ARGUMENT, self.keys.RevokeKey,
                            keys_pb2.RevokeKeyRequest(key_id=other, reason="x" * 257))
        self.assertRpcError(C.INVALID_ARGUMENT, self.keys.RotateKey,
                            keys_pb2.RotateKeyRequest(key_id=other,
                                                      overlap=ks.duration(169 * 3600)))

    def test_a_key_cannot_be_deleted_or_brought_back_by_hand_only_revoked(self):
        # Replicas learn of changes from the INSERT/UPDATE trigger: a row deleted (or renamed)
        # by hand would go on verifying from every replica's cache. The database refuses both
        # and points at revocation, which reaches every replica.
        u = uid()
        created = self.create(f"del-{u}", f"proj-{u}")
        key_id = created.key.key_id
        pt.wait_until(lambda: verify_code(REPLICA, created.secret) == C.OK, timeout=2)
        for sql in (f"DELETE FROM keys.api_keys WHERE key_id = '{key_id}'",
                    f"UPDATE keys.api_keys SET key_id = '{key_id}x' WHERE key_id = '{key_id}'"):
            with self.subTest(sql=sql):
                proc = pt.psql(DB.url, sql, check=False)
                self.assertEqual(DB.rows(f"SELECT count(*) FROM keys.api_keys "
                                         f"WHERE key_id = '{key_id}'"), [["1"]], proc)
        DB.sql(f"UPDATE keys.api_keys SET state = 'revoked', revoked_at = now(), "
               f"revocation_reason = 'by hand' WHERE key_id = '{key_id}'")
        for process in (MAIN, REPLICA):
            pt.wait_until(lambda: verify_code(process, created.secret) == C.UNAUTHENTICATED,
                          timeout=2, message=f"{process.name} honours the revocation")
        # Nor are the keys emptied (TRUNCATE fires no row trigger) or a revocation undone by
        # hand (the caches ignore a key going back): the database refuses both.
        with self.assertRaisesRegex(AssertionError, "keys.api_keys is never truncated"):
            pt.psql(DB.url, "BEGIN; TRUNCATE keys.api_keys; ROLLBACK")
        with self.assertRaisesRegex(AssertionError, f"key {key_id} would go back"):
            pt.psql(DB.url, f"UPDATE keys.api_keys SET state = 'active', revoked_at = NULL, "
                            f"revocation_reason = '' WHERE key_id = '{key_id}'")
        self.assertEqual(DB.rows(f"SELECT state FROM keys.api_keys WHERE key_id = '{key_id}'"),
                         [["revoked"]])
        for process in (MAIN, REPLICA):
            self.assertEqual(verify_code(process, created.secret), C.UNAUTHENTICATED,
                             process.name)

    def test_a_reason_quoting_the_secret_is_kept_redacted(self):
        u = uid()
        created = self.create(f"quote-{u}", f"proj-{u}")
        revoked = self.keys.RevokeKey(keys_pb2.RevokeKeyRequest(
            key_id=created.key.key_id, reason=f"pasted {created.secret} in a ticket"))
        self.assertEqual(revoked.key.revocation_reason,
                         f"pasted {created.key.redacted} in a ticket")
        self.assertNoSecret(revoked, created.secret)
        stored = DB.rows(f"SELECT revocation_reason FROM keys.api_keys "
                         f"WHERE key_id = '{created.key.key_id}'")
        self.assertNotIn(secret_middle(created.secret), str(stored))
        # Without --audit_target the relay logs the events: not the secret either.
        time.sleep(0.5)
        self.assertNotIn(secret_middle(created.secret), MAIN.log_text())

    def test_revoke_principal_keys(self):
        u = uid()
        person, other = f"leaver-{u}@company.com", f"stayer-{u}@company.com"
        a = self.create(person, f"proj-a-{u}")
        b = self.create(person, f"proj-b-{u}", environment=keys_pb2.ENVIRONMENT_PRODUCTION)
        rotated = self.keys.RotateKey(keys_pb2.RotateKeyRequest(
            key_id=b.key.key_id, overlap=ks.duration(3600)), timeout=10)
        gone = self.create(person, f"proj-a-{u}")
        self.keys.RevokeKey(keys_pb2.RevokeKeyRequest(key_id=gone.key.key_id))
        stays = self.create(other, f"proj-a-{u}")
        # A service account whose id is the same string is another principal.
        same_id_sa = self.create(person, f"proj-a-{u}", kind=keys_pb2.KEY_KIND_SERVICE_ACCOUNT)

        expected = {a.key.key_id, b.key.key_id, rotated.new_key.key_id}
        request = keys_pb2.RevokePrincipalKeysRequest(
            request_id=f"offboard-{u}", owner=ks.principal(person), reason="principal offboarded")
        response = self.keys.RevokePrincipalKeys(request, timeout=10)
        self.assertEqual(len(response.keys), 3, [k.key_id for k in response.keys])
        self.assertEqual({k.key_id for k in response.keys}, expected)
        for key in response.keys:
            self.assertEqual(key.state, keys_pb2.KEY_STATE_REVOKED)
            self.assertEqual(key.revocation_reason, "principal offboarded")
            self.assertEqual(key.owner, ks.principal(person))
        for secret in (a.secret, b.secret, rotated.secret, gone.secret):
            self.assertEqual(verify_code(MAIN, secret), C.UNAUTHENTICATED)
        self.assertEqual(verify(self.keys, stays.secret).key.state, keys_pb2.KEY_STATE_ACTIVE)
        self.assertEqual(verify(self.keys, same_id_sa.secret).key.state,
                         keys_pb2.KEY_STATE_ACTIVE)
        # The key revoked earlier keeps its own reason.
        self.assertEqual(self.keys.GetKey(keys_pb2.GetKeyRequest(
            key_id=gone.key.key_id)).key.revocation_reason, "revoked")

        # A retry returns the same keys; a new request finds nothing left to revoke.
        retry = self.keys.RevokePrincipalKeys(request, timeout=10)
        self.assertEqual([k.key_id for k in retry.keys], [k.key_id for k in response.keys])
        retry_b = ks.stub(REPLICA).RevokePrincipalKeys(request, timeout=10)
        self.assertEqual([k.key_id for k in retry_b.keys], [k.key_id for k in response.keys])
        fresh = self.keys.RevokePrincipalKeys(keys_pb2.RevokePrincipalKeysRequest(
            request_id=f"offboard2-{u}", owner=ks.principal(person),
            reason="principal offboarded"), timeout=10)
        self.assertEqual(list(fresh.keys), [])
        # The same request id for another principal is refused.
        self.assertRpcError(C.FAILED_PRECONDITION, self.keys.RevokePrincipalKeys,
                            keys_pb2.RevokePrincipalKeysRequest(
                                request_id=f"offboard-{u}", owner=ks.principal(other),
                                reason="principal offboarded"), timeout=10)
        self.assertEqual(verify(self.keys, stays.secret).key.state, keys_pb2.KEY_STATE_ACTIVE)
        self.assertRpcError(C.INVALID_ARGUMENT, self.keys.RevokePrincipalKeys,
                            keys_pb2.RevokePrincipalKeysRequest(request_id=f"x-{u}"))

    def test_reports(self):
        u = uid()
        project = f"proj-rep-{u}"
        soon = self.create(f"rep-{u}", project, ttl_seconds=2 * 86400 + 3600).key
        later = self.create(f"rep-{u}", project).key
        expired = self.create(f"rep-{u}", project, ttl_seconds=1)
        revoked = self.create(f"rep-{u}", project).key
        self.keys.RevokeKey(keys_pb2.RevokeKeyRequest(key_id=revoked.key_id))
        pt.wait_until(lambda: verify_code(MAIN, expired.secret) == C.UNAUTHENTICATED, timeout=5)

        report = self.keys.GetRotationReport(keys_pb2.GetRotationReportRequest(project=project))
        self.assertEqual(report.warning_window.ToSeconds(), 168 * 3600)
        entries = [(e.key.key_id, e.urgency, e.days_remaining) for e in report.entries]
        self.assertEqual(entries, [(expired.key.key_id, keys_pb2.URGENCY_CRITICAL, -1),
                                   (soon.key_id, keys_pb2.URGENCY_WARNING, 2)])

        inventory = self.keys.GetInventoryReport(
            keys_pb2.GetInventoryReportRequest(project=project))
        self.assertEqual({e.key.key_id for e in inventory.entries},
                         {soon.key_id, later.key_id, expired.key.key_id, revoked.key_id})
        self.assertTrue(all(e.age_days == 0 for e in inventory.entries))
        self.assertEqual(dict(inventory.counts_by_state), {
            "KEY_STATE_ACTIVE": 2, "KEY_STATE_EXPIRED": 1, "KEY_STATE_REVOKED": 1})


# ---------------------------------------------------------------------------
# Verification failures.
# ---------------------------------------------------------------------------


class MalformedKeyTest(KeysTestCase):
    def assertMalformed(self, secret, words):
        error = self.assertRpcError(C.INVALID_ARGUMENT, verify, self.keys, secret)
        self.assertRegex(error.details(), words)
        self.assertNotEqual(error.details(), ks.NOT_VALID)
        return error

    def test_malformed_keys_are_invalid_argument(self):
        good = self.create(f"mal-{uid()}").secret
        self.assertMalformed("", r"empty")
        self.assertMalformed("psk_proj_" + "a" * 291, r"longer than 256")
        self.assertMalformed("x" * 300, r"longer than 256")
        self.assertMalformed("sk_live_" + good[len("psk_proj_"):], r"prefix")
        self.assertMalformed("psk_test_" + good[len("psk_proj_"):], r"prefix")
        wrong_checksum = good[:-1] + ("A" if good[-1] != "A" else "B")
        self.assertMalformed(wrong_checksum, r"checksum")
        self.assertMalformed(good[:-7] + good[-6:], r"length")  # one character dropped
        self.assertMalformed(good[:20] + "-" + good[21:], r"character")
        # A key of the right shape with a stray space or newline is still malformed.
        self.assertMalformed(good + "\n", r"length")
        self.assertMalformed(" " + good, r"prefix")
        # The same key verifies, so it was the damage that was refused.
        self.assertEqual(verify(self.keys, good).key.state, keys_pb2.KEY_STATE_ACTIVE)

    def test_non_utf8_key_is_invalid_argument(self):
        # grpcio's typed stubs refuse to send a str that is not UTF-8, so this request is
        # serialized by hand: VerifyKeyRequest{secret (1): <bytes>}.
        for payload in (b"psk_proj_" + b"\xff" * 66, b"psk_proj_\xc3\x28" + b"A" * 64, b"\x80"):
            with self.subTest(payload=payload[:12]):
                error = pt.call_error(ks.raw_verify, MAIN.channel, payload)
                self.assertEqual(error.code(), C.INVALID_ARGUMENT,
                                 f"{error.code()}: {error.details()!r}")
                self.assertRegex(error.details(), r"UTF-8")
        # A well-formed request sent the same way works (the raw call itself is sound).
        good = self.create(f"raw-{uid()}").secret
        self.assertEqual(ks.raw_verify(MAIN.channel, good.encode()).key.key_id,
                         ks.key_id_of(good))


class DenialTest(KeysTestCase):
    """Unknown, revoked, expired and mismatched keys look the same to ordinary callers."""

    @classmethod
    def setUpClass(cls):
        keys = ks.stub(MAIN)
        u = uid()
        expired = keys.CreateKey(ks.create_request(f"den-{u}", f"proj-{u}", ttl_seconds=1))
        revoked = keys.CreateKey(ks.create_request(f"den-{u}", f"proj-{u}"))
        keys.RevokeKey(keys_pb2.RevokeKeyRequest(key_id=revoked.key.key_id))
        live = keys.CreateKey(ks.create_request(f"den-{u}", f"proj-{u}"))
        foreign = ks.stub(FOREIGN).CreateKey(ks.create_request(f"den-{u}", f"proj-{u}"))
        cls.cases = {
            # name: (secret, reason)
            "unknown": (ks.forge_secret(), "UNKNOWN_KEY"),
            "unknown service-account key": (ks.forge_secret("psk_svc_"), "UNKNOWN_KEY"),
            "other deployment": (foreign.secret, "UNKNOWN_KEY"),
            "mismatched": (ks.tamper_secret(live.secret), "SECRET_MISMATCH"),
            "revoked": (revoked.secret, "KEY_REVOKED"),
            "expired": (expired.secret, "KEY_EXPIRED"),
        }
        cls.live = live.secret
        # Every process has seen every change, and the short-lived key has expired.
        for process in (MAIN, TRUSTED):
            pt.wait_until(lambda: verify_code(process, revoked.secret) == C.UNAUTHENTICATED
                          and verify_code(process, expired.secret) == C.UNAUTHENTICATED
                          and verify_code(process, live.secret) == C.OK,
                          timeout=5, message=f"{process.name} caught up")

    def test_denials_look_the_same(self):
        for name, (secret, _) in self.cases.items():
            with self.subTest(name):
                error = self.assertRpcError(C.UNAUTHENTICATED, verify, self.keys, secret)
                self.assertEqual(error.details(), ks.NOT_VALID)
                self.assertIsNone(pt.error_reason(error))
                self.assertNotIn("grpc-status-details-bin",
                                 [k for k, _ in error.trailing_metadata() or ()])
        self.assertEqual(verify(self.keys, self.live).key.state, keys_pb2.KEY_STATE_ACTIVE)

    def test_trusted_process_reveals_reasons(self):
        trusted = ks.stub(TRUSTED)
        for name, (secret, reason) in self.cases.items():
            with self.subTest(name):
                error = self.assertRpcError(C.UNAUTHENTICATED, verify, trusted, secret)
                self.assertEqual(error.details(), ks.NOT_VALID)
                self.assertEqual(pt.error_reason(error), (reason, ks.DOMAIN))
                status = pt.error_status(error)
                self.assertEqual(status.code, C.UNAUTHENTICATED.value[0])
                self.assertEqual(status.details[0].type_url, pt.ERROR_INFO_TYPE)
        self.assertEqual(verify(trusted, self.live).key.state, keys_pb2.KEY_STATE_ACTIVE)


# ---------------------------------------------------------------------------
# Replicas, health, metrics, shutdown, bootstrap.
# ---------------------------------------------------------------------------


class ReplicaTest(KeysTestCase):
    def test_changes_reach_the_other_replica_within_a_second(self):
        """Notifications carry each change at once; a heartbeat (200 ms) bounds a lost one.
        The median of six changes is held to a second: a single change may wait longer on
        a machine busy with other tests."""
        a, b = ks.stub(MAIN), ks.stub(REPLICA)
        u = uid()
        times = []
        for _ in range(3):
            created = a.CreateKey(ks.create_request(f"repl-{u}", f"proj-{u}"), timeout=10)
            t0 = time.monotonic()
            pt.wait_until(lambda: verify_code(REPLICA, created.secret) == C.OK, timeout=5,
                          interval=0.005, message="replica B verifies the new key")
            times.append(time.monotonic() - t0)

            a.RevokeKey(keys_pb2.RevokeKeyRequest(key_id=created.key.key_id), timeout=10)
            t0 = time.monotonic()
            pt.wait_until(lambda: verify_code(REPLICA, created.secret) == C.UNAUTHENTICATED,
                          timeout=5, interval=0.005, message="replica B refuses the revoked key")
            times.append(time.monotonic() - t0)
            self.assertEqual(b.GetKey(keys_pb2.GetKeyRequest(key_id=created.key.key_id)).key.state,
                             keys_pb2.KEY_STATE_REVOKED)
        self.assertLess(statistics.median(times), 1.0,
                        "seconds for each change to reach B: " +
                        ", ".join(f"{t:.3f}" for t in times))


class OperationsTest(KeysTestCase):
    def test_readme_python_example_runs(self):
        """docs/keys.md's Python example, run as written against a keys process."""
        readme = (pt.REPO_ROOT / "docs" / "keys.md").read_text()
        blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
        self.assertEqual(len(blocks), 1)
        code = blocks[0].replace('"127.0.0.1:50051"', f'"{FOREIGN.address}"')
        self.assertNotEqual(code, blocks[0], "the example dials keys' default address")
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=30, stdin=subprocess.DEVNULL,
                             env=dict(os.environ, PYTHONPATH=str(pt.PYTHON_DIR)))
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertIn('key_id: "key_', run.stdout)
        self.assertIn('id: "alice"', run.stdout)

    def test_health_and_metrics(self):
        self.assertEqual(pt.health_status(MAIN.channel), "SERVING")
        self.assertEqual(pt.health_status(REPLICA.channel), "SERVING")
        self.assertRpcError(C.NOT_FOUND, pt.health_status, MAIN.channel, "no.such.Service")

        secret = self.create(f"met-{uid()}").secret
        before = pt.scrape_metrics(MAIN.metrics_port)
        verify(self.keys, secret)
        pt.call_error(verify, self.keys, ks.forge_secret())
        after = pt.scrape_metrics(MAIN.metrics_port)

        def handled(text, code):
            return pt.metric_value(text, "grpc_server_handled_total", grpc_method="VerifyKey",
                                   grpc_service="policy.keys.v1.KeyService",
                                   grpc_code=code) or 0

        self.assertEqual(handled(after, "OK") - handled(before, "OK"), 1)
        self.assertEqual(handled(after, "Unauthenticated") - handled(before, "Unauthenticated"), 1)
        self.assertEqual(pt.metric_value(after, "policy_keys_cache_in_sync"), 1)
        self.assertGreaterEqual(pt.metric_value(after, "policy_keys_cache_entries"), 1)
        ok = pt.metric_value(after, "policy_keys_verifications_total", result="ok")
        self.assertEqual(ok - (pt.metric_value(before, "policy_keys_verifications_total",
                                               result="ok") or 0), 1)
        self.assertIn("# TYPE grpc_server_handled_total counter", after)

    def test_health_per_service_name(self):
        # common/server/server_runner.h: health is reported "for the overall server "" and
        # for each added service's full name".
        try:
            status = pt.health_status(MAIN.channel, "policy.keys.v1.KeyService")
        except grpc.RpcError as e:
            status = f"{e.code()}: {e.details()}"
        self.assertEqual(status, "SERVING", "Health/Check for service policy.keys.v1.KeyService")

    def test_ready_file_appears_only_once_serving(self):
        # A script that waits for the ready file (as tools/dev does) must find the service
        # usable: health SERVING and VerifyKey answering, not failing closed.
        process = ks.start_keys(DB.url, PEPPER, name="keys-fresh", **COMMON_FLAGS)
        try:
            health = pt.health_status(process.channel)
            code = verify_code(process, ks.forge_secret())
            ks.wait_serving(process)  # it does get there, a moment later
            self.assertEqual((health, code), ("SERVING", C.UNAUTHENTICATED),
                             "health / VerifyKey at the moment the ready file appeared")
            self.assertEqual(process.terminate(), 0, process.log_tail())
        finally:
            process.cleanup()

    def test_sigterm_exits_zero(self):
        process = start_serving(DB.url, PEPPER, "keys-sigterm", **COMMON_FLAGS)
        try:
            secret = ks.stub(process).CreateKey(ks.create_request(f"term-{uid()}")).secret
            self.assertEqual(verify(process, secret).key.state, keys_pb2.KEY_STATE_ACTIVE)
            code = process.terminate()
            self.assertEqual(code, 0, process.log_tail())
            self.assertIn('"received signal"', process.log_text())
            self.assertIn('"stopped"', process.log_text())
        finally:
            process.cleanup()

    def test_shutdown_delay_serves_new_calls_while_not_ready(self):
        # common/server/server_runner.h, shutdown_delay: on SIGTERM readiness goes NOT_SERVING
        # at once on both ports, yet new connections and calls are served for the delay (while
        # balancers catch up); then the usual drain, and exit 0.
        delay = 4.0
        process = start_serving(DB.url, PEPPER, "keys-delay", shutdown_delay=f"{delay:g}s",
                                shutdown_grace="2s", health_listen="127.0.0.1:0",
                                **COMMON_FLAGS)
        health = grpc.insecure_channel(f"127.0.0.1:{process.health_port}")
        fresh = None
        try:
            secret = ks.stub(process).CreateKey(ks.create_request(f"delay-{uid()}")).secret
            signalled = time.monotonic()
            process.proc.send_signal(signal.SIGTERM)
            pt.wait_until(lambda: pt.health_status(process.channel) == "NOT_SERVING",
                          timeout=2, interval=0.01, message="main port health NOT_SERVING")
            self.assertEqual(pt.health_status(health), "NOT_SERVING")
            self.assertEqual(pt.health_status(health, "policy.keys.v1.KeyService"),
                             "NOT_SERVING")
            self.assertEqual(pt.health_status(health, "liveness"), "SERVING")
            fresh = process.new_channel()  # a new connection, as a late caller makes
            self.assertEqual(verify(ks.stub(fresh), secret).key.state,
                             keys_pb2.KEY_STATE_ACTIVE)
            self.assertLess(time.monotonic() - signalled, delay, "checks ran past the delay")
            self.assertTrue(process.running())

            process.proc.wait(timeout=delay + 20)
            exited = time.monotonic() - signalled
            self.assertEqual(process.proc.returncode, 0, process.log_tail())
            self.assertGreaterEqual(exited, delay - 0.1)
            self.assertLess(exited, delay + 2 + 5,
                            "exit in bounded time after delay and grace\n" + process.log_tail())
            self.assertIn('"serving on for the shutdown delay"', process.log_text())
        finally:
            health.close()
            if fresh is not None:
                fresh.close()
            process.cleanup()

    def test_a_second_signal_ends_the_shutdown_delay(self):
        process = start_serving(DB.url, PEPPER, "keys-delay-2", shutdown_delay="10m",
                                **COMMON_FLAGS)
        try:
            signalled = time.monotonic()
            process.proc.send_signal(signal.SIGTERM)
            pt.wait_until(lambda: pt.health_status(process.channel) == "NOT_SERVING",
                          timeout=2, interval=0.01, message="health NOT_SERVING")
            self.assertEqual(verify_code(process, ks.forge_secret()), C.UNAUTHENTICATED)
            process.proc.send_signal(signal.SIGINT)
            process.proc.wait(timeout=15)
            self.assertEqual(process.proc.returncode, 0, process.log_tail())
            self.assertLess(time.monotonic() - signalled, 15)
            self.assertIn('"received another signal: ending the shutdown delay"',
                          process.log_text())
        finally:
            process.cleanup()

    def test_bootstrap_admin(self):
        with pt.test_database(PG_URL, "keys_bootstrap") as fresh:
            first = ks.run_keys(fresh.url, PEPPER, bootstrap_admin="alice")
            self.assertEqual(first.returncode, 0, first.stderr)
            values = dict(line.split("=", 1) for line in first.stdout.splitlines())
            self.assertEqual(set(values), {"key_id", "secret"})
            self.assertTrue(values["secret"].startswith("psk_admin_"))
            self.assertRegex(values["secret"], SECRET_RE)
            self.assertEqual(values["key_id"], ks.key_id_of(values["secret"]))
            self.assertNotIn(secret_middle(values["secret"]), first.stderr)

            second = ks.run_keys(fresh.url, PEPPER, bootstrap_admin="bob")
            self.assertNotEqual(second.returncode, 0)
            self.assertEqual(second.returncode, 1)
            self.assertNotIn("psk_admin_", second.stdout)
            self.assertIn("admin key exists", second.stderr)

            with start_serving(fresh.url, PEPPER, "keys-bootstrap") as process:
                key = verify(process, values["secret"]).key
                self.assertEqual(key.kind, keys_pb2.KEY_KIND_ADMIN)
                self.assertEqual(key.owner, ks.principal("alice"))
                self.assertEqual(key.project, "")
                self.assertEqual(key.state, keys_pb2.KEY_STATE_ACTIVE)
                self.assertEqual(key.key_id, values["key_id"])
                listing = ks.stub(process).ListKeys(keys_pb2.ListKeysRequest())
                self.assertEqual([k.key_id for k in listing.keys], [values["key_id"]])
                self.assertEqual(process.terminate(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
