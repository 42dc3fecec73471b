#ifndef POLICY_SERVICES_REGION_ROUTING_H_
#define POLICY_SERVICES_REGION_ROUTING_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "services/region/endpoint.h"

// The route decision: which endpoint a request may go to, as a pure function of the registry,
// each endpoint's health and the request.
//
// Compliance comes first and health never overrides it. An endpoint is compliant when it is
// enabled, serves the model, keeps data where the request requires (a required residency is
// met only by endpoints of exactly that residency; none required: any), and suits the data's
// class: PHI and PII only to endpoints with zero data retention and a private link that are
// not cached; internal data to standard endpoints (not cached); public data anywhere, cached
// endpoints included. A request that requires zero data retention goes only to endpoints
// with zero data retention that are not cached (a cache keeps prompts and answers whatever
// the provider promises of its own storage).
// Of the compliant endpoints, those whose breaker admits requests are healthy; the
// preference picks one of them. No healthy compliant endpoint: BLOCKED, with why each
// endpoint was excluded.
namespace policy::region {

enum class Preference { kPriority, kLowestLatency, kWeighted };

absl::string_view PreferenceName(Preference p);  // "priority", "lowest_latency", "weighted"
std::optional<Preference> ParsePreference(absl::string_view name);

inline constexpr size_t kMaxRequestIdBytes = 128;

struct RouteRequest {
  std::optional<Residency> residency;  // Required; none (or kGlobal): any.
  DataClass data_class = DataClass::kInternal;
  std::string model;
  Preference preference = Preference::kPriority;
  // The caller's project keeps no data: only endpoints with zero data retention, not cached.
  bool zero_data_retention = false;
  // The caller's id of the request (at most kMaxRequestIdBytes); when set, EndpointRegistry draws
  // the weighted choice from it (WeightedDraw), so that a retried request is routed where its first
  // attempt was.
  std::string request_id{};
  // A retried decision: the endpoint its first attempt was routed to. When set, only that
  // endpoint may be chosen (if it complies and admits the request; else BLOCKED), whatever
  // the preference, and failover is false.
  std::string endpoint_id{};
};

// What the router knows of an endpoint's health.
struct EndpointHealth {
  bool admits = true;                     // Its breaker lets a request through now.
  std::optional<absl::Duration> latency;  // Smoothed latency; none before a success.
};

// Why an endpoint was not chosen. kNone: it was eligible (the chosen one, or a healthy
// endpoint the preference ranked lower).
enum class Exclusion {
  kNone,
  kDisabled,
  kModel,
  kResidency,
  kClassification,
  kRetention,
  kUnhealthy
};
absl::string_view ExclusionName(Exclusion e);  // "", "disabled", "model_not_served", ...

struct Candidate {
  size_t endpoint = 0;  // Index into the registry given to Route.
  Exclusion exclusion = Exclusion::kNone;
};

struct RouteDecision {
  std::optional<size_t> chosen;       // Index into the registry; none: BLOCKED.
  std::vector<Candidate> candidates;  // Every endpoint of the registry, in registry order.
  // A compliant endpoint that the preference ranks above the chosen one was unhealthy.
  bool failover = false;
};

// BLOCKED (nothing chosen) when no endpoint complies, including when none of the registry
// serves the model at all; INVALID_ARGUMENT when the model is empty. `random` in [0, 1) draws the
// weighted choice. `health(i)` is `endpoints[i]`'s, asked once and only for the endpoints that
// comply.
absl::StatusOr<RouteDecision> Route(const RouteRequest& request,
                                    absl::Span<const Endpoint> endpoints,
                                    absl::FunctionRef<EndpointHealth(size_t)> health,
                                    double random);
// The same with every endpoint's health given; INVALID_ARGUMENT unless one per endpoint.
absl::StatusOr<RouteDecision> Route(const RouteRequest& request,
                                    absl::Span<const Endpoint> endpoints,
                                    absl::Span<const EndpointHealth> health, double random);

// A number in [0, 1) that is a fixed function of `key`, the same on every replica and build:
// the weighted draw of a request that names itself (RouteRequest::request_id).
double WeightedDraw(absl::string_view key);

// Why `endpoint` cannot take the request, compliance only (health aside); the first reason
// in the order disabled, residency, classification, model.
Exclusion ComplianceOf(const RouteRequest& request, const Endpoint& endpoint);

// One sentence on a decision, for callers and logs: the chosen endpoint and why, or why
// nothing could be chosen.
std::string Explain(const RouteRequest& request, absl::Span<const Endpoint> endpoints,
                    const RouteDecision& decision);

}  // namespace policy::region

#endif  // POLICY_SERVICES_REGION_ROUTING_H_
