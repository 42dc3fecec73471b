#include "common/pg/storage_options.h"

#include <libpq-fe.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log/log.h"
#include "common/status/status.h"

namespace policy::pg {

absl::Status CheckDatabaseUrl(const std::string& url) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(url.c_str(), &error);
  if (options != nullptr) {
    // Settings libpq checks only when connecting, where a bad value would read as a database
    // not yet up and be retried for database_start_wait.
    static const auto* const kChoices = new std::map<std::string, std::set<std::string>>{
        {"sslmode", {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}},
        {"gssencmode", {"disable", "prefer", "require"}},
        {"target_session_attrs",
         {"any", "read-write", "read-only", "primary", "standby", "prefer-standby"}}};
    absl::Status checked = absl::OkStatus();
    for (const PQconninfoOption* o = options; o->keyword != nullptr && checked.ok(); ++o) {
      const auto choices = kChoices->find(o->keyword);
      if (o->val == nullptr || choices == kChoices->end() || choices->second.count(o->val) > 0) {
        continue;
      }
      checked = absl::InvalidArgumentError(absl::StrCat(
          "database_url: ", o->keyword, " must be one of ", absl::StrJoin(choices->second, ", ")));
    }
    PQconninfoFree(options);
    return checked;
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
  RegisterPolled(p);
  p.AddDuration("watch_heartbeat", &watch_heartbeat,
                "how often the in-memory state proves itself in sync with PostgreSQL");
}

void StorageOptions::RegisterPolled(config::Parser& p) {
  RegisterDatabase(p);
  p.AddDuration("max_staleness", &max_staleness,
                "answers fail closed when the in-memory state is older than this");
}

void StorageOptions::RegisterDatabase(config::Parser& p) {
  p.AddString("store", &store, "postgres or memory");
  p.AddString("database_url", &database_url, "PostgreSQL URL (store=postgres)",
              config::Sensitivity::kUrlWithCredentials);
  p.AddInt("database_pool_size", &database_pool_size, "PostgreSQL connections at most");
  p.AddBool("migrate_only", &migrate_only, "apply migrations and exit");
  p.AddBool("apply_migrations", &apply_migrations, "apply migrations at start-up");
  p.AddDuration("database_start_wait", &database_start_wait,
                "how long start-up waits for PostgreSQL to accept connections");
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
  if (database_start_wait < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("database_start_wait must not be negative");
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

absl::Status RetryWhileUnavailable(absl::FunctionRef<absl::Status()> attempt, absl::Duration wait,
                                   absl::Duration pause) {
  const absl::Time start = absl::Now();
  absl::Time next_log = start;
  while (true) {
    absl::Status status = attempt();
    if (!absl::IsUnavailable(status)) return status;
    const absl::Time now = absl::Now();
    if (now - start >= wait) {
      return absl::UnavailableError(
          absl::StrCat(status.message(),
                       " (gave up after database_start_wait=", absl::FormatDuration(wait), ")"));
    }
    if (now >= next_log) {
      LogWarning("waiting for PostgreSQL", {{"error", status.message()}});
      next_log = now + absl::Seconds(10);
    }
    absl::SleepFor(std::min(pause, wait - (now - start)));
  }
}

absl::StatusOr<bool> PrepareSchema(const StorageOptions& options, absl::string_view schema,
                                   const std::vector<Migration>& migrations) {
  if (!options.postgres()) return false;
  const bool apply = options.migrate_only || options.apply_migrations;
  RETURN_IF_ERROR(RetryWhileUnavailable(
      [&] {
        return apply ? ApplyMigrations(options.database_url, schema, migrations)
                     : CheckMigrations(options.database_url, schema, migrations);
      },
      options.database_start_wait));
  return options.migrate_only;
}

}  // namespace policy::pg
