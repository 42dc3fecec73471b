#include "services/authz/decision.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace policy::authz {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

Project MakeProject(std::string id, bool archived = false) {
  Project p;
  p.id = id;
  p.name = id;
  p.environment = Environment::kProduction;
  p.archived = archived;
  p.allowed_models = {"gpt-4.1", "gpt-4.1-mini"};
  p.rpm_limit = 100;
  p.tpm_limit = 10'000;
  return p;
}

class DecisionTest : public ::testing::Test {
 protected:
  DecisionTest() {
    ServiceAccount ci;
    ci.id = "sa-ci";
    ci.project = "proj-prod";
    ci.permissions = {"chat.completions", "embeddings"};
    ci.ip_allowlist = *IpAllowlist::Parse({"10.20.0.0/16", "2001:db8::/32"});
    ServiceAccount removed = ci;
    removed.id = "sa-old";
    removed.removed_at = kNow - absl::Hours(1);
    Member carol{
        "carol", "carol@company.com", {{Role::kMember, "proj-prod", std::nullopt}}, {}, "", "", {}};
    Member dave{
        "dave", "dave@company.com", {{Role::kReader, "proj-prod", std::nullopt}}, {}, "", "", {}};
    Member erin{"erin",
                "erin@company.com",
                {{Role::kMember, "proj-prod", kNow - absl::Minutes(1)},
                 {Role::kReader, "proj-prod", std::nullopt}},
                {},
                "",
                "",
                {}};
    Member frank{"frank",
                 "frank@company.com",
                 {{Role::kMember, "proj-prod", std::nullopt}},
                 kNow - absl::Seconds(1),
                 "",
                 "",
                 {}};
    org_ = OrgSnapshot::Build({MakeProject("proj-prod"), MakeProject("proj-old", true)},
                              {carol, dave, erin, frank}, {ci, removed}, kNow);
  }

  Decision Decide(CheckRequest request) {
    absl::StatusOr<Decision> decision = Check(*org_, request, kNow);
    EXPECT_TRUE(decision.ok()) << decision.status();
    return decision.value_or(Decision{});
  }

  static CheckRequest AsMember(std::string id, std::string action = "chat.completions",
                               std::string project = "proj-prod") {
    CheckRequest r;
    r.principal_kind = PrincipalKind::kMember;
    r.principal_id = std::move(id);
    r.project = std::move(project);
    r.action = std::move(action);
    r.model = "gpt-4.1";
    return r;
  }

  static CheckRequest AsAccount(std::string id, std::string ip = "10.20.3.4") {
    CheckRequest r;
    r.principal_kind = PrincipalKind::kServiceAccount;
    r.principal_id = std::move(id);
    r.project = "proj-prod";
    r.action = "chat.completions";
    r.model = "gpt-4.1";
    r.source_ip = *ParseIpAddress(ip);
    return r;
  }

  std::shared_ptr<const OrgSnapshot> org_;
};

