#ifndef POLICY_COMMON_PG_PRIVILEGES_H_
#define POLICY_COMMON_PG_PRIVILEGES_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "common/pg/pool.h"

namespace policy::pg {

// One privilege a service's statements need at run time: `privilege` ("USAGE" on a schema;
// "SELECT", "INSERT", "UPDATE", "DELETE" on a table; "EXECUTE" on a function) on `object`: a
// schema's name, a table schema-qualified, a function schema-qualified with its argument types
// as oidvectortypes spells them ("authz.adjust_bucket(text, bigint, bigint, timestamp with
// time zone)"), which is also how GRANT takes them.
struct Privilege {
  enum class On { kSchema, kTable, kFunction };
  On on;
  std::string object;
  std::string privilege;

  friend bool operator==(const Privilege&, const Privilege&) = default;
  friend auto operator<=>(const Privilege&, const Privilege&) = default;
};

// Appends `privileges` on table `table` (schema-qualified) to `*to`, one Privilege each.
void AddTablePrivileges(absl::string_view table, const std::vector<std::string>& privileges,
                        std::vector<Privilege>* to);

// The NOLOGIN group role that a service's migration grants exactly its run-time privileges:
// policy_<schema>_runtime. A service may log in as a member of it (and of nothing else) rather
// than as the owner of its tables, which it then cannot drop, alter, truncate or re-own, nor
// record migrations in.
std::string RuntimeRoleName(absl::string_view schema);

// Everything the runtime role of `schema` holds when the migrations granted it `needed`:
// USAGE on the schema, SELECT on <schema>.schema_migrations (start-up checks the migrations
// applied) and `needed`, sorted and without duplicates.
std::vector<Privilege> RuntimePrivileges(absl::string_view schema,
                                         const std::vector<Privilege>& needed);

// OK when the pool's login role holds RuntimePrivileges(schema, needed), as the schema's owner
// and the members of policy_<schema>_runtime do. Otherwise FAILED_PRECONDITION naming the
// privileges it lacks and the SQL an administrator runs to fix it (create the runtime role,
// grant it its privileges when it was created after the migration that grants them ran, make
// the login role a member), so that a role short of a grant stops the service at start-up
// rather than failing its statements one by one; FAILED_PRECONDITION too when one of the
// objects does not exist (the migrations are not applied). UNAVAILABLE when the database is
// not reachable.
absl::Status CheckPrivileges(Pool* pool, absl::string_view schema,
                             const std::vector<Privilege>& needed);

}  // namespace policy::pg

#endif  // POLICY_COMMON_PG_PRIVILEGES_H_
