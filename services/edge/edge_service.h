#ifndef POLICY_SERVICES_EDGE_EDGE_SERVICE_H_
#define POLICY_SERVICES_EDGE_EDGE_SERVICE_H_

#include "absl/time/time.h"
#include "common/log/failure_log.h"
#include "common/server/arena_allocator.h"
#include "policy/edge/v1/edge.grpc.pb.h"
#include "services/edge/decision_flow.h"
#include "services/edge/downstream.h"
#include "services/edge/edge_metrics.h"
#include "services/edge/trusted_proxies.h"

namespace policy::edge {

// policy.edge.v1.EdgeService over gRPC. Handlers never block: each call's flow runs on the
// downstream calls' callbacks and finishes the call from the last of them.
class EdgeService final : public v1::EdgeService::CallbackService {
 public:
  // A call's downstream deadline is the caller's, but at most `max_decision_time` away. A
  // Decide's source_ip is believed from `trusted_proxies` only; other callers are judged by
  // the address they call from (TrustedProxies::CallerAddress).
  EdgeService(Downstream* downstream, FlowOptions options, TrustedProxies trusted_proxies,
              absl::Duration max_decision_time, EdgeMetrics* metrics);

  grpc::ServerUnaryReactor* Decide(grpc::CallbackServerContext* context,
                                   const v1::DecideRequest* request,
                                   v1::DecideResponse* response) override;
  grpc::ServerUnaryReactor* ReportUsage(grpc::CallbackServerContext* context,
                                        const v1::ReportUsageRequest* request,
                                        v1::ReportUsageResponse* response) override;

 private:
  // A call (`what`: "a decision", "a usage report") that failed on the suite's side, logged
  // with its request id, at most `budget` allows (a few a minute: examples of an outage, not a
  // flood; the counters count them all).
  static void LogFailure(absl::string_view what, const std::string& request_id,
                         const grpc::Status& status, LogBudget& budget);

  Downstream* const downstream_;
  const FlowOptions options_;
  const TrustedProxies trusted_proxies_;
  const absl::Duration max_decision_time_;
  EdgeMetrics* const metrics_;
  LogBudget decision_failure_lines_{10, absl::Minutes(1)};
  LogBudget usage_failure_lines_{10, absl::Minutes(1)};
  // A decision's request, response and every downstream message on one arena.
  server::ArenaMessageAllocator<v1::DecideRequest, v1::DecideResponse> decide_allocator_;
  server::ArenaMessageAllocator<v1::ReportUsageRequest, v1::ReportUsageResponse> usage_allocator_;
};

}  // namespace policy::edge

#endif  // POLICY_SERVICES_EDGE_EDGE_SERVICE_H_
