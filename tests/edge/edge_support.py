"""The whole suite as separate processes, for the edge's end-to-end and fault tests: keys,
authz (the demo organisation), pii, region, audit on one PostgreSQL database, and the edge
calling them. Also the seed's endpoints, keys, and a Decide request."""

import collections
import secrets
import sys
import threading
import time
import uuid
from pathlib import Path

from tests.support import policy_testing as pt

import grpc
from policy.edge.v1 import admin_pb2, admin_pb2_grpc, edge_pb2 as E, edge_pb2_grpc  # noqa: F401
from policy.keys.v1 import keys_pb2, keys_pb2_grpc
from policy.pii.v1 import pii_pb2
from policy.region.v1 import region_pb2 as R, region_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
ORG_FILE = ROOT / "deploy" / "examples" / "org.yaml"
MODELS = ["gpt-4o", "gpt-4o-mini"]
SERVICES = ("keys", "authz", "pii", "region", "audit", "edge")
# Who the ledger records as changing the endpoint registry when the tests call region directly.
OPERATOR = "e2e-operator"
TICKET = ("Customer jane.doe@example.com (card 4111 1111 1111 1111) asks why she was charged "
          "twice. Draft a polite answer.")


def require_binaries():
    for name in SERVICES:
        pt.service_binary(name)


class SuiteTls:
    """Mutual TLS for the whole suite: every service serves TLS with `cert`/`key` (a
    certificate naming 127.0.0.1), requires client certificates from `ca`, presents its own on
    every internal call, and answers health checks in plaintext on a port of its own. The
    tests' own calls present `client_cert`/`client_key`. With `allowed_clients`, services admit
    only certificates naming one of them."""

    def __init__(self, ca, cert, key, client_cert, client_key, allowed_clients=()):
        self.ca, self.cert, self.key = ca, cert, key
        self.client_cert, self.client_key = client_cert, client_key
        self.allowed_clients = allowed_clients

    def flags(self):
        flags = {"tls_cert_file": str(self.cert), "tls_key_file": str(self.key),
                 "tls_ca_file": str(self.ca), "tls_require_client_cert": "true",
                 "health_listen": "127.0.0.1:0"}
        if self.allowed_clients:
            flags["tls_allowed_clients"] = ",".join(self.allowed_clients)
        return flags

    def channel_credentials(self):
        return grpc.ssl_channel_credentials(
            root_certificates=Path(self.ca).read_bytes(),
            private_key=Path(self.client_key).read_bytes(),
            certificate_chain=Path(self.client_cert).read_bytes())


