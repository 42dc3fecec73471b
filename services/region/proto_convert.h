#ifndef POLICY_SERVICES_REGION_PROTO_CONVERT_H_
#define POLICY_SERVICES_REGION_PROTO_CONVERT_H_

#include "absl/status/statusor.h"
#include "policy/region/v1/region.pb.h"
#include "services/region/circuit_breaker.h"
#include "services/region/endpoint.h"
#include "services/region/endpoint_registry.h"
#include "services/region/routing.h"

// Between policy.region.v1 messages and the domain types. Enum values the domain does not
// know are INVALID_ARGUMENT naming the field.
namespace policy::region {

// Converts and validates (ValidateEndpoint).
absl::StatusOr<Endpoint> EndpointFromProto(const v1::Endpoint& in);
void ToProto(const Endpoint& in, v1::Endpoint* out);

absl::StatusOr<RouteRequest> RouteRequestFromProto(const v1::RouteRequest& in);
// The candidates listed are the endpoints serving `model` (see RouteResponse.candidates).
void ToProto(const RouteResult& in, absl::string_view model, v1::RouteResponse* out);

v1::BreakerState ToProto(BreakerState state);
void ToProto(const HealthReport& in, v1::GetHealthReportResponse* out);

}  // namespace policy::region

#endif  // POLICY_SERVICES_REGION_PROTO_CONVERT_H_
