#include "common/server/server_runner.h"

#include <arpa/inet.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <fstream>
#include <optional>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/log/log.h"
#include "common/server/diagnostics_service.h"
#include "common/server/library_logs.h"
#include "common/server/malformed_request.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace policy::server {
namespace {

absl::Status ValidateHostPort(absl::string_view value, absl::string_view name) {
  size_t colon = value.rfind(':');
  int port = 0;
  if (colon == absl::string_view::npos || !absl::SimpleAtoi(value.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " must be host:port with a port from 0 to 65535, got '", value, "'"));
  }
  return absl::OkStatus();
}

const char* SignalName(int signal) { return signal == SIGTERM ? "SIGTERM" : "SIGINT"; }

// Waits up to `timeout` for one of `signals` (blocked in every thread); returns it, or 0 when
// the time ran out.
int WaitForSignal(const sigset_t& signals, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return 0;
    const timespec wait = absl::ToTimespec(left);
    const int received = sigtimedwait(&signals, nullptr, &wait);
    if (received > 0) return received;
    if (errno != EINTR) return 0;  // EAGAIN: the time ran out.
  }
}

// What every listener of the process applies to its connections (see ServerOptions).
void ApplyConnectionLimits(const ServerOptions& options, grpc::ResourceQuota& quota,
                           grpc::ServerBuilder& builder) {
  builder.SetResourceQuota(quota);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             static_cast<int>(options.max_concurrent_streams));
  if (options.max_connection_idle > absl::ZeroDuration()) {
    builder.AddChannelArgument(
        GRPC_ARG_MAX_CONNECTION_IDLE_MS,
        static_cast<int>(absl::ToInt64Milliseconds(options.max_connection_idle)));
  }
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
      static_cast<int>(absl::ToInt64Milliseconds(options.keepalive_min_ping_interval)));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS,
                             options.keepalive_permit_without_calls ? 1 : 0);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 2);
}

}  // namespace

void ServerOptions::Register(config::Parser& parser) {
  parser.AddString("listen", &listen, "gRPC address, host:port (port 0 picks a free one)");
  parser.AddString("metrics_listen", &metrics_listen,
                   "Prometheus /metrics address, host:port; empty disables it");
  parser.AddString("health_listen", &health_listen,
                   "plaintext gRPC health-only address, host:port; empty disables it");
  tls.Register(parser);
  parser.AddString("ready_file", &ready_file,
                   "file written with the bound ports once the server serves");
  parser.AddDuration("shutdown_delay", &shutdown_delay,
                     "how long after SIGTERM the server goes on serving while not ready "
                     "(a second signal ends it)");
  parser.AddDuration("shutdown_grace", &shutdown_grace,
                     "how long in-flight RPCs may finish after shutdown_delay");
  parser.AddDuration("max_connection_age", &max_connection_age,
                     "connections older than this are closed gracefully (0: never)");
  parser.AddInt("max_concurrent_streams", &max_concurrent_streams,
                "calls one connection may carry at once; clients queue further ones");
  parser.AddInt("grpc_memory_quota", &grpc_memory_quota,
                "bytes gRPC may hold for all connections and calls (buffers, call state)");
  parser.AddDuration("max_connection_idle", &max_connection_idle,
                     "connections with no call in progress this long are closed (0: never)");
  parser.AddDuration("keepalive_min_ping_interval", &keepalive_min_ping_interval,
                     "clients pinging more often than this are disconnected (too_many_pings)");
  parser.AddBool("keepalive_permit_without_calls", &keepalive_permit_without_calls,
                 "whether clients may ping at keepalive_min_ping_interval with no call open");
  parser.AddDuration("health_interval", &health_interval,
                     "how often the health service re-reads readiness");
}

