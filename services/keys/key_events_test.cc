#include "services/keys/key_events.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace policy::keys {
namespace {

KeyEvent Event(KeyEvent::Type type, const std::string& key_id) {
  return KeyEvent{.type = type,
                  .key_id = key_id,
                  .kind = KeyKind::kProject,
                  .owner = Principal{PrincipalType::kMember, "alice@example.com"},
                  .project = "proj-a",
                  .environment = Environment::kProduction,
                  .at = absl::FromUnixSeconds(1700000000),
                  .related_key_id = "",
                  .reason = ""};
}

TEST(LedgerRecordOfTest, NamesTheKeyTheOwnerAndTheLedger) {
  KeyEvent rotated = Event(KeyEvent::Type::kRotated, "key_A");
  rotated.related_key_id = "key_B";
  EXPECT_EQ(LedgerRecordOf(rotated),
            (ledger::LedgerRecord{.action = "KEY_ROTATED",
                                  .actor = "keys-service",
                                  .project = "proj-a",
                                  .environment = "production",
                                  .subject = "alice@example.com",
                                  .request_id = "keys:key_rotated:key_A",
                                  .metadata = {{"key_id", "key_A"},
                                               {"kind", "project"},
                                               {"owner_type", "member"},
                                               {"related_key_id", "key_B"},
                                               {"at", "2023-11-14T22:13:20+00:00"}}}));

  // An admin key's event goes to the organisation's ledger.
  KeyEvent admin = Event(KeyEvent::Type::kOverlapEnded, "key_C");
  admin.kind = KeyKind::kAdmin;
  admin.owner.type = PrincipalType::kServiceAccount;
  admin.project = "";
  admin.at += absl::Microseconds(120000);
  admin.reason = "rotation overlap ended";
  EXPECT_EQ(LedgerRecordOf(admin),
            (ledger::LedgerRecord{.action = "KEY_OVERLAP_ENDED",
                                  .actor = "keys-service",
                                  .project = "",
                                  .environment = "",
                                  .subject = "alice@example.com",
                                  .request_id = "keys:key_auto_revoked:key_C",
                                  .metadata = {{"key_id", "key_C"},
                                               {"kind", "admin"},
                                               {"owner_type", "service_account"},
                                               {"reason", "rotation overlap ended"},
                                               {"at", "2023-11-14T22:13:20.12+00:00"}}}));

  EXPECT_EQ(LedgerRecordOf(Event(KeyEvent::Type::kCreated, "key_D")).action, "KEY_CREATED");
  // A change made on a member's behalf names them as the actor.
  KeyEvent revoked = Event(KeyEvent::Type::kRevoked, "key_E");
  revoked.actor = "dan";
  EXPECT_EQ(LedgerRecordOf(revoked).actor, "dan");
  EXPECT_EQ(RevokedEvent(KeyRecord{}, "dan").actor, "dan");
  EXPECT_EQ(RevokedEvent(KeyRecord{}, "").actor, "keys-service");
  EXPECT_EQ(LedgerRecordOf(Event(KeyEvent::Type::kRevoked, "key_D")).request_id,
            "keys:key_revoked:key_D");
}

}  // namespace
}  // namespace policy::keys
