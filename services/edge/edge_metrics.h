#ifndef POLICY_SERVICES_EDGE_EDGE_METRICS_H_
#define POLICY_SERVICES_EDGE_EDGE_METRICS_H_

#include <string>

#include "grpcpp/support/status.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

// The edge's Prometheus metrics, beside the standard gRPC server metrics:
//   policy_edge_decisions_total{api, verdict, reason}  api: decide or ext_authz; verdict:
//       allow, deny or error; reason: the DENY reason, or the gRPC code of an error
//   policy_edge_denial_budget_refusals_total{api}      requests refused at the door because
//       their key's denial budget was spent (FlowOptions::denial_budget): no decision, so not
//       in policy_edge_decisions_total
//   policy_edge_redactions_repeated_total{api}         decisions whose messages were redacted
//       again because the check stated other project PII rules than the edge had last seen
//       (FlowOptions::known_pii_rules): a project's first decisions, and those after a change
//   policy_edge_project_pii_rules_refused_total{api}   decisions that failed closed because pii
//       refused the project's own PII rules (a type it no longer detects, a hash without its
//       key): FAILED_PRECONDITION naming the rule
//   policy_edge_dependency_up{dependency}              1 while that service answers its
//       health check SERVING (see DownstreamHealth)
//   policy_edge_config_valid                           1 while pii detects every entity type
//       the edge's settings name (blocked_entity_types), 0 while it does not: the edge is
//       then not ready and the log names the types; absent until pii first answered
// Thread-safe.
namespace policy::edge {

class EdgeMetrics {
 public:
  explicit EdgeMetrics(prometheus::Registry& registry);

  // One decision's end: `status` and, when OK, whether it allowed and else the DENY reason.
  // A refusal at the door (RESOURCE_EXHAUSTED, reason TOO_MANY_DENIALS) is counted as such.
  void Decided(const std::string& api, const grpc::Status& status, bool allowed,
               const std::string& deny_reason);
  void SetDependencyUp(const std::string& service, bool up);
  // The counter of policy_edge_redactions_repeated_total for `api` (FlowOptions).
  prometheus::Counter& RepeatedRedactions(const std::string& api);
  // The counter of policy_edge_project_pii_rules_refused_total for `api` (FlowOptions).
  prometheus::Counter& ProjectPiiRulesRefused(const std::string& api);
  void SetConfigValid(bool valid);

 private:
  prometheus::Family<prometheus::Counter>& decisions_;
  prometheus::Family<prometheus::Counter>& denial_budget_refusals_;
  prometheus::Family<prometheus::Counter>& repeated_redactions_;
  prometheus::Family<prometheus::Counter>& project_rules_refused_;
  prometheus::Family<prometheus::Gauge>& dependency_up_;
  prometheus::Family<prometheus::Gauge>& config_valid_;
};

}  // namespace policy::edge

#endif  // POLICY_SERVICES_EDGE_EDGE_METRICS_H_
