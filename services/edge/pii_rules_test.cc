#include "services/edge/pii_rules.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/edge/decision_flow.h"

namespace policy::edge {
namespace {

using ::testing::HasSubstr;

pii::v1::EntityRule Rule(const char* type, pii::v1::Action action,
                         pii::v1::Operator op = pii::v1::OPERATOR_UNSPECIFIED) {
  pii::v1::EntityRule rule;
  rule.set_entity_type(type);
  rule.set_action(action);
  rule.set_operator_(op);
  return rule;
}

authz::v1::PiiPolicy Rules(std::initializer_list<pii::v1::EntityRule> rules) {
  authz::v1::PiiPolicy policy;
  for (const pii::v1::EntityRule& rule : rules) *policy.add_rules() = rule;
  return policy;
}

pii::v1::ListEntityTypesResponse Detects(std::initializer_list<const char*> types,
                                         bool keyed_hashing) {
  pii::v1::ListEntityTypesResponse known;
  for (const char* type : types) known.add_entity_types()->set_entity_type(type);
  known.set_keyed_hashing(keyed_hashing);
  return known;
}

TEST(KnownPiiRulesTest, RemembersPerProjectAndStartsAfreshWhenFull) {
  KnownPiiRules known(/*capacity=*/2);
  EXPECT_EQ(known.Find("a").get(), nullptr);
  known.Remember("a", Rules({Rule("US_SSN", pii::v1::ACTION_BLOCK)}));
  known.Remember("b", Rules({}));
  ASSERT_NE(known.Find("a").get(), nullptr);
  EXPECT_EQ(known.Find("a")->rules(0).entity_type(), "US_SSN");
  // A project already held is replaced in place.
  known.Remember("a", Rules({Rule("IBAN_CODE", pii::v1::ACTION_ALLOW)}));
  EXPECT_EQ(known.Find("a")->rules(0).entity_type(), "IBAN_CODE");
  ASSERT_NE(known.Find("b").get(), nullptr);
  // A third project: the others are forgotten (a decision then redacts twice, no more).
  known.Remember("c", Rules({}));
  EXPECT_EQ(known.Find("a").get(), nullptr);
  EXPECT_EQ(known.Find("b").get(), nullptr);
  EXPECT_NE(known.Find("c").get(), nullptr);
}

TEST(PiiRulesTest, SameRulesComparesTypesActionsOperatorsAndOrder) {
  const pii::v1::EntityRule ssn = Rule("US_SSN", pii::v1::ACTION_BLOCK);
  const pii::v1::EntityRule mail =
      Rule("EMAIL_ADDRESS", pii::v1::ACTION_REDACT, pii::v1::OPERATOR_MASK);
  EXPECT_TRUE(SameRules(Rules({}), Rules({})));
  EXPECT_TRUE(SameRules(Rules({ssn, mail}), Rules({ssn, mail})));
  EXPECT_FALSE(SameRules(Rules({ssn, mail}), Rules({mail, ssn})));
  EXPECT_FALSE(SameRules(Rules({ssn}), Rules({ssn, mail})));
  EXPECT_FALSE(SameRules(Rules({mail}), Rules({Rule("EMAIL_ADDRESS", pii::v1::ACTION_REDACT,
                                                    pii::v1::OPERATOR_HASH)})));
  EXPECT_FALSE(SameRules(Rules({ssn}), Rules({Rule("US_SSN", pii::v1::ACTION_ALLOW)})));
  EXPECT_FALSE(SameRules(Rules({ssn}), Rules({Rule("US_ITIN", pii::v1::ACTION_BLOCK)})));
}

TEST(PiiRulesTest, AProjectsRulesReplaceTheDeploymentsButNeverItsBlocks) {
  const pii::v1::RedactionPolicy deployment =
      *MakeRedactionPolicy("placeholder", {"PRIVATE_KEY", "AWS_ACCESS_KEY"});
  pii::v1::RedactionPolicy out;
  // No rules: the deployment's policy as it is.
  EXPECT_EQ(ApplyProjectRules(deployment, Rules({}), false, &out), 2);
  EXPECT_EQ(out.SerializeAsString(), deployment.SerializeAsString());

  const int first = ApplyProjectRules(
      deployment,
      Rules({Rule("AWS_ACCESS_KEY", pii::v1::ACTION_ALLOW),
             Rule("EMAIL_ADDRESS", pii::v1::ACTION_UNSPECIFIED, pii::v1::OPERATOR_HASH),
             Rule("PRIVATE_KEY", pii::v1::ACTION_BLOCK)}),
      /*forwards_as_sent=*/false, &out);
  // The deployment's two blocks stay, once each; the e-mail rule comes after them.
  ASSERT_EQ(out.rules_size(), 3);
  EXPECT_EQ(first, 2);
  EXPECT_EQ(out.rules(0).entity_type(), "PRIVATE_KEY");
  EXPECT_EQ(out.rules(1).entity_type(), "AWS_ACCESS_KEY");
  EXPECT_EQ(out.rules(1).action(), pii::v1::ACTION_BLOCK);
  EXPECT_EQ(out.rules(2).entity_type(), "EMAIL_ADDRESS");
  EXPECT_EQ(out.rules(2).action(), pii::v1::ACTION_UNSPECIFIED);
  EXPECT_EQ(out.default_rule().operator_(), pii::v1::OPERATOR_PLACEHOLDER);

  // Envoy's: whatever would be replaced (an unspecified action too) blocks; allowed stays.
  ApplyProjectRules(
      deployment,
      Rules({Rule("EMAIL_ADDRESS", pii::v1::ACTION_UNSPECIFIED, pii::v1::OPERATOR_MASK),
             Rule("IP_ADDRESS", pii::v1::ACTION_ALLOW)}),
      /*forwards_as_sent=*/true, &out);
  EXPECT_EQ(out.default_rule().action(), pii::v1::ACTION_BLOCK);
  for (const pii::v1::EntityRule& rule : out.rules()) {
    EXPECT_EQ(rule.action(),
              rule.entity_type() == "IP_ADDRESS" ? pii::v1::ACTION_ALLOW : pii::v1::ACTION_BLOCK)
        << rule.entity_type();
  }
}

TEST(PiiRulesTest, ARuleMustKeepTheDeploymentsBlocksAndBeOnePiiCanApply) {
  const pii::v1::RedactionPolicy deployment = *MakeRedactionPolicy("placeholder", {"PRIVATE_KEY"});
  const pii::v1::ListEntityTypesResponse known =
      Detects({"PRIVATE_KEY", "US_SSN", "EMAIL_ADDRESS"}, /*keyed_hashing=*/false);
  EXPECT_TRUE(CheckProjectRules(Rules({Rule("US_SSN", pii::v1::ACTION_BLOCK),
                                       Rule("PRIVATE_KEY", pii::v1::ACTION_BLOCK),
                                       Rule("EMAIL_ADDRESS", pii::v1::ACTION_ALLOW)}),
                                deployment, known, "rules")
                  .ok());
  absl::Status s = CheckProjectRules(
      Rules({Rule("US_SSN", pii::v1::ACTION_BLOCK), Rule("PRIVATE_KEY", pii::v1::ACTION_ALLOW)}),
      deployment, known, "rules");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "rules[1]: the edge blocks PRIVATE_KEY in every project (blocked_entity_types); a "
            "project's rule may only block it too");
  s = CheckProjectRules(Rules({Rule("EMPLOYEE_ID", pii::v1::ACTION_BLOCK)}), deployment, known,
                        "rules");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("rules[0]: the pii service detects no entity type "
                                     "'EMPLOYEE_ID'"));
  // A hash needs pii's pseudonym key: the deployment's state, not the rule's mistake.
  const authz::v1::PiiPolicy hashing =
      Rules({Rule("EMAIL_ADDRESS", pii::v1::ACTION_REDACT, pii::v1::OPERATOR_HASH)});
  s = CheckProjectRules(hashing, deployment, known, "rules");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("EMAIL_ADDRESS=hash, but the pii service has no pseudonym"));
  EXPECT_TRUE(CheckProjectRules(hashing, deployment,
                                Detects({"EMAIL_ADDRESS"}, /*keyed_hashing=*/true), "rules")
                  .ok());
}

