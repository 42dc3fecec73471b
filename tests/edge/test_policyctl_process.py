"""policyctl as an operator's script drives it: the whole suite as separate processes (keys,
authz, pii, region, audit, edge on one PostgreSQL database) and policyctl run as a subprocess,
its exit code, stdout and stderr checked.

Needs POLICY_TEST_PG_URL (as tools/dev pg sets up); skips without it, or fails when
POLICY_TEST_REQUIRE_PG=1.
Run: /usr/bin/python3 -m unittest -v tests.edge.test_policyctl_process
"""

import contextlib
import json
import os
import subprocess
import sys
import unittest
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.edge import edge_support as es  # noqa: E402
from tests.support import policy_testing as pt  # noqa: E402

SUITE = None
_stack = None


def setUpModule():
    global SUITE, _stack
    url = pt.require_pg_url()
    es.require_binaries()
    _stack = contextlib.ExitStack()
    try:
        db = _stack.enter_context(pt.test_database(url, "policyctl_process"))
        SUITE = es.Suite(db.url)
        _stack.callback(SUITE.cleanup)
        SUITE.start()
    except BaseException:
        _stack.close()
        raise


def tearDownModule():
    try:
        SUITE.terminate()
    finally:
        _stack.close()


def run_policyctl(*args, admin_key=None, api_key=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLICY_POLICYCTL_")}
    env["POLICY_POLICYCTL_EDGE"] = SUITE.p["edge"].address
    if admin_key is not None:
        env["POLICY_POLICYCTL_ADMIN_KEY"] = admin_key
    if api_key is not None:
        env["POLICY_POLICYCTL_API_KEY"] = api_key
    return subprocess.run([str(pt.BUILD_DIR / "tools" / "policyctl"), *args], capture_output=True,
                          text=True, timeout=30, env=env, stdin=subprocess.DEVNULL)


class PolicyctlProcessTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.alice = SUITE.new_admin_key("alice")

    def test_a_key_read_with_its_newline_works_and_a_bad_byte_is_refused_unshown(self):
        # A Kubernetes secret or a file read whole ends the key in a newline (CRLF on Windows).
        for ending in ("\n", "\r\n", " "):
            listed = run_policyctl("members", "list", "--output=json",
                                   admin_key=self.alice + ending)
            self.assertEqual(listed.returncode, 0, listed.stderr)
            self.assertIn("alice", [m["id"] for m in json.loads(listed.stdout)["members"]])
        # A byte no key holds is a usage error naming the setting: no crash, and the key is
        # never printed (gRPC would abort, printing the metadata whole).
        for bad in (self.alice + "\rX", self.alice[:20] + "\n" + self.alice[20:],
                    self.alice + "\u00e9"):
            refused = run_policyctl("members", "list", admin_key=bad)
            self.assertEqual(refused.returncode, 2, refused.stderr)
            self.assertIn("POLICY_POLICYCTL_ADMIN_KEY", refused.stderr)
            for shown in (refused.stdout, refused.stderr):
                self.assertNotIn(self.alice[10:30], shown)
                self.assertNotIn(self.alice[10:30].encode().hex(" "), shown)


if __name__ == "__main__":
    unittest.main()
