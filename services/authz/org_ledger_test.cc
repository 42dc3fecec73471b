#include "services/authz/org_ledger.h"

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace policy::authz {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

OrgState Base() {
  OrgState s;
  s.version = 7;
  Project p;
  p.id = "support";
  p.environment = Environment::kProduction;
  s.projects = {p};
  Member alice;
  alice.id = "alice";
  alice.email = "alice@acme.example";
  alice.grants = {{Role::kOwner, "", std::nullopt}};
  Member bob;
  bob.id = "bob";
  bob.email = "bob@acme.example";
  bob.grants = {{Role::kMember, "support", std::nullopt}};
  s.members = {alice, bob};
  Invitation inv;
  inv.id = InvitationDigest("inv_secret");
  inv.email = "carol@acme.example";
  inv.role = Role::kReader;
  inv.projects = {"support"};
  s.invitations = {inv};
  return s;
}

std::vector<ledger::LedgerRecord> Records(const OrgChangeSource& source, const OrgState& before,
                                          OrgState after) {
  after.version = before.version + 1;
  return LedgerRecordsOf(source, before, after).value();
}

TEST(OrgLedgerTest, EachChangedEntityIsOneRecordByTheActor) {
  const OrgState before = Base();
  OrgState after = before;
  after.FindMember("bob")->grants = {{Role::kReader, "support", std::nullopt}};
  after.FindProject("support")->rpm_limit = 100;
  std::vector<ledger::LedgerRecord> records = Records({"alice"}, before, after);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].action, "PROJECT_CHANGED");
  EXPECT_EQ(records[0].metadata.at("project"), "support");
  EXPECT_EQ(records[0].metadata.at("fields"), "limits.rpm");
  EXPECT_EQ(records[1].action, "MEMBER_ROLE_CHANGED");
  EXPECT_EQ(records[1].subject, "bob");
  EXPECT_EQ(records[1].metadata.at("roles"), "reader@support");
  for (const ledger::LedgerRecord& r : records) {
    EXPECT_EQ(r.actor, "alice");
    EXPECT_EQ(r.project, "");  // The organisation's ledger.
    EXPECT_THAT(r.request_id, StartsWith("authz:"));
  }
  EXPECT_NE(records[0].request_id, records[1].request_id);
}

TEST(OrgLedgerTest, AnErasureErasesTheAddressUnlessAMemberStillHoldsIt) {
  OrgState before = Base();
  before.FindMember("bob")->removed_at = kNow;
  OrgState after = before;
  Member* bob = after.FindMember("bob");
  bob->email = "";
  bob->erased_at = kNow;
  const ErasedAddresses erased(before, after);
  EXPECT_FALSE(erased.empty());
  EXPECT_TRUE(erased.Names("bob@acme.example"));
  EXPECT_TRUE(erased.Names("Bob@ACME.example"));
  EXPECT_FALSE(erased.Names("bob"));
  EXPECT_FALSE(erased.Names("alice@acme.example"));
  // Nothing newly erased: a later change, or one erasing a member erased before.
  EXPECT_TRUE(ErasedAddresses(after, after).empty());
  EXPECT_TRUE(ErasedAddresses(before, before).empty());

  // A member still in the organisation holds the address (ignoring case): it stays.
  Member again;
  again.id = "bob2";
  again.email = "BOB@acme.example";
  before.members.push_back(again);
  after.members.push_back(again);
  EXPECT_TRUE(ErasedAddresses(before, after).empty());
  // Unless that member is removed too.
  after.FindMember("bob2")->removed_at = kNow;
  EXPECT_TRUE(ErasedAddresses(before, after).Names("bob@acme.example"));
}

TEST(OrgLedgerTest, AMemberRemovalIsNamedByItsRemovalIdSoAnOrchestratorCanWriteItToo) {
  const OrgState before = Base();
  OrgState after = before;
  after.FindMember("bob")->removed_at = kNow;
  after.FindMember("bob")->removal_id = "0123456789abcdef0123456789abcdef";
  std::vector<ledger::LedgerRecord> records = Records({"alice"}, before, after);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].action, "MEMBER_REMOVED");
  EXPECT_EQ(records[0].subject, "bob");
  EXPECT_TRUE(records[0].metadata.empty());
  EXPECT_EQ(records[0].request_id, "authz:member-removed:0123456789abcdef0123456789abcdef");
  EXPECT_EQ(records[0].request_id, MemberRemovalRequestId(*after.FindMember("bob")));
  // The same removal recorded again (say, by a replica that read the change) is the same id.
  EXPECT_EQ(Records({"alice"}, before, after)[0].request_id, records[0].request_id);
}