absl::Status ServerOptions::Validate() const {
  if (absl::Status s = ValidateHostPort(listen, "listen"); !s.ok()) return s;
  if (!metrics_listen.empty()) {
    if (absl::Status s = ValidateHostPort(metrics_listen, "metrics_listen"); !s.ok()) return s;
  }
  if (!health_listen.empty()) {
    if (absl::Status s = ValidateHostPort(health_listen, "health_listen"); !s.ok()) return s;
  }
  if (absl::Status s = tls.Validate(); !s.ok()) return s;
  if (shutdown_delay < absl::ZeroDuration() || shutdown_delay > absl::Minutes(10)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shutdown_delay must be between 0s and 10m, got ", absl::FormatDuration(shutdown_delay)));
  }
  if (shutdown_grace < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("shutdown_grace must not be negative");
  }
  if (max_connection_age < absl::ZeroDuration() || max_connection_age > absl::Hours(24)) {
    return absl::InvalidArgumentError("max_connection_age must be between 0 and 24h");
  }
  if (max_concurrent_streams < 2 || max_concurrent_streams > 100000) {
    // 2: the health Watch stream and at least one call.
    return absl::InvalidArgumentError(absl::StrCat(
        "max_concurrent_streams must be between 2 and 100000, got ", max_concurrent_streams));
  }
  if (grpc_memory_quota < (16 << 20) || grpc_memory_quota > (int64_t{64} << 30)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "grpc_memory_quota must be between 16 MiB and 64 GiB, got ", grpc_memory_quota));
  }
  if (max_connection_idle < absl::ZeroDuration() || max_connection_idle > absl::Hours(24)) {
    return absl::InvalidArgumentError("max_connection_idle must be between 0 and 24h");
  }
  if (keepalive_min_ping_interval < absl::Seconds(1) ||
      keepalive_min_ping_interval > absl::Hours(24)) {
    return absl::InvalidArgumentError("keepalive_min_ping_interval must be between 1s and 24h");
  }
  if (health_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("health_interval must be positive");
  }
  if (max_receive_message_bytes < 1024 || max_receive_message_bytes > (1 << 30)) {
    return absl::InvalidArgumentError("max_receive_message_bytes must be between 1 KiB and 1 GiB");
  }
  return absl::OkStatus();
}

namespace {

// policy_tls_files_valid and policy_tls_certificate_expiry_timestamp_seconds of a server's TLS
// files (tls::StagedFilesState), read at each scrape.
class TlsFilesMetrics : public prometheus::Collectable {
 public:
  explicit TlsFilesMetrics(tls::TlsOptions options) : options_(std::move(options)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    const std::optional<tls::FilesState> state = tls::StagedFilesState(options_);
    if (!state.has_value()) return {};
    auto gauge = [](std::string name, std::string help, double value) {
      prometheus::ClientMetric metric;
      metric.gauge.value = value;
      return prometheus::MetricFamily{
          std::move(name), std::move(help), prometheus::MetricType::Gauge, {metric}};
    };
    std::vector<prometheus::MetricFamily> families = {
        gauge("policy_tls_files_valid",
              "1 while the TLS files (tls_cert_file, tls_key_file, tls_ca_file) hold as last "
              "read; 0: they were refused and the last good ones stay in service.",
              state->valid ? 1 : 0)};
    if (state->certificate_not_after != absl::InfiniteFuture()) {
      families.push_back(
          gauge("policy_tls_certificate_expiry_timestamp_seconds",
                "When the certificate in service expires (Unix time).",
                static_cast<double>(absl::ToUnixSeconds(state->certificate_not_after))));
    }
    return families;
  }

 private:
  const tls::TlsOptions options_;
};

}  // namespace

ServerRunner::ServerRunner(ServerOptions options)
    : options_(std::move(options)),
      registry_(std::make_shared<prometheus::Registry>()),
      grpc_metrics_(*registry_),
      diagnostics_(NewDiagnosticsService()),
      resource_quota_(std::make_unique<grpc::ResourceQuota>("policy-server")) {
  resource_quota_->Resize(static_cast<size_t>(options_.grpc_memory_quota));
}

ServerRunner::~ServerRunner() { Shutdown(); }

void ServerRunner::AddService(grpc::Service* service, std::string full_name) {
  services_.push_back(service);
  service_names_.push_back(std::move(full_name));
}

void ServerRunner::SetReadinessProbe(std::function<bool()> probe) { probe_ = std::move(probe); }

