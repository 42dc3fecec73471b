#ifndef POLICY_SERVICES_REGION_REGION_METRICS_H_
#define POLICY_SERVICES_REGION_REGION_METRICS_H_

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "services/region/endpoint_registry.h"

// The region service's Prometheus metrics, refreshed from the registry's health report:
//   policy_region_breaker_state{llm_endpoint, state}     1 for the breaker's current state
//   policy_region_endpoint_latency_seconds{llm_endpoint} smoothed latency of measured successes
//   policy_region_routes_total{result}                   routed / blocked
//   policy_region_failovers_total                        routed past an unhealthy preferred one
//   policy_region_breaker_trips_withheld_total{llm_endpoint}  trips withheld for lack of
//       reporters
// The LLM endpoint's label is not "endpoint", which Prometheus' operator sets on every series
// it scrapes (the scrape port's name).
// Not thread-safe: one caller (the sync loop).
namespace policy::region {

class RegionMetrics {
 public:
  explicit RegionMetrics(prometheus::Registry& registry);
  void Update(const HealthReport& report);

 private:
  prometheus::Family<prometheus::Gauge>& breaker_state_;
  prometheus::Family<prometheus::Gauge>& latency_;
  prometheus::Family<prometheus::Counter>& routes_;
  prometheus::Counter& routed_;
  prometheus::Counter& blocked_;
  prometheus::Counter& failovers_;
  prometheus::Family<prometheus::Counter>& trips_withheld_;
  uint64_t seen_routed_ = 0, seen_blocked_ = 0, seen_failovers_ = 0;
  // Endpoint id -> its series, to remove those of deleted endpoints.
  struct Gauges {
    prometheus::Gauge* states[3];
    prometheus::Gauge* latency;
    prometheus::Counter* trips_withheld;
    // The report's trips_withheld when last seen (it restarts from 0 when the endpoint is
    // repointed, while the counter goes on).
    uint64_t seen_trips_withheld;
    bool present;
  };
  absl::flat_hash_map<std::string, Gauges> gauges_;
};

}  // namespace policy::region

#endif  // POLICY_SERVICES_REGION_REGION_METRICS_H_
