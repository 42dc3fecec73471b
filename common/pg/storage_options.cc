#include "common/pg/storage_options.h"

#include <libpq-fe.h>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status/status.h"

namespace policy::pg {

absl::Status CheckDatabaseUrl(const std::string& url) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
  if (options != nullptr) {
    PQconninfoFree(options);
    return absl::OkStatus();
  }
  // libpq quotes the offending part, which may be (part of) the password: only what comes
  // before the first quote or colon is told.
  std::string reason = error != nullptr ? error : "out of memory";
  PQfreemem(error);
  reason = std::string(absl::StripAsciiWhitespace(reason.substr(0, reason.find_first_of(":\""))));
  return absl::InvalidArgumentError(
      absl::StrCat("database_url is not a valid PostgreSQL URL (", reason, ")"));
}

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
  if (postgres()) RETURN_IF_ERROR(CheckDatabaseUrl(database_url));
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
