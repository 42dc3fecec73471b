"""The audit service killed with SIGKILL, repeatedly, under load.

Client threads append entries with unique request ids to one ledger, each retrying a request
(the same request id, the same entry) until it is acknowledged, while the test SIGKILLs the
audit process at random moments and restarts it on the same port. At the end every
acknowledged append must be stored exactly once, at the index its acknowledgement gave, the
ledger must have no gap, and it must verify (VerifyLedger, and here: leaf hashes from the
entries' fields, roots of every signed checkpoint from the leaves).

Needs POLICY_TEST_PG_URL (a role with CREATEDB and policy_audit_writer, as `tools/dev pg`
sets up); skips without it, or fails when POLICY_TEST_REQUIRE_PG=1.
Run: /usr/bin/python3 -m unittest -v tests.audit.test_audit_kill_fault
"""

import collections
import contextlib
import random
import signal
import sys
import threading
import time
import unittest
import uuid
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.audit import audit_support as aus  # noqa: E402
from tests.support import policy_testing as pt  # noqa: E402

import grpc  # noqa: E402
from policy.audit.v1 import audit_pb2  # noqa: E402

KILLS = 5
CLIENTS = 6
ACKS_BEFORE_KILL = 20  # each incarnation acknowledges this many before it may be killed
GIVE_UP_S = 30  # one request unacknowledged for this long fails the test
# Reconnect at once after a restart instead of gRPC's default backoff (1 s, growing).
CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 50),
                   ("grpc.min_reconnect_backoff_ms", 50),
                   ("grpc.max_reconnect_backoff_ms", 250)]

PG_URL = None
DB = None
_stack = None


def setUpModule():
    global PG_URL, DB, _stack
    PG_URL = pt.require_pg_url()
    pt.service_binary("audit")
    _stack = contextlib.ExitStack()
    try:
        DB = _stack.enter_context(pt.test_database(PG_URL, "audit_kill"))
    except BaseException:
        _stack.close()
        raise


def tearDownModule():
    _stack.close()


class Client:
    """One appending thread: request ids <prefix>-0, -1, ...; each retried until acknowledged."""

    def __init__(self, number, address, project, stop, run_id):
        self.number = number
        self.address = address
        self.project = project
        self.stop = stop
        self.prefix = f"k{run_id}-{number}"
        self.acked = {}  # request id -> (index, duplicate)
        self.attempted = []  # request ids, in order
        self.retries = 0
        self.retry_codes = collections.Counter()
        self.unexpected = []  # (request id, code, details)
        self.gave_up = []
        self.thread = threading.Thread(target=self.run, name=f"client-{number}", daemon=True)

    def entry(self, seq):
        request_id = f"{self.prefix}-{seq}"
        return audit_pb2.EntryInput(
            action=audit_pb2.ACTION_API_CALL, actor=f"client-{self.number}@kill.test",
            project=self.project, environment="production", model="m", tokens=seq,
            metadata={"client": str(self.number), "seq": str(seq)},
            content_hash=aus.sha256(request_id.encode()), request_id=request_id)

    def run(self):
        channel = grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS)
        stub = aus.stub(channel)
        try:
            seq = 0
            while not self.stop.is_set():
                self.append_until_acknowledged(stub, seq)
                seq += 1
        finally:
            channel.close()

    def append_until_acknowledged(self, stub, seq):
        request = audit_pb2.AppendRequest(entry=self.entry(seq))
        request_id = request.entry.request_id
        self.attempted.append(request_id)
        started = time.monotonic()
        while True:
            try:
                response = stub.Append(request, timeout=5, wait_for_ready=True)
            except grpc.RpcError as e:
                if e.code() not in aus.RETRYABLE:
                    self.unexpected.append((request_id, e.code(), e.details()))
                    return
                self.retries += 1
                self.retry_codes[e.code().name] += 1
                if time.monotonic() - started > GIVE_UP_S:
                    self.gave_up.append((request_id, e.code(), e.details()))
                    return
                continue
            self.acked[request_id] = (response.entry.index, response.duplicate)
            return


class KillFaultTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.keys = aus.new_keys()
        self.logs = []  # (name, log text) of every incarnation
        self.process = None

    def tearDown(self):
        if self.process is not None:
            self.process.cleanup()

    def start(self, number, port):
        process = aus.start_audit(DB.url, self.keys, name=f"audit-kill-{number}",
                                  listen=f"127.0.0.1:{port}")
        try:
            return aus.wait_serving(process)
        except BaseException:
            process.cleanup()
            raise

    def retire(self, process):
        self.logs.append((process.name, process.log_text()))
        process.cleanup()

    def test_sigkill_under_load_loses_and_duplicates_nothing(self):
        run_id = uuid.uuid4().hex[:8]
        project = f"kill-{run_id}"
        ledger = aus.ledger(project, "production")
        began = time.monotonic()

        self.process = self.start(0, 0)
        port = self.process.grpc_port
        stop = threading.Event()
        clients = [Client(i, f"127.0.0.1:{port}", project, stop, run_id) for i in range(CLIENTS)]
        for c in clients:
            c.thread.start()

        def acks():
            return sum(len(c.acked) for c in clients)

        rng = random.Random()
        kills = []
        try:
            for k in range(KILLS):
                floor = acks()
                pt.wait_until(lambda: acks() >= floor + ACKS_BEFORE_KILL, timeout=20,
                              message=f"{ACKS_BEFORE_KILL} appends acknowledged by "
                                      f"incarnation {k}")
                # The random moment itself: 0.3 to 1 s into the load, not a condition.
                time.sleep(rng.uniform(0.3, 1.0))
                at_kill = acks()
                self.process.proc.send_signal(signal.SIGKILL)
                self.process.proc.wait(10)
                self.assertEqual(self.process.proc.returncode, -signal.SIGKILL)
                kills.append(at_kill)
                self.retire(self.process)
                self.process = None
                self.process = self.start(k + 1, port)  # on the same port: clients reconnect
            floor = acks()
            pt.wait_until(lambda: acks() >= floor + ACKS_BEFORE_KILL, timeout=20,
                          message="appends acknowledged after the last restart")
        finally:
            stop.set()
            for c in clients:
                c.thread.join(GIVE_UP_S + 10)
        self.assertFalse([c.number for c in clients if c.thread.is_alive()],
                         "client threads still running")
        load_s = time.monotonic() - began

        unexpected = [u for c in clients for u in c.unexpected]
        gave_up = [g for c in clients for g in c.gave_up]
        self.assertEqual(unexpected, [], "appends failed with a non-retryable code")
        self.assertEqual(gave_up, [], "appends never acknowledged")
        acked = {}
        for c in clients:
            acked.update(c.acked)
        attempted = [rid for c in clients for rid in c.attempted]
        self.assertEqual(sorted(acked), sorted(attempted))  # every request was acknowledged
        duplicates = sum(1 for _, dup in acked.values() if dup)

        # What is stored: the whole ledger, through the export stream.
        stub = aus.stub(self.process)
        entries = aus.export_entries(stub, ledger, requested_by="kill-checker")
        self.assertEqual([e.index for e in entries], list(range(len(entries))),
                         "the ledger has gaps")
        counts = collections.Counter(e.request_id for e in entries if e.request_id)
        twice = {rid: n for rid, n in counts.items() if n > 1}
        self.assertEqual(twice, {}, "request ids stored more than once")
        missing = sorted(rid for rid in acked if rid not in counts)
        self.assertEqual(missing, [], "acknowledged appends missing from the ledger")
        self.assertEqual(set(counts), set(acked), "entries nobody was acknowledged for")
        stored_index = {e.request_id: e.index for e in entries if e.request_id}
        wrong = {rid: (index, stored_index[rid]) for rid, (index, _) in acked.items()
                 if stored_index[rid] != index}
        self.assertEqual(wrong, {}, "acknowledged index != stored index")
        others = [(e.index, e.action) for e in entries if not e.request_id]
        self.assertTrue(all(a == audit_pb2.ACTION_AUDIT_READ for _, a in others), others)
        self.assertLessEqual(len(others), 1)  # at most this export's own read

        # Each entry holds exactly what its client sent (a retry cannot have changed it).
        by_client = {c.prefix: c for c in clients}
        for e in entries:
            if not e.request_id:
                continue
            prefix, _, seq = e.request_id.rpartition("-")
            sent = by_client[prefix].entry(int(seq))
            self.assertEqual((e.actor, e.tokens, dict(e.metadata), e.content_hash),
                             (sent.actor, sent.tokens, dict(sent.metadata), sent.content_hash),
                             e.request_id)

        # The ledger verifies: the service's own check, and here from the entries' fields.
        report = stub.VerifyLedger(audit_pb2.VerifyLedgerRequest(ledger=ledger), timeout=30).report
        self.assertTrue(report.valid, f"{report.problem} (first bad index {report.first_bad_index})")
        self.assertGreaterEqual(report.entries_checked, len(entries))
        leaves = []
        for e in entries:
            self.assertEqual(e.leaf_hash, aus.entry_leaf_hash(e), e.index)
            leaves.append(e.leaf_hash)
        cache = aus.RootCache(leaves)
        for e in entries:
            self.assertEqual(e.subtree_hashes, aus.completed_hashes(cache, e.index), e.index)
        rows = DB.rows("SELECT c.tree_size FROM audit.checkpoints c JOIN audit.ledgers l "
                       f"ON l.id = c.ledger_id WHERE l.project = '{project}' ORDER BY 1")
        sizes = [int(size) for (size,) in rows if int(size) <= len(entries)]
        self.assertTrue(sizes, "no checkpoint was signed")
        for size in sizes:  # signed by any incarnation, killed or not
            c = stub.GetCheckpoint(audit_pb2.GetCheckpointRequest(ledger=ledger, tree_size=size),
                                   timeout=10)
            self.assertEqual(c.checkpoint.note, aus.checkpoint_note(c.checkpoint))
            if aus.HAVE_CRYPTOGRAPHY:
                self.assertTrue(aus.signature_valid(c.checkpoint, c.public_key), size)
            self.assertEqual(cache.root(0, size), c.checkpoint.root_hash, f"checkpoint {size}")

        # The table itself agrees (no row the export could have hidden).
        (total, distinct, width), = DB.rows(
            "SELECT count(*), count(DISTINCT request_id) FILTER (WHERE request_id <> ''), "
            "coalesce(max(idx) + 1, 0) FROM audit.entries e JOIN audit.ledgers l "
            f"ON l.id = e.ledger_id WHERE l.project = '{project}'")
        self.assertEqual(int(distinct), len(acked))
        self.assertEqual(int(total), int(width))
        self.assertGreaterEqual(int(total), len(entries))

        # The last incarnation stops cleanly; none reported an internal error (say, a restart
        # meeting what a kill left behind).
        self.assertEqual(self.process.terminate(), 0, self.process.log_tail())
        self.retire(self.process)
        self.process = None
        for name, text in self.logs:
            self.assertNotIn("internal error", text, f"{name}:\n{text[-3000:]}")

        elapsed = time.monotonic() - began
        print(f"\n  {len(kills)} SIGKILLs (after {kills} acknowledgements), {len(acked)} appends "
              f"acknowledged, {duplicates} of them as duplicates of an append committed before "
              f"a kill, {sum(c.retries for c in clients)} retries "
              f"({dict(sum((c.retry_codes for c in clients), collections.Counter()))}), "
              f"{len(entries)} entries, {len(sizes)} checkpoints verified; load {load_s:.1f} s, "
              f"total {elapsed:.1f} s", file=sys.stderr)
        self.assertLess(elapsed, 90)


if __name__ == "__main__":
    unittest.main()
