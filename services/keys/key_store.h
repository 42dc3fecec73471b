#ifndef POLICY_SERVICES_KEYS_KEY_STORE_H_
#define POLICY_SERVICES_KEYS_KEY_STORE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/ledger/outbox.h"
#include "services/keys/key.h"
#include "services/keys/key_events.h"

namespace policy::keys {

// What a request with a client-chosen request id did, kept so that a retry returns the first
// result instead of acting twice.
struct IdempotencyRecord {
  std::string request_id;
  std::string operation;             // "create", "rotate", "revoke_principal".
  std::string fingerprint;           // SHA-256 of the request's parameters.
  std::vector<std::string> key_ids;  // The keys the request created or revoked.
  std::string sealed_secret;         // AES-GCM sealed secret of a created key, or empty.
  absl::Time created_at;
  bool operator==(const IdempotencyRecord&) const = default;
};

struct KeyFilter {
  std::optional<Principal> owner = std::nullopt;
  std::optional<std::string> project = std::nullopt;
  std::optional<KeyKind> kind = std::nullopt;
  // Compared with StateAt(key, now).
  std::optional<KeyState> state = std::nullopt;
  absl::Time now = absl::UnixEpoch();
};

// Where a listing continues: the last key of the previous page in (created_at desc, key_id
// desc) order.
struct ListCursor {
  absl::Time created_at;
  std::string key_id;
};

struct KeyPage {
  std::vector<KeyRecord> keys;
  std::optional<ListCursor> next;  // nullopt on the last page.
};

// Receives every change to a store, made by this process or by any replica sharing it.
// Changes made through this process's store arrive before the mutating call returns; those of
// other replicas arrive later (each store states its bound). Calls may come from several
// threads at once, and the same change may arrive twice.
class KeyStoreObserver {
 public:
  virtual ~KeyStoreObserver() = default;
  // Every key in the store; replaces whatever was delivered before.
  virtual void OnReset(std::vector<KeyRecord> keys) = 0;
  // Keys created or changed since the last delivery.
  virtual void OnChanged(std::vector<KeyRecord> keys) = 0;
  // Every change committed before `as_of` has been delivered. absl::InfiniteFuture() means
  // the observer is always in sync (an in-process store).
  virtual void OnInSync(absl::Time as_of) = 0;
};

// Durable storage of keys and idempotency records, with an outbox of the audit ledger's
// records of the key events the changes made. Implementations are thread-safe and every
// method is atomic: it happens entirely or not at all.
//
// The outbox: every method that changes keys writes the records of its events
// (LedgerRecordOf, in key_events.h, of CreatedEvent, RotatedEvent, RevokedEvent,
// OverlapEndedEvent) to outbox() in the same step as the change, so a change that returned OK
// has its records and one that failed has none. A relay (common/ledger/outbox_relay.h) drains
// them to the audit ledger.
//
// Errors: NOT_FOUND for an unknown key id; UNAVAILABLE when the backing database cannot be
// reached (nothing happened); FAILED_PRECONDITION as stated per method.
class KeyStore {
 public:
  virtual ~KeyStore() = default;

  // Insert, Rotate, Revoke and RevokeOwnedBy record their events as made by `actor` (a
  // member's id; empty: kKeysServiceActor).

  // Inserts `key` and, when given, `request` in one step; event: CreatedEvent(key, actor).
  // ALREADY_EXISTS when the key id or the request id exists already; then nothing is written.
  virtual absl::Status Insert(const KeyRecord& key, const std::optional<IdempotencyRecord>& request,
                              absl::string_view actor) = 0;

  // Marks `old_key_id` rotating until `overlap_ends_at` with successor `successor.key_id`,
  // and inserts `successor` (and `request`), in one step. FAILED_PRECONDITION, with nothing
  // written, unless the old key is stored as kActive: of concurrent rotations of one key
  // exactly one succeeds. ALREADY_EXISTS as for Insert. Returns the updated old key. Events:
  // RotatedEvent(old key, successor.created_at), then CreatedEvent(successor).
  virtual absl::StatusOr<KeyRecord> Rotate(const std::string& old_key_id,
                                           absl::Time overlap_ends_at, const KeyRecord& successor,
                                           const std::optional<IdempotencyRecord>& request,
                                           absl::string_view actor) = 0;

  // Marks the key revoked at `at` for `reason`. Returns the key and whether it changed (false
  // when it was revoked already; the first revocation's time and reason are kept). Event, when
  // it changed: RevokedEvent(key).
  virtual absl::StatusOr<std::pair<KeyRecord, bool>> Revoke(const std::string& key_id,
                                                            const std::string& reason,
                                                            absl::Time at,
                                                            absl::string_view actor) = 0;

  // Revokes every kActive or kRotating key `owner` holds, records `request` when given, in
  // one step, and returns the keys it revoked. ALREADY_EXISTS (nothing written) when the
  // request id exists already. Events: RevokedEvent of each, in the order returned. Inserts
  // and rotations of the owner's keys are wholly before or after it, on any replica: none
  // leaves a live successor of a key it revoked.
  virtual absl::StatusOr<std::vector<KeyRecord>> RevokeOwnedBy(
      const Principal& owner, const std::string& reason, absl::Time at,
      const std::optional<IdempotencyRecord>& request, absl::string_view actor) = 0;

  // Revokes, with reason kReasonOverlapEnded and revoked_at its overlap's end, every kRotating
  // key whose overlap ended at or before the store's now and before the key's expiry (a key
  // whose overlap ran to its expiry simply expired), and returns them. The store's now is the
  // clock of the data, not the caller's: the database server's for a store replicas share, so
  // that replicas whose clocks disagree sweep alike; the store's injected clock for one in
  // process memory. Of replicas sweeping at once each key is returned once. Events:
  // OverlapEndedEvent of each, in the order returned.
  virtual absl::StatusOr<std::vector<KeyRecord>> RevokeEndedOverlaps() = 0;

  virtual absl::StatusOr<KeyRecord> Get(const std::string& key_id) = 0;

  // Keys matching `filter`, newest first, at most `limit`, after `after` when given.
  virtual absl::StatusOr<KeyPage> List(const KeyFilter& filter, int limit,
                                       const std::optional<ListCursor>& after) = 0;

  // The record for `request_id`, or nullopt.
  virtual absl::StatusOr<std::optional<IdempotencyRecord>> GetRequest(
      const std::string& request_id) = 0;

  // Deletes idempotency records created before `before`; returns how many.
  virtual absl::StatusOr<int> ForgetRequestsBefore(absl::Time before) = 0;

  // The outbox the changes write their records to; lives as long as the store.
  virtual ledger::Outbox& outbox() = 0;

  // Starts delivering changes to `observer` (which must outlive the store or a later
  // StopWatching): first OnReset with everything, then changes as they commit.
  virtual void Watch(KeyStoreObserver* observer) = 0;
  virtual void StopWatching() = 0;
};

}  // namespace policy::keys

#endif  // POLICY_SERVICES_KEYS_KEY_STORE_H_
