#include "common/server/server_runner.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/config/config.h"
#include "common/server/blocking_pool.h"
#include "common/testing/eventually.h"
#include "common/testing/loopback_listener.h"
#include "common/testing/temp_dir.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/client_unary_call.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/sync_stream.h"
#include "gtest/gtest.h"
#include "policy/diag/v1/diagnostics.grpc.pb.h"
#include "policy/keys/v1/keys.grpc.pb.h"

namespace policy::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::Duration kWait = absl::Seconds(5);  // Upper bound for anything to happen.

std::chrono::system_clock::time_point RpcDeadline() {
  return std::chrono::system_clock::now() + std::chrono::seconds(5);
}

using ::policy::testing::Eventually;

// --- Raw gRPC helpers (Debian ships no generated health or reflection stubs) ---------------

grpc::ByteBuffer ToBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

std::string Flatten(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const grpc::Slice& s : slices)
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

// A length-delimited proto field (wire type 2) with a value shorter than 128 bytes.
std::string StringField(int number, const std::string& value) {
  std::string out;
  out.push_back(static_cast<char>((number << 3) | 2));
  out.push_back(static_cast<char>(value.size()));
  return out + value;
}

// grpc.health.v1.HealthCheckResponse.ServingStatus
constexpr int kUnknown = 0;
constexpr int kServing = 1;
constexpr int kNotServing = 2;

struct HealthResult {
  grpc::Status status;
  int serving = -1;
};

// grpc.health.v1.Health/Check. The request is HealthCheckRequest{service = 1}; the response
// HealthCheckResponse{status = 1 (enum, varint)}.
HealthResult CheckHealth(grpc::Channel& channel, const std::string& service) {
  static const grpc::internal::RpcMethod kCheck("/grpc.health.v1.Health/Check",
                                                grpc::internal::RpcMethod::NORMAL_RPC);
  grpc::ClientContext context;
  context.set_deadline(RpcDeadline());
  grpc::ByteBuffer response;
  HealthResult result;
  result.status = grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
      &channel, kCheck, &context, ToBuffer(service.empty() ? "" : StringField(1, service)),
      &response);
  if (!result.status.ok()) return result;
  const std::string bytes = Flatten(response);
  if (bytes.empty()) {
    result.serving = kUnknown;  // proto3 default.
  } else if (bytes.size() == 2 && bytes[0] == 0x08) {
    result.serving = bytes[1];
  }
  return result;
}

int ServingStatus(grpc::Channel& channel, const std::string& service = "") {
  HealthResult result = CheckHealth(channel, service);
  return result.status.ok() ? result.serving : -1;
}

grpc::Status Ping(grpc::Channel& channel) {
  auto stub = policy::diag::v1::Diagnostics::NewStub(
      std::shared_ptr<grpc::Channel>(&channel, [](grpc::Channel*) {}));
  grpc::ClientContext context;
  context.set_deadline(RpcDeadline());
  policy::diag::v1::PingRequest request;
  policy::diag::v1::PingResponse response;
  return stub->Ping(&context, request, &response);
}

// --- Plain socket helpers --------------------------------------------------------------------

int ConnectLoopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool Accepts(int port) {
  int fd = ConnectLoopback(port);
  if (fd < 0) return false;
  close(fd);
  return true;
}

// The whole HTTP/1.1 response (headers and body) to GET `path`.
std::string HttpGet(int port, const std::string& path) {
  int fd = ConnectLoopback(port);
  if (fd < 0) return "";
  const std::string request =
      "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    close(fd);
    return "";
  }
  std::string out;
  char buffer[4096];
  ssize_t n;
  while ((n = recv(fd, buffer, sizeof(buffer), 0)) > 0) out.append(buffer, n);
  close(fd);
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

// Loopback options. Metrics are off unless a test needs them: stopping the metrics exposer
// (civetweb's mg_stop) takes about two seconds.
ServerOptions LocalOptions(bool metrics = false) {
  ServerOptions options;
  options.listen = "127.0.0.1:0";
  options.metrics_listen = metrics ? "127.0.0.1:0" : "";
  options.health_interval = absl::Milliseconds(10);
  options.shutdown_grace = absl::Seconds(5);
  return options;
}

std::shared_ptr<grpc::Channel> ChannelTo(int port) {
  return grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                             grpc::InsecureChannelCredentials());
}

// A service added to the runner. GetKey blocks until released (for the drain tests); every
// other method is left unimplemented.
class TestKeyService : public policy::keys::v1::KeyService::Service {
 public:
  grpc::Status GetKey(grpc::ServerContext* context, const policy::keys::v1::GetKeyRequest*,
                      policy::keys::v1::GetKeyResponse*) override {
    calls.fetch_add(1);
    // Calls run at once: only the first may notify (a second Notify() aborts).
    if (!entering.exchange(true)) entered.Notify();
    const absl::Time deadline = absl::Now() + kWait;
    while (!release.HasBeenNotified() && absl::Now() < deadline) {
      if (wait_for_cancel && context->IsCancelled()) {
        return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      }
      release.WaitForNotificationWithTimeout(absl::Milliseconds(5));
    }
    return grpc::Status::OK;
  }

  bool wait_for_cancel = false;
  std::atomic<int> calls{0};  // GetKey calls that reached the handler.
  std::atomic<bool> entering{false};
  absl::Notification entered;
  absl::Notification release;
};

grpc::Status CallGetKey(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = policy::keys::v1::KeyService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(RpcDeadline());
  policy::keys::v1::GetKeyRequest request;
  policy::keys::v1::GetKeyResponse response;
  return stub->GetKey(&context, request, &response);
}

