#ifndef POLICY_SERVICES_KEYS_KEY_EVENTS_H_
#define POLICY_SERVICES_KEYS_KEY_EVENTS_H_

#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/ledger/ledger_record.h"
#include "services/keys/key.h"

namespace policy::keys {

// The actor of the keys service's own changes (an overlap's end, a bootstrap) and of a caller
// that names no member.
inline constexpr absl::string_view kKeysServiceActor = "keys-service";

// A change in a key's life; LedgerRecordOf makes the audit ledger's record of it. Never
// carries the secret or its hash.
struct KeyEvent {
  enum class Type { kCreated, kRotated, kRevoked, kOverlapEnded };
  Type type;
  std::string key_id;
  KeyKind kind;
  Principal owner;
  std::string project;  // Empty for admin keys.
  Environment environment;
  absl::Time at;
  std::string related_key_id;  // kRotated: the successor; kCreated: the predecessor, if any.
  std::string reason;          // kRevoked, kOverlapEnded.
  std::string actor{kKeysServiceActor};  // Who made the change: a member's id, or the service.
  bool operator==(const KeyEvent&) const = default;
};

absl::string_view EventTypeName(KeyEvent::Type type);  // "key_created", "key_rotated", ...

// The events of each change, from the records a store wrote; the stores use these so that
// both record the same events.
// `actor` is who made the change (empty: kKeysServiceActor).
// kCreated at the key's creation, related to the key it replaced (rotated_from), if any.
KeyEvent CreatedEvent(const KeyRecord& key, absl::string_view actor = kKeysServiceActor);
// kRotated at `at`, related to the successor (rotated_to).
KeyEvent RotatedEvent(const KeyRecord& old_key, absl::Time at,
                      absl::string_view actor = kKeysServiceActor);
// kRevoked at revoked_at, for revocation_reason.
KeyEvent RevokedEvent(const KeyRecord& key, absl::string_view actor = kKeysServiceActor);
// kOverlapEnded at revoked_at (the overlap's end), related to the successor; by the service.
KeyEvent OverlapEndedEvent(const KeyRecord& key);

// The audit ledger's record of `event`: action KEY_CREATED, KEY_ROTATED, KEY_REVOKED or
// KEY_OVERLAP_ENDED by the event's actor (kKeysServiceActor when empty), in the ledger of the key's
// project and environment (the organisation's for admin keys), the owner as the subject, metadata
// key_id, kind, owner_type, at (RFC 3339, UTC) and, when set, related_key_id and reason, and a
// request id derived from the key and the event ("keys:<EventTypeName>:<key id>"), so that the same
// event appended twice (a retry, or two replicas sweeping the same overlap) is recorded once.
ledger::LedgerRecord LedgerRecordOf(const KeyEvent& event);

}  // namespace policy::keys

#endif  // POLICY_SERVICES_KEYS_KEY_EVENTS_H_
