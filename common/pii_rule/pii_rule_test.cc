#include "common/pii_rule/pii_rule.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/pii_rule/pii_rule_proto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace policy {
namespace {

using ::testing::HasSubstr;

TEST(PiiRuleTest, EveryTreatmentIsWrittenAndReadBackInTextAndOnTheWire) {
  for (PiiTreatment t :
       {PiiTreatment::kRedact, PiiTreatment::kMask, PiiTreatment::kReplace, PiiTreatment::kHash,
        PiiTreatment::kPlaceholder, PiiTreatment::kBlock, PiiTreatment::kAllow}) {
    const PiiRule rule{"US_SSN", t};
    absl::StatusOr<PiiRule> text = ParsePiiRule(FormatPiiRule(rule), "rule");
    ASSERT_TRUE(text.ok()) << text.status();
    EXPECT_EQ(*text, rule) << FormatPiiRule(rule);
    pii::v1::EntityRule wire;
    PiiRuleToProto(rule, &wire);
    absl::StatusOr<PiiRule> back = PiiRuleFromProto(wire, "rule");
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, rule) << FormatPiiRule(rule);
  }
  EXPECT_EQ(FormatPiiRule({"EMAIL_ADDRESS", PiiTreatment::kPlaceholder}),
            "EMAIL_ADDRESS=placeholder");
}

TEST(PiiRuleTest, TheWiresDefaultsRedact) {
  pii::v1::EntityRule wire;
  wire.set_entity_type("US_SSN");
  EXPECT_EQ(PiiRuleFromProto(wire, "r")->treatment, PiiTreatment::kRedact);
  wire.set_operator_(pii::v1::OPERATOR_MASK);
  EXPECT_EQ(PiiRuleFromProto(wire, "r")->treatment, PiiTreatment::kMask);
  wire.set_action(static_cast<pii::v1::Action>(9));
  EXPECT_EQ(PiiRuleFromProto(wire, "rules[2]").status().message(),
            "rules[2].action: unknown value 9");
  wire.set_action(pii::v1::ACTION_REDACT);
  wire.set_operator_(static_cast<pii::v1::Operator>(42));
  EXPECT_EQ(PiiRuleFromProto(wire, "rules[2]").status().message(),
            "rules[2].operator: unknown value 42");
}

TEST(PiiRuleTest, BadTextNamesWhatIsWrong) {
  EXPECT_EQ(ParsePiiRule("US_SSN", "--pii").status().message(),
            "--pii: 'US_SSN' is not TYPE=treatment (US_SSN=block)");
  EXPECT_THAT(ParsePiiRule("us_ssn=block", "--pii").status().message(),
              HasSubstr("'us_ssn' is not an entity type name"));
  EXPECT_EQ(ParsePiiRule("US_SSN=forbid", "--pii").status().message(),
            "--pii: 'forbid' is not one of redact, mask, replace, hash, placeholder, block, "
            "allow");
  EXPECT_FALSE(ParsePiiRule("=block", "--pii").ok());
}

TEST(PiiRuleTest, RulesAreBoundedNamedAndOnePerType) {
  std::vector<PiiRule> rules = {{"US_SSN", PiiTreatment::kBlock},
                                {"EMAIL_ADDRESS", PiiTreatment::kAllow}};
  EXPECT_TRUE(ValidatePiiRules(rules, "pii").ok());
  SortPiiRules(rules);
  EXPECT_EQ(rules[0].entity_type, "EMAIL_ADDRESS");
  rules.push_back({"US_SSN", PiiTreatment::kMask});
  EXPECT_EQ(ValidatePiiRules(rules, "pii").message(), "pii[2]: US_SSN has another rule already");
  rules.back().entity_type = "1SSN";
  EXPECT_THAT(ValidatePiiRules(rules, "pii").message(), HasSubstr("pii[2]: '1SSN' is not"));
  rules.back().entity_type = std::string(kMaxEntityTypeBytes + 1, 'A');
  EXPECT_FALSE(ValidatePiiRules(rules, "pii").ok());
  std::vector<PiiRule> many;
  for (size_t i = 0; i <= kMaxPiiRules; ++i) {
    many.push_back({absl::StrCat("T", i), PiiTreatment::kRedact});
  }
  EXPECT_EQ(ValidatePiiRules(many, "pii").message(), "pii: at most 64 rules, not 65");
  many.pop_back();
  EXPECT_TRUE(ValidatePiiRules(many, "pii").ok());
}

TEST(PiiRuleTest, EntityTypeNames) {
  for (const char* good : {"US_SSN", "A", "IBAN_CODE", "X9"}) EXPECT_TRUE(IsValidEntityType(good));
  for (const char* bad : {"", "us_ssn", "9X", "_X", "US SSN", "US-SSN"}) {
    EXPECT_FALSE(IsValidEntityType(bad)) << bad;
  }
}

}  // namespace
}  // namespace policy
