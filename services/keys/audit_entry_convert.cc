#include "services/keys/audit_entry_convert.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace policy::keys {
namespace {

namespace av1 = audit::v1;

// Who the ledger names as acting: key events are the keys service's own records.
constexpr char kActor[] = "keys-service";

av1::Action ActionOf(KeyEvent::Type type) {
  switch (type) {
    case KeyEvent::Type::kCreated:
      return av1::ACTION_KEY_CREATED;
    case KeyEvent::Type::kRotated:
      return av1::ACTION_KEY_ROTATED;
    case KeyEvent::Type::kRevoked:
      return av1::ACTION_KEY_REVOKED;
    case KeyEvent::Type::kOverlapEnded:
      return av1::ACTION_KEY_OVERLAP_ENDED;
  }
  return av1::ACTION_UNSPECIFIED;
}

}  // namespace

av1::AppendRequest AuditEntryOf(const KeyEvent& event) {
  av1::AppendRequest request;
  av1::EntryInput& entry = *request.mutable_entry();
  entry.set_action(ActionOf(event.type));
  entry.set_actor(kActor);
  if (!event.project.empty()) {
    entry.set_project(event.project);
    entry.set_environment(std::string(EnvironmentName(event.environment)));
  }
  entry.set_outcome(av1::OUTCOME_SUCCESS);
  entry.set_subject(event.owner.id);
  auto& metadata = *entry.mutable_metadata();
  metadata["key_id"] = event.key_id;
  metadata["kind"] = std::string(KindName(event.kind));
  metadata["owner_type"] = std::string(PrincipalTypeName(event.owner.type));
  metadata["at"] = absl::FormatTime(absl::RFC3339_full, event.at, absl::UTCTimeZone());
  if (!event.related_key_id.empty()) metadata["related_key_id"] = event.related_key_id;
  if (!event.reason.empty()) metadata["reason"] = event.reason;
  entry.set_request_id(absl::StrCat("keys:", EventTypeName(event.type), ":", event.key_id));
  return request;
}

}  // namespace policy::keys
