#include "services/edge/ext_authz_service.h"

#include <utility>

#include "common/client/channel.h"
#include "google/protobuf/arena.h"
#include "services/edge/ext_authz_convert.h"

namespace policy::edge {

ExtAuthzService::ExtAuthzService(Downstream* downstream, FlowOptions options,
                                 absl::Duration max_decision_time, EdgeMetrics* metrics)
    : downstream_(downstream),
      options_(std::move(options)),
      max_decision_time_(max_decision_time),
      metrics_(metrics) {
  SetMessageAllocatorFor_Check(&allocator_);
}

grpc::ServerUnaryReactor* ExtAuthzService::Check(
    grpc::CallbackServerContext* context, const envoy::service::auth::v3::CheckRequest* request,
    envoy::service::auth::v3::CheckResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  google::protobuf::Arena* arena = response->GetArena();
  auto* decide = google::protobuf::Arena::CreateMessage<v1::DecideRequest>(arena);
  auto* decision = google::protobuf::Arena::CreateMessage<v1::DecideResponse>(arena);
  if (absl::Status s = DecideRequestFromCheck(*request, decide); !s.ok()) {
    const grpc::Status invalid(grpc::StatusCode::INVALID_ARGUMENT, std::string(s.message()));
    metrics_->Decided("ext_authz", invalid, *decision);
    reactor->Finish(ToCheckResponse(invalid, *decision, response));
    return reactor;
  }
  StartDecide(downstream_, &options_, decide, decision,
              client::DownstreamDeadline(*context, max_decision_time_),
              [this, reactor, decision, response](grpc::Status status) {
                metrics_->Decided("ext_authz", status, *decision);
                reactor->Finish(ToCheckResponse(status, *decision, response));
              });
  return reactor;
}

}  // namespace policy::edge
