#include "services/keys/keys_config.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace policy::keys {

void KeysConfig::Register(config::Parser& p) {
  server.Register(p);
  p.AddString("store", &store, "postgres or memory");
  p.AddString("database_url", &database_url, "PostgreSQL URL (store=postgres)",
              config::Sensitivity::kUrlWithCredentials);
  p.AddInt("database_pool_size", &database_pool_size, "PostgreSQL connections at most");
  p.AddString("pepper", &pepper, "server-side secret (>= 32 bytes) keying secret hashes",
              config::Sensitivity::kSecret);
  p.AddBool("migrate_only", &migrate_only, "apply migrations and exit");
  p.AddBool("apply_migrations", &apply_migrations, "apply migrations at start-up");
  p.AddString("bootstrap_admin", &bootstrap_admin,
              "issue the first admin key for this member id, print it once, and exit");
  p.AddDuration("max_staleness", &max_staleness,
                "verification fails closed when the key cache is older than this");
  p.AddDuration("watch_heartbeat", &watch_heartbeat,
                "how often the key cache proves itself in sync with PostgreSQL");
  p.AddDuration("sweep_interval", &sweep_interval, "how often ended rotation overlaps are revoked");
  p.AddBool("reveal_denial_reasons", &reveal_denial_reasons,
            "tell callers why verification failed (trusted callers only)");
  p.AddInt("blocking_threads", &blocking_threads, "threads for handlers that wait on PostgreSQL");
  p.AddInt("blocking_queue", &blocking_queue, "requests that may wait for those threads");
  p.AddDuration("default_ttl", &policy.default_ttl, "lifetime of a key created without one");
  p.AddDuration("max_ttl", &policy.max_ttl, "longest lifetime a key may have");
  p.AddDuration("default_overlap", &policy.default_overlap,
                "how long both keys verify after a rotation");
  p.AddDuration("max_overlap", &policy.max_overlap, "longest rotation overlap");
  p.AddDuration("rotation_warning", &policy.rotation_warning,
                "keys expiring within this appear as WARNING in the rotation report");
  p.AddDuration("idempotency_window", &policy.idempotency_window,
                "how long a request id is remembered");
}

absl::Status KeysConfig::Validate() const {
  if (absl::Status s = server.Validate(); !s.ok()) return s;
  if (store != "postgres" && store != "memory") {
    return absl::InvalidArgumentError(
        absl::StrCat("store must be postgres or memory, got '", store, "'"));
  }
  if (store == "postgres" && !absl::StartsWith(database_url, "postgresql://") &&
      !absl::StartsWith(database_url, "postgres://")) {
    // Only the URL form: it is the one whose password the start-up log can redact.
    return absl::InvalidArgumentError(
        "database_url must be a postgresql:// URL (required with store=postgres)");
  }
  if (pepper.size() < 32) {
    return absl::InvalidArgumentError(
        "pepper must be set to at least 32 bytes (POLICY_KEYS_PEPPER; openssl rand -hex 32)");
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
  if (sweep_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("sweep_interval must be positive");
  }
  if (policy.default_ttl <= absl::ZeroDuration() || policy.default_ttl > policy.max_ttl) {
    return absl::InvalidArgumentError("default_ttl must be positive and at most max_ttl");
  }
  if (policy.default_overlap < absl::ZeroDuration() ||
      policy.default_overlap > policy.max_overlap) {
    return absl::InvalidArgumentError("default_overlap must be between 0 and max_overlap");
  }
  if (policy.rotation_warning < absl::ZeroDuration() ||
      policy.idempotency_window <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "rotation_warning must not be negative and idempotency_window must be positive");
  }
  return absl::OkStatus();
}

}  // namespace policy::keys
