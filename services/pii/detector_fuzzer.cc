// Fuzz target for the scanner: arbitrary bytes as a prompt. The first byte picks the
// threshold; the rest is the text. Checks, on the raw bytes and on them made valid UTF-8:
// findings are in bounds, non-empty, ordered, disjoint, scored in [min_score, 1]; on valid
// UTF-8 they start and end on character boundaries, and the prefilters (the trigger scan, and
// the custom recognizers' literals and required context) find exactly what scans without them
// find.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "services/pii/detector.h"

namespace {

using policy::pii::Detector;
using policy::pii::DetectorOptions;
using policy::pii::Finding;
using policy::pii::RecognizerSpec;
using policy::pii::ScanOptions;

const Detector& Make(bool prefilter, bool custom) {
  DetectorOptions options;
  options.trigger_prefilter = prefilter;
  std::vector<RecognizerSpec> specs;
  if (custom) {
    RecognizerSpec employee;
    employee.name = "employee_id";
    employee.entity_type = "EMPLOYEE_ID";
    employee.pattern = "EMP-[0-9]{6}";
    employee.context_words = {"employee"};
    RecognizerSpec ticket;
    ticket.name = "ticket";
    ticket.entity_type = "TICKET";
    ticket.pattern = "(?i)ticket #([0-9]+)";
    ticket.score = 0.9;
    RecognizerSpec word;
    word.name = "any_word";
    word.entity_type = "WORD";
    word.pattern = "\\pL{3,}";
    word.score = 0.55;
    RecognizerSpec record;
    record.name = "patient_record";
    record.entity_type = "PATIENT_RECORD";
    record.pattern = "\\b[0-9]{8}\\b";
    record.context_words = {"patient", "mrn"};
    record.context_required = true;
    specs = {employee, ticket, word, record};
  }
  absl::StatusOr<std::unique_ptr<Detector>> detector = Detector::Create(specs, options);
  if (!detector.ok()) __builtin_trap();
  return *detector->release();
}

// `bytes` with every byte that does not belong to a well-formed UTF-8 sequence replaced by
// '?'.
std::string ValidUtf8(const std::string& bytes) {
  std::string out;
  size_t i = 0;
  while (i < bytes.size()) {
    const unsigned char c = static_cast<unsigned char>(bytes[i]);
    size_t length = c < 0x80             ? 1
                    : (c & 0xe0) == 0xc0 ? 2
                    : (c & 0xf0) == 0xe0 ? 3
                    : (c & 0xf8) == 0xf0 ? 4
                                         : 0;
    uint32_t code = length == 1 ? c : length == 2 ? c & 0x1f : length == 3 ? c & 0x0f : c & 0x07;
    bool ok = length != 0 && i + length <= bytes.size();
    for (size_t k = 1; ok && k < length; ++k) {
      const unsigned char next = static_cast<unsigned char>(bytes[i + k]);
      ok = (next & 0xc0) == 0x80;
      code = (code << 6) | (next & 0x3f);
    }
    static constexpr uint32_t kMinimum[] = {0, 0, 0x80, 0x800, 0x10000};
    ok = ok && code >= kMinimum[length] && code <= 0x10ffff && (code < 0xd800 || code > 0xdfff);
    if (ok) {
      out.append(bytes, i, length);
      i += length;
    } else {
      out += '?';
      ++i;
    }
  }
  return out;
}

bool IsCharBoundary(const std::string& text, size_t i) {
  return i == text.size() || (static_cast<unsigned char>(text[i]) & 0xc0) != 0x80;
}

void CheckInvariants(const std::string& text, const std::vector<Finding>& findings,
                     double min_score, bool valid_utf8) {
  for (size_t i = 0; i < findings.size(); ++i) {
    const Finding& f = findings[i];
    if (f.begin >= f.end || f.end > text.size()) __builtin_trap();
    if (i > 0 && findings[i - 1].end > f.begin) __builtin_trap();
    if (!(f.score >= min_score && f.score <= 1.0)) __builtin_trap();
    if (f.entity_type.empty() || f.recognizer.empty()) __builtin_trap();
    if (valid_utf8 && (!IsCharBoundary(text, f.begin) || !IsCharBoundary(text, f.end))) {
      __builtin_trap();
    }
  }
}

bool SameFindings(const std::vector<Finding>& a, const std::vector<Finding>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].begin != b[i].begin || a[i].end != b[i].end || a[i].score != b[i].score ||
        a[i].entity_type != b[i].entity_type || a[i].recognizer != b[i].recognizer) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Detector& prefiltered = Make(true, false);
  static const Detector& whole = Make(false, false);
  static const Detector& custom = Make(true, true);
  static const Detector& custom_whole = Make(false, true);
  if (size == 0) return 0;
  ScanOptions options;
  options.min_score = static_cast<double>(data[0] % 11) / 10.0;
  const std::string raw(reinterpret_cast<const char*>(data) + 1, size - 1);

  CheckInvariants(raw, prefiltered.Scan(raw, options), options.min_score, false);
  CheckInvariants(raw, custom.Scan(raw, options), options.min_score, false);

  const std::string text = ValidUtf8(raw);
  const std::vector<Finding> found = prefiltered.Scan(text, options);
  CheckInvariants(text, found, options.min_score, true);
  if (!SameFindings(found, whole.Scan(text, options))) __builtin_trap();
  const std::vector<Finding> custom_found = custom.Scan(text, options);
  CheckInvariants(text, custom_found, options.min_score, true);
  // The custom recognizers' prefilter changes only the speed.
  if (!SameFindings(custom_found, custom_whole.Scan(text, options))) __builtin_trap();
  return 0;
}
