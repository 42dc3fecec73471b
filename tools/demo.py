#!/usr/bin/python3
"""Quick-start demo of the keys, authz, pii, region, audit and edge services, run by `tools/dev up`:

  PYTHONPATH=build/python /usr/bin/python3 tools/demo.py \\
      --keys 127.0.0.1:50051 --metrics 127.0.0.1:9451 --authz 127.0.0.1:50052 \\
      --pii 127.0.0.1:50053 --region 127.0.0.1:50054 --audit 127.0.0.1:50055 \\
      --edge 127.0.0.1:50056

Keys: creates a project key, verifies it, rotates it, revokes the successor, prints the
rotation and inventory reports and the VerifyKey count from /metrics. Authz: decisions on the
demo organisation (deploy/examples/org.yaml): an allowed call, a model off the allowlist with
the explain trace, a reader, a service account inside and outside its IP allowlist, and a
member running into a rate limit. Pii: a support ticket redacted with placeholders (and the
answer restored), a prompt carrying an AWS key blocked, a keyed pseudonym, and a bad request
refused with the reason. Region: the seed's regions registered afresh, EU data with PII
routed to westeurope, US PHI to eastus, westeurope failing three times and the next EU
request failing over to swedencentral (never to the US), APAC PII blocked with
NO_COMPLIANT_REGION, and the regional health report. Audit: decisions appended to the ledger (a retry returns the first
entry), a signed checkpoint, an entry's inclusion proof checked here against it without
trusting the server, and the server's verification of the whole ledger. Edge: the decision
flow end to end (an allowed ticket with its PII redacted and routed to the EU, where its
project keeps its calls, a model off the allowlist, a pasted AWS key, APAC residency refused to
that EU project, a rate limit, a forged key), the same
decision as Envoy's ext_authz filter asks for it, an owner rotating a key through the admin
API, and the ledgers that recorded it all verifying. Exits non-zero as soon as a step does not behave as
documented, so that `tools/dev up` fails loudly.

Every run uses fresh request ids (uuid4), so runs never replay each other; the keys it
creates stay in the development database (the rotated one is revoked automatically when its
overlap ends).
"""

import argparse
import hashlib
import os
import re
import sys
import time
import urllib.request
import uuid

try:
    import grpc
    from google.protobuf import timestamp_pb2
    from policy.audit.v1 import audit_pb2, audit_pb2_grpc
    from policy.authz.v1 import authz_pb2, authz_pb2_grpc
    from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
    from policy.edge.v1 import admin_pb2_grpc, edge_pb2, edge_pb2_grpc
    from policy.keys.v1 import keys_pb2, keys_pb2_grpc
    from policy.pii.v1 import pii_pb2, pii_pb2_grpc
    from policy.region.v1 import region_pb2, region_pb2_grpc
except ImportError as e:  # pragma: no cover - setup problem, say what to do
    sys.exit(f"demo: cannot import the gRPC modules ({e}); run with /usr/bin/python3 and "
             "PYTHONPATH=build/python (cmake --build build --target policy_proto_python)")

OWNER = "alice@company.com"
PROJECT = "proj-dev"
STARTED = time.time()  # Entries since then are this run's.
SCOPES = ["chat.completions", "embeddings"]
TIMEOUT = 10
# Who the audit ledger records as making the demo's endpoint changes (the demo calls region
# directly, as an operator's tool would; through the edge it is the admin key's member).
DEMO_ACTOR = "demo@company.com"


class DemoError(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise DemoError(message)


def name(enum, value):
    """KEY_STATE_ACTIVE -> ACTIVE, for readable lines."""
    return enum.Name(value).split("_", 2)[-1] if value else "UNSPECIFIED"


def when(ts):
    return ts.ToDatetime().replace(microsecond=0).isoformat() + "Z"


def health(channel):
    """grpc.health.v1.Health/Check for the whole server, without the grpc_health package."""
    check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                request_serializer=lambda b: b,
                                response_deserializer=lambda b: b)
    response = check(b"", timeout=TIMEOUT)
    # HealthCheckResponse{status (1): enum}: b"\x08\x01" is SERVING.
    status = response[1] if len(response) >= 2 and response[0] == 0x08 else 0
    return {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}.get(status)


def verify(stub, secret):
    return stub.VerifyKey(keys_pb2.VerifyKeyRequest(secret=secret.encode()), timeout=TIMEOUT).key


def verify_error(stub, secret):
    try:
        key = verify(stub, secret)
    except grpc.RpcError as e:
        return e
    raise DemoError(f"key {key.key_id} still verifies (state {name(keys_pb2.KeyState, key.state)})")


def print_table(rows, headers):
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, ["-" * w for w in widths], *rows]:
        print("     " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


def scrape(address):
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=TIMEOUT) as response:
        return response.read().decode()


