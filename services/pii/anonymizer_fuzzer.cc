// Fuzz target for the anonymizer: arbitrary text with findings taken from the input, raw
// (which must be accepted or refused with INVALID_ARGUMENT, never crash) and clamped to what
// the detection engine returns (which must be accepted), under every operator and a mixed
// policy. Input: a control byte, a finding count byte, two little-endian 16-bit positions
// per finding, then the text.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "services/pii/anonymizer.h"

namespace policy::pii {
namespace {

constexpr size_t kUnbounded = std::numeric_limits<size_t>::max();

constexpr const char* kTypes[] = {"US_SSN",    "EMAIL_ADDRESS",   "CREDIT_CARD",
                                  "CUSTOM_ID", "MEDICAL_LICENSE", "PRIVATE_KEY"};
constexpr size_t kTypeCount = sizeof(kTypes) / sizeof(kTypes[0]);

bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// Strict UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF.
bool IsValidUtf8(absl::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
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
      if (!IsContinuationByte(s[i + k])) return false;
      cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

bool IsCharBoundary(absl::string_view s, size_t at) {
  return at == s.size() || !IsContinuationByte(s[at]);
}

// The invariants of a successful call; traps when one does not hold.
void Check(absl::string_view text, const std::vector<Finding>& findings,
           const AnonymizationPolicy& policy, const AnonymizedText& result) {
  if (result.findings.size() != findings.size()) __builtin_trap();
  const bool valid = IsValidUtf8(text);
  if (valid && !IsValidUtf8(result.text)) __builtin_trap();
  size_t in = 0, out = 0;
  int64_t blocked = 0;
  for (size_t i = 0; i < findings.size(); ++i) {
    const AppliedFinding& a = result.findings[i];
    if (a.begin < out || a.begin >= a.end || a.end > result.text.size()) __builtin_trap();
    // The text between findings is copied unchanged.
    if (result.text.compare(out, a.begin - out, text.data() + in, findings[i].begin - in) != 0) {
      __builtin_trap();
    }
    if (valid && (!IsCharBoundary(result.text, a.begin) || !IsCharBoundary(result.text, a.end))) {
      __builtin_trap();
    }
    const absl::string_view value =
        text.substr(findings[i].begin, findings[i].end - findings[i].begin);
    const absl::string_view output =
        absl::string_view(result.text).substr(a.begin, a.end - a.begin);
    const EntityRule& rule = policy.RuleFor(findings[i].entity_type);
    if (a.action != rule.action) __builtin_trap();
    if (rule.action == Action::kAllow && output != value) __builtin_trap();
    if (rule.action == Action::kBlock) ++blocked;
    in = findings[i].end;
    out = a.end;
  }
  if (result.text.compare(out, absl::string_view::npos, text.data() + in, text.size() - in) != 0) {
    __builtin_trap();
  }
  if (result.report.blocked != (blocked > 0)) __builtin_trap();
  int64_t total = 0;
  for (const auto& [type, count] : result.report.counts) total += count;
  if (total != static_cast<int64_t>(findings.size())) __builtin_trap();
  if (result.report.data_class < policy.base_class) __builtin_trap();
}

}  // namespace
}  // namespace policy::pii

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace policy::pii;
  using policy::DataClass;
  if (size < 2) return 0;
  static const std::shared_ptr<const PseudonymKey> key =
      *PseudonymKey::Derive(std::string(32, 'k'), "fuzz-project");
  const uint8_t control = data[0];
  const size_t count = data[1] % 17;
  size_t at = 2;
  std::vector<size_t> raw;
  while (raw.size() < 2 * count && at + 2 <= size) {
    raw.push_back(data[at] | static_cast<size_t>(data[at + 1]) << 8);
    at += 2;
  }
  const absl::string_view text(reinterpret_cast<const char*>(data) + at, size - at);

