#ifndef POLICY_COMMON_TESTING_EVENTUALLY_H_
#define POLICY_COMMON_TESTING_EVENTUALLY_H_

#include <functional>
#include <memory>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace policy::testing {

// For tests of background threads: polls `done` every 5 ms until it holds (true) or `limit`
// passes (false). Never a fixed sleep: a passing test returns as soon as it can.
inline bool Eventually(const std::function<bool()>& done, absl::Duration limit = absl::Seconds(5)) {
  const absl::Time deadline = absl::Now() + limit;
  while (absl::Now() < deadline) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return done();
}

// For tests of what must never block: runs `f` on its own thread and says whether it returned
// within `limit` (if not, the thread is left behind, and the test fails rather than hangs).
inline bool ReturnsPromptly(std::function<void()> f, absl::Duration limit = absl::Seconds(5)) {
  auto done = std::make_shared<absl::Notification>();
  std::thread([f = std::move(f), done] {
    f();
    done->Notify();
  }).detach();
  return done->WaitForNotificationWithTimeout(limit);
}

}  // namespace policy::testing

#endif  // POLICY_COMMON_TESTING_EVENTUALLY_H_
