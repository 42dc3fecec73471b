#include "services/authz/authorizer.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "common/clock/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/authz/memory_bucket_store.h"
#include "services/authz/org_cache.h"
#include "services/authz/org_state.h"
#include "services/authz/rate_limiter.h"

namespace policy::authz {
namespace {

using ::testing::HasSubstr;

// One project whose own request limit (5) is above its members' (3), and a service account
// whose own limit (10) is above the project's: each principal is held by a different bucket.
class AuthorizerTest : public ::testing::Test {
 protected:
  AuthorizerTest() {
    auto state = std::make_shared<OrgState>();
    state->version = 1;
    Project p;
    p.id = "proj";
    p.name = "proj";
    p.environment = Environment::kDevelopment;
    p.allowed_models = {"gpt-4o"};
    p.rpm_limit = 5;
    p.tpm_limit = 1000;
    p.member_rpm_limit = 3;
    p.key_holders = KeyHolders::kMembers;
    p.data_policy.pii_rules = {{"EMAIL_ADDRESS", PiiTreatment::kAllow},
                               {"US_SSN", PiiTreatment::kBlock}};
    p.data_policy.data_class = DataClass::kPhi;
    state->projects.push_back(p);
    state->members.push_back(Member{
        "carol", "carol@company.com", {{Role::kMember, "proj", std::nullopt}}, {}, "", "", {}});
    ServiceAccount ci;
    ci.id = "sa-ci";
    ci.project = "proj";
    ci.environment = Environment::kDevelopment;
    ci.permissions = {"chat.completions"};
    ci.ip_allowlist = *IpAllowlist::Parse({"10.0.0.0/8"});
    ci.rpm_limit = 10;
    state->service_accounts.push_back(ci);
    cache_.OnState(std::move(state));
    cache_.OnInSync(clock_.Now());
  }

  static CheckRequest Carol() {
    CheckRequest r;
    r.principal_kind = PrincipalKind::kMember;
    r.principal_id = "carol";
    r.project = "proj";
    r.action = "chat.completions";
    r.model = "gpt-4o";
    return r;
  }
  static CheckRequest Ci() {
    CheckRequest r = Carol();
    r.principal_kind = PrincipalKind::kServiceAccount;
    r.principal_id = "sa-ci";
    r.source_ip = *ParseIpAddress("10.1.2.3");
    return r;
  }

  // "ALLOW" or the rate-limit rule that denied.
  std::string Authorize(const CheckRequest& who, int64_t tokens = 10) {
    absl::StatusOr<Authorization> a = authorizer_.Authorize({who, tokens});
    EXPECT_TRUE(a.ok()) << a.status();
    if (!a.ok()) return a.status().ToString();
    if (a->decision.allowed) return "ALLOW";
    return a->rate_limited ? a->limit_rule : "DENY";
  }

  absl::StatusOr<UsageReconciliation> Refund(const std::string& id, const CheckRequest& who,
                                             int64_t tokens = 10) {
    return authorizer_.ReportUsage(UsageReport{id, who, tokens, 0, /*refund_request=*/true});
  }

  FakeClock clock_;
  OrgCache cache_{&clock_, absl::Minutes(1)};
  MemoryBucketStore store_;
  RateLimiter limiter_{&store_};
  Authorizer authorizer_{&cache_, &limiter_, &clock_};
};

TEST_F(AuthorizerTest, AnApiActionLearnsTheProjectsPiiRulesAndDataClassWhateverItsVerdict) {
  const std::vector<PiiRule> rules = {{"EMAIL_ADDRESS", PiiTreatment::kAllow},
                                      {"US_SSN", PiiTreatment::kBlock}};
  absl::StatusOr<Authorization> a = authorizer_.Authorize({Carol(), 10});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(a->decision.allowed);
  EXPECT_EQ(a->pii_rules, rules);
  EXPECT_EQ(a->data_class, DataClass::kPhi);
  // Denied (a model the project does not allow): the rules still come, for the edge's
  // redaction beside the check.
  CheckRequest other_model = Carol();
  other_model.model = "gpt-3.5";
  a = authorizer_.Authorize({other_model, 10});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_FALSE(a->decision.allowed);
  EXPECT_EQ(a->pii_rules, rules);
  EXPECT_EQ(a->data_class, DataClass::kPhi);
  // No project, no rules.
  CheckRequest elsewhere = Carol();
  elsewhere.project = "nowhere";
  a = authorizer_.Authorize({elsewhere, 10});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(a->pii_rules.empty());
  EXPECT_EQ(a->data_class, std::nullopt);
}

TEST_F(AuthorizerTest, AGrantsOnlyCheckTakesNoBudget) {
  CheckRequest standing = Carol();
  standing.grants_only = true;
  standing.model.clear();
  for (int i = 0; i < 10; ++i) {
    absl::StatusOr<Authorization> a = authorizer_.Authorize({standing, 10});
    ASSERT_TRUE(a.ok()) << a.status();
    EXPECT_TRUE(a->decision.allowed);
    EXPECT_TRUE(a->budgets.empty());
  }
  // carol's 3 requests a minute are all still there.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Authorize(Carol()), "ALLOW") << i;
  EXPECT_EQ(Authorize(Carol()), "rate_limit.principal.rpm");
}

TEST_F(AuthorizerTest, ARefundedRequestGivesItsMemberRequestUnitBackOnce) {
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Authorize(Carol()), "ALLOW") << i;
  ASSERT_EQ(Authorize(Carol()), "rate_limit.principal.rpm");

