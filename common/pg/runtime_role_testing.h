#ifndef POLICY_COMMON_PG_RUNTIME_ROLE_TESTING_H_
#define POLICY_COMMON_PG_RUNTIME_ROLE_TESTING_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/pg/migrations.h"
#include "common/pg/privileges.h"
#include "common/pg/test_database.h"

namespace policy::pg {

// What policy_<schema>_runtime holds in `owner_url`'s database, one "<kind> <object>
// <privilege>" line each, sorted: privileges on the schema and on its tables, sequences,
// columns and functions, and on the database; memberships of other roles ("member of
// <role>"); what it owns ("owner of <object>"); and the attributes a NOLOGIN group role must
// not have ("attribute LOGIN", "attribute SUPERUSER", ...).
std::vector<std::string> HeldByRuntimeRole(const std::string& owner_url, absl::string_view schema);

// The lines HeldByRuntimeRole shows when the migrations granted exactly
// RuntimePrivileges(schema, needed).
std::vector<std::string> ExpectedOfRuntimeRole(absl::string_view schema,
                                               const std::vector<Privilege>& needed);

// GoogleTest expectations on a service's runtime role, in `db`'s own database with `schema`
// migrated to `migrations` (TestDatabase::Reset) and `runtime_url` from db.RuntimeUrl:
// - the migrations granted policy_<schema>_runtime exactly RuntimePrivileges(schema, needed),
//   and the login role is a member of it and of no other role;
// - as the login role, the migrations check passes (ApplyMigrations changes nothing) and so
//   does CheckPrivileges;
// - the login role cannot create, alter, drop, truncate or re-own anything in the schema,
//   write schema_migrations, or become the owner (each refused with insufficient_privilege);
// - with one of its privileges revoked, CheckPrivileges refuses with FAILED_PRECONDITION
//   naming it and the GRANT that restores it (restored afterwards), and without SELECT on
//   schema_migrations the migrations check refuses with FAILED_PRECONDITION, as does a
//   pending migration that the login role would have to apply.
void ExpectLeastPrivilegedRuntimeRole(const TestDatabase& db, const std::string& runtime_url,
                                      absl::string_view schema,
                                      const std::vector<Migration>& migrations,
                                      const std::vector<Privilege>& needed);

}  // namespace policy::pg

#endif  // POLICY_COMMON_PG_RUNTIME_ROLE_TESTING_H_
