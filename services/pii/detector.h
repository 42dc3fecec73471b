#ifndef POLICY_SERVICES_PII_DETECTOR_H_
#define POLICY_SERVICES_PII_DETECTOR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/pii/finding.h"
#include "services/pii/recognizer.h"

// The scanner: finds the built-in and custom recognizers' entities in a text.
//
// How a scan works. A byte scan (SSE2, 16 bytes at a time) skips to the next byte that can
// matter (a digit, '@', ':', '_', "sk-", "AKIA", "ASIA") and looks at the chunk around it:
// chunks end at whitespace that no built-in match contains (a space after [A-Z0-9)] may be
// inside a phone number, card or IBAN; other whitespace ends a chunk). A chunk is kept when
// it can hold a built-in finding (enough digits, dots, colons or a literal prefix; see
// MayHoldFinding in detector.cc); each "-----BEGIN " adds the next kMaxPemBlockBytes, and a
// kept chunk that may be the data line of a passport's or identity card's machine-readable
// zone (13 digits, a run of 30 or more [A-Z0-9<]) adds the chunks on the lines before and
// after it. Over
// each kept region one RE2::Set of all built-in patterns says which recognizers match; only
// those extract their matches in that region with their own RE2 (an anchored search where a
// match can start, which is cheap and usually hits, then one unanchored search; recognizer
// by recognizer once the set has run over all regions, so that each regexp's DFA stays in
// cache, and not in a region shorter than the shortest value its validator accepts), and each
// match goes through the boundary rules (RecognizerSpec::pattern), excluded prefixes, the
// validator and context scoring. Custom recognizers, whose matches need no trigger, have a
// second RE2::Set that runs over the whole text, for those that may match: a recognizer whose
// pattern needs some literal (RE2's FilteredRE2 says which: "emp-" for EMP-[0-9]{6}) runs only
// when the text holds one (ignoring case), one that requires a context word only when the text
// holds one, and a lone recognizer left runs without the set. Findings below the threshold or
// of types not
// asked for are dropped; overlaps are resolved (higher score, then longer, then earlier, then
// the recognizer listed first) and the result is ordered by begin.
//
// A match the boundary rules, the validator or the context reject is retried shorter (ending
// before one of its spaces, dashes or colons, longest first, up to kMaxShorterTries), so
// "BE68 5390 0754 7034 EUR" still yields the IBAN and "2001:db8::1:" the address.
//
// The built-in recognizers read the text with the spaces, dashes and full-width characters
// real documents write folded to ASCII (no-break, thin and ideographic spaces, en dashes and
// minus signs, the full-width forms of ASCII: see folded_text.h), so that "4111 1111 1111
// 1111" with U+202F between its groups is a card and "ｊｏｈｎ＠ｅｘａｍｐｌｅ．ｃｏｍ" an e-mail
// address; context words are looked for in the folded text too ("ｐｈｏｎｅ" counts). A finding
// is mapped back to the original bytes it covers, whole characters. Texts without any such
// character (one vector pass tells) are scanned as they are. Custom recognizers always read
// the text as it is.
//
// A grouped IBAN in lowercase ("gb82 west 1234 5698 7654 32") holds spaces after lowercase
// letters, which end chunks: a kept chunk's region takes in the groups of four around it.
//
// The prefilter changes only the speed: DetectorOptions::trigger_prefilter = false gives the
// same findings (the tests and the fuzzer check it).
namespace policy::pii {

struct DetectorOptions {
  // RE2 memory budget for all compiled patterns together, their DFA caches included: a
  // quarter for the built-in set, a quarter for the custom set, and the other half shared
  // equally by the per-recognizer regexps. Besides, each custom pattern's prefilter copy
  // (compiled, never run) may take an eighth of its pattern's share; when one does not fit,
  // the custom recognizers run without the prefilter (the same findings, slower).
  int64_t max_regex_memory_bytes = 64 << 20;
  // False runs the built-in set over the whole text instead of the trigger regions (the same
  // findings, slower); tests and benchmarks compare the two.
  bool trigger_prefilter = true;
};

struct ScanOptions {
  // Findings scoring below this are dropped before overlaps are resolved.
  double min_score = 0.5;
  // The entity types to report; empty: all.
  std::vector<std::string> entity_types;
};

// The most shorter matches tried for one rejected match (see above).
inline constexpr int kMaxShorterTries = 8;

class Detector {
 public:
  // The built-in recognizers plus `custom`. INVALID_ARGUMENT naming the recognizer and the
  // problem: a malformed spec (CheckRecognizerSpec), a duplicate name (with a built-in or
  // another custom one), a pattern over its share of the memory budget; or the recognizers
  // of a set together over the set's share, or a budget that is not positive.
  static absl::StatusOr<std::unique_ptr<Detector>> Create(std::vector<RecognizerSpec> custom,
                                                          DetectorOptions options = {});
  ~Detector();
  Detector(const Detector&) = delete;
  Detector& operator=(const Detector&) = delete;

  // Every finding scoring at least options.min_score, of the requested types, with no two
  // overlapping, ordered by begin. Offsets are bytes into `text`; for valid UTF-8 they never
  // split a character (for invalid UTF-8 the scan is still safe and the spans in bounds).
  // Thread-safe: the detector is immutable, and the only synchronisation is RE2's own
  // (shared) lock on its DFA caches.
  std::vector<Finding> Scan(absl::string_view text, const ScanOptions& options = {}) const;

  // Every entity type this detector can report, sorted.
  std::vector<std::string> EntityTypes() const;
  bool KnowsEntityType(absl::string_view type) const;

 private:
  struct Recognizer;
  struct PatternSet;
  struct CustomGate;
  struct Candidate;
  struct ScanScratch;  // One scan's memo of the text's tables and context words.

  Detector();
  void Extract(const Recognizer& recognizer, absl::string_view text, size_t region_begin,
               size_t region_end, ScanScratch& scratch, std::vector<Candidate>& out) const;
  // Whether the match [begin, end) of `recognizer` is a finding, and its score; a match
  // `next_in_list` (right after a finding of the same recognizer, with only a list's
  // separators between) needs no context word of its own.
  bool Accept(const Recognizer& recognizer, absl::string_view text, size_t begin, size_t end,
              bool next_in_list, ScanScratch& scratch, double& score) const;
  // Whether the value [begin, end) of a match of `recognizer` has context (see recognizer.h).
  bool HasContext(const Recognizer& recognizer, absl::string_view text, size_t begin, size_t end,
                  ScanScratch& scratch) const;
  // The custom recognizers (indexes into recognizers_) that may find something in `text`
  // and are `wanted`; see CustomGate.
  std::vector<size_t> LiveCustomRecognizers(absl::string_view text,
                                            const std::vector<bool>& wanted) const;

  // BuiltinRecognizers() (the trigger prefilter's), NamedSecretRecognizers() (run on named
  // settings: NamedSettingRegions in detector.cc), the custom ones.
  std::vector<Recognizer> recognizers_;
  std::unique_ptr<PatternSet> builtin_set_;  // Of BuiltinRecognizers().
  std::unique_ptr<PatternSet> custom_set_;   // Null without custom recognizers.
  std::unique_ptr<CustomGate> custom_gate_;  // Null without custom recognizers.
  size_t trigger_count_ = 0;                 // BuiltinRecognizers().size().
  size_t custom_begin_ = 0;                  // The first custom recognizer.
  std::vector<std::string> entity_types_;    // Sorted, unique.
  bool trigger_prefilter_ = true;
};

}  // namespace policy::pii

#endif  // POLICY_SERVICES_PII_DETECTOR_H_
