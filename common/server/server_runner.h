#ifndef POLICY_COMMON_SERVER_SERVER_RUNNER_H_
#define POLICY_COMMON_SERVER_SERVER_RUNNER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/call_once.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/config/config.h"
#include "common/metrics/grpc_metrics.h"
#include "common/tls/tls_options.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/service_type.h"
#include "grpcpp/resource_quota.h"
#include "prometheus/exposer.h"
#include "prometheus/registry.h"

namespace policy::server {

// The health-check service name that is SERVING for as long as the process serves, whatever
// its dependencies say: what a liveness probe asks (readiness asks for "").
inline constexpr absl::string_view kLivenessService = "liveness";

// What every policy-suite server exposes, configured the same way in each binary.
struct ServerOptions {
  // host:port for gRPC; port 0 picks a free port (see ready_file).
  std::string listen = "0.0.0.0:50051";
  // host:port for Prometheus /metrics; empty disables it.
  std::string metrics_listen = "0.0.0.0:9090";
  // host:port of a plaintext port serving only grpc.health.v1.Health (for probes that cannot
  // speak TLS, as Kubernetes' native gRPC probes); empty disables it.
  std::string health_listen;
  // TLS of the gRPC port, and of the calls the process makes (see tls::TlsOptions).
  tls::TlsOptions tls;
  // Written once the server listens and its readiness probe first says ready:
  // "grpc_port=N\nmetrics_port=M\nhealth_port=H\n" (0 for a port not served). Tests and
  // scripts wait for it instead of sleeping.
  std::string ready_file;
  // How long, after SIGTERM, the server goes on accepting and serving new RPCs while its
  // readiness says NOT_SERVING, so that load balancers and kube-proxy stop sending it calls
  // before its listener closes. A second SIGTERM or SIGINT ends it early. Zero (the binaries'
  // default, so that tests and tools/dev stop at once): the listener closes at the signal.
  absl::Duration shutdown_delay = absl::ZeroDuration();
  // After shutdown_delay, how long in-flight RPCs may run before they are cancelled.
  absl::Duration shutdown_grace = absl::Seconds(10);
  // Connections older than this are asked to go (GOAWAY; in-flight RPCs get shutdown_grace to
  // finish), so that clients re-resolve and spread over replicas added since; zero: never.
  absl::Duration max_connection_age = absl::ZeroDuration();
  // Streams (calls in progress) one connection may carry at once, announced to the client as
  // HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: a conforming client queues its further calls until
  // one ends, and the server refuses (REFUSED_STREAM) a stream beyond it. Room is left for the
  // one grpc.health.v1.Health/Watch stream that client-side health checking keeps open on
  // each connection (common/client/channel.cc), which never ends by itself.
  int64_t max_concurrent_streams = 256;
  // Bytes gRPC itself may hold for all connections and calls together (its transport buffers
  // and per-call arenas; grpc::ResourceQuota). Near it, gRPC shrinks its buffers and then
  // cancels streams (RESOURCE_EXHAUSTED) rather than grow. Keep it well under the process's
  // memory limit: the services' own work comes on top.
  int64_t grpc_memory_quota = 256 << 20;
  // A connection with no call in progress for this long is closed (GOAWAY); clients connect
  // again on their next call. Zero: never.
  absl::Duration max_connection_idle = absl::Minutes(5);
  // Keepalive enforcement: a client that pings more often than this while it sends nothing is
  // struck; after two strikes its connection is closed with GOAWAY "too_many_pings". Clients'
  // keepalive time must be at least this long.
  absl::Duration keepalive_min_ping_interval = absl::Minutes(1);
  // Whether clients may send keepalive pings on a connection with no call in progress (at
  // keepalive_min_ping_interval); if not, such pings are allowed once per two hours. An idle
  // connection is closed after max_connection_idle either way.
  bool keepalive_permit_without_calls = true;
  // How often the health service re-reads the service's readiness.
  absl::Duration health_interval = absl::Milliseconds(100);
  // The largest request message the server accepts (gRPC's default); a service whose
  // requests may be larger raises it from its own limits. Not a flag.
  int64_t max_receive_message_bytes = 4 << 20;

