"""keys, authz and region as production runs them: the owner migrates, the service serves as its
runtime login role (a member of policy_<svc>_runtime only, which the service's migrations grant
what it needs and nothing more).

For each service: `--migrate_only` as the owner, then the service as its runtime role with
`apply_migrations=false` reaches SERVING (the migrations check, the privileges check, the
LISTEN feed's first read; authz also writes its bootstrap organisation). A runtime role short of
a grant stops the service at start-up with a message naming the privilege and the GRANT that
restores it; one started on a schema the owner has not migrated says to migrate as the owner.

Needs POLICY_TEST_PG_URL and POLICY_TEST_PG_{KEYS,AUTHZ,REGION}_RUNTIME_URL (tools/dev test sets
them); skips without them, or fails when POLICY_TEST_REQUIRE_PG=1.
Run: /usr/bin/python3 -m unittest -v tests.roles.test_runtime_roles
"""

import secrets
import sys
import unittest
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support import policy_testing as pt  # noqa: E402

import grpc  # noqa: E402

ORG_FILE = pt.REPO_ROOT / "deploy" / "examples" / "org.yaml"

# Per service: its settings besides the database, and a privilege of its runtime role whose
# loss the start-up check must report (table, privilege).
SERVICES = {
    "keys": ({"POLICY_KEYS_PEPPER": secrets.token_hex(32)}, {}, ("keys.api_keys", "UPDATE")),
    "authz": ({}, {"bootstrap_org_file": str(ORG_FILE)}, ("authz.members", "INSERT")),
    "region": ({}, {}, ("region.registry", "UPDATE")),
}


class RuntimeRoleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg_url = pt.require_pg_url()
        for service in SERVICES:
            pt.service_binary(service)

    def run_once(self, service, database_url, **flags):
        """The service run until it exits (it must fail at start-up); CompletedProcess."""
        env, _, _ = SERVICES[service]
        return pt.run_binary(
            pt.service_binary(service),
            flags=dict({"listen": "127.0.0.1:0", "metrics_listen": "127.0.0.1:0"}, **flags),
            env=dict(env, **{f"POLICY_{service.upper()}_DATABASE_URL": database_url}),
            timeout=60)

    def test_the_owner_migrates_and_the_runtime_role_serves(self):
        for service, (env, flags, (table, privilege)) in SERVICES.items():
            with self.subTest(service=service), \
                    pt.test_database(self.pg_url, f"{service}_roles") as db:
                runtime_url = pt.require_runtime_url(service, db.name)
                url_var = f"POLICY_{service.upper()}_DATABASE_URL"

                # Before the owner migrated: the runtime role may not, and says so.
                early = self.run_once(service, runtime_url)
                self.assertNotEqual(early.returncode, 0, early.stdout + early.stderr)
                self.assertIn(f"may not check or apply the migrations of schema {service}",
                              early.stdout + early.stderr)
                self.assertIn("--migrate_only", early.stdout + early.stderr)

                migrated = pt.run_binary(pt.service_binary(service), flags={"migrate_only": "true"},
                                         env=dict(env, **{url_var: db.url}), timeout=60)
                self.assertEqual(migrated.returncode, 0, migrated.stdout + migrated.stderr)

                process = pt.ServiceProcess(
                    pt.service_binary(service), name=f"{service}-runtime",
                    flags=dict(flags, apply_migrations="false"),
                    env=dict(env, **{url_var: runtime_url}))
                self.addCleanup(process.cleanup)
                process.start()
                pt.wait_until(lambda: pt.health_status(process.channel) == "SERVING",
                              timeout=15, message=f"{service} SERVING as its runtime role",
                              ignore=(grpc.RpcError,))
                self.assertEqual(process.terminate(), 0, process.log_tail())
                if service == "authz":  # The bootstrap organisation was written as the role.
                    self.assertNotEqual(db.rows("SELECT count(*) FROM authz.members"), [["0"]])

                # A grant missing (say, the role was created after the migration ran).
                db.sql(f"REVOKE {privilege} ON {table} FROM policy_{service}_runtime")
                short = self.run_once(service, runtime_url, apply_migrations="false")
                output = short.stdout + short.stderr
                self.assertNotEqual(short.returncode, 0, output)
                self.assertIn(f"lacks privileges the {service} service needs at run time "
                              f"({privilege} on table {table})", output)
                self.assertIn(f"GRANT {privilege} ON TABLE {table} TO policy_{service}_runtime;",
                              output)


if __name__ == "__main__":
    unittest.main()
