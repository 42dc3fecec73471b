// The edge binary: configuration, the downstream channels, the server.
#include <memory>

#include "common/clock/clock.h"
#include "common/config/config.h"
#include "common/log/log.h"
#include "common/server/blocking_pool.h"
#include "common/server/server_runner.h"
#include "common/tls/tls_options.h"
#include "services/edge/admin_service.h"
#include "services/edge/decision_flow.h"
#include "services/edge/denial_budget.h"
#include "services/edge/downstream.h"
#include "services/edge/downstream_health.h"
#include "services/edge/edge_config.h"
#include "services/edge/edge_metrics.h"
#include "services/edge/edge_service.h"
#include "services/edge/ext_authz_service.h"
#include "services/edge/trusted_proxies.h"

namespace policy::edge {
namespace {

int Fail(const absl::Status& status) {
  LogError("edge failed", {{"status", status.ToString()}});
  return 1;
}

int Main(int argc, char** argv) {
  server::PrepareServerProcess();
  EdgeConfig config;
  absl::StatusOr<bool> run = config::LoadServiceConfig("edge", argc, argv, config);
  if (!run.ok()) return Fail(run.status());
  if (!*run) return 0;
  absl::StatusOr<pii::v1::RedactionPolicy> redaction =
      MakeRedactionPolicy(config.redaction_operator, config.blocked_entity_types);
  if (!redaction.ok()) return Fail(redaction.status());

  absl::StatusOr<TrustedProxies> trusted_proxies = TrustedProxies::Parse(config.trusted_proxies);
  if (!trusted_proxies.ok()) return Fail(trusted_proxies.status());

  // One budget for both APIs: a key's denials count alike through Decide and Envoy.
  DenialBudgetOptions denials;
  denials.per_minute = config.denials_per_key_per_minute;
  denials.burst = config.denial_burst;
  DenialBudget denial_budget(denials, Clock::Real());
  // The projects' PII rules as last seen, for both APIs.
  KnownPiiRules known_pii_rules;
  const pii::v1::RedactionPolicy deployment_redaction = *redaction;
  FlowOptions options;
  options.redaction = *redaction;
  options.known_pii_rules = &known_pii_rules;
  options.max_answer_bytes = static_cast<size_t>(config.max_answer_bytes);
  options.denial_budget = &denial_budget;
  // Envoy forwards the request as it came: what Decide would redact must block it instead.
  FlowOptions envoy_options;
  envoy_options.redaction = *std::move(redaction);
  envoy_options.max_answer_bytes = options.max_answer_bytes;
  envoy_options.denial_budget = &denial_budget;
  envoy_options.forwards_as_sent = true;
  envoy_options.known_pii_rules = &known_pii_rules;
  server::ServerRunner runner(config.server);
  EdgeMetrics metrics(runner.metrics_registry());
  options.repeated_redactions = &metrics.RepeatedRedactions("decide");
  envoy_options.repeated_redactions = &metrics.RepeatedRedactions("ext_authz");
  options.project_rules_refused = &metrics.ProjectPiiRulesRefused("decide");
  envoy_options.project_rules_refused = &metrics.ProjectPiiRulesRefused("ext_authz");
  metrics::GrpcClientMetrics client_metrics(runner.metrics_registry());
  const DownstreamChannels channels =
      DownstreamChannels::Open(config.targets, tls::ChannelCredentials(config.server.tls));
  std::unique_ptr<Downstream> downstream = NewGrpcDownstream(channels, &client_metrics);
  DownstreamHealth health(channels, &metrics, config.dependency_check_interval, options.redaction,
                          static_cast<int>(config.dependency_failures));
  runner.SetReadinessProbe([&health] { return health.ready(); });
  EdgeService service(downstream.get(), std::move(options), *trusted_proxies,
                      config.max_decision_time, &metrics);
  runner.AddService(&service, v1::EdgeService::service_full_name());
  ExtAuthzService ext_authz(downstream.get(), std::move(envoy_options), *trusted_proxies,
                            config.max_decision_time, &metrics);
  runner.AddService(&ext_authz, envoy::service::auth::v3::Authorization::service_full_name());
  server::BlockingPool admin_pool(static_cast<int>(config.admin_threads),
                                  static_cast<int>(config.admin_queue));
  AdminService admin(channels, &admin_pool, config.max_decision_time, deployment_redaction);
  runner.AddService(&admin, v1::AdminService::service_full_name());
  absl::Status served = runner.RunUntilSignal();
  if (!served.ok()) return Fail(served);
  return 0;
}

}  // namespace
}  // namespace policy::edge

int main(int argc, char** argv) { return policy::edge::Main(argc, argv); }
