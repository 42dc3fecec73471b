#ifndef POLICY_COMMON_SERVER_BACKGROUND_CHECK_H_
#define POLICY_COMMON_SERVER_BACKGROUND_CHECK_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <limits>
#include <thread>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "common/clock/clock.h"

namespace policy::server {

// Runs a dependency check (say, a database ping) on a thread of its own, one call after
// another with `interval` between them, and answers readiness from what they found without
// ever waiting for one: Ready() holds while the last call succeeded and began at most `bound`
// ago, so a call that hangs turns it false `bound` after the last successful one began.
// Thread-safe.
class BackgroundCheck {
 public:
  BackgroundCheck(std::function<absl::Status()> check, Clock* clock, absl::Duration interval,
                  absl::Duration bound);
  // Stop().
  ~BackgroundCheck();
  BackgroundCheck(const BackgroundCheck&) = delete;
  BackgroundCheck& operator=(const BackgroundCheck&) = delete;

  // Runs one check now (so that Ready() answers from the start), then starts the thread.
  void Start();
  bool Ready() const;
  // Ends the thread, after the call in progress returns (make it return first: close what it
  // waits on). Idempotent.
  void Stop();

 private:
  void RunOnce();

  const std::function<absl::Status()> check_;
  Clock* const clock_;
  const absl::Duration interval_;
  const absl::Duration bound_;
  std::atomic<bool> last_ok_{false};
  std::atomic<int64_t> ok_at_us_{std::numeric_limits<int64_t>::min()};
  absl::Notification stop_;
  std::thread thread_;
};

}  // namespace policy::server

#endif  // POLICY_COMMON_SERVER_BACKGROUND_CHECK_H_
