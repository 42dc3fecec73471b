#ifndef POLICY_SERVICES_KEYS_KEY_VERIFIER_H_
#define POLICY_SERVICES_KEYS_KEY_VERIFIER_H_

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "common/clock/clock.h"
#include "services/keys/key.h"
#include "services/keys/key_store.h"
#include "services/keys/pepper.h"

namespace policy::keys {

// Reasons attached (WithReason) to a failed verification. Trusted callers may see them;
// everyone else gets the same UNAUTHENTICATED "API key is not valid".
inline constexpr absl::string_view kReasonMalformed = "MALFORMED_KEY";
inline constexpr absl::string_view kReasonUnknown = "UNKNOWN_KEY";
inline constexpr absl::string_view kReasonSecretMismatch = "SECRET_MISMATCH";
inline constexpr absl::string_view kReasonRevoked = "KEY_REVOKED";
inline constexpr absl::string_view kReasonExpired = "KEY_EXPIRED";
inline constexpr absl::string_view kReasonStale = "KEY_CACHE_STALE";

struct VerifiedKey {
  std::shared_ptr<const KeyRecord> key;
  KeyState state;  // kActive or kRotating.
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
  // time), and the key is active or within its rotation overlap at the clock's now.
  //  - INVALID_ARGUMENT (MALFORMED_KEY) for text that cannot be a key, before any lookup;
  //  - UNAUTHENTICATED "API key is not valid" for unknown, mismatched, revoked and expired
  //    keys alike, with the reason attached for trusted callers;
  //  - UNAVAILABLE (KEY_CACHE_STALE) while the copy is staler than its bound.
  absl::StatusOr<VerifiedKey> Verify(absl::string_view secret) const;

  // True while the copy is within its staleness bound (readiness).
  bool InSync() const;
  size_t size() const;

  void OnReset(std::vector<KeyRecord> keys) override;
  // Keys only move forward (active -> rotating -> revoked); an older copy of a key arriving
  // after a newer one is ignored.
  void OnChanged(std::vector<KeyRecord> keys) override;
  void OnInSync(absl::Time as_of) override;

 private:
  bool InSyncLocked(absl::Time now) const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const Pepper* const pepper_;
  Clock* const clock_;
  const absl::Duration max_staleness_;
  const std::string dummy_hash_;  // Compared against when the id is unknown, for even timing.
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<const KeyRecord>> keys_ ABSL_GUARDED_BY(mu_);
  bool loaded_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time in_sync_as_of_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace policy::keys

#endif  // POLICY_SERVICES_KEYS_KEY_VERIFIER_H_
