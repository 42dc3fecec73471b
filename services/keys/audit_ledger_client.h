#ifndef POLICY_SERVICES_KEYS_AUDIT_LEDGER_CLIENT_H_
#define POLICY_SERVICES_KEYS_AUDIT_LEDGER_CLIENT_H_

#include <memory>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "services/keys/key_events.h"

namespace policy::keys {

// Delivers key events to the audit service's Append RPC, as AuditEntryOf in
// audit_entry_convert.h says: the request id derives from the event, so an event delivered
// twice is recorded once (the second time kDuplicate). INVALID_ARGUMENT (a malformed entry)
// and FAILED_PRECONDITION (the request id records something else) are kRefused; every other
// failure is kRetry. Thread-safe.
class AuditLedgerClient : public KeyEventDestination {
 public:
  AuditLedgerClient(std::shared_ptr<grpc::Channel> channel,
                    absl::Duration call_timeout = absl::Seconds(5));
  ~AuditLedgerClient() override;

  Delivery Deliver(const KeyEvent& event) override;
  void Cancel() override;

 private:
  struct Stub;  // The generated stub; the wire types stay in the .cc.
  const std::unique_ptr<Stub> stub_;
  const absl::Duration call_timeout_;

  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* in_flight_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace policy::keys

#endif  // POLICY_SERVICES_KEYS_AUDIT_LEDGER_CLIENT_H_
