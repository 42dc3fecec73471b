"""Helpers for the audit service's process tests: starting audit, building entries, and an
independent Python re-implementation of what a client verifies (RFC 6962 / RFC 9162 Merkle
trees and proofs, the entry's leaf encoding, the signed checkpoint note).

Nothing here trusts the service: leaf hashes are recomputed from an entry's fields
(services/audit/entry.cc EncodeLeafData), roots from the leaves, proofs are checked as RFC 9162
section 2.1.3.2 / 2.1.4.2 says, and checkpoint notes are rebuilt from their fields
(services/audit/checkpoint.h) before their Ed25519 signature is checked. The signature check
needs Debian's python3-cryptography; HAVE_CRYPTOGRAPHY says whether it is importable.
"""

import hashlib
import json
import secrets as _secrets
import struct

from tests.support import policy_testing as pt

import grpc
from google.protobuf import json_format
from policy.audit.v1 import audit_pb2, audit_pb2_grpc

try:  # Debian's python3-cryptography, when installed; never installed by the tests.
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    HAVE_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - depends on the machine
    HAVE_CRYPTOGRAPHY = False

SERVICE_NAME = "policy.audit.v1.AuditService"

# The domain's action names, in the proto enum's order (value = position + 1).
ACTION_NAMES = [
    "api_call", "key_created", "key_rotated", "key_revoked", "model_changed",
    "policy_violation", "pii_detected", "rate_limited", "fallback_triggered",
    "decision_allow", "decision_deny", "member_added", "member_removed",
    "member_role_changed", "project_created", "project_changed", "project_deleted",
    "key_overlap_ended", "audit_read", "subject_forgotten", "subject_access_exported",
    "service_account_created", "service_account_removed", "endpoint_changed",
    "invitation_changed", "org_file_applied", "service_account_changed",
    "idp_group_changed", "member_erased",
]
OUTCOME_NAMES = {audit_pb2.OUTCOME_SUCCESS: "success", audit_pb2.OUTCOME_ERROR: "error",
                 audit_pb2.OUTCOME_BLOCKED: "blocked"}
LEAF_TAG = b"policy-suite/audit/entry/v1"

# Codes after which an append may be retried with the same request id.
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                       grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED,
                       grpc.StatusCode.CANCELLED})


# ---------------------------------------------------------------------------
# Processes.
# ---------------------------------------------------------------------------


def new_keys():
    """(signing_key, subject_key): an Ed25519 seed as 64 hex digits and a 64-character master key.

    Replicas of one database must share both: the subject key finds the subjects' keys, the
    signing key signs the checkpoints every replica verifies."""
    return _secrets.token_hex(32), _secrets.token_hex(32)


def audit_env(database_url, keys):
    signing_key, subject_key = keys
    env = {"POLICY_AUDIT_SIGNING_KEY": signing_key, "POLICY_AUDIT_SUBJECT_KEY": subject_key}
    if database_url is not None:
        env["POLICY_AUDIT_DATABASE_URL"] = database_url
    return env


def start_audit(database_url, keys, name="audit", **flags):
    """A running (ready) audit process on `database_url`; store=memory when it is None."""
    if database_url is None:
        flags.setdefault("store", "memory")
    flags.setdefault("checkpoint_interval", "100ms")
    flags.setdefault("health_interval", "100ms")
    process = pt.ServiceProcess(pt.service_binary("audit"), flags=flags,
                                env=audit_env(database_url, keys), name=name)
    return process.start()


def wait_serving(process, timeout=10):
    """Waits until `process` reports health SERVING (for "" and for the audit service)."""
    try:
        pt.wait_until(lambda: pt.health_status(process.channel) == "SERVING"
                      and pt.health_status(process.channel, SERVICE_NAME) == "SERVING",
                      timeout=timeout, message=f"{process.name} health SERVING",
                      ignore=(grpc.RpcError,))
    except AssertionError as e:
        raise AssertionError(f"{e}\n{process.log_tail()}") from None
    return process


