#ifndef POLICY_SERVICES_KEYS_KEYS_SERVICE_H_
#define POLICY_SERVICES_KEYS_KEYS_SERVICE_H_

#include "absl/container/flat_hash_map.h"
#include "common/clock/clock.h"
#include "common/server/blocking_pool.h"
#include "policy/keys/v1/keys.grpc.pb.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"
#include "services/keys/key_lifecycle.h"
#include "services/keys/key_verifier.h"

namespace policy::keys {

struct KeysServiceOptions {
  // Whether callers see why a verification failed (google.rpc.ErrorInfo reason). Enable only
  // where the service is reachable by trusted callers alone (the edge), never publicly.
  bool reveal_denial_reasons = false;
};

// policy.keys.v1.KeyService over gRPC: translation only. VerifyKey answers inline from the
// verifier's memory; everything that touches the store runs on the blocking pool.
class KeysService final : public v1::KeyService::CallbackService {
 public:
  KeysService(KeyLifecycle* lifecycle, const KeyVerifier* verifier, server::BlockingPool* pool,
              Clock* clock, prometheus::Registry* registry, KeysServiceOptions options);

  grpc::ServerUnaryReactor* CreateKey(grpc::CallbackServerContext* context,
                                      const v1::CreateKeyRequest* request,
                                      v1::CreateKeyResponse* response) override;
  grpc::ServerUnaryReactor* VerifyKey(grpc::CallbackServerContext* context,
                                      const v1::VerifyKeyRequest* request,
                                      v1::VerifyKeyResponse* response) override;
  grpc::ServerUnaryReactor* GetKey(grpc::CallbackServerContext* context,
                                   const v1::GetKeyRequest* request,
                                   v1::GetKeyResponse* response) override;
  grpc::ServerUnaryReactor* RotateKey(grpc::CallbackServerContext* context,
                                      const v1::RotateKeyRequest* request,
                                      v1::RotateKeyResponse* response) override;
  grpc::ServerUnaryReactor* RevokeKey(grpc::CallbackServerContext* context,
                                      const v1::RevokeKeyRequest* request,
                                      v1::RevokeKeyResponse* response) override;
  grpc::ServerUnaryReactor* RevokePrincipalKeys(grpc::CallbackServerContext* context,
                                                const v1::RevokePrincipalKeysRequest* request,
                                                v1::RevokePrincipalKeysResponse* response) override;
  grpc::ServerUnaryReactor* ListKeys(grpc::CallbackServerContext* context,
                                     const v1::ListKeysRequest* request,
                                     v1::ListKeysResponse* response) override;
  grpc::ServerUnaryReactor* GetRotationReport(grpc::CallbackServerContext* context,
                                              const v1::GetRotationReportRequest* request,
                                              v1::GetRotationReportResponse* response) override;
  grpc::ServerUnaryReactor* GetInventoryReport(grpc::CallbackServerContext* context,
                                               const v1::GetInventoryReportRequest* request,
                                               v1::GetInventoryReportResponse* response) override;

 private:
  KeyLifecycle* const lifecycle_;
  const KeyVerifier* const verifier_;
  server::BlockingPool* const pool_;
  Clock* const clock_;
  const KeysServiceOptions options_;
  prometheus::Family<prometheus::Counter>& verifications_;
  prometheus::Counter& verified_;
  absl::flat_hash_map<std::string, prometheus::Counter*> denials_;  // Read-only after start.
  prometheus::Counter* other_failures_;
};

}  // namespace policy::keys

#endif  // POLICY_SERVICES_KEYS_KEYS_SERVICE_H_
