// Who may administer what, end to end through OrgAdmin on a memory store and a cache.
#include "services/authz/org_admin.h"

#include <limits>

#include "absl/strings/str_replace.h"
#include "common/clock/clock.h"
#include "common/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/authz/decision.h"
#include "services/authz/memory_org_store.h"
#include "services/authz/org_cache.h"
#include "services/authz/org_file.h"
#include "services/authz/org_validation.h"

namespace policy::authz {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;
using ::testing::Not;

Project MakeProject(const std::string& id) {
  Project p;
  p.id = id;
  p.name = "Project " + id;
  p.environment = Environment::kProduction;
  p.allowed_models = {"gpt-4o"};
  return p;
}

Member MakeMember(const std::string& id, std::vector<RoleGrant> grants) {
  Member m;
  m.id = id;
  m.email = id + "@acme.example";
  m.grants = std::move(grants);
  return m;
}

// A service account of `project` in `environment` that may call chat completions.
ServiceAccount MakeAccount(const std::string& id, const std::string& project,
                           Environment environment) {
  ServiceAccount sa;
  sa.id = id;
  sa.project = project;
  sa.environment = environment;
  sa.permissions = {"chat.completions"};
  return sa;
}

class OrgAdminTest : public ::testing::Test {
 protected:
  OrgAdminTest() {
    OrgState initial;
    Project support = MakeProject("support");
    support.rpm_limit = 100;
    initial.projects = {support};
    initial.members = {MakeMember("olivia", {{Role::kOwner, "", std::nullopt}}),
                       MakeMember("adam", {{Role::kAdmin, "", std::nullopt}}),
                       MakeMember("mia", {{Role::kMember, "support", std::nullopt}}),
                       MakeMember("rita", {{Role::kReader, "support", std::nullopt}})};
    store_ = std::make_unique<MemoryOrgStore>(std::move(initial));
    store_->Watch(&cache_);
    admin_ = std::make_unique<OrgAdmin>(store_.get(), &cache_, &clock_);
  }
  ~OrgAdminTest() override { store_->StopWatching(); }

  bool Allowed(const std::string& member, const std::string& project, const std::string& action) {
    absl::StatusOr<OrgView> view = cache_.Current();
    CheckRequest check;
    check.principal_id = member;
    check.project = project;
    check.action = action;
    check.model = "gpt-4o";
    absl::StatusOr<Decision> d = Check(*view->snapshot, check, clock_.Now());
    return d.ok() && d->allowed;
  }

  // A cache holding the organisation as it is now and kept so: what another replica, not yet
  // told of later changes, still decides on within the staleness bound.
  std::unique_ptr<OrgCache> FrozenCache() {
    auto frozen = std::make_unique<OrgCache>(&clock_, absl::Seconds(1));
    frozen->OnState(*store_->Load());
    frozen->OnInSync(clock_.Now());
    return frozen;
  }

  // The request ids of the MEMBER_REMOVED records written so far.
  std::vector<std::string> RemovalRequestIds() {
    absl::StatusOr<std::vector<ledger::OutboxEntry>> entries = store_->outbox().Read(1000);
    std::vector<std::string> ids;
    if (!entries.ok()) return {entries.status().ToString()};
    for (const ledger::OutboxEntry& e : *entries) {
      if (e.record.action == "MEMBER_REMOVED") ids.push_back(e.record.request_id);
    }
    return ids;
  }

