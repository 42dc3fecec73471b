#include "services/pii/pii_engine.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "common/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace policy::pii {
namespace {

using ::testing::HasSubstr;

std::unique_ptr<PiiEngine> MakeEngine(PiiLimits limits = {}, bool with_keys = true) {
  absl::StatusOr<std::unique_ptr<Detector>> detector = Detector::Create({});
  EXPECT_TRUE(detector.ok()) << detector.status();
  std::unique_ptr<PseudonymKeys> keys;
  if (with_keys) keys = *PseudonymKeys::Create(std::string(32, 'k'));
  return std::make_unique<PiiEngine>(*std::move(detector), std::move(keys), limits);
}

TEST(PiiEngineTest, RefusesTextsOverTheLimitsOrNotUtf8) {
  auto engine = MakeEngine(PiiLimits{.max_request_bytes = 10, .max_messages = 2});
  const std::vector<absl::string_view> ok = {"hello", "world"};
  EXPECT_TRUE(engine->CheckTexts(ok, 10, "messages").ok());

  const std::vector<absl::string_view> three = {"a", "b", "c"};
  absl::Status s = engine->CheckTexts(three, 10, "messages");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("3 texts, more than the limit of 2"));

  const std::vector<absl::string_view> big = {"hello", "world!"};
  s = engine->CheckTexts(big, 10, "messages");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("11 bytes together, more than the limit of 10"));

  const std::vector<absl::string_view> bad = {"fine", "ab\xff"};
  s = engine->CheckTexts(bad, 10, "messages");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "messages[1]: not valid UTF-8 at byte 2");
}

TEST(PiiEngineTest, ScanOptionsNameUnknownAndRepeatedTypesAndBadScores) {
  auto engine = MakeEngine();
  EXPECT_TRUE(
      engine->CheckScanOptions(ScanOptions{.min_score = 0.3, .entity_types = {"US_SSN"}}, "options")
          .ok());
  absl::Status s = engine->CheckScanOptions(
      ScanOptions{.min_score = 0.5, .entity_types = {"US_SSN", "PASSPORT_NUMBER"}}, "options");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("options.entity_types[1]: unknown entity type "
                                     "'PASSPORT_NUMBER'"));
  s = engine->CheckScanOptions(ScanOptions{.min_score = 0.5, .entity_types = {"US_SSN", "US_SSN"}},
                               "options");
  EXPECT_THAT(s.message(), HasSubstr("listed twice"));
  s = engine->CheckScanOptions(ScanOptions{.min_score = 1.5, .entity_types = {}}, "options");
  EXPECT_THAT(s.message(), HasSubstr("options.min_score: 1.5 is outside [0, 1]"));
}

TEST(PiiEngineTest, PlaceholdersAreSharedAcrossTheMessagesOfARequest) {
  auto engine = MakeEngine();
  RedactionParams params;
  params.policy.default_rule = EntityRule{.action = Action::kRedact, .op = Operator::kPlaceholder};
  const std::vector<absl::string_view> texts = {
      "Mail jane.doe@example.com about SSN 536-22-8726.",
      "Then copy jane.doe@example.com and bob@example.org.",
  };
  absl::StatusOr<Redaction> redaction = engine->Redact(texts, params);
  ASSERT_TRUE(redaction.ok()) << redaction.status();
  ASSERT_EQ(redaction->texts.size(), 2u);
  EXPECT_EQ(redaction->texts[0].text, "Mail <EMAIL_ADDRESS_1> about SSN <US_SSN_1>.");
  EXPECT_EQ(redaction->texts[1].text, "Then copy <EMAIL_ADDRESS_1> and <EMAIL_ADDRESS_2>.");
  ASSERT_EQ(redaction->found[1].size(), redaction->texts[1].findings.size());
  EXPECT_EQ(redaction->found[0][1].entity_type, "US_SSN");
  EXPECT_EQ(redaction->found[0][1].recognizer.empty(), false);
  const ContentReport& report = redaction->context.report();
  EXPECT_EQ(report.counts.at("EMAIL_ADDRESS"), 3);
  EXPECT_EQ(report.counts.at("US_SSN"), 1);
  EXPECT_EQ(report.data_class, DataClass::kPii);
  EXPECT_EQ(redaction->context.placeholders().entries().size(), 3u);
}

TEST(PiiEngineTest, PlaceholdersAreNumberedPastThoseInAnyMessage) {
  auto engine = MakeEngine();
  RedactionParams params;
  params.policy.default_rule = EntityRule{.action = Action::kRedact, .op = Operator::kPlaceholder};
  const std::vector<absl::string_view> texts = {
      "Also cc bob@example.com",
      "(history) I wrote to <EMAIL_ADDRESS_1> yesterday.",
  };
  absl::StatusOr<Redaction> redaction = engine->Redact(texts, params);
  ASSERT_TRUE(redaction.ok()) << redaction.status();
  EXPECT_EQ(redaction->texts[0].text, "Also cc <EMAIL_ADDRESS_2>");
  EXPECT_EQ(redaction->texts[1].text, "(history) I wrote to <EMAIL_ADDRESS_1> yesterday.");
}

