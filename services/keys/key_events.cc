#include "services/keys/key_events.h"

#include "absl/strings/str_cat.h"
#include "common/log/log.h"

namespace policy::keys {
namespace {

KeyEvent EventOf(KeyEvent::Type type, const KeyRecord& key, absl::Time at, std::string related,
                 std::string reason) {
  return KeyEvent{type,      key.key_id,         key.kind,
                  key.owner, key.project,        key.environment,
                  at,        std::move(related), std::move(reason)};
}

}  // namespace

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

absl::StatusOr<KeyEvent::Type> ParseEventType(absl::string_view name) {
  for (KeyEvent::Type type : {KeyEvent::Type::kCreated, KeyEvent::Type::kRotated,
                              KeyEvent::Type::kRevoked, KeyEvent::Type::kOverlapEnded}) {
    if (EventTypeName(type) == name) return type;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown key event '", name, "'"));
}

KeyEvent CreatedEvent(const KeyRecord& key) {
  return EventOf(KeyEvent::Type::kCreated, key, key.created_at, key.rotated_from, "");
}

KeyEvent RotatedEvent(const KeyRecord& old_key, absl::Time at) {
  return EventOf(KeyEvent::Type::kRotated, old_key, at, old_key.rotated_to, "");
}

KeyEvent RevokedEvent(const KeyRecord& key) {
  return EventOf(KeyEvent::Type::kRevoked, key, key.revoked_at.value_or(absl::UnixEpoch()), "",
                 key.revocation_reason);
}

KeyEvent OverlapEndedEvent(const KeyRecord& key) {
  return EventOf(KeyEvent::Type::kOverlapEnded, key, key.revoked_at.value_or(absl::UnixEpoch()),
                 key.rotated_to, key.revocation_reason);
}

Delivery LogKeyEventDestination::Deliver(const KeyEvent& event) {
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
  return Delivery{Delivery::Result::kRecorded, ""};
}

}  // namespace policy::keys
