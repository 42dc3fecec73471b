#ifndef POLICY_COMMON_METRICS_GRPC_METRICS_H_
#define POLICY_COMMON_METRICS_GRPC_METRICS_H_

#include <chrono>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/support/server_interceptor.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace policy::metrics {

// The conventional per-method gRPC metrics of one side of a call (the names of
// go-grpc-prometheus and grpc-ecosystem/java-grpc-prometheus), <side> being server or client:
//   grpc_<side>_started_total{grpc_type,grpc_service,grpc_method}
//   grpc_<side>_handled_total{grpc_type,grpc_service,grpc_method,grpc_code}
//   grpc_<side>_msg_received_total / grpc_<side>_msg_sent_total{grpc_type,grpc_service,grpc_method}
//   grpc_<side>_handling_seconds{grpc_type,grpc_service,grpc_method} (histogram)
// Thread-safe.
class GrpcMethodMetrics {
 public:
  ~GrpcMethodMetrics();
  GrpcMethodMetrics(const GrpcMethodMetrics&) = delete;
  GrpcMethodMetrics& operator=(const GrpcMethodMetrics&) = delete;

  struct Method;
  // The metrics of one method, created on first use. `full_method` is "/pkg.Service/Method",
  // `type` one of unary, client_stream, server_stream, bidi_stream. On the server side a
  // method this binary does not know (no descriptor of it is linked in, and it is not
  // grpc.health.v1.Health's) is counted as grpc_service="unknown", grpc_method="unknown":
  // callers naming made-up paths do not add series.
  Method* ForMethod(const char* full_method, const char* type);
  static void Started(Method* method);
  static void Received(Method* method);
  static void Sent(Method* method);
  static void Handled(Method* method, grpc::StatusCode code, double seconds);

 protected:
  GrpcMethodMetrics(prometheus::Registry& registry, absl::string_view side);

 private:
  prometheus::Family<prometheus::Counter>& started_;
  prometheus::Family<prometheus::Counter>& handled_;
  prometheus::Family<prometheus::Counter>& received_;
  prometheus::Family<prometheus::Counter>& sent_;
  prometheus::Family<prometheus::Histogram>& seconds_;
  const bool only_known_methods_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<Method>> methods_ ABSL_GUARDED_BY(mu_);
};

// A server's, recorded by a server interceptor.
class GrpcServerMetrics : public GrpcMethodMetrics {
 public:
  explicit GrpcServerMetrics(prometheus::Registry& registry)
      : GrpcMethodMetrics(registry, "server") {}

  // For grpc::ServerBuilder::experimental().SetInterceptorCreators.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> InterceptorFactory();
};

// A client's, recorded by the caller: the latency each dependency shows from this process,
// its own queueing and hand-offs included. Unary calls only.
class GrpcClientMetrics : public GrpcMethodMetrics {
 public:
  explicit GrpcClientMetrics(prometheus::Registry& registry)
      : GrpcMethodMetrics(registry, "client") {}

  // A unary call started now; Done records its end. Copyable, cheap.
  class Call {
   public:
    void Done(grpc::StatusCode code) const;

   private:
    friend class GrpcClientMetrics;
    Method* method_ = nullptr;
    std::chrono::steady_clock::time_point start_;
  };
  Call Start(Method* method);
};

}  // namespace policy::metrics

#endif  // POLICY_COMMON_METRICS_GRPC_METRICS_H_
