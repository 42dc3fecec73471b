#include "services/region/region_metrics.h"

#include <algorithm>

namespace policy::region {

RegionMetrics::RegionMetrics(prometheus::Registry& registry)
    : breaker_state_(prometheus::BuildGauge()
                         .Name("policy_region_breaker_state")
                         .Help("1 for each endpoint's current circuit breaker state.")
                         .Register(registry)),
      latency_(prometheus::BuildGauge()
                   .Name("policy_region_endpoint_latency_seconds")
                   .Help("Exponentially weighted latency of each endpoint's measured successes.")
                   .Register(registry)),
      routes_(prometheus::BuildCounter()
                  .Name("policy_region_routes_total")
                  .Help("Route decisions, by result.")
                  .Register(registry)),
      routed_(routes_.Add({{"result", "routed"}})),
      blocked_(routes_.Add({{"result", "blocked"}})),
      failovers_(prometheus::BuildCounter()
                     .Name("policy_region_failovers_total")
                     .Help("Requests routed past an unhealthy preferred endpoint.")
                     .Register(registry)
                     .Add({})),
      trips_withheld_(prometheus::BuildCounter()
                          .Name("policy_region_breaker_trips_withheld_total")
                          .Help("Failures that would have opened each endpoint's breaker but "
                                "came from too few distinct reporters.")
                          .Register(registry)) {}

void RegionMetrics::Update(const HealthReport& report) {
  const uint64_t routed = report.requests - report.blocked;
  if (routed > seen_routed_) routed_.Increment(static_cast<double>(routed - seen_routed_));
  if (report.blocked > seen_blocked_) {
    blocked_.Increment(static_cast<double>(report.blocked - seen_blocked_));
  }
  if (report.failovers > seen_failovers_) {
    failovers_.Increment(static_cast<double>(report.failovers - seen_failovers_));
  }
  seen_routed_ = std::max(seen_routed_, routed);
  seen_blocked_ = std::max(seen_blocked_, report.blocked);
  seen_failovers_ = std::max(seen_failovers_, report.failovers);

  for (auto& [id, g] : gauges_) g.present = false;
  for (const EndpointHealthReport& e : report.endpoints) {
    auto [it, inserted] = gauges_.try_emplace(e.endpoint.id);
    Gauges& g = it->second;
    if (inserted) {
      const BreakerState states[] = {BreakerState::kClosed, BreakerState::kOpen,
                                     BreakerState::kHalfOpen};
      for (int s = 0; s < 3; ++s) {
        g.states[s] = &breaker_state_.Add(
            {{"llm_endpoint", e.endpoint.id}, {"state", std::string(BreakerStateName(states[s]))}});
      }
      g.latency = &latency_.Add({{"llm_endpoint", e.endpoint.id}});
      g.trips_withheld = &trips_withheld_.Add({{"llm_endpoint", e.endpoint.id}});
      g.seen_trips_withheld = 0;
    }
    g.present = true;
    g.states[0]->Set(e.breaker.state == BreakerState::kClosed ? 1 : 0);
    g.states[1]->Set(e.breaker.state == BreakerState::kOpen ? 1 : 0);
    g.states[2]->Set(e.breaker.state == BreakerState::kHalfOpen ? 1 : 0);
    g.latency->Set(
        e.breaker.latency_ewma.has_value() ? absl::ToDoubleSeconds(*e.breaker.latency_ewma) : 0);
    const uint64_t withheld = e.breaker.trips_withheld;
    // Fewer than last seen: the breaker started afresh (a repointed endpoint).
    const uint64_t added =
        withheld >= g.seen_trips_withheld ? withheld - g.seen_trips_withheld : withheld;
    if (added > 0) g.trips_withheld->Increment(static_cast<double>(added));
    g.seen_trips_withheld = withheld;
  }
  for (auto it = gauges_.begin(); it != gauges_.end();) {
    if (it->second.present) {
      ++it;
      continue;
    }
    for (prometheus::Gauge* s : it->second.states) breaker_state_.Remove(s);
    latency_.Remove(it->second.latency);
    trips_withheld_.Remove(it->second.trips_withheld);
    gauges_.erase(it++);
  }
}

}  // namespace policy::region