grpc::Status CallVerifyKey(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = policy::keys::v1::KeyService::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(RpcDeadline());
  policy::keys::v1::VerifyKeyRequest request;
  policy::keys::v1::VerifyKeyResponse response;
  return stub->VerifyKey(&context, request, &response);
}

// --- ServerOptions -----------------------------------------------------------------------------

TEST(ServerOptionsTest, DefaultsAndLocalOptionsAreValid) {
  EXPECT_TRUE(ServerOptions().Validate().ok());
  EXPECT_TRUE(LocalOptions().Validate().ok());
  ServerOptions no_metrics = LocalOptions();
  no_metrics.metrics_listen = "";
  EXPECT_TRUE(no_metrics.Validate().ok());
  ServerOptions ipv6 = LocalOptions();
  ipv6.listen = "[::]:50051";
  EXPECT_TRUE(ipv6.Validate().ok());
}

TEST(ServerOptionsTest, RejectsBadHostPort) {
  for (const char* bad : {"localhost", "", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:65536",
                          "127.0.0.1:-1", "127.0.0.1:80x"}) {
    SCOPED_TRACE(bad);
    ServerOptions listen = LocalOptions();
    listen.listen = bad;
    absl::Status status = listen.Validate();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(), HasSubstr("listen"));

    if (std::string(bad).empty()) continue;  // Empty metrics_listen means disabled.
    ServerOptions metrics = LocalOptions();
    metrics.metrics_listen = bad;
    status = metrics.Validate();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(), HasSubstr("metrics_listen"));
  }
}

TEST(ServerOptionsTest, RejectsNonPositiveHealthInterval) {
  for (absl::Duration interval : {absl::ZeroDuration(), absl::Milliseconds(-10)}) {
    ServerOptions options = LocalOptions();
    options.health_interval = interval;
    absl::Status status = options.Validate();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(), HasSubstr("health_interval"));
  }
}

TEST(ServerOptionsTest, RejectsNegativeShutdownGrace) {
  ServerOptions options = LocalOptions();
  options.shutdown_grace = absl::Seconds(-1);
  EXPECT_EQ(options.Validate().code(), absl::StatusCode::kInvalidArgument);
  options.shutdown_grace = absl::ZeroDuration();
  EXPECT_TRUE(options.Validate().ok());
}

TEST(ServerOptionsTest, ShutdownDelayIsZeroByDefaultAndBounded) {
  EXPECT_EQ(ServerOptions().shutdown_delay, absl::ZeroDuration());
  ServerOptions options = LocalOptions();
  for (absl::Duration bad : {absl::Seconds(-1), absl::Minutes(10) + absl::Seconds(1)}) {
    options.shutdown_delay = bad;
    absl::Status status = options.Validate();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(), HasSubstr("shutdown_delay must be between 0s and 10m"));
  }
  for (absl::Duration good : {absl::ZeroDuration(), absl::Seconds(5), absl::Minutes(10)}) {
    options.shutdown_delay = good;
    EXPECT_TRUE(options.Validate().ok());
  }
}

TEST(ServerOptionsTest, ConnectionLimitsHaveBoundedDefaults) {
  const ServerOptions defaults;
  EXPECT_EQ(defaults.max_concurrent_streams, 256);
  EXPECT_EQ(defaults.grpc_memory_quota, 256 << 20);
  EXPECT_EQ(defaults.max_connection_idle, absl::Minutes(5));
  EXPECT_EQ(defaults.keepalive_min_ping_interval, absl::Minutes(1));
  EXPECT_TRUE(defaults.keepalive_permit_without_calls);
  struct Case {
    std::function<void(ServerOptions&)> set;
    const char* message;
  };
  for (const Case& c : std::vector<Case>{
           {[](ServerOptions& o) { o.max_concurrent_streams = 1; }, "max_concurrent_streams"},
           {[](ServerOptions& o) { o.max_concurrent_streams = 100001; }, "max_concurrent_streams"},
           {[](ServerOptions& o) { o.grpc_memory_quota = 1 << 20; }, "grpc_memory_quota"},
           {[](ServerOptions& o) { o.max_connection_idle = absl::Seconds(-1); },
            "max_connection_idle"},
           {[](ServerOptions& o) { o.keepalive_min_ping_interval = absl::Milliseconds(10); },
            "keepalive_min_ping_interval"}}) {
    ServerOptions options = LocalOptions();
    c.set(options);
    absl::Status status = options.Validate();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(status.message(), HasSubstr(c.message));
  }
  ServerOptions never_idle = LocalOptions();
  never_idle.max_connection_idle = absl::ZeroDuration();
  EXPECT_TRUE(never_idle.Validate().ok());
}