def start_serving(database_url, keys, name="audit", **flags):
    process = start_audit(database_url, keys, name=name, **flags)
    try:
        return wait_serving(process)
    except BaseException:
        process.cleanup()
        raise


def start_serving_on_a_free_port(database_url, keys, name="audit"):
    """start_serving on a free port of 127.0.0.1 (its `address`), for a process that must be
    told audit's address before it starts; a port taken before audit bound it is replaced."""
    for attempt in range(5):
        try:
            return start_serving(database_url, keys, name, listen=f"127.0.0.1:{pt.free_port()}")
        except AssertionError:
            if attempt == 4:
                raise


def stub(process_or_channel):
    channel = getattr(process_or_channel, "channel", process_or_channel)
    return audit_pb2_grpc.AuditServiceStub(channel)


# ---------------------------------------------------------------------------
# Requests.
# ---------------------------------------------------------------------------


def ledger(project="", environment=""):
    return audit_pb2.LedgerRef(project=project, environment=environment)


def ledger_of(entry):
    return audit_pb2.LedgerRef(project=entry.project, environment=entry.environment)


def entry_input(project, environment="production", action=audit_pb2.ACTION_API_CALL,
                actor="svc-test", **fields):
    return audit_pb2.EntryInput(action=action, actor=actor, project=project,
                                environment=environment, **fields)


def append(stub_, entry, timeout=10, **kwargs):
    return stub_.Append(audit_pb2.AppendRequest(entry=entry), timeout=timeout, **kwargs)


def export_chunks(stub_, ledger_ref, from_index=0, requested_by="auditor@test", timeout=60):
    """Every ExportEntriesResponse of one export stream, in order."""
    return list(stub_.ExportEntries(audit_pb2.ExportEntriesRequest(
        ledger=ledger_ref, from_index=from_index, requested_by=requested_by), timeout=timeout))


def parse_jsonl(data):
    """A chunk's JSON lines as (dict, audit_pb2.Entry) pairs; AssertionError for a chunk
    that is not whole lines of entries."""
    text = data.decode("utf-8")
    if not text.endswith("\n"):
        raise AssertionError(f"a chunk does not end with a whole line: ...{text[-80:]!r}")
    out = []
    for line in text[:-1].split("\n"):
        parsed = json.loads(line)
        entry = json_format.Parse(line, audit_pb2.Entry())
        out.append((parsed, entry))
    return out


def export_entries(stub_, ledger_ref, from_index=0, requested_by="auditor@test"):
    """The ledger's entries from `from_index` on, through ExportEntries (typed)."""
    entries = []
    for chunk in export_chunks(stub_, ledger_ref, from_index, requested_by):
        entries.extend(e for _, e in parse_jsonl(chunk.jsonl))
    return entries


def wait_checkpoint(stub_, ledger_ref, min_size, timeout=15):
    """The newest GetCheckpointResponse once its tree_size is at least `min_size`."""
    def newest():
        try:
            r = stub_.GetCheckpoint(audit_pb2.GetCheckpointRequest(ledger=ledger_ref), timeout=5)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                raise
            return None
        return r if r.checkpoint.tree_size >= min_size else None
    return pt.wait_until(newest, timeout=timeout,
                         message=f"a checkpoint of {min_size}+ entries")


# ---------------------------------------------------------------------------
# Merkle trees (RFC 6962 section 2.1, RFC 9162 section 2.1), independent of the service.
# ---------------------------------------------------------------------------


def sha256(data):
    return hashlib.sha256(data).digest()


def leaf_hash(leaf_data):
    return sha256(b"\x00" + leaf_data)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


def _split(n):
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves):
    """MTH(D[n]) over leaf hashes (RFC 9162 2.1.1)."""
    n = len(leaves)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return leaves[0]
    k = _split(n)
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


