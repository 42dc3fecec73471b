// The edge binary: configuration, the downstream channels, the server.
#include <memory>

#include "common/config/config.h"
#include "common/log/log.h"
#include "common/server/server_runner.h"
#include "services/edge/decision_flow.h"
#include "services/edge/downstream.h"
#include "services/edge/edge_config.h"
#include "services/edge/edge_service.h"

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

  std::unique_ptr<Downstream> downstream = NewGrpcDownstream(config.targets);
  FlowOptions options;
  options.redaction = *std::move(redaction);
  server::ServerRunner runner(config.server);
  EdgeService service(downstream.get(), std::move(options), config.max_decision_time);
  runner.AddService(&service, v1::EdgeService::service_full_name());
  absl::Status served = runner.RunUntilSignal();
  if (!served.ok()) return Fail(served);
  return 0;
}

}  // namespace
}  // namespace policy::edge

int main(int argc, char** argv) { return policy::edge::Main(argc, argv); }
