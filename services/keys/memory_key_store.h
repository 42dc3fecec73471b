#ifndef POLICY_SERVICES_KEYS_MEMORY_KEY_STORE_H_
#define POLICY_SERVICES_KEYS_MEMORY_KEY_STORE_H_

#include <map>

#include "absl/synchronization/mutex.h"
#include "services/keys/key_store.h"

namespace policy::keys {

// KeyStore in process memory, for unit tests and --store=memory. Its observer is always in
// sync and hears of each change before the mutating call returns. Its outbox lives and dies
// with the process, like the keys.
class MemoryKeyStore : public KeyStore {
 public:
  absl::Status Insert(const KeyRecord& key,
                      const std::optional<IdempotencyRecord>& request) override;
  absl::StatusOr<KeyRecord> Rotate(const std::string& old_key_id, absl::Time overlap_ends_at,
                                   const KeyRecord& successor,
                                   const std::optional<IdempotencyRecord>& request) override;
  absl::StatusOr<std::pair<KeyRecord, bool>> Revoke(const std::string& key_id,
                                                    const std::string& reason,
                                                    absl::Time at) override;
  absl::StatusOr<std::vector<KeyRecord>> RevokeOwnedBy(
      const Principal& owner, const std::string& reason, absl::Time at,
      const std::optional<IdempotencyRecord>& request) override;
  absl::StatusOr<std::vector<KeyRecord>> RevokeEndedOverlaps(absl::Time at) override;
  absl::StatusOr<KeyRecord> Get(const std::string& key_id) override;
  absl::StatusOr<KeyPage> List(const KeyFilter& filter, int limit,
                               const std::optional<ListCursor>& after) override;
  absl::StatusOr<std::optional<IdempotencyRecord>> GetRequest(
      const std::string& request_id) override;
  absl::StatusOr<int> ForgetRequestsBefore(absl::Time before) override;
  absl::StatusOr<OutboxDrain> DrainOutbox(int limit, const OutboxHandler& handle) override;
  absl::StatusOr<std::vector<OutboxEvent>> ReadOutbox(int limit) override;
  void Watch(KeyStoreObserver* observer) override;
  void StopWatching() override;

 private:
  absl::Status CheckRequestFree(const std::optional<IdempotencyRecord>& request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Notify(std::vector<KeyRecord> changed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddEvent(KeyEvent event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex drain_mu_;  // Held by the drain in progress; not while holding mu_.
  absl::Mutex mu_;
  std::map<std::string, KeyRecord> keys_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, IdempotencyRecord> requests_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, OutboxEvent> outbox_ ABSL_GUARDED_BY(mu_);  // By sequence.
  int64_t next_sequence_ ABSL_GUARDED_BY(mu_) = 1;
  KeyStoreObserver* observer_ ABSL_GUARDED_BY(mu_) = nullptr;
};

// True when `key` matches `filter` (shared by the stores and their tests).
bool MatchesFilter(const KeyRecord& key, const KeyFilter& filter);

}  // namespace policy::keys

#endif  // POLICY_SERVICES_KEYS_MEMORY_KEY_STORE_H_
