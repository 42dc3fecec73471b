#include "services/edge/edge_service.h"

#include <string>
#include <utility>

#include "common/client/channel.h"
#include "google/protobuf/arena.h"
#include "services/edge/downstream_status.h"

namespace policy::edge {

EdgeService::EdgeService(Downstream* downstream, FlowOptions options,
                         TrustedProxies trusted_proxies, absl::Duration max_decision_time,
                         EdgeMetrics* metrics)
    : downstream_(downstream),
      options_(std::move(options)),
      trusted_proxies_(std::move(trusted_proxies)),
      max_decision_time_(max_decision_time),
      metrics_(metrics) {
  SetMessageAllocatorFor_Decide(&decide_allocator_);
  SetMessageAllocatorFor_ReportUsage(&usage_allocator_);
}

grpc::ServerUnaryReactor* EdgeService::Decide(grpc::CallbackServerContext* context,
                                              const v1::DecideRequest* request,
                                              v1::DecideResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<std::string> source_ip =
      trusted_proxies_.CallerAddress(context->peer(), request->source_ip(), "source_ip");
  if (!source_ip.ok()) {
    const grpc::Status refused = EdgeStatus(source_ip.status());
    metrics_->Decided("decide", refused, false, "");
    reactor->Finish(refused);
    return reactor;
  }
  if (*source_ip != request->source_ip()) {
    // The flow decides on the request as given: a copy carries the address established here.
    auto* established =
        google::protobuf::Arena::CreateMessage<v1::DecideRequest>(response->GetArena());
    *established = *request;
    established->set_source_ip(*std::move(source_ip));
    request = established;
  }
  StartDecide(downstream_, &options_, request, response,
              client::DownstreamDeadline(*context, max_decision_time_),
              [this, reactor, response](grpc::Status status) {
                metrics_->Decided("decide", status, response->verdict() == v1::VERDICT_ALLOW,
                                  response->reason());
                reactor->Finish(std::move(status));
              });
  return reactor;
}

grpc::ServerUnaryReactor* EdgeService::ReportUsage(grpc::CallbackServerContext* context,
                                                   const v1::ReportUsageRequest* request,
                                                   v1::ReportUsageResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  StartReportUsage(downstream_, request, response,
                   client::DownstreamDeadline(*context, max_decision_time_),
                   [reactor](grpc::Status status) { reactor->Finish(std::move(status)); });
  return reactor;
}

}  // namespace policy::edge
