#ifndef POLICY_SERVICES_REGION_REGISTRY_SYNC_H_
#define POLICY_SERVICES_REGION_REGISTRY_SYNC_H_

#include <atomic>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock/clock.h"
#include "services/region/endpoint_registry.h"
#include "services/region/endpoint_store.h"

// Keeps a replica's registry in step with the store: reloads the endpoints when the store's
// version moved, publishes this replica's breaker states that changed, and adopts the states
// other replicas published (CircuitBreaker::Adopt). Run every sync interval, a breaker opened
// on one replica is open on every replica within two intervals (the opener's next sync
// publishes it, the others' next sync adopts it), and so is a close: a breaker closed on one
// replica (its probe succeeded) closes on every replica where it last opened before that close,
// freeing their probe slots.
//
// Published states live kBreakerRetention: each replica removes older ones (every replica's,
// so those of replicas gone for good too) at most once every kBreakerCleanupInterval, and a
// replica's first round adopts none older. An open period longer than that (a cool-down over
// a day) is therefore shared only during its first day.
//
// Clocks: replicas' clocks need not agree. Every published time is on the store's clock
// (EndpointStore::Now(), the database's): each round reads it once and estimates this
// replica's offset from it (the store's time minus the midpoint of the replica's times before
// and after the read; the previous round's estimate is kept while it still lies between the
// store's time minus those two, so that round-trip jitter does not move it). The round publishes
// its breaker times plus the offset and adopts peers' times minus it, so a breaker compares opens
// and closes on its own clock. The fetch window, publication times and the retention's cutoff are
// store times read in the round. The offset's error is at most the read's round trip (half of it
// when estimated anew). What is assumed: the store's clock does not step back by more than
// kFetchMargin between rounds, and neither the store's clock nor the replica's steps by a sizeable
// part of the cool-down while a breaker is open (the next round measures the offset anew, but the
// breaker times a replica already holds were taken before the step and are off by it).
namespace policy::region {

class RegistrySync {
 public:
  static constexpr absl::Duration kBreakerRetention = absl::Hours(24);
  static constexpr absl::Duration kBreakerCleanupInterval = absl::Hours(1);
  // Each round fetches the states published since the previous round's store time less this:
  // a state published by a round that read the store's clock before that time but committed
  // after the previous fetch is read all the same.
  static constexpr absl::Duration kFetchMargin = absl::Seconds(5);

  RegistrySync(EndpointStore* store, EndpointRegistry* registry, std::string replica, Clock* clock);

  // One round: reload, publish, adopt. Thread-safe: rounds and reloads are serialised among
  // themselves; the readers below never wait for one (a round that hangs on the database
  // leaves them answering from the last round's outcome).
  absl::Status SyncOnce();
  // Reloads the endpoints now, whatever the version (after this replica changed them).
  absl::Status Reload();

  // Whether the last finished round succeeded; false before the first. A round in progress
  // does not change it. Never waits for a round.
  bool healthy() const { return healthy_.load(std::memory_order_acquire); }
  // Readiness: the last finished round succeeded and the last successful one began at most
  // `max_staleness` ago. A round that hangs therefore turns it false once its predecessor's
  // start is `max_staleness` old. Never waits for a round.
  bool Ready(absl::Duration max_staleness) const;
  // Whether the endpoints were loaded at least once (never waits for a round).
  bool loaded() const { return loaded_.load(std::memory_order_acquire); }
  // When the last successful round (or reload) began: the registry reflects the store as of
  // then. InfinitePast before the first. Never waits for a round.
  absl::Time synced_at() const {
    return absl::FromUnixMicros(synced_at_us_.load(std::memory_order_acquire));
  }
  // The store's clock minus this replica's, as the latest round that read the store's clock
  // estimated it; zero before the first. Never waits for a round.
  absl::Duration clock_offset() const {
    return absl::Nanoseconds(clock_offset_ns_.load(std::memory_order_acquire));
  }

 private:
  absl::Status ReloadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The round's store work: reload, publish, adopt.
  absl::Status SyncLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkSynced(absl::Time started);
  // Updates offset_ from the store's time `store_now`, read between this replica's times
  // `before` and `after`.
  void MeasureOffset(absl::Time before, absl::Time store_now, absl::Time after)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  EndpointStore* const store_;
  EndpointRegistry* const registry_;
  const std::string replica_;
  Clock* const clock_;
  // Serialises rounds and reloads, and is held across their store round trips: nothing a
  // reader needs is guarded by it.
  absl::Mutex mu_;
  int64_t version_ ABSL_GUARDED_BY(mu_) = -1;
  // What this replica last published per endpoint: (state, opened_at, closed_at), on its own
  // clock.
  absl::flat_hash_map<std::string, std::tuple<BreakerState, absl::Time, absl::Time>> published_
      ABSL_GUARDED_BY(mu_);
  // The store's clock minus this replica's (see the class comment); none before the first
  // measurement.
  std::optional<absl::Duration> offset_ ABSL_GUARDED_BY(mu_);
  // Store times.
  absl::Time last_fetch_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time last_cleanup_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::atomic<bool> healthy_{false};
  std::atomic<bool> loaded_{false};
  std::atomic<int64_t> synced_at_us_{std::numeric_limits<int64_t>::min()};
  std::atomic<int64_t> clock_offset_ns_{0};
};

}  // namespace policy::region

#endif  // POLICY_SERVICES_REGION_REGISTRY_SYNC_H_
