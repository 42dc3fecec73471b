"""Process-level tests of the audit service: real audit binaries, real PostgreSQL, gRPC.

One database per module (t_audit_process_<pid>_<n>) shared by two replicas with the same
signing and subject keys:

  MAIN     the process most tests talk to (checkpoints signed every 100 ms);
  REPLICA  a second replica on the same database (concurrent appends to one ledger).

Tests keep out of each other's way with a ledger (project) and identifiers of their own;
the organisation's ledger is shared, so tests only look at the entries they made there.
What a client can check is checked here, in Python, without trusting the service: leaf
hashes from the entries' fields, roots from the leaves, RFC 9162 inclusion and consistency
proofs, the checkpoint note and (with Debian's python3-cryptography) its Ed25519 signature.

Needs POLICY_TEST_PG_URL (a role with CREATEDB, and the policy_audit_writer role granted to
it, as `tools/dev pg` sets up); skips without it, or fails when POLICY_TEST_REQUIRE_PG=1.
Run: /usr/bin/python3 -m unittest -v tests.audit.test_audit_process
"""

import base64
import contextlib
import hashlib
import sys
import threading
import time
import unittest
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.audit import audit_support as aus  # noqa: E402
from tests.support import policy_testing as pt  # noqa: E402

import grpc  # noqa: E402
from google.protobuf import duration_pb2, timestamp_pb2  # noqa: E402
from policy.audit.v1 import audit_pb2  # noqa: E402

C = grpc.StatusCode
A = audit_pb2
ORG = A.LedgerRef()

# Set up by setUpModule.
PG_URL = None
DB = None
KEYS = None
MAIN = REPLICA = None
_stack = None


def setUpModule():
    global PG_URL, DB, KEYS, MAIN, REPLICA, _stack
    PG_URL = pt.require_pg_url()
    pt.service_binary("audit")
    _stack = contextlib.ExitStack()
    try:
        DB = _stack.enter_context(pt.test_database(PG_URL, "audit_process"))
        KEYS = aus.new_keys()
        MAIN = aus.start_serving(DB.url, KEYS, "audit-main")
        _stack.callback(MAIN.cleanup)
        REPLICA = aus.start_serving(DB.url, KEYS, "audit-replica")
        _stack.callback(REPLICA.cleanup)
    except BaseException:
        _stack.close()
        raise


def tearDownModule():
    processes = [p for p in (MAIN, REPLICA) if p is not None]
    try:
        with ThreadPoolExecutor(len(processes) or 1) as pool:
            codes = list(pool.map(lambda p: (p, p.terminate()), processes))
        bad = [f"{p.name}: exit {code}\n{p.log_tail()}" for p, code in codes if code != 0]
        if bad:
            raise AssertionError("audit processes did not exit 0 on SIGTERM:\n" + "\n".join(bad))
    finally:
        _stack.close()


def uid():
    return uuid.uuid4().hex[:10]


def checkpoint_sizes(ledger):
    """The tree sizes of the ledger's stored checkpoints, ascending (straight from the table)."""
    rows = DB.rows(
        "SELECT c.tree_size FROM audit.checkpoints c JOIN audit.ledgers l ON l.id = c.ledger_id "
        f"WHERE l.project = '{ledger.project}' AND l.environment = '{ledger.environment}' "
        "ORDER BY 1")
    return [int(size) for (size,) in rows]


def ts(micros):
    t = timestamp_pb2.Timestamp()
    t.FromMicroseconds(micros)
    return t


def dur(micros):
    d = duration_pb2.Duration()
    d.FromMicroseconds(micros)
    return d


class AuditTestCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.audit = aus.stub(MAIN)
        self.u = uid()

    def assertRpcError(self, code, fn, *args, **kwargs):
        error = pt.call_error(fn, *args, **kwargs)
        self.assertEqual(error.code(), code, f"{error.code()}: {error.details()}")
        return error

    def append(self, entry, stub=None, **kwargs):
        return aus.append(stub or self.audit, entry, **kwargs)

    def query(self, ledger, requested_by="auditor@test", stub=None, **kwargs):
        return (stub or self.audit).QueryEntries(
            A.QueryEntriesRequest(ledger=ledger, requested_by=requested_by, **kwargs), timeout=10)

    def query_all(self, ledger, page_size=100, **kwargs):
        """Every page of a query: (entries, number of pages)."""
        entries, token, pages = [], "", 0
        while True:
            page = self.query(ledger, page_size=page_size, page_token=token, **kwargs)
            pages += 1
            entries.extend(page.entries)
            token = page.next_page_token
            if not token:
                return entries, pages
            self.assertLess(pages, 10000, "pagination does not end")

    def verify(self, ledger, stub=None):
        return (stub or self.audit).VerifyLedger(A.VerifyLedgerRequest(ledger=ledger),
                                                 timeout=30).report

    def assertLedgerValid(self, ledger, stub=None, entries=None):
        report = self.verify(ledger, stub)
        self.assertTrue(report.valid, f"{report.problem} (first bad index {report.first_bad_index})")
        self.assertEqual(report.problem, "")
        if entries is not None:
            self.assertEqual(report.entries_checked, entries)
        return report

    def assertCheckpointSigned(self, response, ledger):
        """A GetCheckpointResponse's checkpoint is for `ledger` and says what it was signed for."""
        c = response.checkpoint
        self.assertEqual(c.ledger, ledger)
        self.assertEqual(len(c.root_hash), 32)
        self.assertEqual(len(response.public_key), 32)
        self.assertEqual(c.key_id, aus.key_id_of(response.public_key))
        # The note is rebuilt from the fields; the server's text must be exactly that.
        self.assertEqual(c.note, aus.checkpoint_note(c))
        self.assertEqual(len(c.signature), 64)
        if aus.HAVE_CRYPTOGRAPHY:
            self.assertTrue(aus.signature_valid(c, response.public_key), c.note)
            forged = A.Checkpoint()
            forged.CopyFrom(c)
            forged.tree_size += 1
            self.assertFalse(aus.signature_valid(forged, response.public_key))
            forged.CopyFrom(c)
            forged.root_hash = bytes([c.root_hash[0] ^ 1]) + c.root_hash[1:]
            self.assertFalse(aus.signature_valid(forged, response.public_key))

    def assertEntriesSound(self, entries, ledger):
        """Entries 0..n-1 of `ledger`, each leaf hash recomputed from its fields and each
        stored subtree hash recomputed from the leaves; returns a RootCache of the leaves."""
        self.assertEqual([e.index for e in entries], list(range(len(entries))))
        leaves = []
        for e in entries:
            self.assertEqual(e.ledger, ledger)
            leaf = aus.entry_leaf_hash(e)
            self.assertEqual(e.leaf_hash, leaf, f"entry {e.index}: leaf hash of its fields")
            leaves.append(leaf)
        cache = aus.RootCache(leaves)
        for e in entries:
            self.assertEqual(e.subtree_hashes, aus.completed_hashes(cache, e.index),
                             f"entry {e.index}: subtree hashes")
        return cache


# ---------------------------------------------------------------------------
# Append.
# ---------------------------------------------------------------------------


