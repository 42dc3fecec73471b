#include "common/pg/runtime_role_testing.h"

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/pg/pool.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pqxx/pqxx"

namespace policy::pg {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

void Exec(const std::string& url, const std::string& sql) {
  pqxx::connection c(ConnectionString(url, absl::Seconds(5)));
  pqxx::nontransaction tx(c);
  tx.exec(sql);
}

std::string KindName(Privilege::On on) {
  switch (on) {
    case Privilege::On::kSchema:
      return "schema";
    case Privilege::On::kTable:
      return "table";
    case Privilege::On::kFunction:
      return "function";
  }
  return "";
}

}  // namespace

std::vector<std::string> HeldByRuntimeRole(const std::string& owner_url, absl::string_view schema) {
  pqxx::connection c(ConnectionString(owner_url, absl::Seconds(5)));
  pqxx::nontransaction tx(c);
  pqxx::result rows = tx.exec_params(
      "WITH r AS (SELECT * FROM pg_catalog.pg_roles WHERE rolname = $2) "
      "SELECT 'schema ' || n.nspname || ' ' || a.privilege_type "
      "  FROM pg_namespace n, aclexplode(n.nspacl) a, r "
      "  WHERE n.nspname = $1 AND a.grantee = r.oid "
      "UNION ALL "
      "SELECT CASE c.relkind WHEN 'S' THEN 'sequence ' ELSE 'table ' END || n.nspname || '.' "
      "       || c.relname || ' ' || a.privilege_type "
      "  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, "
      "       aclexplode(c.relacl) a, r "
      "  WHERE n.nspname = $1 AND a.grantee = r.oid "
      "UNION ALL "
      "SELECT 'column ' || n.nspname || '.' || c.relname || '.' || t.attname || ' ' "
      "       || a.privilege_type "
      "  FROM pg_attribute t JOIN pg_class c ON c.oid = t.attrelid "
      "       JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(t.attacl) a, r "
      "  WHERE n.nspname = $1 AND a.grantee = r.oid "
      "UNION ALL "
      "SELECT 'function ' || n.nspname || '.' || p.proname || '(' "
      "       || oidvectortypes(p.proargtypes) || ') ' || a.privilege_type "
      "  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace, "
      "       aclexplode(p.proacl) a, r "
      "  WHERE n.nspname = $1 AND a.grantee = r.oid "
      "UNION ALL "
      "SELECT 'database ' || d.datname || ' ' || a.privilege_type "
      "  FROM pg_database d, aclexplode(d.datacl) a, r "
      "  WHERE d.datname = current_database() AND a.grantee = r.oid "
      "UNION ALL "
      "SELECT 'member of ' || m.roleid::regrole::text FROM pg_auth_members m, r "
      "  WHERE m.member = r.oid "
      "UNION ALL "
      "SELECT 'owner of ' || c.oid::regclass::text FROM pg_class c, r WHERE c.relowner = r.oid "
      "UNION ALL "
      "SELECT 'owner of schema ' || n.nspname FROM pg_namespace n, r WHERE n.nspowner = r.oid "
      "UNION ALL "
      "SELECT 'owner of function ' || p.oid::regprocedure::text FROM pg_proc p, r "
      "  WHERE p.proowner = r.oid "
      "UNION ALL "
      "SELECT 'attribute ' || f.name FROM r, LATERAL (VALUES ('LOGIN', r.rolcanlogin), "
      "  ('SUPERUSER', r.rolsuper), ('CREATEROLE', r.rolcreaterole), "
      "  ('CREATEDB', r.rolcreatedb), ('REPLICATION', r.rolreplication), "
      "  ('BYPASSRLS', r.rolbypassrls)) AS f(name, held) WHERE f.held",
      std::string(schema), RuntimeRoleName(schema));
  std::vector<std::string> held;
  for (const pqxx::row& row : rows) held.push_back(row[0].as<std::string>());
  std::sort(held.begin(), held.end());
  return held;
}

std::vector<std::string> ExpectedOfRuntimeRole(absl::string_view schema,
                                               const std::vector<Privilege>& needed) {
  std::vector<std::string> expected;
  for (const Privilege& p : RuntimePrivileges(schema, needed)) {
    expected.push_back(absl::StrCat(KindName(p.on), " ", p.object, " ", p.privilege));
  }
  std::sort(expected.begin(), expected.end());
  return expected;
}

