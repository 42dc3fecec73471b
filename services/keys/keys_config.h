#ifndef POLICY_SERVICES_KEYS_KEYS_CONFIG_H_
#define POLICY_SERVICES_KEYS_KEYS_CONFIG_H_

#include <string>

#include "absl/status/status.h"
#include "common/config/config.h"
#include "common/server/server_runner.h"
#include "services/keys/key_lifecycle.h"

namespace policy::keys {

// Everything the keys binary reads from --flags and POLICY_KEYS_* variables.
struct KeysConfig {
  server::ServerOptions server;
  // "postgres" (durable, shared by replicas) or "memory" (one process, lost on exit).
  std::string store = "postgres";
  // Required with store=postgres.
  std::string database_url;
  int64_t database_pool_size = 8;
  // At least 32 bytes; hashes secrets and seals replays. Changing it invalidates every key.
  std::string pepper;
  // Apply this service's migrations, then exit.
  bool migrate_only = false;
  // Apply migrations at start-up (otherwise refuse to start unless they are applied).
  bool apply_migrations = true;
  // Issue the first admin key for this member id, print its secret once, and exit.
  std::string bootstrap_admin;
  // Verification fails closed once the cache is this much older than the database.
  absl::Duration max_staleness = absl::Seconds(1);
  // How often the cache proves itself in sync with PostgreSQL.
  absl::Duration watch_heartbeat = absl::Milliseconds(200);
  // How often overlaps ending and old request ids are swept.
  absl::Duration sweep_interval = absl::Seconds(1);
  // Tell callers why a verification failed; only where callers are trusted (the edge).
  bool reveal_denial_reasons = false;
  // Threads and queue for handlers that wait on the database.
  int64_t blocking_threads = 8;
  int64_t blocking_queue = 1024;
  KeyPolicy policy;

  void Register(config::Parser& parser);
  absl::Status Validate() const;
};

}  // namespace policy::keys

#endif  // POLICY_SERVICES_KEYS_KEYS_CONFIG_H_
