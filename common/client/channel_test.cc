#include "common/client/channel.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/server/server_runner.h"
#include "common/testing/eventually.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "policy/diag/v1/diagnostics.grpc.pb.h"

namespace policy::client {
namespace {

// Calls the runner's grpc_server_handled_total counts, all methods together.
double Handled(server::ServerRunner& runner) {
  double total = 0;
  for (const prometheus::MetricFamily& family : runner.metrics_registry().Collect()) {
    if (family.name != "grpc_server_handled_total") continue;
    for (const prometheus::ClientMetric& metric : family.metric) total += metric.counter.value;
  }
  return total;
}

TEST(OpenChannelTest, SpreadsCallsOverEveryAddressTheNameResolvesTo) {
  std::unique_ptr<server::ServerRunner> replicas[2];
  std::string addresses;
  for (auto& replica : replicas) {
    server::ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = "";
    replica = std::make_unique<server::ServerRunner>(options);
    ASSERT_TRUE(replica->Start().ok());
    absl::StrAppend(&addresses, addresses.empty() ? "" : ",", "127.0.0.1:", replica->grpc_port());
  }
  auto stub = diag::v1::Diagnostics::NewStub(
      OpenChannel(absl::StrCat("ipv4:", addresses), grpc::InsecureChannelCredentials()));
  auto ping = [&] {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    diag::v1::PingResponse response;
    return stub->Ping(&context, {}, &response).ok();
  };
  // Round robin uses each address once it is connected: the first calls may all go to the
  // first one to connect.
  ASSERT_TRUE(testing::Eventually(
      [&] { return ping() && Handled(*replicas[0]) > 0 && Handled(*replicas[1]) > 0; }));
  const double before[2] = {Handled(*replicas[0]), Handled(*replicas[1])};
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(ping());
  // A server counts a call as it ends, which may be just after the client has its answer.
  ASSERT_TRUE(testing::Eventually(
      [&] { return Handled(*replicas[0]) + Handled(*replicas[1]) - before[0] - before[1] == 20; }));
  EXPECT_EQ(Handled(*replicas[0]) - before[0], 10);
  EXPECT_EQ(Handled(*replicas[1]) - before[1], 10);
}

struct Replica {
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};

Replica StartReplica() {
  grpc::EnableDefaultHealthCheckService(true);
  Replica r;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &r.port);
  r.server = builder.BuildAndStart();
  return r;
}

// The readiness the channel's next call reaches.
grpc::health::v1::HealthCheckResponse::ServingStatus Readiness(grpc::Channel& channel) {
  auto stub = grpc::health::v1::Health::NewStub(
      std::shared_ptr<grpc::Channel>(&channel, [](grpc::Channel*) {}));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  context.set_wait_for_ready(true);
  grpc::health::v1::HealthCheckRequest request;
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status s = stub->Check(&context, request, &response);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return response.status();
}

TEST(OpenChannelTest, CallsGoOnlyToReplicasThatAreReady) {
  Replica ready = StartReplica();
  Replica unready = StartReplica();
  ASSERT_NE(ready.port, 0);
  ASSERT_NE(unready.port, 0);
  unready.server->GetHealthCheckService()->SetServingStatus("", false);

  std::shared_ptr<grpc::Channel> channel =
      OpenChannel(absl::StrCat("ipv4:127.0.0.1:", ready.port, ",127.0.0.1:", unready.port),
                  grpc::InsecureChannelCredentials());
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(Readiness(*channel), grpc::health::v1::HealthCheckResponse::SERVING) << i;
  }

  // The other way round: once the first replica stops being ready and the second is, the
  // calls move (the channel hears of it through Health.Watch).
  ready.server->GetHealthCheckService()->SetServingStatus("", false);
  unready.server->GetHealthCheckService()->SetServingStatus("", true);
  ASSERT_TRUE(testing::Eventually(
      [&] { return Readiness(*channel) == grpc::health::v1::HealthCheckResponse::SERVING; }));
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(Readiness(*channel), grpc::health::v1::HealthCheckResponse::SERVING) << i;
  }
  ready.server->Shutdown();
  unready.server->Shutdown();
}

TEST(CheckTargetTest, HostAndPortOrASchemedTarget) {
  for (const char* good :
       {"127.0.0.1:50051", "keys.policy.svc:443", "[::1]:50051", "dns:///keys:50051",
        "ipv4:127.0.0.1:1,127.0.0.2:2", "unix:/run/keys.sock", "localhost:65535"}) {
    EXPECT_TRUE(CheckTarget("keys_target", good).ok()) << good;
  }
  for (const char* bad : {"bad::", "127.0.0.1:notaport", "keys", "keys:", ":50051", "keys:0",
                          "keys:65536", "::1:50051", "http://keys:80", "dns:", "keys:50051 "}) {
    const absl::Status s = CheckTarget("keys_target", bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(s.message()), ::testing::StartsWith("keys_target: '")) << bad;
  }
}

}  // namespace
}  // namespace policy::client
