#ifndef POLICY_COMMON_PG_STORAGE_OPTIONS_H_
#define POLICY_COMMON_PG_STORAGE_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/config/config.h"
#include "common/pg/migrations.h"
#include "common/pg/pool.h"

namespace policy::pg {

// Where a service keeps its state, the same flags in every service: --store, --database_url,
// --database_pool_size, --migrate_only and --apply_migrations; in a service that keeps an
// in-memory copy of PostgreSQL's state --max_staleness, and when PostgreSQL's notifications
// keep that copy current --watch_heartbeat (and POLICY_<SVC>_* for each).
struct StorageOptions {
  // "postgres" (durable, shared by replicas) or "memory" (one process, lost on exit).
  std::string store = "postgres";
  std::string database_url;  // Required with store=postgres.
  int64_t database_pool_size = 8;
  bool migrate_only = false;     // Apply the service's migrations, then exit.
  bool apply_migrations = true;  // Otherwise refuse to start unless they are applied.
  // How long start-up waits for PostgreSQL to accept connections before it gives up.
  absl::Duration database_start_wait = absl::Seconds(60);
  // The in-memory state answers fail closed once it is this much older than the database.
  absl::Duration max_staleness = absl::Seconds(1);
  // How often the in-memory state proves itself in sync with PostgreSQL.
  absl::Duration watch_heartbeat = absl::Milliseconds(200);

  bool postgres() const { return store == "postgres"; }
  PoolOptions pool_options() const;
  // Every setting: a service whose in-memory copy of its state follows PostgreSQL's
  // notifications (max_staleness and watch_heartbeat bound it).
  void Register(config::Parser& parser);
  // The database settings and max_staleness: a service whose in-memory copy is re-read on a
  // schedule of its own (watch_heartbeat stays at its default, unused).
  void RegisterPolled(config::Parser& parser);
  // The database settings alone, for a service that keeps no such copy (max_staleness and
  // watch_heartbeat stay at their defaults, unused).
  void RegisterDatabase(config::Parser& parser);
  absl::Status Validate() const;
};

// OK when libpq can parse `url`; otherwise INVALID_ARGUMENT saying why without quoting any of
// it (it may hold a password).
absl::Status CheckDatabaseUrl(const std::string& url);

// Calls `attempt` until it returns anything but UNAVAILABLE or `wait` has passed since the first
// call, pausing `pause` between calls and logging while it waits; the last status is returned,
// an UNAVAILABLE one naming database_start_wait.
absl::Status RetryWhileUnavailable(absl::FunctionRef<absl::Status()> attempt, absl::Duration wait,
                                   absl::Duration pause = absl::Seconds(1));

// With store=postgres, brings `schema` up to `migrations` (ApplyMigrations), or with
// apply_migrations=false only checks that it is (CheckMigrations), waiting up to
// database_start_wait for PostgreSQL to accept connections. Returns true when the process has
// nothing more to do (migrate_only). Does nothing with store=memory.
absl::StatusOr<bool> PrepareSchema(const StorageOptions& options, absl::string_view schema,
                                   const std::vector<Migration>& migrations);

}  // namespace policy::pg

#endif  // POLICY_COMMON_PG_STORAGE_OPTIONS_H_
