#include "common/server/diagnostics_service.h"

#include "common/server/blocking_pool.h"
#include "policy/diag/v1/diagnostics.grpc.pb.h"

namespace policy::server {
namespace {

class DiagnosticsService : public diag::v1::Diagnostics::CallbackService {
  grpc::ServerUnaryReactor* Ping(grpc::CallbackServerContext* context, const diag::v1::PingRequest*,
                                 diag::v1::PingResponse*) override {
    return FinishNow(context, grpc::Status::OK);
  }
};

}  // namespace

std::unique_ptr<grpc::Service> NewDiagnosticsService() {
  return std::make_unique<DiagnosticsService>();
}

}  // namespace policy::server
