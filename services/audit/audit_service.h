#ifndef POLICY_SERVICES_AUDIT_AUDIT_SERVICE_H_
#define POLICY_SERVICES_AUDIT_AUDIT_SERVICE_H_

#include <atomic>

#include "absl/time/time.h"
#include "common/server/blocking_pool.h"
#include "policy/audit/v1/audit.grpc.pb.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"
#include "services/audit/append_batcher.h"
#include "services/audit/ledger.h"

namespace policy::audit {

// policy.audit.v1.AuditService over gRPC: translation only. Appends go to the batcher (the
// reply is sent once the batch committed); reads run on the blocking pool, whole-ledger walks
// (VerifyLedger, GetComplianceSummary) on a pool of their own, each stopped when its caller
// gives up; each export stream
// has a thread of its own (at most kMaxExports at once, RESOURCE_EXHAUSTED beyond) and ends
// ABORTED, naming max_export_write_time and the index to resume from, when its reader takes
// no chunk for `max_export_write_time`.
class AuditService final : public v1::AuditService::CallbackService {
 public:
  static constexpr int kMaxExports = 4;

  AuditService(AuditLedger* ledger, AppendBatcher* batcher, server::BlockingPool* pool,
               server::BlockingPool* verify_pool, prometheus::Registry* registry,
               absl::Duration max_export_write_time);

  grpc::ServerUnaryReactor* Append(grpc::CallbackServerContext* context,
                                   const v1::AppendRequest* request,
                                   v1::AppendResponse* response) override;
  grpc::ServerUnaryReactor* QueryEntries(grpc::CallbackServerContext* context,
                                         const v1::QueryEntriesRequest* request,
                                         v1::QueryEntriesResponse* response) override;
  grpc::ServerUnaryReactor* GetCheckpoint(grpc::CallbackServerContext* context,
                                          const v1::GetCheckpointRequest* request,
                                          v1::GetCheckpointResponse* response) override;
  grpc::ServerUnaryReactor* GetEntry(grpc::CallbackServerContext* context,
                                     const v1::GetEntryRequest* request,
                                     v1::GetEntryResponse* response) override;
  grpc::ServerUnaryReactor* GetInclusionProof(grpc::CallbackServerContext* context,
                                              const v1::GetInclusionProofRequest* request,
                                              v1::GetInclusionProofResponse* response) override;
  grpc::ServerUnaryReactor* GetConsistencyProof(grpc::CallbackServerContext* context,
                                                const v1::GetConsistencyProofRequest* request,
                                                v1::GetConsistencyProofResponse* response) override;
  grpc::ServerUnaryReactor* VerifyLedger(grpc::CallbackServerContext* context,
                                         const v1::VerifyLedgerRequest* request,
                                         v1::VerifyLedgerResponse* response) override;
  grpc::ServerUnaryReactor* GetComplianceSummary(
      grpc::CallbackServerContext* context, const v1::GetComplianceSummaryRequest* request,
      v1::GetComplianceSummaryResponse* response) override;
  grpc::ServerWriteReactor<v1::ExportEntriesResponse>* ExportEntries(
      grpc::CallbackServerContext* context, const v1::ExportEntriesRequest* request) override;
  grpc::ServerUnaryReactor* ForgetSubject(grpc::CallbackServerContext* context,
                                          const v1::ForgetSubjectRequest* request,
                                          v1::ForgetSubjectResponse* response) override;
  grpc::ServerUnaryReactor* ExportSubject(grpc::CallbackServerContext* context,
                                          const v1::ExportSubjectRequest* request,
                                          v1::ExportSubjectResponse* response) override;
  grpc::ServerUnaryReactor* ListCheckpoints(grpc::CallbackServerContext* context,
                                            const v1::ListCheckpointsRequest* request,
                                            v1::ListCheckpointsResponse* response) override;
  grpc::ServerUnaryReactor* ListLedgers(grpc::CallbackServerContext* context,
                                        const v1::ListLedgersRequest* request,
                                        v1::ListLedgersResponse* response) override;

 private:
  class ExportReactor;

  AuditLedger* const ledger_;
  AppendBatcher* const batcher_;
  server::BlockingPool* const pool_;
  server::BlockingPool* const verify_pool_;
  const absl::Duration max_export_write_time_;
  prometheus::Counter& appended_;
  prometheus::Counter& duplicates_;
  std::atomic<int> exports_{0};
};

}  // namespace policy::audit

#endif  // POLICY_SERVICES_AUDIT_AUDIT_SERVICE_H_
