#ifndef POLICY_SERVICES_AUTHZ_ORG_CACHE_H_
#define POLICY_SERVICES_AUTHZ_ORG_CACHE_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/clock/clock.h"
#include "common/clock/sync_watermark.h"
#include "services/authz/org.h"
#include "services/authz/org_store.h"

namespace policy::authz {

inline constexpr absl::string_view kReasonOrgStale = "ORG_SNAPSHOT_STALE";

// What decisions and reads see: one version of the organisation and its indexed snapshot.
struct OrgView {
  std::shared_ptr<const OrgState> state;
  std::shared_ptr<const OrgSnapshot> snapshot;
};

// The in-memory organisation every decision reads, kept current by observing the store.
//
// Staleness bound: Current fails closed with UNAVAILABLE (ORG_SNAPSHOT_STALE) when the store
// last proved the copy in sync more than `max_staleness` ago, so that a change (a removed
// member, an archived project) takes effect within max_staleness on every replica or the
// replica refuses to decide. Thread-safe.
class OrgCache : public OrgStoreObserver {
 public:
  OrgCache(Clock* clock, absl::Duration max_staleness);

  absl::StatusOr<OrgView> Current() const;
  bool InSync() const;
  // How far behind the database the copy may be: now minus the last proof of sync.
  absl::Duration Staleness() const;
  int64_t version() const;

  // Keeps the highest version.
  void OnState(std::shared_ptr<const OrgState> state) override;
  void OnInSync(absl::Time as_of) override;

 private:
  Clock* const clock_;
  const absl::Duration max_staleness_;
  mutable absl::Mutex mu_;
  OrgView view_ ABSL_GUARDED_BY(mu_);
  SyncWatermark in_sync_;
};

}  // namespace policy::authz

#endif  // POLICY_SERVICES_AUTHZ_ORG_CACHE_H_