TEST(OrgLedgerTest, AMemberRemovedBeforeRemovalIdsIsNamedAsTheirRecordWas) {
  Member bob = *Base().FindMember("bob");
  bob.removed_at = kNow;
  EXPECT_EQ(MemberRemovalRequestId(bob),
            absl::StrCat("authz:member-removed:", ledger::ShortDigest("bob")));
}

TEST(OrgLedgerTest, AnInvitationIsNamedByADigestNeverItsId) {
  const OrgState before = Base();
  OrgState after = before;
  after.FindInvitation(InvitationDigest("inv_secret"))->state = InvitationState::kAccepted;
  Member carol;
  carol.id = "carol";
  carol.email = "carol@acme.example";
  carol.grants = {{Role::kReader, "support", std::nullopt}};
  after.members.push_back(carol);
  after.Sort();
  std::vector<ledger::LedgerRecord> records = Records({"carol"}, before, after);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].action, "MEMBER_ADDED");
  EXPECT_EQ(records[0].metadata.at("roles"), "reader@support");
  EXPECT_EQ(records[1].action, "INVITATION_CHANGED");
  EXPECT_EQ(records[1].subject, "carol@acme.example");
  EXPECT_EQ(records[1].metadata.at("change"), "accepted");
  // The same digest as before invitations were stored by it: "sha256:" and 32 hex digits.
  EXPECT_EQ(records[1].metadata.at("invitation"),
            absl::StrCat("sha256:", ledger::ShortDigest("inv_secret")));
  for (const ledger::LedgerRecord& r : records) {
    EXPECT_EQ(r.actor, "carol");
    for (const auto& [key, value] : r.metadata) EXPECT_THAT(value, Not(HasSubstr("inv_secret")));
  }
  // Deleted (an org file may drop invitations).
  OrgState dropped = before;
  dropped.invitations.clear();
  records = Records({"alice"}, before, dropped);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].metadata.at("change"), "deleted");
}

TEST(OrgLedgerTest, AnOrgFileEndsWithOneSummaryAndGroupsAndAccountsAreRecorded) {
  const OrgState before = Base();
  OrgState after = before;
  after.idp_groups = {IdpGroup{"eng", {{Role::kMember, "support", std::nullopt}}, {"x@a.example"}}};
  ServiceAccount sa;
  sa.id = "sa-ci";
  sa.project = "support";
  sa.environment = Environment::kProduction;
  after.service_accounts = {sa};
  std::vector<ledger::LedgerRecord> records =
      Records(OrgChangeSource{"alice", /*org_file=*/true, "5e1f", "git:0a1b2c3"}, before, after);
  std::vector<std::string> actions;
  for (const ledger::LedgerRecord& r : records) actions.push_back(r.action);
  EXPECT_THAT(actions,
              ElementsAre("SERVICE_ACCOUNT_CREATED", "IDP_GROUP_CHANGED", "ORG_FILE_APPLIED"));
  EXPECT_EQ(records[1].metadata.at("group"), "eng");
  EXPECT_EQ(records[1].metadata.at("members"), "1");
  EXPECT_EQ(records[2].metadata.at("org_version"), "8");
  EXPECT_EQ(records[2].metadata.at("changes"), "2");
  EXPECT_EQ(records[2].metadata.at("file_sha256"), "5e1f");
  EXPECT_EQ(records[2].metadata.at("reference"), "git:0a1b2c3");
  // An account's later change names the fields, not their values.
  OrgState changed = after;
  changed.service_accounts[0].rpm_limit = 5;
  records = Records({"alice"}, after, changed);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].action, "SERVICE_ACCOUNT_CHANGED");
  EXPECT_EQ(records[0].metadata.at("fields"), "limits.rpm");
}

TEST(OrgLedgerTest, AMembersManyGrantsFitTheLedgersMetadataBound) {
  std::vector<RoleGrant> grants;
  for (int i = 0; i < 100; ++i) {
    grants.push_back({Role::kReader, absl::StrCat("project-number-", i), std::nullopt});
  }
  const std::string text = GrantsText(grants);
  EXPECT_LE(text.size(), 1000u);
  EXPECT_THAT(text, StartsWith("reader@project-number-0,reader@project-number-1,"));
  EXPECT_THAT(text, testing::EndsWith(" more"));
  EXPECT_EQ(GrantsText({{Role::kOwner, "", std::nullopt}, {Role::kMember, "a", std::nullopt}}),
            "owner,member@a");
}

}  // namespace
}  // namespace policy::authz
