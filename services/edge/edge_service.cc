#include "services/edge/edge_service.h"

#include <utility>

#include "common/client/channel.h"

namespace policy::edge {

EdgeService::EdgeService(Downstream* downstream, FlowOptions options,
                         absl::Duration max_decision_time, EdgeMetrics* metrics)
    : downstream_(downstream),
      options_(std::move(options)),
      max_decision_time_(max_decision_time),
      metrics_(metrics) {
  SetMessageAllocatorFor_Decide(&decide_allocator_);
  SetMessageAllocatorFor_ReportUsage(&usage_allocator_);
}

grpc::ServerUnaryReactor* EdgeService::Decide(grpc::CallbackServerContext* context,
                                              const v1::DecideRequest* request,
                                              v1::DecideResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
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