TEST(PiiRulesTest, ARefusalIsTheProjectsWhenItNamesOneOfItsRules) {
  const pii::v1::RedactionPolicy deployment =
      *MakeRedactionPolicy("placeholder", {"PRIVATE_KEY", "AWS_KEYS"});
  pii::v1::RedactionPolicy policy;
  // The project's own PRIVATE_KEY rule is dropped (the edge blocks it): not the project's.
  const int first = ApplyProjectRules(deployment,
                                      Rules({Rule("EMPLOYEE_ID", pii::v1::ACTION_BLOCK),
                                             Rule("PRIVATE_KEY", pii::v1::ACTION_BLOCK)}),
                                      false, &policy);
  ASSERT_EQ(first, 2);
  EXPECT_TRUE(RefusesProjectRule("policy.rules[2].entity_type: bad", policy, first));
  EXPECT_FALSE(RefusesProjectRule("policy.rules[1].entity_type: bad", policy, first));
  EXPECT_TRUE(
      RefusesProjectRule("policy.rules: unknown entity type 'EMPLOYEE_ID' (...)", policy, first));
  EXPECT_FALSE(
      RefusesProjectRule("policy.rules: unknown entity type 'AWS_KEYS' (...)", policy, first));
  EXPECT_FALSE(
      RefusesProjectRule("policy.rules: unknown entity type 'PRIVATE_KEY' (...)", policy, first));
  EXPECT_FALSE(RefusesProjectRule("policy.default_rule.operator: 9", policy, first));
  // pii's refusal of a hash names no rule: the project's when one of its rules hashes.
  const char* no_key = "policy.rules: OPERATOR_HASH, but this deployment has no pseudonym key";
  EXPECT_FALSE(RefusesProjectRule(no_key, policy, first));
  const int hashing_first = ApplyProjectRules(
      deployment, Rules({Rule("EMAIL_ADDRESS", pii::v1::ACTION_REDACT, pii::v1::OPERATOR_HASH)}),
      false, &policy);
  EXPECT_TRUE(RefusesProjectRule(no_key, policy, hashing_first));
  // No rules of the project's: never.
  const int none = ApplyProjectRules(deployment, Rules({}), false, &policy);
  EXPECT_FALSE(RefusesProjectRule("policy.rules[2].entity_type: bad", policy, none));
}

}  // namespace
}  // namespace policy::edge
