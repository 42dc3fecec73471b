#ifndef POLICY_SERVICES_KEYS_AUDIT_OUTBOX_RELAY_H_
#define POLICY_SERVICES_KEYS_AUDIT_OUTBOX_RELAY_H_

#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"
#include "services/keys/key_events.h"
#include "services/keys/key_store.h"

namespace policy::keys {

struct AuditOutboxRelayOptions {
  // Events per drain; the Postgres store keeps one transaction (one pooled connection) open
  // for a drain, up to the destination's timeout per event.
  int batch = 50;
  // How often an idle relay looks for new events (and for the outbox again when another
  // replica's relay held it): while the destination answers, the usual delay between a change
  // and its ledger entry.
  absl::Duration poll_interval = absl::Milliseconds(200);
  // After an event to retry or a store error, the relay waits min_backoff, doubling up to
  // max_backoff while the failures last.
  absl::Duration min_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(5);
};

// Moves key events from a store's outbox (key_store.h) to a destination, in sequence order,
// from a thread of its own, so that every change a store committed reaches the audit ledger
// however often the audit service or this process went away meanwhile:
// - an event the destination took is deleted from the outbox;
// - one to retry stays, and the relay tries it again after a backoff (nothing behind it
//   overtakes it);
// - one the destination refused for good stays in the outbox marked failed, is logged, and is
//   counted; it is not tried again.
// Any number of relays may run on one store (one per replica): the store lets one drain at a
// time. An event may be delivered twice (a crash between delivery and its deletion); the
// destination records it once.
class AuditOutboxRelay {
 public:
  // `registry` may be null; otherwise it gets policy_keys_audit_events_pending and
  // policy_keys_audit_outbox_failed (the outbox's counts, refreshed after every drain), and
  // policy_keys_audit_events_total{result="recorded|duplicate|refused"}.
  AuditOutboxRelay(KeyStore* store, KeyEventDestination* destination,
                   AuditOutboxRelayOptions options, prometheus::Registry* registry);
  ~AuditOutboxRelay();  // Stop().

  // Starts the relay's thread.
  void Start();
  // Stops the thread, cancelling the destination's delivery in progress (and every later
  // one); undelivered events stay in the outbox.
  void Stop();

  // One drain of up to `batch` events, from the calling thread.
  absl::StatusOr<OutboxDrain> DrainOnce();
  // Drains from the calling thread until the outbox holds no event to deliver; false when
  // `timeout` passed first or the relay was stopped.
  bool Flush(absl::Duration timeout);

 private:
  void Run();
  Delivery Handle(const OutboxEvent& entry);
  // Waits `d` or until stopped; false when stopped.
  bool Wait(absl::Duration d);

  KeyStore* const store_;
  KeyEventDestination* const destination_;
  const AuditOutboxRelayOptions options_;
  prometheus::Gauge* pending_ = nullptr;
  prometheus::Gauge* failed_ = nullptr;
  prometheus::Family<prometheus::Counter>* results_ = nullptr;

  absl::Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Whether the last delivery (or drain) failed; the first failure of an outage is logged.
  bool delivery_failing_ ABSL_GUARDED_BY(mu_) = false;
  bool store_failing_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace policy::keys

#endif  // POLICY_SERVICES_KEYS_AUDIT_OUTBOX_RELAY_H_
