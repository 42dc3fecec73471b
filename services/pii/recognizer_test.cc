#include "services/pii/recognizer.h"

#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/pii/validators.h"

namespace policy::pii {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// The error message ParseRecognizersYaml gives for `yaml`, or "" when it parses.
std::string ParseError(absl::string_view yaml) {
  absl::StatusOr<std::vector<RecognizerSpec>> specs = ParseRecognizersYaml(yaml);
  if (specs.ok()) return "";
  EXPECT_EQ(specs.status().code(), absl::StatusCode::kInvalidArgument) << specs.status();
  return std::string(specs.status().message());
}

TEST(BuiltinRecognizersTest, AreWellFormedAndCoverEveryType) {
  std::set<std::string> names;
  std::set<std::string> types;
  for (const RecognizerSpec& spec : BuiltinRecognizers()) {
    EXPECT_TRUE(CheckRecognizerSpec(spec).ok()) << spec.name << ": " << CheckRecognizerSpec(spec);
    EXPECT_TRUE(names.insert(spec.name).second) << "duplicate " << spec.name;
    EXPECT_GE(spec.score, 0.5) << spec.name << " would be under the default threshold";
    types.insert(spec.entity_type);
  }
  EXPECT_THAT(
      types,
      ElementsAre(
          "ATLASSIAN_API_TOKEN", "AT_SOCIAL_INSURANCE_NUMBER", "AWS_ACCESS_KEY",
          "AZURE_CLIENT_SECRET", "AZURE_SAS_TOKEN", "AZURE_SHARED_ACCESS_KEY", "AZURE_STORAGE_KEY",
          "BE_NATIONAL_NUMBER", "CREDIT_CARD", "CRYPTO", "DATABRICKS_TOKEN",
          "DE_HEALTH_INSURANCE_NUMBER", "DE_TAX_ID", "DIGITALOCEAN_TOKEN", "DISCORD_BOT_TOKEN",
          "DISCORD_WEBHOOK_URL", "DK_CPR", "DOCKER_HUB_TOKEN", "EMAIL_ADDRESS", "ES_NIE", "ES_NIF",
          "EU_VAT_NUMBER", "FI_PERSONAL_IDENTITY_CODE", "FR_NIR", "GITHUB_TOKEN", "GITLAB_TOKEN",
          "GOOGLE_API_KEY", "GOOGLE_OAUTH_CLIENT_SECRET", "GOOGLE_OAUTH_TOKEN", "GRAFANA_TOKEN",
          "GROQ_API_KEY", "HUGGINGFACE_TOKEN", "IBAN_CODE", "IDENTITY_DOCUMENT_MRZ", "IE_PPSN",
          "IP_ADDRESS", "IT_FISCAL_CODE", "JWT", "LANGSMITH_API_KEY", "MEDICAL_LICENSE", "NL_BSN",
          "NPM_TOKEN", "OPENAI_API_KEY", "PERPLEXITY_API_KEY", "PHONE_NUMBER", "PL_PESEL",
          "POLICY_SUITE_KEY", "POSTMAN_API_KEY", "PRIVATE_KEY", "PT_TAX_ID", "PYPI_TOKEN",
          "REPLICATE_API_TOKEN", "SENDGRID_API_KEY", "SE_PERSONAL_IDENTITY_NUMBER", "SLACK_TOKEN",
          "SLACK_WEBHOOK_URL", "STRIPE_API_KEY", "TELEGRAM_BOT_TOKEN", "UK_NHS", "UK_NINO",
          "URL_CREDENTIALS", "US_ITIN", "US_SSN", "VAULT_TOKEN", "WEBHOOK_SIGNING_SECRET",
          "XAI_API_KEY"));
}

TEST(ValidatorNamesTest, EveryNameHasAValidator) {
  const std::vector<std::string> names = ValidatorNames();
  EXPECT_GE(names.size(), 34u);
  for (const std::string& name : names) EXPECT_NE(FindValidator(name), nullptr) << name;
}

TEST(CheckRecognizerSpecTest, NamesTheField) {
  RecognizerSpec good;
  good.name = "employee_id";
  good.entity_type = "EMPLOYEE_ID";
  good.pattern = "EMP-[0-9]{6}";
  EXPECT_TRUE(CheckRecognizerSpec(good).ok());
  auto error_of = [&](auto change) {
    RecognizerSpec spec = good;
    change(spec);
    absl::Status status = CheckRecognizerSpec(spec);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    return std::string(status.message());
  };
  EXPECT_THAT(error_of([](RecognizerSpec& s) { s.name = ""; }), HasSubstr("name:"));
  EXPECT_THAT(error_of([](RecognizerSpec& s) { s.name = "has space"; }), HasSubstr("name:"));
  EXPECT_THAT(error_of([](RecognizerSpec& s) { s.entity_type = "Employee"; }),
              HasSubstr("entity_type: 'Employee' is not [A-Z][A-Z0-9_]*"));
  EXPECT_THAT(error_of([](RecognizerSpec& s) { s.entity_type = "9LIVES"; }),
              HasSubstr("entity_type:"));
  EXPECT_THAT(error_of([](RecognizerSpec& s) { s.score = 1.01; }), HasSubstr("score:"));
  EXPECT_THAT(error_of([](RecognizerSpec& s) { s.score = -0.1; }), HasSubstr("score:"));
  EXPECT_THAT(error_of([](RecognizerSpec& s) { s.validator = "luhnn"; }),
              HasSubstr("validator: unknown validator 'luhnn'"));
  EXPECT_THAT(error_of([](RecognizerSpec& s) { s.context_words = {"Staff"}; }),
              HasSubstr("context:"));
  EXPECT_THAT(error_of([](RecognizerSpec& s) { s.context_words = {std::string(33, 'a')}; }),
              HasSubstr("context:"));
  EXPECT_THAT(error_of([](RecognizerSpec& s) {
                s.context_words = std::vector<std::string>(kMaxContextWords + 1, "w");
              }),
              HasSubstr("context: more than 64 words"));
  EXPECT_THAT(error_of([](RecognizerSpec& s) { s.excluded_prefixes = {""}; }),
              HasSubstr("excluded_prefixes:"));
  // A pattern matching empty text would make every position a match (and once crashed the
  // scan): refused at load, wherever the empty match may be.
  for (const char* pattern :
       {"#?[0-9]*", "x*", "a?", "\\b", "EMP-[0-9]{6}|", "(?m)^", "\\s*", "\\w+|\\b", "(?m)$|x"}) {
    EXPECT_THAT(error_of([&](RecognizerSpec& s) { s.pattern = pattern; }),
                HasSubstr("matches empty text"))
        << pattern;
  }
  for (const char* pattern : {".+", "\\bEMP-[0-9]+\\b", "(?i)ticket #?([0-9]+)"}) {
    RecognizerSpec spec = good;
    spec.pattern = pattern;
    EXPECT_TRUE(CheckRecognizerSpec(spec).ok()) << pattern << ": " << CheckRecognizerSpec(spec);
  }
  EXPECT_THAT(error_of([](RecognizerSpec& s) { s.context_required = true; }),
              HasSubstr("context_required:"));
  EXPECT_THAT(error_of([](RecognizerSpec& s) { s.pattern = "EMP-["; }),
              HasSubstr("pattern: invalid RE2 pattern 'EMP-[': missing ]"));
  EXPECT_THAT(error_of([](RecognizerSpec& s) { s.pattern = ""; }), HasSubstr("pattern:"));
}

TEST(ParseRecognizersYamlTest, ParsesEveryField) {
  absl::StatusOr<std::vector<RecognizerSpec>> specs = ParseRecognizersYaml(R"(
recognizers:
  - name: employee_id
    entity_type: EMPLOYEE_ID
    pattern: 'EMP-[0-9]{6}'
    score: 0.6
    validator: luhn
    context: [Employee, staff]
    context_required: true
  - name: ticket
    entity_type: TICKET
    pattern: 'TCK-([0-9]+)'
)");
  ASSERT_TRUE(specs.ok()) << specs.status();
  ASSERT_EQ(specs->size(), 2u);
  const RecognizerSpec& first = (*specs)[0];
  EXPECT_EQ(first.name, "employee_id");
  EXPECT_EQ(first.entity_type, "EMPLOYEE_ID");
  EXPECT_EQ(first.pattern, "EMP-[0-9]{6}");
  EXPECT_DOUBLE_EQ(first.score, 0.6);
  EXPECT_EQ(first.validator, "luhn");
  EXPECT_THAT(first.context_words, ElementsAre("employee", "staff"));
  EXPECT_TRUE(first.context_required);
  const RecognizerSpec& second = (*specs)[1];
  EXPECT_DOUBLE_EQ(second.score, 0.5);
  EXPECT_EQ(second.validator, "");
  EXPECT_THAT(second.context_words, IsEmpty());
  EXPECT_FALSE(second.context_required);
}

TEST(ParseRecognizersYamlTest, EmptyDeclaresNone) {
  for (absl::string_view yaml : {"", "# nothing\n", "recognizers: []\n", "recognizers:\n"}) {
    absl::StatusOr<std::vector<RecognizerSpec>> specs = ParseRecognizersYaml(yaml);
    ASSERT_TRUE(specs.ok()) << yaml << ": " << specs.status();
    EXPECT_THAT(*specs, IsEmpty());
  }
}

constexpr absl::string_view kGood = R"(recognizers:
  - name: first
    entity_type: FIRST
    pattern: 'A[0-9]{4}'
)";