class Suite:
    """Starts the six services on `database_url`; pii listens on a fixed port so that it can
    be killed and started again on the same address. `flags` adds per-service flags; `tls`
    (a SuiteTls) turns on mutual TLS everywhere."""

    def __init__(self, database_url, flags=None, tls=None):
        self.url = database_url
        self.flags = flags or {}
        self.tls = tls
        self.p = {}
        self.pii_env = {"POLICY_PII_PSEUDONYM_KEY": secrets.token_hex(32)}
        self.pii_port = pt.stable_port()

    def _start(self, name, flags=None, env=None):
        flags = dict(flags or {}, **self.flags.get(name, {}))
        credentials = None
        if self.tls is not None:
            flags.update(self.tls.flags())
            credentials = self.tls.channel_credentials()
        process = pt.ServiceProcess(pt.service_binary(name), flags=flags, env=env or {},
                                    name=name, channel_credentials=credentials)
        self.p[name] = process
        process.start()
        pt.wait_until(lambda: pt.health_status(process.channel) == "SERVING", timeout=20,
                      message=f"{name} SERVING", ignore=(grpc.RpcError,))
        return process

    def start_pii(self):
        return self._start("pii", {"listen": f"127.0.0.1:{self.pii_port}"}, self.pii_env)

    def start(self):
        self._start("audit", {"checkpoint_interval": "200ms"},
                    {"POLICY_AUDIT_SIGNING_KEY": secrets.token_hex(32),
                     "POLICY_AUDIT_SUBJECT_KEY": secrets.token_hex(32),
                     "POLICY_AUDIT_DATABASE_URL": self.url})
        # Key lifecycle events and organisation changes go to the ledger.
        self._start("keys", {"audit_target": self.p["audit"].address},
                    {"POLICY_KEYS_PEPPER": secrets.token_hex(32),
                     "POLICY_KEYS_DATABASE_URL": self.url})
        self._start("authz", {"bootstrap_org_file": str(ORG_FILE),
                              "keys_address": self.p["keys"].address,
                              "audit_target": self.p["audit"].address},
                    {"POLICY_AUTHZ_DATABASE_URL": self.url})
        self.start_pii()
        # So do the endpoint registry's changes.
        self._start("region", {"sync_interval": "100ms", "cool_down": "30s",
                               "audit_target": self.p["audit"].address},
                    {"POLICY_REGION_DATABASE_URL": self.url})
        self._start("edge", {"keys_target": self.p["keys"].address,
                             "authz_target": self.p["authz"].address,
                             "pii_target": f"127.0.0.1:{self.pii_port}",
                             "region_target": self.p["region"].address,
                             "audit_target": self.p["audit"].address})
        return self

    def cleanup(self):
        for process in self.p.values():
            process.cleanup()

    def terminate(self):
        """SIGTERM, edge first; raises if one exits non-zero."""
        for name in reversed(list(self.p)):
            code = self.p[name].terminate()
            if code != 0:
                raise AssertionError(f"{name} exited {code} on SIGTERM\n{self.p[name].log_tail()}")

    def edge(self):
        return edge_pb2_grpc.EdgeServiceStub(self.p["edge"].channel)

    def admin(self):
        return admin_pb2_grpc.AdminServiceStub(self.p["edge"].channel)

    def new_key(self, owner, project, environment=keys_pb2.ENVIRONMENT_PRODUCTION,
                scopes=("chat.completions",), kind=keys_pb2.KEY_KIND_PROJECT):
        """A key made directly by the keys service (as an operator bootstraps the first admin
        key); the admin API makes the others."""
        created = keys_pb2_grpc.KeyServiceStub(self.p["keys"].channel).CreateKey(
            keys_pb2.CreateKeyRequest(
                request_id=uuid.uuid4().hex, kind=kind,
                owner=keys_pb2.Principal(type=keys_pb2.PRINCIPAL_TYPE_MEMBER, id=owner),
                project=project, environment=environment, scopes=list(scopes)), timeout=10)
        return created.secret

    def new_admin_key(self, owner):
        return self.new_key(owner, "", keys_pb2.ENVIRONMENT_PRODUCTION, scopes=("admin",),
                            kind=keys_pb2.KEY_KIND_ADMIN)

    def register_seed_endpoints_once(self):
        if not getattr(self, "_registered", False):
            self.register_seed_endpoints()

    def register_seed_endpoints(self):
        """The seed's regions: westeurope first, swedencentral second, eastus for the US."""
        self._registered = True
        region = region_pb2_grpc.RegionServiceStub(self.p["region"].channel)
        for e in (endpoint("westeurope", R.RESIDENCY_EU, 1),
                  endpoint("swedencentral", R.RESIDENCY_EU, 2),
                  endpoint("eastus", R.RESIDENCY_US, 1)):
            region.CreateEndpoint(R.CreateEndpointRequest(endpoint=e, actor=OPERATOR),
                                  timeout=10)


def start_suite(stack, url, database_name, flags=None):
    """A test database named after `database_name` on `url`, and the six services on it,
    started: `stack` (a contextlib.ExitStack) stops the services, then drops the database."""
    db = stack.enter_context(pt.test_database(url, database_name))
    suite = Suite(db.url, flags=flags)
    stack.callback(suite.cleanup)
    suite.start()
    return db, suite


def endpoint(id_, residency, priority, models=MODELS):
    return R.Endpoint(id=id_, region=id_, provider=R.PROVIDER_AZURE,
                      base_url=f"https://{id_}.openai.azure.com", deployment="gpt-4o",
                      residency=residency,
                      capabilities=R.Capabilities(zero_data_retention=True, private_link=True),
                      models=list(models), priority=priority, weight=100, enabled=True)


def bearer(key):
    return (("authorization", f"Bearer {key}"),)


def message(text, role="user"):
    return pii_pb2.ChatMessage(role=role, content=text.encode())


def decide_request(key, text=TICKET, model="gpt-4o", residency=R.RESIDENCY_EU, tokens=200, **kw):
    return E.DecideRequest(
        api_key=key.encode(), source_ip="10.20.1.7", model=model,
        messages=[message("You are a support assistant.", "system"), message(text)],
        estimated_tokens=tokens, residency=residency, **kw)


# Reconnect at once after a restart instead of gRPC's default backoff (1 s, growing).
FAST_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 50),
                  ("grpc.min_reconnect_backoff_ms", 50),
                  ("grpc.max_reconnect_backoff_ms", 250)]


