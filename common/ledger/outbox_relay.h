#ifndef POLICY_COMMON_LEDGER_OUTBOX_RELAY_H_
#define POLICY_COMMON_LEDGER_OUTBOX_RELAY_H_

#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/ledger/outbox.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace policy::ledger {

struct OutboxRelayOptions {
  // Entries per drain; the Postgres outbox keeps one transaction (one pooled connection)
  // open for a drain, up to the destination's timeout per entry.
  int batch = 50;
  // How often an idle relay looks for new entries (and for the outbox again when another
  // replica's relay held it): while the destination answers, the usual delay between a change
  // and its ledger entry.
  absl::Duration poll_interval = absl::Milliseconds(200);
  // After an entry to retry or an outbox error, the relay waits min_backoff, doubling up to
  // max_backoff while the failures last.
  absl::Duration min_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(5);
};

// Moves records from an outbox to a destination, in sequence order, from a thread of its
// own, so that every change a store committed reaches the audit ledger however often the
// audit service or this process went away meanwhile:
// - a record the destination took is deleted from the outbox;
// - one to retry stays, and the relay tries it again after a backoff (nothing behind it
//   overtakes it);
// - one the destination refused for good stays in the outbox marked failed, is logged, and is
//   counted; it is not tried again.
// Any number of relays may run on one outbox (one per replica): the outbox lets one drain at
// a time. A record may be delivered twice (a crash between delivery and its deletion); the
// destination records it once.
class OutboxRelay {
 public:
  // `service` names the metrics: with a `registry`, policy_<service>_audit_events_pending and
  // policy_<service>_audit_outbox_failed (the outbox's counts, refreshed after every drain),
  // and policy_<service>_audit_events_total{result="recorded|duplicate|refused"}.
  OutboxRelay(Outbox* outbox, LedgerDestination* destination, OutboxRelayOptions options,
              absl::string_view service, prometheus::Registry* registry);
  ~OutboxRelay();  // Stop().

  // Starts the relay's thread.
  void Start();
  // Stops the thread, cancelling the destination's delivery in progress (and every later
  // one); undelivered records stay in the outbox.
  void Stop();

  // One drain of up to `batch` records, from the calling thread.
  absl::StatusOr<OutboxDrain> DrainOnce();
  // Drains from the calling thread until the outbox holds no record to deliver; false when
  // `timeout` passed first or the relay was stopped.
  bool Flush(absl::Duration timeout);

 private:
  void Run();
  Delivery Handle(const OutboxEntry& entry);
  // Waits `d` or until stopped; false when stopped.
  bool Wait(absl::Duration d);

  Outbox* const outbox_;
  LedgerDestination* const destination_;
  const OutboxRelayOptions options_;
  const std::string service_;
  prometheus::Gauge* pending_ = nullptr;
  prometheus::Gauge* failed_ = nullptr;
  prometheus::Family<prometheus::Counter>* results_ = nullptr;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Whether the last delivery (or drain) failed; the first failure of an outage is logged.
  bool delivery_failing_ ABSL_GUARDED_BY(mu_) = false;
  bool outbox_failing_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace policy::ledger

#endif  // POLICY_COMMON_LEDGER_OUTBOX_RELAY_H_
