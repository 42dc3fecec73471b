"""Process-level tests of tools/audit_verify, the offline ledger verifier.

One database per module (t_audit_verify_<pid>_<n>) and one real `audit` process on it (MAIN).
setUpModule appends entries to the ledger verify/staging over gRPC, waits until a checkpoint
covers them, and saves what a user would keep: an export (JSON lines, ExportEntries) and the
checkpoint read just before it. The tests then run build/tools/audit_verify against the
server (--target), the export (--input) and the tables (--database), and against edited
exports, a wrong public key and trusted checkpoints from other histories: a checkpoint signed
by another key, and one signed by the right key over different entries (a second, in-memory
audit process with the same signing key).

The public key given to the tool is the one MAIN logs at start-up, never one an RPC returns.

Needs POLICY_TEST_PG_URL (a role with CREATEDB, granted policy_audit_writer as tools/dev
does); skips without it, or fails when POLICY_TEST_REQUIRE_PG=1. Run:
/usr/bin/python3 -m unittest -v tests.audit.test_audit_verify_tool
"""

import base64
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support import policy_testing as pt  # noqa: E402

import grpc  # noqa: E402
from google.protobuf import duration_pb2, json_format  # noqa: E402
from policy.audit.v1 import audit_pb2, audit_pb2_grpc  # noqa: E402

PROJECT, ENVIRONMENT = "verify", "staging"
ENTRIES = 40  # appended by setUpModule
TAMPERED_INDEX = 17

# Set up by setUpModule.
PG_URL = DB = MAIN = VERIFY = PUBLIC_KEY = SIGNING_KEY = None
WORK = None  # a temporary directory
EXPORT = CHECKPOINT = None  # paths of the saved export and its checkpoint
EXPORT_LINES = None
_stack = None


# ---------------------------------------------------------------------------
# Helpers.
# ---------------------------------------------------------------------------


def verify_binary():
    path = pt.BUILD_DIR / "tools" / "audit_verify"
    if not os.access(path, os.X_OK):
        raise AssertionError(
            f"{path} is not built (cmake --build {pt.BUILD_DIR} --target audit_verify)")
    return path


def start_audit(database_url, signing_key, name, subject_key=None, **flags):
    """A ready audit process; store=memory when `database_url` is None."""
    env = {"POLICY_AUDIT_SIGNING_KEY": signing_key,
           "POLICY_AUDIT_SUBJECT_KEY": subject_key or secrets.token_hex(32)}
    if database_url is None:
        flags.setdefault("store", "memory")
    else:
        env["POLICY_AUDIT_DATABASE_URL"] = database_url
    flags.setdefault("checkpoint_interval", "100ms")
    return pt.ServiceProcess(pt.service_binary("audit"), flags=flags, env=env,
                             name=name).start()


def logged_public_key(process):
    """The public key (hex) of the "checkpoint signing key" line of the process's log."""
    def find():
        for line in process.log_text().splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("msg") == "checkpoint signing key":
                    return record["public_key"]
        return None
    return pt.wait_until(find, timeout=10, message="the checkpoint signing key log line")


def key_id(public_key):
    """The key id (KeyIdOf in services/audit/checkpoint.h) of a public key in hex."""
    return hashlib.sha256(bytes.fromhex(public_key)).hexdigest()[:16]


def stub(process):
    return audit_pb2_grpc.AuditServiceStub(process.channel)


def ledger(project=PROJECT, environment=ENVIRONMENT):
    return audit_pb2.LedgerRef(project=project, environment=environment)


def append(process, count, tag, project=PROJECT, environment=ENVIRONMENT):
    """Appends `count` varied entries to a ledger (verify/staging); returns the last index."""
    audit = stub(process)
    last = None
    for i in range(count):
        entry = audit_pb2.EntryInput(
            action=[audit_pb2.ACTION_API_CALL, audit_pb2.ACTION_POLICY_VIOLATION,
                    audit_pb2.ACTION_MEMBER_ADDED][i % 3],
            actor=f"{tag}-user{i % 5}@example.com", project=project, environment=environment,
            model="gpt-4o", tokens=100 + i, latency=duration_pb2.Duration(nanos=1000 * i),
            outcome=audit_pb2.OUTCOME_BLOCKED if i % 4 == 0 else audit_pb2.OUTCOME_SUCCESS,
            metadata={"route": f"/v1/chat/{i}", "tag": tag},
            content_hash=bytes([i % 256]) * 32, request_id=f"{tag}-{i}",
            subject=f"{tag}-subject{i}@example.com" if i % 3 == 2 else "")
        last = audit.Append(audit_pb2.AppendRequest(entry=entry), timeout=10).entry.index
    return last


