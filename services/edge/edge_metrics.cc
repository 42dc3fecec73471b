#include "services/edge/edge_metrics.h"

#include "absl/status/status.h"
#include "common/status/grpc_status.h"
#include "common/status/status.h"
#include "services/edge/denial_budget.h"

namespace policy::edge {
namespace {

std::string CodeName(grpc::StatusCode code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

}  // namespace

EdgeMetrics::EdgeMetrics(prometheus::Registry& registry)
    : decisions_(prometheus::BuildCounter()
                     .Name("policy_edge_decisions_total")
                     .Help("Decisions by API, verdict (allow, deny, error) and reason (the DENY "
                           "reason, or the gRPC code of an error).")
                     .Register(registry)),
      denial_budget_refusals_(
          prometheus::BuildCounter()
              .Name("policy_edge_denial_budget_refusals_total")
              .Help("Requests refused before any decision because their key had too many "
                    "requests denied of late (denials_per_key_per_minute), by API.")
              .Register(registry)),
      repeated_redactions_(
          prometheus::BuildCounter()
              .Name("policy_edge_redactions_repeated_total")
              .Help("Decisions whose messages were redacted again because the check stated "
                    "other project PII rules than the edge had last seen, by API.")
              .Register(registry)),
      project_rules_refused_(
          prometheus::BuildCounter()
              .Name("policy_edge_project_pii_rules_refused_total")
              .Help("Decisions that failed closed because pii refused the project's own PII "
                    "rules (data_policy.pii), by API.")
              .Register(registry)),
      dependency_up_(prometheus::BuildGauge()
                         .Name("policy_edge_dependency_up")
                         .Help("1 while the service answers its health check SERVING.")
                         .Register(registry)),
      config_valid_(prometheus::BuildGauge()
                        .Name("policy_edge_config_valid")
                        .Help("1 while pii takes the edge's redaction policy: it detects every "
                              "entity type blocked_entity_types names, and has a pseudonym key "
                              "when redaction_operator is hash; 0: the edge is not ready.")
                        .Register(registry)) {
  // Shown at 0 from the start, so that a rate over them is 0 rather than no data.
  for (const char* api : {"decide", "ext_authz"}) {
    denial_budget_refusals_.Add({{"api", api}});
    repeated_redactions_.Add({{"api", api}});
    project_rules_refused_.Add({{"api", api}});
  }
}

prometheus::Counter& EdgeMetrics::RepeatedRedactions(const std::string& api) {
  return repeated_redactions_.Add({{"api", api}});
}

prometheus::Counter& EdgeMetrics::ProjectPiiRulesRefused(const std::string& api) {
  return project_rules_refused_.Add({{"api", api}});
}

void EdgeMetrics::Decided(const std::string& api, const grpc::Status& status, bool allowed,
                          const std::string& deny_reason) {
  if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
      ReasonOf(FromGrpcStatus(status)) == kTooManyDenials) {
    denial_budget_refusals_.Add({{"api", api}}).Increment();
    return;
  }
  if (!status.ok()) {
    decisions_.Add({{"api", api}, {"verdict", "error"}, {"reason", CodeName(status.error_code())}})
        .Increment();
    return;
  }
  decisions_
      .Add({{"api", api},
            {"verdict", allowed ? "allow" : "deny"},
            {"reason", allowed ? "" : deny_reason}})
      .Increment();
}

void EdgeMetrics::SetDependencyUp(const std::string& service, bool up) {
  dependency_up_.Add({{"dependency", service}}).Set(up ? 1 : 0);
}

void EdgeMetrics::SetConfigValid(bool valid) { config_valid_.Add({}).Set(valid ? 1 : 0); }

}  // namespace policy::edge
