#include "services/authz/authz_config.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace policy::authz {

void AuthzConfig::Register(config::Parser& p) {
  server.Register(p);
  p.AddString("store", &store, "postgres or memory");
  p.AddString("database_url", &database_url, "PostgreSQL URL (store=postgres)",
              config::Sensitivity::kUrlWithCredentials);
  p.AddInt("database_pool_size", &database_pool_size, "PostgreSQL connections at most");
  p.AddBool("migrate_only", &migrate_only, "apply migrations and exit");
  p.AddBool("apply_migrations", &apply_migrations, "apply migrations at start-up");
  p.AddString("bootstrap_org_file", &bootstrap_org_file,
              "organisation file (YAML) applied at start-up while the organisation is empty");
  p.AddDuration("max_staleness", &max_staleness,
                "decisions fail closed when the organisation snapshot is older than this");
  p.AddDuration("watch_heartbeat", &watch_heartbeat,
                "how often the snapshot proves itself in sync with PostgreSQL");
  p.AddDuration("rate_limit_lease_lifetime", &rate_limits.lease_lifetime,
                "how long a replica keeps rate-limit units leased ahead of need");
  p.AddInt("blocking_threads", &blocking_threads, "threads for handlers that wait on PostgreSQL");
  p.AddInt("blocking_queue", &blocking_queue, "requests that may wait for those threads");
}

absl::Status AuthzConfig::Validate() const {
  if (absl::Status s = server.Validate(); !s.ok()) return s;
  if (store != "postgres" && store != "memory") {
    return absl::InvalidArgumentError(
        absl::StrCat("store must be postgres or memory, got '", store, "'"));
  }
  if (store == "postgres" && !absl::StartsWith(database_url, "postgresql://") &&
      !absl::StartsWith(database_url, "postgres://")) {
    return absl::InvalidArgumentError(
        "database_url must be a postgresql:// URL (required with store=postgres)");
  }
  if (database_pool_size < 1 || blocking_threads < 1 || blocking_queue < 1) {
    return absl::InvalidArgumentError(
        "database_pool_size, blocking_threads and blocking_queue must be positive");
  }
  if (max_staleness <= absl::ZeroDuration() || watch_heartbeat <= absl::ZeroDuration() ||
      watch_heartbeat >= max_staleness) {
    return absl::InvalidArgumentError(
        "watch_heartbeat must be positive and shorter than max_staleness");
  }
  if (rate_limits.lease_lifetime <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("rate_limit_lease_lifetime must be positive");
  }
  return absl::OkStatus();
}

}  // namespace policy::authz
