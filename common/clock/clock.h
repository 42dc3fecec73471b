#ifndef POLICY_COMMON_CLOCK_CLOCK_H_
#define POLICY_COMMON_CLOCK_CLOCK_H_

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace policy {

// The source of "now" for everything that reasons about time, so tests never sleep.
// Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;

  // The process-wide wall clock.
  static Clock* Real();
};

// A clock that moves only when told to.
class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'800'000'000)) : now_(start) {}

  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }
  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }
  void Set(absl::Time t) {
    absl::MutexLock lock(&mu_);
    now_ = t;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_;
};

// Another clock off by a skew that can be changed: a host whose clock disagrees with `base`'s.
class SkewedClock : public Clock {
 public:
  // `base` must outlive this clock.
  explicit SkewedClock(const Clock* base, absl::Duration skew = absl::ZeroDuration())
      : base_(base), skew_(skew) {}

  absl::Time Now() const override { return base_->Now() + skew(); }
  absl::Duration skew() const {
    absl::MutexLock lock(&mu_);
    return skew_;
  }
  void set_skew(absl::Duration skew) {
    absl::MutexLock lock(&mu_);
    skew_ = skew;
  }

 private:
  const Clock* const base_;
  mutable absl::Mutex mu_;
  absl::Duration skew_ ABSL_GUARDED_BY(mu_);
};

}  // namespace policy

#endif  // POLICY_COMMON_CLOCK_CLOCK_H_