def wait_checkpoint(process, size, project=PROJECT, environment=ENVIRONMENT):
    """The newest checkpoint of a ledger (verify/staging) once it covers `size` entries."""
    def newest():
        try:
            response = stub(process).GetCheckpoint(
                audit_pb2.GetCheckpointRequest(ledger=ledger(project, environment)), timeout=5)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise
        return response.checkpoint if response.checkpoint.tree_size >= size else None
    return pt.wait_until(newest, timeout=20, interval=0.1,
                         message=f"a checkpoint of at least {size} entries")


def checkpoint_json(checkpoint):
    return json_format.MessageToJson(checkpoint, preserving_proto_field_name=True)


def export_lines(process):
    """The ledger's JSON lines, read with ExportEntries as a user would save them."""
    data = b"".join(chunk.jsonl for chunk in stub(process).ExportEntries(
        audit_pb2.ExportEntriesRequest(ledger=ledger(), requested_by="exporter@example.com"),
        timeout=30))
    return data.decode().splitlines()


def write(name, text):
    path = WORK / name
    path.write_text(text)
    return path


def write_lines(name, lines):
    return write(name, "".join(line + "\n" for line in lines))


def run_verify(*, project=PROJECT, environment=ENVIRONMENT, public_key=None, output="json",
               **flags):
    """Runs audit_verify with the flags given; returns the CompletedProcess.

    A `database` URL goes in POLICY_AUDIT_VERIFY_DATABASE (it may carry a password)."""
    args = dict(project=project, environment=environment,
                public_key=PUBLIC_KEY if public_key is None else public_key, output=output)
    args.update(flags)
    env = {}
    if "database" in args:
        env["POLICY_AUDIT_VERIFY_DATABASE"] = args.pop("database")
    return pt.run_binary(VERIFY, {k: v for k, v in args.items() if v != ""}, env=env,
                         timeout=120)


# ---------------------------------------------------------------------------
# Module set-up.
# ---------------------------------------------------------------------------


def setUpModule():
    global PG_URL, DB, MAIN, VERIFY, PUBLIC_KEY, SIGNING_KEY, WORK, EXPORT, CHECKPOINT
    global EXPORT_LINES, _stack
    PG_URL = pt.require_pg_url()
    pt.service_binary("audit")
    VERIFY = verify_binary()
    _stack = contextlib.ExitStack()
    try:
        WORK = Path(tempfile.mkdtemp(prefix="policy-audit-verify-"))
        _stack.callback(shutil.rmtree, WORK, ignore_errors=True)
        DB = _stack.enter_context(pt.test_database(PG_URL, "audit_verify"))
        SIGNING_KEY = secrets.token_hex(32)
        MAIN = start_audit(DB.url, SIGNING_KEY, "audit-main")
        _stack.callback(MAIN.cleanup)
        PUBLIC_KEY = logged_public_key(MAIN)
        last = append(MAIN, ENTRIES, "main")
        assert last == ENTRIES - 1, last
        # The checkpoint first, then the export: the export then covers it.
        checkpoint = wait_checkpoint(MAIN, ENTRIES)
        CHECKPOINT = write("checkpoint.json", checkpoint_json(checkpoint))
        EXPORT_LINES = export_lines(MAIN)
        EXPORT = write_lines("export.jsonl", EXPORT_LINES)
    except BaseException:
        _stack.close()
        raise


def tearDownModule():
    try:
        if MAIN is not None:
            code = MAIN.terminate()
            if code != 0:
                raise AssertionError(f"audit exited {code} on SIGTERM\n{MAIN.log_tail()}")
    finally:
        _stack.close()


# ---------------------------------------------------------------------------
# Tests.
# ---------------------------------------------------------------------------


