#include "services/authz/authz_config.h"

#include "absl/status/status.h"
#include "common/client/channel.h"
#include "common/status/status.h"

namespace policy::authz {

void AuthzConfig::Register(config::Parser& p) {
  server.Register(p);
  storage.Register(p);
  p.AddString("bootstrap_org_file", &bootstrap_org_file,
              "organisation file (YAML) applied at start-up while the organisation is empty");
  p.AddString("keys_address", &keys_address,
              "keys service host:port; when set, removing members lists their keys to revoke");
  p.AddString("audit_target", &audit_target,
              "audit service (host:port) recording the organisation's changes; empty: log them "
              "only");
  p.AddDuration("rate_limit_lease_lifetime", &rate_limits.lease_lifetime,
                "how long a replica keeps rate-limit units leased ahead of need");
  p.AddInt("blocking_threads", &blocking_threads, "threads for handlers that wait on PostgreSQL");
  p.AddInt("blocking_queue", &blocking_queue, "requests that may wait for those threads");
}

absl::Status AuthzConfig::Validate() const {
  if (absl::Status s = server.Validate(); !s.ok()) return s;
  if (absl::Status s = storage.Validate(); !s.ok()) return s;
  if (!keys_address.empty()) RETURN_IF_ERROR(client::CheckTarget("keys_address", keys_address));
  if (!audit_target.empty()) RETURN_IF_ERROR(client::CheckTarget("audit_target", audit_target));
  if (blocking_threads < 1 || blocking_queue < 1) {
    return absl::InvalidArgumentError("blocking_threads and blocking_queue must be positive");
  }
  if (rate_limits.lease_lifetime <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("rate_limit_lease_lifetime must be positive");
  }
  return absl::OkStatus();
}

}  // namespace policy::authz
