#ifndef POLICY_SERVICES_AUTHZ_POSTGRES_ORG_STORE_H_
#define POLICY_SERVICES_AUTHZ_POSTGRES_ORG_STORE_H_

#include <memory>

#include "absl/synchronization/mutex.h"
#include "common/clock/clock.h"
#include "common/ledger/postgres_outbox.h"
#include "common/pg/notification_feed.h"
#include "common/pg/pool.h"
#include "common/pg/privileges.h"
#include "services/authz/org_store.h"

namespace policy::authz {

// The organisation in PostgreSQL (schema `authz`, migrations/). A mutation locks the single
// `org` row, applies to the latest state (this process's copy when its version matches,
// otherwise read again under the lock), writes the entities that changed and bumps the
// version; the version's trigger notifies every replica, which reloads the whole state. The
// change's ledger records go to authz.ledger_outbox in the same transaction.
//
// Observers hear of other replicas' changes through LISTEN/NOTIFY, and OnInSync at least
// every `watch_heartbeat` while the database answers (pg::NotificationFeed): a replica's copy
// is never more than about one heartbeat behind while in sync.
class PostgresOrgStore : public OrgStore {
 public:
  PostgresOrgStore(pg::Pool* pool, Clock* clock,
                   absl::Duration watch_heartbeat = absl::Milliseconds(200));
  ~PostgresOrgStore() override;

  // What the store's statements need of schema `authz`, which migration 008 grants
  // policy_authz_runtime with PostgresBucketStore's (pg::CheckPrivileges checks the login
  // role at start-up). Projects, members and service accounts are never deleted.
  static std::vector<pg::Privilege> Privileges();

  absl::StatusOr<Mutated> Mutate(const OrgMutation& mutation, absl::Time now,
                                 const OrgChangeSource& source) override;
  ledger::Outbox& outbox() override { return outbox_; }
  absl::StatusOr<std::shared_ptr<const OrgState>> Load() override;
  void Watch(OrgStoreObserver* observer) override;
  void StopWatching() override;

 private:
  // Keeps `state` as the latest when it is newer and passes it to the observer.
  void Remember(const std::shared_ptr<const OrgState>& state);
  std::shared_ptr<const OrgState> Latest();

  pg::Pool* const pool_;
  Clock* const clock_;
  const absl::Duration watch_heartbeat_;
  ledger::PostgresOutbox outbox_;  // authz.ledger_outbox
  std::unique_ptr<pg::NotificationFeed> feed_;
  absl::Mutex mu_;
  std::shared_ptr<const OrgState> latest_ ABSL_GUARDED_BY(mu_);
  OrgStoreObserver* observer_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace policy::authz

#endif  // POLICY_SERVICES_AUTHZ_POSTGRES_ORG_STORE_H_
