#include "services/pii/anonymizer.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace policy::pii {

void PrintTo(const PlaceholderEntry& entry, std::ostream* os) {
  *os << "{" << entry.placeholder << ", " << entry.entity_type << ", " << entry.value << "}";
}

namespace {

// Restore without a size limit that matters.
std::string Restored(absl::string_view text, const PlaceholderMapping& mapping) {
  return Restore(text, mapping, size_t{1} << 30).value();
}

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Pair;

// A 32-byte master key: bytes 0, 1, ..., 31.
std::string MasterKey() {
  std::string key;
  for (int i = 0; i < 32; ++i) key.push_back(static_cast<char>(i));
  return key;
}

std::shared_ptr<const PseudonymKey> KeyOf(absl::string_view project) {
  absl::StatusOr<std::shared_ptr<const PseudonymKey>> key =
      PseudonymKey::Derive(MasterKey(), project);
  EXPECT_TRUE(key.ok()) << key.status();
  return key.value_or(nullptr);
}

// Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF.
bool IsValidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      n = 1, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

std::vector<std::string> CodePoints(absl::string_view s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) == 0x80 && !out.empty()) {
      out.back().push_back(s[i]);
    } else {
      out.emplace_back(1, s[i]);
    }
  }
  return out;
}

// `masked` is `value` with every character but separators and the last four others (none if
// there are four or fewer) replaced by one '*' each. `value` holds no '*'.
void ExpectMaskOf(absl::string_view value, absl::string_view masked) {
  const std::vector<std::string> in = CodePoints(value);
  const std::vector<std::string> out = CodePoints(masked);
  ASSERT_EQ(in.size(), out.size()) << value << " -> " << masked;
  std::vector<size_t> others;
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == "-" || in[i] == " " || in[i] == ".") {
      EXPECT_EQ(out[i], in[i]) << value << " -> " << masked;
    } else {
      others.push_back(i);
    }
  }
  const size_t kept = others.size() > 4 ? 4 : 0;
  for (size_t k = 0; k < others.size(); ++k) {
    const size_t i = others[k];
    EXPECT_EQ(out[i], k + kept >= others.size() ? in[i] : "*") << value << " -> " << masked;
  }
}

bool IsCharBoundary(absl::string_view s, size_t at) {
  return at == s.size() || (static_cast<unsigned char>(s[at]) & 0xC0) != 0x80;
}

Finding At(absl::string_view text, absl::string_view value, absl::string_view type,
           size_t from = 0) {
  const size_t begin = text.find(value, from);
  EXPECT_NE(begin, absl::string_view::npos) << value;
  return Finding{.entity_type = std::string(type),
                 .begin = begin,
                 .end = begin + value.size(),
                 .score = 1,
                 .recognizer = "test"};
}

AnonymizationPolicy PolicyWith(Operator op) {
  AnonymizationPolicy policy;
  policy.default_rule = {.action = Action::kRedact, .op = op};
  return policy;
}

// Anonymizes `text` and checks what every call must hold: one applied finding per finding,
// spans in order and in bounds, and the text outside them unchanged.
AnonymizedText AnonymizeChecked(absl::string_view text, const std::vector<Finding>& findings,
                                const AnonymizationPolicy& policy, RequestContext& context) {
  absl::StatusOr<AnonymizedText> result = Anonymize(text, findings, policy, context);
  EXPECT_TRUE(result.ok()) << result.status();
  if (!result.ok()) return {};
  EXPECT_EQ(result->findings.size(), findings.size());
  size_t in = 0, out = 0;
  for (size_t i = 0; i < findings.size() && i < result->findings.size(); ++i) {
    const AppliedFinding& a = result->findings[i];
    EXPECT_LE(out, a.begin);
    EXPECT_LE(a.begin, a.end);
    EXPECT_LE(a.end, result->text.size());
    EXPECT_EQ(result->text.substr(out, a.begin - out), text.substr(in, findings[i].begin - in));
    in = findings[i].end;
    out = a.end;
  }
  EXPECT_EQ(result->text.substr(out), text.substr(in));
  return *std::move(result);
}

AnonymizedText RunOne(absl::string_view text, const std::vector<Finding>& findings,
                      const AnonymizationPolicy& policy,
                      std::shared_ptr<const PseudonymKey> key = nullptr) {
  RequestContext context(std::move(key));
  return AnonymizeChecked(text, findings, policy, context);
}

absl::string_view OutputOf(const AnonymizedText& result, size_t i) {
  const AppliedFinding& a = result.findings.at(i);
  return absl::string_view(result.text).substr(a.begin, a.end - a.begin);
}

std::string Masked(absl::string_view value) {
  const std::string text = absl::StrCat("value: ", value, ".");
  AnonymizedText result =
      RunOne(text, {At(text, value, "CREDIT_CARD")}, PolicyWith(Operator::kMask));
  return std::string(OutputOf(result, 0));
}

TEST(AnonymizerNamesTest, OperatorsActionsAndClassesRoundTrip) {
  for (Operator op : {Operator::kRedact, Operator::kMask, Operator::kReplaceWithType,
                      Operator::kKeyedHash, Operator::kPlaceholder}) {
    absl::StatusOr<Operator> parsed = OperatorByName(OperatorName(op));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, op);
  }
  EXPECT_EQ(OperatorName(Operator::kReplaceWithType), "replace");
  EXPECT_EQ(OperatorName(Operator::kKeyedHash), "hash");
  for (Action action : {Action::kRedact, Action::kBlock, Action::kAllow}) {
    absl::StatusOr<Action> parsed = ActionByName(ActionName(action));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, action);
  }
  for (DataClass c : {DataClass::kPublic, DataClass::kInternal, DataClass::kPii, DataClass::kPhi}) {
    absl::StatusOr<DataClass> parsed = DataClassByName(DataClassName(c));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, c);
  }
  EXPECT_EQ(DataClassName(DataClass::kPhi), "phi");
  EXPECT_LT(DataClass::kPublic, DataClass::kInternal);
  EXPECT_LT(DataClass::kInternal, DataClass::kPii);
  EXPECT_LT(DataClass::kPii, DataClass::kPhi);
}

