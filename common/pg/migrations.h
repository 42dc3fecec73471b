#ifndef POLICY_COMMON_PG_MIGRATIONS_H_
#define POLICY_COMMON_PG_MIGRATIONS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace policy::pg {

// One numbered SQL file of a service, embedded at build time (policy_embed_migrations).
struct Migration {
  int version;       // 1, 2, 3, ... without gaps.
  const char* name;  // From NNN_<name>.sql.
  const char* sql;
};

// How a migration waits for the locks its statements take. An ALTER TABLE waits for an
// exclusive lock while a transaction uses the table, and every later query on the table
// queues behind it: so each attempt waits at most `lock_timeout`, is then rolled back
// (letting the queries through) and tried again after `retry_delay`, `attempts` times in all.
struct MigrationLockWait {
  absl::Duration lock_timeout = absl::Seconds(5);
  int attempts = 8;
  absl::Duration retry_delay = absl::Seconds(1);
};

// Brings `schema` up to the newest migration. Reads <schema>.schema_migrations first and,
// when every migration is applied, returns without taking a lock or running any DDL, so a
// runtime role with DML privileges only may call it on a migrated schema. Otherwise holds
// a session advisory lock for the schema meanwhile, so concurrent replicas apply each
// migration once; each migration runs in its own transaction together with its row in
// <schema>.schema_migrations. Running it again changes nothing.
//
// A schema with migrations newer than this binary's (applied by a newer release; this one
// runs during a rollout or after a rollback) is accepted as up to date, with a warning naming
// them, provided this binary's own migrations are all applied: each release's migrations
// keep the release before it working. FAILED_PRECONDITION when an applied migration's SQL
// differs from this binary's (by SHA-256), when newer migrations are applied but one of
// this binary's is not, or when the login role may not read <schema>.schema_migrations or
// apply a pending migration (a runtime role, policy_<schema>_runtime, before the owner ran
// them). UNAVAILABLE naming the migration when its every attempt waited `lock_wait`'s
// lock_timeout for a lock (the migrations before it stay applied).
absl::Status ApplyMigrations(const std::string& url, absl::string_view schema,
                             const std::vector<Migration>& migrations,
                             const MigrationLockWait& lock_wait = {});

// OK when `schema` holds every migration of this binary, with the same SQL, and perhaps newer
// ones (accepted as ApplyMigrations accepts them); FAILED_PRECONDITION naming the difference,
// or saying that the login role may not read <schema>.schema_migrations, otherwise. Changes
// nothing.
absl::Status CheckMigrations(const std::string& url, absl::string_view schema,
                             const std::vector<Migration>& migrations);

}  // namespace policy::pg

#endif  // POLICY_COMMON_PG_MIGRATIONS_H_
