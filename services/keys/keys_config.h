#ifndef POLICY_SERVICES_KEYS_KEYS_CONFIG_H_
#define POLICY_SERVICES_KEYS_KEYS_CONFIG_H_

#include <string>

#include "absl/status/status.h"
#include "common/config/config.h"
#include "common/pg/storage_options.h"
#include "common/server/server_runner.h"
#include "services/keys/key_lifecycle.h"

namespace policy::keys {

// Everything the keys binary reads from --flags and POLICY_KEYS_* variables.
struct KeysConfig {
  server::ServerOptions server;
  pg::StorageOptions storage;
  // At least 32 bytes; hashes secrets and seals replays. Changing it invalidates every key.
  std::string pepper;
  // Issue the first admin key for this member id, print its secret once, and exit.
  std::string bootstrap_admin;
  // Verification judges expiry and overlap ends by this host's clock: while it and the
  // database server's disagree by more than this, the cache counts as out of sync (fails
  // closed). Infinite: not checked.
  absl::Duration max_clock_skew = absl::Seconds(5);
  // How often overlaps ending and old request ids are swept.
  absl::Duration sweep_interval = absl::Seconds(1);
  // Tell callers why a verification failed; only where callers are trusted (the edge).
  bool reveal_denial_reasons = false;
  // The audit service ("host:port") that records key lifecycle events; empty: they are
  // logged instead. Replicas sharing a database must agree: any of them drains the outbox.
  std::string audit_target;
  // Threads and queue for handlers that wait on the database.
  int64_t blocking_threads = 8;
  int64_t blocking_queue = 1024;
  KeyPolicy policy;

  void Register(config::Parser& parser);
  absl::Status Validate() const;
};

}  // namespace policy::keys

#endif  // POLICY_SERVICES_KEYS_KEYS_CONFIG_H_