class AuditVerifyToolTest(unittest.TestCase):
    maxDiff = None

    def assertExit(self, proc, code):
        self.assertEqual(proc.returncode, code,
                         f"exit {proc.returncode}, expected {code}\nstdout:\n{proc.stdout}\n"
                         f"stderr:\n{proc.stderr}")

    def report(self, proc, code):
        """The JSON report of a run that exited `code`."""
        self.assertExit(proc, code)
        return json.loads(proc.stdout)

    def assertValid(self, report, at_least):
        self.assertTrue(report["valid"], report)
        self.assertEqual(report["result"], "valid")
        self.assertGreaterEqual(report["entries_checked"], at_least)
        self.assertGreaterEqual(report["checkpoints_checked"], 1)
        self.assertRegex(report["root"], r"^[0-9a-f]{64}$")
        self.assertGreater(report["entries_per_second"], 0)

    # -- the three sources, untouched ----------------------------------------

    def test_rpc_valid(self):
        report = self.report(run_verify(target=MAIN.address,
                                        requested_by="auditor@example.com"), 0)
        self.assertValid(report, ENTRIES)
        self.assertTrue(report["source"].startswith("server "), report)
        self.assertEqual(report["notes"], [])

    def test_rpc_text_output(self):
        proc = run_verify(target=MAIN.address, requested_by="auditor@example.com",
                          output="text")
        self.assertExit(proc, 0)
        for label in ("entries checked:", "checkpoints checked:", "root:", "entries/s",
                      "VALID: entries 0 to"):
            self.assertIn(label, proc.stdout)

    def test_exported_file_valid(self):
        report = self.report(run_verify(input=EXPORT, checkpoint=CHECKPOINT), 0)
        self.assertValid(report, ENTRIES)
        self.assertEqual(report["entries_checked"], len(EXPORT_LINES))
        self.assertEqual(report["checkpoints_checked"], 1)
        self.assertEqual(report["newest_checkpoint"]["tree_size"],
                         int(json.loads(CHECKPOINT.read_text())["tree_size"]))

    def test_a_checkpoint_as_policyctl_prints_it_is_taken(self):
        # `policyctl audit checkpoint --output=json`: the checkpoint inside a GetCheckpointResponse.
        wrapped = audit_pb2.GetCheckpointResponse(
            checkpoint=json_format.Parse(CHECKPOINT.read_text(), audit_pb2.Checkpoint()),
            public_key=bytes.fromhex(PUBLIC_KEY))
        report = self.report(run_verify(input=EXPORT, checkpoint=write(
            "wrapped.json", json_format.MessageToJson(wrapped, preserving_proto_field_name=True))),
            0)
        self.assertEqual(report["entries_checked"], len(EXPORT_LINES))
        # Anything else is still no checkpoint.
        proc = run_verify(input=EXPORT, checkpoint=write("other.json", '{"public_key": ""}'))
        self.assertExit(proc, 2)

    def test_database_valid_and_read_only(self):
        count = "SELECT count(*) FROM audit.entries"
        before = DB.sql(count).strip()
        report = self.report(run_verify(database=DB.url), 0)
        self.assertValid(report, ENTRIES)
        # Every stored checkpoint of the ledger is checked.
        stored = DB.sql("SELECT count(*) FROM audit.checkpoints c JOIN audit.ledgers l "
                        f"ON l.id = c.ledger_id WHERE l.project = '{PROJECT}'").strip()
        self.assertGreaterEqual(report["checkpoints_checked"], int(stored))
        self.assertEqual(DB.sql(count).strip(), before, "the database mode wrote entries")

    def test_saved_checkpoint_is_trusted_next_time(self):
        saved = WORK / "saved.json"
        report = self.report(run_verify(database=DB.url, save_checkpoint=saved), 0)
        self.assertEqual(report["saved_checkpoint"], str(saved))
        first = json.loads(saved.read_text())
        self.assertEqual(int(first["tree_size"]), report["newest_checkpoint"]["tree_size"])
        # The ledger grows and is signed again; it must still extend the saved checkpoint.
        last = append(MAIN, 3, f"grow{secrets.token_hex(3)}")
        wait_checkpoint(MAIN, last + 1)
        report = self.report(run_verify(target=MAIN.address, requested_by="auditor@example.com",
                                        trusted_checkpoint=saved, save_checkpoint=saved), 0)
        self.assertValid(report, last + 1)
        # Every stored checkpoint up to the newest (the trusted one among them), as from the
        # database; the service may have signed more since (the export is recorded).
        newest = report["newest_checkpoint"]["tree_size"]
        stored = DB.sql("SELECT count(*) FROM audit.checkpoints c JOIN audit.ledgers l "
                        f"ON l.id = c.ledger_id WHERE l.project = '{PROJECT}' "
                        f"AND c.tree_size <= {newest}").strip()
        self.assertGreater(int(stored), 2)
        self.assertEqual(report["checkpoints_checked"], int(stored))
        self.assertGreater(int(json.loads(saved.read_text())["tree_size"]),
                           int(first["tree_size"]))

    # -- tampering -----------------------------------------------------------

    def test_edited_field_names_its_index(self):
        lines = list(EXPORT_LINES)
        entry = json.loads(lines[TAMPERED_INDEX])
        self.assertEqual(int(entry["index"]), TAMPERED_INDEX)
        entry["tokens"] = str(int(entry["tokens"]) + 1)
        lines[TAMPERED_INDEX] = json.dumps(entry, separators=(",", ":"))
        tampered = write_lines("tampered.jsonl", lines)
        saved = WORK / "never-saved.json"
        report = self.report(run_verify(input=tampered, checkpoint=CHECKPOINT,
                                        save_checkpoint=saved), 1)
        self.assertFalse(report["valid"])
        self.assertEqual(report["result"], "invalid")
        self.assertEqual(report["first_bad_index"], TAMPERED_INDEX)
        self.assertIn(f"entry {TAMPERED_INDEX}", report["problem"])
        self.assertIn("leaf hash", report["problem"])
        self.assertFalse(saved.exists(), "a checkpoint was saved for an invalid ledger")
        # The text output names the index too.
        proc = run_verify(input=tampered, checkpoint=CHECKPOINT, output="text")
        self.assertExit(proc, 1)
        self.assertIn(f"INVALID: first bad index {TAMPERED_INDEX}:", proc.stdout)

    def test_malformed_hash_names_its_index(self):
        # Valid JSON and a valid Entry, but a leaf hash of 31 bytes: a corrupt entry, not a
        # usage error.
        lines = list(EXPORT_LINES)
        entry = json.loads(lines[TAMPERED_INDEX])
        entry["leaf_hash"] = base64.b64encode(bytes(31)).decode()
        lines[TAMPERED_INDEX] = json.dumps(entry)
        report = self.report(run_verify(input=write_lines("short-hash.jsonl", lines),
                                        checkpoint=CHECKPOINT), 1)
        self.assertEqual(report["first_bad_index"], TAMPERED_INDEX)
        self.assertIn("leaf_hash", report["problem"])
        self.assertIn(f"line {TAMPERED_INDEX + 1}", report["problem"])

    def test_deleted_line_names_its_index(self):
        lines = EXPORT_LINES[:TAMPERED_INDEX] + EXPORT_LINES[TAMPERED_INDEX + 1:]
        report = self.report(run_verify(input=write_lines("deleted.jsonl", lines),
                                        checkpoint=CHECKPOINT), 1)
        self.assertEqual(report["first_bad_index"], TAMPERED_INDEX)
        self.assertIn("missing", report["problem"])

    def test_truncated_export_is_caught_by_the_checkpoint(self):
        lines = EXPORT_LINES[:10]
        report = self.report(run_verify(input=write_lines("truncated.jsonl", lines),
                                        checkpoint=CHECKPOINT), 1)
        self.assertEqual(report["first_bad_index"], 10)
        # A checkpoint taken after the export looks the same: the notes say which to take first.
        self.assertIn("the export ends at 10 entries, before the checkpoint given",
                      " ".join(report["notes"]))

    def test_database_rows_changed_behind_the_triggers(self):
        # The tables' owner can switch the append-only triggers off; a ledger of its own, so
        # that verify/staging stays intact for the other tests.
        project, environment = "tamper", "sandbox"
        append(MAIN, 12, "rows", project, environment)
        wait_checkpoint(MAIN, 12, project, environment)
        where = ("FROM audit.ledgers l WHERE e.ledger_id = l.id AND l.project = 'tamper' "
                 "AND e.idx = {}")
        self.report(run_verify(database=DB.url, project=project, environment=environment), 0)
        DB.sql("ALTER TABLE audit.entries DISABLE TRIGGER entries_append_only")
        try:
            DB.sql(f"UPDATE audit.entries e SET tokens = tokens + 1 {where.format(7)}")
            report = self.report(run_verify(database=DB.url, project=project,
                                            environment=environment), 1)
            self.assertEqual(report["first_bad_index"], 7)
            self.assertIn("leaf hash", report["problem"])
            # A row the store cannot even read as an entry.
            DB.sql(f"UPDATE audit.entries e SET action = 'no_such_action' {where.format(3)}")
            report = self.report(run_verify(database=DB.url, project=project,
                                            environment=environment), 1)
            self.assertEqual(report["first_bad_index"], 3)
            self.assertIn("no_such_action", report["problem"])
        finally:
            DB.sql("ALTER TABLE audit.entries ENABLE TRIGGER entries_append_only")

    # -- keys and trusted checkpoints ---------------------------------------

    def test_wrong_public_key_is_refused(self):
        wrong = secrets.token_hex(32)
        for source in (dict(input=EXPORT, checkpoint=CHECKPOINT),
                       dict(target=MAIN.address, requested_by="auditor@example.com"),
                       dict(database=DB.url)):
            with self.subTest(source=sorted(source)):
                report = self.report(run_verify(public_key=wrong, **source), 1)
                self.assertFalse(report["valid"])
                self.assertIn("valid signature", report["problem"])
                notes = " ".join(report["notes"])
                self.assertIn("not this service's", notes)
                self.assertIn(report["key_id"], notes)
        # Over RPC, the key the server reports is only compared, and the mismatch named.
        report = self.report(run_verify(public_key=wrong, target=MAIN.address,
                                        requested_by="auditor@example.com"), 1)
        self.assertIn(f"the server reports the public key {PUBLIC_KEY}", " ".join(report["notes"]))

    def test_a_rotated_signing_key(self):
        """Key A signs a ledger; the service goes on with key B, A among its previous keys."""
        project, environment = "rotation", "staging"
        subject_key = secrets.token_hex(32)
        key_a, key_b = secrets.token_hex(32), secrets.token_hex(32)
        with pt.test_database(PG_URL, "audit_rotation") as db:
            # The migration needs neither the signing key nor the subject key.
            migrated = pt.run_binary(pt.service_binary("audit"), {"migrate_only": True},
                                     env={"POLICY_AUDIT_DATABASE_URL": db.url})
            self.assertEqual(migrated.returncode, 0, migrated.stderr)
            with start_audit(db.url, key_a, "audit-key-a", subject_key=subject_key,
                             apply_migrations=False) as a:
                public_a = logged_public_key(a)
                append(a, 6, "rot-a", project, environment)
                wait_checkpoint(a, 6, project, environment)
                append(a, 2, "rot-a2", project, environment)  # Not signed by A.
            id_a = key_id(public_a)
            with start_audit(db.url, key_b, "audit-key-b-alone", subject_key=subject_key) as alone:
                report = stub(alone).VerifyLedger(audit_pb2.VerifyLedgerRequest(
                    ledger=ledger(project, environment)), timeout=30).report
                self.assertFalse(report.valid)
                self.assertIn(f"it names signing key {id_a}, an unknown key", report.problem)
            with start_audit(db.url, key_b, "audit-key-b", subject_key=subject_key,
                             previous_public_keys=public_a) as b:
                public_b = logged_public_key(b)
                # The configured keys are logged by key id only.
                settings = [line for line in b.log_text().splitlines()
                            if '"msg":"configuration"' in line]
                self.assertEqual(len(settings), 1, b.log_text())
                self.assertIn(f"previous_public_keys=key ids {id_a}", settings[0])
                self.assertNotIn(public_a, settings[0])
                append(b, 3, "rot-b", project, environment)
                newest = wait_checkpoint(b, 11, project, environment)
                self.assertEqual(newest.key_id, key_id(public_b))
                report = stub(b).VerifyLedger(audit_pb2.VerifyLedgerRequest(
                    ledger=ledger(project, environment)), timeout=30).report
                self.assertTrue(report.valid, report.problem)
                self.assertEqual(report.entries_checked, 11)
                self.assertEqual(set(report.checkpoints_by_key), {id_a, key_id(public_b)})
                # Over RPC, every checkpoint is checked, as from the database: with B alone,
                # A's are those of an unknown key, though B signed the newest.
                rpc = dict(target=b.address, requested_by="auditor@example.com",
                           project=project, environment=environment)
                rpc_alone = self.report(run_verify(public_key=public_b, **rpc), 1)
                self.assertIn(f"it names signing key {id_a}, an unknown key",
                              rpc_alone["problem"])
                rpc_both = self.report(run_verify(public_key=f"{public_b},{public_a}", **rpc), 0)
                self.assertEqual(set(rpc_both["checkpoints_by_key"]), {id_a, key_id(public_b)})
                self.assertGreaterEqual(rpc_both["checkpoints_checked"], 2)
                # ListCheckpoints pages, smallest first.
                sizes, after = [], 0
                while True:
                    page = stub(b).ListCheckpoints(audit_pb2.ListCheckpointsRequest(
                        ledger=ledger(project, environment), after_size=after, page_size=1),
                        timeout=10)
                    sizes += [c.tree_size for c in page.checkpoints]
                    if not page.next_after_size:
                        break
                    after = page.next_after_size
                self.assertEqual(sizes, sorted(set(sizes)))
                # The service may have signed more since (the exports are recorded).
                newest = rpc_both["newest_checkpoint"]["tree_size"]
                self.assertIn(newest, sizes)
                self.assertEqual(rpc_both["checkpoints_checked"],
                                 len([size for size in sizes if size <= newest]))
            # Offline, from the database: both keys given.
            both = self.report(run_verify(database=db.url, project=project,
                                          environment=environment,
                                          public_key=f"{public_b},{public_a}"), 0)
            self.assertEqual(both["key_ids"], [key_id(public_b), id_a])
            self.assertEqual(set(both["checkpoints_by_key"]), {id_a, key_id(public_b)})
            self.assertEqual(both["newest_checkpoint"]["key_id"], key_id(public_b))
            self.assertTrue(both["newest_checkpoint"]["signed_by_given_key"])
            text = run_verify(database=db.url, project=project, environment=environment,
                              public_key=f"{public_b},{public_a}", output="text")
            self.assertEqual(text.returncode, 0, text.stdout + text.stderr)
            self.assertIn(f"checkpoints by key:  {min(id_a, key_id(public_b))} ", text.stdout)
            self.assertIn(f"by key {key_id(public_b)}, root", text.stdout)
            # Only the current key: A's checkpoints are those of an unknown key.
            alone = self.report(run_verify(database=db.url, project=project,
                                           environment=environment, public_key=public_b), 1)
            self.assertIn(f"it names signing key {id_a}, an unknown key", alone["problem"])
            self.assertIn("give the earlier keys too", " ".join(alone["notes"]))

    def test_trusted_checkpoint_signed_by_another_key_is_refused(self):
        with start_audit(None, secrets.token_hex(32), "audit-forger") as forger:
            append(forger, ENTRIES + 5, "forged")
            fabricated = write("fabricated.json",
                               checkpoint_json(wait_checkpoint(forger, ENTRIES + 5)))
        for source in (dict(input=EXPORT, checkpoint=CHECKPOINT), dict(database=DB.url)):
            with self.subTest(source=sorted(source)):
                report = self.report(run_verify(trusted_checkpoint=fabricated, **source), 1)
                self.assertIn("valid signature", report["problem"])
                self.assertIn("trusted checkpoint", " ".join(report["notes"]))

    def test_trusted_checkpoint_of_another_history_is_refused(self):
        # Signed by the right key, over entries this ledger never held: a fork.
        with start_audit(None, SIGNING_KEY, "audit-fork") as fork:
            append(fork, 5, "fork")
            other = write("other-history.json", checkpoint_json(wait_checkpoint(fork, 5)))
        for source in (dict(input=EXPORT, checkpoint=CHECKPOINT),
                       dict(target=MAIN.address, requested_by="auditor@example.com"),
                       dict(database=DB.url)):
            with self.subTest(source=sorted(source)):
                report = self.report(run_verify(trusted_checkpoint=other, **source), 1)
                # The stored checkpoint of the fork's size, if MAIN signed one, or the trusted
                # one (named as such).
                self.assertRegex(report["problem"],
                                 "differs from (its signed checkpoint|the trusted checkpoint)")
                # MAIN may have signed a tree of the fork's size too: then the key signed two.
                self.assertRegex(" ".join(report["notes"]),
                                 "does not extend the history|split view")

    def test_trusted_checkpoint_larger_than_the_ledger_is_refused(self):
        lines = EXPORT_LINES[:ENTRIES - 5]
        report = self.report(run_verify(input=write_lines("short.jsonl", lines),
                                        trusted_checkpoint=CHECKPOINT), 1)
        self.assertEqual(report["first_bad_index"], ENTRIES - 5)
        self.assertIn("missing", report["problem"])

    # -- usage and availability ---------------------------------------------

    def test_usage_errors_exit_2(self):
        cases = {
            "no source": dict(),
            "two sources": dict(input=EXPORT, database=DB.url),
            "short key": dict(input=EXPORT, checkpoint=CHECKPOINT, public_key="abcd"),
            "short second key": dict(input=EXPORT, checkpoint=CHECKPOINT,
                                     public_key=f"{PUBLIC_KEY},abcd"),
            "no requester": dict(target=MAIN.address),
            "bad ledger": dict(input=EXPORT, checkpoint=CHECKPOINT, environment="moon"),
            "no checkpoint": dict(input=EXPORT),
            "missing file": dict(input=WORK / "nope.jsonl", checkpoint=CHECKPOINT),
            "bad checkpoint file": dict(input=EXPORT, checkpoint=EXPORT),
            "unknown flag": dict(input=EXPORT, checkpoint=CHECKPOINT, bogus="1"),
        }
        for name, flags in cases.items():
            with self.subTest(name):
                proc = run_verify(**flags)
                self.assertExit(proc, 2)
                self.assertTrue(proc.stderr.strip(), "no message on stderr")
        self.assertIn("--public_key: entry 2 (4 characters, not shown)",
                      run_verify(input=EXPORT, checkpoint=CHECKPOINT,
                                 public_key=f"{PUBLIC_KEY},abcd").stderr)

    def test_malformed_json_names_the_line(self):
        lines = list(EXPORT_LINES)
        lines[4] = lines[4][:-3]  # cut off the closing quote and braces
        proc = run_verify(input=write_lines("malformed.jsonl", lines), checkpoint=CHECKPOINT)
        self.assertExit(proc, 2)
        self.assertIn("line 5", proc.stderr)
        self.assertEqual(json.loads(proc.stdout)["result"], "error")

    def test_unreachable_sources_exit_3(self):
        port = pt.free_port()
        proc = run_verify(target=f"127.0.0.1:{port}", requested_by="auditor@example.com",
                          timeout="1s")
        self.assertExit(proc, 3)
        self.assertIn("cannot reach", proc.stderr)
        proc = run_verify(database=f"postgresql://nobody@127.0.0.1:{port}/none", timeout="1s")
        self.assertExit(proc, 3)

    def test_help_documents_exit_codes(self):
        proc = subprocess.run([str(VERIFY), "--help"], capture_output=True, text=True,
                              timeout=30, stdin=subprocess.DEVNULL)
        self.assertExit(proc, 0)
        for text in ("--target", "--input", "--database", "--trusted_checkpoint",
                     "A wrong public key exits 1"):
            self.assertIn(text, proc.stdout)