class AppendTest(AuditTestCase):
    def test_append_returns_entry_with_index(self):
        project = f"app-{self.u}"
        ledger = aus.ledger(project, "staging")
        content = aus.sha256(b"the prompt")
        inputs = [
            aus.entry_input(project, "staging", action=A.ACTION_DECISION_ALLOW,
                            actor=f"svc-{self.u}", model="gpt-4.1", tokens=1250,
                            latency=dur(12_345), metadata={"region": "eu-west", "b.c_1": "é"},
                            content_hash=content, request_id=f"r-{self.u}:1"),
            aus.entry_input(project, "staging", action=A.ACTION_MEMBER_ADDED,
                            actor=f"admin-{self.u}@example.com",
                            subject=f"new-{self.u}@example.com",
                            outcome=A.OUTCOME_BLOCKED),
            aus.entry_input(project, "staging", action=A.ACTION_RATE_LIMITED,
                            actor=f"svc-{self.u}", outcome=A.OUTCOME_ERROR),
        ]
        before = time.time()
        responses = [self.append(e) for e in inputs]
        after = time.time()
        self.assertEqual([r.entry.index for r in responses], [0, 1, 2])
        self.assertEqual([r.duplicate for r in responses], [False] * 3)

        first = responses[0].entry
        self.assertEqual(first.ledger, ledger)
        self.assertEqual(first.action, A.ACTION_DECISION_ALLOW)
        self.assertEqual(first.model, "gpt-4.1")
        self.assertEqual(first.tokens, 1250)
        self.assertEqual(aus.micros(first.latency), 12_345)
        self.assertEqual(first.outcome, A.OUTCOME_SUCCESS)  # unspecified is recorded as success
        self.assertEqual(dict(first.metadata), {"region": "eu-west", "b.c_1": "é"})
        self.assertEqual(first.content_hash, content)
        self.assertEqual(first.request_id, f"r-{self.u}:1")
        self.assertGreaterEqual(aus.micros(first.time), int(before * 1e6) - 2_000_000)
        self.assertLessEqual(aus.micros(first.time), int(after * 1e6) + 2_000_000)
        # Identifiers are stored as pseudonym + sealed form, and not echoed by Append.
        self.assertEqual(len(first.actor_ref), 32)
        self.assertGreater(len(first.actor_sealed), len(f"svc-{self.u}"))
        self.assertNotIn(f"svc-{self.u}".encode(), first.SerializeToString())
        self.assertEqual(first.actor, "")
        self.assertEqual((first.subject_ref, first.subject_sealed, first.subject), (b"", b"", ""))
        # The same actor has the same pseudonym; another one another.
        self.assertEqual(responses[2].entry.actor_ref, first.actor_ref)
        self.assertNotEqual(responses[1].entry.actor_ref, first.actor_ref)
        second = responses[1].entry
        self.assertEqual(second.outcome, A.OUTCOME_BLOCKED)
        self.assertEqual(len(second.subject_ref), 32)
        self.assertNotEqual(second.subject_ref, second.actor_ref)
        self.assertEqual(responses[2].entry.outcome, A.OUTCOME_ERROR)

        # The hashes returned are those of the fields returned: recomputed here.
        self.assertEqual(self.assertEntriesSound([r.entry for r in responses], ledger)
                         .root(0, 3), aus.mth([r.entry.leaf_hash for r in responses]))
        self.assertEqual(responses[1].entry.subtree_hashes,
                         aus.node_hash(first.leaf_hash, second.leaf_hash))

        # Reads reveal the identifiers while their keys exist, and return what Append did.
        stored = aus.export_entries(self.audit, ledger)
        self.assertEqual([e.index for e in stored[:3]], [0, 1, 2])
        self.assertEqual(stored[0].actor, f"svc-{self.u}")
        self.assertEqual((stored[1].actor, stored[1].subject),
                         (f"admin-{self.u}@example.com", f"new-{self.u}@example.com"))
        for r, s in zip(responses, stored):
            s.actor = s.subject = ""
            self.assertEqual(s, r.entry)

    def test_retried_append_returns_first_entry(self):
        project = f"idem-{self.u}"
        ledger = aus.ledger(project, "production")
        entry = aus.entry_input(project, actor=f"svc-{self.u}", tokens=7,
                                metadata={"k": "v"}, request_id=f"req-{self.u}")
        first = self.append(entry)
        self.assertFalse(first.duplicate)
        self.assertEqual(first.entry.index, 0)
        retry = self.append(entry)
        self.assertTrue(retry.duplicate)
        self.assertEqual(retry.entry, first.entry)  # the first entry: same index, time, hash
        # ... also when the other replica answers.
        other = self.append(entry, stub=aus.stub(REPLICA))
        self.assertTrue(other.duplicate)
        self.assertEqual(other.entry, first.entry)

        # The same request id for a different entry is refused, whatever differs.
        for field, value in (("tokens", 8), ("actor", f"svc2-{self.u}"), ("model", "m"),
                             ("action", A.ACTION_KEY_CREATED), ("outcome", A.OUTCOME_ERROR),
                             ("subject", "someone@example.com"),
                             ("content_hash", aus.sha256(b"x"))):
            different = A.EntryInput()
            different.CopyFrom(entry)
            setattr(different, field, value)
            error = self.assertRpcError(C.FAILED_PRECONDITION, self.append, different)
            self.assertIn(f"req-{self.u}", error.details(), field)
            self.assertIn("index 0", error.details(), field)
        different = A.EntryInput()
        different.CopyFrom(entry)
        different.metadata["k"] = "w"
        self.assertRpcError(C.FAILED_PRECONDITION, self.append, different)

        # Idempotency is per ledger: the same id in another ledger is another entry.
        elsewhere = A.EntryInput()
        elsewhere.CopyFrom(entry)
        elsewhere.environment = "sandbox"
        other_ledger = self.append(elsewhere)
        self.assertFalse(other_ledger.duplicate)
        self.assertEqual(other_ledger.entry.index, 0)

        # Concurrent retries (both replicas, likely in one batch) agree on one new entry.
        racing = aus.entry_input(project, actor=f"svc-{self.u}", request_id=f"race-{self.u}")
        barrier = threading.Barrier(8)

        def call(i):
            barrier.wait()
            return self.append(racing, stub=aus.stub(MAIN if i % 2 else REPLICA))

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(call, range(8)))
        self.assertEqual(len({r.entry.SerializeToString() for r in results}), 1)
        self.assertEqual(results[0].entry.index, 1)
        self.assertEqual(sorted(r.duplicate for r in results), [False] + [True] * 7)

        # Nothing but those two entries was appended to the ledger.
        stored = aus.export_entries(self.audit, ledger)
        # (The export's own audit_read comes after the one chunk it read.)
        self.assertEqual([(e.index, e.request_id) for e in stored],
                         [(0, f"req-{self.u}"), (1, f"race-{self.u}")])

    def test_malformed_input_is_invalid_argument_naming_the_field(self):
        project = f"bad-{self.u}"
        valid = dict(action=A.ACTION_API_CALL, actor="svc", project=project,
                     environment="production")

        def e(**changes):
            fields = dict(valid)
            fields.update(changes)
            return A.EntryInput(**{k: v for k, v in fields.items() if v is not None})

        cases = [
            ("unknown action", e(action=99), "entry.action"),
            ("unspecified action", e(action=A.ACTION_UNSPECIFIED), "entry.action"),
            ("missing actor", e(actor=None), "entry.actor"),
            ("actor too long", e(actor="a" * 257), "entry.actor"),
            ("actor with NUL", e(actor="a\0b"), "entry.actor"),
            ("subject too long", e(subject="s" * 257), "entry.subject"),
            ("bad environment", e(environment="prod"), "entry.environment"),
            ("missing environment", e(environment=None), "entry.environment"),
            ("environment without project", e(project=None), "entry.environment"),
            ("project not lower case", e(project="Proj"), "entry.project"),
            ("project with a slash", e(project="a/b"), "entry.project"),
            ("project too long", e(project="p" * 65), "entry.project"),
            ("model too long", e(model="m" * 129), "entry.model"),
            ("negative tokens", e(tokens=-1), "entry.tokens"),
            ("tokens past a trillion", e(tokens=10**12 + 1), "entry.tokens"),
            ("tokens that would overflow a sum", e(tokens=2**63 - 1), "entry.tokens"),
            ("project with a dot", e(project="ml.platform"), "entry.project"),
            ("negative latency", e(latency=dur(-1000)), "entry.latency"),
            ("latency over a day", e(latency=dur(25 * 3600 * 10**6)), "entry.latency"),
            ("unknown outcome", e(outcome=9), "entry.outcome"),
            ("too much metadata", e(metadata={f"k{i}": "v" for i in range(33)}),
             "entry.metadata"),
            ("metadata key upper case", e(metadata={"Key": "v"}), "entry.metadata"),
            ("metadata key with a space", e(metadata={"a b": "v"}), "entry.metadata"),
            ("empty metadata key", e(metadata={"": "v"}), "entry.metadata"),
            ("metadata key too long", e(metadata={"k" * 65: "v"}), "entry.metadata"),
            ("metadata value too long", e(metadata={"k": "v" * 1025}), 'entry.metadata["k"]'),
            ("content_hash of 31 bytes", e(content_hash=b"\1" * 31), "entry.content_hash"),
            ("content_hash of 33 bytes", e(content_hash=b"\1" * 33), "entry.content_hash"),
            ("content_hash hex text", e(content_hash=aus.sha256(b"x").hex().encode()),
             "entry.content_hash"),
            ("request id with a space", e(request_id="a b"), "entry.request_id"),
            ("request id with a slash", e(request_id="a/b"), "entry.request_id"),
            ("request id not ASCII", e(request_id="réq"), "entry.request_id"),
            ("request id too long", e(request_id="r" * 129), "entry.request_id"),
            ("occurred_at past year 9999", e(occurred_at=ts(253402300800 * 10**6)),
             "entry.occurred_at"),
            ("occurred_at with nanos out of range",
             e(occurred_at=timestamp_pb2.Timestamp(seconds=1, nanos=10**9)), "entry.occurred_at"),
        ]
        for name, entry, field in cases:
            with self.subTest(name):
                error = self.assertRpcError(C.INVALID_ARGUMENT, self.append, entry)
                self.assertTrue(error.details().startswith(field + ":") or
                                error.details().startswith(field + "["),
                                f"{name}: {error.details()!r} does not name {field}")
        # The limits themselves are accepted.
        ok = self.append(e(actor="a" * 256, model="m" * 128, tokens=0,
                           metadata={f"k{i}": "v" * 1024 for i in range(31)} | {"k" * 64: "v"},
                           content_hash=b"\1" * 32, request_id="A-z_0.9:" + "r" * 120,
                           latency=dur(24 * 3600 * 10**6)))
        self.assertEqual(ok.entry.index, 0)  # none of the refused ones was stored
        self.assertEqual(len(ok.entry.metadata), 32)

    def test_malformed_reads_are_invalid_argument_naming_the_field(self):
        ledger = aus.ledger(f"badread-{self.u}", "production")
        self.append(aus.entry_input(ledger.project))
        q = A.QueryEntriesRequest
        cases = [
            ("query without requested_by", self.audit.QueryEntries,
             q(ledger=ledger), "requested_by"),
            ("query requested_by too long", self.audit.QueryEntries,
             q(ledger=ledger, requested_by="r" * 257), "requested_by"),
            ("query unknown action", self.audit.QueryEntries,
             q(ledger=ledger, requested_by="x", action=99), "action"),
            ("query page_size negative", self.audit.QueryEntries,
             q(ledger=ledger, requested_by="x", page_size=-1), "page_size"),
            ("query page_size too big", self.audit.QueryEntries,
             q(ledger=ledger, requested_by="x", page_size=1001), "page_size"),
            ("query page_token forged", self.audit.QueryEntries,
             q(ledger=ledger, requested_by="x", page_token="abc"), "page_token"),
            ("query end before start", self.audit.QueryEntries,
             q(ledger=ledger, requested_by="x", start_time=ts(2_000_000),
               end_time=ts(1_000_000)), "end_time"),
            ("query bad ledger environment", self.audit.QueryEntries,
             q(ledger=aus.ledger("p", "prod"), requested_by="x"), "ledger.environment"),
            ("query bad ledger project", self.audit.QueryEntries,
             q(ledger=aus.ledger("P!", "production"), requested_by="x"), "ledger.project"),
            ("summary without requested_by", self.audit.GetComplianceSummary,
             A.GetComplianceSummaryRequest(ledger=ledger), "requested_by"),
            ("inclusion proof of nothing", self.audit.GetInclusionProof,
             A.GetInclusionProofRequest(ledger=ledger), "index or request_id"),
            ("consistency from 0", self.audit.GetConsistencyProof,
             A.GetConsistencyProofRequest(ledger=ledger, from_size=0), "from_size"),
            ("forget without subject", self.audit.ForgetSubject,
             A.ForgetSubjectRequest(requested_by="dpo"), "subject"),
            ("forget without requested_by", self.audit.ForgetSubject,
             A.ForgetSubjectRequest(subject="x"), "requested_by"),
            ("forget a subject longer than Append takes", self.audit.ForgetSubject,
             A.ForgetSubjectRequest(subject="s" * (1 << 20), requested_by="dpo"), "subject"),
            ("export a subject longer than Append takes", self.audit.ExportSubject,
             A.ExportSubjectRequest(subject="s" * 257, requested_by="dpo"), "subject"),
            ("summary ending before it starts", self.audit.GetComplianceSummary,
             A.GetComplianceSummaryRequest(
                 ledger=ledger, requested_by="x", start_time=ts(2_000_000),
                 end_time=ts(1_000_000)), "end_time"),
            ("export subject without requested_by", self.audit.ExportSubject,
             A.ExportSubjectRequest(subject="x"), "requested_by"),
            ("verify bad ledger", self.audit.VerifyLedger,
             A.VerifyLedgerRequest(ledger=aus.ledger("", "production")), "ledger.environment"),
        ]
        for name, method, request, field in cases:
            with self.subTest(name):
                if name == "consistency from 0":  # needs a checkpoint to get that far
                    aus.wait_checkpoint(self.audit, ledger, 1)
                error = self.assertRpcError(C.INVALID_ARGUMENT, method, request, timeout=10)
                self.assertTrue(error.details().startswith(field), f"{name}: {error.details()!r}")
        error = self.assertRpcError(
            C.INVALID_ARGUMENT, aus.export_chunks, self.audit, ledger, requested_by="")
        self.assertTrue(error.details().startswith("requested_by"), error.details())


