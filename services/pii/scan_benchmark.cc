// Scan throughput (bytes/s per core) on clean prose, on PII-dense text, on a 4 KiB prompt and
// on the load generator's 4 KiB support ticket, next to one combined RE2 alternation of the
// built-in patterns over the same texts; and a scan followed by the anonymizer (every type
// redacted, or replaced by placeholders as for a chat request), the whole of what a request
// costs. The dense text and the prompt also come with their values written with typographic
// spaces, dashes and full-width characters (the detector folds them: folded_text.h), and
// BM_Fold is the folding alone.
//
//   build-*/services/pii/pii_scan_benchmark --benchmark_min_time=1
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "common/testing/support_ticket.h"
#include "re2/re2.h"
#include "services/pii/anonymizer.h"
#include "services/pii/detector.h"
#include "services/pii/folded_text.h"
#include "services/pii/recognizer.h"

namespace policy::pii {
namespace {

// Sentences of a typical prompt to an LLM: words, some numbers, dates, versions and
// punctuation, and no personal data.
const std::vector<std::string>& ProseSentences() {
  static const std::vector<std::string> sentences = {
      "Please summarise the attached design document in three short paragraphs. ",
      "The quarterly review covers the migration of our billing pipeline to the new cluster. ",
      "In 2023 we moved 14 services; the remaining ones follow next spring. ",
      "Explain the difference between optimistic and pessimistic locking, with examples. ",
      "Our team meets every Tuesday at 10:30 to discuss the roadmap and open questions. ",
      "The release notes for version 2.14.0 mention a fix for the memory leak in the cache. ",
      "Rewrite this paragraph so that it sounds friendlier but keeps the same meaning. ",
      "What are the trade-offs of using a message queue instead of direct HTTP calls? ",
      "The customer asked whether the dashboard can show weekly rather than daily totals. ",
      "Translate the following sentence into French: the meeting has been moved to Friday. ",
      "List five risks of the project and suggest a mitigation for each of them. ",
      "Latency went from 120 ms to 45 ms after we added the read replica. ",
      "Write a unit test for a function that parses ISO dates and rejects invalid input. ",
      "Note: the staging environment will be unavailable on Saturday morning. ",
      "Can you suggest a better name for a class that schedules background jobs? ",
      "The survey had 312 responses, and about 60% of them asked for dark mode. ",
      "Describe how consistent hashing keeps most keys in place when a node joins. ",
      "Draft a polite reply declining the invitation, and offer to meet next month instead. ",
      "Our build takes 18 minutes; which steps could run in parallel? ",
      "Summarise the key arguments of the article about remote work and productivity. ",
      "Compare the three database options in a table with cost, latency and operations. ",
      "Why does the garbage collector pause longer when the heap is almost full? ",
      "The onboarding checklist should fit on one page and link to the longer guides. ",
      "Give me a step-by-step plan for migrating the monolith to smaller services. ",
      "I need a haiku about autumn rain for the newsletter header. ",
      "Review this SQL query and tell me why it scans the whole table. ",
      "The warehouse in Lyon ships about 2,400 parcels a day during the holidays. ",
      "Explain recursion to a ten-year-old, using a story about nested boxes. ",
      "Which metrics should we alert on for a service that mostly reads from a cache? ",
      "Estimate how long it would take to read every book in a small library. ",
  };
  return sentences;
}

std::string CleanProse(size_t size) {
  std::mt19937 random(1);
  const std::vector<std::string>& sentences = ProseSentences();
  std::string text;
  while (text.size() < size) {
    text += sentences[random() % sentences.size()];
    if (random() % 6 == 0) text += "\n\n";
  }
  text.resize(size);
  return text;
}

// Values of every built-in type in several formats.
const std::vector<std::string>& PiiValues() {
  static const std::vector<std::string> values = {
      "123-45-6789",
      "SSN 123456789",
      "912-70-1234",
      "4111 1111 1111 1111",
      "5555555555554444",
      "3782 822463 10005",
      "DE89 3704 0044 0532 0130 00",
      "GB82WEST12345698765432",
      "jane.doe@example.com",
      "ops+alerts@mail.example.co.uk",
      "(415) 555-2671",
      "+1 415 555 2671",
      "+44 20 7946 0958",
      "+49 30 12345678",
      "10.20.30.40",
      "2001:db8::8a2e:370:7334",
      "NHS 943 476 5919",
      "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
      "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
      "AB1234563",
      "AKIAIOSFODNN7EXAMPLE",
      "ghp_0123456789abcdefghijABCDEFGHIJ012345",
      "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789_-AbCdEfGhIjKl",
      "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"};
  return values;
}

// Values of most built-in types as word processors, French and German locales and Japanese
// input methods write them: no-break, narrow no-break and ideographic spaces, en dashes and
// minus signs, full-width digits, letters and signs.
const std::vector<std::string>& TypographicPiiValues() {
  static const std::vector<std::string> values = {
      "123\u201345\u20136789",
      "\uFF11\uFF12\uFF13\uFF0D\uFF14\uFF15\uFF0D\uFF16\uFF17\uFF18\uFF19",
      "4111\u00A01111\u00A01111\u00A01111",
      "\uFF14\uFF11\uFF11\uFF11 \uFF11\uFF11\uFF11\uFF11 \uFF11\uFF11\uFF11\uFF11 "
      "\uFF11\uFF11\uFF11\uFF11",
      "DE89\u202F3704\u202F0044\u202F0532\u202F0130\u202F00",
      "\uFF24\uFF25\uFF18\uFF19\u3000\uFF13\uFF17\uFF10\uFF14\u3000\uFF10\uFF10\uFF14\uFF14"
      "\u3000\uFF10\uFF15\uFF13\uFF12\u3000\uFF10\uFF11\uFF13\uFF10\u3000\uFF10\uFF10",
      "\uFF4A\uFF41\uFF4E\uFF45\uFF0E\uFF44\uFF4F\uFF45\uFF20\uFF45\uFF58\uFF41\uFF4D"
      "\uFF50\uFF4C\uFF45\uFF0E\uFF43\uFF4F\uFF4D",
      "jane.doe\uFF20example.com",
      "(415)\u00A0555\u20132671",
      "+44\u00A020\u00A07946\u00A00958",
      "\uFF10\uFF19\uFF10\uFF0D\uFF11\uFF12\uFF13\uFF14\uFF0D\uFF15\uFF16\uFF17\uFF18",
      "\uFF11\uFF10\uFF0E\uFF12\uFF10\uFF0E\uFF13\uFF10\uFF0E\uFF14\uFF10",
      "\uFF21\uFF2B\uFF29\uFF21\uFF29\uFF2F\uFF33\uFF26\uFF2F\uFF24\uFF2E\uFF2E\uFF17"
      "\uFF25\uFF38\uFF21\uFF2D\uFF30\uFF2C\uFF25",
      "NHS\u00A0943\u00A0476\u00A05919"};
  return values;
}

// About one finding every 100 bytes; `size` bytes, less the last character when it would be
// cut.
std::string PiiDense(size_t size, const std::vector<std::string>& values,
                     const std::vector<std::string>& frames) {
  std::mt19937 random(2);
  std::string text;
  while (text.size() < size) {
    absl::StrAppend(&text, frames[random() % frames.size()], values[random() % values.size()],
                    ". Thanks a lot for the quick help with it. ");
  }
  while ((static_cast<unsigned char>(text[size]) & 0xc0) == 0x80) --size;
  text.resize(size);
  return text;
}

std::string PiiDense(size_t size) {
  static const std::vector<std::string> frames = {
      "Please update the record, the value is ", "Customer wrote to us and gave ",
      "Forward this to the team together with ", "The ticket says the reference is "};
  return PiiDense(size, PiiValues(), frames);
}

std::string TypographicPiiDense(size_t size) {
  static const std::vector<std::string> frames = {
      "Please update the record, the value is\u00A0: ", "お客様の登録情報\uFF1A",
      "Forward this to the team together with ", "参照番号は\u3000"};
  return PiiDense(size, TypographicPiiValues(), frames);
}

// Clean prose with five of `values`, `stride` apart in the list.
std::string Prompt4k(const std::vector<std::string>& values, size_t stride) {
  std::string text = CleanProse(4096 - 200);
  for (size_t i = 0; i < 5; ++i) {
    const size_t at = text.find(". ", (i + 1) * 600) + 2;
    text.insert(at, absl::StrCat("Contact ", values[(i * stride) % values.size()], " today. "));
  }
  return text;
}

const std::string& TextOf(int kind) {
  static const std::string* const texts[] = {new std::string(CleanProse(64 * 1024)),
                                             new std::string(PiiDense(64 * 1024)),
                                             new std::string(Prompt4k(PiiValues(), 7)),
                                             new std::string(testing::SupportTicket4k()),
                                             new std::string(TypographicPiiDense(64 * 1024)),
                                             new std::string(Prompt4k(TypographicPiiValues(), 3))};
  return *texts[kind];
}

const char* NameOf(int kind) {
  static const char* const names[] = {"clean_64k",
                                      "dense_64k",
                                      "prompt_4k",
                                      "ticket_4k",
                                      "typographic_dense_64k",
                                      "typographic_prompt_4k"};
  return names[kind];
}

const Detector& DetectorWith(bool prefilter, bool custom) {
  auto make = [](bool prefilter, bool custom) {
    DetectorOptions options;
    options.trigger_prefilter = prefilter;
    std::vector<RecognizerSpec> specs;
    if (custom) {
      absl::StatusOr<std::vector<RecognizerSpec>> parsed = ParseRecognizersYaml(R"(
recognizers:
  - {name: employee_id, entity_type: EMPLOYEE_ID, pattern: 'EMP-[0-9]{6}', score: 0.6}
  - {name: project_code, entity_type: PROJECT_CODE, pattern: 'PRJ-[A-Z]{3}-[0-9]{4}'}
  - {name: codename, entity_type: CODENAME, pattern: '(?i)\b(?:bluebird|nightjar)\b'}
)");
      specs = *parsed;
    }
    return Detector::Create(specs, options)->release();
  };
  static const Detector* const detectors[2][2] = {{make(false, false), make(false, true)},
                                                  {make(true, false), make(true, true)}};
  return *detectors[prefilter][custom];
}

void BM_Scan(benchmark::State& state, bool prefilter, bool custom) {
  const std::string& text = TextOf(static_cast<int>(state.range(0)));
  const Detector& detector = DetectorWith(prefilter, custom);
  size_t findings = 0;
  for (auto _ : state) {
    const std::vector<Finding> found = detector.Scan(text);
    findings = found.size();
    benchmark::DoNotOptimize(found.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.SetLabel(
      absl::StrCat(NameOf(static_cast<int>(state.range(0))), ", ", findings, " findings"));
}

// FoldedText alone: the copy of the text the built-in recognizers read.
void BM_Fold(benchmark::State& state) {
  const std::string& text = TextOf(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    const FoldedText folded(text);
    benchmark::DoNotOptimize(folded.text().data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.SetLabel(NameOf(static_cast<int>(state.range(0))));
}

// Scan, then Anonymize with every type redacted by `op`, one request per iteration.
void BM_ScanAndRedact(benchmark::State& state, Operator op) {
  const std::string& text = TextOf(static_cast<int>(state.range(0)));
  const Detector& detector = DetectorWith(true, false);
  AnonymizationPolicy policy;
  policy.default_rule = {.action = Action::kRedact, .op = op};
  size_t findings = 0;
  for (auto _ : state) {
    const std::vector<Finding> found = detector.Scan(text);
    RequestContext context;
    absl::StatusOr<AnonymizedText> result = Anonymize(text, found, policy, context);
    if (!result.ok()) {
      state.SkipWithError(std::string(result.status().message()).c_str());
      break;
    }
    findings = found.size();
    benchmark::DoNotOptimize(result->text.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.SetLabel(
      absl::StrCat(NameOf(static_cast<int>(state.range(0))), ", ", findings, " findings"));
}

// The baseline: one RE2 of all built-in patterns, (p1)|(p2)|..., consumed match by match.
// `which` also extracts the groups, which is what telling the types apart needs.
void BM_CombinedAlternation(benchmark::State& state, bool which) {
  static const RE2* const combined = [] {
    std::string pattern;
    for (const RecognizerSpec& spec : BuiltinRecognizers()) {
      absl::StrAppend(&pattern, pattern.empty() ? "" : "|", "(", spec.pattern, ")");
    }
    RE2::Options options;
    options.set_max_mem(64 << 20);
    return new RE2(pattern, options);
  }();
  const std::string& text = TextOf(static_cast<int>(state.range(0)));
  const int groups = combined->NumberOfCapturingGroups();
  std::vector<re2::StringPiece> pieces(static_cast<size_t>(groups));
  std::vector<RE2::Arg> args(static_cast<size_t>(groups));
  std::vector<const RE2::Arg*> arg_pointers(static_cast<size_t>(groups));
  for (int i = 0; i < groups; ++i) {
    args[static_cast<size_t>(i)] = &pieces[static_cast<size_t>(i)];
    arg_pointers[static_cast<size_t>(i)] = &args[static_cast<size_t>(i)];
  }
  size_t matches = 0;
  for (auto _ : state) {
    re2::StringPiece input(text);
    matches = 0;
    while (which ? RE2::FindAndConsumeN(&input, *combined, arg_pointers.data(), groups)
                 : RE2::FindAndConsume(&input, *combined)) {
      ++matches;
      if (input.empty()) break;
    }
    benchmark::DoNotOptimize(matches);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
  state.SetLabel(
      absl::StrCat(NameOf(static_cast<int>(state.range(0))), ", ", matches, " raw matches"));
}

BENCHMARK_CAPTURE(BM_Scan, detector, true, false)->DenseRange(0, 5);
BENCHMARK_CAPTURE(BM_Scan, detector_with_3_custom, true, true)->DenseRange(0, 5);
BENCHMARK_CAPTURE(BM_Scan, detector_without_prefilter, false, false)->DenseRange(0, 5);
BENCHMARK(BM_Fold)->DenseRange(4, 5);
BENCHMARK_CAPTURE(BM_ScanAndRedact, redact, Operator::kRedact)->DenseRange(0, 5);
BENCHMARK_CAPTURE(BM_ScanAndRedact, placeholder, Operator::kPlaceholder)->DenseRange(0, 5);
BENCHMARK_CAPTURE(BM_CombinedAlternation, find_only, false)->DenseRange(0, 3);
BENCHMARK_CAPTURE(BM_CombinedAlternation, with_groups, true)->DenseRange(0, 3);

}  // namespace
}  // namespace policy::pii
