#include "services/keys/key_events.h"

#include "common/log/log.h"

namespace policy::keys {

absl::string_view EventTypeName(KeyEvent::Type type) {
  switch (type) {
    case KeyEvent::Type::kCreated:
      return "key_created";
    case KeyEvent::Type::kRotated:
      return "key_rotated";
    case KeyEvent::Type::kRevoked:
      return "key_revoked";
    case KeyEvent::Type::kOverlapEnded:
      return "key_auto_revoked";
  }
  return "unknown";
}

void LogKeyEventSink::Publish(const KeyEvent& event) {
  LogInfo("key lifecycle event",
          {{"event", EventTypeName(event.type)},
           {"key_id", event.key_id},
           {"kind", KindName(event.kind)},
           {"owner_type", PrincipalTypeName(event.owner.type)},
           {"owner_id", event.owner.id},
           {"project", event.project},
           {"at", absl::FormatTime(absl::RFC3339_full, event.at, absl::UTCTimeZone())},
           {"related_key_id", event.related_key_id},
           {"reason", event.reason}});
}

}  // namespace policy::keys
