#ifndef POLICY_COMMON_CLOCK_SYNC_WATERMARK_H_
#define POLICY_COMMON_CLOCK_SYNC_WATERMARK_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>

#include "absl/time/time.h"

namespace policy {

// How current an in-memory copy of the database is: the time up to which the copy is known
// to hold every committed change. The feed that keeps the copy current advances it; readers
// fail closed once it lags `now` by more than their staleness bound. Lock-free, thread-safe.
//
// Proofs come from one feed, in order, stamped by the same clock readers use. A proof later
// than `now` by more than an instant means that clock went back since (NTP stepping it, a VM
// restored): it proves nothing about the present, so the lag is how far apart the two are,
// and the copy counts as stale until the next proof replaces it. Counting that lag as zero
// would let a replica serve from memory, unproven, for as long as the step. (A reader that
// read `now` just before the feed's latest proof sees a lag of that instant.)
class SyncWatermark {
 public:
  // Every change committed before `as_of` is in the copy; absl::InfiniteFuture() means the
  // copy is always current (an in-process source), for good. A later proof replaces an
  // earlier one, whichever time it carries.
  void Advance(absl::Time as_of) {
    const int64_t ns = as_of == absl::InfiniteFuture() ? kAlways : absl::ToUnixNanos(as_of);
    int64_t current = ns_.load(std::memory_order_relaxed);
    while (current != kAlways &&
           !ns_.compare_exchange_weak(current, ns, std::memory_order_acq_rel)) {
    }
  }

  // How far the last proof is from `now` (behind it, or ahead after the clock went back):
  // zero when always current, InfiniteDuration() before the first Advance.
  absl::Duration Lag(absl::Time now) const {
    const int64_t ns = ns_.load(std::memory_order_acquire);
    if (ns == kNever) return absl::InfiniteDuration();
    if (ns == kAlways) return absl::ZeroDuration();
    return absl::AbsDuration(now - absl::FromUnixNanos(ns));
  }

  // Lag(now) <= bound.
  bool Within(absl::Time now, absl::Duration bound) const { return Lag(now) <= bound; }

 private:
  static constexpr int64_t kNever = std::numeric_limits<int64_t>::min();
  static constexpr int64_t kAlways = std::numeric_limits<int64_t>::max();
  std::atomic<int64_t> ns_{kNever};  // Unix nanoseconds.
};

}  // namespace policy

#endif  // POLICY_COMMON_CLOCK_SYNC_WATERMARK_H_