absl::Status ServerRunner::Start() {
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.listen, tls::ServerCredentials(options_.tls), &grpc_port_);
  // A port in use is an error: gRPC's default SO_REUSEPORT would let a second process (a
  // leftover replica, another checkout) share it and take half the new connections.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  ApplyConnectionLimits(options_, *resource_quota_, builder);
  builder.SetMaxReceiveMessageSize(static_cast<int>(options_.max_receive_message_bytes));
  if (options_.max_connection_age > absl::ZeroDuration()) {
    builder.AddChannelArgument(
        GRPC_ARG_MAX_CONNECTION_AGE_MS,
        static_cast<int>(absl::ToInt64Milliseconds(options_.max_connection_age)));
    builder.AddChannelArgument(
        GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
        static_cast<int>(absl::ToInt64Milliseconds(options_.shutdown_grace)));
  }
  for (grpc::Service* service : services_) builder.RegisterService(service);
  builder.RegisterService(diagnostics_.get());
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
  creators.push_back(MalformedRequestInterceptorFactory());  // First: metrics see its status.
  creators.push_back(grpc_metrics_.InterceptorFactory());
  builder.experimental().SetInterceptorCreators(std::move(creators));
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || grpc_port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options_.listen));
  }
  if (!options_.health_listen.empty()) {
    grpc::ServerBuilder health_builder;  // The default health service is its only service.
    health_builder.AddListeningPort(options_.health_listen, grpc::InsecureServerCredentials(),
                                    &health_port_);
    health_builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    ApplyConnectionLimits(options_, *resource_quota_, health_builder);
    health_server_ = health_builder.BuildAndStart();
    if (health_server_ == nullptr || health_port_ == 0) {
      return absl::UnavailableError(absl::StrCat("cannot listen on ", options_.health_listen));
    }
  }
  if (!options_.metrics_listen.empty()) {
    try {
      exposer_ = std::make_unique<prometheus::Exposer>(options_.metrics_listen);
    } catch (const std::exception& e) {
      return absl::UnavailableError(
          absl::StrCat("cannot serve metrics on ", options_.metrics_listen, ": ", e.what()));
    }
    exposer_->RegisterCollectable(registry_);
    if (options_.tls.serves_tls()) {
      tls_metrics_ = std::make_shared<TlsFilesMetrics>(options_.tls);
      exposer_->RegisterCollectable(tls_metrics_);
    }
    std::vector<int> ports = exposer_->GetListeningPorts();
    metrics_port_ = ports.empty() ? 0 : ports.front();
  }
  const bool serving = probe_ ? probe_() : true;
  SetServing(serving);
  if (serving) {
    if (absl::Status s = WriteReadyFile(); !s.ok()) return s;
  }
  health_thread_ = std::thread([this, serving] { PollHealth(serving); });
  LogInfo("serving", {{"grpc_port", absl::StrCat(grpc_port_)},
                      {"metrics_port", absl::StrCat(metrics_port_)},
                      {"health_port", absl::StrCat(health_port_)},
                      {"tls", options_.tls.serves_tls() ? "on" : "off"}});
  return absl::OkStatus();
}

void ServerRunner::SetServing(bool serving) {
  for (grpc::Server* server : {server_.get(), health_server_.get()}) {
    grpc::HealthCheckServiceInterface* health =
        server == nullptr ? nullptr : server->GetHealthCheckService();
    if (health == nullptr) continue;
    health->SetServingStatus("", serving);
    health->SetServingStatus(std::string(kLivenessService), true);
    for (const std::string& name : service_names_) health->SetServingStatus(name, serving);
  }
}

absl::Status ServerRunner::WriteReadyFile() {
  if (options_.ready_file.empty() || ready_file_written_.exchange(true)) return absl::OkStatus();
  std::string tmp = options_.ready_file + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "grpc_port=" << grpc_port_ << "\nmetrics_port=" << metrics_port_
        << "\nhealth_port=" << health_port_ << "\n";
    if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", tmp));
  }
  if (std::rename(tmp.c_str(), options_.ready_file.c_str()) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot write ", options_.ready_file));
  }
  return absl::OkStatus();
}