void ExpectLeastPrivilegedRuntimeRole(const TestDatabase& db, const std::string& runtime_url,
                                      absl::string_view schema_name,
                                      const std::vector<Migration>& migrations,
                                      const std::vector<Privilege>& needed) {
  const std::string schema(schema_name);
  const std::string role = RuntimeRoleName(schema);
  EXPECT_EQ(HeldByRuntimeRole(db.url(), schema), ExpectedOfRuntimeRole(schema, needed));

  std::string owner;
  {
    pqxx::connection c(ConnectionString(runtime_url, absl::Seconds(5)));
    pqxx::nontransaction tx(c);
    std::vector<std::string> memberships;
    for (const pqxx::row& row :
         tx.exec("SELECT m.roleid::regrole::text FROM pg_auth_members m "
                 "WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = current_user)")) {
      memberships.push_back(row[0].as<std::string>());
    }
    EXPECT_THAT(memberships, ElementsAre(role)) << "the runtime login role's memberships";
    owner = tx.exec_params1("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = $1",
                            schema)[0]
                .as<std::string>();
  }

  // Starts as the service does: the migrations check, then the privileges check.
  absl::Status migrated = ApplyMigrations(runtime_url, schema, migrations);
  EXPECT_TRUE(migrated.ok()) << migrated;
  Pool pool(PoolOptions{.url = runtime_url, .size = 1});
  absl::Status checked = CheckPrivileges(&pool, schema, needed);
  EXPECT_TRUE(checked.ok()) << checked;

  std::set<std::string> tables = {absl::StrCat(schema, ".schema_migrations")};
  std::set<std::string> functions;
  for (const Privilege& p : needed) {
    if (p.on == Privilege::On::kTable) tables.insert(p.object);
    if (p.on == Privilege::On::kFunction) functions.insert(p.object);
  }
  std::vector<std::string> refused = {
      absl::StrCat("CREATE TABLE ", schema, ".runtime_probe (id integer)"),
      absl::StrCat("CREATE FUNCTION ", schema,
                   ".runtime_probe() RETURNS integer LANGUAGE sql AS 'SELECT 1'"),
      absl::StrCat("ALTER SCHEMA ", schema, " RENAME TO runtime_probe"),
      absl::StrCat("DROP SCHEMA ", schema, " CASCADE"),
      absl::StrCat("INSERT INTO ", schema,
                   ".schema_migrations (version, name, checksum) VALUES (1000, 'probe', 'probe')"),
      absl::StrCat("UPDATE ", schema, ".schema_migrations SET checksum = checksum"),
      absl::StrCat("DELETE FROM ", schema, ".schema_migrations"),
      absl::StrCat("SET ROLE ", owner),
  };
  for (const std::string& t : tables) {
    for (const std::string& sql : {
             absl::StrCat("DROP TABLE ", t),
             absl::StrCat("ALTER TABLE ", t, " ADD COLUMN runtime_probe integer"),
             absl::StrCat("ALTER TABLE ", t, " DISABLE TRIGGER USER"),
             absl::StrCat("ALTER TABLE ", t, " OWNER TO CURRENT_USER"),
             absl::StrCat("TRUNCATE ", t),
             absl::StrCat("CREATE TRIGGER runtime_probe BEFORE UPDATE ON ", t,
                          " FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()"),
         }) {
      refused.push_back(sql);
    }
  }
  for (const std::string& f : functions) {
    refused.push_back(absl::StrCat("ALTER FUNCTION ", f, " SECURITY DEFINER"));
    refused.push_back(absl::StrCat("DROP FUNCTION ", f));
  }
  for (const std::string& sql : refused) {
    SCOPED_TRACE(sql);
    pqxx::connection c(ConnectionString(runtime_url, absl::Seconds(5)));
    pqxx::work tx(c);
    EXPECT_THROW(tx.exec(sql), pqxx::insufficient_privilege);
  }

  // A role short of a grant (say, created after the migration ran) stops the service at
  // start-up, saying what to grant.
  const auto first_table = std::find_if(needed.begin(), needed.end(), [](const Privilege& p) {
    return p.on == Privilege::On::kTable;
  });
  ASSERT_NE(first_table, needed.end());
  const Privilege& revoked = *first_table;
  Exec(db.url(),
       absl::StrCat("REVOKE ", revoked.privilege, " ON TABLE ", revoked.object, " FROM ", role));
  checked = CheckPrivileges(&pool, schema, needed);
  EXPECT_EQ(checked.code(), absl::StatusCode::kFailedPrecondition) << checked;
  EXPECT_THAT(checked.message(),
              HasSubstr(absl::StrCat(revoked.privilege, " on table ", revoked.object)));
  EXPECT_THAT(checked.message(), HasSubstr(absl::StrCat("GRANT ", revoked.privilege, " ON TABLE ",
                                                        revoked.object, " TO ", role, ";")));
  Exec(db.url(),
       absl::StrCat("GRANT ", revoked.privilege, " ON TABLE ", revoked.object, " TO ", role));
  checked = CheckPrivileges(&pool, schema, needed);
  EXPECT_TRUE(checked.ok()) << checked;

  // Without SELECT on schema_migrations, or with a migration pending (which only the owner may
  // apply), the migrations check says so rather than failing as a database error.
  Exec(db.url(), absl::StrCat("REVOKE SELECT ON ", schema, ".schema_migrations FROM ", role));
  for (const absl::Status& s : {ApplyMigrations(runtime_url, schema, migrations),
                                CheckMigrations(runtime_url, schema, migrations)}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_THAT(s.message(), HasSubstr(absl::StrCat(
                                 "may not check or apply the migrations of schema ", schema)));
  }
  Exec(db.url(), absl::StrCat("GRANT SELECT ON ", schema, ".schema_migrations TO ", role));
  std::vector<Migration> newer = migrations;
  newer.push_back(Migration{static_cast<int>(migrations.size()) + 1, "runtime_probe", "SELECT 1"});
  const absl::Status pending = ApplyMigrations(runtime_url, schema, newer);
  EXPECT_EQ(pending.code(), absl::StatusCode::kFailedPrecondition) << pending;
  EXPECT_THAT(pending.message(), HasSubstr("apply them as the schema's owner"));
}

}  // namespace policy::pg