TEST(ServerOptionsTest, RegistersFlags) {
  ServerOptions options;
  config::Parser parser("keys");
  options.Register(parser);
  ASSERT_TRUE(parser
                  .Parse({"--listen=127.0.0.1:7000", "--metrics_listen=", "--health_interval=25ms"},
                         {{"POLICY_KEYS_SHUTDOWN_GRACE", "3s"},
                          {"POLICY_KEYS_SHUTDOWN_DELAY", "4s"},
                          {"POLICY_KEYS_READY_FILE", "/tmp/ready"},
                          {"POLICY_KEYS_MAX_CONCURRENT_STREAMS", "64"},
                          {"POLICY_KEYS_GRPC_MEMORY_QUOTA", "134217728"},
                          {"POLICY_KEYS_MAX_CONNECTION_IDLE", "2m"},
                          {"POLICY_KEYS_KEEPALIVE_MIN_PING_INTERVAL", "30s"},
                          {"POLICY_KEYS_KEEPALIVE_PERMIT_WITHOUT_CALLS", "false"}})
                  .ok());
  EXPECT_EQ(options.max_concurrent_streams, 64);
  EXPECT_EQ(options.grpc_memory_quota, 128 << 20);
  EXPECT_EQ(options.max_connection_idle, absl::Minutes(2));
  EXPECT_EQ(options.keepalive_min_ping_interval, absl::Seconds(30));
  EXPECT_FALSE(options.keepalive_permit_without_calls);
  EXPECT_EQ(options.shutdown_delay, absl::Seconds(4));
  EXPECT_EQ(options.listen, "127.0.0.1:7000");
  EXPECT_EQ(options.metrics_listen, "");
  EXPECT_EQ(options.health_interval, absl::Milliseconds(25));
  EXPECT_EQ(options.shutdown_grace, absl::Seconds(3));
  EXPECT_EQ(options.ready_file, "/tmp/ready");
}

// --- ServerRunner ------------------------------------------------------------------------------

class ServerRunnerTest : public ::testing::Test {
 protected:
  // Starts a runner with `options` (listen/metrics on loopback, ready file in a temp dir).
  void StartRunner(ServerOptions options = LocalOptions()) {
    options.ready_file = ready_file_;
    runner_ = std::make_unique<ServerRunner>(options);
    runner_->AddService(&keys_, policy::keys::v1::KeyService::service_full_name());
    if (probe_) runner_->SetReadinessProbe(probe_);
    absl::Status started = runner_->Start();
    ASSERT_TRUE(started.ok()) << started;
    ASSERT_GT(runner_->grpc_port(), 0);
    channel_ = ChannelTo(runner_->grpc_port());
  }

  void TearDown() override {
    if (!keys_.release.HasBeenNotified()) keys_.release.Notify();
    runner_.reset();
  }

  std::string Metrics() { return HttpGet(runner_->metrics_port(), "/metrics"); }

  testing::TempDir dir_;
  const std::string ready_file_ = dir_.File("ready");
  TestKeyService keys_;
  // The readiness probe reads ready_.
  void UseReadyFlag(bool initial) {
    ready_ = initial;
    probe_ = [this] {
      const bool ready = ready_.load();
      probe_calls_++;
      return ready;
    };
  }

  // Waits until the health thread polls: the probe has been asked by Start() and twice by
  // the thread, so a flip of ready_ from now on is a change the thread reports.
  void WaitForHealthPolling() {
    ASSERT_TRUE(Eventually([&] { return probe_calls_.load() >= 3; }));
  }

  std::function<bool()> probe_;
  std::atomic<bool> ready_{false};
  std::atomic<int> probe_calls_{0};
  std::unique_ptr<ServerRunner> runner_;
  std::shared_ptr<grpc::Channel> channel_;
};

TEST_F(ServerRunnerTest, ReadyFileHoldsThePorts) {
  ServerOptions options = LocalOptions(/*metrics=*/true);
  options.health_listen = "127.0.0.1:0";
  StartRunner(options);
  EXPECT_GT(runner_->metrics_port(), 0);
  EXPECT_GT(runner_->health_port(), 0);
  EXPECT_NE(runner_->metrics_port(), runner_->grpc_port());
  EXPECT_EQ(ReadFile(ready_file_), "grpc_port=" + std::to_string(runner_->grpc_port()) +
                                       "\nmetrics_port=" + std::to_string(runner_->metrics_port()) +
                                       "\nhealth_port=" + std::to_string(runner_->health_port()) +
                                       "\n");
  EXPECT_TRUE(Accepts(runner_->grpc_port()));
  EXPECT_TRUE(Accepts(runner_->metrics_port()));
}

TEST_F(ServerRunnerTest, MetricsCanBeDisabled) {
  StartRunner(LocalOptions(/*metrics=*/false));
  EXPECT_EQ(runner_->metrics_port(), 0);
  EXPECT_EQ(ReadFile(ready_file_), "grpc_port=" + std::to_string(runner_->grpc_port()) +
                                       "\nmetrics_port=0\nhealth_port=0\n");
  EXPECT_TRUE(Ping(*channel_).ok());
}

TEST_F(ServerRunnerTest, PingAnswersOk) {
  StartRunner();
  grpc::Status status = Ping(*channel_);
  EXPECT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
}

TEST_F(ServerRunnerTest, ConnectionsOlderThanTheMaximumAgeAreAskedToGo) {
  ServerOptions options = LocalOptions();
  options.max_connection_age = absl::Milliseconds(300);
  StartRunner(options);
  ASSERT_TRUE(Ping(*channel_).ok());
  // The server's GOAWAY leaves the channel idle (its idle timeout alone would take 30 min);
  // the next call connects again.
  EXPECT_TRUE(Eventually([&] { return channel_->GetState(false) == GRPC_CHANNEL_IDLE; }));
  EXPECT_TRUE(Ping(*channel_).ok());
}