# ---------------------------------------------------------------------------
# Queries and recorded reads.
# ---------------------------------------------------------------------------


class QueryTest(AuditTestCase):
    def test_query_by_action_actor_and_time_across_pages(self):
        project = f"q-{self.u}"
        ledger = aus.ledger(project, "development")
        alice, bob = f"alice-{self.u}@example.com", f"bob-{self.u}@example.com"
        plan = ([(A.ACTION_API_CALL, alice)] * 7 + [(A.ACTION_POLICY_VIOLATION, bob)] * 5 +
                [(A.ACTION_API_CALL, bob)] * 3)
        plan = [plan[i] for i in (0, 7, 1, 12, 8, 2, 3, 9, 13, 4, 10, 5, 11, 14, 6)]
        appended = [self.append(aus.entry_input(project, "development", action=action,
                                                actor=actor, tokens=i)).entry
                    for i, (action, actor) in enumerate(plan)]
        self.assertEqual([e.index for e in appended], list(range(15)))
        times = [aus.micros(e.time) for e in appended]
        self.assertEqual(times, sorted(times))

        def indices(entries):
            return [e.index for e in entries]

        api = [e.index for e, (a, _) in zip(appended, plan) if a == A.ACTION_API_CALL]
        got, pages = self.query_all(ledger, page_size=4, action=A.ACTION_API_CALL)
        self.assertEqual(indices(got), api)
        self.assertEqual(pages, 3)  # 4 + 4 + 2
        self.assertTrue(all(e.action == A.ACTION_API_CALL for e in got))

        first_page = self.query(ledger, page_size=4, action=A.ACTION_API_CALL)
        self.assertEqual(indices(first_page.entries), api[:4])
        self.assertNotEqual(first_page.next_page_token, "")
        last_page = self.query(ledger, page_size=10, action=A.ACTION_API_CALL,
                               page_token=first_page.next_page_token)
        self.assertEqual(indices(last_page.entries), api[4:])
        self.assertEqual(last_page.next_page_token, "")
        # A token continues the query it was issued for, not another one.
        for other in ({"action": A.ACTION_POLICY_VIOLATION}, {"actor": alice},
                      {"start_time": ts(times[0])}, {}):
            error = self.assertRpcError(
                C.INVALID_ARGUMENT, self.audit.QueryEntries,
                A.QueryEntriesRequest(ledger=ledger, requested_by="x", page_size=4,
                                      page_token=first_page.next_page_token, **other))
            self.assertIn("page_token: issued for other filters", error.details())

        of_alice = [e.index for e, (_, who) in zip(appended, plan) if who == alice]
        got, pages = self.query_all(ledger, page_size=3, actor=alice)
        self.assertEqual(indices(got), of_alice)
        self.assertEqual(pages, 3)
        self.assertEqual({e.actor for e in got}, {alice})  # reads reveal the identifier
        self.assertEqual({e.actor_ref for e in got}, {appended[0].actor_ref})

        bob_violations = [e.index for e, p in zip(appended, plan)
                          if p == (A.ACTION_POLICY_VIOLATION, bob)]
        got, _ = self.query_all(ledger, page_size=2, actor=bob,
                                action=A.ACTION_POLICY_VIOLATION)
        self.assertEqual(indices(got), bob_violations)
        self.assertEqual({e.actor for e in got}, {bob})

        # [start, end): inclusive start, exclusive end.
        got, _ = self.query_all(ledger, page_size=2, start_time=ts(times[3]),
                                end_time=ts(times[10]))
        self.assertEqual(indices(got), list(range(3, 10)))
        got, _ = self.query_all(ledger, page_size=100, start_time=ts(times[3]),
                                end_time=ts(times[10]), action=A.ACTION_API_CALL, actor=alice)
        self.assertEqual(indices(got), [i for i in of_alice if 3 <= i < 10])
        got, _ = self.query_all(ledger, end_time=ts(times[0]))
        self.assertEqual(got, [])
        got, _ = self.query_all(ledger, page_size=5, start_time=ts(times[14]),
                                action=A.ACTION_API_CALL)
        self.assertEqual(indices(got), [14])

        # Nobody recorded: nothing (not an error). Default page size: 100.
        self.assertEqual(list(self.query(ledger, actor=f"nobody-{self.u}").entries), [])
        everything = self.query(ledger, action=A.ACTION_POLICY_VIOLATION)
        self.assertEqual(len(everything.entries), 5)
        self.assertEqual(everything.next_page_token, "")
        # A query of another ledger sees none of these.
        self.assertEqual(list(self.query(aus.ledger(project, "sandbox")).entries), [])

    def test_paging_one_at_a_time_ends_with_the_entries_present_at_the_start(self):
        project = f"page1-{self.u}"
        ledger = aus.ledger(project, "production")
        for i in range(3):
            self.append(aus.entry_input(project, tokens=i))
        got, pages = self.query_all(ledger, page_size=1)
        self.assertEqual([e.index for e in got], [0, 1, 2])
        self.assertEqual(pages, 3)
        # Every page was recorded all the same.
        reads = self.query(ledger, action=A.ACTION_AUDIT_READ).entries
        self.assertEqual([e.index for e in reads], [3, 4, 5])
        # Tokens this service did not issue are refused, naming the field.
        for token in ("1.", ".5", "1.2.3", "x.1"):
            error = self.assertRpcError(C.INVALID_ARGUMENT, self.audit.QueryEntries,
                                        A.QueryEntriesRequest(ledger=ledger, requested_by="x",
                                                              page_token=token))
            self.assertIn("page_token", error.details())

    def test_pages_of_large_entries_end_before_a_mebibyte(self):
        project = f"big-{self.u}"
        ledger = aus.ledger(project, "production")
        metadata = {f"k{i:02d}": "v" * 1024 for i in range(32)}  # an entry's largest metadata
        n = 130  # over 4 MiB of entries: more than a client takes in one message by default
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: self.append(aus.entry_input(project, tokens=i,
                                                                metadata=metadata), timeout=30),
                          range(n)))
        first = self.query(ledger, page_size=1000)
        self.assertTrue(first.next_page_token)
        self.assertGreater(len(first.entries), 1)
        self.assertLessEqual(first.ByteSize(), (1 << 20) + 1024)
        got, pages = self.query_all(ledger, page_size=1000)
        self.assertEqual([e.index for e in got], list(range(n + 1)))  # n: the first read's
        self.assertGreaterEqual(pages, 5)
        # The bound counts bytes, not entries: small entries still fill a page of page_size.
        self.assertEqual(len(self.query(ledger, page_size=3).entries), 3)

    def test_reads_of_a_ledger_that_does_not_exist_create_none(self):
        ledger = aus.ledger(f"typo-{self.u}", "production")
        self.assertEqual(list(self.query(ledger).entries), [])
        summary = self.audit.GetComplianceSummary(
            A.GetComplianceSummaryRequest(ledger=ledger, requested_by="auditor@test"),
            timeout=10)
        self.assertEqual(summary.total_entries, 0)
        self.assertTrue(summary.integrity.valid)
        self.assertEqual(aus.export_chunks(self.audit, ledger), [])
        listed = self.audit.ListLedgers(A.ListLedgersRequest(), timeout=10).ledgers
        self.assertNotIn(ledger, [info.ledger for info in listed])

    def test_reads_are_recorded_as_audit_read(self):
        project = f"reads-{self.u}"
        ledger = aus.ledger(project, "production")
        reader = f"reader-{self.u}@example.com"
        self.append(aus.entry_input(project, actor=f"svc-{self.u}"))
        self.query(ledger, requested_by=reader, action=A.ACTION_API_CALL)
        self.query(ledger, requested_by=reader, actor=f"svc-{self.u}")
        self.query(ledger, requested_by=reader, actor=f"nobody-{self.u}")  # empty, still a read
        self.audit.GetComplianceSummary(
            A.GetComplianceSummaryRequest(ledger=ledger, requested_by=reader), timeout=10)
        aus.export_chunks(self.audit, ledger, requested_by=reader)
        # Proofs, checkpoints and verification are not reads of entries' contents.
        self.verify(ledger)

        reads = self.query(ledger, requested_by=f"other-{self.u}",
                           action=A.ACTION_AUDIT_READ).entries
        self.assertEqual([(e.actor, dict(e.metadata)) for e in reads],
                         [(reader, {"read": "query"})] * 3 +
                         [(reader, {"read": "compliance_summary"}), (reader, {"read": "export"})])
        self.assertEqual([e.index for e in reads], [1, 2, 3, 4, 5])
        self.assertTrue(all(e.ledger == ledger for e in reads))
        # That query was recorded too; the reader's reads are found by the reader's name.
        mine = self.query(ledger, requested_by=f"other-{self.u}", actor=f"other-{self.u}")
        self.assertEqual([(e.index, e.action) for e in mine.entries], [(6, A.ACTION_AUDIT_READ)])
        self.assertLedgerValid(ledger, entries=8)