def verify_calls(metrics_address):
    """{grpc_code: count} of grpc_server_handled_total for VerifyKey."""
    by_code = {}
    text = scrape(metrics_address)
    for match in re.finditer(r'^grpc_server_handled_total\{([^}]*)\} (\S+)$', text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if labels.get("grpc_method") == "VerifyKey":
            code = labels.get("grpc_code", "?")
            by_code[code] = by_code.get(code, 0) + int(float(match.group(2)))
    return by_code


def run(keys_address, metrics_address):
    channel = grpc.insecure_channel(keys_address)
    try:
        grpc.channel_ready_future(channel).result(timeout=TIMEOUT)
    except grpc.FutureTimeoutError:
        raise DemoError(f"cannot connect to the keys service at {keys_address}")
    stub = keys_pb2_grpc.KeyServiceStub(channel)
    print(f"keys demo against {keys_address} (metrics http://{metrics_address}/metrics)")

    # The ready file can appear a moment before the key cache is loaded: wait for SERVING.
    deadline = time.monotonic() + 10
    status = health(channel)
    while status != "SERVING" and time.monotonic() < deadline:
        time.sleep(0.1)
        status = health(channel)
    print(f"  health: {status}")
    expect(status == "SERVING", f"health is {status}, not SERVING")
    before = verify_calls(metrics_address)

    # 1. Create.
    created = stub.CreateKey(keys_pb2.CreateKeyRequest(
        request_id=f"demo-create-{uuid.uuid4()}", kind=keys_pb2.KEY_KIND_PROJECT,
        owner=keys_pb2.Principal(type=keys_pb2.PRINCIPAL_TYPE_MEMBER, id=OWNER),
        project=PROJECT, environment=keys_pb2.ENVIRONMENT_DEVELOPMENT, scopes=SCOPES),
        timeout=TIMEOUT)
    key, secret = created.key, created.secret
    expect(secret.startswith("psk_proj_"), "the secret does not start with psk_proj_")
    expect(key.redacted == "psk_proj_..." + secret[-4:], f"unexpected redaction {key.redacted}")
    print(f"1. created project key {key.key_id} for {OWNER} in {PROJECT} (development)")
    print(f"     redacted: {key.redacted}   expires {when(key.expire_time)}")
    print(f"     secret:   {secret}")
    print("               ^ shown once: the service stores only a keyed hash of it")

    # 2. Verify.
    verified = verify(stub, secret)
    expect(verified.key_id == key.key_id, "VerifyKey returned another key")
    expect(verified.state == keys_pb2.KEY_STATE_ACTIVE, "the new key is not ACTIVE")
    expect(sorted(verified.scopes) == sorted(SCOPES), f"scopes are {list(verified.scopes)}")
    print(f"2. verified: owner {verified.owner.id} "
          f"({name(keys_pb2.PrincipalType, verified.owner.type).lower()}), "
          f"project {verified.project}, scopes {' '.join(verified.scopes)}, "
          f"state {name(keys_pb2.KeyState, verified.state)}")

    # 3. Rotate with the server's default overlap (24 h unless configured otherwise).
    rotated = stub.RotateKey(keys_pb2.RotateKeyRequest(
        request_id=f"demo-rotate-{uuid.uuid4()}", key_id=key.key_id), timeout=TIMEOUT)
    old, new = rotated.old_key, rotated.new_key
    overlap_h = (old.overlap_end_time.ToNanoseconds() / 1e9 - time.time()) / 3600
    print(f"3. rotated {old.key_id} -> {new.key_id}: both verify for "
          f"{overlap_h:.0f} h (until {when(old.overlap_end_time)})")
    old_state = verify(stub, secret).state
    new_state = verify(stub, rotated.secret).state
    print(f"     old key verifies: {name(keys_pb2.KeyState, old_state)}")
    print(f"     new key verifies: {name(keys_pb2.KeyState, new_state)}")
    expect(old_state == keys_pb2.KEY_STATE_ROTATING, "the old key is not ROTATING")
    expect(new_state == keys_pb2.KEY_STATE_ACTIVE, "the new key is not ACTIVE")

    # 4. Revoke the new key.
    revoked = stub.RevokeKey(keys_pb2.RevokeKeyRequest(key_id=new.key_id,
                                                       reason="revoked by the demo"),
                             timeout=TIMEOUT)
    expect(revoked.changed and revoked.key.state == keys_pb2.KEY_STATE_REVOKED,
           "RevokeKey did not revoke the key")
    error = verify_error(stub, rotated.secret)
    expect(error.code() == grpc.StatusCode.UNAUTHENTICATED,
           f"a revoked key failed with {error.code()}, not UNAUTHENTICATED")
    print(f"4. revoked {new.key_id}: verification now fails with "
          f"{error.code().name} ({error.details()})")

    # 5.-6. Reports.
    report = stub.GetRotationReport(keys_pb2.GetRotationReportRequest(project=PROJECT),
                                    timeout=TIMEOUT)
    window_days = report.warning_window.ToTimedelta().days
    if report.entries:
        print(f"5. rotation report for {PROJECT} (warning window {window_days} d):")
        print_table([[e.key.key_id, name(keys_pb2.Urgency, e.urgency), e.days_remaining,
                      e.key.owner.id] for e in report.entries[:8]],
                    ["key", "urgency", "days left", "owner"])
    else:
        print(f"5. rotation report for {PROJECT}: no key expires within {window_days} d")

    inventory = stub.GetInventoryReport(keys_pb2.GetInventoryReportRequest(project=PROJECT),
                                        timeout=TIMEOUT)
    ids = {e.key.key_id: e for e in inventory.entries}
    expect(key.key_id in ids and new.key_id in ids, "the inventory misses the demo's keys")
    expect(ids[new.key_id].key.state == keys_pb2.KEY_STATE_REVOKED,
           "the inventory does not show the revoked key as REVOKED")
    counts = ", ".join(f"{name(keys_pb2.KeyState, keys_pb2.KeyState.Value(s))} {n}"
                       for s, n in sorted(inventory.counts_by_state.items()))
    print(f"6. inventory for {PROJECT}: {len(inventory.entries)} keys ({counts}); newest:")
    newest = sorted(inventory.entries, key=lambda e: e.key.create_time.ToNanoseconds(),
                    reverse=True)[:6]
    print_table([[e.key.key_id, e.key.redacted, name(keys_pb2.KeyState, e.key.state),
                  e.key.owner.id, f"{e.age_days} d"] for e in newest],
                ["key", "redacted", "state", "owner", "age"])

    # 7. Metrics.
    by_code = verify_calls(metrics_address)
    total = sum(by_code.values())
    made = total - sum(before.values())
    expect(made >= 4, f"/metrics counts {made} new VerifyKey calls; this demo made 4")
    detail = ", ".join(f"{code} {n}" for code, n in sorted(by_code.items()))
    print(f"7. /metrics: VerifyKey handled {total} times since the service started ({detail})")
    channel.close()


def authz_check(stub, principal, project, model="gpt-4o", kind=None, **fields):
    kind = kind or authz_pb2.PRINCIPAL_KIND_MEMBER
    return stub.Check(authz_pb2.CheckRequest(
        principal=authz_pb2.Principal(kind=kind, id=principal), project=project,
        action=fields.pop("action", "chat.completions"), model=model, **fields), timeout=TIMEOUT)


def verdict_line(label, response):
    verdict = "ALLOW" if response.verdict == authz_pb2.VERDICT_ALLOW else "DENY "
    extra = f" {response.reason} (rule {response.rule})" if response.reason else ""
    budgets = ", ".join(f"{b.name} {b.remaining}/{b.limit_per_minute}" for b in response.budgets)
    print(f"  [{verdict}] {label:<46}{extra}{'  budgets: ' + budgets if budgets else ''}")


def run_authz(address):
    """Decisions against the demo organisation (deploy/examples/org.yaml)."""
    print("\n=== authz: decisions on the Acme organisation ===")
    channel = grpc.insecure_channel(address)
    expect(health(channel) == "SERVING", f"authz at {address} is not SERVING")
    stub = authz_pb2_grpc.AuthzServiceStub(channel)
    sa = authz_pb2.PRINCIPAL_KIND_SERVICE_ACCOUNT
    ok = authz_check(stub, "bob", "support-eu", estimated_tokens=500)
    verdict_line("bob calls gpt-4o in support-eu", ok)
    expect(ok.verdict == authz_pb2.VERDICT_ALLOW, "bob should be allowed")
    denied = authz_check(stub, "bob", "support-eu", model="o3-mini", explain=True)
    verdict_line("bob calls o3-mini in support-eu", denied)
    expect(denied.reason == "MODEL_NOT_ALLOWED", "o3-mini is not on support-eu's allowlist")
    print("      why: " + "; ".join(f"{r.rule} {'ok' if r.passed else 'FAILED'}"
                                    f"{' (' + r.detail + ')' if r.detail else ''}"
                                    for r in denied.trace))
    reader = authz_check(stub, "carol", "support-eu")
    verdict_line("carol (reader) calls gpt-4o in support-eu", reader)
    expect(reader.reason == "PERMISSION_DENIED", "a reader makes no calls")
    inside = authz_check(stub, "sa-support-prod", "support-eu", kind=sa,
                         source_ip="2001:db8:20::7")
    verdict_line("sa-support-prod from 2001:db8:20::7", inside)
    expect(inside.verdict == authz_pb2.VERDICT_ALLOW, "the address is in 2001:db8:20::/48")
    outside = authz_check(stub, "sa-support-prod", "support-eu", kind=sa, source_ip="10.21.0.1")
    verdict_line("sa-support-prod from 10.21.0.1", outside)
    expect(outside.reason == "IP_NOT_ALLOWED", "10.21.0.1 is outside 10.20.0.0/16")
    # carol may make 10 requests a minute in the playground.
    limited = None
    for _ in range(40):
        limited = authz_check(stub, "carol", "playground", model="gpt-4o-mini")
        if limited.verdict != authz_pb2.VERDICT_ALLOW:
            break
    verdict_line("carol's requests in playground, until limited", limited)
    expect(limited.reason == "RATE_LIMITED", "carol's 10 requests per minute should run out")
    print(f"      retry after {limited.retry_after.seconds + limited.retry_after.nanos / 1e9:.1f} s")


def run_pii(address):
    """Redaction of chat messages under per-type policies."""
    print("\n=== pii: redaction before the prompt leaves ===")
    channel = grpc.insecure_channel(address)
    expect(health(channel) == "SERVING", f"pii at {address} is not SERVING")
    stub = pii_pb2_grpc.PiiServiceStub(channel)
    ticket = ("Customer jane.doe@example.com (badge EMP-204518) says card 4111 1111 1111 1111 "
              "was charged twice; call her on +1 212-555-0123 or write to jane.doe@example.com.")
    policy = pii_pb2.RedactionPolicy(
        default_rule=pii_pb2.EntityRule(operator=pii_pb2.OPERATOR_PLACEHOLDER),
        rules=[pii_pb2.EntityRule(entity_type="CREDIT_CARD", operator=pii_pb2.OPERATOR_MASK)])
    redacted = stub.Redact(pii_pb2.RedactRequest(
        messages=[pii_pb2.ChatMessage(role="user", content=ticket.encode())], policy=policy,
        return_mapping=True), timeout=TIMEOUT)
    text = redacted.messages[0].content.decode()
    print(f"  sent:     {ticket}")
    print(f"  redacted: {text}")
    counts = ", ".join(f"{t} {n}" for t, n in sorted(redacted.report.counts.items()))
    print(f"  found:    {counts}; data class "
          f"{pii_pb2.DataClass.Name(redacted.report.data_class)}")
    expect("jane.doe@example.com" not in text and "4111 1111 1111 1111" not in text,
           "the address and the card must not leave")
    expect(text.count("<EMAIL_ADDRESS_1>") == 2, "one placeholder for both mentions")
    expect(redacted.report.counts["EMPLOYEE_ID"] == 1, "the custom recognizer finds the badge")
    answer = "I have refunded the duplicate charge and emailed <EMAIL_ADDRESS_1>."
    restored = stub.Restore(pii_pb2.RestoreRequest(text=answer.encode(),
                                                   mapping=redacted.mapping), timeout=TIMEOUT)
    print(f"  answer restored: {restored.text.decode()}")
    expect(b"jane.doe@example.com" in restored.text, "the placeholder is restored")

    block = pii_pb2.RedactionPolicy(rules=[pii_pb2.EntityRule(
        entity_type="AWS_ACCESS_KEY", action=pii_pb2.ACTION_BLOCK)])
    blocked = stub.Redact(pii_pb2.RedactRequest(messages=[pii_pb2.ChatMessage(
        role="user", content=b"Why does AKIAIOSFODNN7EXAMPLE get AccessDenied?")],
        policy=block), timeout=TIMEOUT)
    print(f"  [BLOCK] a prompt with an AWS key: blocked={blocked.report.blocked} "
          f"({', '.join(blocked.report.blocking_types)}); logged as "
          f"{blocked.messages[0].content.decode()!r}")
    expect(blocked.report.blocked, "an AWS key blocks the request")

    hashed = stub.Redact(pii_pb2.RedactRequest(
        messages=[pii_pb2.ChatMessage(role="user", content=b"jane.doe@example.com")],
        policy=pii_pb2.RedactionPolicy(
            default_rule=pii_pb2.EntityRule(operator=pii_pb2.OPERATOR_HASH)),
        project_id="support-eu"), timeout=TIMEOUT)
    print(f"  keyed pseudonym in support-eu: {hashed.messages[0].content.decode()}")
    try:
        stub.Redact(pii_pb2.RedactRequest(messages=[pii_pb2.ChatMessage(
            role="user", content=b"caf\xc3")]), timeout=TIMEOUT)
        raise DemoError("text that is not UTF-8 must be refused")
    except grpc.RpcError as e:
        expect(e.code() == grpc.StatusCode.INVALID_ARGUMENT, f"got {e.code()}")
        print(f"  refused: {e.code().name}: {e.details()}")
    channel.close()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(leaf, index, size, proof, root):
    """RFC 9162 section 2.1.3.2, independent of the server's code."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def run_audit(address):
    """The tamper-evident ledger: appends, a signed checkpoint, a proof checked here."""
    print("\n=== audit: every decision in a tamper-evident ledger ===")
    channel = grpc.insecure_channel(address)
    expect(health(channel) == "SERVING", f"audit at {address} is not SERVING")
    stub = audit_pb2_grpc.AuditServiceStub(channel)
    run_id = uuid.uuid4().hex[:12]
    ledger = audit_pb2.LedgerRef(project="proj-prod", environment="production")
    entries = [
        audit_pb2.EntryInput(action=audit_pb2.ACTION_DECISION_ALLOW, actor="svc-chatbot-prod",
                             project="proj-prod", environment="production", model="gpt-4.1",
                             tokens=1250, content_hash=hashlib.sha256(b"prompt 1").digest(),
                             metadata={"region": "eu-west"}, request_id=f"demo-{run_id}-1"),
        audit_pb2.EntryInput(action=audit_pb2.ACTION_PII_DETECTED, actor="svc-chatbot-prod",
                             project="proj-prod", environment="production", model="gpt-4.1",
                             outcome=audit_pb2.OUTCOME_BLOCKED,
                             metadata={"entity_type": "US_SSN"}, request_id=f"demo-{run_id}-2"),
        audit_pb2.EntryInput(action=audit_pb2.ACTION_RATE_LIMITED, actor="svc-analytics-prod",
                             project="proj-prod", environment="production",
                             model="gpt-4.1-mini", outcome=audit_pb2.OUTCOME_ERROR,
                             request_id=f"demo-{run_id}-3"),
    ]
    appended = [stub.Append(audit_pb2.AppendRequest(entry=e), timeout=TIMEOUT) for e in entries]
    for a in appended:
        print(f"  appended #{a.entry.index}: {audit_pb2.Action.Name(a.entry.action)} "
              f"(actor stored as pseudonym {a.entry.actor_ref.hex()[:16]}...)")
    retry = stub.Append(audit_pb2.AppendRequest(entry=entries[0]), timeout=TIMEOUT)
    expect(retry.duplicate and retry.entry.index == appended[0].entry.index,
           "a retried append returns the first entry")
    print(f"  retried append: duplicate of #{retry.entry.index}, nothing added")

    last = appended[-1].entry.index
    deadline = time.time() + 10
    while True:  # The service signs a checkpoint every second in tools/dev.
        try:
            checkpoint = stub.GetCheckpoint(audit_pb2.GetCheckpointRequest(ledger=ledger),
                                            timeout=TIMEOUT)
            if checkpoint.checkpoint.tree_size > last:
                break
        except grpc.RpcError as e:  # NOT_FOUND until the ledger's first checkpoint.
            expect(e.code() == grpc.StatusCode.NOT_FOUND, f"GetCheckpoint: {e.code()}")
        expect(time.time() < deadline, "no checkpoint covers the new entries within 10 s")
        time.sleep(0.2)
    c = checkpoint.checkpoint
    print(f"  checkpoint: size {c.tree_size}, root {c.root_hash.hex()[:16]}..., "
          f"key {c.key_id}")
    proof = stub.GetInclusionProof(audit_pb2.GetInclusionProofRequest(
        ledger=ledger, request_id=f"demo-{run_id}-2", tree_size=c.tree_size), timeout=TIMEOUT)
    ok = verify_inclusion(proof.entry.leaf_hash, proof.entry.index, c.tree_size,
                          list(proof.proof), c.root_hash)
    print(f"  inclusion proof of #{proof.entry.index} ({len(proof.proof)} hashes) checked "
          f"here against the signed root: {'valid' if ok else 'INVALID'}")
    expect(ok, "the inclusion proof verifies")
    report = stub.VerifyLedger(audit_pb2.VerifyLedgerRequest(ledger=ledger),
                               timeout=TIMEOUT).report
    print(f"  ledger verification: valid={report.valid}, {report.entries_checked} entries, "
          f"{report.checkpoints_checked} checkpoints")
    expect(report.valid, f"the ledger verifies ({report.problem})")
    # The keys service records its key lifecycle events in the ledger by itself.
    key_ledger = audit_pb2.LedgerRef(project=PROJECT, environment="development")
    key_actions = {audit_pb2.ACTION_KEY_CREATED, audit_pb2.ACTION_KEY_ROTATED,
                   audit_pb2.ACTION_KEY_REVOKED, audit_pb2.ACTION_KEY_OVERLAP_ENDED}
    deadline = time.time() + 10
    while True:
        since = timestamp_pb2.Timestamp()
        since.FromSeconds(int(STARTED))
        page = stub.QueryEntries(audit_pb2.QueryEntriesRequest(
            ledger=key_ledger, start_time=since, page_size=1000, requested_by="demo-auditor"),
            timeout=TIMEOUT)
        counts = {}
        for e in page.entries:
            if e.action in key_actions:
                name = audit_pb2.Action.Name(e.action).removeprefix("ACTION_").lower()
                counts[name] = counts.get(name, 0) + 1
        if "key_revoked" in counts or time.time() > deadline:
            break
        time.sleep(0.2)
    expect("key_created" in counts and "key_revoked" in counts,
           f"the keys demo's lifecycle events are in the {PROJECT} ledger ({counts})")
    print(f"  key lifecycle events recorded by the keys service in {PROJECT}/development: "
          + ", ".join(f"{n} x{c}" for n, c in sorted(counts.items())))
    try:
        stub.Append(audit_pb2.AppendRequest(entry=audit_pb2.EntryInput(
            action=audit_pb2.ACTION_API_CALL, actor="svc", project="proj-prod",
            environment="prod")), timeout=TIMEOUT)
        raise DemoError("an unknown environment must be refused")
    except grpc.RpcError as e:
        expect(e.code() == grpc.StatusCode.INVALID_ARGUMENT, f"got {e.code()}")
        print(f"  refused: {e.code().name}: {e.details()}")
    channel.close()


# The seed's regions, and a second EU endpoint to fail over to.
DEMO_ENDPOINTS = [
    # id, residency, provider, priority, zero data retention + private link, cached
    ("demo-westeurope", "EU", "AZURE", 1, True, False),
    ("demo-swedencentral", "EU", "AZURE", 2, True, False),
    ("demo-eastus", "US", "AZURE", 1, True, False),
    ("demo-japaneast", "APAC", "AZURE", 2, False, False),
    ("demo-openai-global", "GLOBAL", "OPENAI", 3, False, False),
]


def run_region(address):
    """Residency-aware routing: the seed's regions, a failover inside the EU, a block."""
    print("\n=== region: where each request may go ===")
    channel = grpc.insecure_channel(address)
    expect(health(channel) == "SERVING", f"region at {address} is not SERVING")
    stub = region_pb2_grpc.RegionServiceStub(channel)
    R = region_pb2
    # A fresh registry for the demo: deleting an endpoint drops its breaker state.
    for id_, residency, provider, priority, private, cached in DEMO_ENDPOINTS:
        try:
            stub.DeleteEndpoint(R.DeleteEndpointRequest(id=id_, actor=DEMO_ACTOR),
                                timeout=TIMEOUT)
        except grpc.RpcError as e:
            expect(e.code() == grpc.StatusCode.NOT_FOUND, f"DeleteEndpoint: {e.code()}")
        region = id_.removeprefix("demo-")
        stub.CreateEndpoint(R.CreateEndpointRequest(actor=DEMO_ACTOR, endpoint=R.Endpoint(
            id=id_, region=region,
            provider=R.Provider.Value(f"PROVIDER_{provider}"),
            base_url=("https://api.openai.com/v1" if provider == "OPENAI"
                      else f"https://myorg-{region}.openai.azure.com"),
            deployment="" if provider == "OPENAI" else "gpt-4-1",
            residency=R.Residency.Value(f"RESIDENCY_{residency}"),
            capabilities=R.Capabilities(zero_data_retention=private, private_link=private,
                                        cached=cached),
            models=["gpt-4.1-demo"], priority=priority, weight=100, enabled=True)),
            timeout=TIMEOUT)
    print(f"  registered {len(DEMO_ENDPOINTS)} endpoints (eu x2, us, apac, global)")

    def route(residency, data_class, label):
        r = stub.Route(R.RouteRequest(residency=residency, data_class=data_class,
                                      model="gpt-4.1-demo"), timeout=TIMEOUT)
        where = r.endpoint.id if r.decision == R.DECISION_ROUTED else "BLOCKED"
        print(f"  {label:<44} -> {where}{' (failover)' if r.failover else ''}")
        return r

    eu = route(R.RESIDENCY_EU, pii_pb2.DATA_CLASS_PII, "EU customer data with PII (GDPR)")
    expect(eu.endpoint.id == "demo-westeurope", f"EU PII went to {eu.endpoint.id}")
    us = route(R.RESIDENCY_US, pii_pb2.DATA_CLASS_PHI, "US patient notes (PHI, HIPAA)")
    expect(us.endpoint.id == "demo-eastus", f"US PHI went to {us.endpoint.id}")
    for _ in range(3):  # westeurope fails three times in a row: its breaker opens.
        state = stub.ReportOutcome(R.ReportOutcomeRequest(
            endpoint_id="demo-westeurope", success=False, status=503),
            timeout=TIMEOUT).breaker_state
    print(f"  westeurope reported 503 three times: breaker {R.BreakerState.Name(state)}")
    failover = route(R.RESIDENCY_EU, pii_pb2.DATA_CLASS_PII, "EU customer data with PII again")
    expect(failover.endpoint.id == "demo-swedencentral" and failover.failover,
           "the EU request fails over inside the EU")
    apac = route(R.RESIDENCY_APAC, pii_pb2.DATA_CLASS_PII, "APAC data with PII")
    expect(apac.decision == R.DECISION_BLOCKED, "APAC PII has no compliant endpoint")
    print(f"    {apac.reason}")
    public = route(R.RESIDENCY_UNSPECIFIED, pii_pb2.DATA_CLASS_PUBLIC, "public data, anywhere")
    expect(public.decision == R.DECISION_ROUTED, "public data is routed")
    report = stub.GetHealthReport(R.GetHealthReportRequest(), timeout=TIMEOUT)
    print(f"  health report: {report.requests} requests, {report.failovers} failovers "
          f"({report.failover_rate:.0%}), {report.blocked} blocked")
    rows = [(e.endpoint.id, R.Residency.Name(e.endpoint.residency).removeprefix("RESIDENCY_"),
             R.BreakerState.Name(e.breaker_state).removeprefix("BREAKER_STATE_"),
             str(e.routed), str(e.failures))
            for e in report.endpoints if e.endpoint.id.startswith("demo-")]
    print_table(rows, ("endpoint", "residency", "breaker", "routed", "failures"))
    channel.close()


EDGE_ENDPOINTS = (  # id, residency, priority, cached (else zero data retention + private link)
    ("edge-demo-cache", "GLOBAL", 1, True),  # public data only: preferred where it may go
    ("edge-demo-westeurope", "EU", 2, False),
    ("edge-demo-swedencentral", "EU", 3, False),
    ("edge-demo-eastus", "US", 2, False),
)
TICKET = ("Customer jane.doe@example.com (card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 "
          "0130 00) was charged twice. Draft a polite answer.")


def reusable_admin_key(keys, admin_key_file):
    """The admin key in `admin_key_file` when it is alice's (a member), active (not rotating
    away) and still verifies with a day left; else None."""
    try:
        with open(admin_key_file) as f:
            secret = f.read().strip()
        key = keys.VerifyKey(keys_pb2.VerifyKeyRequest(secret=secret.encode()),
                             timeout=TIMEOUT).key
    except (OSError, ValueError, grpc.RpcError):  # Unreadable, not text, or not a valid key.
        return None
    left = key.expire_time.seconds - time.time()
    alices = (key.owner.type == keys_pb2.PRINCIPAL_TYPE_MEMBER and key.owner.id == "alice" and
              key.kind == keys_pb2.KEY_KIND_ADMIN and "admin" in key.scopes)
    if not alices or key.state != keys_pb2.KEY_STATE_ACTIVE or left < 86400:
        return None
    return secret


def run_edge(edge_address, keys_address, region_address, admin_key_file=None):
    """The decision flow end to end: allowed with PII redacted and EU routing, refusals, a
    rate limit, and the ledger that recorded them verifying."""
    print("\n=== edge: one decision before a prompt leaves ===")
    channel = grpc.insecure_channel(edge_address)
    expect(health(channel) == "SERVING", f"edge at {edge_address} is not SERVING")
    edge = edge_pb2_grpc.EdgeServiceStub(channel)
    region = region_pb2_grpc.RegionServiceStub(grpc.insecure_channel(region_address))
    R = region_pb2
    for id_, residency, priority, cached in EDGE_ENDPOINTS:
        try:
            region.DeleteEndpoint(R.DeleteEndpointRequest(id=id_, actor=DEMO_ACTOR),
                                  timeout=TIMEOUT)
        except grpc.RpcError as e:
            expect(e.code() == grpc.StatusCode.NOT_FOUND, f"DeleteEndpoint: {e.code()}")
        name_ = id_.removeprefix("edge-demo-")
        region.CreateEndpoint(R.CreateEndpointRequest(actor=DEMO_ACTOR, endpoint=R.Endpoint(
            id=id_, region=name_, provider=R.PROVIDER_AZURE,
            base_url=f"https://acme-{name_}.openai.azure.com", deployment="gpt-4o",
            residency=R.Residency.Value(f"RESIDENCY_{residency}"),
            capabilities=R.Capabilities(zero_data_retention=not cached,
                                        private_link=not cached, cached=cached),
            models=["gpt-4o", "gpt-4o-mini"], priority=priority, weight=100, enabled=True)),
            timeout=TIMEOUT)
    keys = keys_pb2_grpc.KeyServiceStub(grpc.insecure_channel(keys_address))

    def key(owner, project, environment):
        return keys.CreateKey(keys_pb2.CreateKeyRequest(
            request_id=str(uuid.uuid4()), kind=keys_pb2.KEY_KIND_PROJECT,
            owner=keys_pb2.Principal(type=keys_pb2.PRINCIPAL_TYPE_MEMBER, id=owner),
            project=project, environment=environment, scopes=["chat.completions"]),
            timeout=TIMEOUT).secret

    bob = key("bob", "support-eu", keys_pb2.ENVIRONMENT_PRODUCTION)

    def decide(secret, text, model="gpt-4o", residency=R.RESIDENCY_UNSPECIFIED, tokens=400,
               **kw):
        return edge.Decide(edge_pb2.DecideRequest(
            api_key=secret.encode(), source_ip="10.20.1.7", model=model,
            messages=[pii_pb2.ChatMessage(role="user", content=text.encode())],
            estimated_tokens=tokens, residency=residency, **kw), timeout=TIMEOUT)

    def line(label, r):
        verdict = edge_pb2.Verdict.Name(r.verdict).removeprefix("VERDICT_")
        detail = r.endpoint.id if r.verdict == edge_pb2.VERDICT_ALLOW else r.reason
        print(f"  {label:<46} {verdict:<5} {detail}  (ledger {r.audit_id})")

    allowed = decide(bob, TICKET)
    line("bob, support ticket (support-eu keeps to the EU)", allowed)
    expect(allowed.verdict == edge_pb2.VERDICT_ALLOW, f"the ticket was refused: {allowed.reason}")
    expect(allowed.endpoint.id == "edge-demo-westeurope", f"went to {allowed.endpoint.id}")
    sent = allowed.messages[0].content.decode()
    expect("jane.doe@example.com" not in sent and "4111" not in sent, "PII left the edge")
    print(f"    sent: {sent}")
    print(f"    headers: {dict(sorted(allowed.headers.items()))}")
    off_list = decide(bob, "Summarise the ticket.", model="o3-mini")
    line("bob asks for o3-mini (not on the allowlist)", off_list)
    expect(off_list.reason == "MODEL_NOT_ALLOWED", f"o3-mini: {off_list.reason}")
    secret = decide(bob, "boto says AKIAIOSFODNN7EXAMPLE is invalid, why?")
    line("bob pastes an AWS access key", secret)
    expect(secret.reason == "PII_BLOCKED", f"the AWS key: {secret.reason}")
    apac = decide(bob, TICKET, residency=R.RESIDENCY_APAC)
    line("the ticket, asking for APAC residency", apac)
    expect(apac.reason == "RESIDENCY_NOT_ALLOWED", f"APAC: {apac.reason}")
    erin = key("erin", "internal-copilot", keys_pb2.ENVIRONMENT_DEVELOPMENT)
    log_line = "Why does 10.20.3.4 refuse connections? ops@acme.example says the port is open."
    own_rules = decide(erin, log_line)
    line("erin, a log line (internal-copilot's own rules)", own_rules)
    expect(own_rules.verdict == edge_pb2.VERDICT_ALLOW, f"the log line: {own_rules.reason}")
    sent = own_rules.messages[0].content.decode()
    expect("10.20.3.4" in sent and "ops@acme.example" not in sent,
           f"internal-copilot's IP_ADDRESS: allow was not applied: {sent}")
    print(f"    sent: {sent}")
    # The playground's prompts are public data (data_class: public): a cache may answer one in
    # which pii finds nothing.
    alice = key("alice", "playground", keys_pb2.ENVIRONMENT_SANDBOX)
    public = decide(alice, "Explain what a haiku is.", model="gpt-4o-mini", tokens=10)
    line("alice, a public prompt in the playground", public)
    expect(public.verdict == edge_pb2.VERDICT_ALLOW and public.endpoint.id == "edge-demo-cache",
           f"the playground's public prompt went to {public.endpoint.id or public.reason}")
    print(f"    data class {pii_pb2.DataClass.Name(public.data_class)}, zero data retention "
          f"{public.headers['x-policy-zero-data-retention']}")
    carol = key("carol", "playground", keys_pb2.ENVIRONMENT_SANDBOX)
    limited = None
    for i in range(15):  # playground: 10 requests a minute per member
        r = decide(carol, "Say hello.", model="gpt-4o-mini", tokens=10)
        if r.verdict == edge_pb2.VERDICT_DENY:
            limited = r
            break
    expect(limited is not None and limited.reason == "RATE_LIMITED",
           "carol never ran into the playground's rate limit")
    line(f"carol's request #{i + 1} in the playground", limited)
    print(f"    retry after {limited.retry_after.seconds + limited.retry_after.nanos / 1e9:.1f} s")
    try:
        decide("psk_proj_" + "A" * 66, TICKET)
        raise DemoError("a forged key was accepted")
    except grpc.RpcError as e:
        expect(e.code() == grpc.StatusCode.UNAUTHENTICATED, f"forged key: {e.code()}")
        print(f"  {'a forged key':<46} {e.code().name}: {e.details()}")

    # The same decision as Envoy's ext_authz filter asks for it.
    envoy = external_auth_pb2_grpc.AuthorizationStub(channel)
    X = external_auth_pb2

    def envoy_check(body):
        return envoy.Check(X.CheckRequest(attributes=X.AttributeContext(
            source=X.AttributeContext.Peer(address={"socket_address": {"address": "10.20.1.7"}}),
            request=X.AttributeContext.Request(http=X.AttributeContext.HttpRequest(
                method="POST", path="/v1/chat/completions", body=body,
                headers={"authorization": f"Bearer {bob}", "x-policy-residency": "eu"})))),
            timeout=TIMEOUT)

    clean = ('{"model": "gpt-4o", "max_tokens": 200, "messages": '
             '[{"role": "user", "content": "Summarise our refund policy."}]}')
    ok = envoy_check(clean)
    upstream = {h.header.key: h.header.value for h in ok.ok_response.headers}
    expect(ok.status.code == 0, f"Envoy check refused: {ok}")
    print(f"  {'Envoy ext_authz, a clean prompt':<46} OK    upstream headers "
          f"x-policy-endpoint={upstream.get('x-policy-endpoint')}")
    pii_body = clean.replace("our refund policy", "the ticket of jane.doe@example.com")
    refused = envoy_check(pii_body)
    expect(refused.denied_response.status.code == 403, "Envoy: PII was not refused")
    print(f"  {'Envoy ext_authz, a prompt with an e-mail':<46} HTTP {refused.denied_response.status.code} "
          f"{refused.denied_response.body}")

    # Administration: an owner's admin key (the first comes from the keys service itself); the
    # one an earlier run left while it still verifies, so that runs do not pile keys up.
    reused = reusable_admin_key(keys, admin_key_file) if admin_key_file else None
    alice = reused or keys.CreateKey(keys_pb2.CreateKeyRequest(
        request_id=str(uuid.uuid4()), kind=keys_pb2.KEY_KIND_ADMIN,
        owner=keys_pb2.Principal(type=keys_pb2.PRINCIPAL_TYPE_MEMBER, id="alice"),
        environment=keys_pb2.ENVIRONMENT_PRODUCTION, scopes=["admin"]), timeout=TIMEOUT).secret
    if reused:
        print(f"  admin: alice's admin key of an earlier run, still valid, in {admin_key_file}")
    elif admin_key_file:
        # For the operator's policyctl: readable by its owner alone, written whole or not at all.
        partial = f"{admin_key_file}.tmp"
        with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(alice + "\n")
        os.replace(partial, admin_key_file)
        print(f"  admin: an owner's admin key (alice) for policyctl in {admin_key_file}")
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    as_alice = (("authorization", f"Bearer {alice}"),)
    bob_key = keys.VerifyKey(keys_pb2.VerifyKeyRequest(secret=bob.encode()), timeout=TIMEOUT).key
    rotated = admin.RotateKey(keys_pb2.RotateKeyRequest(
        request_id=str(uuid.uuid4()), key_id=bob_key.key_id, overlap={"seconds": 3600}),
        metadata=as_alice, timeout=TIMEOUT)
    both = [decide(secret, "Say hello.").verdict for secret in (bob, rotated.secret)]
    expect(both == [edge_pb2.VERDICT_ALLOW] * 2, "both keys decide during the overlap")
    print(f"  admin: alice rotated bob's key {bob_key.key_id} -> {rotated.new_key.key_id}; "
          "both decide during the 1 h overlap")
    admin.RevokeKey(keys_pb2.RevokeKeyRequest(key_id=bob_key.key_id, reason="rotated"),
                    metadata=as_alice, timeout=TIMEOUT)
    try:
        decide(bob, "Say hello.")
        raise DemoError("a revoked key still decides")
    except grpc.RpcError as e:
        expect(e.code() == grpc.StatusCode.UNAUTHENTICATED, f"revoked key: {e.code()}")
    print("  admin: the old key revoked; it no longer decides (UNAUTHENTICATED)")

    for project, environment in (("support-eu", "production"), ("playground", "sandbox")):
        report = admin.VerifyLedger(audit_pb2.VerifyLedgerRequest(ledger=audit_pb2.LedgerRef(
            project=project, environment=environment)), metadata=as_alice, timeout=60).report
        expect(report.valid, f"ledger {project}/{environment} does not verify: {report}")
        print(f"  ledger {project}/{environment}: {report.entries_checked} entries verified")
    summary = admin.GetComplianceSummary(audit_pb2.GetComplianceSummaryRequest(
        ledger=audit_pb2.LedgerRef(project="support-eu", environment="production")),
        metadata=as_alice, timeout=60)
    print(f"  compliance summary support-eu/production: {summary.total_entries} entries, "
          f"{summary.policy_violations} policy violations, "
          f"{summary.action_breakdown.get('decision_allow', 0)} allowed, "
          f"{summary.action_breakdown.get('decision_deny', 0)} denied")
    expect(summary.allowed_by_residency.get("eu", 0) > 0, "no allowed call kept to the EU")

    def counts(breakdown):
        return ", ".join(f"{name} {count}" for name, count in sorted(breakdown.items()))

    print(f"    allowed calls by region: {counts(summary.allowed_by_region)}; by residency: "
          f"{counts(summary.allowed_by_residency)}; by data class: "
          f"{counts(summary.allowed_by_data_class)}")
    print(f"    denials by reason: {counts(summary.denials_by_reason)}")
    copilot = admin.GetComplianceSummary(audit_pb2.GetComplianceSummaryRequest(
        ledger=audit_pb2.LedgerRef(project="internal-copilot", environment="development")),
        metadata=as_alice, timeout=60)
    expect(copilot.pii_allowed_by_type.get("IP_ADDRESS", 0) > 0,
           "the host address internal-copilot let through is not accounted for")
    print("  compliance summary internal-copilot/development: sent as is under its own PII "
          f"rule: {counts(copilot.pii_allowed_by_type)}")
    channel.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", default="127.0.0.1:50051", help="keys gRPC host:port")
    parser.add_argument("--metrics", default="127.0.0.1:9451", help="keys metrics host:port")
    parser.add_argument("--authz", default="127.0.0.1:50052", help="authz gRPC host:port")
    parser.add_argument("--pii", default="127.0.0.1:50053", help="pii gRPC host:port")
    parser.add_argument("--region", default="127.0.0.1:50054", help="region gRPC host:port")
    parser.add_argument("--audit", default="127.0.0.1:50055", help="audit gRPC host:port")
    parser.add_argument("--edge", default="127.0.0.1:50056", help="edge gRPC host:port")
    parser.add_argument("--admin_key_file", help="where to write an owner's admin key (alice)")
    args = parser.parse_args()
    try:
        run(args.keys, args.metrics)
        run_authz(args.authz)
        run_pii(args.pii)
        run_region(args.region)
        run_audit(args.audit)
        run_edge(args.edge, args.keys, args.region, args.admin_key_file)
    except DemoError as e:
        print(f"demo FAILED: {e}", file=sys.stderr)
        return 1
    except grpc.RpcError as e:
        print(f"demo FAILED: RPC error {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"demo FAILED: {e}", file=sys.stderr)
        return 1
    print("demo OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
