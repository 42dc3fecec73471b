#ifndef POLICY_SERVICES_REGION_ENDPOINT_REGISTRY_H_
#define POLICY_SERVICES_REGION_ENDPOINT_REGISTRY_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock/clock.h"
#include "services/region/circuit_breaker.h"
#include "services/region/endpoint.h"
#include "services/region/routing.h"

// The endpoints one replica routes to, with each endpoint's circuit breaker, fed by the
// outcomes callers report. Thread-safe.
namespace policy::region {

struct RouteResult {
  // The registry as it was when the decision was made; the decision's indexes point into it.
  std::shared_ptr<const std::vector<Endpoint>> endpoints;
  RouteDecision decision;
  std::string explanation;  // Explain()
  const Endpoint* chosen() const {
    return decision.chosen.has_value() ? &(*endpoints)[*decision.chosen] : nullptr;
  }
};

struct EndpointHealthReport {
  Endpoint endpoint;
  BreakerSnapshot breaker;
  uint64_t routed = 0;     // Requests routed to it.
  uint64_t successes = 0;  // Outcomes reported.
  uint64_t failures = 0;
};

// The seed's regional health report, from this replica's counters.
struct HealthReport {
  uint64_t requests = 0;  // Route calls that chose an endpoint or blocked.
  uint64_t blocked = 0;
  uint64_t failovers = 0;  // Requests routed past an unhealthy preferred endpoint.
  double failover_rate = 0;
  std::vector<EndpointHealthReport> endpoints;
};

// Whether `a` and `b` send requests to the same place: the same provider, base URL,
// deployment and region.
bool SameTarget(const Endpoint& a, const Endpoint& b);

class EndpointRegistry {
 public:
  // REQUIRES: ValidateBreakerOptions(options) is OK.
  EndpointRegistry(Clock* clock, BreakerOptions options);

  // Replaces the endpoints (ValidateRegistry first). Breakers and counters of the ids that
  // remain are kept, unless the endpoint was repointed (another provider, base URL,
  // deployment or region: another target, see SameTarget): its breaker, latency and counters
  // start afresh, and outcomes of requests routed before this call (Outcome::routed_at) no
  // longer count. Those of removed ids are dropped.
  absl::Status Replace(std::vector<Endpoint> endpoints);

  // Decides, counts the request (and the failover), and takes a probe slot of the chosen
  // endpoint's breaker when it is half-open. INVALID_ARGUMENT as Route() says. The weighted
  // draw is WeightedDraw(request.request_id) when the request names itself, random otherwise.
  absl::StatusOr<RouteResult> Route(const RouteRequest& request);

  // An outcome of a request sent to endpoint `id`; NOT_FOUND for an unknown id. Returns the
  // breaker's state after it. An outcome of a request routed before the endpoint was
  // repointed (see Replace) changes nothing.
  absl::StatusOr<BreakerState> ReportOutcome(const std::string& id, const Outcome& outcome);

  // Merges a breaker state another replica reported for `id` (CircuitBreaker::Adopt), its
  // times on this registry's clock; unknown ids are ignored.
  void AdoptPeerState(const std::string& id, BreakerState state, absl::Time opened_at,
                      absl::Time closed_at);

  HealthReport Health() const;

 private:
  struct Tracked {
    explicit Tracked(const BreakerOptions& options) : breaker(options) {}
    CircuitBreaker breaker;
    // When this replica learnt of the endpoint's current target (after a repointing);
    // InfinitePast otherwise. Outcomes of requests routed before it are of another target.
    absl::Time target_since = absl::InfinitePast();
    uint64_t routed = 0;
    uint64_t successes = 0;
    uint64_t failures = 0;
  };

  Clock* const clock_;
  const BreakerOptions options_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const std::vector<Endpoint>> endpoints_ ABSL_GUARDED_BY(mu_);
  // By endpoint id; one per endpoint of endpoints_.
  absl::flat_hash_map<std::string, std::unique_ptr<Tracked>> tracked_ ABSL_GUARDED_BY(mu_);
  std::vector<Tracked*> by_index_ ABSL_GUARDED_BY(mu_);  // tracked_ in endpoints_'s order.
  absl::BitGen random_ ABSL_GUARDED_BY(mu_);
  uint64_t requests_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t blocked_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t failovers_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace policy::region

#endif  // POLICY_SERVICES_REGION_ENDPOINT_REGISTRY_H_
