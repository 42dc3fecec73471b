#include "common/server/background_check.h"

#include <utility>

#include "common/log/log.h"

namespace policy::server {

BackgroundCheck::BackgroundCheck(std::function<absl::Status()> check, Clock* clock,
                                 absl::Duration interval, absl::Duration bound)
    : check_(std::move(check)), clock_(clock), interval_(interval), bound_(bound) {}

BackgroundCheck::~BackgroundCheck() { Stop(); }

void BackgroundCheck::Start() {
  RunOnce();
  thread_ = std::thread([this] {
    while (!stop_.WaitForNotificationWithTimeout(interval_)) RunOnce();
  });
}

void BackgroundCheck::RunOnce() {
  const absl::Time started = clock_->Now();
  const absl::Status status = check_();
  // The time first: Ready never sees last_ok_ beside an older call's time.
  if (status.ok()) ok_at_us_.store(absl::ToUnixMicros(started), std::memory_order_release);
  const bool was_ok = last_ok_.exchange(status.ok(), std::memory_order_acq_rel);
  if (was_ok && !status.ok())
    LogWarning("dependency check failed", {{"status", status.ToString()}});
}

bool BackgroundCheck::Ready() const {
  if (!last_ok_.load(std::memory_order_acquire)) return false;
  const absl::Time ok_at = absl::FromUnixMicros(ok_at_us_.load(std::memory_order_acquire));
  return clock_->Now() - ok_at <= bound_;
}

void BackgroundCheck::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

}  // namespace policy::server
