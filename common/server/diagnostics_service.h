#ifndef POLICY_COMMON_SERVER_DIAGNOSTICS_SERVICE_H_
#define POLICY_COMMON_SERVER_DIAGNOSTICS_SERVICE_H_

#include <memory>

#include "grpcpp/grpcpp.h"
#include "grpcpp/impl/service_type.h"

namespace policy::server {

inline constexpr char kDiagnosticsServiceName[] = "policy.diag.v1.Diagnostics";

// policy.diag.v1.Diagnostics: Ping answers inline with nothing, the baseline that load tests
// compare every RPC against.
std::unique_ptr<grpc::Service> NewDiagnosticsService();

}  // namespace policy::server

#endif  // POLICY_COMMON_SERVER_DIAGNOSTICS_SERVICE_H_