# ---------------------------------------------------------------------------
# Checkpoints and proofs, verified here.
# ---------------------------------------------------------------------------


class ProofTest(AuditTestCase):
    def test_checkpoint_and_inclusion_proofs_verify_here(self):
        project = f"proof-{self.u}"
        ledger = aus.ledger(project, "production")
        for i in range(11):
            self.append(aus.entry_input(project, actor=f"svc-{i % 3}-{self.u}", tokens=i,
                                        request_id=f"p-{i}", metadata={"i": str(i)}))
        newest = aus.wait_checkpoint(self.audit, ledger, 11)
        self.assertCheckpointSigned(newest, ledger)
        checkpoint = newest.checkpoint
        size = checkpoint.tree_size
        self.assertEqual(size, 11)  # nothing but the appends grew the ledger

        # The checkpoint of that size is the same one, from either replica.
        for stub in (self.audit, aus.stub(REPLICA)):
            same = stub.GetCheckpoint(A.GetCheckpointRequest(ledger=ledger, tree_size=size))
            self.assertEqual(same.checkpoint, checkpoint)
            self.assertEqual(same.public_key, newest.public_key)
        self.assertRpcError(C.NOT_FOUND, self.audit.GetCheckpoint,
                            A.GetCheckpointRequest(ledger=ledger, tree_size=size + 1000))
        self.assertRpcError(C.NOT_FOUND, self.audit.GetCheckpoint,
                            A.GetCheckpointRequest(ledger=aus.ledger(f"none-{self.u}",
                                                                     "production")))

        # The signed root is the root of the entries as exported, recomputed from their fields.
        entries = aus.export_entries(self.audit, ledger)[:size]
        cache = self.assertEntriesSound(entries, ledger)
        self.assertEqual(cache.root(0, size), checkpoint.root_hash)

        for index in range(size):
            proof = self.audit.GetInclusionProof(A.GetInclusionProofRequest(
                ledger=ledger, index=index, tree_size=size), timeout=10)
            self.assertEqual(proof.checkpoint, checkpoint)
            self.assertEqual(proof.entry.index, index)
            leaf = aus.entry_leaf_hash(proof.entry)
            self.assertEqual(proof.entry.leaf_hash, leaf)
            path = list(proof.proof)
            self.assertTrue(aus.verify_inclusion(leaf, index, size, path, checkpoint.root_hash),
                            f"inclusion proof of entry {index}")
            # Checked, not waved through: another leaf, index or a changed hash fails.
            self.assertFalse(aus.verify_inclusion(aus.sha256(b"x"), index, size, path,
                                                  checkpoint.root_hash))
            self.assertFalse(aus.verify_inclusion(leaf, (index + 1) % size, size, path,
                                                  checkpoint.root_hash))
            for k in range(len(path)):
                bad = list(path)
                bad[k] = bytes([bad[k][0] ^ 0x80]) + bad[k][1:]
                self.assertFalse(aus.verify_inclusion(leaf, index, size, bad,
                                                      checkpoint.root_hash))

        # By request id, against the newest checkpoint (tree_size 0).
        by_id = self.audit.GetInclusionProof(A.GetInclusionProofRequest(
            ledger=ledger, request_id="p-7"), timeout=10)
        self.assertEqual((by_id.entry.index, by_id.entry.request_id), (7, "p-7"))
        # The proof reveals no identifier, so it is no read to record.
        self.assertEqual(by_id.entry.actor, "")
        self.assertEqual(len(by_id.entry.actor_ref), 32)
        self.assertEqual(self.audit.GetEntry(A.GetEntryRequest(
            ledger=ledger, request_id="p-7"), timeout=10).entry, by_id.entry)
        self.assertTrue(aus.verify_inclusion(aus.entry_leaf_hash(by_id.entry), 7,
                                             by_id.checkpoint.tree_size, list(by_id.proof),
                                             by_id.checkpoint.root_hash))
        self.assertRpcError(C.NOT_FOUND, self.audit.GetInclusionProof,
                            A.GetInclusionProofRequest(ledger=ledger, request_id="p-99"))
        self.assertRpcError(C.NOT_FOUND, self.audit.GetInclusionProof,
                            A.GetInclusionProofRequest(ledger=ledger, index=10**6))

        # An entry newer than the checkpoint asked for can never be proven against it.
        newer = self.append(aus.entry_input(project, request_id="p-new")).entry
        error = self.assertRpcError(C.INVALID_ARGUMENT, self.audit.GetInclusionProof,
                                    A.GetInclusionProofRequest(ledger=ledger, index=newer.index,
                                                               tree_size=size))
        self.assertIn(f"is not in the tree of size {size}", error.details())
        later = aus.wait_checkpoint(self.audit, ledger, newer.index + 1)
        proof = self.audit.GetInclusionProof(A.GetInclusionProofRequest(
            ledger=ledger, request_id="p-new"), timeout=10)
        self.assertEqual(proof.checkpoint.tree_size, later.checkpoint.tree_size)
        self.assertTrue(aus.verify_inclusion(aus.entry_leaf_hash(proof.entry), newer.index,
                                             proof.checkpoint.tree_size, list(proof.proof),
                                             proof.checkpoint.root_hash))

    def test_consistency_proof_between_two_checkpoints_verifies_here(self):
        project = f"cons-{self.u}"
        ledger = aus.ledger(project, "staging")
        for i in range(5):
            self.append(aus.entry_input(project, "staging", tokens=i))
        first = aus.wait_checkpoint(self.audit, ledger, 5)
        self.assertCheckpointSigned(first, ledger)
        s1 = first.checkpoint.tree_size
        for i in range(9):
            self.append(aus.entry_input(project, "staging", tokens=100 + i))
        second = aus.wait_checkpoint(self.audit, ledger, s1 + 9)
        self.assertCheckpointSigned(second, ledger)
        s2 = second.checkpoint.tree_size
        self.assertEqual((s1, s2), (5, 14))

        proof = self.audit.GetConsistencyProof(A.GetConsistencyProofRequest(
            ledger=ledger, from_size=s1, to_size=s2), timeout=10)
        self.assertEqual(proof.to, second.checkpoint)
        self.assertEqual(getattr(proof, "from"), first.checkpoint)
        path = list(proof.proof)
        self.assertTrue(aus.verify_consistency(s1, s2, first.checkpoint.root_hash,
                                               second.checkpoint.root_hash, path))
        self.assertFalse(aus.verify_consistency(s1, s2, aus.sha256(b"x"),
                                                second.checkpoint.root_hash, path))
        self.assertFalse(aus.verify_consistency(s1, s2, first.checkpoint.root_hash,
                                                second.checkpoint.root_hash, path[:-1]))
        for k in range(len(path)):
            bad = list(path)
            bad[k] = bytes([bad[k][0] ^ 1]) + bad[k][1:]
            self.assertFalse(aus.verify_consistency(s1, s2, first.checkpoint.root_hash,
                                                    second.checkpoint.root_hash, bad))

        # to_size 0 is the newest checkpoint; from sizes that were never signed are proven
        # against roots recomputed here from the exported entries.
        entries = aus.export_entries(self.audit, ledger)[:s2]
        cache = self.assertEntriesSound(entries, ledger)
        self.assertEqual(cache.root(0, s2), second.checkpoint.root_hash)
        self.assertEqual(cache.root(0, s1), first.checkpoint.root_hash)
        signed = set(checkpoint_sizes(ledger))
        self.assertTrue({s1, s2} <= signed, signed)
        for m in range(1, s2 + 1):
            p = self.audit.GetConsistencyProof(A.GetConsistencyProofRequest(
                ledger=ledger, from_size=m, to_size=s2), timeout=10)
            self.assertEqual(p.to, second.checkpoint)
            self.assertEqual(p.HasField("from"), m in signed, m)
            self.assertTrue(aus.verify_consistency(m, s2, cache.root(0, m),
                                                   second.checkpoint.root_hash, list(p.proof)),
                            f"consistency {m} -> {s2}")
        newest = self.audit.GetConsistencyProof(A.GetConsistencyProofRequest(
            ledger=ledger, from_size=s1), timeout=10)
        self.assertGreaterEqual(newest.to.tree_size, s2)
        self.assertRpcError(C.INVALID_ARGUMENT, self.audit.GetConsistencyProof,
                            A.GetConsistencyProofRequest(ledger=ledger, from_size=s2 + 1,
                                                         to_size=s2))
        self.assertRpcError(C.NOT_FOUND, self.audit.GetConsistencyProof,
                            A.GetConsistencyProofRequest(ledger=ledger, from_size=1,
                                                         to_size=s2 + 1000))