class LargeEntriesTest(unittest.TestCase):
    """Entries at the largest metadata allowed (32 pairs of 1024-byte values, ~35 KB each):
    500 of them would make a 17 MB chunk. The export's chunks stay within gRPC's default
    4 MiB receive limit, and audit_verify reads even a server that sends more at once."""

    PROJECT = "bigverify"
    COUNT = 130  # ~4.5 MB of entries: more than one 4 MiB message

    @classmethod
    def setUpClass(cls):
        audit = stub(MAIN)
        for i in range(cls.COUNT):
            entry = audit_pb2.EntryInput(
                action=audit_pb2.ACTION_API_CALL, actor="big@example.com",
                project=cls.PROJECT, environment=ENVIRONMENT,
                metadata={f"k{k:02d}{'x' * 60}": f"{i}-{k}-" + "v" * 1000 for k in range(32)})
            audit.Append(audit_pb2.AppendRequest(entry=entry), timeout=10)
        cls.checkpoint = wait_checkpoint(MAIN, cls.COUNT, project=cls.PROJECT)

    def export(self, from_index=0):
        return list(stub(MAIN).ExportEntries(audit_pb2.ExportEntriesRequest(
            ledger=ledger(self.PROJECT), from_index=from_index,
            requested_by="exporter@example.com"), timeout=30))

    def test_export_chunks_fit_the_default_receive_limit(self):
        chunks = self.export()  # A default Python client: 4 MiB receive limit.
        self.assertGreater(len(chunks), 1)
        indexes = []
        for chunk in chunks:
            self.assertLessEqual(len(chunk.jsonl), 1 << 20)
            lines = chunk.jsonl.decode().splitlines()
            indexes += [int(json.loads(line).get("index", 0)) for line in lines]
            self.assertEqual(chunk.next_index, indexes[-1] + 1)
        self.assertEqual(indexes[:self.COUNT], list(range(self.COUNT)))
        # Resuming from a chunk's next_index goes on from there.
        resumed = self.export(chunks[0].next_index)
        first = json.loads(resumed[0].jsonl.decode().splitlines()[0])
        self.assertEqual(int(first["index"]), chunks[0].next_index)

    def test_verify_reads_the_ledger(self):
        report = json.loads(run_verify(project=self.PROJECT, target=MAIN.address,
                                       requested_by="auditor@example.com").stdout)
        self.assertTrue(report["valid"], report)
        self.assertGreaterEqual(report["entries_checked"], self.COUNT)

    def test_verify_reads_a_server_that_sends_everything_at_once(self):
        jsonl = b"".join(chunk.jsonl for chunk in self.export())
        self.assertGreater(len(jsonl), 4 << 20)
        checkpoint = self.checkpoint

        class Whole(audit_pb2_grpc.AuditServiceServicer):
            def GetCheckpoint(self, request, context):
                return audit_pb2.GetCheckpointResponse(
                    checkpoint=checkpoint, public_key=bytes.fromhex(PUBLIC_KEY))

            def ExportEntries(self, request, context):
                yield audit_pb2.ExportEntriesResponse(
                    jsonl=jsonl, next_index=int(json.loads(jsonl.splitlines()[-1])["index"]) + 1)

        from concurrent import futures
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        audit_pb2_grpc.add_AuditServiceServicer_to_server(Whole(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            proc = run_verify(project=self.PROJECT, target=f"127.0.0.1:{port}",
                              requested_by="auditor@example.com")
        finally:
            server.stop(None)
        self.assertEqual(proc.returncode, 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        self.assertTrue(json.loads(proc.stdout)["valid"], proc.stdout)


def merkle_root(leaves):
    """The Merkle root (services/audit/merkle.h) over leaf hashes (bytes), at least one."""
    if len(leaves) == 1:
        return leaves[0]
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    return hashlib.sha256(b"\x01" + merkle_root(leaves[:split]) +
                          merkle_root(leaves[split:])).digest()


def sign_checkpoint(project, environment, size, root, micros, seed_hex):
    """A v1.Checkpoint of `size` signed as CheckpointSigner signs (checkpoint.h)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))
    note = (f"policy-suite audit checkpoint v1\nledger {project or '-'} {environment or '-'}\n"
            f"size {size}\nroot {root.hex()}\ntime {micros}\n")
    checkpoint = audit_pb2.Checkpoint(
        ledger=ledger(project, environment), tree_size=size, root_hash=root, note=note,
        signature=key.sign(note.encode()), key_id=key_id(PUBLIC_KEY))
    checkpoint.time.FromMicroseconds(micros)
    return checkpoint


class ManyCheckpointsTest(unittest.TestCase):
    """A ledger signed at every size, more checkpoints than the verifier reads at a time
    (LedgerVerifier::kCheckpointPage, 1000), served by a fake server that lists at most
    SERVER_PAGE a call: audit_verify reads them a page at a time alongside the export, not
    every one before it, and checks every one as strictly."""

    PROJECT = "manycheckpoints"
    COUNT = 2100
    SERVER_PAGE = 300

    @classmethod
    def setUpClass(cls):
        append(MAIN, cls.COUNT, "many", project=cls.PROJECT)
        chunks = list(stub(MAIN).ExportEntries(audit_pb2.ExportEntriesRequest(
            ledger=ledger(cls.PROJECT), requested_by="exporter@example.com"), timeout=60))
        cls.lines = [line for c in chunks for line in c.jsonl.decode().splitlines()]
        leaves = [base64.b64decode(json.loads(line)["leaf_hash"]) for line in cls.lines]
        cls.size = len(leaves)
        assert cls.size >= cls.COUNT, cls.size
        # Each size's root from the tree of the size before it would be quadratic: fold a
        # frontier of perfect subtrees instead.
        cls.roots, frontier = [], []  # frontier: (height, hash), the tallest first
        for leaf in leaves:
            node = (0, leaf)
            while frontier and frontier[-1][0] == node[0]:
                height, left = frontier.pop()
                node = (height + 1, hashlib.sha256(b"\x01" + left + node[1]).digest())
            frontier.append(node)
            root = frontier[-1][1]
            for _, left in reversed(frontier[:-1]):
                root = hashlib.sha256(b"\x01" + left + root).digest()
            cls.roots.append(root)
        assert cls.roots[-1] == merkle_root(leaves)

    def serve(self, roots):
        """Runs audit_verify against a fake server of the ledger's export and a checkpoint of
        every size (of root roots[size - 1]); returns the process and, per ListCheckpoints
        call, its after_size and how many entries the export had sent."""
        project, lines = self.PROJECT, self.lines
        checkpoints = [sign_checkpoint(project, ENVIRONMENT, size, root, 1_700_000_000_000_000
                                       + size, SIGNING_KEY)
                       for size, root in enumerate(roots, start=1)]
        calls, sent = [], [0]
        server_page = self.SERVER_PAGE

        class Fake(audit_pb2_grpc.AuditServiceServicer):
            def GetCheckpoint(self, request, context):
                return audit_pb2.GetCheckpointResponse(
                    checkpoint=checkpoints[-1], public_key=bytes.fromhex(PUBLIC_KEY))

            def ListCheckpoints(self, request, context):
                calls.append((request.after_size, sent[0]))
                after = [c for c in checkpoints if c.tree_size > request.after_size]
                page = after[:min(request.page_size or 1000, server_page)]
                return audit_pb2.ListCheckpointsResponse(
                    checkpoints=page,
                    next_after_size=page[-1].tree_size if len(after) > len(page) else 0)

            def ExportEntries(self, request, context):
                for i in range(0, len(lines), 50):
                    sent[0] = i
                    yield audit_pb2.ExportEntriesResponse(
                        jsonl="".join(line + "\n" for line in lines[i:i + 50]).encode(),
                        next_index=min(i + 50, len(lines)))
                sent[0] = len(lines)

        from concurrent import futures
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        audit_pb2_grpc.add_AuditServiceServicer_to_server(Fake(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            proc = run_verify(project=self.PROJECT, target=f"127.0.0.1:{port}",
                              requested_by="auditor@example.com")
        finally:
            server.stop(None)
        return proc, calls

    def test_every_checkpoint_is_checked_a_page_at_a_time(self):
        proc, calls = self.serve(self.roots)
        self.assertEqual(proc.returncode, 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        report = json.loads(proc.stdout)
        self.assertTrue(report["valid"], report)
        self.assertEqual(report["entries_checked"], self.size)
        self.assertEqual(report["checkpoints_checked"], self.size)
        self.assertEqual(report["checkpoints_by_key"], {key_id(PUBLIC_KEY): self.size})
        self.assertEqual(report["newest_checkpoint"]["tree_size"], self.size)
        self.assertEqual(report["root"], self.roots[-1].hex())
        self.assertEqual(report["unsigned_entries"], 0)
        # The checkpoints past the first 1000 are read again once the export has passed them:
        # they are not all held from before the export.
        self.assertTrue(any(after >= 1000 and sent >= 1000 for after, sent in calls), calls)

    def test_a_checkpoint_past_the_first_page_that_differs_is_found(self):
        roots = list(self.roots)
        roots[1499] = hashlib.sha256(b"another tree").digest()  # the checkpoint of size 1500
        proc, _ = self.serve(roots)
        self.assertEqual(proc.returncode, 1, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        report = json.loads(proc.stdout)
        self.assertFalse(report["valid"], report)
        self.assertEqual(report["first_bad_index"], 1499)
        self.assertIn("the tree of size 1500 differs from its signed checkpoint", report["problem"])
        self.assertEqual(report["checkpoints_checked"], 1499)

if __name__ == "__main__":
    unittest.main()