  FakeClock clock_;
  OrgCache cache_{&clock_, absl::Seconds(1)};
  std::unique_ptr<MemoryOrgStore> store_;
  std::unique_ptr<OrgAdmin> admin_;
  OrgAdmin& admin() { return *admin_; }
};

TEST_F(OrgAdminTest, AdminsManageProjectsButOnlyOwnersSetLimits) {
  Project p = MakeProject("research");
  EXPECT_TRUE(admin().CreateProject("adam", p).ok());
  Project limited = MakeProject("billing");
  limited.rpm_limit = 10;
  absl::StatusOr<Project> refused = admin().CreateProject("adam", limited);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(refused.status().message(), HasSubstr("billing.manage"));
  EXPECT_TRUE(admin().CreateProject("olivia", limited).ok());

  Project raise = MakeProject("support");
  raise.rpm_limit = 1000;
  EXPECT_EQ(admin().UpdateProject("adam", raise).status().code(),
            absl::StatusCode::kPermissionDenied);
  // The same limits with another name is fine for an admin.
  Project rename = MakeProject("support");
  rename.rpm_limit = 100;
  rename.name = "Support v2";
  absl::StatusOr<Project> renamed = admin().UpdateProject("adam", rename);
  ASSERT_TRUE(renamed.ok()) << renamed.status();
  EXPECT_EQ(renamed->name, "Support v2");
  EXPECT_TRUE(admin().UpdateProject("olivia", raise).ok());

  // Members and readers manage nothing.
  EXPECT_EQ(admin().CreateProject("mia", MakeProject("x")).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(admin().ArchiveProject("rita", "support").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(admin().CreateProject("olivia", MakeProject("support")).status().code(),
            absl::StatusCode::kAlreadyExists);
}

TEST_F(OrgAdminTest, AMemberIsNotAddedWithAGrantThatHasExpiredButARetryIsDone) {
  const absl::Time soon = clock_.Now() + absl::Minutes(1);
  const Member member = MakeMember("tess", {{Role::kMember, "support", soon}});
  ASSERT_TRUE(admin().AddMember("adam", member).ok());
  clock_.Advance(absl::Minutes(2));
  // The retry of what was added is done, though its grant has expired since.
  EXPECT_TRUE(admin().AddMember("adam", member).ok());
  const absl::Status late =
      admin().AddMember("adam", MakeMember("uma", {{Role::kMember, "support", soon}})).status();
  EXPECT_EQ(late.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(late.message(), HasSubstr("member.grants[0].expires_at: "));
  EXPECT_THAT(late.message(), HasSubstr(" has passed: the grant would allow nothing"));
}

TEST_F(OrgAdminTest, AnUpdateFromWhatWasReadDoesNotUndoAChangeMadeMeanwhile) {
  ASSERT_TRUE(admin().CreateProject("adam", MakeProject("shared")).ok());
  const Project read = MakeProject("shared");
  // Another admin turns zero data retention on after the read.
  Project zdr = read;
  zdr.data_policy.zero_data_retention = true;
  ASSERT_TRUE(admin().UpdateProject("adam", zdr).ok());
  Project renamed = read;
  renamed.name = "Shared v2";
  const absl::Status refused = admin().UpdateProject("adam", renamed, {}, read).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.message(), HasSubstr("expected: project 'shared' changed since it was read"));
  EXPECT_TRUE(store_->Load().value()->FindProject("shared")->data_policy.zero_data_retention);
  // From what is stored now it goes through, and its retry (stored = what it asks) too.
  Project from_now = zdr;
  from_now.name = "Shared v2";
  ASSERT_TRUE(admin().UpdateProject("adam", from_now, {}, zdr).ok());
  EXPECT_TRUE(admin().UpdateProject("adam", from_now, {}, zdr).ok());
  EXPECT_EQ(store_->Load().value()->FindProject("shared")->name, "Shared v2");
}

TEST_F(OrgAdminTest, AnUpdateKeepsTheSettingsItDoesNotState) {
  Project eu = MakeProject("kept");
  eu.data_policy.residency = Residency::kEu;
  eu.data_policy.pii_rules = {{"US_SSN", PiiTreatment::kBlock}};
  eu.data_policy.data_class = DataClass::kPhi;
  eu.key_holders = KeyHolders::kServiceAccounts;
  ASSERT_TRUE(admin().CreateProject("adam", eu).ok());
  Project renamed = MakeProject("kept");  // Global, members: what a client unaware of both sends.
  renamed.name = "Kept v2";
  absl::StatusOr<Project> kept = admin().UpdateProject(
      "adam", renamed,
      {.key_holders = true, .residency = true, .pii_rules = true, .data_class = true});
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->name, "Kept v2");
  EXPECT_EQ(kept->data_policy.residency, Residency::kEu);
  EXPECT_EQ(kept->data_policy.pii_rules, eu.data_policy.pii_rules);
  EXPECT_EQ(kept->data_policy.data_class, DataClass::kPhi);
  EXPECT_EQ(kept->key_holders, KeyHolders::kServiceAccounts);
  // Such a client's read-modify-write: what it read lacks them too, and is still what it read.
  Project read = renamed;
  Project again = renamed;
  again.name = "Kept v3";
  absl::StatusOr<Project> written = admin().UpdateProject(
      "adam", again,
      {.key_holders = true, .residency = true, .pii_rules = true, .data_class = true}, read);
  ASSERT_TRUE(written.ok()) << written.status();
  EXPECT_EQ(written->name, "Kept v3");
  EXPECT_EQ(written->data_policy.residency, Residency::kEu);
  EXPECT_EQ(written->data_policy.pii_rules, eu.data_policy.pii_rules);
  EXPECT_EQ(written->data_policy.data_class, DataClass::kPhi);
  // Stated, they change.
  absl::StatusOr<Project> anywhere = admin().UpdateProject("adam", renamed);
  ASSERT_TRUE(anywhere.ok()) << anywhere.status();
  EXPECT_EQ(anywhere->data_policy.residency, Residency::kGlobal);
  EXPECT_THAT(anywhere->data_policy.pii_rules, IsEmpty());
  EXPECT_EQ(anywhere->data_policy.data_class, DataClass::kInternal);
  EXPECT_EQ(anywhere->key_holders, KeyHolders::kMembers);
}

TEST_F(OrgAdminTest, AnArchivedProjectsIdIsNeverUsedAgainAndTheRefusalSaysSo) {
  ASSERT_TRUE(admin().CreateProject("adam", MakeProject("fresh")).ok());
  ASSERT_TRUE(admin().ArchiveProject("adam", "fresh").ok());
  const absl::Status again = admin().CreateProject("adam", MakeProject("fresh")).status();
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(again.message(),
            "project 'fresh' was archived: its id is never used again; choose "
            "another");
  // So it says whatever else differs.
  Project other = MakeProject("fresh");
  other.name = "Another";
  other.allowed_models = {"o3"};
  EXPECT_EQ(admin().CreateProject("adam", other).status().message(), again.message());
}

TEST_F(OrgAdminTest, ArchivedProjectsAllowNothingButReading) {
  ASSERT_TRUE(admin().ArchiveProject("adam", "support").ok());
  EXPECT_FALSE(Allowed("mia", "support", "chat.completions"));
  EXPECT_TRUE(Allowed("rita", "support", "settings.read"));
  absl::Status grant = admin()
                           .SetMemberRoles("adam", "rita",
                                           {{Role::kReader, "support", std::nullopt},
                                            {Role::kMember, "support", std::nullopt}})
                           .status();
  EXPECT_EQ(grant.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(grant.message(), HasSubstr("archived"));

  // A change its owner may make is refused for the project's state, not the owner's rights.
  Project rename = MakeProject("support");
  rename.rpm_limit = 100;
  rename.name = "Support (old)";
  absl::Status update = admin().UpdateProject("olivia", rename).status();
  EXPECT_EQ(update.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(update.message(), HasSubstr("project 'support' is archived"));
  EXPECT_EQ(ReasonOf(update), "PROJECT_ARCHIVED");
  // One whose roles would not allow it anyway is refused for those.
  EXPECT_EQ(admin().UpdateProject("rita", rename).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(admin().UpdateProject("mia", rename).status().code(),
            absl::StatusCode::kPermissionDenied);
  // A decision in it stays a deny with its reason.
  CheckRequest check;
  check.principal_id = "mia";
  check.project = "support";
  check.action = "chat.completions";
  check.model = "gpt-4o";
  absl::StatusOr<Decision> d = Check(*cache_.Current()->snapshot, check, clock_.Now());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_FALSE(d->allowed);
  EXPECT_EQ(d->reason, DenyReason::kProjectArchived);
}

TEST_F(OrgAdminTest, OnlyOwnersManageOwners) {
  EXPECT_EQ(admin()
                .AddMember("adam", MakeMember("new", {{Role::kOwner, "", std::nullopt}}))
                .status()
                .code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(admin().AddMember("adam", MakeMember("new", {{Role::kMember, "support", {}}})).ok());
  EXPECT_EQ(admin().RemoveMember("adam", "olivia").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(
      admin().SetMemberRoles("adam", "new", {{Role::kOwner, "", std::nullopt}}).status().code(),
      absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(admin().SetMemberRoles("olivia", "new", {{Role::kOwner, "", std::nullopt}}).ok());
  EXPECT_TRUE(Allowed("new", "", "billing.manage"));
  EXPECT_EQ(admin().AddMember("mia", MakeMember("x", {})).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(OrgAdminTest, TheLastOwnerCannotRemoveItself) {
  absl::Status s = admin().RemoveMember("olivia", "olivia").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("owner"));
  s = admin().SetMemberRoles("olivia", "olivia", {{Role::kAdmin, "", std::nullopt}}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(admin().SetMemberRoles("olivia", "adam", {{Role::kOwner, "", std::nullopt}}).ok());
  EXPECT_TRUE(admin().RemoveMember("olivia", "olivia").ok());
}

TEST_F(OrgAdminTest, SomeOwnerGrantNeverExpires) {
  // olivia, the only owner, cannot give her owner grant an end: once it lapsed nobody could
  // grant owner again.
  const absl::Time soon = clock_.Now() + absl::Seconds(10);
  absl::Status s = admin().SetMemberRoles("olivia", "olivia", {{Role::kOwner, "", soon}}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("without an owner whose owner grant never expires"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("the owner grant of member 'olivia' expires"));
  // Nor can the organisation file.
  absl::StatusOr<std::string> yaml = admin().ExportOrgFile("olivia");
  ASSERT_TRUE(yaml.ok()) << yaml.status();
  const size_t owner = yaml->find("role: owner");
  ASSERT_NE(owner, std::string::npos) << *yaml;
  std::string expiring = *yaml;
  expiring.insert(owner + std::string("role: owner").size(), ", expires: 2030-01-01T00:00:00Z");
  s = admin().ApplyOrgFile("olivia", expiring, "").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  // (Also her own grant ended sooner by her own file: that rule speaks first.)
  EXPECT_THAT(s.message(),
              ::testing::AnyOf(HasSubstr("never expires"), HasSubstr("ends it sooner")));
  s = admin().PlanOrgFile("olivia", expiring).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  // With another owner for good, hers may end; then his may not.
  ASSERT_TRUE(admin().SetMemberRoles("olivia", "adam", {{Role::kOwner, "", std::nullopt}}).ok());
  ASSERT_TRUE(admin().SetMemberRoles("olivia", "olivia", {{Role::kOwner, "", soon}}).ok());
  EXPECT_EQ(admin().SetMemberRoles("adam", "adam", {{Role::kOwner, "", soon}}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // Once hers lapsed, adam still manages owners.
  clock_.Advance(absl::Seconds(11));
  EXPECT_FALSE(Allowed("olivia", "", "owners.manage"));
  EXPECT_TRUE(admin().SetMemberRoles("adam", "olivia", {{Role::kOwner, "", std::nullopt}}).ok());
}

TEST_F(OrgAdminTest, AnOwnerMadeSinceTheCacheWasCurrentIsNotRemovedByAnAdmin) {
  // adam's replica still sees mia as a member when olivia makes her an owner.
  std::unique_ptr<OrgCache> before_promotion = FrozenCache();
  ASSERT_TRUE(admin().SetMemberRoles("olivia", "mia", {{Role::kOwner, "", std::nullopt}}).ok());
  OrgAdmin lagging(store_.get(), before_promotion.get(), &clock_);
  absl::Status s = lagging.RemoveMember("adam", "mia").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted);
  EXPECT_FALSE(cache_.Current()->state->FindMember("mia")->removed_at.has_value());
  // Once the replica catches up, the admin is refused for the role; an owner may remove her.
  EXPECT_EQ(admin().RemoveMember("adam", "mia").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(admin().RemoveMember("olivia", "mia").ok());
  // A removal retried from the lagging replica finds her removed and changes nothing.
  bool removed_now = true;
  EXPECT_TRUE(lagging.RemoveMember("adam", "mia", &removed_now).ok());
  EXPECT_FALSE(removed_now);
}

TEST_F(OrgAdminTest, ARemovedMemberIsDeniedAtOnceAndForGood) {
  ASSERT_TRUE(Allowed("mia", "support", "chat.completions"));
  bool removed_now = false;
  absl::StatusOr<Member> removed = admin().RemoveMember("adam", "mia", &removed_now);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_TRUE(removed_now);
  EXPECT_EQ(removed->removed_at, clock_.Now());
  EXPECT_FALSE(Allowed("mia", "support", "chat.completions"));
  // Removal is final: no roles for the id again.
  EXPECT_EQ(admin()
                .SetMemberRoles("adam", "mia", {{Role::kMember, "support", std::nullopt}})
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  // Removing again changes nothing and keeps the first time.
  clock_.Advance(absl::Minutes(1));
  absl::StatusOr<Member> again = admin().RemoveMember("adam", "mia", &removed_now);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(removed_now);
  EXPECT_EQ(again->removed_at, removed->removed_at);
  // And answers the removal's own id, which the ledger's one record of it carries.
  EXPECT_THAT(removed->removal_id, MatchesRegex("[0-9a-f]{32}"));
  EXPECT_EQ(again->removal_id, removed->removal_id);
  EXPECT_EQ(RemovalRequestIds(), std::vector<std::string>{MemberRemovalRequestId(*removed)});
}

TEST_F(OrgAdminTest, ErasingARemovedMemberLeavesNoAddressOfTheirsBehind) {
  Invitation invitation;
  invitation.email = "MIA@acme.example";
  invitation.role = Role::kReader;
  invitation.projects = {"support"};
  ASSERT_TRUE(admin().CreateInvitation("adam", invitation, absl::Hours(1)).ok());
  invitation.email = "nora@acme.example";
  ASSERT_TRUE(admin().CreateInvitation("adam", invitation, absl::Hours(1)).ok());
  ASSERT_TRUE(store_
                  ->Mutate(
                      [](OrgState& s) {
                        s.idp_groups.push_back({"support-engineers",
                                                {{Role::kReader, "support", std::nullopt}},
                                                {"Mia@acme.example", "nora@acme.example"}});
                        return absl::OkStatus();
                      },
                      clock_.Now(), OrgChangeSource{"olivia"})
                  .ok());
  // Only a removed member is erased, and only by an owner.
  EXPECT_EQ(admin().EraseMember("olivia", "mia").status().code(),
            absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<Member> removed = admin().RemoveMember("adam", "mia");
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(admin().EraseMember("adam", "mia").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(admin().EraseMember("olivia", "nobody").status().code(), absl::StatusCode::kNotFound);

  clock_.Advance(absl::Minutes(1));
  absl::StatusOr<Member> erased = admin().EraseMember("olivia", "mia");
  ASSERT_TRUE(erased.ok()) << erased.status();
  EXPECT_EQ(erased->email, "");
  EXPECT_EQ(erased->erased_at, clock_.Now());
  EXPECT_EQ(erased->removed_at, removed->removed_at);
  EXPECT_EQ(erased->removal_id, removed->removal_id);
  EXPECT_FALSE(Allowed("mia", "support", "chat.completions"));
  absl::StatusOr<std::shared_ptr<const OrgState>> state = store_->Load();
  ASSERT_TRUE(state.ok());
  ASSERT_EQ((*state)->invitations.size(), 1u);
  EXPECT_EQ((*state)->invitations[0].email, "nora@acme.example");
  ASSERT_EQ((*state)->idp_groups.size(), 1u);
  EXPECT_EQ((*state)->idp_groups[0].members, std::vector<std::string>{"nora@acme.example"});

  // The ledger learns of it under no name: one record, tied to the removal's.
  absl::StatusOr<std::vector<ledger::OutboxEntry>> records = store_->outbox().Read(1000);
  ASSERT_TRUE(records.ok());
  const ledger::LedgerRecord& last = records->back().record;
  EXPECT_EQ(last.action, "MEMBER_ERASED");
  EXPECT_EQ(last.actor, "olivia");
  EXPECT_EQ(last.subject, "");
  EXPECT_EQ(last.metadata,
            (std::map<std::string, std::string>{{"removal", MemberRemovalRequestId(*removed)},
                                                {"invitations_deleted", "1"},
                                                {"idp_groups_changed", "1"}}));
  EXPECT_EQ(records->end()[-2].record.action, "MEMBER_REMOVED");

  // Again: nothing changes. And no change can give the address back.
  clock_.Advance(absl::Minutes(1));
  absl::StatusOr<Member> again = admin().EraseMember("olivia", "mia");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->erased_at, erased->erased_at);
  EXPECT_EQ((*store_->Load())->version, (*state)->version);
  absl::Status restored = store_
                              ->Mutate(
                                  [](OrgState& s) {
                                    s.FindMember("mia")->email = "mia@acme.example";
                                    s.FindMember("mia")->erased_at.reset();
                                    return absl::OkStatus();
                                  },
                                  clock_.Now(), OrgChangeSource{"olivia"})
                              .status();
  EXPECT_EQ(restored.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(restored.message(), HasSubstr("erasure is final"));
}

TEST_F(OrgAdminTest, AnAddressAnActiveMemberHoldsKeepsItsInvitations) {
  // Rita left and came back under a new id.
  ASSERT_TRUE(admin().RemoveMember("adam", "rita").ok());
  Member back = MakeMember("rita-2", {{Role::kReader, "support", std::nullopt}});
  back.email = "Rita@acme.example";
  ASSERT_TRUE(admin().AddMember("adam", back).ok());
  Invitation invitation;
  invitation.email = "rita@acme.example";
  invitation.role = Role::kMember;
  invitation.projects = {"support"};
  ASSERT_TRUE(admin().CreateInvitation("adam", invitation, absl::Hours(1)).ok());

  absl::StatusOr<Member> erased = admin().EraseMember("olivia", "rita");
  ASSERT_TRUE(erased.ok()) << erased.status();
  EXPECT_EQ(erased->email, "");
  absl::StatusOr<std::shared_ptr<const OrgState>> state = store_->Load();
  ASSERT_TRUE(state.ok());
  EXPECT_EQ((*state)->invitations.size(), 1u);
  EXPECT_EQ((*state)->FindMember("rita-2")->email, "rita@acme.example");
  EXPECT_TRUE(Allowed("rita-2", "support", "settings.read"));
}

TEST_F(OrgAdminTest, APlanAppliesLaterThanItWasMade) {
  // The organisation as a file, without mia: applying it removes her, stamped with the
  // apply's time, not the plan's.
  absl::StatusOr<std::string> yaml = admin().ExportOrgFile("olivia");
  ASSERT_TRUE(yaml.ok()) << yaml.status();
  const size_t start = yaml->find("  - id: mia\n");
  ASSERT_NE(start, std::string::npos) << *yaml;
  const size_t end = yaml->find("  - id: ", start + 1);
  ASSERT_NE(end, std::string::npos) << *yaml;
  const std::string without_mia = yaml->substr(0, start) + yaml->substr(end);
  absl::StatusOr<OrgPlan> plan = admin().PlanOrgFile("olivia", without_mia);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(plan->text, HasSubstr("~ member mia"));
  clock_.Advance(absl::Seconds(2));
  absl::StatusOr<OrgPlan> applied = admin().ApplyOrgFile("olivia", without_mia, plan->fingerprint);
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_FALSE(Allowed("mia", "support", "chat.completions"));
  // Removed by the file as by RemoveMember: under a removal id of her own, which RemoveMember
  // answers from then on.
  absl::StatusOr<Member> mia = admin().RemoveMember("adam", "mia");
  ASSERT_TRUE(mia.ok()) << mia.status();
  EXPECT_THAT(mia->removal_id, MatchesRegex("[0-9a-f]{32}"));
  EXPECT_EQ(RemovalRequestIds(), std::vector<std::string>{MemberRemovalRequestId(*mia)});
  // The same apply again (a retry whose first attempt committed) has nothing left to change,
  // and goes through whatever its fingerprint.
  absl::StatusOr<OrgPlan> retried = admin().ApplyOrgFile("olivia", without_mia, plan->fingerprint);
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_TRUE(retried->changes.empty());
  EXPECT_EQ(retried->org_version, applied->org_version);
  // A plan of an older organisation version whose file would change something else now does
  // not apply.
  ASSERT_TRUE(admin().AddMember("olivia", MakeMember("zoe", {})).ok());
  absl::Status again = admin().ApplyOrgFile("olivia", without_mia, plan->fingerprint).status();
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(again.message(),
              HasSubstr("plan_fingerprint: applying this file now makes other changes"));
}

// `yaml` without the list item "  - id: <id>" (up to the next item or section).
std::string WithoutItem(const std::string& yaml, const std::string& id) {
  const size_t start = yaml.find("  - id: " + id + "\n");
  if (start == std::string::npos) return yaml;
  size_t end = start + 1;
  while ((end = yaml.find('\n', end)) != std::string::npos && end + 1 < yaml.size() &&
         (yaml.compare(end + 1, 4, "    ") == 0)) {
    ++end;
  }
  return yaml.substr(0, start) + (end == std::string::npos ? "" : yaml.substr(end + 1));
}

TEST_F(OrgAdminTest, AnOwnerCannotTakeTheirOwnOwnershipAwayByAFile) {
  // With adam an owner too, olivia's file removing or demoting olivia is refused at plan and
  // at apply (she might leave only owners without a key); adam may apply either.
  ASSERT_TRUE(admin().SetMemberRoles("olivia", "adam", {{Role::kOwner, "", std::nullopt}}).ok());
  absl::StatusOr<std::string> yaml = admin().ExportOrgFile("olivia");
  ASSERT_TRUE(yaml.ok()) << yaml.status();
  const std::string without_olivia = WithoutItem(*yaml, "olivia");
  ASSERT_EQ(without_olivia.find("id: olivia"), std::string::npos) << without_olivia;
  std::string demoted = *yaml;
  const size_t olivia = demoted.find("  - id: olivia\n");
  const size_t owner = demoted.find("role: owner", olivia);
  ASSERT_NE(owner, std::string::npos) << demoted;
  demoted.replace(owner, std::string("role: owner").size(), "role: admin");
  std::string ending = *yaml;
  ending.insert(owner + std::string("role: owner").size(), ", expires: 2030-01-01T00:00:00Z");
  for (const std::string& file : {without_olivia, demoted, ending}) {
    absl::Status planned = admin().PlanOrgFile("olivia", file).status();
    EXPECT_EQ(planned.code(), absl::StatusCode::kFailedPrecondition) << file;
    EXPECT_THAT(planned.message(), HasSubstr("removes 'olivia', who applies it"));
    absl::Status applied = admin().ApplyOrgFile("olivia", file, "").status();
    EXPECT_EQ(applied.code(), absl::StatusCode::kFailedPrecondition) << file;
    EXPECT_TRUE(Allowed("olivia", "", "owners.manage"));
  }
  absl::StatusOr<OrgPlan> plan = admin().PlanOrgFile("adam", demoted);
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_TRUE(admin().ApplyOrgFile("adam", demoted, plan->fingerprint).ok());
  EXPECT_FALSE(Allowed("olivia", "", "owners.manage"));
  EXPECT_TRUE(Allowed("olivia", "", "members.manage"));
}

TEST_F(OrgAdminTest, AProblemFoundAfterParsingNamesTheLineOfTheEntry) {
  ASSERT_TRUE(admin().CreateProject("olivia", MakeProject("old")).ok());
  ASSERT_TRUE(admin().ArchiveProject("olivia", "old").ok());
  absl::StatusOr<std::string> yaml = admin().ExportOrgFile("olivia");
  ASSERT_TRUE(yaml.ok()) << yaml.status();
  const std::string grant = "      - {role: member, project: support}\n";
  const size_t mia = yaml->find("  - id: mia\n");
  const size_t at = yaml->find(grant, mia);
  ASSERT_NE(at, std::string::npos) << *yaml;
  std::string file = *yaml;
  file.insert(at + grant.size(), "      - {role: member, project: old}\n");
  for (bool apply : {false, true}) {
    absl::Status s = apply ? admin().ApplyOrgFile("olivia", file, "").status()
                           : admin().PlanOrgFile("olivia", file).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_THAT(std::string(s.message()),
                ::testing::MatchesRegex("line [0-9]+: members\\[[0-9]+\\]: member 'mia': .*"))
        << s;
    EXPECT_THAT(s.message(), HasSubstr("archived"));
  }
}

TEST_F(OrgAdminTest, AGroupSyncNamesOnlyTheIdentityProvidersLeaversToOffboard) {
  // The group, by a file (olivia applies the organisation with it added).
  absl::StatusOr<std::string> yaml = admin().ExportOrgFile("olivia");
  ASSERT_TRUE(yaml.ok()) << yaml.status();
  const std::string with_group =
      absl::StrReplaceAll(*yaml, {{"idp_groups:\n  []",
                                   "idp_groups:\n  - name: eng\n    grants: "
                                   "[{role: member, project: support}]\n    "
                                   "members: [ann@acme.example]"}});
  ASSERT_NE(with_group, *yaml) << *yaml;
  ASSERT_TRUE(admin().ApplyOrgFile("olivia", with_group, "").ok());
  ASSERT_TRUE(admin().RemoveMember("adam", "mia").ok());  // Removed today, not by a sync.
  absl::StatusOr<IdpSyncResult> synced = admin().SyncIdpGroup("adam", "eng", {"bo@acme.example"});
  ASSERT_TRUE(synced.ok()) << synced.status();
  ASSERT_EQ(synced->deprovisioned.size(), 1u);
  EXPECT_EQ(synced->offboard, synced->deprovisioned);  // Not mia.
}

TEST_F(OrgAdminTest, AnApplyNamesWhomToOffboardForADayAfterTheirRemoval) {
  ServiceAccount sa = MakeAccount("sa-bot", "support", Environment::kProduction);
  ASSERT_TRUE(admin().CreateServiceAccount("adam", sa).ok());
  ASSERT_TRUE(admin().RemoveMember("adam", "rita").ok());  // Removed long before.
  clock_.Advance(kOffboardingWindow + absl::Seconds(1));
  absl::StatusOr<std::string> yaml = admin().ExportOrgFile("olivia");
  ASSERT_TRUE(yaml.ok()) << yaml.status();
  const std::string file = WithoutItem(WithoutItem(*yaml, "mia"), "sa-bot");
  ASSERT_EQ(file.find("id: mia"), std::string::npos) << file;
  ASSERT_EQ(file.find("id: sa-bot"), std::string::npos) << file;

  absl::StatusOr<OrgPlan> applied = admin().ApplyOrgFile("olivia", file, "");
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_FALSE(applied->changes.empty());
  EXPECT_THAT(applied->offboard.members, ::testing::ElementsAre("mia"));
  EXPECT_THAT(applied->offboard.service_accounts, ::testing::ElementsAre("sa-bot"));
  EXPECT_THAT(applied->removed_members, ::testing::ElementsAre("mia"));

  // A retry an hour later changes nothing and still names them: it finishes what an
  // interrupted first attempt left undone.
  clock_.Advance(absl::Hours(1));
  absl::StatusOr<OrgPlan> retried = admin().ApplyOrgFile("olivia", file, "");
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_TRUE(retried->changes.empty());
  EXPECT_THAT(retried->offboard.members, ::testing::ElementsAre("mia"));
  EXPECT_THAT(retried->offboard.service_accounts, ::testing::ElementsAre("sa-bot"));
  EXPECT_TRUE(retried->removed_members.empty());

  clock_.Advance(kOffboardingWindow);
  absl::StatusOr<OrgPlan> later = admin().ApplyOrgFile("olivia", file, "");
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_TRUE(later->offboard.members.empty());
  EXPECT_TRUE(later->offboard.service_accounts.empty());
}

TEST_F(OrgAdminTest, GrantsExpireOnTheirOwn) {
  ASSERT_TRUE(admin()
                  .SetMemberRoles("adam", "rita",
                                  {{Role::kMember, "support", clock_.Now() + absl::Hours(1)}})
                  .ok());
  EXPECT_TRUE(Allowed("rita", "support", "chat.completions"));
  clock_.Advance(absl::Hours(1));
  EXPECT_FALSE(Allowed("rita", "support", "chat.completions"));
}

TEST_F(OrgAdminTest, InvitationsTurnIntoMembers) {
  Invitation invitation;
  invitation.email = "Nora@ACME.example";
  invitation.role = Role::kReader;
  invitation.projects = {"support"};
  EXPECT_EQ(admin().CreateInvitation("mia", invitation, absl::Hours(1)).status().code(),
            absl::StatusCode::kPermissionDenied);
  absl::StatusOr<OrgAdmin::CreatedInvitation> created =
      admin().CreateInvitation("adam", invitation, absl::Hours(1));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ(created->invitation.email, "nora@acme.example");
  // A wrong e-mail looks like an unknown invitation.
  EXPECT_EQ(admin().AcceptInvitation(created->secret_id, "eve@acme.example", "").status().code(),
            absl::StatusCode::kNotFound);
  // Neither the stored invitation nor its ref accepts it.
  EXPECT_EQ(
      admin().AcceptInvitation(created->invitation.id, "nora@acme.example", "").status().code(),
      absl::StatusCode::kNotFound);
  EXPECT_EQ(admin()
                .AcceptInvitation(InvitationRef(created->invitation), "nora@acme.example", "")
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  absl::StatusOr<Member> nora =
      admin().AcceptInvitation(created->secret_id, "nora@acme.example", "nora");
  ASSERT_TRUE(nora.ok()) << nora.status();
  EXPECT_TRUE(Allowed("nora", "support", "settings.read"));
  EXPECT_EQ(
      admin().AcceptInvitation(created->secret_id, "nora@acme.example", "nora").status().code(),
      absl::StatusCode::kFailedPrecondition);

  absl::StatusOr<OrgAdmin::CreatedInvitation> late =
      admin().CreateInvitation("adam", invitation, absl::Hours(1));
  ASSERT_TRUE(late.ok());
  clock_.Advance(absl::Hours(2));
  EXPECT_EQ(admin().AcceptInvitation(late->secret_id, "nora@acme.example", "").status().code(),
            absl::StatusCode::kFailedPrecondition);
  invitation.role = Role::kOwner;
  invitation.projects.clear();
  EXPECT_EQ(admin().CreateInvitation("adam", invitation, absl::Hours(1)).status().code(),
            absl::StatusCode::kPermissionDenied);
  for (absl::Duration bad : {absl::Hours(24 * 60), absl::Hours(24 * 30) + absl::Seconds(1),
                             -absl::Hours(1), -absl::Nanoseconds(1)}) {
    absl::Status s = admin().CreateInvitation("olivia", invitation, bad).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(s.message(), HasSubstr("valid_for must be positive and at most 30 days")) << bad;
    EXPECT_THAT(s.message(), Not(HasSubstr("expire_time"))) << bad;
  }
  EXPECT_TRUE(admin().CreateInvitation("olivia", invitation, absl::Hours(24 * 30)).ok());
}

TEST_F(OrgAdminTest, AnInviteeWhoNamesNoIdIsNumberedNotNamedByTheirAddress) {
  Invitation invitation;
  invitation.role = Role::kReader;
  invitation.projects = {"support"};
  std::vector<std::string> ids;
  for (const std::string email : {"nora@acme.example", "omar@acme.example"}) {
    invitation.email = email;
    absl::StatusOr<OrgAdmin::CreatedInvitation> created =
        admin().CreateInvitation("adam", invitation, absl::Hours(1));
    ASSERT_TRUE(created.ok()) << created.status();
    absl::StatusOr<Member> member = admin().AcceptInvitation(created->secret_id, email, "");
    ASSERT_TRUE(member.ok()) << member.status();
    EXPECT_EQ(member->email, email);
    ids.push_back(member->id);
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"member:1", "member:2"}));
  // Removed, the number stays taken.
  ASSERT_TRUE(admin().RemoveMember("adam", "member:2").ok());
  invitation.email = "pia@acme.example";
  absl::StatusOr<OrgAdmin::CreatedInvitation> created =
      admin().CreateInvitation("adam", invitation, absl::Hours(1));
  ASSERT_TRUE(created.ok());
  absl::StatusOr<Member> pia = admin().AcceptInvitation(created->secret_id, "pia@acme.example", "");
  ASSERT_TRUE(pia.ok()) << pia.status();
  EXPECT_EQ(pia->id, "member:3");
}

TEST_F(OrgAdminTest, AnInvitationIsKeptAndNamedByDigestsOfItsSecretId) {
  Invitation invitation;
  invitation.email = "nora@acme.example";
  invitation.role = Role::kReader;
  invitation.projects = {"support"};
  absl::StatusOr<OrgAdmin::CreatedInvitation> created =
      admin().CreateInvitation("adam", invitation, absl::Hours(1));
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_THAT(created->secret_id, testing::StartsWith("inv_"));
  EXPECT_EQ(created->invitation.id, InvitationDigest(created->secret_id));
  EXPECT_THAT(InvitationRef(created->invitation), testing::StartsWith("sha256:"));
  absl::StatusOr<std::shared_ptr<const OrgState>> stored = store_->Load();
  ASSERT_TRUE(stored.ok());
  for (const Invitation& i : (*stored)->invitations) EXPECT_NE(i.id, created->secret_id);
  // Revoked by its ref, or by its secret id.
  absl::StatusOr<Invitation> revoked =
      admin().RevokeInvitation("adam", InvitationRef(created->invitation));
  ASSERT_TRUE(revoked.ok()) << revoked.status();
  EXPECT_EQ(revoked->state, InvitationState::kRevoked);
  EXPECT_TRUE(admin().RevokeInvitation("adam", created->secret_id).ok());
  EXPECT_EQ(admin().RevokeInvitation("adam", "sha256:0123").status().code(),
            absl::StatusCode::kNotFound);
}

// A creation retried under its request id answers the invitation the first call made: with a
// fresh secret id that replaces the earlier one while it is pending, as it stands once it is
// accepted, revoked or expired; other content under the id is refused naming the field.
TEST_F(OrgAdminTest, ARetriedInvitationUnderItsRequestIdIsTheSameInvitation) {
  // The INVITATION_CHANGED records written so far.
  auto invitation_records = [&] {
    absl::StatusOr<std::vector<ledger::OutboxEntry>> entries = store_->outbox().Read(1000);
    std::vector<std::string> changes;
    if (!entries.ok()) return std::vector<std::string>{entries.status().ToString()};
    for (const ledger::OutboxEntry& e : *entries) {
      if (e.record.action == "INVITATION_CHANGED") {
        changes.push_back(e.record.metadata.at("invitation") + " " +
                          e.record.metadata.at("change"));
      }
    }
    return changes;
  };
  auto make = [](const std::string& email) {
    Invitation invitation;
    invitation.email = email;
    invitation.role = Role::kMember;
    invitation.projects = {"support"};
    return invitation;
  };
  // Times to the microsecond: a valid_for with nanoseconds is the same on a retry.
  const absl::Duration valid_for = absl::Hours(1) + absl::Nanoseconds(1'500);
  clock_.Advance(absl::Nanoseconds(789));

  // Pending: the same invitation, a fresh secret id each time, the earlier ones dead.
  absl::StatusOr<OrgAdmin::CreatedInvitation> first =
      admin().CreateInvitation("adam", make("Nora@acme.example"), valid_for, "req-pending");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->invitation.created_at, absl::FromUnixMicros(absl::ToUnixMicros(clock_.Now())));
  EXPECT_EQ(first->invitation.expires_at - first->invitation.created_at,
            absl::Microseconds(3'600'000'001));
  clock_.Advance(absl::Minutes(5));
  absl::StatusOr<OrgAdmin::CreatedInvitation> second =
      admin().CreateInvitation("adam", make("nora@ACME.example"), valid_for, "req-pending");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->invitation.id, first->invitation.id);
  EXPECT_EQ(InvitationRef(second->invitation), InvitationRef(first->invitation));
  EXPECT_EQ(second->invitation.created_at, first->invitation.created_at);
  EXPECT_EQ(second->invitation.expires_at, first->invitation.expires_at);
  EXPECT_THAT(second->secret_id, MatchesRegex("inv_[0-9a-f]{24}"));
  EXPECT_NE(second->secret_id, first->secret_id);
  EXPECT_EQ(second->invitation.secret_digest, InvitationDigest(second->secret_id));
  EXPECT_EQ(second->invitation.request_digest, InvitationRequestDigest("req-pending"));
  EXPECT_EQ(store_->Load().value()->invitations.size(), 1u);
  // The replaced secret id fails exactly as an unknown one does, accepting and revoking.
  const absl::Status unknown =
      admin().AcceptInvitation("inv_000000000000000000000000", "nora@acme.example", "").status();
  const absl::Status stale =
      admin().AcceptInvitation(first->secret_id, "nora@acme.example", "").status();
  EXPECT_EQ(stale.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(stale, unknown);
  EXPECT_EQ(admin().RevokeInvitation("adam", first->secret_id).status(),
            admin().RevokeInvitation("adam", "inv_000000000000000000000000").status());
  // Other content, or another member, under the request id: refused naming the field.
  auto refused = [&](absl::string_view actor, Invitation invitation, absl::Duration d) {
    absl::Status s = admin().CreateInvitation(actor, invitation, d, "req-pending").status();
    EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
    return std::string(s.message());
  };
  EXPECT_THAT(refused("olivia", make("nora@acme.example"), valid_for),
              HasSubstr("different actor"));
  EXPECT_THAT(refused("adam", make("eve@acme.example"), valid_for), HasSubstr("different email"));
  Invitation reader = make("nora@acme.example");
  reader.role = Role::kReader;
  EXPECT_THAT(refused("adam", reader, valid_for), HasSubstr("different role"));
  Invitation admin_role = make("nora@acme.example");
  admin_role.role = Role::kAdmin;
  admin_role.projects.clear();
  EXPECT_THAT(refused("adam", admin_role, valid_for), HasSubstr("different role"));
  EXPECT_THAT(refused("adam", make("nora@acme.example"), absl::Hours(2)),
              HasSubstr("different valid_for"));
  ASSERT_TRUE(admin().CreateProject("olivia", MakeProject("research")).ok());
  Invitation more = make("nora@acme.example");
  more.projects = {"support", "research"};
  EXPECT_THAT(refused("adam", more, valid_for), HasSubstr("different projects"));
  EXPECT_THAT(refused("adam", more, valid_for), HasSubstr("'req-pending'"));
  // Nothing the refusals or the retries did is recorded: one creation.
  EXPECT_EQ(invitation_records(),
            std::vector<std::string>{InvitationRef(first->invitation) + " created"});
  // The newest secret id accepts it; a retry then shows it accepted, without a secret id.
  absl::StatusOr<OrgAdmin::CreatedInvitation> third =
      admin().CreateInvitation("adam", make("nora@acme.example"), valid_for, "req-pending");
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(admin().AcceptInvitation(second->secret_id, "nora@acme.example", "").status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(admin().AcceptInvitation(third->secret_id, "nora@acme.example", "nora").ok());
  absl::StatusOr<OrgAdmin::CreatedInvitation> after_accept =
      admin().CreateInvitation("adam", make("nora@acme.example"), valid_for, "req-pending");
  ASSERT_TRUE(after_accept.ok()) << after_accept.status();
  EXPECT_EQ(after_accept->secret_id, "");
  EXPECT_EQ(after_accept->invitation.id, first->invitation.id);
  EXPECT_EQ(after_accept->invitation.state, InvitationState::kAccepted);
  EXPECT_THAT(refused("adam", make("eve@acme.example"), valid_for), HasSubstr("different email"));

  // Revoked: as it stands, no secret id.
  absl::StatusOr<OrgAdmin::CreatedInvitation> revoked_first =
      admin().CreateInvitation("adam", make("eve@acme.example"), valid_for, "req-revoked");
  ASSERT_TRUE(revoked_first.ok()) << revoked_first.status();
  ASSERT_TRUE(admin().RevokeInvitation("adam", InvitationRef(revoked_first->invitation)).ok());
  absl::StatusOr<OrgAdmin::CreatedInvitation> revoked_retry =
      admin().CreateInvitation("adam", make("eve@acme.example"), valid_for, "req-revoked");
  ASSERT_TRUE(revoked_retry.ok()) << revoked_retry.status();
  EXPECT_EQ(revoked_retry->secret_id, "");
  EXPECT_EQ(revoked_retry->invitation.id, revoked_first->invitation.id);
  EXPECT_EQ(revoked_retry->invitation.state, InvitationState::kRevoked);

  // Expired: as it stands, no secret id, its expiry unchanged.
  absl::StatusOr<OrgAdmin::CreatedInvitation> expiring =
      admin().CreateInvitation("adam", make("finn@acme.example"), valid_for, "req-expired");
  ASSERT_TRUE(expiring.ok()) << expiring.status();
  clock_.Advance(absl::Hours(2));
  absl::StatusOr<OrgAdmin::CreatedInvitation> expired_retry =
      admin().CreateInvitation("adam", make("finn@acme.example"), valid_for, "req-expired");
  ASSERT_TRUE(expired_retry.ok()) << expired_retry.status();
  EXPECT_EQ(expired_retry->secret_id, "");
  EXPECT_EQ(expired_retry->invitation.expires_at, expiring->invitation.expires_at);
  EXPECT_EQ(InvitationStateAt(expired_retry->invitation, clock_.Now()), InvitationState::kExpired);
  EXPECT_EQ(admin().AcceptInvitation(expiring->secret_id, "finn@acme.example", "").status().code(),
            absl::StatusCode::kFailedPrecondition);

  // One record per invitation's creation, and those of its acceptance and revocation.
  EXPECT_EQ(invitation_records(),
            (std::vector<std::string>{InvitationRef(first->invitation) + " created",
                                      InvitationRef(first->invitation) + " accepted",
                                      InvitationRef(revoked_first->invitation) + " created",
                                      InvitationRef(revoked_first->invitation) + " revoked",
                                      InvitationRef(expiring->invitation) + " created"}));
  // Without a request id, every call is a new invitation; a request id is at most 128 bytes.
  ASSERT_TRUE(admin().CreateInvitation("adam", make("gus@acme.example"), valid_for).ok());
  ASSERT_TRUE(admin().CreateInvitation("adam", make("gus@acme.example"), valid_for).ok());
  const absl::Status too_long =
      admin()
          .CreateInvitation("adam", make("gus@acme.example"), valid_for, std::string(129, 'r'))
          .status();
  EXPECT_EQ(too_long.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(too_long.message(), HasSubstr("request_id"));
  EXPECT_TRUE(
      admin()
          .CreateInvitation("adam", make("gus@acme.example"), valid_for, std::string(128, 'r'))
          .ok());
  EXPECT_EQ(store_->Load().value()->invitations.size(), 6u);
  // Neither the request ids nor any secret id is kept as it is.
  for (const Invitation& i : store_->Load().value()->invitations) {
    for (const std::string& kept : {i.id, i.secret_digest, i.request_digest}) {
      EXPECT_THAT(kept, Not(HasSubstr("req-")));
      EXPECT_THAT(kept, Not(HasSubstr("inv_")));
    }
  }
}

TEST_F(OrgAdminTest, ServiceAccountsAreManagedInTheirProject) {
  ServiceAccount sa = MakeAccount("sa-bot", "support", Environment::kProduction);
  sa.ip_allowlist = *IpAllowlist::Parse({"10.0.0.0/8"});
  EXPECT_EQ(admin().CreateServiceAccount("mia", sa).status().code(),
            absl::StatusCode::kPermissionDenied);
  ASSERT_TRUE(admin().CreateServiceAccount("adam", sa).ok());
  sa.environment = Environment::kStaging;
  sa.id = "sa-wrong-env";
  EXPECT_EQ(admin().CreateServiceAccount("adam", sa).status().code(),
            absl::StatusCode::kInvalidArgument);
  sa.environment = Environment::kProduction;
  sa.id = "sa-bad";
  sa.permissions = {"members.manage"};
  absl::Status bad = admin().CreateServiceAccount("adam", sa).status();
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.message(), HasSubstr("administrative"));
  sa.project = "nowhere";
  EXPECT_EQ(admin().CreateServiceAccount("adam", sa).status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(admin().RemoveServiceAccount("adam", "sa-bot").ok());
  CheckRequest check;
  check.principal_kind = PrincipalKind::kServiceAccount;
  check.principal_id = "sa-bot";
  check.project = "support";
  check.action = "chat.completions";
  check.model = "gpt-4o";
  check.source_ip = *ParseIpAddress("10.1.2.3");
  absl::StatusOr<Decision> d = Check(*cache_.Current()->snapshot, check, clock_.Now());
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->reason, DenyReason::kPrincipalRemoved);
}

TEST_F(OrgAdminTest, AProjectsEnvironmentNeverChanges) {
  Project dev = MakeProject("lab");
  dev.environment = Environment::kDevelopment;
  ASSERT_TRUE(admin().CreateProject("adam", dev).ok());
  const int64_t version = cache_.Current()->state->version;

  // Not by an owner, with or without service accounts: production would silently take the
  // members' keys away (service accounts only), development would let members hold keys.
  Project prod = dev;
  prod.environment = Environment::kProduction;
  for (const char* actor : {"adam", "olivia"}) {
    absl::Status refused = admin().UpdateProject(actor, prod).status();
    EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << actor;
    EXPECT_THAT(refused.message(), HasSubstr("project 'lab': environment: development cannot "
                                             "change to production"));
  }
  ASSERT_TRUE(
      admin().CreateServiceAccount("adam", MakeAccount("sa-lab", "lab", dev.environment)).ok());
  absl::Status refused = admin().UpdateProject("olivia", prod).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.message(), HasSubstr("environment"));
  ASSERT_TRUE(admin().RemoveServiceAccount("adam", "sa-lab").ok());
  EXPECT_EQ(admin().UpdateProject("olivia", prod).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(cache_.Current()->state->FindProject("lab")->environment, Environment::kDevelopment);
  EXPECT_EQ(cache_.Current()->state->version, version + 2);  // The account's two changes.

  // Restating the environment it has is an update like any other.
  dev.name = "Lab renamed";
  absl::StatusOr<Project> renamed = admin().UpdateProject("adam", dev);
  ASSERT_TRUE(renamed.ok()) << renamed.status();
  EXPECT_EQ(renamed->name, "Lab renamed");
  EXPECT_EQ(renamed->environment, Environment::kDevelopment);

  // Nor by the organisation file: its plan and its apply are refused, and nothing changes.
  const std::string file = FormatOrgFile(*cache_.Current()->state);
  // lab is the one project in development.
  std::string moved = file;
  ASSERT_EQ(absl::StrReplaceAll({{"environment: development", "environment: production"}}, &moved),
            1)
      << file;
  absl::Status planned = admin().PlanOrgFile("olivia", moved).status();
  EXPECT_EQ(planned.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(planned.message(), HasSubstr("project 'lab': environment: development cannot "
                                           "change to production"));
  const int64_t before_apply = cache_.Current()->state->version;
  absl::Status applied = admin().ApplyOrgFile("olivia", moved, "").status();
  EXPECT_EQ(applied.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(applied.message(), HasSubstr("environment"));
  EXPECT_EQ(cache_.Current()->state->version, before_apply);
  EXPECT_EQ(cache_.Current()->state->FindProject("lab")->environment, Environment::kDevelopment);
  // The file as it stands still plans to nothing.
  absl::StatusOr<OrgPlan> plan = admin().PlanOrgFile("olivia", file);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_TRUE(plan->changes.empty()) << plan->text;
}

TEST_F(OrgAdminTest, OnlyOwnersSetServiceAccountLimits) {
  ServiceAccount sa = MakeAccount("sa-limited", "support", Environment::kProduction);
  sa.rpm_limit = 10;
  absl::Status refused = admin().CreateServiceAccount("adam", sa).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(refused.message(), HasSubstr("billing.manage"));
  sa.rpm_limit = 0;
  ASSERT_TRUE(admin().CreateServiceAccount("adam", sa).ok());

  sa.tpm_limit = 1000;
  refused = admin().UpdateServiceAccount("adam", sa).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(refused.message(), HasSubstr("billing.manage"));
  std::unique_ptr<OrgCache> before_owner_change = FrozenCache();
  ASSERT_TRUE(admin().UpdateServiceAccount("olivia", sa).ok());
  // The same limits with other changes are the admin's to make.
  sa.permissions = {"chat.completions", "embeddings"};
  EXPECT_TRUE(admin().UpdateServiceAccount("adam", sa).ok());
  // An admin whose replica has not seen the owner's limits yet would put the old ones back.
  OrgAdmin lagging(store_.get(), before_owner_change.get(), &clock_);
  ServiceAccount stale = sa;
  stale.tpm_limit = 0;
  EXPECT_EQ(lagging.UpdateServiceAccount("adam", stale).status().code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(cache_.Current()->state->FindServiceAccount("sa-limited")->tpm_limit, 1000);

  sa.id = "sa-limited-2";
  EXPECT_TRUE(admin().CreateServiceAccount("olivia", sa).ok());
}

TEST_F(OrgAdminTest, NewProjectsFollowTheProjectIdRuleAndTheLimitBounds) {
  for (const char* id : {"ML.Platform", "Probe-1", "a:b"}) {
    absl::Status s = admin().CreateProject("olivia", MakeProject(id)).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << id;
    EXPECT_THAT(s.message(), HasSubstr("project.id")) << id;
  }
  Project most = MakeProject("most");
  most.rpm_limit = most.member_rpm_limit = kMaxRpmLimit;
  most.tpm_limit = most.member_tpm_limit = kMaxTpmLimit;
  ASSERT_TRUE(admin().CreateProject("olivia", most).ok());
  Project over = MakeProject("over");
  over.tpm_limit = std::numeric_limits<int64_t>::max();
  absl::Status s = admin().CreateProject("olivia", over).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("project.tpm_limit: more than the maximum"));
  most.rpm_limit = kMaxRpmLimit + 1;
  s = admin().UpdateProject("olivia", most).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("project.rpm_limit: more than the maximum"));
}

TEST(OrgAdminLegacyTest, ProjectsStoredBeforeTheRulesDoNotBlockOtherChanges) {
  OrgState initial;
  Project legacy = MakeProject("ML.Platform");
  legacy.rpm_limit = std::numeric_limits<int64_t>::max();
  legacy.tpm_limit = std::numeric_limits<int64_t>::max();
  initial.projects = {legacy};
  initial.members = {MakeMember("olivia", {{Role::kOwner, "", std::nullopt}})};
  FakeClock clock;
  OrgCache cache(&clock, absl::Seconds(1));
  MemoryOrgStore store(std::move(initial));
  store.Watch(&cache);
  OrgAdmin admin(&store, &cache, &clock);
  EXPECT_TRUE(admin.CreateProject("olivia", MakeProject("fresh")).ok());
  EXPECT_TRUE(admin.AddMember("olivia", MakeMember("nina", {})).ok());
  // Its limits may not be changed to anything out of bounds, nor kept out of bounds by one.
  legacy.name = "Renamed";
  EXPECT_TRUE(admin.UpdateProject("olivia", legacy).ok());
  legacy.rpm_limit = 10;
  EXPECT_EQ(admin.UpdateProject("olivia", legacy).status().code(),
            absl::StatusCode::kInvalidArgument);
  legacy.tpm_limit = 1000;
  EXPECT_TRUE(admin.UpdateProject("olivia", legacy).ok());
  EXPECT_TRUE(admin.ArchiveProject("olivia", "ML.Platform").ok());
  store.StopWatching();
}

TEST_F(OrgAdminTest, UnknownActorsAndStaleCachesAreRefused) {
  EXPECT_EQ(admin().CreateProject("", MakeProject("x")).status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(admin().CreateProject("nobody", MakeProject("x")).status().code(),
            absl::StatusCode::kPermissionDenied);
  OrgCache never_synced(&clock_, absl::Seconds(1));
  OrgAdmin blind(store_.get(), &never_synced, &clock_);
  absl::Status stale = blind.CreateProject("olivia", MakeProject("x")).status();
  EXPECT_EQ(stale.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ReasonOf(stale), kReasonOrgStale);
}

}  // namespace
}  // namespace policy::authz