TEST_F(ServerRunnerTest, CallsBeyondTheStreamBoundOfAConnectionWaitForOneToEnd) {
  ServerOptions options = LocalOptions();
  options.max_concurrent_streams = 3;
  StartRunner(options);
  ASSERT_TRUE(Ping(*channel_).ok());  // Connected: the client has the server's SETTINGS.
  std::vector<std::thread> callers;
  std::vector<grpc::Status> statuses(7);
  for (grpc::Status& status : statuses) {
    callers.emplace_back([&] { status = CallGetKey(channel_); });
  }
  ASSERT_TRUE(Eventually([&] { return keys_.calls.load() == 3; })) << keys_.calls.load();
  // The other four wait in the client for a stream; none reaches the server meanwhile.
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(keys_.calls.load(), 3);
  keys_.release.Notify();
  for (std::thread& caller : callers) caller.join();
  for (const grpc::Status& status : statuses) EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(keys_.calls.load(), 7);
}

TEST_F(ServerRunnerTest, ConnectionsIdleLongerThanTheLimitAreClosed) {
  ServerOptions options = LocalOptions();
  options.max_connection_idle = absl::Milliseconds(300);
  StartRunner(options);
  ASSERT_TRUE(Ping(*channel_).ok());
  // The server's GOAWAY leaves the channel idle (the client's own idle timeout is 30 min);
  // the next call connects again.
  EXPECT_TRUE(Eventually([&] { return channel_->GetState(false) == GRPC_CHANNEL_IDLE; }));
  EXPECT_TRUE(Ping(*channel_).ok());
}

