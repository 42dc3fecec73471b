#ifndef POLICY_SERVICES_AUTHZ_ORG_STORE_H_
#define POLICY_SERVICES_AUTHZ_ORG_STORE_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/ledger/outbox.h"
#include "services/authz/org_ledger.h"
#include "services/authz/org_state.h"

namespace policy::authz {

// Receives every committed version of the organisation, from this process or any replica
// sharing the store. This process's own changes arrive before Mutate returns; other replicas'
// later (each store states its bound). Versions may arrive twice or out of order; an observer
// keeps the highest. Calls may come from several threads.
class OrgStoreObserver {
 public:
  virtual ~OrgStoreObserver() = default;
  virtual void OnState(std::shared_ptr<const OrgState> state) = 0;
  // Every version committed before `as_of` has been delivered; absl::InfiniteFuture() means
  // always in sync (an in-process store).
  virtual void OnInSync(absl::Time as_of) = 0;
};

struct Mutated {
  std::shared_ptr<const OrgState> before;
  std::shared_ptr<const OrgState> after;  // `before` itself when nothing changed.
};

// Durable storage of the organisation. Thread-safe.
//
// Errors: UNAVAILABLE when the database cannot be reached (nothing happened); UNKNOWN when a
// commit's outcome is unknown; the mutation's own errors and ApplyMutation's checks as they
// are.
class OrgStore {
 public:
  virtual ~OrgStore() = default;

  // Applies `mutation` to the latest state with ApplyMutation and commits the result with
  // its ledger records (LedgerRecordsOf `source`) in outbox(), all at once: concurrent
  // mutations, from any replica, apply one after the other, each to the state the previous
  // one committed. A mutation that changes nothing records nothing. A mutation that erases
  // addresses (ErasedAddresses) erases them, in the same commit, from the outbox's records
  // that the ledger had refused by then.
  virtual absl::StatusOr<Mutated> Mutate(const OrgMutation& mutation, absl::Time now,
                                         const OrgChangeSource& source) = 0;

  // The records of committed changes on their way to the audit ledger.
  virtual ledger::Outbox& outbox() = 0;

  // The latest committed state.
  virtual absl::StatusOr<std::shared_ptr<const OrgState>> Load() = 0;

  // Starts delivering states to `observer` (which must outlive the store or a later
  // StopWatching): the latest at once or as soon as the database answers, then each new one.
  virtual void Watch(OrgStoreObserver* observer) = 0;
  virtual void StopWatching() = 0;
};

}  // namespace policy::authz

#endif  // POLICY_SERVICES_AUTHZ_ORG_STORE_H_
