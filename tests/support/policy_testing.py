"""Helpers for process-level tests of the policy-suite services.

Every service test starts the real binaries (build/services/<name>/<name>) against a real
PostgreSQL and talks to them over gRPC and HTTP, the way a client would. This module holds
what those tests share:

  - REPO_ROOT, BUILD_DIR (env POLICY_BUILD_DIR, default <repo>/build); BUILD_DIR/python,
    where the generated protobuf modules live, is put on sys.path on import;
  - require_pg_url(): the PostgreSQL URL from POLICY_TEST_PG_URL; skips the tests when it is
    missing, unless POLICY_TEST_REQUIRE_PG=1, in which case it fails them;
  - psql(), test_database(): SQL through /usr/bin/psql, one throw-away database per test;
  - PrivatePostgres: a private PostgreSQL 15 cluster a test may stop and restart at will;
  - ServiceProcess: a service binary with flags/env, its ready file, log and channel;
    run_binary() for one-shot invocations (--migrate_only, --bootstrap_admin, ...);
  - health_status(), scrape_metrics()/metric_value(), error_reason(), wait_until(),
    free_port().

Only the Python standard library, grpcio and protobuf are used (Debian's python3-grpcio and
python3-protobuf: run the tests with /usr/bin/python3). psql is used instead of a Python
PostgreSQL driver so that no extra package is needed.
"""

import atexit
import contextlib
import hashlib
import itertools
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request
import weakref
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("POLICY_BUILD_DIR") or REPO_ROOT / "build").resolve()
PYTHON_DIR = BUILD_DIR / "python"
if str(PYTHON_DIR) not in sys.path:
    sys.path.insert(0, str(PYTHON_DIR))

import grpc  # noqa: E402  (after the sys.path change, like the generated modules)

PSQL = "/usr/bin/psql"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
_NON_IDENT_RE = re.compile(r"[^A-Za-z0-9_]")


# ---------------------------------------------------------------------------
# Paths, ports, polling.
# ---------------------------------------------------------------------------


def service_binary(name):
    """build/services/<name>/<name>; fails the test when it has not been built."""
    path = BUILD_DIR / "services" / name / name
    if not os.access(path, os.X_OK):
        raise AssertionError(
            f"{path} is not built (cmake --build {BUILD_DIR} --target {name})")
    return path


