#include "services/region/proto_convert.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "common/data_class/data_class_proto.h"
#include "common/proto/well_known.h"
#include "common/residency/residency_proto.h"
#include "common/status/status.h"
#include "common/text/caller_text.h"

namespace policy::region {
namespace {

absl::Status UnknownEnum(absl::string_view field, int value) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": unknown value ", value));
}

v1::Exclusion ToProto(Exclusion e) {
  switch (e) {
    case Exclusion::kNone:
      return v1::EXCLUSION_UNSPECIFIED;
    case Exclusion::kDisabled:
      return v1::EXCLUSION_DISABLED;
    case Exclusion::kModel:
      return v1::EXCLUSION_MODEL_NOT_SERVED;
    case Exclusion::kResidency:
      return v1::EXCLUSION_RESIDENCY;
    case Exclusion::kClassification:
      return v1::EXCLUSION_CLASSIFICATION;
    case Exclusion::kRetention:
      return v1::EXCLUSION_RETENTION;
    case Exclusion::kUnhealthy:
      return v1::EXCLUSION_UNHEALTHY;
  }
  return v1::EXCLUSION_UNSPECIFIED;
}

}  // namespace

absl::StatusOr<Endpoint> EndpointFromProto(const v1::Endpoint& in) {
  Endpoint e;
  e.id = in.id();
  e.region = in.region();
  switch (in.provider()) {
    case v1::PROVIDER_OPENAI:
      e.provider = Provider::kOpenAi;
      break;
    case v1::PROVIDER_AZURE:
      e.provider = Provider::kAzure;
      break;
    case v1::PROVIDER_UNSPECIFIED:
      return absl::InvalidArgumentError("endpoint.provider: required (openai or azure)");
    default:
      return UnknownEnum("endpoint.provider", in.provider());
  }
  e.base_url = in.base_url();
  e.deployment = in.deployment();
  if (in.residency() == v1::RESIDENCY_UNSPECIFIED) {
    return absl::InvalidArgumentError("endpoint.residency: required (eu, us, apac or global)");
  }
  ASSIGN_OR_RETURN(e.residency,
                   ResidencyFromProto(in.residency(), Residency::kGlobal, "endpoint.residency"));
  e.capabilities = PromisesFromProto(in.capabilities());
  e.models.assign(in.models().begin(), in.models().end());
  e.priority = in.priority() == 0 ? kMinPriority : in.priority();
  e.weight = in.weight();
  e.enabled = in.enabled();
  RETURN_IF_ERROR(ValidateEndpoint(e));
  return e;
}

void ToProto(const Endpoint& in, v1::Endpoint* out) {
  out->set_id(in.id);
  out->set_region(in.region);
  out->set_provider(in.provider == Provider::kOpenAi ? v1::PROVIDER_OPENAI : v1::PROVIDER_AZURE);
  out->set_base_url(in.base_url);
  out->set_deployment(in.deployment);
  out->set_residency(ResidencyToProto(in.residency));
  out->mutable_capabilities()->set_zero_data_retention(in.capabilities.zero_data_retention);
  out->mutable_capabilities()->set_private_link(in.capabilities.private_link);
  out->mutable_capabilities()->set_cached(in.capabilities.cached);
  for (const std::string& m : in.models) out->add_models(m);
  out->set_priority(in.priority);
  out->set_weight(in.weight);
  out->set_enabled(in.enabled);
}

absl::StatusOr<RouteRequest> RouteRequestFromProto(const v1::RouteRequest& in) {
  RouteRequest r;
  if (in.residency() != v1::RESIDENCY_UNSPECIFIED) {
    ASSIGN_OR_RETURN(r.residency,
                     ResidencyFromProto(in.residency(), Residency::kGlobal, "residency"));
  }
  ASSIGN_OR_RETURN(r.data_class,
                   DataClassFromProto(in.data_class(), DataClass::kInternal, "data_class"));
  RETURN_IF_ERROR(CheckMaxBytes({{"model", in.model(), kMaxModelBytes}}));
  r.model = in.model();
  r.zero_data_retention = in.require_zero_data_retention();
  RETURN_IF_ERROR(CheckMaxBytes({{"request_id", in.request_id(), kMaxRequestIdBytes}}));
  r.request_id = in.request_id();
  RETURN_IF_ERROR(CheckMaxBytes({{"endpoint_id", in.endpoint_id(), kMaxEndpointIdBytes}}));
  r.endpoint_id = in.endpoint_id();
  switch (in.preference()) {
    case v1::PREFERENCE_UNSPECIFIED:
    case v1::PREFERENCE_PRIORITY:
      r.preference = Preference::kPriority;
      break;
    case v1::PREFERENCE_LOWEST_LATENCY:
      r.preference = Preference::kLowestLatency;
      break;
    case v1::PREFERENCE_WEIGHTED:
      r.preference = Preference::kWeighted;
      break;
    default:
      return UnknownEnum("preference", in.preference());
  }
  return r;
}

void ToProto(const RouteResult& in, absl::string_view model, v1::RouteResponse* out) {
  const Endpoint* chosen = in.chosen();
  out->set_decision(chosen != nullptr ? v1::DECISION_ROUTED : v1::DECISION_BLOCKED);
  if (chosen != nullptr) ToProto(*chosen, out->mutable_endpoint());
  out->set_reason(in.explanation);
  out->set_failover(in.decision.failover);
  for (const Candidate& c : in.decision.candidates) {
    // Endpoints that do not serve the model were never candidates; those of another
    // residency matter only to say why nothing could be chosen.
    if (chosen != nullptr && c.exclusion == Exclusion::kResidency) continue;
    if (c.exclusion == Exclusion::kModel || !(*in.endpoints)[c.endpoint].Serves(model)) continue;
    v1::Candidate* p = out->add_candidates();
    p->set_endpoint_id((*in.endpoints)[c.endpoint].id);
    p->set_exclusion(ToProto(c.exclusion));
    p->set_chosen(in.decision.chosen == c.endpoint);
  }
}

v1::BreakerState ToProto(BreakerState state) {
  switch (state) {
    case BreakerState::kClosed:
      return v1::BREAKER_STATE_CLOSED;
    case BreakerState::kOpen:
      return v1::BREAKER_STATE_OPEN;
    case BreakerState::kHalfOpen:
      return v1::BREAKER_STATE_HALF_OPEN;
  }
  return v1::BREAKER_STATE_UNSPECIFIED;
}

void ToProto(const HealthReport& in, v1::GetHealthReportResponse* out) {
  out->set_requests(in.requests);
  out->set_blocked(in.blocked);
  out->set_failovers(in.failovers);
  out->set_failover_rate(in.failover_rate);
  for (const EndpointHealthReport& e : in.endpoints) {
    v1::EndpointHealth* h = out->add_endpoints();
    ToProto(e.endpoint, h->mutable_endpoint());
    h->set_breaker_state(ToProto(e.breaker.state));
    if (e.breaker.latency_ewma.has_value()) {
      proto::SetDuration(*e.breaker.latency_ewma, h->mutable_latency());
    }
    h->set_consecutive_failures(e.breaker.consecutive_failures);
    h->set_routed(e.routed);
    h->set_successes(e.successes);
    h->set_failures(e.failures);
    h->set_trips_withheld(e.breaker.trips_withheld);
    if (e.breaker.state != BreakerState::kClosed) {
      proto::SetTime(e.breaker.opened_at, h->mutable_opened_at());
      proto::SetTime(e.breaker.half_open_at, h->mutable_half_open_at());
    }
  }
}

}  // namespace policy::region
