#include "services/keys/key_events.h"

#include "absl/strings/str_cat.h"

namespace policy::keys {
namespace {

KeyEvent EventOf(KeyEvent::Type type, const KeyRecord& key, absl::Time at, std::string related,
                 std::string reason, absl::string_view actor) {
  return KeyEvent{type,
                  key.key_id,
                  key.kind,
                  key.owner,
                  key.project,
                  key.environment,
                  at,
                  std::move(related),
                  std::move(reason),
                  std::string(actor.empty() ? kKeysServiceActor : actor)};
}

// audit.v1.Action's name without "ACTION_".
std::string ActionOf(KeyEvent::Type type) {
  switch (type) {
    case KeyEvent::Type::kCreated:
      return "KEY_CREATED";
    case KeyEvent::Type::kRotated:
      return "KEY_ROTATED";
    case KeyEvent::Type::kRevoked:
      return "KEY_REVOKED";
    case KeyEvent::Type::kOverlapEnded:
      return "KEY_OVERLAP_ENDED";
  }
  return "UNSPECIFIED";
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

KeyEvent CreatedEvent(const KeyRecord& key, absl::string_view actor) {
  return EventOf(KeyEvent::Type::kCreated, key, key.created_at, key.rotated_from, "", actor);
}

KeyEvent RotatedEvent(const KeyRecord& old_key, absl::Time at, absl::string_view actor) {
  return EventOf(KeyEvent::Type::kRotated, old_key, at, old_key.rotated_to, "", actor);
}

KeyEvent RevokedEvent(const KeyRecord& key, absl::string_view actor) {
  return EventOf(KeyEvent::Type::kRevoked, key, key.revoked_at.value_or(absl::UnixEpoch()), "",
                 key.revocation_reason, actor);
}

KeyEvent OverlapEndedEvent(const KeyRecord& key) {
  return EventOf(KeyEvent::Type::kOverlapEnded, key, key.revoked_at.value_or(absl::UnixEpoch()),
                 key.rotated_to, key.revocation_reason, kKeysServiceActor);
}

ledger::LedgerRecord LedgerRecordOf(const KeyEvent& event) {
  ledger::LedgerRecord record;
  record.action = ActionOf(event.type);
  record.actor = event.actor.empty() ? std::string(kKeysServiceActor) : event.actor;
  if (!event.project.empty()) {
    record.project = event.project;
    record.environment = std::string(EnvironmentName(event.environment));
  }
  record.subject = event.owner.id;
  record.request_id = absl::StrCat("keys:", EventTypeName(event.type), ":", event.key_id);
  record.metadata["key_id"] = event.key_id;
  record.metadata["kind"] = std::string(KindName(event.kind));
  record.metadata["owner_type"] = std::string(PrincipalTypeName(event.owner.type));
  record.metadata["at"] = absl::FormatTime(absl::RFC3339_full, event.at, absl::UTCTimeZone());
  if (!event.related_key_id.empty()) record.metadata["related_key_id"] = event.related_key_id;
  if (!event.reason.empty()) record.metadata["reason"] = event.reason;
  return record;
}

}  // namespace policy::keys