# ---------------------------------------------------------------------------
# Verification, reports, export.
# ---------------------------------------------------------------------------


class ReportTest(AuditTestCase):
    def test_verify_ledger_valid(self):
        project = f"ver-{self.u}"
        ledger = aus.ledger(project, "sandbox")
        for i in range(20):
            self.append(aus.entry_input(project, "sandbox", tokens=i))
        aus.wait_checkpoint(self.audit, ledger, 20)
        report = self.assertLedgerValid(ledger, entries=20)
        self.assertGreaterEqual(report.checkpoints_checked, 1)
        self.assertEqual(self.assertLedgerValid(ledger, stub=aus.stub(REPLICA), entries=20),
                         report)
        empty = self.assertLedgerValid(aus.ledger(f"never-{self.u}", "sandbox"), entries=0)
        self.assertEqual(empty.checkpoints_checked, 0)

    def test_compliance_summary_totals(self):
        project = f"sum-{self.u}"
        ledger = aus.ledger(project, "production")
        plan = [(A.ACTION_API_CALL, 100), (A.ACTION_POLICY_VIOLATION, 0),
                (A.ACTION_API_CALL, 250), (A.ACTION_RATE_LIMITED, 0),
                (A.ACTION_POLICY_VIOLATION, 5), (A.ACTION_API_CALL, 45)]
        appended = [self.append(aus.entry_input(project, action=a, tokens=t)).entry
                    for a, t in plan]
        reader = f"compliance-{self.u}"
        summary = self.audit.GetComplianceSummary(
            A.GetComplianceSummaryRequest(ledger=ledger, requested_by=reader), timeout=10)
        self.assertEqual(summary.total_entries, 6)
        self.assertEqual(summary.total_tokens, 400)
        self.assertEqual(summary.policy_violations, 2)
        self.assertEqual(dict(summary.action_breakdown),
                         {"api_call": 3, "policy_violation": 2, "rate_limited": 1})
        self.assertEqual(summary.period_start, appended[0].time)
        self.assertEqual(summary.period_end, appended[-1].time)
        self.assertTrue(summary.integrity.valid, summary.integrity.problem)
        self.assertEqual(summary.integrity.entries_checked, 6)

        # The summary itself was recorded: the next one counts that read.
        again = self.audit.GetComplianceSummary(
            A.GetComplianceSummaryRequest(ledger=ledger, requested_by=reader), timeout=10)
        self.assertEqual(again.total_entries, 7)
        self.assertEqual(dict(again.action_breakdown),
                         {"api_call": 3, "policy_violation": 2, "rate_limited": 1,
                          "audit_read": 1})
        self.assertEqual(again.total_tokens, 400)

        # A period: [start, end).
        window = self.audit.GetComplianceSummary(A.GetComplianceSummaryRequest(
            ledger=ledger, requested_by=reader, start_time=appended[1].time,
            end_time=appended[4].time), timeout=10)
        self.assertEqual(window.total_entries, 3)
        self.assertEqual(window.total_tokens, 250)
        self.assertEqual(window.policy_violations, 1)
        self.assertEqual(dict(window.action_breakdown),
                         {"api_call": 1, "policy_violation": 1, "rate_limited": 1})
        self.assertEqual((window.period_start, window.period_end),
                         (appended[1].time, appended[3].time))
        nothing = self.audit.GetComplianceSummary(A.GetComplianceSummaryRequest(
            ledger=ledger, requested_by=reader, end_time=appended[0].time), timeout=10)
        self.assertEqual((nothing.total_entries, nothing.total_tokens), (0, 0))
        self.assertFalse(nothing.HasField("period_start"))
        self.assertTrue(nothing.integrity.valid)