TEST(AnonymizerNamesTest, UnknownNamesAreInvalidAndNamed) {
  absl::StatusOr<Operator> op = OperatorByName("scramble");
  EXPECT_EQ(op.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(op.status().message(), HasSubstr("'scramble'"));
  EXPECT_THAT(op.status().message(), HasSubstr("placeholder"));
  EXPECT_EQ(OperatorByName("Redact").status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<Action> action = ActionByName("deny");
  EXPECT_EQ(action.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(action.status().message(), HasSubstr("'deny'"));
  absl::StatusOr<DataClass> c = DataClassByName("secret");
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(c.status().message(), HasSubstr("'secret'"));
}

TEST(AnonymizationPolicyTest, EntityTypeNames) {
  for (absl::string_view good : {"US_SSN", "X", "A1", "MY_TYPE_2", "A_"}) {
    EXPECT_TRUE(IsValidEntityType(good)) << good;
  }
  EXPECT_TRUE(IsValidEntityType(std::string(kMaxEntityTypeBytes, 'A')));
  EXPECT_FALSE(IsValidEntityType(std::string(kMaxEntityTypeBytes + 1, 'A')));
  for (absl::string_view bad : {"", "us_ssn", "1ABC", "_A", "A-B", "A B", "ÄB", "A>", "A]"}) {
    EXPECT_FALSE(IsValidEntityType(bad)) << bad;
  }
}

TEST(AnonymizationPolicyTest, DefaultClasses) {
  for (absl::string_view type : {"US_SSN", "US_ITIN", "CREDIT_CARD", "IBAN_CODE", "EMAIL_ADDRESS",
                                 "PHONE_NUMBER", "IP_ADDRESS", "UK_NHS", "CRYPTO"}) {
    EXPECT_EQ(DefaultDataClass(type), DataClass::kPii) << type;
  }
  EXPECT_EQ(DefaultDataClass("MEDICAL_LICENSE"), DataClass::kPhi);
  for (absl::string_view type : {"POLICY_SUITE_KEY", "OPENAI_API_KEY", "AWS_ACCESS_KEY",
                                 "GITHUB_TOKEN", "SLACK_TOKEN", "PRIVATE_KEY", "URL_CREDENTIALS"}) {
    EXPECT_EQ(DefaultDataClass(type), DataClass::kInternal) << type;
  }
  EXPECT_EQ(DefaultDataClass("EMPLOYEE_ID"), DataClass::kPii);

  AnonymizationPolicy policy;
  EXPECT_EQ(policy.base_class, DataClass::kInternal);
  EXPECT_EQ(policy.RuleFor("US_SSN"), (EntityRule{Action::kRedact, Operator::kRedact}));
  policy.rules["US_SSN"] = {.action = Action::kRedact, .op = Operator::kMask};
  policy.classes["EMPLOYEE_ID"] = DataClass::kInternal;
  EXPECT_EQ(policy.RuleFor("US_SSN").op, Operator::kMask);
  EXPECT_EQ(policy.RuleFor("CREDIT_CARD").op, Operator::kRedact);
  EXPECT_EQ(policy.ClassOf("EMPLOYEE_ID"), DataClass::kInternal);
  EXPECT_EQ(policy.ClassOf("MEDICAL_LICENSE"), DataClass::kPhi);
  EXPECT_TRUE(ValidatePolicy(policy).ok());
}

TEST(AnonymizationPolicyTest, ValidateRejectsBadNamesAndValues) {
  AnonymizationPolicy bad_rule_type;
  bad_rule_type.rules["us_ssn"] = {};
  absl::Status status = ValidatePolicy(bad_rule_type);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("'us_ssn'"));

  AnonymizationPolicy bad_class_type;
  bad_class_type.classes["EMAIL ADDRESS"] = DataClass::kPii;
  status = ValidatePolicy(bad_class_type);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("'EMAIL ADDRESS'"));

  AnonymizationPolicy bad_op;
  bad_op.rules["US_SSN"] = {.action = Action::kRedact, .op = static_cast<Operator>(9)};
  status = ValidatePolicy(bad_op);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("US_SSN"));

  AnonymizationPolicy bad_default;
  bad_default.default_rule.action = static_cast<Action>(3);
  EXPECT_THAT(ValidatePolicy(bad_default).message(), HasSubstr("default_rule"));

  AnonymizationPolicy bad_base;
  bad_base.base_class = static_cast<DataClass>(-1);
  EXPECT_THAT(ValidatePolicy(bad_base).message(), HasSubstr("base_class"));
}

TEST(AnonymizerOperatorTest, RedactAndReplaceWithType) {
  const std::string text = "SSN 123-45-6789, card 4111111111111111.";
  const std::vector<Finding> findings = {At(text, "123-45-6789", "US_SSN"),
                                         At(text, "4111111111111111", "CREDIT_CARD")};
  AnonymizedText redacted = RunOne(text, findings, PolicyWith(Operator::kRedact));
  EXPECT_EQ(redacted.text, "SSN [US_SSN_REDACTED], card [CREDIT_CARD_REDACTED].");
  EXPECT_EQ(OutputOf(redacted, 0), "[US_SSN_REDACTED]");
  EXPECT_EQ(OutputOf(redacted, 1), "[CREDIT_CARD_REDACTED]");
  EXPECT_EQ(redacted.findings[1].op, Operator::kRedact);
  EXPECT_EQ(redacted.findings[1].action, Action::kRedact);
  EXPECT_EQ(redacted.findings[1].entity_type, "CREDIT_CARD");

  AnonymizedText replaced = RunOne(text, findings, PolicyWith(Operator::kReplaceWithType));
  EXPECT_EQ(replaced.text, "SSN <US_SSN>, card <CREDIT_CARD>.");
  EXPECT_EQ(OutputOf(replaced, 0), "<US_SSN>");
  EXPECT_EQ(replaced.findings[0].op, Operator::kReplaceWithType);
}

