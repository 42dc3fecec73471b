#ifndef POLICY_SERVICES_KEYS_KEY_VERIFIER_H_
#define POLICY_SERVICES_KEYS_KEY_VERIFIER_H_

#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/clock/clock.h"
#include "common/clock/sync_watermark.h"
#include "services/keys/api_key.h"
#include "services/keys/key.h"
#include "services/keys/key_store.h"
#include "services/keys/pepper.h"

namespace policy::keys {

// Reasons attached (WithReason) to a failed verification. Trusted callers may see them;
// everyone else gets the same UNAUTHENTICATED "API key is not valid".
inline constexpr absl::string_view kReasonMalformed = "MALFORMED_KEY";
inline constexpr absl::string_view kReasonUnknown = "UNKNOWN_KEY";
inline constexpr absl::string_view kReasonSecretMismatch = "SECRET_MISMATCH";
// The secret matches, but its prefix names another kind than the key's (psk_admin_ on a
// project key, say): a relabelled secret.
inline constexpr absl::string_view kReasonKindMismatch = "KEY_KIND_MISMATCH";
inline constexpr absl::string_view kReasonRevoked = "KEY_REVOKED";
inline constexpr absl::string_view kReasonExpired = "KEY_EXPIRED";
inline constexpr absl::string_view kReasonStale = "KEY_CACHE_STALE";

struct VerifiedKey {
  std::shared_ptr<const KeyRecord> key;
  // kActive or kRotating; kExpired only for a key that expired within the grace Verify was
  // given.
  KeyState state;
};

// The hot path: resolves a secret to its key from an in-memory copy of the store, kept
// current by observing it (KeyStoreObserver). Never touches the database.
//
// Staleness bound: Verify fails closed with UNAVAILABLE when the store last proved the copy
// in sync more than `max_staleness` ago (the database is gone), so a revocation is honoured
// within max_staleness on every replica or the replica refuses to answer. Thread-safe.
class KeyVerifier : public KeyStoreObserver {
 public:
  KeyVerifier(const Pepper* pepper, Clock* clock, absl::Duration max_staleness);

  // OK with the key when the secret is well-formed, known, matches (compared in constant
  // time), its prefix names the key's kind, and the key is active or within its rotation
  // overlap at the clock's now.
  //  - INVALID_ARGUMENT (MALFORMED_KEY) for text that cannot be a key, before any lookup;
  //  - UNAUTHENTICATED "API key is not valid" for unknown, mismatched (secret or kind),
  //    revoked and expired keys alike, each decided after the secret was hashed and
  //    compared, with the reason attached for trusted callers;
  //  - UNAVAILABLE (KEY_CACHE_STALE) while the copy is staler than its bound.
  // With an `expired_grace`, a key that expired less than that long ago verifies too, as
  // kExpired; a revoked key never does (the end of a rotation's overlap included: the
  // successor speaks for the key from then on).
  absl::StatusOr<VerifiedKey> Verify(absl::string_view secret,
                                     absl::Duration expired_grace = absl::ZeroDuration()) const;

  // True while the copy is within its staleness bound (readiness).
  bool InSync() const;
  // How far behind the database the copy may be; InfiniteDuration() before the first load.
  absl::Duration Staleness() const;
  size_t size() const;
  // Active keys (not rotating, revoked or expired at the clock's now) that expire within
  // `window`: the keys someone should rotate soon. Walks the whole copy.
  int64_t CountExpiringWithin(absl::Duration window) const;

  // Replaces the copy with `keys`, except that an entry further along than the snapshot's
  // (or missing from it) is kept: it records a change made while the snapshot was read.
  void OnReset(std::vector<KeyRecord> keys) override;
  // Keys only move forward (active -> rotating -> revoked); an older copy of a key arriving
  // after a newer one is ignored.
  void OnChanged(std::vector<KeyRecord> keys) override;
  void OnInSync(absl::Time as_of) override;

 private:
  // Keys are spread over shards, each with its own lock on its own cache line, so that
  // verifications on different cores rarely touch the same lock word.
  static constexpr size_t kShards = 16;
  // What a lookup reads sits in the map's slot itself (the id and the hash), so that a
  // verification touches few cache lines even in a large registry.
  using IdChars = std::array<char, kKeyIdChars>;  // A key id without its "key_" prefix.
  struct CachedKey {
    std::array<char, 32> secret_hash;
    std::shared_ptr<const KeyRecord> record;
  };
  struct alignas(64) Shard {
    mutable absl::Mutex mu;
    absl::flat_hash_map<IdChars, CachedKey> keys ABSL_GUARDED_BY(mu);
  };
  using ShardMaps = std::array<absl::flat_hash_map<IdChars, CachedKey>, 16>;
  static bool ToIdChars(absl::string_view id_part, IdChars* out);
  size_t ShardOf(const IdChars& id) const;
  // Adds `key` to `map` unless an entry for it is further along (active < rotating <
  // revoked); keys with malformed ids cannot be presented and are skipped.
  static void Merge(KeyRecord key, absl::flat_hash_map<IdChars, CachedKey>& map);
  bool InSyncAt(absl::Time now) const;

  const Pepper* const pepper_;
  Clock* const clock_;
  const absl::Duration max_staleness_;
  const std::string dummy_hash_;  // Compared against when the id is unknown, for even timing.
  mutable std::array<Shard, kShards> shards_;
  static_assert(kShards == std::tuple_size_v<ShardMaps>);
  std::atomic<bool> loaded_{false};
  SyncWatermark in_sync_;
};

}  // namespace policy::keys

#endif  // POLICY_SERVICES_KEYS_KEY_VERIFIER_H_
