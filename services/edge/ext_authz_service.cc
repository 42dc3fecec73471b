#include "services/edge/ext_authz_service.h"

#include <string>
#include <utility>

#include "common/client/channel.h"
#include "google/protobuf/arena.h"
#include "services/edge/downstream_status.h"
#include "services/edge/ext_authz_convert.h"

namespace policy::edge {

ExtAuthzService::ExtAuthzService(Downstream* downstream, FlowOptions options,
                                 TrustedProxies trusted_proxies, absl::Duration max_decision_time,
                                 EdgeMetrics* metrics)
    : downstream_(downstream),
      options_(std::move(options)),
      trusted_proxies_(std::move(trusted_proxies)),
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
  absl::Status s = DecideRequestFromCheck(*request, decide);
  if (s.ok()) {
    absl::StatusOr<std::string> source_ip =
        trusted_proxies_.CallerAddress(context->peer(), decide->source_ip(), "source.address");
    if (source_ip.ok()) {
      decide->set_source_ip(*std::move(source_ip));
    } else {
      s = source_ip.status();
    }
  }
  if (!s.ok()) {
    const grpc::Status invalid = EdgeStatus(s);
    metrics_->Decided("ext_authz", invalid, false, "");
    reactor->Finish(ToCheckResponse(invalid, *decision, response));
    return reactor;
  }
  StartDecide(downstream_, &options_, decide, decision,
              client::DownstreamDeadline(*context, max_decision_time_),
              [this, reactor, decision, response](grpc::Status status) {
                metrics_->Decided("ext_authz", status, decision->verdict() == v1::VERDICT_ALLOW,
                                  decision->reason());
                reactor->Finish(ToCheckResponse(status, *decision, response));
              });
  return reactor;
}

}  // namespace policy::edge
