#ifndef POLICY_SERVICES_REGION_REGION_CONFIG_H_
#define POLICY_SERVICES_REGION_REGION_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/config/config.h"
#include "common/pg/storage_options.h"
#include "common/server/server_runner.h"
#include "services/region/circuit_breaker.h"

namespace policy::region {

// Everything the region binary reads from --flags and POLICY_REGION_* variables.
struct RegionConfig {
  server::ServerOptions server;
  pg::StorageOptions storage;
  // How often the registry is reloaded when changed and breaker states are exchanged with the
  // other replicas; a breaker opened on one replica reaches the others within twice this.
  // Shorter than --max_staleness, past which Route fails closed.
  absl::Duration sync_interval = absl::Milliseconds(200);
  // This replica's name in the published breaker states; default: host name and pid.
  std::string replica;
  // The audit service ("host:port") that records the registry's changes in the organisation's
  // ledger; empty: they are logged instead. Replicas sharing a database must agree: any of
  // them drains the outbox.
  std::string audit_target;
  int64_t consecutive_failures = 3;
  int64_t failure_rate_percent = 50;
  int64_t min_window_outcomes = 20;
  absl::Duration breaker_window = absl::Seconds(60);
  absl::Duration cool_down = absl::Seconds(30);
  // Per replica: N replicas let up to N times this many probes through (BreakerOptions).
  int64_t half_open_probes = 1;
  absl::Duration probe_timeout = absl::Seconds(30);
  // BreakerOptions::min_reporters: distinct reporters whose failures it takes to open a
  // breaker (at most as many as report to it), 1 to kBreakerMaxReporters.
  int64_t breaker_min_reporters = 2;
  int64_t blocking_threads = 4;
  int64_t blocking_queue = 256;

  void Register(config::Parser& parser);
  absl::Status Validate() const;
  BreakerOptions breaker() const;
};

}  // namespace policy::region

#endif  // POLICY_SERVICES_REGION_REGION_CONFIG_H_