TEST(AnonymizerOperatorTest, MaskKeepsTheLastFourCharactersAndSeparators) {
  EXPECT_EQ(Masked("123-45-6789"), "***-**-6789");
  EXPECT_EQ(Masked("4111111111111111"), "************1111");
  EXPECT_EQ(Masked("4111 1111 1111 1111"), "**** **** **** 1111");
  EXPECT_EQ(Masked("415.555.2671"), "***.***.2671");
  EXPECT_EQ(Masked("12345"), "*2345");
  // Four characters or fewer: all masked.
  EXPECT_EQ(Masked("1234"), "****");
  EXPECT_EQ(Masked("12"), "**");
  EXPECT_EQ(Masked("1-2"), "*-*");
  // Characters are code points: each masked one becomes one '*', kept ones stay whole.
  EXPECT_EQ(Masked("üüüü€€€€"), "****€€€€");
  EXPECT_EQ(Masked("jürgen@müller.de"), "***********er.de");
  EXPECT_EQ(Masked("a😀b😀c"), "*😀b😀c");
  EXPECT_EQ(Masked("ü€😀"), "***");
}

TEST(AnonymizerOperatorTest, EveryOperatorOnAMultiByteEmail) {
  const std::string text = "Schreib an jürgen@müller.de, danke — Grüße";
  const std::vector<Finding> findings = {At(text, "jürgen@müller.de", "EMAIL_ADDRESS")};
  for (Operator op : {Operator::kRedact, Operator::kMask, Operator::kReplaceWithType,
                      Operator::kKeyedHash, Operator::kPlaceholder}) {
    AnonymizedText result = RunOne(text, findings, PolicyWith(op), KeyOf("proj-a"));
    EXPECT_TRUE(IsValidUtf8(result.text)) << OperatorName(op);
    EXPECT_FALSE(absl::StrContains(result.text, "jürgen")) << OperatorName(op);
    EXPECT_TRUE(absl::StartsWith(result.text, "Schreib an ")) << OperatorName(op);
    EXPECT_TRUE(absl::EndsWith(result.text, ", danke — Grüße")) << OperatorName(op);
    EXPECT_EQ(result.findings[0].begin, std::string("Schreib an ").size());
  }
  EXPECT_EQ(OutputOf(RunOne(text, findings, PolicyWith(Operator::kPlaceholder)), 0),
            "<EMAIL_ADDRESS_1>");
  EXPECT_EQ(OutputOf(RunOne(text, findings, PolicyWith(Operator::kKeyedHash), KeyOf("proj-a")), 0),
            KeyOf("proj-a")->Pseudonym("EMAIL_ADDRESS", "jürgen@müller.de"));
}

TEST(KeyedHashTest, MatchesTheDocumentedConstruction) {
  // Recomputed here from the primitives, as the header documents it.
  const std::string label("policy-suite pii pseudonym v1\0", 30);
  const std::string project_key = crypto::HmacSha256(MasterKey()).Mac(label + "proj-a");
  const std::string tag =
      crypto::HmacSha256(project_key).Mac(std::string("EMAIL_ADDRESS\0alice@example.com", 31));
  const std::string expected =
      absl::StrCat("<EMAIL_ADDRESS_", absl::BytesToHexString(tag).substr(0, 12), ">");
  EXPECT_EQ(KeyOf("proj-a")->Pseudonym("EMAIL_ADDRESS", "alice@example.com"), expected);
  // And an independent computation (Python's hmac module) of the same definition.
  EXPECT_EQ(expected, "<EMAIL_ADDRESS_eb2c65005965>");
  EXPECT_EQ(KeyOf("proj-a")->Pseudonym("US_SSN", "123-45-6789"), "<US_SSN_f1e1cafea9dd>");
  EXPECT_EQ(KeyOf("proj-a")->Pseudonym("EMAIL_ADDRESS", "jürgen@müller.de"),
            "<EMAIL_ADDRESS_bc4410f01471>");
}

TEST(KeyedHashTest, StableWithinAProjectDistinctAcrossProjectsAndTypes) {
  const std::string text = "mail bob@example.com or bob@example.com, ip 10.1.2.3";
  const std::vector<Finding> findings = {At(text, "bob@example.com", "EMAIL_ADDRESS"),
                                         At(text, "bob@example.com", "EMAIL_ADDRESS", 10),
                                         At(text, "10.1.2.3", "IP_ADDRESS")};
  const AnonymizationPolicy policy = PolicyWith(Operator::kKeyedHash);
  AnonymizedText first = RunOne(text, findings, policy, KeyOf("proj-a"));
  AnonymizedText again = RunOne(text, findings, policy, KeyOf("proj-a"));
  AnonymizedText other = RunOne(text, findings, policy, KeyOf("proj-b"));
  EXPECT_THAT(std::string(OutputOf(first, 0)), MatchesRegex("<EMAIL_ADDRESS_[0-9a-f]{12}>"));
  EXPECT_THAT(std::string(OutputOf(first, 2)), MatchesRegex("<IP_ADDRESS_[0-9a-f]{12}>"));
  EXPECT_EQ(OutputOf(first, 0).size(), std::string("<EMAIL_ADDRESS_>").size() + 12);
  EXPECT_EQ(OutputOf(first, 0), OutputOf(first, 1));  // Same value, same request.
  EXPECT_EQ(first.text, again.text);                  // Same project, another request.
  EXPECT_NE(OutputOf(first, 0), OutputOf(other, 0));  // Another project.
  EXPECT_FALSE(absl::StrContains(first.text, "bob"));

  // The same value as two types: the type is part of the MAC input, not only the label.
  std::shared_ptr<const PseudonymKey> key = KeyOf("proj-a");
  const std::string as_email = key->Pseudonym("EMAIL_ADDRESS", "x");
  const std::string as_custom = key->Pseudonym("CUSTOM", "x");
  EXPECT_NE(as_email.substr(as_email.size() - 13), as_custom.substr(as_custom.size() - 13));
  EXPECT_NE(key->Pseudonym("US_SSN", "123-45-6789"), key->Pseudonym("US_SSN", "123-45-6780"));
  // A different master key gives different pseudonyms.
  std::string other_master = MasterKey();
  other_master[0] = 'x';
  EXPECT_NE((*PseudonymKey::Derive(other_master, "proj-a"))->Pseudonym("US_SSN", "1"),
            key->Pseudonym("US_SSN", "1"));
}