void ServerRunner::PollHealth(bool last) {
  if (!probe_) return;
  while (!stop_health_.WaitForNotificationWithTimeout(options_.health_interval)) {
    const bool serving = probe_();
    if (serving == last) continue;
    if (!PublishReadiness(serving)) continue;
    if (serving) {
      if (absl::Status s = WriteReadyFile(); !s.ok()) {
        LogError("cannot write the ready file", {{"status", s.ToString()}});
      }
    }
    LogInfo(serving ? "ready: health is SERVING" : "not ready: health is NOT_SERVING");
    last = serving;
  }
}

void ServerRunner::JoinHealthPolling() {
  absl::call_once(health_polling_stopped_, [this] {
    if (health_thread_.joinable()) health_thread_.join();
  });
}

bool ServerRunner::PublishReadiness(bool serving) {
  absl::MutexLock lock(&readiness_mu_);
  if (readiness_withdrawn_ || stopping_.load()) return false;
  SetServing(serving);
  return true;
}

void ServerRunner::WithdrawReadiness() {
  {
    absl::MutexLock lock(&readiness_mu_);
    if (readiness_withdrawn_ || server_ == nullptr || stopping_.load()) return;
    readiness_withdrawn_ = true;
    SetServing(false);
  }
  LogInfo("not ready: health is NOT_SERVING until shutdown");
}

void ServerRunner::Shutdown() {
  if (stopping_.exchange(true)) return;
  // The poller publishes nothing from now on (PublishReadiness); it is joined only once the
  // servers stopped, so a probe call that hangs delays nothing but Shutdown's return.
  stop_health_.Notify();
  if (server_ == nullptr) {
    JoinHealthPolling();
    return;
  }
  LogInfo("shutting down: draining in-flight RPCs",
          {{"grace", absl::FormatDuration(options_.shutdown_grace)}});
  for (grpc::Server* server : {server_.get(), health_server_.get()}) {
    grpc::HealthCheckServiceInterface* health =
        server == nullptr ? nullptr : server->GetHealthCheckService();
    if (health != nullptr) health->Shutdown();  // NOT_SERVING, and no further changes.
  }
  server_->Shutdown(absl::ToChronoTime(absl::Now() + options_.shutdown_grace));
  server_->Wait();
  if (health_server_ != nullptr) {
    health_server_->Shutdown(absl::ToChronoTime(absl::Now()));
    health_server_->Wait();
  }
  StopMetrics();
  JoinHealthPolling();
  LogInfo("stopped");
}

void ServerRunner::StopMetrics() {
  if (exposer_ == nullptr) return;
  // civetweb's listener polls with a 2 s timeout before it notices it should stop; a
  // connection wakes it at once.
  std::atomic<bool> stopped{false};
  std::thread stopper([this, &stopped] {
    exposer_.reset();
    stopped = true;
  });
  std::string host = options_.metrics_listen.substr(0, options_.metrics_listen.rfind(':'));
  if (host.empty() || host == "0.0.0.0" || host == "[::]") host = "127.0.0.1";
  for (int attempt = 0; attempt < 20 && !stopped; ++attempt) {
    absl::SleepFor(absl::Milliseconds(10));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) continue;
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(metrics_port_));
    if (inet_pton(AF_INET, host.c_str(), &address.sin_addr) == 1) {
      connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
    }
    close(fd);
  }
  stopper.join();
}

absl::Status ServerRunner::RunUntilSignal() {
  if (absl::Status s = Start(); !s.ok()) return s;
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  int received = 0;
  sigwait(&signals, &received);
  LogInfo("received signal", {{"signal", SignalName(received)}});
  if (options_.shutdown_delay > absl::ZeroDuration()) {
    WithdrawReadiness();
    LogInfo("serving on for the shutdown delay",
            {{"delay", absl::FormatDuration(options_.shutdown_delay)}});
    if (int again = WaitForSignal(signals, options_.shutdown_delay); again != 0) {
      LogInfo("received another signal: ending the shutdown delay",
              {{"signal", SignalName(again)}});
    }
  }
  Shutdown();
  return absl::OkStatus();
}

void PrepareServerProcess() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  RouteLibraryLogs();
  // Setting them fixes glibc's otherwise adaptive thresholds; blocks under 32 MiB come from
  // the heap, not from mmap.
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  mallopt(M_TOP_PAD, 16 << 20);
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  signal(SIGPIPE, SIG_IGN);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
}

}  // namespace policy::server
