#include "services/region/registry_sync.h"

#include <utility>
#include <vector>

#include "common/status/status.h"

namespace policy::region {

RegistrySync::RegistrySync(EndpointStore* store, EndpointRegistry* registry, std::string replica,
                           Clock* clock)
    : store_(store), registry_(registry), replica_(std::move(replica)), clock_(clock) {}

bool RegistrySync::Ready(absl::Duration max_staleness) const {
  return healthy() && clock_->Now() - synced_at() <= max_staleness;
}

absl::Status RegistrySync::Reload() {
  absl::MutexLock lock(&mu_);
  return ReloadLocked();
}

void RegistrySync::MarkSynced(absl::Time started) {
  synced_at_us_.store(absl::ToUnixMicros(started), std::memory_order_release);
}

absl::Status RegistrySync::ReloadLocked() {
  ASSIGN_OR_RETURN(EndpointStore::Listing listing, store_->List());
  RETURN_IF_ERROR(registry_->Replace(std::move(listing.endpoints)));
  version_ = listing.version;
  loaded_.store(true, std::memory_order_release);
  return absl::OkStatus();
}

absl::Status RegistrySync::SyncOnce() {
  absl::MutexLock lock(&mu_);
  const absl::Time started = clock_->Now();
  absl::Status status = SyncLocked();
  // synced_at first: Ready never sees healthy_ beside an older round's time.
  if (status.ok()) MarkSynced(started);
  healthy_.store(status.ok(), std::memory_order_release);
  return status;
}

void RegistrySync::MeasureOffset(absl::Time before, absl::Time store_now, absl::Time after) {
  // The store read its clock at some moment between `before` and `after` on this clock.
  const absl::Duration lowest = store_now - after;
  const absl::Duration highest = store_now - before;
  if (!offset_.has_value() || *offset_ < lowest || *offset_ > highest) {
    offset_ = store_now - (before + (after - before) / 2);
    clock_offset_ns_.store(absl::ToInt64Nanoseconds(*offset_), std::memory_order_release);
  }
}

absl::Status RegistrySync::SyncLocked() {
  ASSIGN_OR_RETURN(int64_t version, store_->Version());
  if (version != version_) RETURN_IF_ERROR(ReloadLocked());

  // Times go to the store on its clock and come back on this replica's (infinite times stay
  // infinite).
  const absl::Time before = clock_->Now();
  ASSIGN_OR_RETURN(const absl::Time store_now, store_->Now());
  MeasureOffset(before, store_now, clock_->Now());
  const absl::Duration offset = *offset_;

  // Publish what changed here.
  for (const EndpointHealthReport& e : registry_->Health().endpoints) {
    const std::tuple<BreakerState, absl::Time, absl::Time> mine{
        e.breaker.state, e.breaker.opened_at, e.breaker.closed_at};
    auto it = published_.find(e.endpoint.id);
    if (it != published_.end() && it->second == mine) continue;
    if (it == published_.end() && e.breaker.state == BreakerState::kClosed &&
        e.breaker.closed_at == absl::InfinitePast()) {
      published_[e.endpoint.id] = mine;  // Nothing to tell yet.
      continue;
    }
    const absl::Status s =
        store_->PublishBreaker(PublishedBreaker{.endpoint_id = e.endpoint.id,
                                                .replica = replica_,
                                                .state = e.breaker.state,
                                                .opened_at = e.breaker.opened_at + offset,
                                                .published_at = store_now,
                                                .closed_at = e.breaker.closed_at + offset});
    if (s.ok()) {
      published_[e.endpoint.id] = mine;
    } else if (!absl::IsNotFound(s)) {  // Deleted meanwhile: nothing to publish.
      return s;
    }
  }

  if (store_now - last_cleanup_ >= kBreakerCleanupInterval) {
    RETURN_IF_ERROR(store_->ForgetBreakersPublishedBefore(store_now - kBreakerRetention).status());
    last_cleanup_ = store_now;
  }

  // Adopt what the others published since the last round: their opens and their closes.
  const absl::Time since = last_fetch_ == absl::InfinitePast() ? store_now - kBreakerRetention
                                                               : last_fetch_ - kFetchMargin;
  ASSIGN_OR_RETURN(std::vector<PublishedBreaker> peers, store_->BreakersSince(since));
  for (const PublishedBreaker& p : peers) {
    if (p.replica == replica_) continue;
    registry_->AdoptPeerState(p.endpoint_id, p.state, p.opened_at - offset, p.closed_at - offset);
  }
  last_fetch_ = store_now;
  return absl::OkStatus();
}

}  // namespace policy::region