TEST_F(ServerRunnerTest, AConnectionWithACallInProgressIsNotIdle) {
  ServerOptions options = LocalOptions();
  options.max_connection_idle = absl::Milliseconds(100);
  StartRunner(options);
  grpc::Status status;
  std::thread caller([&] { status = CallGetKey(channel_); });
  ASSERT_TRUE(keys_.entered.WaitForNotificationWithTimeout(kWait));
  absl::SleepFor(absl::Milliseconds(500));  // Five idle limits while the call runs.
  EXPECT_EQ(channel_->GetState(false), GRPC_CHANNEL_READY);
  keys_.release.Notify();
  caller.join();
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(ServerRunnerTest, AddedServiceIsServed) {
  StartRunner();
  keys_.release.Notify();
  EXPECT_TRUE(CallGetKey(channel_).ok());
  EXPECT_EQ(CallVerifyKey(channel_).error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(ServerRunnerTest, HealthIsServingWithoutProbe) {
  StartRunner();
  HealthResult result = CheckHealth(*channel_, "");
  ASSERT_TRUE(result.status.ok()) << result.status.error_message();
  EXPECT_EQ(result.serving, kServing);
}

TEST_F(ServerRunnerTest, HealthFollowsTheReadinessProbe) {
  UseReadyFlag(true);
  ServerOptions options = LocalOptions();
  options.health_listen = "127.0.0.1:0";
  StartRunner(options);
  std::shared_ptr<grpc::Channel> health_port = ChannelTo(runner_->health_port());
  EXPECT_EQ(ServingStatus(*channel_), kServing);
  EXPECT_EQ(ServingStatus(*health_port), kServing);

  WaitForHealthPolling();
  ready_ = false;
  for (grpc::Channel* channel : {channel_.get(), health_port.get()}) {
    EXPECT_TRUE(Eventually([&] { return ServingStatus(*channel) == kNotServing; }))
        << "last status " << ServingStatus(*channel);
    // Liveness ignores the dependencies: a pod is not restarted for a database outage.
    EXPECT_EQ(ServingStatus(*channel, std::string(kLivenessService)), kServing);
  }

  ready_ = true;
  for (grpc::Channel* channel : {channel_.get(), health_port.get()}) {
    EXPECT_TRUE(Eventually([&] { return ServingStatus(*channel) == kServing; }))
        << "last status " << ServingStatus(*channel);
  }
}

TEST_F(ServerRunnerTest, HealthStartsNotServingWhenNotReady) {
  UseReadyFlag(false);
  StartRunner();
  EXPECT_EQ(ServingStatus(*channel_), kNotServing);
  WaitForHealthPolling();
  ready_ = true;
  EXPECT_TRUE(Eventually([&] { return ServingStatus(*channel_) == kServing; }));
}

// The probe reads true when Start() asks it and false from then on: the health thread starts
// from the value Start() published, so the flip is reported and health ends up NOT_SERVING.
TEST_F(ServerRunnerTest, HealthNoticesAFlipRightAfterStart) {
  std::atomic<int> calls{0};
  probe_ = [&calls] { return calls.fetch_add(1) == 0; };
  StartRunner();
  EXPECT_TRUE(Eventually([&] { return ServingStatus(*channel_) == kNotServing; }))
      << "last status " << ServingStatus(*channel_) << " after " << calls.load() << " probes";
}

// Health also answers for each added service by its full name, following the same probe.
TEST_F(ServerRunnerTest, HealthCoversEachAddedServiceName) {
  UseReadyFlag(true);
  StartRunner();
  HealthResult result = CheckHealth(*channel_, "policy.keys.v1.KeyService");
  ASSERT_TRUE(result.status.ok()) << result.status.error_code() << " "
                                  << result.status.error_message();
  EXPECT_EQ(result.serving, kServing);

  WaitForHealthPolling();
  ready_ = false;
  EXPECT_TRUE(Eventually(
      [&] { return ServingStatus(*channel_, "policy.keys.v1.KeyService") == kNotServing; }));
  EXPECT_EQ(ServingStatus(*channel_), kNotServing);

  ready_ = true;
  EXPECT_TRUE(Eventually(
      [&] { return ServingStatus(*channel_, "policy.keys.v1.KeyService") == kServing; }));

  // A name that was never added is unknown rather than silently SERVING.
  EXPECT_EQ(CheckHealth(*channel_, "no.such.Service").status.error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(ServerRunnerTest, MetricsCountHandledRpcs) {
  StartRunner(LocalOptions(/*metrics=*/true));
  ASSERT_TRUE(Ping(*channel_).ok());
  ASSERT_EQ(CallVerifyKey(channel_).error_code(), grpc::StatusCode::UNIMPLEMENTED);

  const std::string metrics = Metrics();
  ASSERT_THAT(metrics, HasSubstr("200 OK"));
  EXPECT_THAT(metrics, HasSubstr("grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Ping\","
                                 "grpc_service=\"policy.diag.v1.Diagnostics\",grpc_type=\"unary\"}"
                                 " 1\n"));
  EXPECT_THAT(metrics, HasSubstr("grpc_server_started_total{grpc_method=\"Ping\",grpc_service="
                                 "\"policy.diag.v1.Diagnostics\",grpc_type=\"unary\"} 1\n"));
  EXPECT_THAT(metrics,
              HasSubstr("grpc_server_handling_seconds_count{grpc_method=\"Ping\",grpc_service="
                        "\"policy.diag.v1.Diagnostics\",grpc_type=\"unary\"} 1\n"));
  EXPECT_THAT(metrics, HasSubstr("grpc_server_handling_seconds_bucket{grpc_method=\"Ping\","
                                 "grpc_service=\"policy.diag.v1.Diagnostics\",grpc_type=\"unary\","
                                 "le=\"+Inf\"} 1\n"));
  EXPECT_THAT(metrics, HasSubstr("grpc_server_handled_total{grpc_code=\"Unimplemented\","
                                 "grpc_method=\"VerifyKey\",grpc_service=\"policy.keys.v1."
                                 "KeyService\",grpc_type=\"unary\"} 1\n"));
  EXPECT_THAT(metrics, Not(HasSubstr("grpc_code=\"OK\",grpc_method=\"VerifyKey\"")));
  EXPECT_THAT(metrics, HasSubstr("grpc_server_msg_received_total{grpc_method=\"Ping\","
                                 "grpc_service=\"policy.diag.v1.Diagnostics\",grpc_type=\"unary\"}"
                                 " 1\n"));
  EXPECT_THAT(metrics, HasSubstr("grpc_server_msg_sent_total{grpc_method=\"Ping\","
                                 "grpc_service=\"policy.diag.v1.Diagnostics\",grpc_type=\"unary\"}"
                                 " 1\n"));

  // A second Ping moves the counter.
  ASSERT_TRUE(Ping(*channel_).ok());
  EXPECT_THAT(Metrics(),
              HasSubstr("grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Ping\","
                        "grpc_service=\"policy.diag.v1.Diagnostics\",grpc_type=\"unary\"} 2\n"));

  // The service's own metrics share the endpoint.
  auto& family = prometheus::BuildCounter()
                     .Name("policy_test_things_total")
                     .Help("things")
                     .Register(runner_->metrics_registry());
  family.Add({{"kind", "x"}}).Increment(3);
  EXPECT_THAT(Metrics(), HasSubstr("policy_test_things_total{kind=\"x\"} 3\n"));
}

// Sends `bytes` as the request of the unary `full_method`.
grpc::Status CallRaw(grpc::Channel& channel, const char* full_method, const std::string& bytes) {
  const grpc::internal::RpcMethod method(full_method, grpc::internal::RpcMethod::NORMAL_RPC);
  grpc::ClientContext context;
  context.set_deadline(RpcDeadline());
  grpc::ByteBuffer response;
  return grpc::internal::BlockingUnaryCall<grpc::ByteBuffer, grpc::ByteBuffer>(
      &channel, method, &context, ToBuffer(bytes), &response);
}

TEST_F(ServerRunnerTest, RequestsThatDoNotParseAreInvalidArgumentNamingTheMessage) {
  StartRunner(LocalOptions(/*metrics=*/true));
  keys_.release.Notify();
  // Bytes that are no protobuf (a field header promising more than there is), to a callback
  // method: gRPC alone answers UNIMPLEMENTED with no message.
  grpc::Status status = CallRaw(*channel_, "/policy.diag.v1.Diagnostics/Ping",
                                "\x0a\x05"
                                "ab");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "request is not a valid policy.diag.v1.PingRequest: malformed protobuf, or a string "
            "field that is not UTF-8");
  // GetKeyRequest.key_id (a string) holding invalid UTF-8, to a sync method: gRPC alone
  // answers INTERNAL. The handler never runs.
  status = CallRaw(*channel_, "/policy.keys.v1.KeyService/GetKey", StringField(1, "k\xc3\x28"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("not a valid policy.keys.v1.GetKeyRequest"));
  EXPECT_EQ(keys_.calls.load(), 0);
  // The same field in UTF-8 reaches the handler; unknown fields are no error.
  EXPECT_TRUE(CallRaw(*channel_, "/policy.keys.v1.KeyService/GetKey",
                      StringField(1, "k\xc3\xa9") + StringField(15, "x"))
                  .ok());
  EXPECT_EQ(keys_.calls.load(), 1);
  // A method the server does not implement, or does not know, stays UNIMPLEMENTED.
  EXPECT_EQ(CallRaw(*channel_, "/policy.keys.v1.KeyService/VerifyKey", "").error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(CallRaw(*channel_, "/policy.keys.v1.KeyService/NoSuchMethod", "\xff").error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  // The metrics count the answer given.
  EXPECT_THAT(Metrics(),
              HasSubstr("grpc_server_handled_total{grpc_code=\"InvalidArgument\",grpc_method="
                        "\"Ping\",grpc_service=\"policy.diag.v1.Diagnostics\",grpc_type=\"unary\"} "
                        "1\n"));
}

TEST_F(ServerRunnerTest, ReflectionListsServices) {
  StartRunner();
  static const grpc::internal::RpcMethod kInfo(
      "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
      grpc::internal::RpcMethod::BIDI_STREAMING);
  grpc::ClientContext context;
  context.set_deadline(RpcDeadline());
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>> stream(
      grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer, grpc::ByteBuffer>::Create(
          channel_.get(), kInfo, &context));
  // ServerReflectionRequest{list_services = 7: ""}
  ASSERT_TRUE(stream->Write(ToBuffer(StringField(7, ""))));
  ASSERT_TRUE(stream->WritesDone());
  std::string responses;
  grpc::ByteBuffer response;
  while (stream->Read(&response)) responses += Flatten(response);
  grpc::Status status = stream->Finish();
  ASSERT_TRUE(status.ok()) << status.error_code() << " " << status.error_message();
  EXPECT_THAT(responses, HasSubstr("policy.diag.v1.Diagnostics"));
  EXPECT_THAT(responses, HasSubstr("policy.keys.v1.KeyService"));
}

TEST_F(ServerRunnerTest, ShutdownStopsAcceptingAndIsIdempotent) {
  StartRunner(LocalOptions(/*metrics=*/true));
  const int grpc_port = runner_->grpc_port();
  const int metrics_port = runner_->metrics_port();
  ASSERT_TRUE(Ping(*channel_).ok());
  runner_->Shutdown();
  EXPECT_FALSE(Accepts(grpc_port));
  EXPECT_FALSE(Accepts(metrics_port));
  EXPECT_FALSE(Ping(*channel_).ok());
  runner_->Shutdown();  // Again: returns at once.
  runner_.reset();      // The destructor shuts down once more.
}

// What the shutdown delay relies on: once readiness is withdrawn, both ports' health says
// NOT_SERVING (and stays so whatever the probe says), liveness SERVING, and new calls are
// still accepted and served.
TEST_F(ServerRunnerTest, WithdrawnReadinessKeepsServing) {
  UseReadyFlag(true);
  ServerOptions options = LocalOptions();
  options.health_listen = "127.0.0.1:0";
  StartRunner(options);
  std::shared_ptr<grpc::Channel> health_port = ChannelTo(runner_->health_port());
  WaitForHealthPolling();
  ASSERT_EQ(ServingStatus(*channel_), kServing);

  runner_->WithdrawReadiness();
  for (grpc::Channel* channel : {channel_.get(), health_port.get()}) {
    EXPECT_EQ(ServingStatus(*channel), kNotServing);
    EXPECT_EQ(ServingStatus(*channel, "policy.keys.v1.KeyService"), kNotServing);
    EXPECT_EQ(ServingStatus(*channel, std::string(kLivenessService)), kServing);
  }
  // The probe is still polled (services refresh gauges in it), but a flip to not ready and
  // back changes nothing.
  ready_ = false;
  int polled = probe_calls_.load();
  ASSERT_TRUE(Eventually([&] { return probe_calls_.load() >= polled + 2; }));
  ready_ = true;
  polled = probe_calls_.load();
  ASSERT_TRUE(Eventually([&] { return probe_calls_.load() >= polled + 2; }));
  EXPECT_EQ(ServingStatus(*channel_), kNotServing);
  EXPECT_EQ(ServingStatus(*health_port), kNotServing);

  // A new connection, and calls on it, are still served.
  std::shared_ptr<grpc::Channel> fresh = ChannelTo(runner_->grpc_port());
  EXPECT_TRUE(Ping(*fresh).ok());
  keys_.release.Notify();
  EXPECT_TRUE(CallGetKey(fresh).ok());
  runner_->WithdrawReadiness();  // Again: nothing changes.
  EXPECT_TRUE(Ping(*channel_).ok());

  const int port = runner_->grpc_port();
  runner_->Shutdown();
  EXPECT_FALSE(Accepts(port));
}

// A probe call that hangs (a dependency that stalls) does not hold up the stop: the gRPC,
// health and metrics ports close while it is still blocked, and Shutdown returns once it does.
TEST_F(ServerRunnerTest, ShutdownStopsTheServersWhileTheProbeIsBlocked) {
  std::atomic<bool> block{false};
  absl::Notification blocked, release;
  probe_ = [&] {
    probe_calls_++;
    if (block.load()) {
      if (!blocked.HasBeenNotified()) blocked.Notify();
      release.WaitForNotification();
    }
    return true;
  };
  ServerOptions options = LocalOptions(/*metrics=*/true);
  options.health_listen = "127.0.0.1:0";
  StartRunner(options);
  WaitForHealthPolling();
  block = true;
  ASSERT_TRUE(blocked.WaitForNotificationWithTimeout(absl::Seconds(5)));

  const int ports[] = {runner_->grpc_port(), runner_->health_port(), runner_->metrics_port()};
  absl::Notification returned;
  std::thread shutdown([&] {
    runner_->Shutdown();
    returned.Notify();
  });
  EXPECT_TRUE(Eventually([&] {
    for (int port : ports) {
      if (Accepts(port)) return false;
    }
    return true;
  }));
  EXPECT_FALSE(returned.HasBeenNotified());  // It waits for the probe call to return...
  release.Notify();
  shutdown.join();  // ...and then returns.
  EXPECT_TRUE(returned.HasBeenNotified());
}

TEST_F(ServerRunnerTest, ShutdownLetsInFlightRpcsFinish) {
  StartRunner();
  grpc::Status in_flight;
  std::thread caller([&] { in_flight = CallGetKey(channel_); });
  ASSERT_TRUE(keys_.entered.WaitForNotificationWithTimeout(kWait));

  const int port = runner_->grpc_port();
  std::atomic<bool> shut_down{false};
  std::thread stopper([&] {
    runner_->Shutdown();
    shut_down = true;
  });
  // Draining has begun once the listener is gone; Shutdown must still wait for the handler,
  // which waits for us.
  EXPECT_TRUE(Eventually([&] { return !Accepts(port); }));
  EXPECT_FALSE(shut_down.load());
  keys_.release.Notify();
  caller.join();
  stopper.join();
  EXPECT_TRUE(shut_down.load());
  EXPECT_TRUE(in_flight.ok()) << in_flight.error_code() << " " << in_flight.error_message();
}

TEST_F(ServerRunnerTest, ShutdownCancelsRpcsAfterTheGrace) {
  ServerOptions options = LocalOptions();
  options.shutdown_grace = absl::Milliseconds(100);
  keys_.wait_for_cancel = true;
  StartRunner(options);
  grpc::Status in_flight;
  std::thread caller([&] { in_flight = CallGetKey(channel_); });
  ASSERT_TRUE(keys_.entered.WaitForNotificationWithTimeout(kWait));

  const absl::Time start = absl::Now();
  runner_->Shutdown();  // The handler never finishes unless cancelled.
  const absl::Duration took = absl::Now() - start;
  caller.join();
  EXPECT_LT(took, absl::Seconds(3));
  EXPECT_FALSE(in_flight.ok());
}

TEST_F(ServerRunnerTest, StartFailsWhenMetricsPortIsTaken) {
  policy::testing::LoopbackListener held(1);
  ASSERT_GT(held.port(), 0);
  ServerOptions options = LocalOptions(/*metrics=*/true);
  options.metrics_listen = "127.0.0.1:" + std::to_string(held.port());
  options.ready_file = ready_file_;
  ServerRunner runner(options);
  absl::Status status = runner.Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr("metrics"));
  EXPECT_EQ(ReadFile(ready_file_), "");  // Never announced as ready.
}  // The destructor cleans up the half-started runner.

TEST_F(ServerRunnerTest, StartFailsWhenAnotherServerHoldsThePort) {
  ServerOptions options = LocalOptions();
  options.health_listen = "127.0.0.1:0";
  StartRunner(options);
  for (const absl::string_view field : {"listen", "health_listen"}) {
    ServerOptions second = LocalOptions();
    const int taken = field == "listen" ? runner_->grpc_port() : runner_->health_port();
    (field == "listen" ? second.listen : second.health_listen) =
        "127.0.0.1:" + std::to_string(taken);
    ServerRunner runner(second);
    absl::Status status = runner.Start();
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << field << ": " << status;
    EXPECT_THAT(status.message(), HasSubstr(std::to_string(taken))) << field;
  }
}

TEST_F(ServerRunnerTest, StartFailsWhenListenAddressIsUnusable) {
  ServerOptions options = LocalOptions();
  options.listen = "192.0.2.1:0";  // TEST-NET-1: not an address of this machine.
  options.ready_file = ready_file_;
  ServerRunner runner(options);
  absl::Status status = runner.Start();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_EQ(ReadFile(ready_file_), "");
}

// --- BlockingPool ------------------------------------------------------------------------------

// Diagnostics/Ping served through a BlockingPool; the "mode" request metadata picks the work:
// "ok" (counts), "fail" (NOT_FOUND), "block" (waits for release).
class PooledDiagnostics : public policy::diag::v1::Diagnostics::CallbackService {
 public:
  explicit PooledDiagnostics(BlockingPool* pool) : pool_(pool) {}

  grpc::ServerUnaryReactor* Ping(grpc::CallbackServerContext* context,
                                 const policy::diag::v1::PingRequest*,
                                 policy::diag::v1::PingResponse*) override {
    std::string mode;
    auto it = context->client_metadata().find("mode");
    if (it != context->client_metadata().end()) mode.assign(it->second.data(), it->second.size());
    last_context = context;
    grpc::ServerUnaryReactor* reactor = pool_->Run(context, [this, mode] {
      if (mode == "block") {
        blocked.Notify();
        release.WaitForNotificationWithTimeout(kWait);
        return grpc::Status::OK;
      }
      if (mode == "fail") return grpc::Status(grpc::StatusCode::NOT_FOUND, "nothing here");
      ran_ok++;
      return grpc::Status::OK;
    });
    dispatched++;
    return reactor;
  }

  std::atomic<grpc::CallbackServerContext*> last_context{nullptr};
  std::atomic<int> dispatched{0};
  std::atomic<int> ran_ok{0};
  absl::Notification blocked;
  absl::Notification release;

 private:
  BlockingPool* pool_;
};

class BlockingPoolTest : public ::testing::Test {
 protected:
  void Start(int threads, int max_queued, std::string full = "") {
    pool_ = std::make_unique<BlockingPool>(threads, max_queued, std::move(full));
    service_ = std::make_unique<PooledDiagnostics>(pool_.get());
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_GT(port, 0);
    channel_ = ChannelTo(port);
    stub_ = policy::diag::v1::Diagnostics::NewStub(channel_);
  }

  void TearDown() override {
    if (service_ != nullptr && !service_->release.HasBeenNotified()) service_->release.Notify();
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
      server_->Wait();
    }
    server_.reset();
    pool_.reset();
  }

  grpc::Status Call(const std::string& mode,
                    std::chrono::milliseconds timeout = std::chrono::seconds(5),
                    grpc::ClientContext* context = nullptr) {
    grpc::ClientContext own;
    if (context == nullptr) context = &own;
    context->set_deadline(std::chrono::system_clock::now() + timeout);
    context->AddMetadata("mode", mode);
    policy::diag::v1::PingRequest request;
    policy::diag::v1::PingResponse response;
    return stub_->Ping(context, request, &response);
  }

  // Occupies the pool's only thread until service_->release.
  std::thread BlockTheThread(grpc::Status* status) {
    std::thread t([this, status] { *status = Call("block"); });
    EXPECT_TRUE(service_->blocked.WaitForNotificationWithTimeout(kWait));
    return t;
  }

  std::unique_ptr<BlockingPool> pool_;
  std::unique_ptr<PooledDiagnostics> service_;
  std::unique_ptr<grpc::Server> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<policy::diag::v1::Diagnostics::Stub> stub_;
};

TEST_F(BlockingPoolTest, RunsWorkAndFinishesWithItsStatus) {
  Start(2, 4);
  EXPECT_TRUE(Call("ok").ok());
  EXPECT_EQ(service_->ran_ok.load(), 1);
  grpc::Status failed = Call("fail");
  EXPECT_EQ(failed.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(failed.error_message(), "nothing here");
}

TEST_F(BlockingPoolTest, ManyConcurrentCallsAllComplete) {
  Start(2, 64);
  std::vector<std::thread> callers;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; ++i) {
    callers.emplace_back([&] {
      for (int j = 0; j < 5; ++j) ok += Call("ok").ok() ? 1 : 0;
    });
  }
  for (std::thread& t : callers) t.join();
  EXPECT_EQ(ok.load(), 40);
  EXPECT_EQ(service_->ran_ok.load(), 40);
}

TEST_F(BlockingPoolTest, FullQueueFailsAtOnceWithResourceExhausted) {
  Start(1, 1, "already 1 verification waiting; retry later");
  grpc::Status blocked_status;
  std::thread blocked = BlockTheThread(&blocked_status);
  grpc::Status queued_status;
  std::thread queued([&] { queued_status = Call("ok"); });
  ASSERT_TRUE(Eventually([&] { return service_->dispatched.load() == 2; }));

  const absl::Time start = absl::Now();
  grpc::Status rejected = Call("ok");
  EXPECT_EQ(rejected.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(rejected.error_message(), "already 1 verification waiting; retry later");
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));

  service_->release.Notify();
  blocked.join();
  queued.join();
  EXPECT_TRUE(blocked_status.ok());
  EXPECT_TRUE(queued_status.ok());
  EXPECT_EQ(service_->ran_ok.load(), 1);  // The rejected call's work never ran.
}

TEST_F(BlockingPoolTest, WorkWhoseDeadlinePassedWhileQueuedIsNotStarted) {
  Start(1, 4);
  grpc::Status blocked_status;
  std::thread blocked = BlockTheThread(&blocked_status);
  // Queued, then expires (a second: time enough to reach the server on a busy machine).
  grpc::Status expired = Call("ok", std::chrono::seconds(1));
  EXPECT_EQ(expired.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  ASSERT_TRUE(Eventually([&] { return service_->dispatched.load() == 2; }));
  // The server computes its deadline from the grpc-timeout header on arrival, so it may lag
  // the client's by a little; wait until it has passed on the server too.
  grpc::CallbackServerContext* server_context = service_->last_context.load();
  ASSERT_NE(server_context, nullptr);
  ASSERT_TRUE(
      Eventually([&] { return server_context->deadline() < std::chrono::system_clock::now(); }));

  service_->release.Notify();
  blocked.join();
  EXPECT_TRUE(blocked_status.ok());
  // One thread, first in first out: once this call completes the expired one was dequeued.
  EXPECT_TRUE(Call("ok").ok());
  EXPECT_EQ(service_->ran_ok.load(), 1);
}

TEST_F(BlockingPoolTest, WorkCancelledWhileQueuedIsNotStarted) {
  Start(1, 4);
  grpc::Status blocked_status;
  std::thread blocked = BlockTheThread(&blocked_status);
  grpc::ClientContext context;
  grpc::Status cancelled_status;
  std::thread cancelled([&] { cancelled_status = Call("ok", std::chrono::seconds(5), &context); });
  ASSERT_TRUE(Eventually([&] { return service_->dispatched.load() == 2; }));
  context.TryCancel();
  cancelled.join();
  EXPECT_EQ(cancelled_status.error_code(), grpc::StatusCode::CANCELLED);
  // The client returns at once; wait until the server has seen the cancellation too. The
  // queued call's context lives until its reactor finishes, which needs the pool thread.
  grpc::CallbackServerContext* server_context = service_->last_context.load();
  ASSERT_NE(server_context, nullptr);
  ASSERT_TRUE(Eventually([&] { return server_context->IsCancelled(); }));

  service_->release.Notify();
  blocked.join();
  EXPECT_TRUE(Call("ok").ok());
  EXPECT_EQ(service_->ran_ok.load(), 1);
}

}  // namespace
}  // namespace policy::server
