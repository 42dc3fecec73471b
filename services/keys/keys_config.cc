#include "services/keys/keys_config.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/client/channel.h"
#include "common/status/status.h"

namespace policy::keys {

void KeysConfig::Register(config::Parser& p) {
  server.Register(p);
  storage.Register(p);
  p.AddString("pepper", &pepper, "server-side secret (>= 32 bytes) keying secret hashes",
              config::Sensitivity::kSecret);
  p.AddString("bootstrap_admin", &bootstrap_admin,
              "issue the first admin key for this member id, print it once, and exit");
  p.AddDuration("max_clock_skew", &max_clock_skew,
                "fail closed while this host's clock and PostgreSQL's disagree by more than this");
  p.AddDuration("sweep_interval", &sweep_interval, "how often ended rotation overlaps are revoked");
  p.AddBool("reveal_denial_reasons", &reveal_denial_reasons,
            "tell callers why verification failed (trusted callers only)");
  p.AddString("audit_target", &audit_target,
              "audit service (host:port) recording key lifecycle events; empty: log them only");
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
  if (absl::Status s = storage.Validate(); !s.ok()) return s;
  if (pepper.size() < 32) {
    return absl::InvalidArgumentError(
        "pepper must be set to at least 32 bytes (POLICY_KEYS_PEPPER; openssl rand -hex 32)");
  }
  if (blocking_threads < 1 || blocking_queue < 1) {
    return absl::InvalidArgumentError("blocking_threads and blocking_queue must be positive");
  }
  if (!audit_target.empty()) RETURN_IF_ERROR(client::CheckTarget("audit_target", audit_target));
  if (max_clock_skew <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("max_clock_skew must be positive");
  }
  if (sweep_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("sweep_interval must be positive");
  }
  if (policy.default_ttl < kMinKeyLifetime || policy.default_ttl > policy.max_ttl) {
    return absl::InvalidArgumentError(absl::StrCat("default_ttl must be at least ",
                                                   absl::FormatDuration(kMinKeyLifetime),
                                                   " and at most max_ttl"));
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