class ExportTest(AuditTestCase):
    def test_export_stream_resumable_from_next_index(self):
        project = f"exp-{self.u}"
        ledger = aus.ledger(project, "production")
        n = 1100  # more than two chunks of 500

        def add(i):
            return self.append(aus.entry_input(project, actor=f"svc-{i % 7}-{self.u}", tokens=i,
                                               request_id=f"e-{i}"), timeout=30)

        with ThreadPoolExecutor(16) as pool:
            acked = {r.entry.request_id: r.entry.index for r in pool.map(add, range(n))}
        self.assertEqual(sorted(acked.values()), list(range(n)))

        chunks = aus.export_chunks(self.audit, ledger, requested_by=f"exporter-{self.u}")
        self.assertGreaterEqual(len(chunks), 3)
        lines, entries, expected_next = [], [], 0
        for chunk in chunks:
            parsed = aus.parse_jsonl(chunk.jsonl)  # whole lines, each an entry in JSON
            self.assertEqual(len(parsed), chunk.jsonl.count(b"\n"))
            for raw, entry in parsed:
                self.assertIsInstance(raw, dict)
                self.assertEqual(entry.index, expected_next)
                expected_next += 1
                lines.append(raw)
                entries.append(entry)
            self.assertEqual(chunk.next_index, expected_next)
        # The appends, then this export's own audit_read (recorded after the first chunk).
        self.assertEqual(len(entries), n + 1)
        self.assertEqual({e.request_id: e.index for e in entries[:n]}, acked)
        self.assertEqual((entries[n].action, entries[n].actor, dict(entries[n].metadata)),
                         (A.ACTION_AUDIT_READ, f"exporter-{self.u}", {"read": "export"}))
        self.assertTrue(all(e.actor == f"svc-{e.tokens % 7}-{self.u}" for e in entries[:n]))
        cache = self.assertEntriesSound(entries, ledger)
        checkpoint = aus.wait_checkpoint(self.audit, ledger, n + 1).checkpoint
        self.assertEqual(checkpoint.tree_size, n + 1)  # nothing grew the ledger meanwhile
        self.assertEqual(cache.root(0, n + 1), checkpoint.root_hash)

        # Resume: read one chunk, drop the stream, go on from its next_index.
        stream = self.audit.ExportEntries(A.ExportEntriesRequest(
            ledger=ledger, requested_by=f"exporter-{self.u}"), timeout=60)
        head = next(stream)
        stream.cancel()
        resumed = [head] + aus.export_chunks(self.audit, ledger, from_index=head.next_index,
                                             requested_by=f"exporter-{self.u}")
        again = [raw for c in resumed for raw, _ in aus.parse_jsonl(c.jsonl)]
        self.assertEqual(again[:len(lines)], lines)
        # Those two exports were recorded too (and nothing else was appended).
        self.assertEqual([(e["action"], e["metadata"]) for e in again[len(lines):]],
                         [("ACTION_AUDIT_READ", {"read": "export"})] * 2)
        middle = aus.export_chunks(self.audit, ledger, from_index=700,
                                   requested_by=f"exporter-{self.u}")
        self.assertEqual([raw for c in middle for raw, _ in aus.parse_jsonl(c.jsonl)][:n - 700],
                         lines[700:n])
        self.assertEqual(aus.export_chunks(self.audit, ledger, from_index=10**9,
                                           requested_by=f"exporter-{self.u}"), [])
        self.assertLedgerValid(ledger)


class StalledExportTest(unittest.TestCase):
    """An audit process of its own (memory store) with a short max_export_write_time."""

    def test_a_reader_that_stops_reading_gives_its_export_slot_back(self):
        audit = aus.start_serving(None, aus.new_keys(), "audit-stalled",
                                  max_export_write_time="2s")
        self.addCleanup(audit.cleanup)
        stub = aus.stub(audit)
        project = f"stall-{uid()}"
        ledger = aus.ledger(project, "production")
        # About 16 MB of JSON lines: far more than a reader's transport takes in unread.
        metadata = {f"k{i}": "x" * 1000 for i in range(8)}

        def add(i):
            return aus.append(stub, aus.entry_input(project, request_id=f"s-{i}",
                                                    metadata=metadata), timeout=30)

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(add, range(2000)))

        # Four readers (every export slot) read one chunk each, then stop reading.
        stalled = []
        for _ in range(4):
            channel = grpc.insecure_channel(audit.address,
                                            options=[("grpc.use_local_subchannel_pool", 1)])
            self.addCleanup(channel.close)
            stream = aus.stub(channel).ExportEntries(A.ExportEntriesRequest(
                ledger=ledger, requested_by="slow-reader"), timeout=120)
            next(stream)
            stalled.append(stream)
            if len(stalled) == 1:
                first_stalled_at = time.monotonic()
        err = pt.call_error(aus.export_chunks, stub, ledger, requested_by="siem")
        self.assertEqual(err.code(), C.RESOURCE_EXHAUSTED)

        # A stalled reader that reads on after max_export_write_time gets the chunks sent,
        # then ABORTED naming the setting and where to resume (within another
        # max_export_write_time: after that the stream is cancelled). The first reader is
        # 2.5 s behind when it reads on, however long opening the others took.
        time.sleep(max(0.0, first_stalled_at + 2.5 - time.monotonic()))
        received = []
        with self.assertRaises(grpc.RpcError) as caught:
            for chunk in stalled[0]:
                received.append(chunk)
        self.assertEqual(caught.exception.code(), C.ABORTED, caught.exception.details())
        self.assertIn("max_export_write_time", caught.exception.details())
        self.assertIn(f"from_index {received[-1].next_index}", caught.exception.details())

        # The export slots are free again (each stalled export's own limit has passed, however
        # late a loaded machine runs its thread): a fifth export runs whole, and one resumes.
        whole = pt.wait_until(lambda: aus.export_chunks(stub, ledger, requested_by="siem"),
                              timeout=15, message="a fifth export admitted",
                              ignore=(grpc.RpcError,))
        self.assertGreater(sum(c.jsonl.count(b"\n") for c in whole), 2000)
        resumed = aus.export_chunks(stub, ledger, from_index=received[-1].next_index,
                                    requested_by="siem")
        self.assertEqual(aus.parse_jsonl(resumed[0].jsonl)[0][1].index, received[-1].next_index)
        # The other stalled readers' streams are cancelled once they took nothing for another
        # max_export_write_time.
        for stream in stalled[1:]:
            with self.assertRaises(grpc.RpcError) as caught:
                for _ in stream:
                    pass
            self.assertIn(caught.exception.code(), (C.ABORTED, C.CANCELLED))


# ---------------------------------------------------------------------------
# GDPR: subject access and erasure.
# ---------------------------------------------------------------------------


