#ifndef POLICY_COMMON_LOG_FAILURE_LOG_H_
#define POLICY_COMMON_LOG_FAILURE_LOG_H_

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace policy {

// How a task repeated every few hundred milliseconds (a sync, a sweep) logs its failures
// without flooding the log while a dependency is down: the first failure as a warning, then
// at most one line per `every` with the latest status and how many failed since the last line,
// and the first success after failures once. Not thread-safe: one task's own.
class FailureLog {
 public:
  FailureLog(std::string failed, std::string recovered, absl::Duration every = absl::Minutes(1));

  // Records one run's outcome; whether a line was written.
  bool Observe(const absl::Status& status, absl::Time now = absl::Now());

 private:
  const std::string failed_;
  const std::string recovered_;
  const absl::Duration every_;
  bool failing_ = false;
  absl::Time last_line_ = absl::InfinitePast();
  int64_t unlogged_ = 0;  // Failures since the last line.
  int64_t total_ = 0;     // Failures since the last success.
};

// At most `lines` lines each `window` from a hot path (a failed request each, a library's
// complaint about each bad request), so that a storm is told with examples and without a
// flood. Thread-safe.
class LogBudget {
 public:
  LogBudget(int64_t lines, absl::Duration window) : lines_(lines), window_(window) {}

  // Whether a line may be written at `now`; then `*left_out` is how many were refused since
  // the last line written.
  bool Take(absl::Time now, int64_t* left_out);

 private:
  const int64_t lines_;
  const absl::Duration window_;
  absl::Mutex mu_;
  absl::Time window_start_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int64_t taken_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t refused_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace policy

#endif  // POLICY_COMMON_LOG_FAILURE_LOG_H_
