#ifndef POLICY_SERVICES_KEYS_KEY_EVENTS_H_
#define POLICY_SERVICES_KEYS_KEY_EVENTS_H_

#include <string>

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
  std::string related_key_id;  // kRotated: the successor.
  std::string reason;          // kRevoked, kOverlapEnded.
};

absl::string_view EventTypeName(KeyEvent::Type type);  // "key_created", "key_rotated", ...

// Where lifecycle events go. Publish is called after the change has committed, once per
// change, from any thread; it must not block for long.
class KeyEventSink {
 public:
  virtual ~KeyEventSink() = default;
  virtual void Publish(const KeyEvent& event) = 0;
};

// Writes each event as a structured log line.
class LogKeyEventSink : public KeyEventSink {
 public:
  void Publish(const KeyEvent& event) override;
};

}  // namespace policy::keys

#endif  // POLICY_SERVICES_KEYS_KEY_EVENTS_H_