class RootCache:
    """MTH of prefixes of a list of leaf hashes, memoising perfect subtrees: O(n) once."""

    def __init__(self, leaves):
        self.leaves = leaves
        self._perfect = {}

    def perfect(self, start, size):  # size a power of two
        key = (start, size)
        if key not in self._perfect:
            if size == 1:
                self._perfect[key] = self.leaves[start]
            else:
                half = size // 2
                self._perfect[key] = node_hash(self.perfect(start, half),
                                               self.perfect(start + half, half))
        return self._perfect[key]

    def root(self, start, n):
        if n == 0:
            return sha256(b"")
        if n & (n - 1) == 0:
            return self.perfect(start, n)
        k = _split(n)
        return node_hash(self.perfect(start, k), self.root(start + k, n - k))


def completed_hashes(cache, index):
    """The hashes of the perfect subtrees leaf `index` completes, level 1 upward (merkle.h)."""
    out, level = [], 1
    while (index + 1) % (1 << level) == 0:
        size = 1 << level
        out.append(cache.perfect(index + 1 - size, size))
        level += 1
    return b"".join(out)


def verify_inclusion(leaf, index, size, proof, root):
    """RFC 9162 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, first_hash, second_hash, proof):
    """RFC 9162 2.1.4.2 (equal sizes: an empty proof and equal roots)."""
    proof = list(proof)
    if first == 0 or first > second:
        return False
    if first == second:
        return not proof and first_hash == second_hash
    if not proof:
        return False
    if first & (first - 1) == 0:
        proof.insert(0, first_hash)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_hash and sr == second_hash and sn == 0


# ---------------------------------------------------------------------------
# Entries and checkpoints.
# ---------------------------------------------------------------------------


def _u64(v):
    return struct.pack(">Q", v & 0xFFFFFFFFFFFFFFFF)


def _bytes(b):
    if isinstance(b, str):
        b = b.encode()
    return _u64(len(b)) + b


def micros(timestamp_or_duration):
    return timestamp_or_duration.seconds * 1_000_000 + timestamp_or_duration.nanos // 1000


def encode_metadata(metadata):
    items = sorted(((k.encode(), v.encode()) for k, v in metadata.items()))
    return _u64(len(items)) + b"".join(_bytes(k) + _bytes(v) for k, v in items)


def encode_leaf_data(e):
    """services/audit/entry.cc EncodeLeafData, from a stored audit_pb2.Entry."""
    return b"".join([
        _bytes(LEAF_TAG), _bytes(e.ledger.project), _bytes(e.ledger.environment),
        _u64(e.index), _u64(micros(e.time)), _bytes(ACTION_NAMES[e.action - 1]),
        _bytes(e.actor_ref), _bytes(e.actor_sealed), _bytes(e.model), _u64(e.tokens),
        _u64(micros(e.latency)), _bytes(OUTCOME_NAMES[e.outcome]),
        _bytes(encode_metadata(e.metadata)), _bytes(e.content_hash), _bytes(e.request_id),
        _bytes(e.subject_ref), _bytes(e.subject_sealed)])


def entry_leaf_hash(e):
    return leaf_hash(encode_leaf_data(e))


def checkpoint_note(c):
    """The signed text of a checkpoint, rebuilt from its fields (checkpoint.h)."""
    return (f"policy-suite audit checkpoint v1\n"
            f"ledger {c.ledger.project or '-'} {c.ledger.environment or '-'}\n"
            f"size {c.tree_size}\nroot {c.root_hash.hex()}\ntime {micros(c.time)}\n")


def key_id_of(public_key):
    return hashlib.sha256(public_key).hexdigest()[:16]


def signature_valid(c, public_key):
    """Whether the Ed25519 signature of the rebuilt note verifies under `public_key`.
    Requires HAVE_CRYPTOGRAPHY."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            c.signature, checkpoint_note(c).encode())
        return True
    except InvalidSignature:
        return False
