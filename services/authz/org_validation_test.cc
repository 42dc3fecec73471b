#include "services/authz/org_validation.h"

#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace policy::authz {
namespace {

using ::testing::HasSubstr;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

void ExpectInvalid(const absl::Status& status, absl::string_view field) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << field;
  EXPECT_THAT(status.message(), HasSubstr(field));
}

Project GoodProject() {
  Project p;
  p.id = "proj-prod";
  p.name = "Production";
  p.allowed_models = {"gpt-4.1", "gpt-4.1-mini"};
  p.rpm_limit = 10'000;
  p.tpm_limit = 2'000'000;
  return p;
}

TEST(OrgValidationTest, RequestIds) {
  EXPECT_TRUE(ValidateRequestId("", /*required=*/false).ok());
  EXPECT_TRUE(ValidateRequestId(std::string(kMaxRequestIdBytes, 'r'), true).ok());
  EXPECT_TRUE(ValidateRequestId("any bytes: \xff\n", true).ok());
  ExpectInvalid(ValidateRequestId("", /*required=*/true), "request_id is required");
  for (bool required : {false, true}) {
    ExpectInvalid(ValidateRequestId(std::string(kMaxRequestIdBytes + 1, 'r'), required),
                  "request_id is longer than 128 bytes");
  }
}

TEST(OrgValidationTest, Projects) {
  EXPECT_TRUE(ValidateProject(GoodProject()).ok());
  Project p = GoodProject();
  p.id = "";
  ExpectInvalid(ValidateProject(p), "project.id");
  p = GoodProject();
  p.name = "";
  ExpectInvalid(ValidateProject(p), "project.name");
  p = GoodProject();
  p.rpm_limit = -1;
  ExpectInvalid(ValidateProject(p), "rpm_limit");
  p = GoodProject();
  p.allowed_models = {"gpt-4.1", "gpt-4.1"};
  ExpectInvalid(ValidateProject(p), "allowed_models[1]");
  p = GoodProject();
  p.allowed_models = {"gpt 4"};
  ExpectInvalid(ValidateProject(p), "allowed_models[0]");
  p = GoodProject();
  p.allowed_models = std::vector<std::string>(65);
  for (size_t i = 0; i < p.allowed_models.size(); ++i) p.allowed_models[i] = absl::StrCat("m", i);
  ExpectInvalid(ValidateProject(p), "more than 64");
}

TEST(OrgValidationTest, ProjectNamesArePlainTextAsInTheOrganisationFile) {
  Project p = GoodProject();
  p.name = "Support – EU (Zürich)";
  EXPECT_TRUE(ValidateProject(p).ok());
  for (const std::string& name :
       {std::string("a\0b", 3), std::string("a\nb"), std::string("a\tb"), std::string("a\x7f"),
        std::string("a\xc2\x85"), std::string("a\xff")}) {
    p.name = name;
    EXPECT_EQ(ValidateProject(p).message(),
              "project.name must be UTF-8 text without control characters");
    // Projects stored before the rule stay valid, so that their organisation can change.
    EXPECT_TRUE(ValidateStoredProject(p).ok());
  }
}

TEST(OrgValidationTest, ProjectIdsFollowTheOneProjectIdRule) {
  for (const char* id : {"ML.Platform", "Probe-1", "a:b", "a@b", "a+b"}) {
    Project p = GoodProject();
    p.id = id;
    ExpectInvalid(ValidateProject(p), "project.id");
    // Projects stored before the rule stay valid, so that their organisation can change.
    EXPECT_TRUE(ValidateStoredProject(p).ok()) << id;
  }
  Project p = GoodProject();
  p.id = std::string(65, 'a');
  ExpectInvalid(ValidateProject(p), "longer than 64 bytes");
}

TEST(OrgValidationTest, LimitsAreBoundedSoThatRateLimitingCannotOverflow) {
  Project p = GoodProject();
  p.rpm_limit = kMaxRpmLimit;
  p.tpm_limit = kMaxTpmLimit;
  p.member_rpm_limit = kMaxRpmLimit;
  p.member_tpm_limit = kMaxTpmLimit;
  EXPECT_TRUE(ValidateProject(p).ok());
  for (auto set : std::vector<std::function<void(Project&)>>{
           [](Project& q) { q.rpm_limit = kMaxRpmLimit + 1; },
           [](Project& q) { q.tpm_limit = kMaxTpmLimit + 1; },
           [](Project& q) { q.member_rpm_limit = kMaxRpmLimit + 1; },
           [](Project& q) { q.member_tpm_limit = std::numeric_limits<int64_t>::max(); },
           [](Project& q) { q.tpm_limit = std::numeric_limits<int64_t>::max(); }}) {
    Project q = p;
    set(q);
    ExpectInvalid(ValidateProject(q), "more than the maximum");
    EXPECT_TRUE(ValidateStoredProject(q).ok());
  }
  EXPECT_EQ(ValidateLimits(kMaxRpmLimit, kMaxTpmLimit + 1, "x").message(),
            "x.tpm_limit: more than the maximum of 10000000000");
}

