#ifndef POLICY_SERVICES_PII_PII_SERVICE_H_
#define POLICY_SERVICES_PII_PII_SERVICE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "common/server/blocking_pool.h"
#include "policy/pii/v1/pii.grpc.pb.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"
#include "services/pii/pii_engine.h"
#include "services/pii/scan_budget.h"

namespace policy::pii {

// policy.pii.v1.PiiService over gRPC: translation only. Every RPC is CPU work on memory;
// nothing waits on another service. Scan and Redact are checked on the callback thread that
// received them, then scanned on a pool of PiiLimits::scan_threads, so that gRPC's threads
// stay free for health checks and refusals; the other RPCs run on the callback thread. The
// text being scanned at once is bounded by PiiLimits::max_scan_bytes_in_flight (ScanBudget),
// RESOURCE_EXHAUSTED beyond. A thread of its own cancels the document streams that hold their
// place longer than PiiLimits::max_document_time.
class PiiService final : public v1::PiiService::CallbackService {
 public:
  PiiService(const PiiEngine* engine, prometheus::Registry* registry);
  ~PiiService() override;

  grpc::ServerUnaryReactor* Scan(grpc::CallbackServerContext* context,
                                 const v1::ScanRequest* request,
                                 v1::ScanResponse* response) override;
  grpc::ServerUnaryReactor* Redact(grpc::CallbackServerContext* context,
                                   const v1::RedactRequest* request,
                                   v1::RedactResponse* response) override;
  grpc::ServerReadReactor<v1::RedactDocumentRequest>* RedactDocument(
      grpc::CallbackServerContext* context, v1::RedactDocumentResponse* response) override;
  grpc::ServerUnaryReactor* Restore(grpc::CallbackServerContext* context,
                                    const v1::RestoreRequest* request,
                                    v1::RestoreResponse* response) override;
  grpc::ServerUnaryReactor* ListEntityTypes(grpc::CallbackServerContext* context,
                                            const v1::ListEntityTypesRequest* request,
                                            v1::ListEntityTypesResponse* response) override;

 private:
  class DocumentReactor;
  struct DocumentWatch;

  // Watches an admitted document stream until Unwatch; cancels it past its deadline.
  void Watch(const std::shared_ptr<DocumentWatch>& watch);
  void Unwatch(const std::shared_ptr<DocumentWatch>& watch);
  void CancelLateDocuments();

  // Fills `response` from a whole document: RedactDocument once its stream has ended.
  grpc::Status RedactDocumentText(absl::string_view document,
                                  const v1::RedactDocumentOptions& options,
                                  v1::RedactDocumentResponse* response);

  // Runs a Scan's or Redact's `work` over `bytes` of text: on gRPC's thread when they are at
  // most kInlineScanBytes (microseconds of work, less than a hand-off to another thread costs),
  // otherwise on the scan threads, so that gRPC's threads keep answering health checks.
  grpc::ServerUnaryReactor* RunScan(grpc::CallbackServerContext* context, size_t bytes,
                                    std::function<grpc::Status()> work);

  // Counts a request's findings per type and its scanned bytes.
  void Record(absl::Span<const std::vector<Finding>> found, size_t bytes, bool blocked);

  const PiiEngine* const engine_;
  ScanBudget budget_;
  // Scan's and Redact's scans; destroyed (its queue run) before the budget.
  std::unique_ptr<server::BlockingPool> scan_pool_;
  std::atomic<size_t> documents_{0};  // RedactDocument streams held now.
  absl::Mutex watch_mu_;
  absl::flat_hash_set<std::shared_ptr<DocumentWatch>> watches_ ABSL_GUARDED_BY(watch_mu_);
  bool stopping_ ABSL_GUARDED_BY(watch_mu_) = false;
  std::thread canceller_;  // Started last, joined first.
  prometheus::Counter& scanned_bytes_;
  prometheus::Counter& blocked_;
  // Per entity type; read-only after construction, so the hot path takes no registry lock.
  absl::flat_hash_map<std::string, prometheus::Counter*> findings_;
};

}  // namespace policy::pii

#endif  // POLICY_SERVICES_PII_PII_SERVICE_H_
