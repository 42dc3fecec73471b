#include "services/authz/memory_org_store.h"

#include <utility>

#include "common/status/status.h"

namespace policy::authz {

MemoryOrgStore::MemoryOrgStore(OrgState initial) {
  initial.Sort();
  state_ = std::make_shared<const OrgState>(std::move(initial));
}

absl::StatusOr<Mutated> MemoryOrgStore::Mutate(const OrgMutation& mutation, absl::Time now,
                                               const OrgChangeSource& source) {
  absl::MutexLock lock(&mu_);
  Mutated result{state_, state_};
  ASSIGN_OR_RETURN(OrgState after, ApplyMutation(*state_, mutation, now));
  if (after.version == state_->version) return result;
  ASSIGN_OR_RETURN(std::vector<ledger::LedgerRecord> records,
                   LedgerRecordsOf(source, *state_, after));
  outbox_.Add(std::move(records));
  if (const ErasedAddresses erased(*state_, after); !erased.empty()) {
    outbox_.EraseFromFailed([&](absl::string_view id) { return erased.Names(id); });
  }
  state_ = std::make_shared<const OrgState>(std::move(after));
  result.after = state_;
  if (observer_ != nullptr) observer_->OnState(state_);
  return result;
}

absl::StatusOr<std::shared_ptr<const OrgState>> MemoryOrgStore::Load() {
  absl::MutexLock lock(&mu_);
  return state_;
}

void MemoryOrgStore::Watch(OrgStoreObserver* observer) {
  absl::MutexLock lock(&mu_);
  observer_ = observer;
  observer_->OnState(state_);
  observer_->OnInSync(absl::InfiniteFuture());
}

void MemoryOrgStore::StopWatching() {
  absl::MutexLock lock(&mu_);
  observer_ = nullptr;
}

}  // namespace policy::authz