TEST(OrgValidationTest, Members) {
  Member m{"user-1", "alice@company.com", {{Role::kOwner, "", std::nullopt}}, {}, "", "", {}};
  EXPECT_TRUE(ValidateMember(m).ok());
  Member bad = m;
  bad.email = "alice";
  ExpectInvalid(ValidateMember(bad), "member.email");
  bad = m;
  bad.email = "a@b@c";
  ExpectInvalid(ValidateMember(bad), "member.email");
  for (const std::string& email :
       {std::string("al\0ice@company.com", 18), std::string("alice@company.com\n"),
        std::string("a\tb@c.com"), std::string("al\xffice@company.com")}) {
    bad.email = email;
    ExpectInvalid(ValidateMember(bad), "member.email");
  }
  bad.email = "zoë@company.com";
  EXPECT_TRUE(ValidateMember(bad).ok());
  // An erased member keeps no address, and only a removed one is erased.
  Member erased = m;
  erased.removed_at = absl::UnixEpoch();
  erased.erased_at = absl::UnixEpoch() + absl::Hours(1);
  erased.email = "";
  EXPECT_TRUE(ValidateMember(erased).ok());
  bad = m;
  bad.email = "";
  ExpectInvalid(ValidateMember(bad), "member.email");
  bad = erased;
  bad.email = "alice@company.com";
  ExpectInvalid(ValidateMember(bad), "member.erased_at");
  bad = erased;
  bad.removed_at.reset();
  ExpectInvalid(ValidateMember(bad), "member.erased_at");
  bad = m;
  bad.grants = {{Role::kAdmin, "proj-prod", std::nullopt}};
  ExpectInvalid(ValidateMember(bad), "organisation role");
  bad = m;
  bad.grants = {{Role::kReader, "", std::nullopt}};
  ExpectInvalid(ValidateMember(bad), "member.grants[0].project");
  bad = m;
  bad.grants = {{Role::kMember, "p", std::nullopt}, {Role::kMember, "p", kNow}};
  ExpectInvalid(ValidateMember(bad), "granted twice");
}

TEST(OrgValidationTest, ServiceAccounts) {
  ServiceAccount a;
  a.id = "sa-ci";
  a.project = "proj-prod";
  a.permissions = {"chat.completions", "embeddings"};
  EXPECT_TRUE(ValidateServiceAccount(a).ok());
  ServiceAccount bad = a;
  bad.permissions = {"chat.complete"};
  ExpectInvalid(ValidateServiceAccount(bad), "unknown action");
  bad.permissions = {"members.manage"};
  ExpectInvalid(ValidateServiceAccount(bad), "API permissions only");
  bad.permissions = {"embeddings", "embeddings"};
  ExpectInvalid(ValidateServiceAccount(bad), "listed twice");
  bad.permissions = {};
  ExpectInvalid(ValidateServiceAccount(bad), "1 to 32");
  bad = a;
  bad.max_key_lifetime = absl::Hours(24 * 400);
  ExpectInvalid(ValidateServiceAccount(bad), "max_key_lifetime");
  // Whole seconds, as keys' lifetimes and the organisation file count them.
  for (absl::Duration lifetime : {absl::Nanoseconds(1), absl::Milliseconds(999),
                                  absl::Milliseconds(1500), absl::ZeroDuration()}) {
    bad.max_key_lifetime = lifetime;
    EXPECT_EQ(ValidateServiceAccount(bad).message(),
              "service_account.max_key_lifetime must be whole seconds, from 1s to 365 days");
  }
  bad.max_key_lifetime = absl::Seconds(1);
  EXPECT_TRUE(ValidateServiceAccount(bad).ok());
  bad = a;
  bad.tpm_limit = kMaxTpmLimit + 1;
  ExpectInvalid(ValidateServiceAccount(bad), "service_account.tpm_limit");
  EXPECT_TRUE(ValidateStoredServiceAccount(bad).ok());
  bad = a;
  bad.rpm_limit = kMaxRpmLimit + 1;
  ExpectInvalid(ValidateServiceAccount(bad), "service_account.rpm_limit");
  bad = a;
  bad.project = "Proj.Prod";
  ExpectInvalid(ValidateServiceAccount(bad), "service_account.project");
  EXPECT_TRUE(ValidateStoredServiceAccount(bad).ok());
}

TEST(OrgValidationTest, TheLastOwnerCannotLeave) {
  Member alice{"alice", "alice@company.com", {{Role::kOwner, "", std::nullopt}}, {}, "", "", {}};
  Member bob{"bob", "bob@company.com", {{Role::kAdmin, "", std::nullopt}}, {}, "", "", {}};
  Member alice_gone = alice;
  alice_gone.removed_at = kNow;
  absl::Status status = CheckOwnersRemain({alice, bob}, alice_gone, kNow);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("last owner"));
  Member alice_demoted = alice;
  alice_demoted.grants = {{Role::kAdmin, "", std::nullopt}};
  EXPECT_EQ(CheckOwnersRemain({alice, bob}, alice_demoted, kNow).code(),
            absl::StatusCode::kFailedPrecondition);
  // With a second owner, either may go; an expired owner grant does not count as an owner.
  Member bob_owner = bob;
  bob_owner.grants = {{Role::kOwner, "", std::nullopt}};
  EXPECT_TRUE(CheckOwnersRemain({alice, bob_owner}, alice_gone, kNow).ok());
  Member bob_expired = bob;
  bob_expired.grants = {{Role::kOwner, "", kNow - absl::Seconds(1)}};
  EXPECT_FALSE(CheckOwnersRemain({alice, bob_expired}, alice_gone, kNow).ok());
  // Changes to non-owners never trip it.
  Member bob_gone = bob;
  bob_gone.removed_at = kNow;
  EXPECT_TRUE(CheckOwnersRemain({alice, bob}, bob_gone, kNow).ok());
}

}  // namespace
}  // namespace policy::authz
