#include "services/region/region_config.h"

#include "absl/strings/str_cat.h"
#include "common/client/channel.h"
#include "common/status/status.h"

namespace policy::region {

void RegionConfig::Register(config::Parser& p) {
  server.Register(p);
  storage.RegisterPolled(p);  // sync_interval, not a watch, keeps the registry current.
  p.AddDuration("sync_interval", &sync_interval,
                "how often the registry and the replicas' breaker states are synchronised");
  p.AddString("replica", &replica, "this replica's name among those sharing the database");
  p.AddString("audit_target", &audit_target,
              "audit service (host:port) recording the endpoint registry's changes; empty: log "
              "them only");
  p.AddInt("consecutive_failures", &consecutive_failures,
           "failures in a row that open an endpoint's breaker");
  p.AddInt("failure_rate_percent", &failure_rate_percent,
           "failure rate over the window (percent) that opens a breaker");
  p.AddInt("min_window_outcomes", &min_window_outcomes,
           "outcomes in the window before the failure rate counts");
  p.AddDuration("breaker_window", &breaker_window, "the failure rate's sliding window");
  p.AddDuration("cool_down", &cool_down, "how long an open breaker waits before probing");
  p.AddInt("half_open_probes", &half_open_probes,
           "requests this replica lets through while half-open");
  p.AddDuration("probe_timeout", &probe_timeout,
                "how long a half-open probe holds its slot without a reported outcome");
  p.AddInt("breaker_min_reporters", &breaker_min_reporters,
           "distinct reporters (tenants) whose failures open a breaker, of those reporting to it "
           "(1 to 8; 1: any one of them)");
  p.AddInt("blocking_threads", &blocking_threads, "threads for calls that wait on PostgreSQL");
  p.AddInt("blocking_queue", &blocking_queue, "calls that may wait for those threads");
}

BreakerOptions RegionConfig::breaker() const {
  BreakerOptions o;
  o.consecutive_failures = static_cast<int>(consecutive_failures);
  o.failure_rate = static_cast<double>(failure_rate_percent) / 100.0;
  o.min_window_outcomes = static_cast<int>(min_window_outcomes);
  o.window = breaker_window;
  o.cool_down = cool_down;
  o.half_open_probes = static_cast<int>(half_open_probes);
  o.probe_timeout = probe_timeout;
  o.min_reporters = static_cast<int>(breaker_min_reporters);
  return o;
}

absl::Status RegionConfig::Validate() const {
  if (absl::Status s = server.Validate(); !s.ok()) return s;
  if (absl::Status s = storage.Validate(); !s.ok()) return s;
  if (!audit_target.empty()) RETURN_IF_ERROR(client::CheckTarget("audit_target", audit_target));
  if (sync_interval < absl::Milliseconds(10) || sync_interval > absl::Minutes(10)) {
    return absl::InvalidArgumentError("sync_interval must be between 10ms and 10m");
  }
  if (storage.postgres() && sync_interval >= storage.max_staleness) {
    return absl::InvalidArgumentError("sync_interval must be shorter than max_staleness");
  }
  if (consecutive_failures < 1 || consecutive_failures > 1000 || min_window_outcomes < 1 ||
      min_window_outcomes > 1'000'000 || half_open_probes < 1 || half_open_probes > 1000) {
    return absl::InvalidArgumentError(
        "consecutive_failures, min_window_outcomes and half_open_probes must be positive");
  }
  if (failure_rate_percent < 1 || failure_rate_percent > 100) {
    return absl::InvalidArgumentError("failure_rate_percent must be between 1 and 100");
  }
  if (breaker_min_reporters < 1 || breaker_min_reporters > kBreakerMaxReporters) {
    return absl::InvalidArgumentError(absl::StrCat("breaker_min_reporters must be between 1 and ",
                                                   kBreakerMaxReporters, ", not ",
                                                   breaker_min_reporters));
  }
  if (blocking_threads < 1 || blocking_queue < 1) {
    return absl::InvalidArgumentError("blocking_threads and blocking_queue must be positive");
  }
  if (absl::Status s = ValidateBreakerOptions(breaker()); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("breaker settings: ", s.message()));
  }
  return absl::OkStatus();
}

}  // namespace policy::region
