#ifndef POLICY_SERVICES_EDGE_EXT_AUTHZ_SERVICE_H_
#define POLICY_SERVICES_EDGE_EXT_AUTHZ_SERVICE_H_

#include <string>

#include "absl/time/time.h"
#include "common/server/arena_allocator.h"
#include "envoy/service/auth/v3/external_auth.grpc.pb.h"
#include "services/edge/decision_flow.h"
#include "services/edge/downstream.h"
#include "services/edge/edge_metrics.h"
#include "services/edge/trusted_proxies.h"

namespace policy::edge {

// envoy.service.auth.v3.Authorization over gRPC: each check is one Decide (see
// ext_authz_convert.h for what is read and answered). The API key is read first and verified
// with keys before the body is parsed: no key is a 401 at once, a key keys does not verify a
// 401 after that one call, and a verified key goes on to the decision flow with keys' answer
// (see StartDecide), so a check asks keys once. A verified key whose denial budget is spent
// (FlowOptions::denial_budget) is refused with 429 before the body is read either. Envoy cannot
// replace the request's body with a redacted one, so `options.redaction` should block what Decide
// would redact. The request's source.address is believed from `trusted_proxies` only (Envoy must be
// one of them); other callers are judged by the address they call from
// (TrustedProxies::CallerAddress).
class ExtAuthzService final : public envoy::service::auth::v3::Authorization::CallbackService {
 public:
  ExtAuthzService(Downstream* downstream, FlowOptions options, TrustedProxies trusted_proxies,
                  absl::Duration max_decision_time, EdgeMetrics* metrics);

  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* context,
                                  const envoy::service::auth::v3::CheckRequest* request,
                                  envoy::service::auth::v3::CheckResponse* response) override;

 private:
  // With the key verified (`verified`, keys' answer, on `response`'s arena): reads the body and
  // the caller's address, then decides.
  void Decide(grpc::ServerUnaryReactor* reactor, const std::string& peer,
              const envoy::service::auth::v3::CheckRequest& request,
              const keys::v1::VerifyKeyResponse& verified, absl::Time deadline,
              v1::DecideResponse* decision, envoy::service::auth::v3::CheckResponse* response);
  // Counts the check in the metrics and answers it.
  void Answer(grpc::ServerUnaryReactor* reactor, const grpc::Status& status,
              const v1::DecideResponse& decision,
              envoy::service::auth::v3::CheckResponse* response);

  Downstream* const downstream_;
  const FlowOptions options_;
  const TrustedProxies trusted_proxies_;
  const absl::Duration max_decision_time_;
  EdgeMetrics* const metrics_;
  // A check's request, response, its Decide and every downstream message on one arena.
  server::ArenaMessageAllocator<envoy::service::auth::v3::CheckRequest,
                                envoy::service::auth::v3::CheckResponse>
      allocator_;
};

}  // namespace policy::edge

#endif  // POLICY_SERVICES_EDGE_EXT_AUTHZ_SERVICE_H_