def free_port(host="127.0.0.1"):
    """A TCP port that was free a moment ago (the OS may hand it out again later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _ephemeral_low():
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def stable_port(host="127.0.0.1"):
    """A free TCP port below the kernel's ephemeral range, for a server that is stopped and
    started again on the same address: while it is down, no outgoing connection can take the
    port (those get ephemeral ports), and other test servers listen on ephemeral ports too."""
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randint(max(1024, low - 12000), low - 1)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below the ephemeral range")


def wait_until(predicate, timeout, interval=0.05, message=None, ignore=()):
    """Calls predicate() until it returns something truthy, and returns that.

    Raises AssertionError (a test failure) after `timeout` seconds, naming `message`, the
    last value and the last ignored exception. Exceptions of the types in `ignore` count as
    "not yet"; others propagate at once.
    """
    deadline = time.monotonic() + timeout
    last, last_error = None, None
    while True:
        try:
            last = predicate()
            if last:
                return last
        except ignore as e:  # noqa: PERF203 - polling
            last_error = e
        if time.monotonic() >= deadline:
            detail = f"last value {last!r}"
            if last_error is not None:
                detail += f", last error {last_error!r}"
            raise AssertionError(
                f"timed out after {timeout} s waiting for {message or predicate}: {detail}")
        time.sleep(interval)


# ---------------------------------------------------------------------------
# PostgreSQL.
# ---------------------------------------------------------------------------


def require_pg_url():
    """POLICY_TEST_PG_URL, a URL of a role with CREATEDB.

    Missing: skips (unittest.SkipTest), or fails when POLICY_TEST_REQUIRE_PG=1 (CI and
    `tools/dev test` set it, so that a misconfigured run cannot pass by skipping).
    """
    url = os.environ.get("POLICY_TEST_PG_URL", "").strip()
    if url:
        return url
    if os.environ.get("POLICY_TEST_REQUIRE_PG", "") not in ("", "0"):
        raise AssertionError(
            "POLICY_TEST_PG_URL is not set but POLICY_TEST_REQUIRE_PG=1: these tests need "
            "PostgreSQL (export POLICY_TEST_PG_URL=$(tools/dev pg))")
    raise unittest.SkipTest("POLICY_TEST_PG_URL is not set (export POLICY_TEST_PG_URL=$(tools/dev pg))")


def require_runtime_url(service, database):
    """POLICY_TEST_PG_<SERVICE>_RUNTIME_URL on `database`: the login role `service` runs as in
    production, a member of policy_<service>_runtime only (tools/dev test sets it).

    Missing: skips, or fails when POLICY_TEST_REQUIRE_PG=1, as require_pg_url does.
    """
    variable = f"POLICY_TEST_PG_{service.upper()}_RUNTIME_URL"
    url = os.environ.get(variable, "").strip()
    if url:
        return url_with_database(url, database)
    if os.environ.get("POLICY_TEST_REQUIRE_PG", "") not in ("", "0"):
        raise AssertionError(
            f"{variable} is not set but POLICY_TEST_REQUIRE_PG=1: tools/dev test sets it to the "
            f"URL of a member of policy_{service}_runtime")
    raise unittest.SkipTest(f"{variable} is not set")


def url_with_database(url, database):
    """`url` with its database (the path) replaced by `database`."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(database)))


