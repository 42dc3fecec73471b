#ifndef POLICY_COMMON_TESTING_EVENTUALLY_H_
#define POLICY_COMMON_TESTING_EVENTUALLY_H_

#include <functional>

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

}  // namespace policy::testing

#endif  // POLICY_COMMON_TESTING_EVENTUALLY_H_