TEST(ParseRecognizersYamlTest, BadPatternGivesRe2sError) {
  EXPECT_THAT(ParseError(absl::StrCat(kGood, R"(  - name: employee_id
    entity_type: EMPLOYEE_ID
    pattern: 'EMP-([0-9]{6}'
)")),
              HasSubstr("line 5: recognizers[1] (employee_id): pattern: invalid RE2 pattern "
                        "'EMP-([0-9]{6}': missing ): EMP-([0-9]{6}"));
}

TEST(ParseRecognizersYamlTest, EachBadFieldIsNamed) {
  auto entry = [](absl::string_view fields) {
    return absl::StrCat(kGood, "  - name: second\n", fields);
  };
  EXPECT_THAT(ParseError(entry("    entity_type: X\n    pattern: 'x'\n    colour: red\n")),
              HasSubstr("recognizers[1]: unknown key 'colour'"));
  EXPECT_THAT(ParseError(entry("    entity_type: X\n    pattern: 'x'\n    validator: lun\n")),
              HasSubstr("recognizers[1] (second): validator: unknown validator 'lun'"));
  EXPECT_THAT(ParseError(entry("    entity_type: X\n    pattern: 'x'\n    score: 1.5\n")),
              HasSubstr("recognizers[1] (second): score: 1.5 is outside [0, 1]"));
  EXPECT_THAT(ParseError(entry("    entity_type: X\n    pattern: 'x'\n    score: -1\n")),
              HasSubstr("recognizers[1] (second): score: -1 is outside [0, 1]"));
  EXPECT_THAT(ParseError(entry("    entity_type: X\n    pattern: 'x'\n    score: high\n")),
              HasSubstr("recognizers[1]: score: 'high' is not a number"));
  EXPECT_THAT(ParseError(entry("    entity_type: second_type\n    pattern: 'x'\n")),
              HasSubstr("recognizers[1] (second): entity_type: 'second_type' is not"));
  EXPECT_THAT(ParseError(entry("    entity_type: X\n    pattern: 'x'\n    context: staff\n")),
              HasSubstr("recognizers[1]: context: must be a list"));
  EXPECT_THAT(ParseError(entry("    entity_type: X\n    pattern: 'x'\n    context_required: yes"
                               "\n")),
              HasSubstr("context_required: 'yes' is not a boolean"));
  EXPECT_THAT(ParseError(entry("    entity_type: X\n")), HasSubstr("pattern: missing"));
  EXPECT_THAT(ParseError(entry("    entity_type: X\n    pattern: 'x'\n    pattern: 'y'\n")),
              HasSubstr("pattern: given twice"));
  EXPECT_THAT(ParseError(absl::StrCat(kGood, "  - entity_type: X\n    pattern: 'x'\n")),
              HasSubstr("recognizers[1]: name: missing"));
}

TEST(ParseRecognizersYamlTest, DuplicateNamesAreErrors) {
  EXPECT_THAT(ParseError(absl::StrCat(kGood, kGood.substr(kGood.find("  - ")))),
              HasSubstr("recognizers[1] (first): name: duplicate name 'first'"));
  EXPECT_THAT(ParseError("recognizers:\n  - {name: credit_card, entity_type: X, pattern: x}\n"),
              HasSubstr("recognizers[0] (credit_card): name: duplicate name 'credit_card'"));
}

TEST(ParseRecognizersYamlTest, BadDocumentsAreInvalidArgument) {
  EXPECT_THAT(ParseError("recognisers: []\n"), HasSubstr("unknown key 'recognisers'"));
  EXPECT_THAT(ParseError("- a\n- b\n"), HasSubstr("must be a map"));
  EXPECT_THAT(ParseError("recognizers: {name: x}\n"), HasSubstr("recognizers: must be a list"));
  EXPECT_THAT(ParseError("recognizers: [1, 2]\n"), HasSubstr("recognizers[0]: must be a map"));
  EXPECT_THAT(ParseError("recognizers: [\n"), HasSubstr("line"));
  EXPECT_THAT(ParseError("recognizers: []\n---\nrecognizers: []\n"),
              HasSubstr("a second YAML document"));
  EXPECT_NE(ParseError("recognizers: [{name: x, entity_type: X, pattern: x}],\n,"), "");
}

}  // namespace
}  // namespace policy::pii
