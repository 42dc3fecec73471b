#include "services/region/routing.h"

#include <algorithm>
#include <limits>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/text/caller_text.h"

namespace policy::region {
namespace {

// Orders endpoints under a preference; lower is preferred. The index breaks ties, so the
// order is total and the decision deterministic (but for the weighted draw).
struct Rank {
  int64_t first;
  int64_t second;
  size_t index;
  bool operator<(const Rank& o) const {
    return std::tie(first, second, index) < std::tie(o.first, o.second, o.index);
  }
};

int64_t LatencyKey(const EndpointHealth& h) {
  return h.latency.has_value() ? absl::ToInt64Microseconds(*h.latency)
                               : std::numeric_limits<int64_t>::max();
}

Rank RankOf(Preference preference, const Endpoint& e, const EndpointHealth& h, size_t index) {
  switch (preference) {
    case Preference::kLowestLatency:
      return Rank{LatencyKey(h), e.priority, index};
    case Preference::kWeighted:
      // Within a priority tier the draw decides; between tiers the better tier wins.
      return Rank{e.priority, 0, 0};
    case Preference::kPriority:
      break;
  }
  return Rank{e.priority, LatencyKey(h), index};
}

}  // namespace

double WeightedDraw(absl::string_view key) {
  // FNV-1a, then SplitMix64's finaliser to spread its bits; the top 53 bits make the double.
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ull;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

absl::string_view PreferenceName(Preference p) {
  switch (p) {
    case Preference::kPriority:
      return "priority";
    case Preference::kLowestLatency:
      return "lowest_latency";
    case Preference::kWeighted:
      return "weighted";
  }
  return "unknown";
}

std::optional<Preference> ParsePreference(absl::string_view name) {
  for (Preference p : {Preference::kPriority, Preference::kLowestLatency, Preference::kWeighted}) {
    if (PreferenceName(p) == name) return p;
  }
  return std::nullopt;
}

absl::string_view ExclusionName(Exclusion e) {
  switch (e) {
    case Exclusion::kNone:
      return "";
    case Exclusion::kDisabled:
      return "disabled";
    case Exclusion::kModel:
      return "model_not_served";
    case Exclusion::kResidency:
      return "residency";
    case Exclusion::kClassification:
      return "classification";
    case Exclusion::kRetention:
      return "retention";
    case Exclusion::kUnhealthy:
      return "unhealthy";
  }
  return "unknown";
}

Exclusion ComplianceOf(const RouteRequest& request, const Endpoint& endpoint) {
  // Cheapest checks first; the model (a search of the served list) last.
  if (!endpoint.enabled) return Exclusion::kDisabled;
  if (request.residency.has_value() && *request.residency != Residency::kGlobal &&
      endpoint.residency != *request.residency) {
    return Exclusion::kResidency;
  }
  if (!MayReceive(request.data_class, endpoint.capabilities)) return Exclusion::kClassification;
  if (request.zero_data_retention && !KeepsNothing(endpoint.capabilities)) {
    return Exclusion::kRetention;
  }
  if (!endpoint.Serves(request.model)) return Exclusion::kModel;
  return Exclusion::kNone;
}

absl::StatusOr<RouteDecision> Route(const RouteRequest& request,
                                    absl::Span<const Endpoint> endpoints,
                                    absl::Span<const EndpointHealth> health, double random) {
  if (health.size() != endpoints.size()) {
    return absl::InvalidArgumentError("health: one entry per endpoint is required");
  }
  return Route(
      request, endpoints, [health](size_t i) { return health[i]; }, random);
}

absl::StatusOr<RouteDecision> Route(const RouteRequest& request,
                                    absl::Span<const Endpoint> endpoints,
                                    absl::FunctionRef<EndpointHealth(size_t)> health,
                                    double random) {
  if (request.model.empty()) return absl::InvalidArgumentError("model: required");
  RouteDecision decision;
  decision.candidates.resize(endpoints.size());
  std::optional<Rank> best_healthy;
  std::optional<Rank> best_unhealthy;
  for (size_t i = 0; i < endpoints.size(); ++i) {
    const Endpoint& e = endpoints[i];
    Candidate& c = decision.candidates[i];
    c.endpoint = i;
    c.exclusion = ComplianceOf(request, e);
    if (c.exclusion != Exclusion::kNone) continue;
    if (!request.endpoint_id.empty() && e.id != request.endpoint_id) continue;
    const EndpointHealth h = health(i);
    const Rank rank = RankOf(request.preference, e, h, i);
    if (!h.admits) {
      c.exclusion = Exclusion::kUnhealthy;
      if (!best_unhealthy.has_value() || rank < *best_unhealthy) best_unhealthy = rank;
      continue;
    }
    if (!best_healthy.has_value() || rank < *best_healthy) {
      best_healthy = rank;
      decision.chosen = i;
    }
  }
  if (!decision.chosen.has_value() || !request.endpoint_id.empty()) return decision;

  if (request.preference == Preference::kWeighted) {
    // The draw among the healthy compliant endpoints of the best tier, by weight.
    int64_t total = 0;
    for (const Candidate& c : decision.candidates) {
      if (c.exclusion == Exclusion::kNone &&
          endpoints[c.endpoint].priority == best_healthy->first) {
        total += endpoints[c.endpoint].weight;
      }
    }
    if (total > 0) {
      const double clamped = random < 0 ? 0 : (random >= 1 ? 0.999999999 : random);
      int64_t target = static_cast<int64_t>(clamped * static_cast<double>(total));
      for (const Candidate& c : decision.candidates) {
        if (c.exclusion != Exclusion::kNone ||
            endpoints[c.endpoint].priority != best_healthy->first) {
          continue;
        }
        target -= endpoints[c.endpoint].weight;
        if (target < 0) {
          decision.chosen = c.endpoint;
          break;
        }
      }
    }
  }
  decision.failover = best_unhealthy.has_value() && *best_unhealthy < *best_healthy;
  return decision;
}

std::string Explain(const RouteRequest& request, absl::Span<const Endpoint> endpoints,
                    const RouteDecision& decision) {
  const std::string wanted = absl::StrCat(
      "residency ", request.residency.has_value() ? ResidencyName(*request.residency) : "any", ", ",
      DataClassName(request.data_class), " data",
      request.zero_data_retention ? " with zero data retention" : "", ", model ", request.model);
  if (decision.chosen.has_value()) {
    const Endpoint& e = endpoints[*decision.chosen];
    return absl::StrCat("chose ", e.id, " (", e.region, ", ", ResidencyName(e.residency), ") by ",
                        PreferenceName(request.preference), " for ", wanted,
                        decision.failover ? "; a preferred endpoint is unhealthy (failover)" : "");
  }
  if (!request.endpoint_id.empty()) {
    const auto named = std::find_if(endpoints.begin(), endpoints.end(),
                                    [&](const Endpoint& e) { return e.id == request.endpoint_id; });
    const absl::string_view why =
        named == endpoints.end()
            ? absl::string_view("not in the registry")
            : ExclusionName(decision.candidates[named - endpoints.begin()].exclusion);
    return absl::StrCat("NO_COMPLIANT_REGION: endpoint ", Quoted(request.endpoint_id),
                        ", where the request was first routed, no longer takes it (", why, ")");
  }
  const bool served = std::any_of(endpoints.begin(), endpoints.end(),
                                  [&](const Endpoint& e) { return e.Serves(request.model); });
  if (!served) {
    return absl::StrCat("NO_COMPLIANT_REGION: no endpoint serves model ", Quoted(request.model));
  }
  std::vector<std::string> why;
  for (const Candidate& c : decision.candidates) {
    // Endpoints not serving the model are irrelevant to the request.
    if (c.exclusion == Exclusion::kModel || !endpoints[c.endpoint].Serves(request.model)) {
      continue;
    }
    why.push_back(absl::StrCat(endpoints[c.endpoint].id, ": ", ExclusionName(c.exclusion)));
  }
  return absl::StrCat("NO_COMPLIANT_REGION: no healthy endpoint for ", wanted,
                      why.empty() ? "" : " (", absl::StrJoin(why, ", "), why.empty() ? "" : ")");
}

}  // namespace policy::region
