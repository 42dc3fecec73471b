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

}  // namespace policy

#endif  // POLICY_COMMON_CLOCK_CLOCK_H_
