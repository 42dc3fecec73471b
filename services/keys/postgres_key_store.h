#ifndef POLICY_SERVICES_KEYS_POSTGRES_KEY_STORE_H_
#define POLICY_SERVICES_KEYS_POSTGRES_KEY_STORE_H_

#include <memory>
#include <string>

#include "absl/synchronization/mutex.h"
#include "common/clock/clock.h"
#include "common/ledger/postgres_outbox.h"
#include "common/pg/notification_feed.h"
#include "common/pg/pool.h"
#include "common/pg/privileges.h"
#include "services/keys/key_store.h"

namespace policy::keys {

// KeyStore in PostgreSQL (schema `keys`, see migrations/). Row locks make Rotate and the
// revocations safe across replicas. Watch LISTENs on policy_keys_changed, which a trigger
// notifies on every insert and update, and reports in-sync heartbeats every
// `watch_heartbeat`; its view is therefore never staler than a heartbeat plus one round
// trip while the database answers. The outbox is table keys.ledger_outbox
// (ledger::PostgresOutbox), written in each change's transaction. RevokeEndedOverlaps judges
// by the database server's clock (now()), never this host's.
class PostgresKeyStore : public KeyStore {
 public:
  // `max_clock_skew`: the watch reports no heartbeats (the observer turns stale) while this
  // host's clock and the database server's disagree by more than this; see NotificationFeed.
  PostgresKeyStore(pg::Pool* pool, Clock* clock,
                   absl::Duration watch_heartbeat = absl::Milliseconds(200),
                   absl::Duration max_clock_skew = absl::InfiniteDuration());
  ~PostgresKeyStore() override;

  // What the store's statements need of schema `keys`, which migration 004 grants
  // policy_keys_runtime (pg::CheckPrivileges checks the login role at start-up). The store
  // never deletes a key; keys.audit_outbox is left to the release before migration 003.
  static std::vector<pg::Privilege> Privileges();

  absl::Status Insert(const KeyRecord& key, const std::optional<IdempotencyRecord>& request,
                      absl::string_view actor) override;
  absl::StatusOr<KeyRecord> Rotate(const std::string& old_key_id, absl::Time overlap_ends_at,
                                   const KeyRecord& successor,
                                   const std::optional<IdempotencyRecord>& request,
                                   absl::string_view actor) override;
  absl::StatusOr<std::pair<KeyRecord, bool>> Revoke(const std::string& key_id,
                                                    const std::string& reason, absl::Time at,
                                                    absl::string_view actor) override;
  absl::StatusOr<std::vector<KeyRecord>> RevokeOwnedBy(
      const Principal& owner, const std::string& reason, absl::Time at,
      const std::optional<IdempotencyRecord>& request, absl::string_view actor) override;
  absl::StatusOr<std::vector<KeyRecord>> RevokeEndedOverlaps() override;
  absl::StatusOr<KeyRecord> Get(const std::string& key_id) override;
  absl::StatusOr<KeyPage> List(const KeyFilter& filter, int limit,
                               const std::optional<ListCursor>& after) override;
  absl::StatusOr<std::optional<IdempotencyRecord>> GetRequest(
      const std::string& request_id) override;
  absl::StatusOr<int> ForgetRequestsBefore(absl::Time before) override;
  ledger::Outbox& outbox() override { return outbox_; }
  void Watch(KeyStoreObserver* observer) override;
  void StopWatching() override;

 private:
  pg::Pool* const pool_;
  Clock* const clock_;
  const absl::Duration watch_heartbeat_;
  const absl::Duration max_clock_skew_;
  ledger::PostgresOutbox outbox_;
  // Tells the observer about this process's own changes at once, ahead of the notification.
  void NotifyLocal(std::vector<KeyRecord> keys);

  std::unique_ptr<pg::NotificationFeed> feed_;
  absl::Mutex observer_mu_;
  KeyStoreObserver* observer_ ABSL_GUARDED_BY(observer_mu_) = nullptr;
};

}  // namespace policy::keys

#endif  // POLICY_SERVICES_KEYS_POSTGRES_KEY_STORE_H_
