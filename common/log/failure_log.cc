#include "common/log/failure_log.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/log/log.h"

namespace policy {

FailureLog::FailureLog(std::string failed, std::string recovered, absl::Duration every)
    : failed_(std::move(failed)), recovered_(std::move(recovered)), every_(every) {}

bool FailureLog::Observe(const absl::Status& status, absl::Time now) {
  if (status.ok()) {
    if (!failing_) return false;
    LogInfo(recovered_, {{"failures", absl::StrCat(total_)}});
    failing_ = false;
    unlogged_ = total_ = 0;
    return true;
  }
  ++total_;
  ++unlogged_;
  if (failing_ && now - last_line_ < every_) return false;
  LogWarning(failed_, {{"status", status.ToString()}, {"failures", absl::StrCat(unlogged_)}});
  failing_ = true;
  last_line_ = now;
  unlogged_ = 0;
  return true;
}

bool LogBudget::Take(absl::Time now, int64_t* left_out) {
  absl::MutexLock lock(&mu_);
  if (now - window_start_ >= window_) {
    window_start_ = now;
    taken_ = 0;
  }
  if (taken_ >= lines_) {
    ++refused_;
    return false;
  }
  ++taken_;
  *left_out = refused_;
  refused_ = 0;
  return true;
}

}  // namespace policy
