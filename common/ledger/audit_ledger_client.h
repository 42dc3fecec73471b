#ifndef POLICY_COMMON_LEDGER_AUDIT_LEDGER_CLIENT_H_
#define POLICY_COMMON_LEDGER_AUDIT_LEDGER_CLIENT_H_

#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/ledger/outbox.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/security/credentials.h"

namespace policy::ledger {

// Delivers records to the audit service's Append RPC, each under its own request id, so that
// a record delivered twice is recorded once (the second time kDuplicate, also after a person
// it names was forgotten: audit.proto, Append). INVALID_ARGUMENT (a
// malformed record, an unknown action) and FAILED_PRECONDITION (the request id records
// something else) are kRefused; every other failure is kRetry. The time the change occurred
// goes with it (EntryInput.occurred_at): a person forgotten before a record arrives but after
// its change is not named by it. Thread-safe.
class AuditLedgerClient : public LedgerDestination {
 public:
  AuditLedgerClient(std::shared_ptr<grpc::Channel> channel,
                    absl::Duration call_timeout = absl::Seconds(5));
  ~AuditLedgerClient() override;

  Delivery Deliver(const LedgerRecord& record, absl::Time occurred_at) override;
  void Cancel() override;

 private:
  struct Stub;  // The generated stub; the wire types stay in the .cc.
  const std::unique_ptr<Stub> stub_;
  const absl::Duration call_timeout_;

  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* in_flight_ ABSL_GUARDED_BY(mu_) = nullptr;
};

// Where a service's records go: the audit service at `audit_target` ("host:port", reached
// with `credentials`), or the log (LogLedgerDestination) when it is empty. Every replica
// sharing a database needs the same target.
std::unique_ptr<LedgerDestination> OpenLedgerDestination(
    const std::string& audit_target, std::shared_ptr<grpc::ChannelCredentials> credentials);

}  // namespace policy::ledger

#endif  // POLICY_COMMON_LEDGER_AUDIT_LEDGER_CLIENT_H_
