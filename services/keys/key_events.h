#ifndef POLICY_SERVICES_KEYS_KEY_EVENTS_H_
#define POLICY_SERVICES_KEYS_KEY_EVENTS_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "services/keys/key.h"

namespace policy::keys {

// A change in a key's life, for the audit ledger. Never carries the secret or its hash.
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
  bool operator==(const KeyEvent&) const = default;
};

absl::string_view EventTypeName(KeyEvent::Type type);  // "key_created", "key_rotated", ...
absl::StatusOr<KeyEvent::Type> ParseEventType(absl::string_view name);

// The events of each change, from the records a store wrote; the stores use these so that
// both record the same events.
// kCreated at the key's creation, related to the key it replaced (rotated_from), if any.
KeyEvent CreatedEvent(const KeyRecord& key);
// kRotated at `at`, related to the successor (rotated_to).
KeyEvent RotatedEvent(const KeyRecord& old_key, absl::Time at);
// kRevoked at revoked_at, for revocation_reason.
KeyEvent RevokedEvent(const KeyRecord& key);
// kOverlapEnded at revoked_at (the overlap's end), related to the successor.
KeyEvent OverlapEndedEvent(const KeyRecord& key);

// What became of one attempt to deliver an event.
struct Delivery {
  enum class Result {
    kRecorded,   // Taken.
    kDuplicate,  // Taken before (the same event delivered again).
    kRetry,      // Not taken now (the destination is unreachable, slow or stopping).
    kRefused,    // Never taken: retrying would be refused again.
  };
  Result result = Result::kRecorded;
  std::string error;  // kRetry and kRefused: why, for logs and the outbox.
};

// Where key events end up (the audit ledger, or the log).
class KeyEventDestination {
 public:
  virtual ~KeyEventDestination() = default;
  // Delivers `event`, blocking for at most the destination's own timeout. Safe to call again
  // with the same event: a destination records each event once however often it arrives.
  virtual Delivery Deliver(const KeyEvent& event) = 0;
  // From any thread: the Deliver in progress and every later one return kRetry promptly.
  virtual void Cancel() {}
};

// Writes each event as a structured log line; always kRecorded.
class LogKeyEventDestination : public KeyEventDestination {
 public:
  Delivery Deliver(const KeyEvent& event) override;
};

}  // namespace policy::keys

#endif  // POLICY_SERVICES_KEYS_KEY_EVENTS_H_