def redact_url(url):
    """`url` without its password, for messages."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)


def psql(url, sql, timeout=30, check=True):
    """Runs `sql` with psql (ON_ERROR_STOP, unaligned, tuples only); returns stdout.

    Rows come out one a line, columns separated by '|'.
    """
    proc = subprocess.run(
        [PSQL, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
        capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"psql on {redact_url(url)} failed (exit {proc.returncode}) for {sql!r}: "
            f"{proc.stderr.strip()}")
    return proc.stdout


def psql_rows(url, sql, timeout=30):
    """psql(url, sql) split into rows of '|'-separated columns."""
    return [line.split("|") for line in psql(url, sql, timeout).splitlines() if line]


_db_counter = itertools.count(1)


def _identifier(text):
    return _NON_IDENT_RE.sub("_", text).lower()


class Database:
    """A database created by test_database(): its name, URL and a psql shortcut."""

    def __init__(self, admin_url, name):
        self.admin_url = admin_url
        self.name = name
        self.url = url_with_database(admin_url, name)

    def sql(self, sql, timeout=30):
        return psql(self.url, sql, timeout)

    def rows(self, sql, timeout=30):
        return psql_rows(self.url, sql, timeout)

    def __repr__(self):
        return f"Database({self.name!r})"


@contextlib.contextmanager
def test_database(url, prefix="test"):
    """Creates database t_<prefix>_<pid>_<n> through `url`, yields a Database, drops it.

    The drop uses WITH (FORCE), so connections still open (say, of a service that was
    killed) do not keep it alive.
    """
    name = f"t_{_identifier(prefix)}_{os.getpid()}_{next(_db_counter)}"[:63]
    psql(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    psql(url, f'CREATE DATABASE "{name}"')
    try:
        yield Database(url, name)
    finally:
        psql(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', check=False)


test_database.__test__ = False  # not a test, whatever a collector thinks of the name


def _as_postgres(argv):
    """argv run as the postgres OS user when we are root (initdb refuses root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return list(argv)


class PrivatePostgres:
    """A private PostgreSQL 15 cluster in a temporary directory, on 127.0.0.1:<port>.

    For tests that stop and restart the database under a running service, which must not
    disturb the shared server other tests use. Trust authentication, superuser `postgres`,
    fsync off. Use as a context manager (start ... cleanup) or call the methods.
    """

    def __init__(self, port=None):
        self.fixed_port = port is not None
        self.port = port or stable_port()
        self.base = None
        self.data = None
        self.log_path = None
        self.running = False

    @property
    def url(self):
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, argv, timeout=120):
        proc = subprocess.run(_as_postgres(argv), capture_output=True, text=True,
                              timeout=timeout, cwd="/", stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(map(str, argv))} failed (exit {proc.returncode}):\n"
                f"{proc.stdout}{proc.stderr}\n{self.log_tail()}")
        return proc

    def log_tail(self, lines=30):
        try:
            text = Path(self.log_path).read_text(errors="replace")
        except (OSError, TypeError):
            return ""
        return "PostgreSQL log tail:\n" + "\n".join(text.splitlines()[-lines:])

    def init(self):
        if self.base is not None:
            return
        self.base = Path(tempfile.mkdtemp(prefix="policy-pg-"))
        self.data = self.base / "data"
        self.log_path = self.base / "postgres.log"
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
        os.chmod(self.base, 0o700)
        self._run([PG_BIN / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres",
                   "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions"])

    def start(self):
        """Starts the cluster; a restart keeps its port (the services know that address)."""
        restarting = self.base is not None and self.data is not None and (
            self.data / "PG_VERSION").exists() and getattr(self, "_started", False)
        self.init()
        for attempt in range(5):
            options = (f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 "
                       "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
            try:
                self._run([PG_BIN / "pg_ctl", "-D", self.data, "-o", options, "-l",
                           self.log_path, "-w", "-t", "60", "start"])
                break
            except AssertionError:
                # A port picked by stable_port() can be taken (by another test's listener)
                # before the server binds it: pick another, unless it was given or this is a
                # restart.
                if (self.fixed_port or restarting or attempt == 4
                        or "Address already in use" not in self.log_tail()):
                    raise
                self.port = stable_port()
        self.running = True
        self._started = True
        wait_until(lambda: subprocess.run(
            [PG_BIN / "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)]).returncode == 0,
            timeout=30, interval=0.1, message="pg_isready")
        return self

    def stop(self, mode="fast"):
        if self.running:
            self._run([PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop"])
            self.running = False

    def restart(self):
        self.stop()
        return self.start()

    def cleanup(self):
        try:
            if self.running:
                self.stop(mode="immediate")
        finally:
            if self.base is not None:
                shutil.rmtree(self.base, ignore_errors=True)
                self.base = None

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc):
        self.cleanup()


# ---------------------------------------------------------------------------
# Service processes.
# ---------------------------------------------------------------------------


def flag_args(flags):
    """{'listen': '127.0.0.1:0', 'verbose': True} -> ['--listen=127.0.0.1:0', '--verbose=true']."""
    args = []
    for name, value in (flags or {}).items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        args.append(f"--{name}={value}")
    return args


def _service_env(binary, env, scrub_prefix):
    merged = dict(os.environ)
    # Settings of the developer's shell (POLICY_KEYS_* and the like) must not leak in.
    prefix = scrub_prefix or f"POLICY_{_identifier(Path(binary).name).upper()}_"
    for key in list(merged):
        if key.startswith(prefix):
            del merged[key]
    merged.update({k: str(v) for k, v in (env or {}).items()})
    return merged


def run_binary(binary, flags=None, env=None, timeout=60, scrub_prefix=None):
    """Runs a binary to completion (e.g. --migrate_only); returns CompletedProcess (text)."""
    return subprocess.run([str(binary), *flag_args(flags)], capture_output=True, text=True,
                          timeout=timeout, env=_service_env(binary, env, scrub_prefix),
                          stdin=subprocess.DEVNULL)


_live_processes = weakref.WeakSet()
_SETPRIV = shutil.which("setpriv")


def _die_with_parent(argv):
    """`argv` run so that the child gets SIGKILL when the thread that started it dies (Linux),
    and a test runner killed by a timeout leaves no service behind: util-linux's setpriv sets
    PR_SET_PDEATHSIG and execs the binary (same pid). Not a preexec_fn: code run between fork
    and exec in a process with gRPC's threads can deadlock (a dlopen lock held at fork), and
    Popen then waits for the exec forever."""
    return [_SETPRIV, "--pdeathsig", "KILL", "--", *argv] if _SETPRIV else argv


@atexit.register
def _kill_leftovers():
    for process in list(_live_processes):
        process.kill()
        if process.dir is not None:
            shutil.rmtree(process.dir, ignore_errors=True)


class ServiceProcess:
    """A service binary started with --listen/--metrics_listen on 127.0.0.1:0 and a ready file.

    start() waits for the ready file (grpc_port=N / metrics_port=M), failing with the log
    tail if the process exits first or `ready_timeout` passes. stdout and stderr go to a
    temporary log file (log_text(), log_tail()). terminate() sends SIGTERM and returns the
    exit code. Secrets (URLs with passwords, peppers) belong in `env`, not in `flags`.

    The process is killed when the thread that started it ends (PR_SET_PDEATHSIG) and at
    interpreter exit: start services from the main thread, or from a thread that outlives
    them.
    """

    def __init__(self, binary, flags=None, env=None, name=None, ready_timeout=30,
                 scrub_prefix=None, channel_credentials=None):
        self.binary = Path(binary)
        self.name = name or self.binary.name
        self.flags = {"listen": "127.0.0.1:0", "metrics_listen": "127.0.0.1:0"}
        self.flags.update(flags or {})
        self.env = dict(env or {})
        self.ready_timeout = ready_timeout
        self.scrub_prefix = scrub_prefix
        self.proc = None
        self.dir = None
        self.log_path = None
        self.ready_file = None
        self.grpc_port = None
        self.metrics_port = None
        self.health_port = None
        # grpc.ssl_channel_credentials(...) when the service serves TLS; plaintext otherwise.
        self.channel_credentials = channel_credentials
        self._channel = None
        self.returncode = None

    # -- lifecycle -----------------------------------------------------------

    def start(self, wait_ready=True):
        """Starts the process and waits for its ready file. wait_ready=False: for a service
        that may never become ready, whose listen and metrics_listen flags then name fixed
        ports (stable_port()); returns once its gRPC port answers health checks, whatever
        they say."""
        self.dir = Path(tempfile.mkdtemp(prefix=f"policy-{_identifier(self.name)}-"))
        self.log_path = self.dir / "service.log"
        self.ready_file = self.dir / "ready"
        flags = dict(self.flags)
        flags["ready_file"] = str(self.ready_file)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                _die_with_parent([str(self.binary), *flag_args(flags)]),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=_service_env(self.binary, self.env, self.scrub_prefix))
        _live_processes.add(self)
        self.started_at = time.monotonic()
        try:
            if wait_ready:
                self._wait_ready()
            else:
                self._wait_listening()
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_listening(self):
        self.grpc_port = int(self.flags["listen"].rpartition(":")[2])
        self.metrics_port = int(self.flags["metrics_listen"].rpartition(":")[2])
        if not self.grpc_port or not self.metrics_port:
            raise AssertionError("start(wait_ready=False) needs fixed listen and metrics_listen")

        def answering():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with code {self.proc.returncode}\n"
                                     f"{self.log_tail()}")
            return health_status(self.channel, timeout=1) is not None

        wait_until(answering, timeout=self.ready_timeout, ignore=(grpc.RpcError,),
                   message=f"{self.name} answering health checks")

    def _wait_ready(self):
        deadline = time.monotonic() + self.ready_timeout
        while not self.ready_file.exists():
            code = self.proc.poll()
            if code is not None:
                raise AssertionError(
                    f"{self.name} exited with code {code} before becoming ready\n"
                    f"{self.log_tail()}")
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{self.name} not ready after {self.ready_timeout} s\n{self.log_tail()}")
            time.sleep(0.02)
        values = {}
        for line in self.ready_file.read_text().splitlines():
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
        self.grpc_port = int(values["grpc_port"])
        self.metrics_port = int(values.get("metrics_port") or 0) or None
        self.health_port = int(values.get("health_port") or 0) or None

    @property
    def address(self):
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def channel(self):
        """A channel to the gRPC port, made on first use and closed by terminate()."""
        if self._channel is None:
            self._channel = self.new_channel()
        return self._channel

    def new_channel(self):
        """A fresh channel (the caller closes it), with channel_credentials if set."""
        if self.channel_credentials is not None:
            return grpc.secure_channel(self.address, self.channel_credentials)
        return grpc.insecure_channel(self.address)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _close_channel(self):
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def terminate(self, timeout=20):
        """SIGTERM, wait up to `timeout` s (then SIGKILL and fail); returns the exit code."""
        self._close_channel()
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(
                    f"{self.name} did not exit within {timeout} s of SIGTERM\n{self.log_tail()}")
        self.returncode = self.proc.returncode
        return self.returncode

    def stop(self, timeout=5):
        """SIGSTOP, then waits until every thread of the process is stopped: the signal is
        acted on only when one of its threads next runs, and until then the others keep
        serving (on a busy machine, for milliseconds)."""
        self.proc.send_signal(signal.SIGSTOP)

        def stopped():
            try:
                tasks = list(Path(f"/proc/{self.proc.pid}/task").iterdir())
                # The state follows the command, which is in parentheses.
                return all((t / "stat").read_text().rsplit(")", 1)[1].split()[0] in ("T", "t")
                           for t in tasks)
            except FileNotFoundError:  # a thread ended meanwhile
                return False
        wait_until(stopped, timeout=timeout, interval=0.005,
                   message=f"{self.name} stopped by SIGSTOP")

    def resume(self):
        """SIGCONT after stop()."""
        self.proc.send_signal(signal.SIGCONT)

    def kill(self):
        self._close_channel()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None:
            self.returncode = self.proc.returncode

    def cleanup(self):
        """Stops the process if it still runs and removes its directory."""
        try:
            if self.running():
                try:
                    self.terminate()
                except AssertionError:
                    pass
        finally:
            self.kill()
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)
                self.dir = None

    def __enter__(self):
        if self.proc is None:  # `with ServiceProcess(...).start() as p` starts it only once
            self.start()
        return self

    def __exit__(self, *exc):
        self.cleanup()

    # -- logs ------------------------------------------------------------------

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except (OSError, AttributeError):
            return ""

    def log_tail(self, lines=40):
        text = self.log_text().splitlines()[-lines:]
        return f"--- last {len(text)} log lines of {self.name} ---\n" + "\n".join(text)


# ---------------------------------------------------------------------------
# Health, metrics, error details.
# ---------------------------------------------------------------------------

HEALTH_STATUS_NAMES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def _encode_varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data, pos):
    shift = value = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _decode_health_response(data):
    # HealthCheckResponse { ServingStatus status = 1; }: find field 1 (varint).
    pos, status = 0, 0
    while pos < len(data):
        tag, pos = _read_varint(data, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
            if field == 1:
                status = value
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"cannot decode health response {data!r}")
    return status


