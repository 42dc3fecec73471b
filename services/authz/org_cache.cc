#include "services/authz/org_cache.h"

#include <utility>

#include "absl/status/status.h"
#include "common/status/status.h"

namespace policy::authz {

OrgCache::OrgCache(Clock* clock, absl::Duration max_staleness)
    : clock_(clock), max_staleness_(max_staleness) {}

bool OrgCache::InSyncAt(absl::Time now) const {
  const int64_t as_of = in_sync_as_of_ns_.load(std::memory_order_acquire);
  if (as_of == std::numeric_limits<int64_t>::min()) return false;
  return now - absl::FromUnixNanos(as_of) <= max_staleness_;
}

absl::StatusOr<OrgView> OrgCache::Current() const {
  OrgView view;
  {
    absl::ReaderMutexLock lock(&mu_);
    view = view_;
  }
  if (view.snapshot == nullptr || !InSyncAt(clock_->Now())) {
    return WithReason(absl::UnavailableError("organisation snapshot is stale (database "
                                             "unreachable); refusing to decide until it is "
                                             "current"),
                      kReasonOrgStale);
  }
  return view;
}

bool OrgCache::InSync() const {
  absl::ReaderMutexLock lock(&mu_);
  return view_.snapshot != nullptr && InSyncAt(clock_->Now());
}

absl::Duration OrgCache::Staleness() const {
  const int64_t as_of = in_sync_as_of_ns_.load(std::memory_order_acquire);
  if (as_of == std::numeric_limits<int64_t>::min()) return absl::InfiniteDuration();
  if (as_of == std::numeric_limits<int64_t>::max()) return absl::ZeroDuration();
  return std::max(absl::ZeroDuration(), clock_->Now() - absl::FromUnixNanos(as_of));
}

int64_t OrgCache::version() const {
  absl::ReaderMutexLock lock(&mu_);
  return view_.state == nullptr ? -1 : view_.state->version;
}

void OrgCache::OnState(std::shared_ptr<const OrgState> state) {
  {
    absl::ReaderMutexLock lock(&mu_);
    if (view_.state != nullptr && view_.state->version >= state->version) return;
  }
  // Built outside the lock: decisions keep reading the previous snapshot meanwhile.
  OrgView fresh{state, SnapshotOf(*state, clock_->Now())};
  absl::MutexLock lock(&mu_);
  if (view_.state == nullptr || view_.state->version < fresh.state->version) {
    view_ = std::move(fresh);
  }
}

void OrgCache::OnInSync(absl::Time as_of) {
  const int64_t ns = as_of == absl::InfiniteFuture() ? std::numeric_limits<int64_t>::max()
                                                     : absl::ToUnixNanos(as_of);
  int64_t current = in_sync_as_of_ns_.load(std::memory_order_relaxed);
  while (ns > current && !in_sync_as_of_ns_.compare_exchange_weak(current, ns)) {
  }
}

}  // namespace policy::authz
