#include "common/pg/storage_options.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace policy::pg {

PoolOptions StorageOptions::pool_options() const {
  return PoolOptions{.url = database_url, .size = static_cast<int>(database_pool_size)};
}

void StorageOptions::Register(config::Parser& p) {
  RegisterDatabase(p);
  p.AddDuration("max_staleness", &max_staleness,
                "answers fail closed when the in-memory state is older than this");
  p.AddDuration("watch_heartbeat", &watch_heartbeat,
                "how often the in-memory state proves itself in sync with PostgreSQL");
}

void StorageOptions::RegisterDatabase(config::Parser& p) {
  p.AddString("store", &store, "postgres or memory");
  p.AddString("database_url", &database_url, "PostgreSQL URL (store=postgres)",
              config::Sensitivity::kUrlWithCredentials);
  p.AddInt("database_pool_size", &database_pool_size, "PostgreSQL connections at most");
  p.AddBool("migrate_only", &migrate_only, "apply migrations and exit");
  p.AddBool("apply_migrations", &apply_migrations, "apply migrations at start-up");
}

absl::Status StorageOptions::Validate() const {
  if (store != "postgres" && store != "memory") {
    return absl::InvalidArgumentError(
        absl::StrCat("store must be postgres or memory, got '", store, "'"));
  }
  if (postgres() && !absl::StartsWith(database_url, "postgresql://") &&
      !absl::StartsWith(database_url, "postgres://")) {
    // Only the URL form: it is the one whose password the start-up log can redact.
    return absl::InvalidArgumentError(
        "database_url must be a postgresql:// URL (required with store=postgres)");
  }
  if (database_pool_size < 1) {
    return absl::InvalidArgumentError("database_pool_size must be positive");
  }
  if (max_staleness <= absl::ZeroDuration() || watch_heartbeat <= absl::ZeroDuration() ||
      watch_heartbeat >= max_staleness) {
    return absl::InvalidArgumentError(
        "watch_heartbeat must be positive and shorter than max_staleness");
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> PrepareSchema(const StorageOptions& options, absl::string_view schema,
                                   const std::vector<Migration>& migrations) {
  if (!options.postgres()) return false;
  if (options.migrate_only || options.apply_migrations) {
    if (absl::Status s = ApplyMigrations(options.database_url, schema, migrations); !s.ok()) {
      return s;
    }
    return options.migrate_only;
  }
  if (absl::Status s = CheckMigrations(options.database_url, schema, migrations); !s.ok()) {
    return s;
  }
  return false;
}

}  // namespace policy::pg
