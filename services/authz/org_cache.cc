#include "services/authz/org_cache.h"

#include <utility>

#include "absl/status/status.h"
#include "common/status/status.h"

namespace policy::authz {

OrgCache::OrgCache(Clock* clock, absl::Duration max_staleness)
    : clock_(clock), max_staleness_(max_staleness) {}

absl::StatusOr<OrgView> OrgCache::Current() const {
  OrgView view;
  {
    absl::ReaderMutexLock lock(&mu_);
    view = view_;
  }
  if (view.snapshot == nullptr || !in_sync_.Within(clock_->Now(), max_staleness_)) {
    return WithReason(absl::UnavailableError("organisation snapshot is stale (database "
                                             "unreachable); refusing to decide until it is "
                                             "current"),
                      kReasonOrgStale);
  }
  return view;
}

bool OrgCache::InSync() const {
  absl::ReaderMutexLock lock(&mu_);
  return view_.snapshot != nullptr && in_sync_.Within(clock_->Now(), max_staleness_);
}

absl::Duration OrgCache::Staleness() const { return in_sync_.Lag(clock_->Now()); }

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

void OrgCache::OnInSync(absl::Time as_of) { in_sync_.Advance(as_of); }

}  // namespace policy::authz
