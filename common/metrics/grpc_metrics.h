#ifndef POLICY_COMMON_METRICS_GRPC_METRICS_H_
#define POLICY_COMMON_METRICS_GRPC_METRICS_H_

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/support/server_interceptor.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace policy::metrics {

// The conventional gRPC server metrics (the names of go-grpc-prometheus and
// grpc-ecosystem/java-grpc-prometheus), recorded by a server interceptor:
//   grpc_server_started_total{grpc_type,grpc_service,grpc_method}
//   grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code}
//   grpc_server_msg_received_total / grpc_server_msg_sent_total{grpc_type,grpc_service,grpc_method}
//   grpc_server_handling_seconds{grpc_type,grpc_service,grpc_method} (histogram)
// Thread-safe.
class GrpcServerMetrics {
 public:
  explicit GrpcServerMetrics(prometheus::Registry& registry);
  ~GrpcServerMetrics();

  // For grpc::ServerBuilder::experimental().SetInterceptorCreators.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> InterceptorFactory();

  struct Method;
  // The metrics of one method, created on first use. `full_method` is "/pkg.Service/Method",
  // `type` one of unary, client_stream, server_stream, bidi_stream.
  Method* ForMethod(const char* full_method, const char* type);
  void Handled(Method* method, grpc::StatusCode code, double seconds);

 private:
  prometheus::Family<prometheus::Counter>& started_;
  prometheus::Family<prometheus::Counter>& handled_;
  prometheus::Family<prometheus::Counter>& received_;
  prometheus::Family<prometheus::Counter>& sent_;
  prometheus::Family<prometheus::Histogram>& seconds_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<Method>> methods_ ABSL_GUARDED_BY(mu_);
};

}  // namespace policy::metrics

#endif  // POLICY_COMMON_METRICS_GRPC_METRICS_H_
