#ifndef POLICY_SERVICES_KEYS_MEMORY_KEY_STORE_H_
#define POLICY_SERVICES_KEYS_MEMORY_KEY_STORE_H_

#include <map>

#include "absl/synchronization/mutex.h"
#include "common/clock/clock.h"
#include "common/ledger/memory_outbox.h"
#include "services/keys/key_store.h"

namespace policy::keys {

// KeyStore in process memory, for unit tests and --store=memory. Its observer is always in
// sync and hears of each change before the mutating call returns. Its outbox lives and dies
// with the process, like the keys. RevokeEndedOverlaps judges by `clock`, which must outlive
// the store.
class MemoryKeyStore : public KeyStore {
 public:
  explicit MemoryKeyStore(Clock* clock) : clock_(clock) {}

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
  absl::Status CheckRequestFree(const std::optional<IdempotencyRecord>& request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Notify(std::vector<KeyRecord> changed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds the events' records to the outbox; under mu_, so that they are there with the change.
  void Record(const std::vector<KeyEvent>& events) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Clock* const clock_;
  ledger::MemoryOutbox outbox_;  // Added to under mu_ (its own lock nests inside).
  absl::Mutex mu_;
  std::map<std::string, KeyRecord> keys_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, IdempotencyRecord> requests_ ABSL_GUARDED_BY(mu_);
  KeyStoreObserver* observer_ ABSL_GUARDED_BY(mu_) = nullptr;
};

// True when `key` matches `filter` (shared by the stores and their tests).
bool MatchesFilter(const KeyRecord& key, const KeyFilter& filter);

}  // namespace policy::keys

#endif  // POLICY_SERVICES_KEYS_MEMORY_KEY_STORE_H_
