#include "common/pg/privileges.h"

#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "pqxx/pqxx"

namespace policy::pg {
namespace {

// `name` as an SQL identifier: bare when PostgreSQL would read it back unchanged.
std::string Identifier(pqxx::work& tx, const std::string& name) {
  bool plain = !name.empty() && !absl::ascii_isdigit(name[0]);
  for (char c : name) {
    plain = plain && (absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_');
  }
  return plain ? name : tx.quote_name(name);
}

absl::string_view Kind(Privilege::On on) {
  switch (on) {
    case Privilege::On::kSchema:
      return "SCHEMA";
    case Privilege::On::kTable:
      return "TABLE";
    case Privilege::On::kFunction:
      return "FUNCTION";
  }
  return "";
}

// The object's OID found through the catalogs, which every role may read, so that no lookup
// needs a privilege the role may lack (a schema's USAGE); 0 when there is no such object.
// A table is "schema.table"; a function "schema.name(type, type)", its argument types as
// oidvectortypes spells them.
uint32_t ObjectOid(pqxx::work& tx, const Privilege& p) {
  pqxx::result r;
  switch (p.on) {
    case Privilege::On::kSchema:
      r = tx.exec_params("SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1", p.object);
      break;
    case Privilege::On::kTable:
      r = tx.exec_params(
          "SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
          "ON n.oid = c.relnamespace WHERE n.nspname || '.' || c.relname = $1",
          p.object);
      break;
    case Privilege::On::kFunction:
      r = tx.exec_params(
          "SELECT p.oid FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n "
          "ON n.oid = p.pronamespace "
          "WHERE n.nspname || '.' || p.proname || '(' || oidvectortypes(p.proargtypes) || ')' = $1",
          p.object);
      break;
  }
  return r.empty() ? 0 : r[0][0].as<uint32_t>();
}

// Whether `role` (the session's user when empty) holds `p` on the object `oid`.
bool Holds(pqxx::work& tx, const std::string& role, const Privilege& p, uint32_t oid) {
  const std::string function = p.on == Privilege::On::kSchema  ? "has_schema_privilege"
                               : p.on == Privilege::On::kTable ? "has_table_privilege"
                                                               : "has_function_privilege";
  if (role.empty()) {
    return tx.exec_params1(absl::StrCat("SELECT ", function, "($1::oid, $2)"), oid, p.privilege)[0]
        .as<bool>();
  }
  return tx
      .exec_params1(absl::StrCat("SELECT ", function, "($1, $2::oid, $3)"), role, oid,
                    p.privilege)[0]
      .as<bool>();
}

std::string Describe(const std::vector<Privilege>& privileges) {
  return absl::StrJoin(privileges, ", ", [](std::string* out, const Privilege& p) {
    absl::StrAppend(out, p.privilege, " on ", absl::AsciiStrToLower(Kind(p.on)), " ", p.object);
  });
}

// GRANT statements giving `role` the `privileges`, one per object.
std::string GrantSql(pqxx::work& tx, const std::string& role,
                     const std::vector<Privilege>& privileges) {
  std::map<std::pair<Privilege::On, std::string>, std::vector<std::string>> by_object;
  for (const Privilege& p : privileges) by_object[{p.on, p.object}].push_back(p.privilege);
  std::string sql;
  for (const auto& [object, kinds] : by_object) {
    absl::StrAppend(&sql, " GRANT ", absl::StrJoin(kinds, ", "), " ON ", Kind(object.first), " ",
                    object.second, " TO ", Identifier(tx, role), ";");
  }
  return sql;
}

}  // namespace

void AddTablePrivileges(absl::string_view table, const std::vector<std::string>& privileges,
                        std::vector<Privilege>* to) {
  for (const std::string& p : privileges) {
    to->push_back({Privilege::On::kTable, std::string(table), p});
  }
}

std::string RuntimeRoleName(absl::string_view schema) {
  return absl::StrCat("policy_", schema, "_runtime");
}

std::vector<Privilege> RuntimePrivileges(absl::string_view schema,
                                         const std::vector<Privilege>& needed) {
  std::vector<Privilege> all = needed;
  all.push_back({Privilege::On::kSchema, std::string(schema), "USAGE"});
  all.push_back({Privilege::On::kTable, absl::StrCat(schema, ".schema_migrations"), "SELECT"});
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  return all;
}

absl::Status CheckPrivileges(Pool* pool, absl::string_view schema,
                             const std::vector<Privilege>& needed) {
  const std::vector<Privilege> all = RuntimePrivileges(schema, needed);
  const std::string runtime = RuntimeRoleName(schema);
  return pool->Transact([&](pqxx::work& tx) -> absl::Status {
    const pqxx::row who = tx.exec_params1(
        "SELECT current_user, r.oid IS NOT NULL, "
        "r.oid IS NOT NULL AND pg_has_role(current_user, r.oid, 'MEMBER'), "
        "r.oid IS NOT NULL AND pg_has_role(current_user, r.oid, 'USAGE') "
        "FROM (SELECT 1) AS one LEFT JOIN pg_catalog.pg_roles r ON r.rolname = $1",
        runtime);
    const std::string user = who[0].as<std::string>();
    const bool exists = who[1].as<bool>();
    const bool member = who[2].as<bool>();
    const bool inherits = who[3].as<bool>();

    std::vector<Privilege> lacking;       // What the login role lacks.
    std::vector<Privilege> role_lacking;  // What the runtime role lacks (all when it is missing).
    std::vector<Privilege> absent;        // Objects the migrations should have made.
    for (const Privilege& p : all) {
      const uint32_t oid = ObjectOid(tx, p);
      if (oid == 0) {
        absent.push_back(p);
        continue;
      }
      if (!Holds(tx, "", p, oid)) lacking.push_back(p);
      if (!exists || !Holds(tx, runtime, p, oid)) role_lacking.push_back(p);
    }
    if (!absent.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("schema ", schema, " lacks objects this binary uses (", Describe(absent),
                       "): apply its migrations (--migrate_only as the owner)"));
    }
    if (lacking.empty()) return absl::OkStatus();

    const std::string r = Identifier(tx, runtime);
    const std::string u = Identifier(tx, user);
    std::string fix;
    if (!exists) absl::StrAppend(&fix, " CREATE ROLE ", r, " NOLOGIN;");
    // The migration grants the runtime role its privileges only when it existed by then.
    if (!role_lacking.empty()) absl::StrAppend(&fix, GrantSql(tx, runtime, role_lacking));
    if (!member) {
      absl::StrAppend(&fix, " GRANT ", r, " TO ", u, ";");
    } else if (!inherits) {
      absl::StrAppend(&fix, " ALTER ROLE ", u, " INHERIT;");
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "the database login role ", user, " lacks privileges the ", schema,
        " service needs at run time (", Describe(lacking), "); it must be the owner of schema ",
        schema, " or a member of ", runtime, ". An administrator must run:", fix));
  });
}

}  // namespace policy::pg