  void Register(config::Parser& parser);
  absl::Status Validate() const;
};

// Builds and runs one gRPC server with what every service needs:
//  - grpc.health.v1.Health, SERVING only while the readiness probe says so (for the
//    overall server "" and for each added service's full name), NOT_SERVING while draining;
//    and "liveness", SERVING from start to shutdown whatever the dependencies say. The same
//    answers on the plaintext health port when health_listen is set;
//  - TLS, and client certificates required, as options.tls says;
//  - server reflection;
//  - policy.diag.v1.Diagnostics/Ping, the empty RPC that load tests compare against;
//  - the conventional gRPC server metrics on /metrics of their own port, beside any the
//    service registers in metrics_registry();
//  - graceful shutdown on SIGTERM or SIGINT (RunUntilSignal).
class ServerRunner {
 public:
  explicit ServerRunner(ServerOptions options);
  ~ServerRunner();

  // Services are borrowed and must outlive the runner. Call before Start. `full_name` (e.g.
  // "policy.keys.v1.KeyService") is what health checks name the service by.
  void AddService(grpc::Service* service, std::string full_name);
  // Readiness: true when the service's dependencies are usable. Polled every
  // health_interval. Without a probe the server is SERVING once started.
  void SetReadinessProbe(std::function<bool()> probe);
  prometheus::Registry& metrics_registry() { return *registry_; }

  absl::Status Start();
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  int health_port() const { return health_port_; }
  // Readiness (health "" and each added service's name, on both ports) says NOT_SERVING from
  // now on, whatever the probe says (it is still polled, for what it updates besides);
  // "liveness" stays SERVING and the server goes on accepting and serving RPCs until Shutdown.
  // Thread-safe; later calls do nothing.
  void WithdrawReadiness();
  // Reports NOT_SERVING, lets in-flight RPCs finish within shutdown_grace, then stops. The
  // readiness probe is not waited for until the servers and /metrics have stopped: a probe
  // call in progress then delays only Shutdown's return, never the stop.
  void Shutdown();

  // Start, then block until SIGTERM or SIGINT; then WithdrawReadiness, serve on for
  // shutdown_delay (or until a second SIGTERM or SIGINT), then Shutdown. Requires
  // PrepareServerProcess() to have run before any thread was started.
  absl::Status RunUntilSignal();

 private:
  // Re-reads readiness until shutdown; `last` is what Start published.
  void PollHealth(bool last);
  // Waits for the poller to end (stop_health_ notified first). Once; later and concurrent
  // calls wait for the first.
  void JoinHealthPolling();
  // Publishes `serving` unless readiness was withdrawn or Shutdown began; true when it did.
  bool PublishReadiness(bool serving);
  void SetServing(bool serving);
  absl::Status WriteReadyFile();  // Once; later calls do nothing.
  void StopMetrics();

  const ServerOptions options_;
  std::shared_ptr<prometheus::Registry> registry_;
  metrics::GrpcServerMetrics grpc_metrics_;
  std::vector<grpc::Service*> services_;
  std::vector<std::string> service_names_;
  std::unique_ptr<grpc::Service> diagnostics_;
  // Shared by the gRPC port and the health port: grpc_memory_quota bounds them together.
  std::unique_ptr<grpc::ResourceQuota> resource_quota_;
  std::function<bool()> probe_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::Server> health_server_;  // Health only, plaintext; may be null.
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<prometheus::Collectable> tls_metrics_;  // Null without TLS.
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  int health_port_ = 0;
  std::atomic<bool> stopping_{false};
  absl::Notification stop_health_;
  absl::once_flag health_polling_stopped_;
  absl::Mutex readiness_mu_;  // Orders PublishReadiness and WithdrawReadiness.
  bool readiness_withdrawn_ ABSL_GUARDED_BY(readiness_mu_) = false;
  std::atomic<bool> ready_file_written_{false};
  std::thread health_thread_;
};

// Call first thing in a server's main, before any thread starts:
//  - blocks SIGTERM and SIGINT in this thread and every thread started later, so that
//    RunUntilSignal can wait for them; ignores SIGPIPE;
//  - turns off Abseil's mutex deadlock detection, which Debian's Abseil (built without
//    NDEBUG) leaves on: it takes a global lock on every mutex gRPC creates per call and cost
//    several percent of throughput. Tests keep it on;
//  - keeps freed heap memory in the process (up to 256 MiB above what is in use) rather than
//    handing it back to the kernel after each burst: glibc's default trims the heap whenever
//    128 KiB at its top are free, and every call then faulted fresh pages in again (3,000
//    page faults a second in pii under load, each a trap into the hypervisor);
//  - sends Protobuf's and gRPC's own log lines through the structured log (RouteLibraryLogs).
void PrepareServerProcess();

}  // namespace policy::server

#endif  // POLICY_COMMON_SERVER_SERVER_RUNNER_H_