  // Raw spans: accepted or refused, never a crash.
  {
    std::vector<Finding> findings;
    for (size_t i = 0; i + 1 < raw.size(); i += 2) {
      findings.push_back(Finding{.entity_type = kTypes[(control + i) % kTypeCount],
                                 .begin = raw[i],
                                 .end = raw[i + 1],
                                 .score = 1,
                                 .recognizer = "fuzz"});
    }
    AnonymizationPolicy policy;
    policy.default_rule.op = static_cast<Operator>(control % 5);
    RequestContext context(key);
    absl::StatusOr<AnonymizedText> result = Anonymize(text, findings, policy, context);
    if (result.ok()) {
      Check(text, findings, policy, *result);
    } else if (result.status().code() != absl::StatusCode::kInvalidArgument ||
               context.texts() != 0 || !context.placeholders().empty()) {
      __builtin_trap();
    }
  }

  // Clamped spans: in the text, on character boundaries, sorted, disjoint, non-empty.
  std::vector<size_t> positions;
  for (size_t p : raw) {
    p %= text.size() + 1;
    while (p > 0 && p < text.size() && IsContinuationByte(text[p])) --p;
    positions.push_back(p);
  }
  std::sort(positions.begin(), positions.end());
  std::vector<Finding> findings;
  for (size_t i = 0; i + 1 < positions.size(); i += 2) {
    if (positions[i] == positions[i + 1]) continue;
    findings.push_back(Finding{.entity_type = kTypes[(control / 8 + i) % kTypeCount],
                               .begin = positions[i],
                               .end = positions[i + 1],
                               .score = 1,
                               .recognizer = "fuzz"});
  }
  // An invalid UTF-8 lead byte run can still leave a span starting on a continuation byte at
  // 0; the engine never returns one, so neither does this.
  findings.erase(
      std::remove_if(findings.begin(), findings.end(),
                     [&](const Finding& f) { return IsContinuationByte(text[f.begin]); }),
      findings.end());

  std::vector<AnonymizationPolicy> policies;
  for (int op = 0; op < 5; ++op) {
    AnonymizationPolicy policy;
    policy.default_rule.op = static_cast<Operator>(op);
    policies.push_back(policy);
  }
  AnonymizationPolicy mixed;
  for (size_t t = 0; t < kTypeCount; ++t) {
    const int bits = (control >> (t % 8)) + static_cast<int>(t);
    mixed.rules[kTypes[t]] = {.action = static_cast<Action>(bits % 3),
                              .op = static_cast<Operator>((bits / 3) % 5)};
  }
  mixed.base_class = static_cast<DataClass>(control % 4);
  policies.push_back(mixed);

  RequestContext shared(key);  // Every policy's text as one message of one request.
  for (const AnonymizationPolicy& policy : policies) {
    RequestContext context(key);
    absl::StatusOr<AnonymizedText> result = Anonymize(text, findings, policy, context);
    if (!result.ok()) __builtin_trap();
    Check(text, findings, policy, *result);
    absl::StatusOr<AnonymizedText> again = Anonymize(text, findings, policy, shared);
    if (!again.ok() || again->text != result->text) __builtin_trap();

    if (policy.default_rule.op == Operator::kPlaceholder && policy.rules.empty() &&
        text.find('<') == absl::string_view::npos &&
        Restore(result->text, context.placeholders(), kUnbounded).value() != text) {
      __builtin_trap();
    }
    // A mapping survives a trip through its entries.
    absl::StatusOr<PlaceholderMapping> copy = PlaceholderMapping::FromEntries(
        {context.placeholders().entries().begin(), context.placeholders().entries().end()});
    if (!copy.ok() || copy->entries() != context.placeholders().entries()) __builtin_trap();
  }
  if (shared.texts() != static_cast<int64_t>(policies.size())) __builtin_trap();
  // Restore on arbitrary text with an arbitrary mapping: no crash; without placeholders
  // issued, the text itself.
  (void)Restore(text, shared.placeholders(), kUnbounded);
  if (Restore(text, PlaceholderMapping(), kUnbounded).value() != text) __builtin_trap();
  return 0;
}