class SubjectTest(AuditTestCase):
    def test_export_subject_then_forget_subject(self):
        u = self.u
        carol, dave, admin, dpo = (f"carol-{u}@example.com", f"dave-{u}@example.com",
                                   f"admin-{u}@example.com", f"dpo-{u}@example.com")
        p1, p2 = aus.ledger(f"gdpr1-{u}", "production"), aus.ledger(f"gdpr2-{u}", "staging")
        mine = [
            self.append(aus.entry_input(p1.project, actor=carol, tokens=1)).entry,
            self.append(aus.entry_input(p1.project, actor=dave, tokens=2)).entry,
            self.append(aus.entry_input(p2.project, "staging", action=A.ACTION_MEMBER_ADDED,
                                        actor=admin, subject=carol)).entry,
            self.append(aus.entry_input(p1.project, actor=carol, tokens=3)).entry,
            self.append(aus.entry_input(p2.project, "staging", actor=dave,
                                        subject=admin)).entry,
        ]
        carol_entries = {(e.ledger.project, e.index) for e in (mine[0], mine[2], mine[3])}

        exported = self.audit.ExportSubject(A.ExportSubjectRequest(
            subject=carol, requested_by=dpo), timeout=10).entries
        self.assertEqual({(e.ledger.project, e.index) for e in exported}, carol_entries)
        self.assertEqual(len(exported), 3)
        for e in exported:
            self.assertIn(carol, (e.actor, e.subject))
            self.assertEqual(e.leaf_hash, aus.entry_leaf_hash(e))
        # The access export is recorded in the organisation's ledger, naming the subject.
        access = self.query(ORG, requested_by=dpo, actor=dpo,
                            action=A.ACTION_SUBJECT_ACCESS_EXPORTED).entries
        self.assertEqual([(e.subject, dict(e.metadata)) for e in access],
                         [(carol, {"entries": "3"})])
        self.assertEqual(access[0].ledger, ORG)
        # Page by page, two at a time: the same entries in the same order (and then the
        # record of the first export, which names carol too).
        paged, token = [], ""
        while True:
            page = self.audit.ExportSubject(A.ExportSubjectRequest(
                subject=carol, requested_by=dpo, page_size=2, page_token=token), timeout=10)
            paged += page.entries
            token = page.next_page_token
            if not token:
                break
        self.assertEqual([(e.ledger.project, e.index) for e in paged[:3]],
                         [(e.ledger.project, e.index) for e in exported])
        self.assertEqual(paged[3].action, A.ACTION_SUBJECT_ACCESS_EXPORTED)
        self.assertEqual(len(paged), 4)  # Not the records of these pages.
        # One at a time: the same four and the records of the two pages above, and paging
        # ends.
        single, token = [], ""
        while True:
            page = self.audit.ExportSubject(A.ExportSubjectRequest(
                subject=carol, requested_by=dpo, page_size=1, page_token=token), timeout=10)
            single += page.entries
            token = page.next_page_token
            if not token:
                break
            self.assertLess(len(single), 10, "paging does not end")
        self.assertEqual([(e.ledger.project, e.index) for e in single[:4]],
                         [(e.ledger.project, e.index) for e in paged])
        self.assertEqual([e.action for e in single[4:]],
                         [A.ACTION_SUBJECT_ACCESS_EXPORTED] * 2)
        err = pt.call_error(self.audit.ExportSubject, A.ExportSubjectRequest(
            subject=carol, requested_by=dpo, page_token="not-a-token"), timeout=10)
        self.assertEqual(err.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("page_token", err.details())
        # A token continues the export of the subject it was issued for, not another's.
        first = self.audit.ExportSubject(A.ExportSubjectRequest(
            subject=carol, requested_by=dpo, page_size=1), timeout=10)
        err = pt.call_error(self.audit.ExportSubject, A.ExportSubjectRequest(
            subject=dave, requested_by=dpo, page_token=first.next_page_token), timeout=10)
        self.assertEqual(err.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("page_token: issued for other filters", err.details())
        # Forged in the tokens' format (common/paging/page_token.h) for carol: a cursor no
        # entry has (a time before the year 1, an index past a bigint's).
        bound = hashlib.sha256(f"{len(carol.encode())}:{carol}".encode()).digest()[:8]
        for cursor in (f"{-2**63}/{p1.project}/production/0",
                       f"0/{p1.project}/production/{2**64 - 1}"):
            forged = base64.urlsafe_b64encode(b"p1" + bound + cursor.encode()).decode().rstrip("=")
            err = pt.call_error(self.audit.ExportSubject, A.ExportSubjectRequest(
                subject=carol, requested_by=dpo, page_token=forged), timeout=10)
            self.assertEqual(err.code(), grpc.StatusCode.INVALID_ARGUMENT, cursor)
            self.assertIn("page_token", err.details())

        forgotten = self.audit.ForgetSubject(A.ForgetSubjectRequest(
            subject=carol, requested_by=dpo, request_id=f"forget-{u}"), timeout=10)
        self.assertTrue(forgotten.forgotten)
        record = forgotten.entry
        self.assertEqual(record.action, A.ACTION_SUBJECT_FORGOTTEN)
        self.assertEqual((record.ledger.project, record.ledger.environment), ("", ""))
        # The record keeps a keyed digest of the caller's id, which might name the subject.
        self.assertRegex(record.request_id, r"^forget:[0-9a-f]{32}$")
        self.assertEqual(len(record.subject_ref), 32)
        # A retry of the same request returns the first record (the query of the records
        # below finds only one).
        retry = self.audit.ForgetSubject(A.ForgetSubjectRequest(
            subject=carol, requested_by=dpo, request_id=f"forget-{u}"), timeout=10)
        self.assertTrue(retry.forgotten)
        self.assertEqual((retry.entry.index, retry.entry.leaf_hash),
                         (record.index, record.leaf_hash))
        # The same id for another subject with a key (dave): refused, and dave is not
        # forgotten (his entries still name him below). For one without a key, whom nothing
        # names, the first record answers: it keeps nothing that could tell them from carol.
        self.assertRpcError(C.FAILED_PRECONDITION, self.audit.ForgetSubject,
                            A.ForgetSubjectRequest(subject=dave, requested_by=dpo,
                                                   request_id=f"forget-{u}"), timeout=10)
        nobody = self.audit.ForgetSubject(A.ForgetSubjectRequest(
            subject=f"nobody-{u}@example.com", requested_by=dpo, request_id=f"forget-{u}"),
            timeout=10)
        self.assertEqual(nobody.entry.index, record.index)
        self.assertNotIn("request_binding", record.metadata)

        # Reads no longer name carol, anywhere; what she did is still there, pseudonymous.
        got = {e.index: e for e in self.query(p1, requested_by=dpo,
                                              action=A.ACTION_API_CALL).entries}
        self.assertEqual((got[0].actor, got[2].actor, got[1].actor), ("", "", dave))
        self.assertEqual(got[0].actor_ref, mine[0].actor_ref)
        self.assertEqual(got[0].actor_sealed, mine[0].actor_sealed)
        p2_entries = aus.export_entries(self.audit, p2, requested_by=dpo)
        self.assertEqual((p2_entries[0].actor, p2_entries[0].subject), (admin, ""))
        self.assertEqual(p2_entries[0].subject_ref, mine[2].subject_ref)
        self.assertEqual((p2_entries[1].actor, p2_entries[1].subject), (dave, admin))
        for e in aus.export_entries(self.audit, p1, requested_by=dpo):
            self.assertNotEqual(e.actor, carol)
        self.assertEqual(list(self.query(p1, requested_by=dpo, actor=carol).entries), [])
        self.assertEqual(list(self.audit.ExportSubject(A.ExportSubjectRequest(
            subject=carol, requested_by=dpo), timeout=10).entries), [])
        # The record of the forgetting itself no longer names her either.
        records = self.query(ORG, requested_by=dpo, actor=dpo,
                             action=A.ACTION_SUBJECT_FORGOTTEN).entries
        self.assertEqual([(e.index, e.actor, e.subject, e.request_id) for e in records],
                         [(record.index, dpo, "", record.request_id)])
        org_entries = aus.export_entries(self.audit, ORG, from_index=record.index,
                                         requested_by=dpo)
        self.assertEqual(org_entries[0].action, A.ACTION_SUBJECT_FORGOTTEN)
        self.assertEqual(org_entries[0].subject, "")
        self.assertEqual(org_entries[0].leaf_hash, record.leaf_hash)
        # Nothing stored holds her identifier in plain text.
        dump = DB.sql("SELECT encode(actor_sealed, 'escape'), encode(subject_sealed, 'escape'), "
                      "encode(metadata, 'escape'), request_id FROM audit.entries")
        self.assertNotIn(carol, dump)

        # Shredding changed no stored byte: every ledger still verifies.
        for ledger in (p1, p2, ORG):
            self.assertLedgerValid(ledger)
            self.assertLedgerValid(ledger, stub=aus.stub(REPLICA))
        # Forgetting again: nothing left to forget, still recorded.
        again = self.audit.ForgetSubject(A.ForgetSubjectRequest(
            subject=carol, requested_by=dpo), timeout=10)
        self.assertFalse(again.forgotten)
        self.assertEqual(again.entry.action, A.ACTION_SUBJECT_FORGOTTEN)
        self.assertEqual(again.entry.subject_ref, b"")
        # Dave is untouched.
        self.assertEqual(len(self.audit.ExportSubject(A.ExportSubjectRequest(
            subject=dave, requested_by=dpo), timeout=10).entries), 2)

    def test_a_record_delivered_again_after_forgetting_is_the_first_entry(self):
        u = self.u
        carol, admin, dpo = (f"carol-{u}@example.com", f"admin-{u}@example.com",
                             f"dpo-{u}@example.com")
        ledger = aus.ledger(f"redeliver-{u}", "production")
        removal = aus.entry_input(ledger.project, action=A.ACTION_MEMBER_REMOVED, actor=admin,
                                  subject=carol, metadata={"role": "viewer"},
                                  request_id=f"keys:member-removed:{u}")
        first = self.append(removal).entry
        # The other replica holds her key from here on.
        self.assertTrue(self.append(removal, stub=aus.stub(REPLICA)).duplicate)
        self.assertTrue(self.audit.ForgetSubject(A.ForgetSubjectRequest(
            subject=carol, requested_by=dpo, request_id=f"forget-{u}"), timeout=10).forgotten)
        keys = DB.sql("SELECT count(*) FROM audit.subject_keys")

        # Delivered again by an outbox, to either replica: the first entry, a duplicate (which
        # the relay deletes from its outbox).
        for stub in (self.audit, aus.stub(REPLICA)):
            again = self.append(removal, stub=stub)
            self.assertTrue(again.duplicate)
            self.assertEqual(again.entry, first)
        # Another record under its id: refused (the relay marks it failed).
        changed = A.EntryInput()
        changed.CopyFrom(removal)
        changed.metadata["role"] = "owner"
        error = self.assertRpcError(C.FAILED_PRECONDITION, self.append, changed)
        self.assertIn(f"keys:member-removed:{u}", error.details())
        # Neither gave her a key again: there is nothing to forget.
        self.assertEqual(DB.sql("SELECT count(*) FROM audit.subject_keys"), keys)
        self.assertFalse(self.audit.ForgetSubject(A.ForgetSubjectRequest(
            subject=carol, requested_by=dpo), timeout=10).forgotten)

        # A change made since is recorded under a fresh key, and names her until she is
        # forgotten again; the entry of before stays shredded.
        later = self.append(aus.entry_input(
            ledger.project, action=A.ACTION_MEMBER_ADDED, actor=admin, subject=carol,
            request_id=f"keys:member-added:{u}")).entry
        self.assertNotEqual(later.subject_ref, first.subject_ref)
        entries = aus.export_entries(self.audit, ledger, requested_by=dpo)
        self.assertEqual([(e.index, e.subject) for e in entries],
                         [(first.index, ""), (later.index, carol)])
        # The record of before, delivered once more, is still the first entry.
        again = self.append(removal, stub=aus.stub(REPLICA))
        self.assertTrue(again.duplicate)
        self.assertEqual(again.entry, first)
        self.assertLedgerValid(ledger)

    def test_a_record_of_a_change_before_a_forgetting_delivered_after_it_names_nobody(self):
        u = self.u
        carol, admin, dpo = (f"carol-{u}@example.com", f"admin-{u}@example.com",
                             f"dpo-{u}@example.com")
        ledger = aus.ledger(f"late-{u}", "production")
        added = self.append(aus.entry_input(
            ledger.project, action=A.ACTION_MEMBER_ADDED, actor=admin, subject=carol,
            request_id=f"authz:member-added:{u}")).entry
        # authz removes her; its outbox takes the record now and delivers it after she is
        # forgotten (audit was away, say).
        removed_at = timestamp_pb2.Timestamp()
        removed_at.GetCurrentTime()
        time.sleep(0.01)
        self.assertTrue(self.audit.ForgetSubject(A.ForgetSubjectRequest(
            subject=carol, requested_by=dpo, request_id=f"forget-{u}"), timeout=10).forgotten)
        keys = DB.sql("SELECT count(*) FROM audit.subject_keys")
        removal = aus.entry_input(ledger.project, action=A.ACTION_MEMBER_REMOVED, actor=admin,
                                  subject=carol, request_id=f"authz:member-removed:{u}")
        removal.occurred_at.CopyFrom(removed_at)
        # To the other replica, which held her key before it was destroyed.
        late = self.append(removal, stub=aus.stub(REPLICA)).entry
        self.assertEqual(late.subject_sealed, b"")
        self.assertEqual(len(late.subject_ref), 32)
        self.assertNotEqual(late.subject_ref, added.subject_ref)
        self.assertNotEqual(late.actor_sealed, b"")
        # No key was made for her, and the record delivered again is that entry.
        self.assertEqual(DB.sql("SELECT count(*) FROM audit.subject_keys"), keys)
        again = self.append(removal)
        self.assertTrue(again.duplicate)
        self.assertEqual(again.entry, late)
        entries = aus.export_entries(self.audit, ledger, requested_by=dpo)
        self.assertEqual([(e.index, e.actor, e.subject) for e in entries],
                         [(added.index, admin, ""), (late.index, admin, "")])
        self.assertLedgerValid(ledger)


# ---------------------------------------------------------------------------
# Replicas.
# ---------------------------------------------------------------------------


class ReplicaTest(AuditTestCase):
    def test_two_replicas_append_concurrently_to_one_ledger(self):
        project = f"repl-{self.u}"
        ledger = aus.ledger(project, "production")
        threads, per_thread = 8, 50
        barrier = threading.Barrier(threads)

        def client(t):
            process = MAIN if t % 2 == 0 else REPLICA
            channel = process.new_channel()
            try:
                stub = aus.stub(channel)
                barrier.wait()
                acked = {}
                for i in range(per_thread):
                    r = aus.append(stub, aus.entry_input(project, actor=f"c{t}-{self.u}",
                                                         tokens=i, request_id=f"t{t}-{i}"),
                                   timeout=30)
                    self.assertFalse(r.duplicate)
                    acked[r.entry.request_id] = r.entry.index
                return acked
            finally:
                channel.close()

        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(client, range(threads)))
        acked = {k: v for r in results for k, v in r.items()}
        n = threads * per_thread
        self.assertEqual(len(acked), n)
        self.assertEqual(sorted(acked.values()), list(range(n)), "indices not 0..n-1")

        for process in (MAIN, REPLICA):
            self.assertLedgerValid(ledger, stub=aus.stub(process), entries=n)
        # Both replicas sign checkpoints of the one ledger (nothing grows it until the export).
        checkpoint = aus.wait_checkpoint(aus.stub(REPLICA), ledger, n)
        self.assertEqual(checkpoint.checkpoint.tree_size, n)
        self.assertCheckpointSigned(checkpoint, ledger)
        entries = aus.export_entries(self.audit, ledger)
        self.assertEqual(len(entries), n)  # (its own audit_read comes after the one chunk)
        stored = {}
        for e in entries:
            self.assertNotIn(e.request_id, stored, "request id stored twice")
            stored[e.request_id] = e.index
        self.assertEqual(stored, acked)
        cache = self.assertEntriesSound(entries, ledger)
        self.assertEqual(cache.root(0, n), checkpoint.checkpoint.root_hash)
        # Every checkpoint signed up to then, by either replica, verifies here.
        sizes = checkpoint_sizes(ledger)
        self.assertIn(n, sizes)
        for size in (s for s in sizes if s <= n):
            c = self.audit.GetCheckpoint(A.GetCheckpointRequest(ledger=ledger, tree_size=size))
            self.assertCheckpointSigned(c, ledger)
            self.assertEqual(cache.root(0, size), c.checkpoint.root_hash, size)

        # A retry through the other replica is answered with the first entry.
        for t in range(threads):
            retry = aus.append(aus.stub(REPLICA if t % 2 == 0 else MAIN), aus.entry_input(
                project, actor=f"c{t}-{self.u}", tokens=3, request_id=f"t{t}-3"))
            self.assertTrue(retry.duplicate)
            self.assertEqual(retry.entry.index, acked[f"t{t}-3"])
        self.assertLedgerValid(ledger, entries=n + 1)

    def test_list_ledgers(self):
        project = f"list-{self.u}"
        for env in ("production", "staging", "staging"):
            self.append(aus.entry_input(project, env))
        ledgers = self.audit.ListLedgers(A.ListLedgersRequest(), timeout=10).ledgers
        sizes = {(l.ledger.project, l.ledger.environment): l.size for l in ledgers}
        self.assertEqual(sizes[(project, "production")], 1)
        self.assertEqual(sizes[(project, "staging")], 2)
        names = [(l.ledger.project, l.ledger.environment) for l in ledgers]
        self.assertEqual(names, sorted(names))


# ---------------------------------------------------------------------------
# Operations.
# ---------------------------------------------------------------------------


class OperationsTest(AuditTestCase):
    def test_metrics_count_appends_and_duplicates(self):
        def counters():
            text = pt.scrape_metrics(MAIN.metrics_port)
            return (pt.metric_value(text, "policy_audit_appended_entries_total"),
                    pt.metric_value(text, "policy_audit_duplicate_appends_total"), text)

        appended, duplicates, text = counters()
        self.assertIsNotNone(appended, "policy_audit_appended_entries_total missing")
        self.assertIsNotNone(duplicates, "policy_audit_duplicate_appends_total missing")
        self.assertIn("# TYPE policy_audit_appended_entries_total counter", text)
        entry = aus.entry_input(f"met-{self.u}", request_id=f"m-{self.u}")
        self.append(entry)
        self.append(entry)
        self.append(entry)
        self.append(aus.entry_input(f"met-{self.u}"))
        self.assertRpcError(C.INVALID_ARGUMENT, self.append, aus.entry_input("", actor=""))
        after_appended, after_duplicates, text = counters()
        self.assertEqual(after_appended - appended, 2)
        self.assertEqual(after_duplicates - duplicates, 2)
        self.assertGreaterEqual(pt.metric_value(
            text, "grpc_server_handled_total", grpc_method="Append", grpc_code="OK",
            grpc_service=aus.SERVICE_NAME), 4)
        self.assertGreaterEqual(pt.metric_value(
            text, "grpc_server_handled_total", grpc_method="Append",
            grpc_code="InvalidArgument", grpc_service=aus.SERVICE_NAME), 1)

    def test_health_serving(self):
        for process in (MAIN, REPLICA):
            self.assertEqual(pt.health_status(process.channel), "SERVING")
            self.assertEqual(pt.health_status(process.channel, aus.SERVICE_NAME), "SERVING")
        error = self.assertRpcError(C.NOT_FOUND, pt.health_status, MAIN.channel,
                                    "no.such.Service")
        self.assertIsNotNone(error)


if __name__ == "__main__":
    unittest.main()
