#ifndef POLICY_SERVICES_EDGE_EDGE_CONFIG_H_
#define POLICY_SERVICES_EDGE_EDGE_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/config/config.h"
#include "common/server/server_runner.h"
#include "services/edge/downstream.h"

namespace policy::edge {

// Everything the edge binary reads from --flags and POLICY_EDGE_* variables.
struct EdgeConfig {
  server::ServerOptions server;
  DownstreamTargets targets{.keys = "127.0.0.1:50051",
                            .authz = "127.0.0.1:50052",
                            .pii = "127.0.0.1:50053",
                            .region = "127.0.0.1:50054",
                            .audit = "127.0.0.1:50055"};
  // The longest a decision may take when the caller allows longer or sets no deadline; at
  // most server.shutdown_grace, so that draining never cuts a decision short.
  absl::Duration max_decision_time = absl::Seconds(5);
  // What pii does with what it finds: every type replaced by a numbered placeholder
  // ("placeholder"), by "[TYPE_REDACTED]" ("redact"), by "<TYPE>" ("replace"), masked
  // ("mask") or hashed under the project's key ("hash")...
  std::string redaction_operator = "placeholder";
  // ...except these types, whose presence refuses the request (PII_BLOCKED); by default the
  // secrets.
  std::vector<std::string> blocked_entity_types = {"PRIVATE_KEY",
                                                   "POLICY_SUITE_KEY",
                                                   "OPENAI_API_KEY",
                                                   "AWS_ACCESS_KEY",
                                                   "GITHUB_TOKEN",
                                                   "SLACK_TOKEN",
                                                   "JWT",
                                                   "GOOGLE_API_KEY",
                                                   "STRIPE_API_KEY",
                                                   "GITLAB_TOKEN",
                                                   "HUGGINGFACE_TOKEN",
                                                   "NPM_TOKEN",
                                                   "SENDGRID_API_KEY",
                                                   "AZURE_STORAGE_KEY",
                                                   "GROQ_API_KEY",
                                                   "XAI_API_KEY",
                                                   "GOOGLE_OAUTH_CLIENT_SECRET",
                                                   "GOOGLE_OAUTH_TOKEN",
                                                   "PYPI_TOKEN",
                                                   "DOCKER_HUB_TOKEN",
                                                   "WEBHOOK_SIGNING_SECRET",
                                                   "TELEGRAM_BOT_TOKEN",
                                                   "SLACK_WEBHOOK_URL",
                                                   "AZURE_SHARED_ACCESS_KEY",
                                                   "AZURE_SAS_TOKEN",
                                                   "PERPLEXITY_API_KEY",
                                                   "REPLICATE_API_TOKEN",
                                                   "LANGSMITH_API_KEY",
                                                   "DATABRICKS_TOKEN",
                                                   "ATLASSIAN_API_TOKEN",
                                                   "VAULT_TOKEN",
                                                   "AZURE_CLIENT_SECRET",
                                                   "DIGITALOCEAN_TOKEN",
                                                   "POSTMAN_API_KEY",
                                                   "GRAFANA_TOKEN",
                                                   "DISCORD_BOT_TOKEN",
                                                   "DISCORD_WEBHOOK_URL",
                                                   "URL_CREDENTIALS"};

  // The peers whose statement of a caller's address (Decide's source_ip, ext_authz's
  // source.address) is believed: CIDR blocks or addresses of Envoy, gateways and other
  // proxies. Any other peer is judged by the address its connection comes from, and stating
  // another is refused (see trusted_proxies.h). By default only this host (loopback; an Istio
  // sidecar's inbound connections come from 127.0.0.6).
  std::vector<std::string> trusted_proxies = {"127.0.0.0/8", "::1"};

  // The largest Decide answer the edge gives (gRPC clients' default receive limit): an ALLOW
  // that would be larger (a long prompt dense with values, its placeholder mapping asked
  // for) is refused with INVALID_ARGUMENT naming return_mapping before it is recorded. Raise
  // it only with the clients' receive limit.
  int64_t max_answer_bytes = 4 << 20;

  // Each key's denial budget (denial_budget.h): the DENY decisions recorded for one key
  // refill at this rate per minute, at most denial_burst in a row; a key that has spent it is
  // refused at the door (RESOURCE_EXHAUSTED, nothing recorded) until a unit is back. 0 turns
  // the budget off. Per replica.
  int64_t denials_per_key_per_minute = 600;
  int64_t denial_burst = 100;

  // How often the five services' health is checked; the edge is ready (grpc.health.v1) while
  // all answer SERVING.
  absl::Duration dependency_check_interval = absl::Milliseconds(500);
  // How many checks of one service in a row must fail (not answer SERVING within the
  // interval) before the edge is unready: one slow answer under load is no outage.
  int64_t dependency_failures = 3;
  // Threads for the admin API's calls, which wait on several services in turn, and how many
  // calls may wait for them.
  int64_t admin_threads = 4;
  int64_t admin_queue = 64;

  void Register(config::Parser& parser);
  absl::Status Validate() const;
};

}  // namespace policy::edge

#endif  // POLICY_SERVICES_EDGE_EDGE_CONFIG_H_