TEST(KeyedHashTest, WithoutAKeyFailsBeforeChangingTheContext) {
  const std::string text = "a@b.co and 123-45-6789";
  AnonymizationPolicy policy = PolicyWith(Operator::kPlaceholder);
  policy.rules["US_SSN"] = {.action = Action::kRedact, .op = Operator::kKeyedHash};
  RequestContext context;
  absl::StatusOr<AnonymizedText> result =
      Anonymize(text, {At(text, "a@b.co", "EMAIL_ADDRESS"), At(text, "123-45-6789", "US_SSN")},
                policy, context);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(result.status().message(), HasSubstr("US_SSN"));
  EXPECT_TRUE(context.placeholders().empty());
  EXPECT_EQ(context.texts(), 0);
  // Hashing is the rule, but the type is blocked or allowed: no key needed.
  policy.rules["US_SSN"].action = Action::kAllow;
  EXPECT_TRUE(Anonymize(text, {At(text, "123-45-6789", "US_SSN")}, policy, context).ok());
}

TEST(PseudonymKeysTest, ChecksKeysAndCachesProjects) {
  EXPECT_EQ(PseudonymKeys::Create(std::string(31, 'k')).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PseudonymKey::Derive(std::string(31, 'k'), "p").status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::unique_ptr<PseudonymKeys>> keys = PseudonymKeys::Create(MasterKey());
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ((*keys)->ForProject("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*keys)->ForProject(std::string(257, 'p')).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE((*keys)->ForProject(std::string(256, 'p')).ok());

  absl::StatusOr<std::shared_ptr<const PseudonymKey>> a = (*keys)->ForProject("proj-a");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a, *(*keys)->ForProject("proj-a"));  // Cached: the same object.
  EXPECT_EQ((*a)->Pseudonym("US_SSN", "123-45-6789"),
            KeyOf("proj-a")->Pseudonym("US_SSN", "123-45-6789"));

  // Many threads deriving and reading the same and different projects agree.
  const std::string expected = (*a)->Pseudonym("EMAIL_ADDRESS", "x@y.z");
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        auto key = (*keys)->ForProject(i % 3 == 0 ? "proj-a" : absl::StrCat("p", t, "-", i));
        if (!key.ok()) {
          ++mismatches;
          continue;
        }
        if (i % 3 == 0 && (*key)->Pseudonym("EMAIL_ADDRESS", "x@y.z") != expected) ++mismatches;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(mismatches.load(), 0);
  // Past the cache bound the same keys come back.
  EXPECT_EQ((*(*keys)->ForProject("proj-a"))->Pseudonym("EMAIL_ADDRESS", "x@y.z"), expected);
}

TEST(PlaceholderTest, NumberedPerTypeInOrderOfFirstOccurrence) {
  const std::string text =
      "a@x.io, b@x.io, 415-555-2671, a@x.io, 212-555-0100, b@x.io, 415-555-2671";
  std::vector<Finding> findings;
  size_t from = 0;
  for (absl::string_view value :
       {"a@x.io", "b@x.io", "415-555-2671", "a@x.io", "212-555-0100", "b@x.io", "415-555-2671"}) {
    findings.push_back(
        At(text, value, absl::StrContains(value, "@") ? "EMAIL_ADDRESS" : "PHONE_NUMBER", from));
    from = findings.back().end;
  }
  RequestContext context;
  AnonymizedText result =
      AnonymizeChecked(text, findings, PolicyWith(Operator::kPlaceholder), context);
  EXPECT_EQ(result.text,
            "<EMAIL_ADDRESS_1>, <EMAIL_ADDRESS_2>, <PHONE_NUMBER_1>, <EMAIL_ADDRESS_1>, "
            "<PHONE_NUMBER_2>, <EMAIL_ADDRESS_2>, <PHONE_NUMBER_1>");
  EXPECT_THAT(context.placeholders().entries(),
              ElementsAre(PlaceholderEntry{"<EMAIL_ADDRESS_1>", "EMAIL_ADDRESS", "a@x.io"},
                          PlaceholderEntry{"<EMAIL_ADDRESS_2>", "EMAIL_ADDRESS", "b@x.io"},
                          PlaceholderEntry{"<PHONE_NUMBER_1>", "PHONE_NUMBER", "415-555-2671"},
                          PlaceholderEntry{"<PHONE_NUMBER_2>", "PHONE_NUMBER", "212-555-0100"}));
  EXPECT_EQ(*context.placeholders().ValueOf("<PHONE_NUMBER_2>"), "212-555-0100");
  EXPECT_EQ(context.placeholders().ValueOf("<PHONE_NUMBER_3>"), nullptr);
}

TEST(PlaceholderTest, SharedAcrossTheMessagesOfARequestNotAcrossRequests) {
  const AnonymizationPolicy policy = PolicyWith(Operator::kPlaceholder);
  const std::string system = "Reply to carol@example.com";
  const std::string user = "Ask dave@example.com and cc carol@example.com";
  const std::vector<Finding> user_findings = {At(user, "dave@example.com", "EMAIL_ADDRESS"),
                                              At(user, "carol@example.com", "EMAIL_ADDRESS")};

  RequestContext request;
  AnonymizedText first =
      AnonymizeChecked(system, {At(system, "carol@example.com", "EMAIL_ADDRESS")}, policy, request);
  AnonymizedText second = AnonymizeChecked(user, user_findings, policy, request);
  EXPECT_EQ(first.text, "Reply to <EMAIL_ADDRESS_1>");
  EXPECT_EQ(second.text, "Ask <EMAIL_ADDRESS_2> and cc <EMAIL_ADDRESS_1>");
  EXPECT_EQ(request.texts(), 2);
  EXPECT_THAT(request.report().counts, ElementsAre(Pair("EMAIL_ADDRESS", 3)));

  // Another request numbers on its own: dave is its first address, and its mapping knows
  // nothing of carol.
  RequestContext other;
  AnonymizedText alone = AnonymizeChecked(user, {user_findings[0]}, policy, other);
  EXPECT_EQ(alone.text, "Ask <EMAIL_ADDRESS_1> and cc carol@example.com");
  EXPECT_EQ(*other.placeholders().ValueOf("<EMAIL_ADDRESS_1>"), "dave@example.com");
  EXPECT_EQ(*request.placeholders().ValueOf("<EMAIL_ADDRESS_1>"), "carol@example.com");
  EXPECT_EQ(other.placeholders().ValueOf("<EMAIL_ADDRESS_2>"), nullptr);
  EXPECT_EQ(Restored("to <EMAIL_ADDRESS_2>", other.placeholders()), "to <EMAIL_ADDRESS_2>");
}

TEST(PlaceholderTest, NumberedPastThePlaceholdersAlreadyInTheText) {
  const AnonymizationPolicy policy = PolicyWith(Operator::kPlaceholder);
  // Redacted history sent again: <EMAIL_ADDRESS_1> stands for someone else.
  const std::string text =
      "Earlier: mail <EMAIL_ADDRESS_1>, <PHONE_NUMBER_7>. Also cc bob@example.com";
  RequestContext context;
  AnonymizedText result =
      AnonymizeChecked(text, {At(text, "bob@example.com", "EMAIL_ADDRESS")}, policy, context);
  EXPECT_EQ(result.text,
            "Earlier: mail <EMAIL_ADDRESS_1>, <PHONE_NUMBER_7>. Also cc <EMAIL_ADDRESS_2>");
  EXPECT_EQ(Restored("<EMAIL_ADDRESS_1> and <EMAIL_ADDRESS_2>", context.placeholders()),
            "<EMAIL_ADDRESS_1> and bob@example.com");

  // A later text of the request, announced before the first is anonymized.
  const std::string first = "cc bob@example.com";
  const std::string later = "history: <EMAIL_ADDRESS_1> <EMAIL_ADDRESS_3> <EMAIL_ADDRESS_01> <x_9>";
  RequestContext request;
  request.SkipPlaceholderNumbersUsedIn(first);
  request.SkipPlaceholderNumbersUsedIn(later);
  EXPECT_EQ(
      AnonymizeChecked(first, {At(first, "bob@example.com", "EMAIL_ADDRESS")}, policy, request)
          .text,
      "cc <EMAIL_ADDRESS_4>");
}

TEST(PlaceholderTest, SameValueOfTwoTypesGetsTwoPlaceholders) {
  const std::string text = "123456789 and 123456789";
  AnonymizationPolicy policy = PolicyWith(Operator::kPlaceholder);
  AnonymizedText result =
      RunOne(text, {At(text, "123456789", "US_SSN"), At(text, "123456789", "US_ITIN", 5)}, policy);
  EXPECT_EQ(result.text, "<US_SSN_1> and <US_ITIN_1>");
}

TEST(RestoreTest, TheRestoredTextIsBounded) {
  // One short placeholder for a long value, repeated: the answer would grow without bound.
  absl::StatusOr<PlaceholderMapping> mapping = PlaceholderMapping::FromEntries(
      {PlaceholderEntry{"<EMAIL_ADDRESS_1>", "EMAIL_ADDRESS", std::string(3000, 'a') + "@x.io"}});
  ASSERT_TRUE(mapping.ok());
  std::string text;
  for (int i = 0; i < 1000; ++i) text += "<EMAIL_ADDRESS_1>";
  absl::StatusOr<std::string> restored = Restore(text, *mapping, 1 << 20);
  EXPECT_EQ(restored.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(restored.status().message(), HasSubstr("more than 1048576 bytes"));
  restored = Restore(text, *mapping, 4 << 20);
  ASSERT_TRUE(restored.ok());
  EXPECT_EQ(restored->size(), 1000u * 3005);
  // Exactly at the limit is within it.
  EXPECT_TRUE(Restore(text, *mapping, 1000u * 3005).ok());
  EXPECT_FALSE(Restore(text, *mapping, 1000u * 3005 - 1).ok());
}

TEST(RestoreTest, RoundTripsAnonymizedMessages) {
  const AnonymizationPolicy policy = PolicyWith(Operator::kPlaceholder);
  const std::vector<std::string> messages = {
      "Kontakt: jürgen@müller.de, Tel. +49 30 12345678.",
      "Write to jürgen@müller.de <today>, not to ana@example.es; call +49 30 12345678 <now>",
  };
  RequestContext context;
  std::vector<std::string> outputs;
  for (const std::string& message : messages) {
    std::vector<Finding> findings;
    size_t from = 0;
    while (true) {
      size_t email = message.find('@', from);
      size_t phone = message.find("+49", from);
      if (email == std::string::npos && phone == std::string::npos) break;
      if (phone < email) {
        findings.push_back(At(message, "+49 30 12345678", "PHONE_NUMBER", from));
      } else {
        const size_t begin = message.rfind(' ', email) + 1;
        const size_t end = message.find_first_of(",; ", email);
        findings.push_back(At(message, message.substr(begin, end - begin), "EMAIL_ADDRESS", begin));
      }
      from = findings.back().end;
    }
    outputs.push_back(AnonymizeChecked(message, findings, policy, context).text);
  }
  EXPECT_EQ(context.placeholders().entries().size(), 3u);
  for (size_t i = 0; i < messages.size(); ++i) {
    EXPECT_FALSE(absl::StrContains(outputs[i], "@")) << outputs[i];
    EXPECT_EQ(Restored(outputs[i], context.placeholders()), messages[i]);
  }
  // An answer mixing placeholders with other text, including unknown placeholder shapes.
  EXPECT_EQ(Restored("<<EMAIL_ADDRESS_1>><EMAIL_ADDRESS_9> <PHONE_NUMBER_1 <EMAIL_ADDRESS_2>",
                     context.placeholders()),
            "<jürgen@müller.de><EMAIL_ADDRESS_9> <PHONE_NUMBER_1 ana@example.es");
  EXPECT_EQ(Restored("no placeholders < here >", context.placeholders()),
            "no placeholders < here >");
  EXPECT_EQ(Restored("", context.placeholders()), "");
}

TEST(RestoreTest, RestoredValuesAreNotScannedAgain) {
  const std::string text = "x <EMAIL_ADDRESS_1> y";
  RequestContext context;
  // A custom type whose value looks like a placeholder of another type.
  AnonymizeChecked(text, {At(text, "<EMAIL_ADDRESS_1>", "NOTE")},
                   PolicyWith(Operator::kPlaceholder), context);
  EXPECT_EQ(Restored("<NOTE_1>", context.placeholders()), "<EMAIL_ADDRESS_1>");
}

TEST(RestoreTest, CopiedAndMovedMappingsStandAlone) {
  std::optional<PlaceholderMapping> original(std::in_place);
  for (int i = 0; i < 100; ++i) original->PlaceholderFor("EMAIL_ADDRESS", absl::StrCat(i, "@x.io"));
  PlaceholderMapping copy = *original;
  PlaceholderMapping assigned;
  assigned.PlaceholderFor("US_SSN", "123-45-6789");
  assigned = *original;
  PlaceholderMapping moved = std::move(*original);
  original.reset();
  for (const PlaceholderMapping* m : {&copy, &assigned, &moved}) {
    EXPECT_EQ(m->entries().size(), 100u);
    EXPECT_EQ(Restored("<EMAIL_ADDRESS_42> <US_SSN_1>", *m), "41@x.io <US_SSN_1>");
  }
  EXPECT_EQ(copy.PlaceholderFor("EMAIL_ADDRESS", "7@x.io"), "<EMAIL_ADDRESS_8>");
  EXPECT_EQ(copy.PlaceholderFor("EMAIL_ADDRESS", "new@x.io"), "<EMAIL_ADDRESS_101>");
  EXPECT_EQ(moved.ValueOf("<EMAIL_ADDRESS_101>"), nullptr);
}

TEST(RestoreTest, MappingFromEntriesRestoresAndContinuesNumbering) {
  absl::StatusOr<PlaceholderMapping> mapping = PlaceholderMapping::FromEntries({
      {"<EMAIL_ADDRESS_1>", "EMAIL_ADDRESS", "a@x.io"},
      {"<EMAIL_ADDRESS_7>", "EMAIL_ADDRESS", "b@x.io"},
  });
  ASSERT_TRUE(mapping.ok()) << mapping.status();
  EXPECT_EQ(Restored("<EMAIL_ADDRESS_7>, <EMAIL_ADDRESS_1>", *mapping), "b@x.io, a@x.io");
  EXPECT_EQ(mapping->PlaceholderFor("EMAIL_ADDRESS", "b@x.io"), "<EMAIL_ADDRESS_7>");
  EXPECT_EQ(mapping->PlaceholderFor("EMAIL_ADDRESS", "c@x.io"), "<EMAIL_ADDRESS_8>");
  EXPECT_EQ(mapping->PlaceholderFor("PHONE_NUMBER", "1"), "<PHONE_NUMBER_1>");

  struct Case {
    std::vector<PlaceholderEntry> entries;
    const char* message;
  } cases[] = {
      {{{"EMAIL_ADDRESS_1", "EMAIL_ADDRESS", "a"}}, "not a placeholder"},
      {{{"<EMAIL_ADDRESS_0>", "EMAIL_ADDRESS", "a"}}, "not a placeholder"},
      {{{"<EMAIL_ADDRESS_01>", "EMAIL_ADDRESS", "a"}}, "not a placeholder"},
      {{{"<EMAIL_ADDRESS_x>", "EMAIL_ADDRESS", "a"}}, "not a placeholder"},
      {{{"<email_1>", "email", "a"}}, "not a placeholder"},
      {{{"<EMAIL_ADDRESS_1>", "PHONE_NUMBER", "a"}}, "not of type"},
      {{{"<US_SSN_1>", "US_SSN", "a"}, {"<US_SSN_1>", "US_SSN", "b"}}, "listed twice"},
      {{{"<US_SSN_1>", "US_SSN", "a"}, {"<US_SSN_2>", "US_SSN", "a"}}, "value listed before"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<PlaceholderMapping> bad = PlaceholderMapping::FromEntries(c.entries);
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(bad.status().message(), HasSubstr(c.message));
  }
}

TEST(PolicyActionTest, AllowLeavesTheValueAndRecordsIt) {
  const std::string text = "from 10.0.0.1 by a@b.co";
  AnonymizationPolicy policy;
  policy.rules["IP_ADDRESS"] = {.action = Action::kAllow, .op = Operator::kRedact};
  AnonymizedText result = RunOne(
      text, {At(text, "10.0.0.1", "IP_ADDRESS"), At(text, "a@b.co", "EMAIL_ADDRESS")}, policy);
  EXPECT_EQ(result.text, "from 10.0.0.1 by [EMAIL_ADDRESS_REDACTED]");
  EXPECT_EQ(result.findings[0].action, Action::kAllow);
  EXPECT_EQ(result.findings[0].op, std::nullopt);
  EXPECT_EQ(OutputOf(result, 0), "10.0.0.1");
  EXPECT_FALSE(result.report.blocked);
  EXPECT_THAT(result.report.counts, ElementsAre(Pair("EMAIL_ADDRESS", 1), Pair("IP_ADDRESS", 1)));
  EXPECT_EQ(result.report.data_class, DataClass::kPii);
}

TEST(PolicyActionTest, BlockRefusesTheRequestAndNamesTheTypes) {
  const std::string text =
      "key sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD and AKIAABCDEFGHIJKLMNOP, "
      "key2 AKIAZZZZZZZZZZZZZZZZ, mail a@b.co";
  AnonymizationPolicy policy = PolicyWith(Operator::kPlaceholder);
  policy.rules["OPENAI_API_KEY"] = {.action = Action::kBlock, .op = Operator::kPlaceholder};
  policy.rules["AWS_ACCESS_KEY"] = {.action = Action::kBlock, .op = Operator::kMask};
  RequestContext context;
  AnonymizedText result = AnonymizeChecked(
      text,
      {At(text, "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD", "OPENAI_API_KEY"),
       At(text, "AKIAABCDEFGHIJKLMNOP", "AWS_ACCESS_KEY"),
       At(text, "AKIAZZZZZZZZZZZZZZZZ", "AWS_ACCESS_KEY"), At(text, "a@b.co", "EMAIL_ADDRESS")},
      policy, context);
  EXPECT_TRUE(result.report.blocked);
  EXPECT_THAT(result.report.blocking_types, ElementsAre("AWS_ACCESS_KEY", "OPENAI_API_KEY"));
  // The blocked values are not in the text nor in the mapping.
  EXPECT_EQ(result.text,
            "key [OPENAI_API_KEY_REDACTED] and [AWS_ACCESS_KEY_REDACTED], key2 "
            "[AWS_ACCESS_KEY_REDACTED], mail <EMAIL_ADDRESS_1>");
  EXPECT_EQ(result.findings[0].action, Action::kBlock);
  EXPECT_EQ(result.findings[0].op, Operator::kRedact);
  EXPECT_EQ(context.placeholders().entries().size(), 1u);
  EXPECT_THAT(result.report.counts, ElementsAre(Pair("AWS_ACCESS_KEY", 2), Pair("EMAIL_ADDRESS", 1),
                                                Pair("OPENAI_API_KEY", 1)));
  EXPECT_TRUE(context.report().blocked);

  // A later message without secrets does not unblock the request.
  AnonymizeChecked("hello", {}, policy, context);
  EXPECT_TRUE(context.report().blocked);
  EXPECT_THAT(context.report().blocking_types, ElementsAre("AWS_ACCESS_KEY", "OPENAI_API_KEY"));
}

TEST(DataClassificationTest, MaxOfBaseClassAndEveryFinding) {
  AnonymizationPolicy policy;
  EXPECT_EQ(RunOne("nothing here", {}, policy).report.data_class, DataClass::kInternal);
  policy.base_class = DataClass::kPublic;
  EXPECT_EQ(RunOne("nothing here", {}, policy).report.data_class, DataClass::kPublic);

  const std::string text = "token ghp_x and DEA AB1234563 and a@b.co and CUST-1";
  const Finding secret = At(text, "ghp_x", "GITHUB_TOKEN");
  const Finding dea = At(text, "AB1234563", "MEDICAL_LICENSE");
  const Finding email = At(text, "a@b.co", "EMAIL_ADDRESS");
  const Finding custom = At(text, "CUST-1", "CUSTOMER_ID");
  EXPECT_EQ(RunOne(text, {secret}, policy).report.data_class, DataClass::kInternal);
  EXPECT_EQ(RunOne(text, {secret, email}, policy).report.data_class, DataClass::kPii);
  EXPECT_EQ(RunOne(text, {secret, dea, email}, policy).report.data_class, DataClass::kPhi);
  EXPECT_EQ(RunOne(text, {custom}, policy).report.data_class, DataClass::kPii);
  policy.classes["CUSTOMER_ID"] = DataClass::kInternal;
  EXPECT_EQ(RunOne(text, {custom}, policy).report.data_class, DataClass::kInternal);
  policy.base_class = DataClass::kPii;
  EXPECT_EQ(RunOne(text, {secret}, policy).report.data_class, DataClass::kPii);

  // Whatever is done with the value, it counts: allowed and blocked PHI is still PHI.
  policy.base_class = DataClass::kPublic;
  for (Action action : {Action::kRedact, Action::kAllow, Action::kBlock}) {
    policy.rules["MEDICAL_LICENSE"] = {.action = action, .op = Operator::kMask};
    EXPECT_EQ(RunOne(text, {dea}, policy).report.data_class, DataClass::kPhi) << ActionName(action);
  }
}

TEST(RequestContextTest, ReportAddsUpAcrossTexts) {
  AnonymizationPolicy policy;
  policy.base_class = DataClass::kPublic;
  RequestContext context;
  EXPECT_EQ(context.report(), ContentReport{});
  const std::string a = "a@b.co";
  const std::string b = "c@d.co and AB1234563";
  AnonymizeChecked(a, {At(a, "a@b.co", "EMAIL_ADDRESS")}, policy, context);
  EXPECT_EQ(context.report().data_class, DataClass::kPii);
  AnonymizedText second =
      AnonymizeChecked(b, {At(b, "c@d.co", "EMAIL_ADDRESS"), At(b, "AB1234563", "MEDICAL_LICENSE")},
                       policy, context);
  EXPECT_THAT(second.report.counts,
              ElementsAre(Pair("EMAIL_ADDRESS", 1), Pair("MEDICAL_LICENSE", 1)));
  EXPECT_EQ(context.texts(), 2);
  EXPECT_THAT(context.report().counts,
              ElementsAre(Pair("EMAIL_ADDRESS", 2), Pair("MEDICAL_LICENSE", 1)));
  EXPECT_EQ(context.report().data_class, DataClass::kPhi);
  EXPECT_FALSE(context.report().blocked);
}

TEST(FindingValidationTest, RejectsFindingsTheEngineWouldNeverReturn) {
  const std::string text = "abc ü€😀 def ghi";  // ü at 4-5, € at 6-8, 😀 at 9-12.
  auto finding = [](size_t begin, size_t end, std::string type = "X") {
    return Finding{.entity_type = type, .begin = begin, .end = end, .score = 1, .recognizer = ""};
  };
  struct Case {
    std::vector<Finding> findings;
    const char* message;
  } cases[] = {
      {{finding(0, 3), finding(2, 5)}, "sorted and disjoint"},         // Overlapping.
      {{finding(8 + 5, 16), finding(0, 3)}, "sorted and disjoint"},    // Unsorted.
      {{finding(14, text.size() + 1)}, "past the text"},               // Out of bounds.
      {{finding(text.size() + 5, text.size() + 9)}, "past the text"},  // Far out.
      {{finding(3, 3)}, "empty"},
      {{finding(5, 2)}, "empty"},
      {{finding(5, 6)}, "splits a UTF-8 character"},    // Begins inside ü.
      {{finding(10, 13)}, "splits a UTF-8 character"},  // Begins inside 😀.
      {{finding(4, 7)}, "splits a UTF-8 character"},    // Ends inside €.
      {{finding(9, 11)}, "splits a UTF-8 character"},   // Ends inside 😀.
      {{finding(0, 3, "lower")}, "'lower'"},
      {{finding(0, 3, "")}, "entity type"},
      {{finding(0, 3), finding(4, 6, "A<B")}, "finding 1"},
  };
  for (const Case& c : cases) {
    for (Operator op : {Operator::kRedact, Operator::kPlaceholder}) {
      RequestContext context(KeyOf("p"));
      absl::StatusOr<AnonymizedText> result = Anonymize(text, c.findings, PolicyWith(op), context);
      EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << c.message;
      EXPECT_THAT(result.status().message(), HasSubstr(c.message));
      EXPECT_EQ(context.texts(), 0);
      EXPECT_TRUE(context.placeholders().empty());
      EXPECT_EQ(context.report(), ContentReport{});
    }
  }
  // Adjacent findings and findings at both ends of the text are fine.
  RequestContext context;
  EXPECT_TRUE(Anonymize(text, {finding(0, 3), finding(3, 4), finding(4, 13), finding(13, 20)},
                        PolicyWith(Operator::kMask), context)
                  .ok());
}

// Random UTF-8 text of 1- to 4-byte characters, random valid findings, random rules: every
// output span is in bounds and on character boundaries, the output is valid UTF-8, text
// between findings is unchanged, allowed values stay, and placeholders restore.
TEST(AnonymizerPropertyTest, RandomTextAndFindingsKeepTheInvariants) {
  // The checker itself tells valid from invalid UTF-8.
  EXPECT_TRUE(IsValidUtf8("a ü € 😀"));
  for (absl::string_view bad : {"\xC3", "\xC3(", "\x80", "\xC0\xAF", "\xE0\x80\xAF", "\xED\xA0\x80",
                                "\xF4\x90\x80\x80", "\xF0\x9F\x98"}) {
    EXPECT_FALSE(IsValidUtf8(bad)) << absl::CHexEscape(bad);
  }
  std::mt19937_64 random(20260517);
  const std::vector<std::string> alphabet = {"a", "Z", "7",  " ", "-", ".",        "@", "\n", "é",
                                             "ß", "€", "中", "😀", "𝄞", "\xC2\xA0", "<", ">",  "_"};
  const std::vector<std::string> types = {"US_SSN",  "EMAIL_ADDRESS", "CREDIT_CARD",
                                          "MY_TYPE", "PRIVATE_KEY",   "MEDICAL_LICENSE"};
  const std::vector<Operator> ops = {Operator::kRedact, Operator::kMask, Operator::kReplaceWithType,
                                     Operator::kKeyedHash, Operator::kPlaceholder};
  std::shared_ptr<const PseudonymKey> key = KeyOf("proj-prop");
  for (int iteration = 0; iteration < 3000; ++iteration) {
    std::string text;
    std::vector<size_t> boundaries = {0};
    const int chars = static_cast<int>(random() % 80);
    for (int i = 0; i < chars; ++i) {
      // Few distinct characters make repeated values (and shared placeholders) likely.
      text += alphabet[random() % (iteration % 2 ? alphabet.size() : 4)];
      boundaries.push_back(text.size());
    }
    std::vector<Finding> findings;
    for (size_t b = 0; b + 1 < boundaries.size();) {
      const size_t begin_index = b + random() % 4;
      const size_t end_index = begin_index + 1 + random() % 6;
      if (end_index >= boundaries.size()) break;
      findings.push_back(Finding{.entity_type = types[random() % types.size()],
                                 .begin = boundaries[begin_index],
                                 .end = boundaries[end_index],
                                 .score = 0.5,
                                 .recognizer = "random"});
      b = end_index;
    }
    AnonymizationPolicy policy;
    policy.base_class = static_cast<DataClass>(random() % 4);
    policy.default_rule = {.action = Action::kRedact, .op = ops[random() % ops.size()]};
    for (const std::string& type : types) {
      if (random() % 2) continue;
      const int r = static_cast<int>(random() % 7);
      policy.rules[type] = {.action = r == 5   ? Action::kAllow
                                      : r == 6 ? Action::kBlock
                                               : Action::kRedact,
                            .op = ops[random() % ops.size()]};
    }
    ASSERT_TRUE(ValidatePolicy(policy).ok());
    RequestContext context(key);
    SCOPED_TRACE(absl::CHexEscape(text));
    AnonymizedText result =
        AnonymizeChecked(text, findings, policy, context);  // Checks spans and gaps.
    ASSERT_EQ(result.findings.size(), findings.size());
    EXPECT_TRUE(IsValidUtf8(result.text));
    DataClass expected_class = policy.base_class;
    std::set<std::string> blocking;
    for (size_t i = 0; i < findings.size(); ++i) {
      const AppliedFinding& a = result.findings[i];
      ASSERT_LE(a.end, result.text.size());
      EXPECT_LT(a.begin, a.end);
      EXPECT_TRUE(IsCharBoundary(result.text, a.begin));
      EXPECT_TRUE(IsCharBoundary(result.text, a.end));
      EXPECT_TRUE(IsValidUtf8(OutputOf(result, i)));
      const EntityRule& rule = policy.RuleFor(findings[i].entity_type);
      EXPECT_EQ(a.action, rule.action);
      const absl::string_view value =
          absl::string_view(text).substr(findings[i].begin, findings[i].end - findings[i].begin);
      if (rule.action == Action::kAllow) {
        EXPECT_EQ(OutputOf(result, i), value);
      } else if (rule.action == Action::kBlock) {
        blocking.insert(findings[i].entity_type);
      } else if (rule.op == Operator::kMask) {
        ExpectMaskOf(value, OutputOf(result, i));
      }
      expected_class = std::max(expected_class, policy.ClassOf(findings[i].entity_type));
    }
    EXPECT_EQ(result.report.data_class, expected_class);
    EXPECT_EQ(result.report.blocked, !blocking.empty());
    EXPECT_THAT(result.report.blocking_types,
                ::testing::ElementsAreArray(blocking.begin(), blocking.end()));
    int64_t total = 0;
    for (const auto& [type, count] : result.report.counts) total += count;
    EXPECT_EQ(total, static_cast<int64_t>(findings.size()));

    // With placeholders for everything and no '<' in the input, Restore is exact.
    if (text.find('<') == std::string::npos) {
      RequestContext restorable;
      AnonymizedText placeheld =
          AnonymizeChecked(text, findings, PolicyWith(Operator::kPlaceholder), restorable);
      EXPECT_EQ(Restored(placeheld.text, restorable.placeholders()), text);
    }
  }
}

}  // namespace
}  // namespace policy::pii