TEST(PiiEngineTest, HashingNeedsAProjectAndAKey) {
  RedactionParams params;
  params.policy.rules["EMAIL_ADDRESS"] =
      EntityRule{.action = Action::kRedact, .op = Operator::kKeyedHash};
  const std::vector<absl::string_view> texts = {"write to jane.doe@example.com"};

  auto without_keys = MakeEngine({}, /*with_keys=*/false);
  params.project_id = "support-eu";
  EXPECT_EQ(without_keys->Redact(texts, params).status().code(),
            absl::StatusCode::kFailedPrecondition);

  auto engine = MakeEngine();
  params.project_id = "";
  absl::Status s = engine->Redact(texts, params).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("project_id is required"));

  params.project_id = "support-eu";
  absl::StatusOr<Redaction> first = engine->Redact(texts, params);
  absl::StatusOr<Redaction> again = engine->Redact(texts, params);
  params.project_id = "billing-us";
  absl::StatusOr<Redaction> other = engine->Redact(texts, params);
  ASSERT_TRUE(first.ok() && again.ok() && other.ok());
  EXPECT_THAT(first->texts[0].text, HasSubstr("<EMAIL_ADDRESS_"));
  EXPECT_EQ(first->texts[0].text, again->texts[0].text);
  EXPECT_NE(first->texts[0].text, other->texts[0].text);
}

TEST(PiiEngineTest, PolicyTypesMustBeKnown) {
  auto engine = MakeEngine();
  RedactionParams params;
  params.policy.rules["PASSPORT_NUMBER"] = EntityRule{};
  absl::Status s = engine->CheckRedaction(params);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("unknown entity type 'PASSPORT_NUMBER'"));
  EXPECT_EQ(ReasonOf(s), std::string(kReasonPolicyInvalid));

  params.policy.rules.clear();
  params.policy.classes["NOT_A_TYPE"] = DataClass::kPhi;
  EXPECT_THAT(engine->CheckRedaction(params).message(), HasSubstr("'NOT_A_TYPE'"));

  params.policy.classes.clear();
  params.min_score = -0.1;
  EXPECT_THAT(engine->CheckRedaction(params).message(), HasSubstr("policy.min_score"));
  EXPECT_EQ(ReasonOf(engine->CheckRedaction(params)), std::string(kReasonPolicyInvalid));
}

TEST(PiiEngineTest, TheThresholdFiltersFindings) {
  auto engine = MakeEngine();
  const std::vector<absl::string_view> texts = {
      "reach 212-555-0123, server 10.20.30.40, card 4111 1111 1111 1111, jane@example.com"};
  const auto all = engine->Scan(texts, ScanOptions{.min_score = 0, .entity_types = {}});
  ASSERT_GE(all[0].size(), 4u);
  std::vector<double> scores;
  for (const Finding& f : all[0]) scores.push_back(f.score);
  std::sort(scores.begin(), scores.end());
  ASSERT_LT(scores.front(), scores.back());  // Else no threshold below could tell them apart.
  for (double threshold : scores) {
    const auto kept = engine->Scan(texts, ScanOptions{.min_score = threshold, .entity_types = {}});
    const auto expected = std::count_if(scores.begin(), scores.end(),
                                        [&](double score) { return score >= threshold; });
    EXPECT_EQ(static_cast<long>(kept[0].size()), static_cast<long>(expected)) << threshold;
  }
}

TEST(PiiEngineTest, ClassOfTakesTheMostSensitiveFinding) {
  AnonymizationPolicy policy;
  EXPECT_EQ(PiiEngine::ClassOf({}, policy), DataClass::kInternal);
  std::vector<std::vector<Finding>> found(2);
  found[1].push_back(Finding{
      .entity_type = "MEDICAL_LICENSE", .begin = 0, .end = 1, .score = 1, .recognizer = "x"});
  found[0].push_back(
      Finding{.entity_type = "EMAIL_ADDRESS", .begin = 0, .end = 1, .score = 1, .recognizer = "x"});
  EXPECT_EQ(PiiEngine::ClassOf(found, policy), DataClass::kPhi);
  policy.classes["MEDICAL_LICENSE"] = DataClass::kPublic;
  EXPECT_EQ(PiiEngine::ClassOf(found, policy), DataClass::kPii);
}

}  // namespace
}  // namespace policy::pii
