#include "services/region/region_service.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/proto/well_known.h"
#include "common/status/grpc_status.h"
#include "common/text/caller_text.h"
#include "services/region/endpoint_change.h"
#include "services/region/proto_convert.h"

namespace policy::region {
namespace {

constexpr absl::string_view kDomain = "region.policy-suite";

grpc::Status ToGrpc(const absl::Status& status) { return ToGrpcStatus(status, kDomain); }

}  // namespace

RegionService::RegionService(EndpointRegistry* registry, EndpointStore* store, RegistrySync* sync,
                             server::BlockingPool* pool, Clock* clock, absl::Duration max_staleness,
                             absl::Duration convergence_bound)
    : registry_(registry),
      store_(store),
      sync_(sync),
      pool_(pool),
      clock_(clock),
      max_staleness_(max_staleness),
      convergence_bound_(convergence_bound) {
  SetMessageAllocatorFor_Route(&route_allocator_);
}

grpc::ServerUnaryReactor* RegionService::Route(grpc::CallbackServerContext* context,
                                               const v1::RouteRequest* request,
                                               v1::RouteResponse* response) {
  absl::StatusOr<RouteRequest> parsed = RouteRequestFromProto(*request);
  if (!parsed.ok()) return server::FinishNow(context, ToGrpc(parsed.status()));
  if (!sync_->loaded()) {  // Fail closed: no decision without the registry.
    return server::FinishNow(
        context,
        ToGrpc(absl::UnavailableError("the endpoint registry has not been loaded yet; retry")));
  }
  if (const absl::Duration age = clock_->Now() - sync_->synced_at(); age > max_staleness_) {
    // The registry may have changed meanwhile (an endpoint disabled, a capability lost):
    // no decision on a registry older than the bound.
    return server::FinishNow(
        context, ToGrpc(absl::UnavailableError(absl::StrCat(
                     "the endpoint registry is stale (last synchronised ",
                     absl::FormatDuration(absl::Trunc(age, absl::Milliseconds(1))), " ago, bound ",
                     absl::FormatDuration(max_staleness_), "); retry"))));
  }
  absl::StatusOr<RouteResult> result = registry_->Route(*parsed);
  if (!result.ok()) return server::FinishNow(context, ToGrpc(result.status()));
  ToProto(*result, parsed->model, response);
  return server::FinishNow(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* RegionService::ReportOutcome(grpc::CallbackServerContext* context,
                                                       const v1::ReportOutcomeRequest* request,
                                                       v1::ReportOutcomeResponse* response) {
  if (request->endpoint_id().empty()) {
    return server::FinishNow(context, ToGrpc(absl::InvalidArgumentError("endpoint_id: required")));
  }
  if (absl::Status s = CheckMaxBytes({{"endpoint_id", request->endpoint_id(), kMaxEndpointIdBytes},
                                      {"reporter", request->reporter(), kMaxReporterBytes}});
      !s.ok()) {
    return server::FinishNow(context, ToGrpc(s));
  }
  if (request->status() < 0 || request->status() > 599) {
    return server::FinishNow(
        context, ToGrpc(absl::InvalidArgumentError(absl::StrCat(
                     "status: ", request->status(), " is not an HTTP status (0: none, to 599)"))));
  }
  Outcome outcome{request->success(), absl::ZeroDuration()};
  outcome.reporter = request->reporter();
  if (request->has_latency()) {
    absl::StatusOr<absl::Duration> latency =
        proto::DurationFromProto(request->latency(), "latency");
    if (!latency.ok()) return server::FinishNow(context, ToGrpc(latency.status()));
    if (*latency < absl::ZeroDuration() || *latency > absl::Hours(1)) {
      return server::FinishNow(
          context, ToGrpc(absl::InvalidArgumentError("latency: must be between 0 and 1 hour")));
    }
    outcome.latency = *latency;
  }
  if (request->has_routed_at()) {
    absl::StatusOr<absl::Time> routed_at = proto::TimeFromProto(request->routed_at(), "routed_at");
    if (!routed_at.ok()) return server::FinishNow(context, ToGrpc(routed_at.status()));
    outcome.routed_at = *routed_at;
  }
  absl::StatusOr<BreakerState> state = registry_->ReportOutcome(request->endpoint_id(), outcome);
  if (!state.ok()) return server::FinishNow(context, ToGrpc(state.status()));
  response->set_breaker_state(ToProto(*state));
  return server::FinishNow(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* RegionService::GetHealthReport(grpc::CallbackServerContext* context,
                                                         const v1::GetHealthReportRequest*,
                                                         v1::GetHealthReportResponse* response) {
  ToProto(registry_->Health(), response);
  proto::SetDuration(convergence_bound_, response->mutable_convergence_bound());
  return server::FinishNow(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* RegionService::CreateEndpoint(grpc::CallbackServerContext* context,
                                                        const v1::CreateEndpointRequest* request,
                                                        v1::CreateEndpointResponse* response) {
  absl::StatusOr<Endpoint> endpoint = EndpointFromProto(request->endpoint());
  if (!endpoint.ok()) return server::FinishNow(context, ToGrpc(endpoint.status()));
  if (absl::Status s = ValidateActor(request->actor()); !s.ok()) {
    return server::FinishNow(context, ToGrpc(s));
  }
  return pool_->Run(context, [this, e = *std::move(endpoint), actor = request->actor(), response] {
    if (absl::Status s = store_->Create(e, actor); !s.ok()) return ToGrpc(s);
    (void)sync_->Reload();  // The other replicas follow within their sync interval.
    ToProto(e, response->mutable_endpoint());
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* RegionService::UpdateEndpoint(grpc::CallbackServerContext* context,
                                                        const v1::UpdateEndpointRequest* request,
                                                        v1::UpdateEndpointResponse* response) {
  absl::StatusOr<Endpoint> endpoint = EndpointFromProto(request->endpoint());
  if (!endpoint.ok()) return server::FinishNow(context, ToGrpc(endpoint.status()));
  if (absl::Status s = ValidateActor(request->actor()); !s.ok()) {
    return server::FinishNow(context, ToGrpc(s));
  }
  std::optional<Endpoint> expected;
  if (request->has_expected()) {
    absl::StatusOr<Endpoint> read = EndpointFromProto(request->expected());
    if (!read.ok()) {
      return server::FinishNow(context,
                               ToGrpc(absl::InvalidArgumentError(absl::StrCat(
                                   "expected: ", read.status().message(),
                                   " (expected holds the endpoint as read, from ListEndpoints)"))));
    }
    if (read->id != endpoint->id) {
      return server::FinishNow(context, ToGrpc(absl::InvalidArgumentError(absl::StrCat(
                                            "expected.id: ", Quoted(read->id),
                                            " is not the endpoint's id ", Quoted(endpoint->id)))));
    }
    expected = *std::move(read);
  }
  return pool_->Run(context, [this, e = *std::move(endpoint), expected = std::move(expected),
                              actor = request->actor(), response] {
    if (absl::Status s = store_->Update(e, actor, expected.has_value() ? &*expected : nullptr);
        !s.ok()) {
      return ToGrpc(s);
    }
    (void)sync_->Reload();
    ToProto(e, response->mutable_endpoint());
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* RegionService::DeleteEndpoint(grpc::CallbackServerContext* context,
                                                        const v1::DeleteEndpointRequest* request,
                                                        v1::DeleteEndpointResponse*) {
  if (request->id().empty()) {
    return server::FinishNow(context, ToGrpc(absl::InvalidArgumentError("id: required")));
  }
  if (absl::Status s = CheckMaxBytes({{"id", request->id(), kMaxEndpointIdBytes}}); !s.ok()) {
    return server::FinishNow(context, ToGrpc(s));
  }
  if (absl::Status s = ValidateEndpointId(request->id(), "id"); !s.ok()) {
    return server::FinishNow(context, ToGrpc(s));
  }
  if (absl::Status s = ValidateActor(request->actor()); !s.ok()) {
    return server::FinishNow(context, ToGrpc(s));
  }
  return pool_->Run(context, [this, id = request->id(), actor = request->actor()] {
    if (absl::Status s = store_->Delete(id, actor); !s.ok()) return ToGrpc(s);
    (void)sync_->Reload();
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* RegionService::ListEndpoints(grpc::CallbackServerContext* context,
                                                       const v1::ListEndpointsRequest*,
                                                       v1::ListEndpointsResponse* response) {
  return pool_->Run(context, [this, response] {
    absl::StatusOr<EndpointStore::Listing> listing = store_->List();
    if (!listing.ok()) return ToGrpc(listing.status());
    for (const Endpoint& e : listing->endpoints) ToProto(e, response->add_endpoints());
    return grpc::Status::OK;
  });
}

}  // namespace policy::region