def health_status(channel, service="", timeout=5):
    """grpc.health.v1.Health/Check for `service`: 'SERVING', 'NOT_SERVING', 'UNKNOWN', ...

    Works without the grpc_health package (a raw call, the message decoded by hand).
    Raises grpc.RpcError when the call itself fails (e.g. NOT_FOUND for an unknown service).
    """
    check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                request_serializer=lambda b: b,
                                response_deserializer=lambda b: b)
    encoded = service.encode()
    request = b"\n" + _encode_varint(len(encoded)) + encoded if encoded else b""
    status = _decode_health_response(check(request, timeout=timeout))
    return HEALTH_STATUS_NAMES.get(status, str(status))


def scrape_metrics(port, host="127.0.0.1", timeout=5):
    """The text of http://host:port/metrics."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout) as response:
        return response.read().decode()


_SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text format -> [(name, {label: value}, float)]."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            continue
        labels = {k: v.encode().decode("unicode_escape") for k, v in
                  _LABEL_RE.findall(m.group(2) or "")}
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


def metric_value(text, name, **labels):
    """Sum of the samples called `name` whose labels include `labels`; None if none match."""
    values = [value for n, l, value in parse_metrics(text)
              if n == name and all(l.get(k) == v for k, v in labels.items())]
    return sum(values) if values else None


ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"


def error_status(rpc_error):
    """The google.rpc.Status in the grpc-status-details-bin trailer, or None."""
    from google.rpc import status_pb2

    for key, value in rpc_error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status()
            status.ParseFromString(value)
            return status
    return None


def error_reason(rpc_error):
    """(reason, domain) of the first google.rpc.ErrorInfo in the status details, or None."""
    from google.rpc import status_pb2

    status = error_status(rpc_error)
    if status is None:
        return None
    for any_ in status.details:
        if any_.type_url == ERROR_INFO_TYPE:
            info = status_pb2.ErrorInfo()
            info.ParseFromString(any_.value)
            return info.reason, info.domain
    return None


def call_code(fn, *args, **kwargs):
    """Calls fn and returns the grpc.StatusCode it ended with (OK when it returned)."""
    try:
        fn(*args, **kwargs)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()


def call_error(fn, *args, **kwargs):
    """Calls fn and returns the grpc.RpcError it raises; fails the test if it succeeds."""
    try:
        result = fn(*args, **kwargs)
    except grpc.RpcError as e:
        return e
    raise AssertionError(f"expected an RPC error, got {result!r}")


class Background:
    """A daemon thread running fn(stop_event) until stop() (which returns fn's result)."""

    def __init__(self, fn):
        self.stop_event = threading.Event()
        self._result = None
        self._error = None

        def run():
            try:
                self._result = fn(self.stop_event)
            except BaseException as e:  # reported by stop()
                self._error = e

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def stop(self, timeout=30):
        self.stop_event.set()
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError("background thread did not stop")
        if self._error is not None:
            raise self._error
        return self._result


def npm_ci(package_dir, node_dir, needed_for):
    """`npm ci` of package_dir's package.json and package-lock.json into node_dir (packages as
    the lockfile pins them, no install scripts), unless already done for those two files.
    `needed_for` names what needs them, for the error when Node.js or npm is missing."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise AssertionError(f"{tool} is not installed: {needed_for} needs Node.js and npm")
    package_dir, node_dir = Path(package_dir), Path(node_dir)
    node_dir.mkdir(parents=True, exist_ok=True)
    files = ("package.json", "package-lock.json")
    stamp = hashlib.sha256(b"".join((package_dir / f).read_bytes() for f in files)).hexdigest()
    stamp_file = node_dir / "installed.stamp"
    if (node_dir / "node_modules").is_dir() and stamp_file.exists() and \
            stamp_file.read_text() == stamp:
        return
    for name in files:
        shutil.copy(package_dir / name, node_dir)
    r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts",
                        "--loglevel=error"], cwd=node_dir, capture_output=True, text=True,
                       timeout=180, check=False)
    if r.returncode != 0:
        raise AssertionError(f"npm ci in {node_dir} failed:\n{r.stdout}{r.stderr}")
    stamp_file.write_text(stamp)
