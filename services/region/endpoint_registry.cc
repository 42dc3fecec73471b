#include "services/region/endpoint_registry.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status/status.h"
#include "common/text/caller_text.h"

namespace policy::region {

EndpointRegistry::EndpointRegistry(Clock* clock, BreakerOptions options)
    : clock_(clock),
      options_(options),
      endpoints_(std::make_shared<const std::vector<Endpoint>>()) {}

bool SameTarget(const Endpoint& a, const Endpoint& b) {
  return a.provider == b.provider && a.base_url == b.base_url && a.deployment == b.deployment &&
         a.region == b.region;
}

absl::Status EndpointRegistry::Replace(std::vector<Endpoint> endpoints) {
  if (absl::Status s = ValidateRegistry(endpoints); !s.ok()) return s;
  auto snapshot = std::make_shared<const std::vector<Endpoint>>(std::move(endpoints));
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  absl::flat_hash_map<absl::string_view, const Endpoint*> previous;
  for (const Endpoint& e : *endpoints_) previous.emplace(e.id, &e);
  absl::flat_hash_map<std::string, std::unique_ptr<Tracked>> tracked;
  std::vector<Tracked*> by_index;
  for (const Endpoint& e : *snapshot) {
    auto it = tracked_.find(e.id);
    std::unique_ptr<Tracked> t;
    if (it == tracked_.end()) {
      t = std::make_unique<Tracked>(options_);
    } else if (!SameTarget(*previous.at(e.id), e)) {
      t = std::make_unique<Tracked>(options_);
      t->target_since = now;
    } else {
      t = std::move(it->second);
    }
    by_index.push_back(t.get());
    tracked.emplace(e.id, std::move(t));
  }
  tracked_ = std::move(tracked);
  by_index_ = std::move(by_index);
  endpoints_ = std::move(snapshot);
  return absl::OkStatus();
}

absl::StatusOr<RouteResult> EndpointRegistry::Route(const RouteRequest& request) {
  const absl::Time now = clock_->Now();
  RouteResult result;
  {
    absl::MutexLock lock(&mu_);
    auto health = [&](size_t i) ABSL_NO_THREAD_SAFETY_ANALYSIS {
      const CircuitBreaker& b = by_index_[i]->breaker;
      return EndpointHealth{.admits = b.WouldAdmit(now), .latency = b.LatencyEwma()};
    };
    result.endpoints = endpoints_;
    const double draw = request.request_id.empty() ? absl::Uniform(random_, 0.0, 1.0)
                                                   : WeightedDraw(request.request_id);
    ASSIGN_OR_RETURN(result.decision, region::Route(request, *endpoints_, health, draw));
    ++requests_;
    if (result.decision.chosen.has_value()) {
      Tracked& t = *by_index_[*result.decision.chosen];
      t.breaker.Admit(now);  // WouldAdmit said yes under this lock: takes a half-open probe.
      ++t.routed;
      if (result.decision.failover) ++failovers_;
    } else {
      ++blocked_;
    }
  }
  // The snapshot in `result` stays valid whatever replaces the registry meanwhile.
  result.explanation = Explain(request, *result.endpoints, result.decision);
  return result;
}

absl::StatusOr<BreakerState> EndpointRegistry::ReportOutcome(const std::string& id,
                                                             const Outcome& outcome) {
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  auto it = tracked_.find(id);
  if (it == tracked_.end()) {
    return absl::NotFoundError(absl::StrCat("endpoint ", Quoted(id), " is not in the registry"));
  }
  Tracked& t = *it->second;
  // A reply of a request sent to the endpoint's previous target.
  if (std::min(outcome.routed_at, now) < t.target_since) return t.breaker.State(now);
  ++(outcome.success ? t.successes : t.failures);
  return t.breaker.Record(outcome, now);
}

void EndpointRegistry::AdoptPeerState(const std::string& id, BreakerState state,
                                      absl::Time opened_at, absl::Time closed_at) {
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  if (auto it = tracked_.find(id); it != tracked_.end()) {
    it->second->breaker.Adopt(state, opened_at, closed_at, now);
  }
}

HealthReport EndpointRegistry::Health() const {
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  HealthReport report;
  report.requests = requests_;
  report.blocked = blocked_;
  report.failovers = failovers_;
  report.failover_rate =
      requests_ == 0 ? 0 : static_cast<double>(failovers_) / static_cast<double>(requests_);
  for (size_t i = 0; i < by_index_.size(); ++i) {
    const Tracked& t = *by_index_[i];
    report.endpoints.push_back(EndpointHealthReport{.endpoint = (*endpoints_)[i],
                                                    .breaker = t.breaker.Snapshot(now),
                                                    .routed = t.routed,
                                                    .successes = t.successes,
                                                    .failures = t.failures});
  }
  return report;
}

}  // namespace policy::region
