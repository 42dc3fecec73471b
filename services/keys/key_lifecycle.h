#ifndef POLICY_SERVICES_KEYS_KEY_LIFECYCLE_H_
#define POLICY_SERVICES_KEYS_KEY_LIFECYCLE_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock/clock.h"
#include "services/keys/key.h"
#include "services/keys/key_store.h"
#include "services/keys/pepper.h"

namespace policy::keys {

// The shortest lifetime a key may be given (ttl, or expire_time less now): a shorter one
// expires before its holder could use it, which is a mistake (a unit dropped), never a key.
inline constexpr absl::Duration kMinKeyLifetime = absl::Seconds(1);

// Limits the service enforces; defaults follow the seed's policy (rotate every 30-90 days,
// 24 h overlap, warn a week ahead).
struct KeyPolicy {
  absl::Duration default_ttl = absl::Hours(24 * 90);
  absl::Duration max_ttl = absl::Hours(24 * 365);
  absl::Duration default_overlap = absl::Hours(24);
  absl::Duration max_overlap = absl::Hours(24 * 7);
  absl::Duration rotation_warning = absl::Hours(24 * 7);
  // How long a request id is remembered (and a created secret kept sealed for replay).
  absl::Duration idempotency_window = absl::Hours(24);
};

struct CreateKeyParams {
  std::string request_id;  // Optional; makes retries safe.
  KeyKind kind = KeyKind::kProject;
  Principal owner;
  std::string project;
  Environment environment = Environment::kDevelopment;
  std::vector<std::string> scopes;
  // At most one of expires_at and ttl; at least kMinKeyLifetime from now, at most max_ttl.
  std::optional<absl::Time> expires_at;
  std::optional<absl::Duration> ttl;
  // Who asks: the member recorded as the change's actor; empty: the keys service.
  std::string actor = "";
};

struct IssuedKey {
  KeyRecord key;
  std::string secret;  // Shown once.
};

struct RotateKeyParams {
  std::string request_id;
  std::string key_id;
  std::optional<absl::Duration> overlap;
  std::optional<absl::Duration> ttl;  // Between kMinKeyLifetime and max_ttl.
  std::string actor = "";             // As CreateKeyParams.actor.
};

struct RotatedKey {
  KeyRecord old_key;
  IssuedKey new_key;
};

struct ListKeysParams {
  std::optional<Principal> owner;
  std::optional<std::string> project;
  std::optional<KeyKind> kind;
  std::optional<KeyState> state;
  int page_size = 0;  // 0 means 50; at most 500.
  std::string page_token;
};

struct KeyListing {
  std::vector<KeyRecord> keys;
  std::string next_page_token;
};

enum class Urgency { kWarning, kCritical };

struct RotationReport {
  struct Entry {
    KeyRecord key;
    Urgency urgency;
    int64_t days_remaining;  // Whole days, rounded down; negative once expired.
  };
  absl::Time generated_at;
  absl::Duration warning_window;
  std::vector<Entry> entries;  // Most urgent (soonest expiry) first.
};

struct InventoryReport {
  struct Entry {
    KeyRecord key;
    int64_t age_days;
  };
  absl::Time generated_at;
  std::vector<Entry> entries;
  std::map<KeyState, int64_t> counts_by_state;
};

// Issues, rotates and revokes keys: validation and idempotency around a KeyStore, whose
// outbox records each change's key events with the change. Errors name the offending field
// (INVALID_ARGUMENT), the missing key (NOT_FOUND) or the state that forbids the change
// (FAILED_PRECONDITION). Thread-safe.
class KeyLifecycle {
 public:
  KeyLifecycle(KeyStore* store, const Pepper* pepper, Clock* clock, KeyPolicy policy);

  absl::StatusOr<IssuedKey> Create(const CreateKeyParams& params);
  absl::StatusOr<RotatedKey> Rotate(const RotateKeyParams& params);
  // Returns the key and whether this call revoked it. `actor` as CreateKeyParams.actor.
  absl::StatusOr<std::pair<KeyRecord, bool>> Revoke(const std::string& key_id,
                                                    const std::string& reason,
                                                    const std::string& actor = "");
  absl::StatusOr<std::vector<KeyRecord>> RevokePrincipal(const std::string& request_id,
                                                         const Principal& owner,
                                                         const std::string& reason,
                                                         const std::string& actor = "");
  absl::StatusOr<KeyRecord> Get(const std::string& key_id);
  absl::StatusOr<KeyListing> List(const ListKeysParams& params);
  absl::StatusOr<RotationReport> GetRotationReport(const std::optional<std::string>& project);
  absl::StatusOr<InventoryReport> GetInventoryReport(const std::optional<std::string>& project);

  // Revokes keys whose rotation overlap ended by the store's clock (KeyStore::
  // RevokeEndedOverlaps: the database server's, not this replica's) and forgets request ids
  // older than the idempotency window. Run periodically by every replica; safe concurrently.
  absl::Status Sweep();

  // Issues an admin key for `owner` when no active or rotating admin key exists: the way into
  // an empty database, run once by an operator (two concurrent runs may both succeed).
  // FAILED_PRECONDITION otherwise.
  absl::StatusOr<IssuedKey> BootstrapAdmin(const Principal& owner);

  const KeyPolicy& policy() const { return policy_; }

 private:
  absl::StatusOr<IssuedKey> NewKey(const CreateKeyParams& params, absl::Time now,
                                   absl::Time expires_at);
  absl::StatusOr<IssuedKey> ReplayCreate(const IdempotencyRecord& record);
  absl::StatusOr<RotatedKey> ReplayRotate(const IdempotencyRecord& record);
  absl::StatusOr<std::vector<KeyRecord>> ReplayRevokePrincipal(const IdempotencyRecord& record);
  absl::StatusOr<std::optional<IdempotencyRecord>> FindRequest(const std::string& request_id,
                                                               const std::string& operation,
                                                               const std::string& fingerprint);
  absl::StatusOr<IdempotencyRecord> NewRequest(const std::string& request_id,
                                               const std::string& operation,
                                               const std::string& fingerprint,
                                               const IssuedKey* issued, absl::Time now);

  KeyStore* const store_;
  const Pepper* const pepper_;
  Clock* const clock_;
  const KeyPolicy policy_;
};

}  // namespace policy::keys

#endif  // POLICY_SERVICES_KEYS_KEY_LIFECYCLE_H_