  absl::StatusOr<UsageReconciliation> refunded = Refund("refund-1", Carol());
  ASSERT_TRUE(refunded.ok()) << refunded.status();
  EXPECT_EQ(refunded->adjusted_tokens, -10);
  EXPECT_FALSE(refunded->duplicate);
  EXPECT_EQ(Authorize(Carol()), "ALLOW");
  EXPECT_EQ(Authorize(Carol()), "rate_limit.principal.rpm");

  // A retry of the refund gives nothing back again.
  refunded = Refund("refund-1", Carol());
  ASSERT_TRUE(refunded.ok()) << refunded.status();
  EXPECT_TRUE(refunded->duplicate);
  EXPECT_EQ(Authorize(Carol()), "rate_limit.principal.rpm");
}

TEST_F(AuthorizerTest, ARefundedRequestGivesItsProjectAndAccountRequestUnitsBack) {
  for (int i = 0; i < 5; ++i) ASSERT_EQ(Authorize(Ci(), 0), "ALLOW") << i;
  ASSERT_EQ(Authorize(Ci(), 0), "rate_limit.project.rpm");
  // Nothing estimated: the request unit comes back all the same.
  ASSERT_TRUE(Refund("refund-1", Ci(), 0).ok());
  ASSERT_TRUE(Refund("refund-2", Ci(), 0).ok());
  EXPECT_EQ(Authorize(Ci(), 0), "ALLOW");
  EXPECT_EQ(Authorize(Ci(), 0), "ALLOW");
  EXPECT_EQ(Authorize(Ci(), 0), "rate_limit.project.rpm");
  // The account's own bucket had its units back too: 7 taken, 2 returned, 5 left.
  EXPECT_EQ(Authorize(Carol()), "rate_limit.project.rpm");
  const BucketCharge probe{"s/sa-ci/r", 10, 0};
  absl::StatusOr<std::vector<BucketStore::Taken>> taken =
      store_.TakeAll({{&probe, 0}}, clock_.Now());
  ASSERT_TRUE(taken.ok()) << taken.status();
  const double level = (*taken)[0].level;
  EXPECT_GE(level, 10 - 7 + 2 - 1);  // At most one unit leased ahead on this replica.
  EXPECT_LE(level, 10 - 7 + 2);
}

TEST_F(AuthorizerTest, AUsageReportWithoutRefundKeepsTheRequestUnit) {
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Authorize(Carol()), "ALLOW") << i;
  absl::StatusOr<UsageReconciliation> reported =
      authorizer_.ReportUsage(UsageReport{"call-1", Carol(), 10, 0});
  ASSERT_TRUE(reported.ok()) << reported.status();
  EXPECT_EQ(reported->adjusted_tokens, -10);
  EXPECT_EQ(Authorize(Carol()), "rate_limit.principal.rpm");
}

TEST_F(AuthorizerTest, ARefundIsItsOwnReportAndUsesNoTokens) {
  // The same id without and then with the refund: other usage, refused.
  ASSERT_TRUE(authorizer_.ReportUsage(UsageReport{"call-1", Carol(), 10, 0}).ok());
  absl::StatusOr<UsageReconciliation> conflict = Refund("call-1", Carol());
  EXPECT_EQ(conflict.status().code(), absl::StatusCode::kAlreadyExists);
  // A request that never reached the model used no tokens.
  absl::StatusOr<UsageReconciliation> bad =
      authorizer_.ReportUsage(UsageReport{"refund-2", Carol(), 10, 4, true});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("refund_request"));
  EXPECT_THAT(bad.status().message(), HasSubstr("actual_tokens"));
}

TEST_F(AuthorizerTest, AUsageReportNamesAPrincipalIdNoOneCanHave) {
  for (const std::string& id : {std::string("a\0b", 3), std::string("a\nb"), std::string("")}) {
    CheckRequest who = Carol();
    who.principal_id = id;
    absl::Status bad = authorizer_.ReportUsage(UsageReport{"call-1", who, 10, 500}).status();
    EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(bad.message(), HasSubstr("principal.id"));
  }
  // An id the snapshot does not know (added since, or removed after the check) is charged.
  CheckRequest who = Carol();
  who.principal_id = "dave";
  absl::StatusOr<UsageReconciliation> reported =
      authorizer_.ReportUsage(UsageReport{"call-2", who, 10, 500});
  ASSERT_TRUE(reported.ok()) << reported.status();
  EXPECT_EQ(reported->adjusted_tokens, 490);
}

}  // namespace
}  // namespace policy::authz
