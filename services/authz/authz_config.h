#ifndef POLICY_SERVICES_AUTHZ_AUTHZ_CONFIG_H_
#define POLICY_SERVICES_AUTHZ_AUTHZ_CONFIG_H_

#include <string>

#include "absl/status/status.h"
#include "common/config/config.h"
#include "common/server/server_runner.h"
#include "services/authz/rate_limiter.h"

namespace policy::authz {

// Everything the authz binary reads from --flags and POLICY_AUTHZ_* variables.
struct AuthzConfig {
  server::ServerOptions server;
  // "postgres" (durable, shared by replicas) or "memory" (one process, lost on exit).
  std::string store = "postgres";
  std::string database_url;  // Required with store=postgres.
  int64_t database_pool_size = 8;
  bool migrate_only = false;     // Apply this service's migrations, then exit.
  bool apply_migrations = true;  // Otherwise refuse to start unless they are applied.
  // An organisation file applied at start-up while the organisation has no members: the
  // first owners come from it.
  std::string bootstrap_org_file;
  // Decisions fail closed once the organisation snapshot is this much older than the
  // database.
  absl::Duration max_staleness = absl::Seconds(1);
  absl::Duration watch_heartbeat = absl::Milliseconds(200);
  RateLimiterOptions rate_limits;
  int64_t blocking_threads = 8;
  int64_t blocking_queue = 1024;

  void Register(config::Parser& parser);
  absl::Status Validate() const;
};

}  // namespace policy::authz

#endif  // POLICY_SERVICES_AUTHZ_AUTHZ_CONFIG_H_
