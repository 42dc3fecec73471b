"""Whose word the edge takes for the address a call comes from: PostgreSQL and all six
services as separate processes, plus a second edge on the same services that trusts no proxy
the tests can call from (--trusted_proxies=127.0.0.2/32; the tests call from 127.0.0.1).

Through the suite's own edge (loopback trusted, the default) a caller's stated source_ip, and
Envoy's source.address, decide against a service account's IP allowlist. Through the strict
edge the tests' calls are judged by their own address: a stated address inside the allowlist
is refused rather than believed, both in Decide and in ext_authz's Check, and a call stating
none is judged (and denied) by the address it came from.

Needs POLICY_TEST_PG_URL (as tools/dev pg sets up); skips without it, or fails when
POLICY_TEST_REQUIRE_PG=1.
Run: /usr/bin/python3 -m unittest -v tests.edge.test_edge_source_address
"""

import contextlib
import json
import sys
import unittest
import uuid
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.edge import edge_support as es  # noqa: E402
from tests.support import policy_testing as pt  # noqa: E402

import grpc  # noqa: E402
from envoy.service.auth.v3 import external_auth_pb2 as X, external_auth_pb2_grpc  # noqa: E402
from policy.edge.v1 import edge_pb2 as E, edge_pb2_grpc  # noqa: E402
from policy.keys.v1 import keys_pb2, keys_pb2_grpc  # noqa: E402

C = grpc.StatusCode
INSIDE = "10.20.1.7"  # In sa-support-prod's allowlist (10.20.0.0/16) in deploy/examples/org.yaml.
CLEAN = "Summarise our refund policy in three sentences."

SUITE = None
STRICT = None  # The second edge, trusting only 127.0.0.2.
_stack = None


def setUpModule():
    global SUITE, STRICT, _stack
    url = pt.require_pg_url()
    es.require_binaries()
    _stack = contextlib.ExitStack()
    try:
        db = _stack.enter_context(pt.test_database(url, "edge_source"))
        SUITE = es.Suite(db.url)
        _stack.callback(SUITE.cleanup)
        SUITE.start()
        SUITE.register_seed_endpoints()
        p = SUITE.p
        STRICT = pt.ServiceProcess(pt.service_binary("edge"), name="edge-strict", flags={
            "keys_target": p["keys"].address, "authz_target": p["authz"].address,
            "pii_target": f"127.0.0.1:{SUITE.pii_port}", "region_target": p["region"].address,
            "audit_target": p["audit"].address, "trusted_proxies": "127.0.0.2/32"})
        _stack.callback(STRICT.cleanup)
        STRICT.start()
        pt.wait_until(lambda: pt.health_status(STRICT.channel) == "SERVING", timeout=20,
                      message="edge-strict SERVING", ignore=(grpc.RpcError,))
    except BaseException:
        _stack.close()
        raise


def tearDownModule():
    try:
        if STRICT.terminate() != 0:
            raise AssertionError(f"edge-strict exited non-zero\n{STRICT.log_tail()}")
        SUITE.terminate()
    finally:
        _stack.close()


def service_account_key():
    return keys_pb2_grpc.KeyServiceStub(SUITE.p["keys"].channel).CreateKey(
        keys_pb2.CreateKeyRequest(
            request_id=uuid.uuid4().hex, kind=keys_pb2.KEY_KIND_SERVICE_ACCOUNT,
            owner=keys_pb2.Principal(type=keys_pb2.PRINCIPAL_TYPE_SERVICE_ACCOUNT,
                                     id="sa-support-prod"),
            project="support-eu", environment=keys_pb2.ENVIRONMENT_PRODUCTION,
            scopes=["chat.completions"]), timeout=10).secret


def decide(channel, key, source_ip):
    request = es.decide_request(key, text=CLEAN, tokens=10)
    request.source_ip = source_ip
    return edge_pb2_grpc.EdgeServiceStub(channel).Decide(request, timeout=10)


def check(channel, key, source_address):
    body = json.dumps({"model": "gpt-4o", "max_tokens": 10,
                       "messages": [{"role": "user", "content": CLEAN}]})
    attributes = X.AttributeContext(
        source=X.AttributeContext.Peer(address={"socket_address": {
            "address": source_address, "port_value": 51234}}),
        request=X.AttributeContext.Request(http=X.AttributeContext.HttpRequest(
            method="POST", path="/v1/chat/completions", host="llm.acme.example",
            headers={"authorization": f"Bearer {key}", "content-type": "application/json",
                     "x-policy-residency": "eu"}, body=body)))
    return external_auth_pb2_grpc.AuthorizationStub(channel).Check(
        X.CheckRequest(attributes=attributes), timeout=10)


class SourceAddressTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.key = service_account_key()

    def test_a_trusted_proxy_states_the_callers_address(self):
        channel = SUITE.p["edge"].channel
        allowed = decide(channel, self.key, INSIDE)
        self.assertEqual(allowed.verdict, E.VERDICT_ALLOW, allowed.message)
        outside = decide(channel, self.key, "8.8.8.8")
        self.assertEqual((outside.verdict, outside.reason), (E.VERDICT_DENY, "IP_NOT_ALLOWED"))
        self.assertEqual(check(channel, self.key, INSIDE).status.code, 0)

    def test_an_untrusted_peer_cannot_state_an_allowed_address(self):
        err = pt.call_error(decide, STRICT.channel, self.key, INSIDE)
        self.assertEqual(err.code(), C.PERMISSION_DENIED, err.details())
        self.assertIn("source_ip: 10.20.1.7 is stated by a call from 127.0.0.1", err.details())
        self.assertIn("trusted_proxies", err.details())
        # Not even in another spelling of an address of the allowlist.
        self.assertEqual(pt.call_code(decide, STRICT.channel, self.key, "::ffff:10.20.1.7"),
                         C.PERMISSION_DENIED)

    def test_an_untrusted_peer_is_judged_by_its_own_address(self):
        for stated in ("", "127.0.0.1", "::ffff:127.0.0.1"):
            denied = decide(STRICT.channel, self.key, stated)
            self.assertEqual((denied.verdict, denied.reason), (E.VERDICT_DENY, "IP_NOT_ALLOWED"),
                             stated)

    def test_an_untrusted_envoy_cannot_state_an_allowed_address(self):
        # A denial (403), not a failed check, which an Envoy with failure_mode_allow would let
        # through unchecked.
        refused = check(STRICT.channel, self.key, INSIDE)
        self.assertEqual(refused.denied_response.status.code, 403, refused)
        self.assertEqual(refused.status.code, C.PERMISSION_DENIED.value[0])
        self.assertIn("source.address: 10.20.1.7", refused.denied_response.body)


if __name__ == "__main__":
    unittest.main()