// Every role against every action, against a table written out here rather than derived from
// the code under test.
TEST(ActionsTest, AnUnknownActionIsNamedQuoted) {
  EXPECT_TRUE(FindAction("chat.completions").ok());
  EXPECT_EQ(FindAction("chat.complete").status().message(), "unknown action 'chat.complete'");
  // Control characters escaped, a long name cut: the message stays one bounded line.
  EXPECT_EQ(FindAction(std::string("a\0b\n", 4)).status().message(), "unknown action 'a\\x00b\\n'");
  EXPECT_LT(FindAction(std::string(10'000, 'x')).status().message().size(), 120u);
}

TEST(RoleMatrixTest, EveryRoleAndAction) {
  const std::set<std::string> api = {"chat.completions", "completions",       "embeddings",
                                     "moderations",      "images.generate",   "audio.transcribe",
                                     "audio.speech",     "files.read",        "files.write",
                                     "fine-tuning.read", "fine-tuning.write", "models.read"};
  const std::set<std::string> admin_all = {
      "settings.read",           "usage.read",     "keys.create",     "keys.manage",
      "service-accounts.manage", "project.update", "projects.manage", "members.manage",
      "invitations.manage",      "org.read",       "audit.read",      "owners.manage",
      "billing.manage"};
  ASSERT_EQ(AllActions().size(), api.size() + admin_all.size());
  for (const Action& action : AllActions()) {
    const std::string name(action.name);
    ASSERT_TRUE(api.contains(name) || admin_all.contains(name)) << name;
    EXPECT_TRUE(RoleAllows(Role::kOwner, action)) << name;
    EXPECT_EQ(RoleAllows(Role::kAdmin, action),
              admin_all.contains(name) && name != "billing.manage" && name != "owners.manage")
        << name;
    EXPECT_EQ(RoleAllows(Role::kMember, action), api.contains(name) || name == "keys.create" ||
                                                     name == "settings.read" ||
                                                     name == "usage.read")
        << name;
    EXPECT_EQ(RoleAllows(Role::kReader, action), name == "settings.read" || name == "usage.read")
        << name;
  }
}

// The same matrix through Check, with each role granted at its proper scope.
TEST(RoleMatrixTest, CheckHonoursTheMatrixAtEachScope) {
  std::vector<Member> members;
  for (Role role : {Role::kOwner, Role::kAdmin, Role::kMember, Role::kReader}) {
    members.push_back({std::string(RoleName(role)),
                       "",
                       {{role, IsOrgRole(role) ? "" : "p", std::nullopt}},
                       {},
                       "",
                       "",
                       {}});
  }
  Project p = MakeProject("p");
  p.allowed_models = {"m"};
  auto org = OrgSnapshot::Build({p, MakeProject("q")}, members, {}, kNow);
  for (const Member& member : members) {
    for (const Action& action : AllActions()) {
      for (const std::string project : {"p", "q"}) {
        CheckRequest r;
        r.principal_id = member.id;
        r.action = std::string(action.name);
        r.project = action.org_scoped ? "" : project;
        r.model = std::string(1, 'm');
        absl::StatusOr<Decision> d = Check(*org, r, kNow);
        ASSERT_TRUE(d.ok()) << d.status();
        const Role role = member.grants[0].role;
        // Project roles count only in their project and never for organisation actions;
        // model "m" is allowed only in p.
        const bool scope_ok = IsOrgRole(role) || (!action.org_scoped && project == "p");
        const bool model_ok = action.kind != ActionKind::kApi || project == "p";
        const bool expected = RoleAllows(role, action) && scope_ok && model_ok;
        EXPECT_EQ(d->allowed, expected) << member.id << " " << action.name << " in " << project;
      }
    }
  }
}

TEST_F(DecisionTest, MemberCallsAnAllowedModel) {
  Decision d = Decide(AsMember("carol"));
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.reason, DenyReason::kNone);
}

TEST_F(DecisionTest, DenialsCarryTheirReasons) {
  EXPECT_EQ(Decide(AsMember("nobody")).reason, DenyReason::kUnknownPrincipal);
  EXPECT_EQ(Decide(AsMember("frank")).reason, DenyReason::kPrincipalRemoved);
  EXPECT_EQ(Decide(AsMember("carol", "chat.completions", "proj-nope")).reason,
            DenyReason::kProjectNotFound);
  EXPECT_EQ(Decide(AsMember("carol", "chat.completions", "proj-old")).reason,
            DenyReason::kProjectArchived);
  EXPECT_EQ(Decide(AsMember("dave")).reason, DenyReason::kPermissionDenied);
  EXPECT_EQ(Decide(AsMember("erin")).reason, DenyReason::kGrantExpired);
  CheckRequest other_model = AsMember("carol");
  other_model.model = "gpt-5";
  EXPECT_EQ(Decide(other_model).reason, DenyReason::kModelNotAllowed);
}

TEST_F(DecisionTest, GrantsOnlyDecidesByStandingWithoutModelOrAddress) {
  auto standing = [](CheckRequest r) {
    r.grants_only = true;
    r.model.clear();
    r.source_ip.reset();
    return r;
  };
  EXPECT_TRUE(Decide(standing(AsMember("carol"))).allowed);
  EXPECT_EQ(Decide(standing(AsMember("dave"))).reason, DenyReason::kPermissionDenied);
  EXPECT_EQ(Decide(standing(AsMember("erin"))).reason, DenyReason::kGrantExpired);
  EXPECT_EQ(Decide(standing(AsMember("frank"))).reason, DenyReason::kPrincipalRemoved);
  EXPECT_EQ(Decide(standing(AsMember("carol", "chat.completions", "proj-old"))).reason,
            DenyReason::kProjectArchived);
  // A model the project does not allow, an address outside the allowlist: not standing.
  CheckRequest other_model = standing(AsMember("carol"));
  other_model.model = "gpt-5";
  EXPECT_TRUE(Decide(other_model).allowed);
  EXPECT_TRUE(Decide(standing(AsAccount("sa-ci"))).allowed);
  CheckRequest elsewhere = standing(AsAccount("sa-ci"));
  elsewhere.source_ip = *ParseIpAddress("10.99.0.1");
  EXPECT_TRUE(Decide(elsewhere).allowed);
  CheckRequest not_permitted = standing(AsAccount("sa-ci"));
  not_permitted.action = "fine-tuning.write";
  EXPECT_EQ(Decide(not_permitted).reason, DenyReason::kPermissionDenied);
  // Without grants_only the model and the address are required.
  CheckRequest no_model = AsMember("carol");
  no_model.model.clear();
  EXPECT_FALSE(Check(*org_, no_model, kNow).ok());
}

TEST_F(DecisionTest, ExpiredGrantsStopCountingOnTheirOwn) {
  // erin's member grant expired a minute ago; her reader grant still lets her read.
  EXPECT_TRUE(Decide(AsMember("erin", "usage.read")).allowed);
  absl::StatusOr<Decision> before = Check(*org_, AsMember("erin"), kNow - absl::Minutes(2));
  ASSERT_TRUE(before.ok());
  EXPECT_TRUE(before->allowed);
}

TEST_F(DecisionTest, ArchivedProjectsStayReadable) {
  EXPECT_EQ(Decide(AsMember("carol", "keys.create", "proj-old")).reason,
            DenyReason::kProjectArchived);
  EXPECT_TRUE(Decide(AsMember("carol", "settings.read", "proj-old")).reason !=
              DenyReason::kProjectArchived);
}

TEST_F(DecisionTest, ServiceAccountsNeedPermissionProjectAndAddress) {
  EXPECT_TRUE(Decide(AsAccount("sa-ci")).allowed);
  EXPECT_TRUE(Decide(AsAccount("sa-ci", "2001:db8:5::1")).allowed);
  EXPECT_EQ(Decide(AsAccount("sa-ci", "10.21.0.1")).reason, DenyReason::kIpNotAllowed);
  EXPECT_EQ(Decide(AsAccount("sa-ci", "::ffff:10.20.0.9")).reason, DenyReason::kNone);
  CheckRequest wrong_action = AsAccount("sa-ci");
  wrong_action.action = "fine-tuning.write";
  EXPECT_EQ(Decide(wrong_action).reason, DenyReason::kPermissionDenied);
  CheckRequest admin_action = AsAccount("sa-ci");
  admin_action.action = "keys.create";
  EXPECT_EQ(Decide(admin_action).reason, DenyReason::kPermissionDenied);
  CheckRequest other_project = AsAccount("sa-ci");
  other_project.project = "proj-old";
  EXPECT_EQ(Decide(other_project).rule, "project.active");
  EXPECT_EQ(Decide(AsAccount("sa-old")).reason, DenyReason::kPrincipalRemoved);
}

TEST(KeyHoldersTest, AProjectWhoseKeysServiceAccountsHoldTakesNoMemberCall) {
  Project prod = MakeProject("proj-prod");
  prod.key_holders = KeyHolders::kServiceAccounts;
  ServiceAccount ci;
  ci.id = "sa-ci";
  ci.project = "proj-prod";
  ci.permissions = {"chat.completions"};
  ci.ip_allowlist = *IpAllowlist::Parse({"10.0.0.0/8"});
  Member owner{"olivia", "olivia@company.com", {{Role::kOwner, "", std::nullopt}}, {}, "", "", {}};
  Member carol{
      "carol", "carol@company.com", {{Role::kMember, "proj-prod", std::nullopt}}, {}, "", "", {}};
  auto decide = [&](const Project& project, CheckRequest request) {
    absl::StatusOr<Decision> d =
        Check(*OrgSnapshot::Build({project}, {owner, carol}, {ci}, kNow), request, kNow);
    EXPECT_TRUE(d.ok()) << d.status();
    return d.value_or(Decision{});
  };
  CheckRequest call;
  call.principal_id = "carol";
  call.project = "proj-prod";
  call.action = "chat.completions";
  call.model = "gpt-4.1";
  call.explain = true;
  const Decision denied = decide(prod, call);
  EXPECT_FALSE(denied.allowed);
  EXPECT_EQ(denied.reason, DenyReason::kKeyHolderNotAllowed);
  EXPECT_EQ(denied.rule, "project.key_holders");
  EXPECT_EQ(DenyReasonName(denied.reason), "KEY_HOLDER_NOT_ALLOWED");
  EXPECT_THAT(denied.trace.back().detail, HasSubstr("service accounts only"));
  // Whatever the member's roles: an owner makes no call there either.
  call.principal_id = "olivia";
  EXPECT_EQ(decide(prod, call).reason, DenyReason::kKeyHolderNotAllowed);
  // Administration is not a call: the owner still manages the project.
  CheckRequest manage = call;
  manage.action = "keys.manage";
  manage.model = "";
  EXPECT_TRUE(decide(prod, manage).allowed);
  // The project's service account calls.
  CheckRequest account = call;
  account.principal_kind = PrincipalKind::kServiceAccount;
  account.principal_id = "sa-ci";
  account.source_ip = *ParseIpAddress("10.1.2.3");
  EXPECT_TRUE(decide(prod, account).allowed);
  // With members as key holders, the member's grant decides.
  prod.key_holders = KeyHolders::kMembers;
  call.principal_id = "carol";
  EXPECT_TRUE(decide(prod, call).allowed);
}

TEST(KeyHoldersTest, ProductionDefaultsToServiceAccountsOnly) {
  EXPECT_EQ(DefaultKeyHolders(Environment::kProduction), KeyHolders::kServiceAccounts);
  for (Environment e : {Environment::kStaging, Environment::kDevelopment, Environment::kSandbox}) {
    EXPECT_EQ(DefaultKeyHolders(e), KeyHolders::kMembers);
  }
  EXPECT_EQ(KeyHoldersName(KeyHolders::kServiceAccounts), "service_accounts");
  EXPECT_EQ(ParseKeyHolders("members").value(), KeyHolders::kMembers);
  EXPECT_EQ(ParseKeyHolders("everyone").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(DecisionTest, MalformedRequestsAreErrorsNotDenials) {
  CheckRequest unknown = AsMember("carol", "chat.complete");
  EXPECT_EQ(Check(*org_, unknown, kNow).status().code(), absl::StatusCode::kInvalidArgument);
  CheckRequest no_model = AsMember("carol");
  no_model.model = "";
  EXPECT_THAT(Check(*org_, no_model, kNow).status().message(), HasSubstr("model"));
  CheckRequest no_project = AsMember("carol", "chat.completions", "");
  EXPECT_THAT(Check(*org_, no_project, kNow).status().message(), HasSubstr("project"));
  CheckRequest no_ip = AsAccount("sa-ci");
  no_ip.source_ip.reset();
  EXPECT_THAT(Check(*org_, no_ip, kNow).status().message(), HasSubstr("source_ip"));
}

TEST(ResidencyTest, AProjectKeptInOneResidencyRefusesRequestsForAnother) {
  Project eu = MakeProject("proj-eu");
  eu.data_policy.residency = Residency::kEu;
  Member carol{
      "carol",
      "carol@company.com",
      {{Role::kMember, "proj-eu", std::nullopt}, {Role::kMember, "proj-any", std::nullopt}},
      {},
      "",
      "",
      {}};
  std::shared_ptr<const OrgSnapshot> org =
      OrgSnapshot::Build({eu, MakeProject("proj-any")}, {carol}, {}, kNow);
  auto decide = [&](absl::string_view project, Residency asked) {
    CheckRequest r;
    r.principal_id = "carol";
    r.project = std::string(project);
    r.action = "chat.completions";
    r.model = "gpt-4.1";
    r.residency = asked;
    r.explain = true;
    absl::StatusOr<Decision> d = Check(*org, r, kNow);
    EXPECT_TRUE(d.ok()) << d.status();
    return d.value_or(Decision{});
  };
  // None required, or the project's own: allowed (routing keeps it within the EU).
  for (Residency asked : {Residency::kGlobal, Residency::kEu}) {
    Decision d = decide("proj-eu", asked);
    EXPECT_TRUE(d.allowed) << ResidencyName(asked);
    EXPECT_THAT(d.trace, Contains(AllOf(Field(&RuleOutcome::rule, "project.residency"),
                                        Field(&RuleOutcome::passed, true),
                                        Field(&RuleOutcome::detail, HasSubstr("within eu")))));
  }
  for (Residency asked : {Residency::kUs, Residency::kApac}) {
    Decision d = decide("proj-eu", asked);
    EXPECT_FALSE(d.allowed);
    EXPECT_EQ(d.reason, DenyReason::kResidencyNotAllowed);
    EXPECT_EQ(DenyReasonName(d.reason), "RESIDENCY_NOT_ALLOWED");
    EXPECT_EQ(d.rule, "project.residency");
    EXPECT_EQ(d.trace.back().detail, absl::StrCat("the request requires ", ResidencyName(asked),
                                                  "; proj-eu keeps its data in eu"));
  }
  // A project without a residency takes any request.
  for (Residency asked : {Residency::kGlobal, Residency::kEu, Residency::kUs, Residency::kApac}) {
    EXPECT_TRUE(decide("proj-any", asked).allowed) << ResidencyName(asked);
  }
}

TEST_F(DecisionTest, ExplainListsEveryRuleConsidered) {
  CheckRequest request = AsAccount("sa-ci", "192.0.2.1");
  request.explain = true;
  Decision d = Decide(request);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.rule, "service_account.ip_allowlist");
  EXPECT_THAT(d.trace, ElementsAre(Field(&RuleOutcome::rule, "principal.exists"),
                                   Field(&RuleOutcome::rule, "principal.active"),
                                   Field(&RuleOutcome::rule, "project.exists"),
                                   Field(&RuleOutcome::rule, "project.active"),
                                   Field(&RuleOutcome::rule, "service_account.project"),
                                   Field(&RuleOutcome::rule, "service_account.permissions"),
                                   Field(&RuleOutcome::rule, "service_account.ip_allowlist")));
  EXPECT_FALSE(d.trace.back().passed);
  EXPECT_THAT(d.trace.back().detail, HasSubstr("192.0.2.1"));
  // Without explain, no trace is built.
  request.explain = false;
  EXPECT_TRUE(Decide(request).trace.empty());
}

}  // namespace
}  // namespace policy::authz
