#ifndef POLICY_SERVICES_KEYS_AUDIT_EVENT_SINK_H_
#define POLICY_SERVICES_KEYS_AUDIT_EVENT_SINK_H_

#include <cstddef>
#include <deque>
#include <memory>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "services/keys/key_events.h"

namespace policy::keys {

struct AuditEventSinkOptions {
  size_t max_pending = 10000;  // Events waiting beyond this are dropped (and counted).
  absl::Duration call_timeout = absl::Seconds(5);
  absl::Duration min_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(5);
};

// Sends key events (as AuditEntryOf in audit_entry_convert.h says) to the audit service's
// Append RPC, in order, from a thread of its own:
// Publish only queues. An event is retried until the audit service accepts it (or refuses
// it for good: a malformed entry, or its request id already recording something else, which
// is logged). Events still queued when the process dies are lost; the ledger then lacks them.
class AuditEventSink : public KeyEventSink {
 public:
  // `registry` may be null; otherwise it gets policy_keys_audit_events_pending and
  // policy_keys_audit_events_total{result="recorded|duplicate|refused|dropped"}.
  AuditEventSink(std::shared_ptr<grpc::Channel> channel, AuditEventSinkOptions options,
                 prometheus::Registry* registry);
  // Stops after the call in flight; events still queued are logged as lost.
  ~AuditEventSink() override;

  void Publish(const KeyEvent& event) override;

  // Waits until nothing is queued or in flight; false when `timeout` passed first.
  bool Flush(absl::Duration timeout);
  size_t pending() const;

 private:
  enum class Result { kRecorded, kDuplicate, kRefused, kRetry };
  void Run();
  // The event's entry (AuditEntryOf) through the Append RPC; the wire types stay in the .cc.
  Result Send(const KeyEvent& event);

  struct Client;  // The Append stub.
  const std::unique_ptr<Client> client_;
  const AuditEventSinkOptions options_;
  prometheus::Gauge* pending_gauge_ = nullptr;
  prometheus::Family<prometheus::Counter>* results_ = nullptr;

  mutable absl::Mutex mu_;
  std::deque<KeyEvent> queue_ ABSL_GUARDED_BY(mu_);  // Front: in flight.
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* in_flight_ ABSL_GUARDED_BY(mu_) = nullptr;  // Cancelled on stop.
  bool retrying_ = false;  // The sender thread's: the last attempt is to be retried.
  std::thread sender_;
};

}  // namespace policy::keys

#endif  // POLICY_SERVICES_KEYS_AUDIT_EVENT_SINK_H_