class DecideClients:
    """`clients` threads sending Decide to `suite`'s edge as fast as it answers, with `keys` in
    turn and a request id of their own each (decision:kill-...); every answer is kept with
    its time, failures counted by code. A context manager: the threads run inside it."""

    def __init__(self, suite, keys, clients=8, deadline_s=3.0):
        self.suite = suite
        self.keys = keys
        self.deadline_s = deadline_s
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.answered = []  # (request id, monotonic time, DecideResponse)
        self.failed = collections.Counter()
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True)
                        for i in range(clients)]

    def run(self, number):
        channel = grpc.insecure_channel(self.suite.p["edge"].address, options=FAST_RECONNECT)
        stub = edge_pb2_grpc.EdgeServiceStub(channel)
        seq = 0
        try:
            while not self.stop.is_set():
                key = self.keys[seq % len(self.keys)]
                request_id = f"kill-{number}-{seq}-{uuid.uuid4().hex[:6]}"
                seq += 1
                try:
                    answer = stub.Decide(decide_request(key, request_id=request_id),
                                         timeout=self.deadline_s)
                except grpc.RpcError as e:
                    with self.lock:
                        self.failed[e.code().name] += 1
                    time.sleep(0.01)
                    continue
                with self.lock:
                    self.answered.append((request_id, time.monotonic(), answer))
        finally:
            channel.close()

    def count(self, verdict=None):
        with self.lock:
            return sum(1 for _, _, a in self.answered if verdict is None or a.verdict == verdict)

    def wait_for_more(self, more, timeout, message):
        """Waits until `more` decisions beyond those answered so far are answered."""
        floor = self.count()
        pt.wait_until(lambda: self.count() >= floor + more, timeout=timeout, message=message)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(self.deadline_s + 10)


def check_answered_decisions(test, db, project, environment, answered):
    """Every decision in `answered` (DecideClients.answered), ALLOW or DENY, is in the ledger
    of `project`/`environment` once, at the index of its audit id, with its verdict, model
    and tokens; none is recorded twice."""
    rows = db.rows(
        "SELECT e.request_id, e.idx, e.action, e.model, e.tokens FROM audit.entries e "
        "JOIN audit.ledgers l ON l.id = e.ledger_id "
        f"WHERE l.project = '{project}' AND l.environment = '{environment}' "
        "AND e.request_id LIKE 'decision:kill-%'")
    stored = collections.defaultdict(list)
    for request_id, idx, action, model, tokens in rows:
        stored[request_id].append((int(idx), action, model, int(tokens)))
    twice = {k: v for k, v in stored.items() if len(v) > 1}
    test.assertEqual(twice, {}, "decisions recorded more than once")
    problems = []
    for request_id, _, answer in answered:
        entries = stored.get(f"decision:{request_id}")
        if not entries:
            problems.append((request_id, "missing", E.Verdict.Name(answer.verdict)))
            continue
        idx, action, model, tokens = entries[0]
        if answer.audit_id != f"{project}/{environment}/{idx}":
            problems.append((request_id, "index", answer.audit_id, idx))
        want = "decision_allow" if answer.verdict == E.VERDICT_ALLOW else "decision_deny"
        if action != want:
            problems.append((request_id, "action", action, want))
        if (model, tokens) != ("gpt-4o", answer.estimated_tokens):
            problems.append((request_id, "fields", model, tokens))
    test.assertEqual(problems, [], f"answered decisions not in the ledger as answered "
                                   f"({len(problems)} of {len(answered)})")


def check_after_faults(test, suite, db, project, environment, clients, began):
    """After faults under load: every decision `clients` were answered is in the ledger as
    answered (check_answered_decisions), the ledger verifies, and every service runs again."""
    from policy.audit.v1 import audit_pb2, audit_pb2_grpc

    answered = list(clients.answered)
    check_answered_decisions(test, db, project, environment, answered)
    report = audit_pb2_grpc.AuditServiceStub(suite.p["audit"].channel).VerifyLedger(
        audit_pb2.VerifyLedgerRequest(ledger=audit_pb2.LedgerRef(
            project=project, environment=environment)), timeout=30).report
    test.assertTrue(report.valid, report)
    for name in SERVICES:
        test.assertTrue(suite.p[name].running(), f"{name} is not running")
    print(f"\n  {len(answered)} answered ({clients.count(E.VERDICT_ALLOW)} ALLOW), "
          f"failures {dict(clients.failed)}, {time.monotonic() - began:.1f} s",
          file=sys.stderr)
