#ifndef POLICY_SERVICES_AUTHZ_MEMORY_ORG_STORE_H_
#define POLICY_SERVICES_AUTHZ_MEMORY_ORG_STORE_H_

#include <memory>

#include "absl/synchronization/mutex.h"
#include "common/ledger/memory_outbox.h"
#include "services/authz/org_store.h"

namespace policy::authz {

// The organisation in this process's memory: for tests and --store=memory. Lost on exit.
// Observers are always in sync.
class MemoryOrgStore : public OrgStore {
 public:
  explicit MemoryOrgStore(OrgState initial = {});

  absl::StatusOr<Mutated> Mutate(const OrgMutation& mutation, absl::Time now,
                                 const OrgChangeSource& source) override;
  ledger::Outbox& outbox() override { return outbox_; }
  absl::StatusOr<std::shared_ptr<const OrgState>> Load() override;
  void Watch(OrgStoreObserver* observer) override;
  void StopWatching() override;

 private:
  absl::Mutex mu_;
  std::shared_ptr<const OrgState> state_ ABSL_GUARDED_BY(mu_);
  ledger::MemoryOutbox outbox_;
  OrgStoreObserver* observer_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace policy::authz

#endif  // POLICY_SERVICES_AUTHZ_MEMORY_ORG_STORE_H_
