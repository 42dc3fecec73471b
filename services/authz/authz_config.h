#ifndef POLICY_SERVICES_AUTHZ_AUTHZ_CONFIG_H_
#define POLICY_SERVICES_AUTHZ_AUTHZ_CONFIG_H_

#include <string>

#include "absl/status/status.h"
#include "common/config/config.h"
#include "common/pg/storage_options.h"
#include "common/server/server_runner.h"
#include "services/authz/rate_limiter.h"

namespace policy::authz {

// Everything the authz binary reads from --flags and POLICY_AUTHZ_* variables.
struct AuthzConfig {
  server::ServerOptions server;
  pg::StorageOptions storage;
  // An organisation file applied at start-up while the organisation has no members: the
  // first owners come from it.
  std::string bootstrap_org_file;
  // The keys service ("host:port"): when set, removals list the removed members' keys to
  // revoke.
  std::string keys_address;
  // The audit service ("host:port") that records the organisation's changes; empty: they are
  // logged only.
  std::string audit_target;
  RateLimiterOptions rate_limits;
  int64_t blocking_threads = 8;
  int64_t blocking_queue = 1024;

  void Register(config::Parser& parser);
  absl::Status Validate() const;
};

}  // namespace policy::authz

#endif  // POLICY_SERVICES_AUTHZ_AUTHZ_CONFIG_H_
