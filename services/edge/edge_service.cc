#include "services/edge/edge_service.h"

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/client/channel.h"
#include "common/log/log.h"
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
              [this, reactor, request, response](grpc::Status status) {
                metrics_->Decided("decide", status, response->verdict() == v1::VERDICT_ALLOW,
                                  response->reason());
                // The decision's id: the caller's, or the one the edge made for it.
                LogFailure(
                    "a decision",
                    response->request_id().empty() ? request->request_id() : response->request_id(),
                    status, decision_failure_lines_);
                reactor->Finish(std::move(status));
              });
  return reactor;
}

void EdgeService::LogFailure(absl::string_view what, const std::string& request_id,
                             const grpc::Status& status, LogBudget& budget) {
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::DATA_LOSS:
      break;
    default:
      return;  // Decided, or the caller's mistake.
  }
  int64_t left_out = 0;
  if (!budget.Take(absl::Now(), &left_out)) return;
  LogWarning(
      absl::StrCat(what, " failed"),
      {{"request_id", request_id},
       {"code", absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code()))},
       {"message", status.error_message()},
       {"failures_not_logged", absl::StrCat(left_out)}});
}

grpc::ServerUnaryReactor* EdgeService::ReportUsage(grpc::CallbackServerContext* context,
                                                   const v1::ReportUsageRequest* request,
                                                   v1::ReportUsageResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  StartReportUsage(
      downstream_, request, response, client::DownstreamDeadline(*context, max_decision_time_),
      [this, reactor, request](grpc::Status status) {
        LogFailure("a usage report", request->request_id(), status, usage_failure_lines_);
        reactor->Finish(std::move(status));
      });
  return reactor;
}

}  // namespace policy::edge
