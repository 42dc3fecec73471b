#include "services/pii/detector.h"

#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "re2/filtered_re2.h"
#include "re2/re2.h"
#include "re2/set.h"
#include "services/pii/folded_text.h"
#include "services/pii/validators.h"

namespace policy::pii {
namespace {

// A recognizer's context words, indexed by their first byte for a quick first test.
struct ContextWords {
  // The most distinct probes (see below) the vector scan looks for at once; with more, the
  // scan goes byte by byte.
  static constexpr size_t kMaxProbes = 8;
  using Bytes = std::array<unsigned char, 16>;

  std::vector<std::string> words;             // Lowercase; at most kMaxContextWords.
  std::array<uint64_t, 256> starting_with{};  // Byte (either case) -> bit set of words.
  size_t longest = 0;
  // The probes, one per distinct start of a word, for the vector scan: a position may start
  // the word when (byte | first_fold) == first and (next byte | second_fold) == second. A
  // lowercase letter's fold is 0x20, so that it matches either case, any other byte's 0; a
  // one-byte word's second fold and byte are 0xff, which every byte matches. Each value is
  // repeated over 16 bytes. Valid when probe_count <= kMaxProbes.
  std::array<Bytes, kMaxProbes> first{}, first_fold{}, second{}, second_fold{};
  size_t probe_count = 0;

  explicit ContextWords(const std::vector<std::string>& lowercase) : words(lowercase) {
    auto fold = [](unsigned char c) -> unsigned char { return absl::ascii_islower(c) ? 0x20 : 0; };
    for (size_t i = 0; i < words.size(); ++i) {
      const unsigned char c = static_cast<unsigned char>(words[i][0]);
      starting_with[c] |= uint64_t{1} << i;
      starting_with[static_cast<unsigned char>(absl::ascii_toupper(c))] |= uint64_t{1} << i;
      longest = std::max(longest, words[i].size());
      const unsigned char next = words[i].size() >= 2 ? static_cast<unsigned char>(words[i][1]) : 0;
      const unsigned char next_fold = words[i].size() >= 2 ? fold(next) : 0xff;
      const unsigned char next_byte = words[i].size() >= 2 ? next : 0xff;
      bool known = false;
      for (size_t k = 0; k < std::min(probe_count, kMaxProbes) && !known; ++k) {
        known = first[k][0] == c && second[k][0] == next_byte && second_fold[k][0] == next_fold;
      }
      if (known) continue;
      if (probe_count < kMaxProbes) {
        first[probe_count].fill(c);
        first_fold[probe_count].fill(fold(c));
        second[probe_count].fill(next_byte);
        second_fold[probe_count].fill(next_fold);
      }
      ++probe_count;
    }
  }
};

}  // namespace

struct Detector::Recognizer {
  RecognizerSpec spec;
  ContextWords context{{}};
  ContextWords excluded_context{{}};
  std::unique_ptr<RE2> regex;
  Validator validator = nullptr;  // Null: any match counts.
  // No finding is shorter (MinAcceptedBytes of the validator), so no shorter text holds one.
  size_t min_finding_bytes = 0;
  // Its capture groups: the finding is the first that takes part in a match, or the whole
  // match when there are none.
  int groups = 0;
  bool whole_token = false;  // ChecksWholeTokens(validator).
  // Its findings are all chunks MayHoldFinding accepts (built-ins but PRIVATE_KEY).
  bool needs_trigger = false;
  // Every match starts with a byte in this range (RE2::PossibleMatchRange).
  unsigned char first_byte_low = 0;
  unsigned char first_byte_high = 255;
};

// An RE2::Set over some recognizers' patterns.
struct Detector::PatternSet {
  std::unique_ptr<RE2::Set> set;
  std::vector<size_t> recognizer_of;  // Set index -> index into recognizers_.
};

// Which custom recognizers may match a text, before their set runs over it: RE2's prefilter
// of their patterns (the literals a match needs), and the literals found in the text.
struct Detector::CustomGate {
  // Over the custom patterns in recognizer order (FilteredRE2 id k: custom_begin_ + k).
  // Null when some pattern did not fit its share of the budget: every one may match.
  std::unique_ptr<re2::FilteredRE2> filter;
  // The prefilter's ASCII atoms, found ignoring case; its atom index per word.
  ContextWords atoms{{}};
  std::vector<int> atom_of_word;
  // Atoms with bytes beyond ASCII (the text is not case-folded beyond ASCII): taken as found.
  std::vector<int> always_found;
  // Atoms holding a 'k' or an 's', which (?i) also matches as U+212A KELVIN SIGN and U+017F
  // LATIN SMALL LETTER LONG S (the only characters beyond ASCII that RE2 folds to ASCII
  // letters): taken as found in a text holding either.
  std::vector<int> folds_beyond_ascii;
};

struct Detector::Candidate {
  size_t begin = 0;
  size_t end = 0;
  double score = 0;
  size_t recognizer = 0;
};

namespace {

// Chunks this close are scanned as one region: only neighbours, since every recognizer the
// set reports then runs over the whole region.
constexpr size_t kRegionMergeGap = 1;

// The shortest literal a custom pattern's prefilter looks for; a pattern that needs none as
// long (\b[0-9]{8}\b, say) always runs.
constexpr int kMinPrefilterAtomBytes = 3;

// A custom pattern's prefilter copy may take this fraction of the pattern's own share of the
// memory budget (detector.h).
constexpr int64_t kPrefilterBudgetDivisor = 8;

bool IsWordByte(unsigned char c) { return absl::ascii_isalnum(c) || c == '_'; }
bool IsDigit(unsigned char c) { return c >= '0' && c <= '9'; }
bool IsContinuationByte(unsigned char c) { return (c & 0xc0) == 0x80; }

unsigned char At(absl::string_view text, size_t i) { return static_cast<unsigned char>(text[i]); }

// The byte after `i` that starts a UTF-8 character (or the end).
size_t NextCharBoundary(absl::string_view text, size_t i) {
  ++i;
  while (i < text.size() && IsContinuationByte(At(text, i))) ++i;
  return i;
}

// Whether [begin, ...) would be part of a longer token: see RecognizerSpec::pattern.
bool GluedLeft(absl::string_view text, size_t begin) {
  if (begin == 0 || begin >= text.size()) return false;
  const unsigned char first = At(text, begin);
  const unsigned char before = At(text, begin - 1);
  if (IsWordByte(first) && IsWordByte(before)) return true;
  return IsDigit(first) && (before == '.' || before == '-') && begin >= 2 &&
         IsDigit(At(text, begin - 2));
}

bool GluedRight(absl::string_view text, size_t end) {
  if (end == 0 || end >= text.size()) return false;
  const unsigned char last = At(text, end - 1);
  const unsigned char after = At(text, end);
  if (IsWordByte(last) && IsWordByte(after)) return true;
  return IsDigit(last) && (after == '.' || after == '-') && end + 1 < text.size() &&
         IsDigit(At(text, end + 1));
}

bool IsUpperOrDigit(unsigned char c) { return absl::ascii_isupper(c) || IsDigit(c); }

// Whether [begin, end) is a run of [A-Z0-9] with a digit: a group of a grouped number.
bool IsDigitGroup(absl::string_view text, size_t begin, size_t end) {
  bool digit = false;
  for (size_t i = begin; i < end; ++i) {
    if (!IsUpperOrDigit(At(text, i))) return false;
    digit = digit || IsDigit(At(text, i));
  }
  return begin < end && digit;
}

// Whether the byte at `joint`, between a group and its neighbour, joins them as a date or a
// time does: '/', or ':' or '.' between digits ("12/26", "12:30", "1.5").
bool IsDateJoint(absl::string_view text, size_t joint) {
  if (joint >= text.size()) return false;
  const unsigned char c = At(text, joint);
  if (c == '/') return true;
  return (c == ':' || c == '.') && joint > 0 && joint + 1 < text.size() &&
         IsDigit(At(text, joint - 1)) && IsDigit(At(text, joint + 1));
}

// Whether the value [begin, end), written in space-separated groups, continues a longer
// grouped number. Groups are runs of 1-4 [A-Z0-9]; a group with a digit continues the value
// when it is one space away and:
//  * before the value: the value's first group holds a digit (a prefix of letters, as a
//    National Insurance number's "AB 12 34 56 C", continues no number), the group is at
//    least as long as that first group, and no group between it and the value is lowercase,
//    longer than four or joined to what precedes it as a date is ("GB31 WEMF 4832 6768 0889
//    4" holds no card starting at 4832, "6887 4111 1111 1111 1111" none at 4111; "VISA 4111
//    1111 1111 1111", "Card 1 4111 1111 1111 1111", "EXP 03/30 4111 1111 1111 1111" and "EMP
//    1043 SN 84 21 96 B" hold one);
//  * after the value: the group right after it is not joined to what follows as a date is,
//    the value's last group is not shorter than the one before it (its grouping has ended:
//    "DE89 3704 0044 0532 0130 00 5000 EUR"), and the group has four characters or more or
//    the value holds a letter (an IBAN's short last group: "BE68 5390 0754 7034 5" holds no
//    IBAN, but "4111 1111 1111 1111 123" holds a card followed by its CVV).
bool ContinuesGroups(absl::string_view text, size_t begin, size_t end) {
  constexpr size_t kLongestGroup = 4;
  constexpr int kMostGroups = 8;
  const absl::string_view value = text.substr(begin, end - begin);
  const size_t first_space = value.find(' ');
  if (first_space == absl::string_view::npos) return false;
  const absl::string_view first_group = value.substr(0, first_space);
  if (IsUpperOrDigit(At(text, begin)) &&
      std::any_of(first_group.begin(), first_group.end(), [](char c) { return IsDigit(c); })) {
    size_t group_end = begin;  // Groups before the value, from the nearest.
    for (int n = 0; n < kMostGroups && group_end >= 2 && text[group_end - 1] == ' '; ++n) {
      size_t group = group_end - 1;
      while (group > 0 && absl::ascii_isalnum(At(text, group - 1))) --group;
      const size_t length = group_end - 1 - group;
      if (length > kLongestGroup || !IsUpperOrDigit(At(text, group_end - 2)) ||
          length < first_space || (group > 0 && IsDateJoint(text, group - 1))) {
        break;
      }
      if (IsDigitGroup(text, group, group_end - 1)) return true;
      bool upper = true;
      for (size_t i = group; i < group_end - 1; ++i) upper = upper && IsUpperOrDigit(At(text, i));
      if (!upper) break;
      group_end = group;
    }
  }
  if (end + 1 < text.size() && text[end] == ' ' && IsUpperOrDigit(At(text, end - 1))) {
    size_t group = end + 1;
    while (group < text.size() && absl::ascii_isalnum(At(text, group))) ++group;
    if (!IsDigitGroup(text, end + 1, group) || IsDateJoint(text, group)) return false;
    const size_t last_space = value.rfind(' ');
    const size_t before_last_space =
        last_space == 0 ? absl::string_view::npos : value.rfind(' ', last_space - 1);
    const size_t last_group = value.size() - last_space - 1;
    const size_t group_before_last =
        last_space - (before_last_space == absl::string_view::npos ? 0 : before_last_space + 1);
    if (last_group < group_before_last) return false;
    const bool has_letter =
        std::any_of(value.begin(), value.end(), [](char c) { return absl::ascii_isalpha(c); });
    return group - (end + 1) >= kLongestGroup || has_letter;
  }
  return false;
}

bool EqualsIgnoreCase(absl::string_view text, size_t at, absl::string_view lower) {
  for (size_t k = 0; k < lower.size(); ++k) {
    if (absl::ascii_tolower(At(text, at + k)) != lower[k]) {
      return false;
    }
  }
  return true;
}

bool IsLetterAt(absl::string_view text, size_t i) { return absl::ascii_isalpha(At(text, i)); }

// The most bytes between two items of a list (OnlyListSeparators).
constexpr size_t kMostListSeparatorBytes = 16;

// Whether [from, to) separates two items of a list and nothing more: at most
// kMostListSeparatorBytes of spaces, line breaks, quotes, ',' or ';' followed by a space or a
// line break, and at most one conjunction ("and", "or", "y", "und", "oraz", "och", ...). A
// table's ',', ';', '|' and tabs between cells are no list: each cell has its column.
bool OnlyListSeparators(absl::string_view text, size_t from, size_t to) {
  static constexpr absl::string_view kConjunctions[] = {
      "and", "or",  "und",   "oder", "y",    "o",   "e",  "et",  "ou",
      "en",  "och", "eller", "og",   "oraz", "lub", "ja", "tai", "i"};
  if (from > to || to - from > kMostListSeparatorBytes) return false;
  bool had_word = false;
  for (size_t i = from; i < to;) {
    const unsigned char c = At(text, i);
    if (absl::ascii_isalpha(c)) {
      size_t j = i;
      while (j < to && absl::ascii_isalpha(At(text, j))) ++j;
      const absl::string_view word = text.substr(i, j - i);
      if (had_word ||
          std::none_of(std::begin(kConjunctions), std::end(kConjunctions),
                       [word](absl::string_view c) { return absl::EqualsIgnoreCase(word, c); })) {
        return false;
      }
      had_word = true;
      i = j;
      continue;
    }
    const bool separator =
        (c == ',' || c == ';') && i + 1 < to &&
        (At(text, i + 1) == ' ' || At(text, i + 1) == '\n' || At(text, i + 1) == '\r');
    if (!separator && c != ' ' && c != '\n' && c != '\r' && c != '"' && c != '\'') return false;
    ++i;
  }
  return true;
}

// The first position in [at, end) where one of the context words may start (its first byte
// does, and its second byte, when it has one and the vector scan looks, is next), or `end`.
size_t SkipToContextWord(absl::string_view text, size_t at, size_t end,
                         const ContextWords& context) {
#if defined(__SSE2__)
  if (context.probe_count <= ContextWords::kMaxProbes) {
    auto load = [](const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); };
    const char* const data = text.data();
    // Sixteen positions at a time, each with the byte after it (a word of two bytes or more
    // that starts at one of them ends before `end`).
    while (at + 17 <= end) {
      const __m128i bytes = load(data + at);
      const __m128i next = load(data + at + 1);
      __m128i hits = _mm_setzero_si128();
      for (size_t k = 0; k < context.probe_count; ++k) {
        const __m128i first_hit = _mm_cmpeq_epi8(
            _mm_or_si128(bytes, load(context.first_fold[k].data())), load(context.first[k].data()));
        const __m128i second_hit =
            _mm_cmpeq_epi8(_mm_or_si128(next, load(context.second_fold[k].data())),
                           load(context.second[k].data()));
        hits = _mm_or_si128(hits, _mm_and_si128(first_hit, second_hit));
      }
      const int mask = _mm_movemask_epi8(hits);
      if (mask != 0) return at + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
      at += 16;
    }
  }
#endif
  while (at < end && context.starting_with[At(text, at)] == 0) ++at;
  return at;
}

// Whether the context word `word` at `at` is a whole word: not right after a letter when it
// starts with one, not right before a letter when it ends with one, but for a plural 's'
// ("phones", but not "telemetry", "cellar" or "callback").
bool IsWholeContextWord(absl::string_view text, size_t at, absl::string_view word) {
  if (at > 0 && IsLetterAt(text, at - 1) && absl::ascii_isalpha(word.front())) return false;
  size_t end = at + word.size();
  if (!absl::ascii_isalpha(word.back()) || end >= text.size() || !IsLetterAt(text, end)) {
    return true;
  }
  if (absl::ascii_tolower(At(text, end)) != 's') return false;
  ++end;
  return end >= text.size() || !IsLetterAt(text, end);
}

// The end of the first whole context word (IsWholeContextWord) that starts at or after
// `starts_from` and ends in (ends_after, end_limit], or npos; ends_after 0 admits words ending
// anywhere up to the limit.
size_t FindContextWord(absl::string_view text, size_t starts_from, size_t ends_after,
                       size_t end_limit, const ContextWords& context) {
  const size_t from = std::max(
      starts_from, ends_after >= context.longest ? ends_after + 1 - context.longest : size_t{0});
  for (size_t at = SkipToContextWord(text, from, end_limit, context); at < end_limit;
       at = SkipToContextWord(text, at + 1, end_limit, context)) {
    for (uint64_t candidates = context.starting_with[At(text, at)]; candidates != 0;
         candidates &= candidates - 1) {
      const std::string& word = context.words[static_cast<size_t>(__builtin_ctzll(candidates))];
      const size_t end = at + word.size();
      if (end > end_limit || (end <= ends_after && ends_after > 0)) continue;
      if (EqualsIgnoreCase(text, at, word) && IsWholeContextWord(text, at, word)) return end;
    }
  }
  return absl::string_view::npos;
}

bool HasContextWord(absl::string_view text, size_t starts_from, size_t ends_after, size_t end_limit,
                    const ContextWords& context) {
  return FindContextWord(text, starts_from, ends_after, end_limit, context) !=
         absl::string_view::npos;
}

// The words of `words` that occur anywhere in `text` (ignoring ASCII case; no word boundary
// needed), as a bit set.
uint64_t FoundWords(absl::string_view text, const ContextWords& words) {
  uint64_t found = 0;
  const uint64_t all =
      words.words.size() == 64 ? ~uint64_t{0} : (uint64_t{1} << words.words.size()) - 1;
  for (size_t at = SkipToContextWord(text, 0, text.size(), words); at < text.size() && found != all;
       at = SkipToContextWord(text, at + 1, text.size(), words)) {
    for (uint64_t candidates = words.starting_with[At(text, at)] & ~found; candidates != 0;
         candidates &= candidates - 1) {
      const size_t w = static_cast<size_t>(__builtin_ctzll(candidates));
      const std::string& word = words.words[w];
      if (at + word.size() <= text.size() && EqualsIgnoreCase(text, at, word)) {
        found |= uint64_t{1} << w;
      }
    }
  }
  return found;
}

// The start of the context window of a match at `begin`.
size_t ContextWindowBegin(size_t begin) {
  return begin > kContextWindowBytes ? begin - kContextWindowBytes : 0;
}

// The bytes that join the digits of one number, at most two in a row: "(415) 555-2671" and
// "123 45 6789" are each one number.
bool IsNumberJoiner(unsigned char c) {
  return c == ' ' || c == '-' || c == '.' || c == '/' || c == '(' || c == ')';
}

// Calls visit(begin, end, digits) for each number in [from, to), in order, until it returns
// true.
template <typename Visit>
void ForEachNumber(absl::string_view text, size_t from, size_t to, Visit visit) {
  size_t i = from;
  while (i < to) {
    if (!IsDigit(At(text, i))) {
      ++i;
      continue;
    }
    const size_t begin = i;
    size_t digits = 0;
    size_t last = i;
    while (i < to) {
      if (IsDigit(At(text, i))) {
        ++digits;
        last = ++i;
        continue;
      }
      size_t j = i;
      while (j < to && j < i + 2 && IsNumberJoiner(At(text, j))) ++j;
      if (j == i || j >= to || !IsDigit(At(text, j))) break;
      i = j;
    }
    if (visit(begin, last, digits)) return;
  }
}

// The end of the last number in [from, to) with at least `digits` digits, or `from`.
size_t AfterLastNumber(absl::string_view text, size_t from, size_t to, size_t digits) {
  size_t after = from;
  ForEachNumber(text, from, to, [&](size_t, size_t end, size_t count) {
    if (count >= digits) after = end;
    return false;
  });
  return after;
}

// The start of the first number in [from, to) with at least `digits` digits, or `to`.
size_t FirstNumber(absl::string_view text, size_t from, size_t to, size_t digits) {
  size_t first = to;
  ForEachNumber(text, from, to, [&](size_t begin, size_t, size_t count) {
    if (count < digits) return false;
    first = begin;
    return true;
  });
  return first;
}

size_t DigitsIn(absl::string_view text, size_t begin, size_t end) {
  size_t digits = 0;
  for (size_t i = begin; i < end; ++i) digits += IsDigit(At(text, i));
  return std::max<size_t>(digits, 1);
}

// Whether a match at `begin` has one of the context words in the window before it, with no
// number of `digits` digits or more between the word and the match (the word is about that
// other number).
bool HasContextWordBefore(absl::string_view text, size_t begin, size_t digits,
                          const ContextWords& context) {
  const size_t window_begin = ContextWindowBegin(begin);
  const size_t search_begin =
      window_begin >= context.longest ? window_begin + 1 - context.longest : 0;
  // Most matches have no word at all: the numbers are looked at only when there is one.
  return HasContextWord(text, search_begin, window_begin, begin, context) &&
         HasContextWord(text, AfterLastNumber(text, search_begin, begin, digits), window_begin,
                        begin, context);
}

// Whether a match ending at `end` has one of the context words within the kContextAfterBytes
// after it, on its line, with no number of `digits` digits or more and no "no" or "not"
// between.
bool HasContextWordAfter(absl::string_view text, size_t end, size_t digits,
                         const ContextWords& context) {
  size_t limit = std::min(text.size(), end + kContextAfterBytes);
  for (size_t i = end; i < limit; ++i) {
    if (text[i] == '\n' || text[i] == '\r') {
      limit = i;
      break;
    }
  }
  if (!HasContextWord(text, end, 0, limit, context)) return false;
  // A word after a negation does not count: "123456789 is not an SSN".
  for (size_t i = end; i + 3 <= limit; ++i) {
    if ((i == 0 || !IsLetterAt(text, i - 1)) &&
        (EqualsIgnoreCase(text, i, "no") &&
         (i + 2 == text.size() || !IsLetterAt(text, i + 2) ||
          (EqualsIgnoreCase(text, i, "not") &&
           (i + 3 == text.size() || !IsLetterAt(text, i + 3)))))) {
      limit = i;
      break;
    }
  }
  return HasContextWord(text, end, 0, FirstNumber(text, end, limit, digits), context);
}

// Field delimiters of tables (CSV, TSV, markdown), by precedence: a line's delimiter is the
// first of these it holds.
constexpr absl::string_view kFieldDelimiters = "|\t,;";
// The header field of a table is looked for in its first kMaxHeaderBytes bytes.
constexpr size_t kMaxHeaderBytes = 1024;

bool IsFieldEdge(unsigned char c) {
  return c == '\n' || c == '\r' ||
         kFieldDelimiters.find(static_cast<char>(c)) != absl::string_view::npos;
}

unsigned char LineDelimiter(absl::string_view text, size_t begin, size_t end) {
  const absl::string_view line = text.substr(begin, end - begin);
  for (char d : kFieldDelimiters) {
    if (line.find(d) != absl::string_view::npos) return static_cast<unsigned char>(d);
  }
  return 0;
}

// Whether the region [begin, end) may hold a whole field of a table row (HeaderField): it
// holds a field delimiter or starts one.
bool MayHoldField(absl::string_view text, size_t begin, size_t end) {
  size_t before = begin;
  while (before > 0 && (text[before - 1] == ' ' || text[before - 1] == '"')) --before;
  if (before > 0 && IsFieldEdge(At(text, before - 1)) && At(text, before - 1) != '\n') return true;
  for (size_t i = begin; i < end; ++i) {
    const unsigned char c = At(text, i);
    if (c == '|' || c == '\t' || c == ',' || c == ';') return true;
  }
  return false;
}

// What the scan has learnt of the lines and tables around the values it looked at, so that
// finding a value's column header costs, over all values in order, one pass over the text.
struct TableMemo {
  static constexpr size_t kNone = absl::string_view::npos;
  // The line last looked at, its delimiter (0: none), and its delimiters before counted_to.
  size_t line_begin = kNone;
  size_t line_end = 0;
  unsigned char delimiter = 0;
  size_t counted_to = 0;
  size_t fields_before = 0;
  // The table last found: its header line, the end of the last line known to be one of its
  // rows (every line from the header to there holds the delimiter), and its delimiter.
  size_t header_begin = kNone;
  size_t header_end = 0;
  size_t rows_end = 0;
  unsigned char table_delimiter = 0;
};

// The end of the line holding `at`, without a trailing '\r'.
size_t LineEnd(absl::string_view text, size_t at) {
  size_t end = text.find('\n', at);
  if (end == absl::string_view::npos) end = text.size();
  return end > at && text[end - 1] == '\r' ? end - 1 : end;
}

size_t LineBegin(absl::string_view text, size_t at) {
  if (at == 0) return 0;
  const size_t newline = text.rfind('\n', at - 1);
  return newline == absl::string_view::npos ? 0 : newline + 1;
}

// Whether the line [begin, end) is a row of a table delimited by `delimiter`.
bool IsRow(absl::string_view text, size_t begin, size_t end, unsigned char delimiter) {
  return end > begin && text.substr(begin, end - begin).find(static_cast<char>(delimiter)) !=
                            absl::string_view::npos;
}

// When the value [begin, end) is a whole field (spaces and '"' aside) of a row of a table (a
// block of lines that each hold the first line's delimiter, the first line its header), sets
// [field_begin, field_end) to the header field in its column and returns true.
bool HeaderField(absl::string_view text, size_t begin, size_t end, TableMemo& memo,
                 size_t& field_begin, size_t& field_end) {
  size_t before = begin;
  while (before > 0 && (text[before - 1] == ' ' || text[before - 1] == '"')) --before;
  size_t after = end;
  while (after < text.size() && (text[after] == ' ' || text[after] == '"')) ++after;
  if ((before > 0 && !IsFieldEdge(At(text, before - 1))) ||
      (after < text.size() && !IsFieldEdge(At(text, after)))) {
    return false;
  }
  if (memo.line_begin == TableMemo::kNone || begin < memo.line_begin || begin >= memo.line_end) {
    memo.line_begin = LineBegin(text, begin);
    memo.line_end = LineEnd(text, end);
    memo.delimiter = LineDelimiter(text, memo.line_begin, memo.line_end);
    memo.counted_to = memo.line_begin;
    memo.fields_before = 0;
  }
  const size_t line_begin = memo.line_begin;
  const size_t line_end = memo.line_end;
  const unsigned char d = memo.delimiter;
  if (d == 0 || (before > line_begin && At(text, before - 1) != d) ||
      (after < line_end && At(text, after) != d)) {
    return false;
  }
  if (before < memo.counted_to) {
    memo.counted_to = line_begin;
    memo.fields_before = 0;
  }
  for (size_t i = memo.counted_to; i < before; ++i) memo.fields_before += At(text, i) == d;
  memo.counted_to = before;

  // The table holding the line: the one known, extended to it, or found anew.
  const bool known = memo.header_begin != TableMemo::kNone && memo.table_delimiter == d &&
                     memo.header_begin <= line_begin;
  if (known && line_begin > memo.rows_end) {
    size_t row = memo.rows_end + 1;
    while (row < line_begin) {
      const size_t row_end = LineEnd(text, row);
      if (!IsRow(text, row, row_end, d)) break;
      row = text.find('\n', row_end);
      row = row == absl::string_view::npos ? text.size() : row + 1;
    }
    if (row >= line_begin) memo.rows_end = line_end;
  }
  if (!known || line_begin > memo.rows_end) {
    size_t header = line_begin;
    while (header > 0) {
      const size_t previous = LineBegin(text, header - 1);
      if (!IsRow(text, previous, LineEnd(text, previous), d)) break;
      header = previous;
    }
    memo.header_begin = header;
    memo.header_end = LineEnd(text, header);
    memo.table_delimiter = d;
  }
  memo.rows_end = std::max(memo.rows_end, line_end);
  if (line_begin == memo.header_begin) return false;  // The value is in the header.

  size_t field = 0;
  const size_t header_end = std::min(memo.header_end, memo.header_begin + kMaxHeaderBytes);
  field_begin = memo.header_begin;
  for (size_t i = memo.header_begin; i < header_end; ++i) {
    if (At(text, i) != d) continue;
    if (field == memo.fields_before) {
      field_end = i;
      return true;
    }
    ++field;
    field_begin = i + 1;
  }
  field_end = header_end;
  return field == memo.fields_before;
}

// `prefixes` are lowercase.
bool HasExcludedPrefix(absl::string_view text, size_t begin,
                       const std::vector<std::string>& prefixes) {
  for (const std::string& prefix : prefixes) {
    if (prefix.size() > begin) continue;
    const size_t at = begin - prefix.size();
    if (!EqualsIgnoreCase(text, at, prefix)) continue;
    if (absl::ascii_isalpha(prefix[0]) && at > 0 && IsLetterAt(text, at - 1)) continue;
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------
// The trigger prefilter.

enum ByteClass : uint8_t {
  kPlain = 0,
  kDigit,
  kDot,
  kColon,
  kSpecial,     // '@', '_'.
  kSpace,       // ' ': a cut unless it follows [A-Z0-9)].
  kOtherSpace,  // \t \n \v \f \r: always a cut.
  kDash,        // '-': special after "sk".
  kCapitalA,    // 'A': special before "KIA" or "SIA".
};

constexpr std::array<uint8_t, 256> MakeByteClasses() {
  std::array<uint8_t, 256> classes{};
  for (int c = '0'; c <= '9'; ++c) classes[c] = kDigit;
  classes['.'] = kDot;
  classes[':'] = kColon;
  classes['@'] = classes['_'] = kSpecial;
  classes[' '] = kSpace;
  classes['\t'] = classes['\n'] = classes['\v'] = classes['\f'] = classes['\r'] = kOtherSpace;
  classes['-'] = kDash;
  classes['A'] = kCapitalA;
  return classes;
}
constexpr std::array<uint8_t, 256> kByteClasses = MakeByteClasses();

// Bytes a space inside a built-in match follows.
constexpr std::array<bool, 256> MakeSpaceJoiners() {
  std::array<bool, 256> joiners{};
  for (int c = '0'; c <= '9'; ++c) joiners[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) joiners[c] = true;
  joiners[')'] = true;
  return joiners;
}
constexpr std::array<bool, 256> kSpaceJoiners = MakeSpaceJoiners();

// What the prefilter counts in a chunk.
struct ChunkCounts {
  size_t digits = 0;
  size_t dots = 0;
  size_t colons = 0;
  // '@', '_', a token's prefix with '-' or 'A' (TokenPrefixAt), "://hooks.slack.com/".
  bool special = false;
  bool pem_begin = false;  // "-----BEGIN " starts in the chunk.
};

// Whether a chunk of `length` bytes can hold a finding of a built-in recognizer other than
// PRIVATE_KEY's PEM blocks. Each of those findings holds:
// - '@' or '_' (e-mail, POLICY_SUITE_KEY, GITHUB_TOKEN, STRIPE_API_KEY, HUGGINGFACE_TOKEN,
//   NPM_TOKEN, GROQ_API_KEY, DOCKER_HUB_TOKEN, WEBHOOK_SIGNING_SECRET, REPLICATE_API_TOKEN,
//   LANGSMITH_API_KEY, DIGITALOCEAN_TOKEN, GRAFANA_TOKEN);
// - a token's prefix (TokenPrefixAt): "sk-" (OPENAI_API_KEY), "glpat-", "gldt-", "glrt-",
//   "glptt-" (GITLAB_TOKEN), "xai-" (XAI_API_KEY), "GOCSPX-" (GOOGLE_OAUTH_CLIENT_SECRET),
//   "pplx-" (PERPLEXITY_API_KEY), "PMAK-" (POSTMAN_API_KEY), "AKIA" or "ASIA"
//   (AWS_ACCESS_KEY), "AIza" (GOOGLE_API_KEY), "SharedAccessKey=" (AZURE_SHARED_ACCESS_KEY);
//   or "://hooks.slack.com/" (SLACK_WEBHOOK_URL);
// - two colons (IPv6);
// - seven digits or more (US_SSN, US_ITIN, CREDIT_CARD, PHONE_NUMBER, UK_NHS,
//   MEDICAL_LICENSE, ES_NIF, ES_NIE, PL_PESEL, FI_PERSONAL_IDENTITY_CODE,
//   SE_PERSONAL_IDENTITY_NUMBER, NL_BSN, FR_NIR, DE_TAX_ID, DE_HEALTH_INSURANCE_NUMBER,
//   BE_NATIONAL_NUMBER, IE_PPSN, DK_CPR, AT_SOCIAL_INSURANCE_NUMBER, PT_TAX_ID,
//   IDENTITY_DOCUMENT_MRZ's data lines, EU_VAT_NUMBER, TELEGRAM_BOT_TOKEN, SLACK_TOKEN's app
//   tokens, DISCORD_WEBHOOK_URL);
// - six digits in eight bytes or more (UK_NINO, EU_VAT_NUMBER's "RO123456"), four digits and
//   three dots (IPv4);
// - or a digit in 15 bytes or more: IBAN_CODE, CRYPTO, SLACK_TOKEN, IT_FISCAL_CODE, JWT,
//   SENDGRID_API_KEY, AZURE_STORAGE_KEY, AZURE_SAS_TOKEN, DATABRICKS_TOKEN, VAULT_TOKEN and
//   DISCORD_BOT_TOKEN,
//   whose validators require a digit or '_'; AZURE_CLIENT_SECRET's digit before "Q~";
//   "ATATT3" (ATLASSIAN_API_TOKEN), "ya29." (GOOGLE_OAUTH_TOKEN), "AgEIcHlwaS5vcmc" or
//   "AgENdGVzdC5weXBpLm9yZw" (PYPI_TOKEN), "LS0tLS1CRUdJTi" (a PRIVATE_KEY in base64).
// A chunk holds all of its findings' bytes.
bool MayHoldFinding(size_t length, const ChunkCounts& c) {
  return c.special || c.colons >= 2 || c.digits >= 7 || (c.digits >= 6 && length >= 8) ||
         (c.digits >= 4 && c.dots >= 3) || (c.digits >= 1 && length >= 15);
}

// Whether the whitespace byte at `i`, if it is one, separates chunks: no built-in match
// other than a PEM block contains it.
bool IsCut(absl::string_view text, size_t i) {
  const uint8_t k = kByteClasses[At(text, i)];
  if (k == kOtherSpace) return true;
  return k == kSpace && (i == 0 || !kSpaceJoiners[At(text, i - 1)]);
}

struct Region {
  size_t begin;
  size_t end;
};

void AddRegion(std::vector<Region>& regions, size_t begin, size_t end) {
  // A region may start before the last ones (a named setting's name before an earlier
  // separator): it takes them in.
  while (!regions.empty() && begin <= regions.back().end + kRegionMergeGap) {
    begin = std::min(begin, regions.back().begin);
    end = std::max(end, regions.back().end);
    regions.pop_back();
  }
  regions.push_back(Region{begin, end});
}

// Bytes that can make a chunk worth scanning: digits, ':', '@', '_', and '-' and 'A' (for
// the tokens' prefixes, TokenPrefixAt). Dots count only beside digits, so they are not among
// them.
constexpr std::array<bool, 256> MakeTriggerBytes() {
  std::array<bool, 256> triggers{};
  for (int c = 0; c < 256; ++c) {
    triggers[c] = c != '.' && MakeByteClasses()[c] >= kDigit && MakeByteClasses()[c] <= kSpecial;
  }
  triggers['-'] = triggers['A'] = true;
  return triggers;
}
constexpr std::array<bool, 256> kTriggerBytes = MakeTriggerBytes();

// The first trigger byte at or after `i`, or `n`.
size_t SkipToTrigger(const unsigned char* data, size_t i, size_t n) {
#if defined(__SSE2__)
  // Sixteen bytes at a time: x is in [low, low + span] when min(x - low, span) == x - low.
  auto in_range = [](__m128i bytes, char low, char span) {
    const __m128i shifted = _mm_sub_epi8(bytes, _mm_set1_epi8(low));
    return _mm_cmpeq_epi8(_mm_min_epu8(shifted, _mm_set1_epi8(span)), shifted);
  };
  while (i + 16 <= n) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + i));
    const __m128i hits =
        _mm_or_si128(_mm_or_si128(in_range(bytes, '0', ':' - '0'), in_range(bytes, '@', 'A' - '@')),
                     _mm_or_si128(_mm_cmpeq_epi8(bytes, _mm_set1_epi8('_')),
                                  _mm_cmpeq_epi8(bytes, _mm_set1_epi8('-'))));
    const int mask = _mm_movemask_epi8(hits);
    if (mask != 0) return i + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
    i += 16;
  }
#endif
  while (i < n && !kTriggerBytes[data[i]]) ++i;
  return i;
}

constexpr absl::string_view kPemBegin = "-----BEGIN ";

bool IsPemBeginAt(absl::string_view text, size_t dash) {
  return text.size() - dash >= kPemBegin.size() && text[dash + 4] == '-' &&
         text.substr(dash, kPemBegin.size()) == kPemBegin;
}

// Whether the '-' or 'A' at `i` belongs to a token's prefix: "sk-" (OPENAI_API_KEY), "glpat-",
// "gldt-", "glrt-", "glptt-" (GITLAB_TOKEN), "xai-" (XAI_API_KEY), "GOCSPX-"
// (GOOGLE_OAUTH_CLIENT_SECRET), "pplx-" (PERPLEXITY_API_KEY), "PMAK-" (POSTMAN_API_KEY), "AKIA",
// "ASIA" (AWS_ACCESS_KEY), "AIza" (GOOGLE_API_KEY) or "SharedAccessKey=" (AZURE_SHARED_ACCESS_KEY).
bool TokenPrefixAt(absl::string_view text, size_t i) {
  if (text[i] == 'A') {
    if (i + 3 >= text.size()) return false;
    switch (text[i + 1]) {
      case 'K':
      case 'S':
        return text[i + 2] == 'I' && text[i + 3] == 'A';
      case 'I':
        return text[i + 2] == 'z' && text[i + 3] == 'a';
      case 'c':
        return i >= 6 && absl::StartsWith(text.substr(i), "AccessKey=") &&
               text.substr(i - 6, 6) == "Shared";
      default:
        return false;
    }
  }
  if (i < 2) return false;
  const absl::string_view before = text.substr(0, i);
  switch (before.back()) {
    case 'k':
      return before[i - 2] == 's';
    case 't':
      return absl::EndsWith(before, "glpat") || absl::EndsWith(before, "gldt") ||
             absl::EndsWith(before, "glrt") || absl::EndsWith(before, "glptt");
    case 'i':
      return absl::EndsWith(before, "xai");
    case 'X':
      return absl::EndsWith(before, "GOCSPX");
    case 'x':
      return absl::EndsWith(before, "pplx");
    case 'K':
      return absl::EndsWith(before, "PMAK");
    default:
      return false;
  }
}

// Whether the ':' at `i` starts "://hooks.slack.com/" (SLACK_WEBHOOK_URL).
bool SlackWebhookAt(absl::string_view text, size_t i) {
  return absl::StartsWith(text.substr(i), "://hooks.slack.com/");
}

// Adds the byte at `i`, of class `k`, to `counts`. Branch-free for the common classes: a
// switch over the classes mispredicts on text that mixes digits, letters and punctuation.
inline void CountByte(absl::string_view text, size_t i, uint8_t k, ChunkCounts& counts) {
  counts.digits += k == kDigit;
  counts.dots += k == kDot;
  counts.colons += k == kColon;
  if (k == kColon) {
    counts.special = counts.special || SlackWebhookAt(text, i);
  } else if (k == kSpecial) {
    counts.special = true;
  } else if (k == kDash) {
    counts.special = counts.special || TokenPrefixAt(text, i);
    counts.pem_begin = counts.pem_begin || IsPemBeginAt(text, i);
  } else if (k == kCapitalA) {
    counts.special = counts.special || TokenPrefixAt(text, i);
  }
}

// What the chunk [begin, end) holds.
ChunkCounts CountChunk(absl::string_view text, size_t begin, size_t end) {
  ChunkCounts counts;
  for (size_t i = begin; i < end; ++i) CountByte(text, i, kByteClasses[At(text, i)], counts);
  return counts;
}

#if defined(__SSE2__)
// Which of the sixteen bytes are in [low, low + span].
inline __m128i InRange(__m128i bytes, char low, char span) {
  const __m128i shifted = _mm_sub_epi8(bytes, _mm_set1_epi8(low));
  return _mm_cmpeq_epi8(_mm_min_epu8(shifted, _mm_set1_epi8(span)), shifted);
}

inline unsigned Mask(__m128i bytes) { return static_cast<unsigned>(_mm_movemask_epi8(bytes)); }
// The bits set in a 16-bit mask (without a POPCNT target, __builtin_popcount is a call).
inline size_t CountOf(unsigned mask) {
  mask = mask - ((mask >> 1) & 0x5555u);
  mask = (mask & 0x3333u) + ((mask >> 2) & 0x3333u);
  mask = (mask + (mask >> 4)) & 0x0f0fu;
  return static_cast<size_t>((mask + (mask >> 8)) & 0x1fu);
}
#endif

// The end of the chunk that starts at `begin` (the first cut after it, or the end of the
// text), with what the chunk holds in `counts`: one pass for IsCut and CountChunk.
size_t CountChunkFrom(absl::string_view text, size_t begin, ChunkCounts& counts) {
  const size_t n = text.size();
  // Whether the byte at `i` is a cut; otherwise counts it.
  auto cut_or_count = [&](size_t i) {
    const uint8_t k = kByteClasses[At(text, i)];
    if (k == kOtherSpace || (k == kSpace && (i == 0 || !kSpaceJoiners[At(text, i - 1)]))) {
      return true;
    }
    CountByte(text, i, k, counts);
    return false;
  };
  size_t i = begin;
  if (i == 0 && i < n) {  // The vector loop reads the byte before.
    if (cut_or_count(i)) return i;
    ++i;
  }
#if defined(__SSE2__)
  // Sixteen bytes at a time, each with the byte before it (for the spaces): the counts of
  // the bytes before the first cut; '-' and 'A' are rare and go through CountByte.
  const char* const data = text.data();
  while (i + 16 <= n) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + i));
    const __m128i before = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + i - 1));
    const __m128i joiner_before =
        _mm_or_si128(_mm_or_si128(InRange(before, '0', 9), InRange(before, 'A', 25)),
                     _mm_cmpeq_epi8(before, _mm_set1_epi8(')')));
    const unsigned cuts = Mask(
        _mm_or_si128(InRange(bytes, '\t', '\r' - '\t'),
                     _mm_andnot_si128(joiner_before, _mm_cmpeq_epi8(bytes, _mm_set1_epi8(' ')))));
    const unsigned kept = cuts != 0 ? (1u << __builtin_ctz(cuts)) - 1 : 0xffffu;
    counts.digits += CountOf(Mask(InRange(bytes, '0', 9)) & kept);
    counts.dots += CountOf(Mask(_mm_cmpeq_epi8(bytes, _mm_set1_epi8('.'))) & kept);
    const unsigned colons = Mask(_mm_cmpeq_epi8(bytes, _mm_set1_epi8(':'))) & kept;
    counts.colons += CountOf(colons);
    for (unsigned c = colons; c != 0 && !counts.special; c &= c - 1) {
      counts.special = SlackWebhookAt(text, i + static_cast<size_t>(__builtin_ctz(c)));
    }
    if ((Mask(_mm_or_si128(_mm_cmpeq_epi8(bytes, _mm_set1_epi8('@')),
                           _mm_cmpeq_epi8(bytes, _mm_set1_epi8('_')))) &
         kept) != 0) {
      counts.special = true;
    }
    for (unsigned rare = Mask(_mm_or_si128(_mm_cmpeq_epi8(bytes, _mm_set1_epi8('-')),
                                           _mm_cmpeq_epi8(bytes, _mm_set1_epi8('A')))) &
                         kept;
         rare != 0; rare &= rare - 1) {
      const size_t at = i + static_cast<size_t>(__builtin_ctz(rare));
      CountByte(text, at, kByteClasses[At(text, at)], counts);
    }
    if (cuts != 0) return i + static_cast<size_t>(__builtin_ctz(cuts));
    i += 16;
  }
#endif
  for (; i < n; ++i) {
    if (cut_or_count(i)) return i;
  }
  return n;
}

// The most groups of an IBAN written in groups of four (34 characters at most), and the
// most bytes it takes so written.
constexpr int kMostIbanGroups = 9;
constexpr size_t kLongestGroupedIban = 34 + 8;

// Whether the byte at `space` is a space between a group of four [A-Za-z0-9] (a whole word)
// and a character of [A-Za-z0-9]: it may be inside a grouped IBAN.
bool JoinsGroups(absl::string_view text, size_t space) {
  if (space < 4 || space + 1 >= text.size() || text[space] != ' ' ||
      !absl::ascii_isalnum(At(text, space + 1)) ||
      (space >= 5 && absl::ascii_isalnum(At(text, space - 5)))) {
    return false;
  }
  for (size_t k = 1; k <= 4; ++k) {
    if (!absl::ascii_isalnum(At(text, space - k))) return false;
  }
  return true;
}

// The start of the grouped IBAN that the space at `space` (JoinsGroups) may be inside: going
// back over groups of four [A-Za-z0-9], one space apart, the first that is a whole word of
// two letters and two digits (a country code and check digits), at most kMostIbanGroups
// groups back; npos when there is none.
size_t GroupedIbanStart(absl::string_view text, size_t space) {
  for (int g = 0; g < kMostIbanGroups && space >= 4 && text[space] == ' '; ++g) {
    const size_t group = space - 4;
    for (size_t k = group; k < space; ++k) {
      if (!absl::ascii_isalnum(At(text, k))) return absl::string_view::npos;
    }
    if (group > 0 && absl::ascii_isalnum(At(text, group - 1))) return absl::string_view::npos;
    if (absl::ascii_isalpha(At(text, group)) && absl::ascii_isalpha(At(text, group + 1)) &&
        IsDigit(At(text, group + 2)) && IsDigit(At(text, group + 3))) {
      return group;
    }
    if (group == 0) break;
    space = group - 1;
  }
  return absl::string_view::npos;
}

// The shortest line of a machine-readable zone (IDENTITY_DOCUMENT_MRZ: a TD1's), and the
// fewest digits of its data line (two dates and their check digits, a composite check).
constexpr size_t kShortestMrzLine = 30;
constexpr size_t kFewestMrzDataDigits = 13;

// Whether the chunk [begin, end), holding `digits` digits, may be a data line of a
// machine-readable zone: it holds kFewestMrzDataDigits and a run of kShortestMrzLine or more of
// [A-Z0-9<] (every other line of a zone is next to one).
bool MayHoldMrzDataLine(absl::string_view text, size_t begin, size_t end, size_t digits) {
  if (digits < kFewestMrzDataDigits || end - begin < kShortestMrzLine) return false;
  auto in_line = [&](size_t i) {
    const unsigned char c = At(text, i);
    return absl::ascii_isupper(c) || IsDigit(c) || c == '<';
  };
  // A run ending at `last` or later: when the byte at `last` is in none, none can hold it,
  // and the next candidate ends a run's length further on.
  for (size_t last = begin + kShortestMrzLine - 1; last < end;) {
    if (!in_line(last)) {
      last += kShortestMrzLine;
      continue;
    }
    size_t first = last;
    while (first > begin && last - first + 1 < kShortestMrzLine && in_line(first - 1)) --first;
    if (last - first + 1 >= kShortestMrzLine) return true;
    last = first + kShortestMrzLine - 1;  // The run from `first` is too short up to `last`.
  }
  return false;
}

bool IsIndent(unsigned char c) { return c == ' ' || c == '\t'; }

// Whether a line break ends at `at` (exclusive), and its length: "\n", "\r\n", or a JSON
// string's two characters "\n"; 0 when none does.
size_t LineBreakBefore(absl::string_view text, size_t at) {
  if (at >= 1 && text[at - 1] == '\n') return at >= 2 && text[at - 2] == '\r' ? 2 : 1;
  return at >= 2 && text[at - 2] == '\\' && text[at - 1] == 'n' ? 2 : 0;
}

// Consumes a line break at `at`: "\n", "\r\n", or a JSON string's "\n" or "\r\n".
bool ConsumeLineBreak(absl::string_view text, size_t& at) {
  const absl::string_view rest = text.substr(at);
  for (absl::string_view line_break : {"\n", "\r\n", "\\n", "\\r\\n"}) {
    if (absl::StartsWith(rest, line_break)) {
      at += line_break.size();
      return true;
    }
  }
  return false;
}

// The start of the chunk that ends the line before the chunk at `begin`: past its
// indentation, a line break (which a JSON string's may open the chunk with) with the spaces
// before it, and one blank line; `begin` when no line break comes first. Looking back from
// the first chunk of each line only, a scan reads each byte here once.
size_t ChunkOnLineBefore(absl::string_view text, size_t begin) {
  size_t b = begin;
  size_t opening = begin;  // A chunk starts after a cut: only a JSON string's break opens one.
  const bool opens_with_break = ConsumeLineBreak(text, opening);
  if (opens_with_break) {
    while (b > 0 && IsIndent(At(text, b - 1))) --b;
  }
  bool found = opens_with_break;
  for (int line = found ? 1 : 0; line < 2; ++line) {  // A line break, and a blank line's.
    size_t c = b;
    while (c > 0 && IsIndent(At(text, c - 1))) --c;
    const size_t line_break = LineBreakBefore(text, c);
    if (line_break == 0) break;
    c -= line_break;
    while (c > 0 && IsIndent(At(text, c - 1))) --c;
    b = c;
    found = true;
  }
  if (!found) return begin;
  while (b > 0 && !IsCut(text, b - 1)) --b;
  return b;
}

// The end of the chunk that starts the line after the chunk ending at `end`: past the spaces
// and a line break after it (or a JSON string's that ends the chunk), one blank line and the
// next line's indentation; `end` when no line break comes first.
size_t ChunkOnLineAfter(absl::string_view text, size_t end) {
  const size_t n = text.size();
  size_t e = end;
  if (LineBreakBefore(text, end) == 0) {
    while (e < n && IsIndent(At(text, e))) ++e;
    if (!ConsumeLineBreak(text, e)) return end;
  }
  size_t blank = e;
  while (blank < n && IsIndent(At(text, blank))) ++blank;
  if (ConsumeLineBreak(text, blank)) e = blank;
  while (e < n && IsIndent(At(text, e))) ++e;
  while (e < n && !IsCut(text, e)) ++e;
  return e;
}

// Adds the region of the kept chunk [begin, end) holding a data line of a machine-readable
// zone: the zone's other lines (the one before, and a TD1's after) and the byte before
// and after them, which its pattern looks at; the regions it reaches back into merge with it.
void AddZoneRegion(std::vector<Region>& regions, absl::string_view text, size_t begin, size_t end) {
  Region zone{ChunkOnLineBefore(text, begin),
              std::min(text.size(), ChunkOnLineAfter(text, end) + 1)};
  if (zone.begin > 0) --zone.begin;
  while (!regions.empty() && zone.begin <= regions.back().end + kRegionMergeGap) {
    zone.begin = std::min(zone.begin, regions.back().begin);
    zone.end = std::max(zone.end, regions.back().end);
    regions.pop_back();
  }
  regions.push_back(zone);
}

// The chunks that can hold a built-in finding, merged into regions made of whole chunks (but
// for a machine-readable zone's, AddZoneRegion), in order. The scan skips to the next trigger
// byte and looks only at the chunk around it, and never goes back before a chunk it has
// decided (but for the groups of a lowercase IBAN, never before the last region, and a zone's
// line before), so it reads each byte a few times at most.
std::vector<Region> TriggerRegions(absl::string_view text) {
  const size_t n = text.size();
  std::vector<Region> regions;
  size_t done = 0;  // Chunks before this are decided; it starts a chunk.
  // Whether "-----BEGIN " occurs: the scan looks at every '-' (a trigger byte, or counted in
  // its chunk).
  bool pem_begin = false;
  const unsigned char* const data = reinterpret_cast<const unsigned char*>(text.data());
  size_t i = 0;
  while (true) {
    i = SkipToTrigger(data, i, n);
    if (i >= n) break;
    // A dash or an 'A' matters only in a token's prefix.
    if ((data[i] == '-' || data[i] == 'A') && !TokenPrefixAt(text, i)) {
      pem_begin = pem_begin || (data[i] == '-' && IsPemBeginAt(text, i));
      ++i;
      continue;
    }
    size_t begin = i;
    while (begin > done && !IsCut(text, begin - 1)) --begin;
    // No byte in [begin, i] is a cut, so the chunk's end is the first cut from there.
    ChunkCounts counts;
    size_t end = CountChunkFrom(text, begin, counts);
    pem_begin = pem_begin || counts.pem_begin;
    bool keep = MayHoldFinding(end - begin, counts);
    // A grouped IBAN in lowercase is cut where a group ends in a letter ("gb82 west 1234
    // 5698 7654 32"): a chunk inside one takes in the chunks of its groups, before and after.
    if (JoinsGroups(text, end)) {
      const size_t start = GroupedIbanStart(text, end);
      if (start != absl::string_view::npos) {
        while (end < start + kLongestGroupedIban && JoinsGroups(text, end)) {
          ++end;
          while (end < n && !IsCut(text, end)) {
            pem_begin = pem_begin || IsPemBeginAt(text, end);
            ++end;
          }
        }
        keep = true;
      }
    }
    if (keep && MayHoldMrzDataLine(text, begin, end, counts.digits)) {
      AddZoneRegion(regions, text, begin, end);
    } else if (keep) {
      const size_t floor = regions.empty() ? 0 : regions.back().end;
      if (begin > floor && JoinsGroups(text, begin - 1)) {
        const size_t start = GroupedIbanStart(text, begin - 1);
        if (start != absl::string_view::npos) {
          begin = std::max(floor, start);
          while (begin > floor && !IsCut(text, begin - 1)) --begin;
        }
      }
      AddRegion(regions, begin, end);
    }
    done = i = end + 1;
  }

  // A PEM block crosses chunks: from its "-----BEGIN " over the next kMaxPemBlockBytes,
  // widened to whole chunks.
  if (!pem_begin) return regions;
  std::vector<Region> pem;
  for (size_t at = text.find(kPemBegin); at != absl::string_view::npos;
       at = text.find(kPemBegin, at + 1)) {
    const size_t covered = pem.empty() ? 0 : pem.back().end;
    size_t end = std::min(n, at + kMaxPemBlockBytes);
    if (!pem.empty() && end <= covered) continue;
    // Each byte is crossed at most once by the two loops over all blocks.
    size_t begin = at;
    while (begin > covered && !IsCut(text, begin - 1)) --begin;
    while (end < n && !IsCut(text, end)) ++end;
    pem.push_back(Region{begin, end});
  }
  if (pem.empty()) return regions;
  std::vector<Region> all = std::move(regions);
  all.insert(all.end(), pem.begin(), pem.end());
  std::sort(all.begin(), all.end(),
            [](const Region& a, const Region& b) { return a.begin < b.begin; });
  std::vector<Region> merged;
  for (const Region& r : all) AddRegion(merged, r.begin, r.end);
  return merged;
}

// The last bytes of kSecretSettingNames, kSecretKeyNames' "key", kSecretSettingWord,
// kCredentialHeaderNames and kEncodedCredentialNames, either case.
constexpr std::array<bool, 256> MakeSettingNameEnds() {
  std::array<bool, 256> ends{};
  auto add = [&ends](absl::string_view name) {
    ends[static_cast<unsigned char>(name.back())] = true;
    ends[static_cast<unsigned char>(name.back() - 'a' + 'A')] = true;
  };
  for (absl::string_view name : kSecretSettingNames) add(name);
  add("key");
  add(kSecretSettingWord);
  for (absl::string_view name : kCredentialHeaderNames) add(name);
  for (absl::string_view name : kEncodedCredentialNames) add(name);
  return ends;
}
constexpr std::array<bool, 256> kSettingNameEnds = MakeSettingNameEnds();

// The first byte at or after `i` that may end a setting's name, or `n`: ':', '=', ',', '>'
// (an XML element's opening tag), or the first '-' of "--" (a long option).
size_t SkipToSettingSeparator(const unsigned char* data, size_t i, size_t n) {
#if defined(__SSE2__)
  while (i + 17 <= n) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + i));
    // And a '-' whose next byte is one too.
    const __m128i next = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + i + 1));
    const __m128i dash = _mm_set1_epi8('-');
    const __m128i marks =
        _mm_or_si128(_mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(bytes, _mm_set1_epi8(':')),
                                               _mm_cmpeq_epi8(bytes, _mm_set1_epi8('='))),
                                  _mm_or_si128(_mm_cmpeq_epi8(bytes, _mm_set1_epi8(',')),
                                               _mm_cmpeq_epi8(bytes, _mm_set1_epi8('>')))),
                     _mm_and_si128(_mm_cmpeq_epi8(bytes, dash), _mm_cmpeq_epi8(next, dash)));
    const int mask = _mm_movemask_epi8(marks);
    if (mask != 0) return i + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
    i += 16;
  }
#endif
  while (i < n && data[i] != ':' && data[i] != '=' && data[i] != ',' && data[i] != '>' &&
         !(data[i] == '-' && i + 1 < n && data[i + 1] == '-')) {
    ++i;
  }
  return i;
}

// The first byte of the character holding the byte at `i`.
size_t CharacterStart(absl::string_view text, size_t i) {
  while (i > 0 && IsContinuationByte(At(text, i))) --i;
  return i;
}

// Where a name ending at `name_end` in one of kSecretSettingNames or kSecretKeyNames and
// "key" (any case) starts, or where the character before kSecretSettingWord starts when the
// name ends in the word where it starts a word (the recognizers' patterns match that
// character), or 0 at the text's start; npos when the name ends in none. The earliest of them.
size_t SecretNameBegin(absl::string_view text, size_t name_end) {
  size_t begin = absl::string_view::npos;
  auto ends_in = [&](absl::string_view name, size_t end) {
    if (end >= name.size() && EqualsIgnoreCase(text, end - name.size(), name)) {
      begin = std::min(begin, end - name.size());
    }
  };
  for (absl::string_view name : kSecretSettingNames) ends_in(name, name_end);
  if (name_end >= 3 && EqualsIgnoreCase(text, name_end - 3, "key")) {
    size_t stem_end = name_end - 3;
    if (stem_end > 0 && (text[stem_end - 1] == '_' || text[stem_end - 1] == '-')) --stem_end;
    for (absl::string_view name : kSecretKeyNames) ends_in(name, stem_end);
  }
  const size_t length = kSecretSettingWord.size();
  if (name_end < length || !EqualsIgnoreCase(text, name_end - length, kSecretSettingWord)) {
    return begin;
  }
  const size_t word = name_end - length;
  if (word == 0) return 0;
  const unsigned char before = At(text, word - 1);
  if (!absl::ascii_isalpha(before)) return std::min(begin, CharacterStart(text, word - 1));
  // "Pass" after a lowercase letter.
  if (absl::ascii_islower(before) && text[word] == absl::ascii_toupper(kSecretSettingWord[0]) &&
      text.substr(word + 1, length - 1) == kSecretSettingWord.substr(1)) {
    return std::min(begin, word - 1);
  }
  return begin;
}

bool IsSpaceOrTab(char c) { return c == ' ' || c == '\t'; }

// RE2's \s: ' ', '\t', '\n', '\f', '\r' (not '\v').
constexpr std::array<bool, 256> MakeRe2Spaces() {
  std::array<bool, 256> spaces{};
  for (unsigned char c : absl::string_view(" \t\n\f\r")) spaces[c] = true;
  return spaces;
}
constexpr std::array<bool, 256> kRe2Spaces = MakeRe2Spaces();

bool IsRe2Space(char c) { return kRe2Spaces[static_cast<unsigned char>(c)]; }

// Whether a long option may start after the byte before `i`: at the text's or a line's start,
// or after a space or tab (the recognizers' "(?:(?m:^)|[ \t])").
bool OptionMayStartAt(absl::string_view text, size_t i) {
  return i == 0 || IsSpaceOrTab(text[i - 1]) || text[i - 1] == '\n';
}

// A typed declaration's type (`&str`, `string`, `Option<String>`, `List[str]`) after a name's
// ':': its first byte, and the others.
bool IsTypeStart(unsigned char c) {
  return absl::ascii_isalpha(c) || c == '_' || c == '&' || c == '\'';
}
bool IsTypeByte(unsigned char c) {
  return absl::ascii_isalnum(c) ||
         absl::string_view("_<>&'[].:").find(static_cast<char>(c)) != absl::string_view::npos;
}

// The start of the long option "--NAME" at `dash` (its first '-', with the byte before it)
// whose NAME ends in a secret's name and is followed by a space or tab; npos otherwise. Sets
// `value` to where the value after the spaces starts.
size_t OptionBegin(absl::string_view text, size_t dash, size_t& value) {
  if (!OptionMayStartAt(text, dash)) return absl::string_view::npos;
  size_t name_end = dash + 2;
  while (name_end < text.size() &&
         (absl::ascii_isalnum(At(text, name_end)) || text[name_end] == '_' ||
          text[name_end] == '.' || text[name_end] == '-')) {
    ++name_end;
  }
  if (name_end == text.size() || !IsSpaceOrTab(text[name_end]) ||
      !kSettingNameEnds[At(text, name_end - 1)]) {
    return absl::string_view::npos;
  }
  const size_t name = SecretNameBegin(text, name_end);
  if (name == absl::string_view::npos || name <= dash) return absl::string_view::npos;
  value = name_end;
  while (value < text.size() && IsSpaceOrTab(text[value])) ++value;
  return dash == 0 ? 0 : dash - 1;
}

// [A-Za-z0-9_.:-]: a byte of the XML names the recognizers look at.
bool IsXmlNameByte(unsigned char c) {
  return absl::ascii_isalnum(c) || c == '_' || c == '.' || c == ':' || c == '-';
}

// The start of the XML element's opening tag "<NAME>" whose '>' is at `close` and whose NAME
// ends in a secret's name; npos otherwise.
size_t ElementBegin(absl::string_view text, size_t close) {
  if (close == 0 || !kSettingNameEnds[At(text, close - 1)]) return absl::string_view::npos;
  const size_t name = SecretNameBegin(text, close);
  if (name == absl::string_view::npos) return absl::string_view::npos;
  size_t open = close;
  while (open > 0 && IsXmlNameByte(At(text, open - 1))) --open;
  if (open == 0 || text[open - 1] != '<' || name + 1 < open) return absl::string_view::npos;
  return open - 1;
}

// The start of the XML attribute pair `key="NAME" value` or `name="NAME" value` (either case)
// whose "value" ends at `value_end` and whose NAME ends in a secret's name; npos otherwise.
size_t AttributePairBegin(absl::string_view text, size_t value_end) {
  constexpr absl::string_view kValue = "value";
  if (value_end < kValue.size() || !EqualsIgnoreCase(text, value_end - kValue.size(), kValue)) {
    return absl::string_view::npos;
  }
  size_t quote = value_end - kValue.size();
  const size_t spaces_end = quote;
  while (quote > 0 && IsSpaceOrTab(text[quote - 1])) --quote;
  if (quote == spaces_end || quote == 0 || (text[quote - 1] != '"' && text[quote - 1] != '\'')) {
    return absl::string_view::npos;
  }
  const size_t name_end = quote - 1;
  size_t open = name_end;  // After the opening quote.
  while (open > 0 && IsXmlNameByte(At(text, open - 1))) --open;
  if (open < 2 || (text[open - 1] != '"' && text[open - 1] != '\'') || text[open - 2] != '=') {
    return absl::string_view::npos;
  }
  const size_t name = SecretNameBegin(text, name_end);
  if (name == absl::string_view::npos || name + 1 < open) return absl::string_view::npos;
  const size_t equals = open - 2;
  size_t begin;
  if (equals >= 3 && EqualsIgnoreCase(text, equals - 3, "key")) {
    begin = equals - 3;
  } else if (equals >= 4 && EqualsIgnoreCase(text, equals - 4, "name")) {
    begin = equals - 4;
  } else {
    return absl::string_view::npos;
  }
  if (begin > 0 && IsWordByte(At(text, begin - 1))) return absl::string_view::npos;  // \b
  return begin;
}

// The start of curl's user option ("-u user:", "--user 'user:", "--user=user:", at a line's
// start or after a space or tab, with the byte before it) whose user ends at the ':' at
// `colon`; npos otherwise.
size_t CommandLineUserBegin(absl::string_view text, size_t colon) {
  // A password follows (prose's "Note: " holds none).
  if (colon + 1 == text.size() || IsRe2Space(text[colon + 1])) return absl::string_view::npos;
  size_t user = colon;
  while (user > 0 && !IsRe2Space(text[user - 1]) &&
         absl::string_view(":\"'").find(text[user - 1]) == absl::string_view::npos) {
    --user;
  }
  if (user == colon) return absl::string_view::npos;
  constexpr absl::string_view kLong = "--user";
  // "--user=name" is one run.
  if (text.substr(user, colon - user).size() > kLong.size() + 1 &&
      text.substr(user, kLong.size()) == kLong && text[user + kLong.size()] == '=') {
    return OptionMayStartAt(text, user) ? (user == 0 ? 0 : user - 1) : absl::string_view::npos;
  }
  if (user == 0) return absl::string_view::npos;
  size_t end = user;  // Of the option and what separates it from the user.
  if (text[end - 1] == '"' || text[end - 1] == '\'') --end;
  size_t option;
  if (end > 0 && text[end - 1] == '=') {
    if (end - 1 < kLong.size() || text.substr(end - 1 - kLong.size(), kLong.size()) != kLong) {
      return absl::string_view::npos;
    }
    option = end - 1 - kLong.size();
  } else {
    size_t spaces = end;
    while (spaces > 0 && IsSpaceOrTab(text[spaces - 1])) --spaces;
    if (spaces == end) return absl::string_view::npos;
    if (spaces >= kLong.size() && text.substr(spaces - kLong.size(), kLong.size()) == kLong) {
      option = spaces - kLong.size();
    } else if (spaces >= 2 && text.substr(spaces - 2, 2) == "-u") {
      option = spaces - 2;
    } else {
      return absl::string_view::npos;
    }
  }
  if (!OptionMayStartAt(text, option)) return absl::string_view::npos;
  return option == 0 ? 0 : option - 1;
}

// The regions NamedSecretRecognizers run on, in order, each from the start of what the
// recognizers match before the value (a name, an option, a tag) to the first whitespace (RE2's
// \s) after the value's start:
// - "NAME[quote][]][ \t]*(:|=|:=|=>)[ \t]*VALUE" or "NAME quote[ \t]*,[ \t]*VALUE" (a call's
//   arguments) whose NAME ends in a secret's name (SecretNameBegin) or in one of
//   kEncodedCredentialNames; those whose NAME ends in one of kCredentialHeaderNames, whose
//   VALUE is "[[ or {][ \t]*][quote]SCHEME[ \t]+" and the credentials;
// - an XML element "<NAME>VALUE", an attribute pair `key="NAME" value=VALUE` (ElementBegin,
//   AttributePairBegin), a long option "--NAME VALUE" (OptionBegin) whose NAME ends in a
//   secret's name, and curl's "-u USER:VALUE" (CommandLineUserBegin).
// The recognizers' values hold no such whitespace, so a region holds every match the whole
// text would give them there, however long. A separator is looked at with the bytes before it
// only (but for an option's name), and each run up to a whitespace is read once.
std::vector<Region> NamedSettingRegions(absl::string_view text) {
  std::vector<Region> regions;
  const size_t n = text.size();
  const unsigned char* const data = reinterpret_cast<const unsigned char*>(text.data());
  // The first whitespace at or after `from` (RE2's \s: not '\v', which values may hold).
  // Values start further on as the separators do (but after a header's scheme), so the last
  // answer usually serves: no run is read twice.
  size_t asked_from = n + 1;
  size_t space = n;
  auto first_space = [&](size_t from) {
    if (from < asked_from || from > space) {
      space = from;
      while (space < n && !IsRe2Space(text[space])) ++space;
    }
    asked_from = from;
    return space;
  };
  for (size_t p = SkipToSettingSeparator(data, 0, n); p < n;
       p = SkipToSettingSeparator(data, p + 1, n)) {
    if (text[p] == '-') {  // "--".
      size_t value = 0;
      const size_t begin = OptionBegin(text, p, value);
      if (begin != absl::string_view::npos) AddRegion(regions, begin, first_space(value));
      continue;
    }
    if (text[p] == '>') {
      const size_t begin = ElementBegin(text, p);
      if (begin != absl::string_view::npos) AddRegion(regions, begin, first_space(p + 1));
      continue;
    }
    size_t value = p + 1;
    if (text[p] == '=') {
      // Not a comparison ("==", "!=", "<=", ">="), but "=>" is a PHP array's separator.
      if (value < n && text[value] == '=') {
        ++p;
        continue;
      }
      if (p > 0 && absl::string_view("=!<>:").find(text[p - 1]) != absl::string_view::npos) {
        continue;
      }
      if (value < n && text[value] == '>') ++value;
    } else if (text[p] == ':' && value < n && text[value] == '=') {
      ++value;  // Go's and Pascal's ":=".
    }
    size_t name_end = p;
    while (name_end > 0 && IsSpaceOrTab(text[name_end - 1])) --name_end;
    auto quote_before = [&] {
      return name_end > 0 && (text[name_end - 1] == '"' || text[name_end - 1] == '\'');
    };
    if (text[p] == ',') {  // The name quoted, as a call's first argument.
      if (!quote_before()) continue;
      --name_end;
    } else {
      if (name_end > 0 && text[name_end - 1] == ']') --name_end;  // A subscript's.
      if (quote_before()) --name_end;
      if (name_end > 0 && text[name_end - 1] == '\\') --name_end;  // JSON in a string: \"name\".
    }
    size_t name_begin = absl::string_view::npos;
    bool header = false;
    if (name_end > 0 && kSettingNameEnds[At(text, name_end - 1)]) {
      auto match_names = [&](auto& names) {
        bool matched = false;
        for (absl::string_view name : names) {
          if (name_end >= name.size() && EqualsIgnoreCase(text, name_end - name.size(), name)) {
            name_begin = std::min(name_begin, name_end - name.size());
            matched = true;
          }
        }
        return matched;
      };
      name_begin = SecretNameBegin(text, name_end);
      match_names(kEncodedCredentialNames);
      header = match_names(kCredentialHeaderNames);
    }
    // curl's user, whatever its name ("-u token:..." is also a setting).
    const size_t user = text[p] == ':' ? CommandLineUserBegin(text, p) : absl::string_view::npos;
    if (user != absl::string_view::npos) AddRegion(regions, user, first_space(value));
    if (name_begin == absl::string_view::npos) {
      if (text[p] == '=' && name_end == p) {
        const size_t begin = AttributePairBegin(text, name_end);
        if (begin != absl::string_view::npos) AddRegion(regions, begin, first_space(value));
      }
      continue;
    }
    while (value < n && IsSpaceOrTab(text[value])) ++value;
    if (text[p] == ':' && value < n && IsTypeStart(At(text, value))) {
      // Perhaps a typed declaration's type, '=' and the value after them.
      size_t equals = value + 1;
      while (equals < n && IsTypeByte(At(text, equals))) ++equals;
      while (equals < n && IsSpaceOrTab(text[equals])) ++equals;
      if (equals < n && text[equals] == '=') {
        value = equals + 1;
        while (value < n && IsSpaceOrTab(text[value])) ++value;
      }
    }
    if (header) {  // A list's bracket, the quote, the scheme and the spaces before the credentials.
      if (value < n && (text[value] == '[' || text[value] == '{')) {
        ++value;
        while (value < n && IsSpaceOrTab(text[value])) ++value;
      }
      if (value < n && (text[value] == '"' || text[value] == '\'' || text[value] == '`')) ++value;
      while (value < n && absl::ascii_isalpha(At(text, value))) ++value;
      while (value < n && IsSpaceOrTab(text[value])) ++value;
    }
    AddRegion(regions, name_begin, first_space(value));
  }
  return regions;
}

// kExcluded: after one of the recognizer's excluded prefixes, and so is every match that
// starts inside it ("https://ines.mueller@host": nor is "mueller@host" an address).
enum class Verdict { kAccepted, kGluedLeft, kExcluded, kRejected };

}  // namespace

struct Detector::ScanScratch {
  TableMemo table;
  // Per recognizer: the end of the first whole context word in the text; kUnknown until
  // looked for, npos when there is none.
  static constexpr size_t kUnknown = absl::string_view::npos - 1;
  std::vector<size_t> first_context_end;
  // Per recognizer: the end of its last finding so far in the text, npos before the first
  // (a list's next item may need no context word: see Extract).
  std::vector<size_t> last_finding_end;
};

Detector::Detector() = default;
Detector::~Detector() = default;

absl::StatusOr<std::unique_ptr<Detector>> Detector::Create(std::vector<RecognizerSpec> custom,
                                                           DetectorOptions options) {
  if (options.max_regex_memory_bytes <= 0) {
    return absl::InvalidArgumentError("max_regex_memory_bytes must be positive");
  }
  std::unique_ptr<Detector> detector(new Detector());
  detector->trigger_prefilter_ = options.trigger_prefilter;
  // The built-ins the trigger prefilter serves, those that run on named settings
  // (NamedSecretRecognizers), then the custom ones.
  std::vector<RecognizerSpec> specs = BuiltinRecognizers();
  const size_t trigger_count = specs.size();
  for (RecognizerSpec& spec : NamedSecretRecognizers()) specs.push_back(std::move(spec));
  const size_t custom_begin = specs.size();
  for (RecognizerSpec& spec : custom) specs.push_back(std::move(spec));

  const int64_t set_budget = options.max_regex_memory_bytes / 4;
  const int64_t regex_budget =
      options.max_regex_memory_bytes / 2 / static_cast<int64_t>(specs.size());
  absl::flat_hash_set<std::string> names;
  for (size_t i = 0; i < specs.size(); ++i) {
    RecognizerSpec& spec = specs[i];
    const std::string who = absl::StrCat("recognizer '", spec.name, "'");
    if (absl::Status checked = CheckRecognizerSpec(spec); !checked.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(who, ": ", checked.message()));
    }
    if (!names.insert(spec.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(who, ": name: duplicate name (another recognizer or a built-in has it)"));
    }
    RE2::Options re_options;
    re_options.set_log_errors(false);
    re_options.set_max_mem(regex_budget);
    auto regex = std::make_unique<RE2>(spec.pattern, re_options);
    if (!regex->ok()) {
      if (regex->error_code() == RE2::ErrorPatternTooLarge) {
        return absl::InvalidArgumentError(
            absl::StrCat(who, ": pattern: over its share of the memory budget (", regex_budget,
                         " bytes of ", options.max_regex_memory_bytes, ")"));
      }
      return absl::InvalidArgumentError(absl::StrCat(who, ": pattern: invalid RE2 pattern '",
                                                     spec.pattern, "': ", regex->error()));
    }
    for (std::string& prefix : spec.excluded_prefixes) prefix = absl::AsciiStrToLower(prefix);
    Recognizer recognizer;
    recognizer.validator = spec.validator.empty() ? nullptr : FindValidator(spec.validator);
    recognizer.min_finding_bytes = MinAcceptedBytes(recognizer.validator);
    recognizer.whole_token = ChecksWholeTokens(recognizer.validator);
    recognizer.groups = regex->NumberOfCapturingGroups();
    recognizer.context = ContextWords(spec.context_words);
    recognizer.excluded_context = ContextWords(spec.excluded_context);
    if (std::string min, max;
        regex->PossibleMatchRange(&min, &max, 1) && !min.empty() && !max.empty()) {
      recognizer.first_byte_low = static_cast<unsigned char>(min[0]);
      recognizer.first_byte_high = static_cast<unsigned char>(max[0]);
    }
    recognizer.needs_trigger = i < trigger_count && spec.entity_type != "PRIVATE_KEY";
    recognizer.regex = std::move(regex);
    recognizer.spec = std::move(spec);
    detector->recognizers_.push_back(std::move(recognizer));
  }

  // The sets: one of the built-ins, one of the custom recognizers.
  auto build_set = [&](size_t first, size_t last,
                       absl::string_view what) -> absl::StatusOr<std::unique_ptr<PatternSet>> {
    RE2::Options set_options;
    set_options.set_log_errors(false);
    set_options.set_max_mem(set_budget);
    auto set = std::make_unique<PatternSet>();
    set->set = std::make_unique<RE2::Set>(set_options, RE2::UNANCHORED);
    for (size_t i = first; i < last; ++i) {
      std::string error;
      if (set->set->Add(detector->recognizers_[i].spec.pattern, &error) < 0) {
        return absl::InvalidArgumentError(absl::StrCat("recognizer '",
                                                       detector->recognizers_[i].spec.name,
                                                       "': pattern: invalid RE2 pattern: ", error));
      }
      set->recognizer_of.push_back(i);
    }
    if (!set->set->Compile()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the ", what, " recognizers together are over their share of the memory budget (",
          set_budget, " bytes of ", options.max_regex_memory_bytes, ")"));
    }
    return set;
  };
  absl::StatusOr<std::unique_ptr<PatternSet>> builtin_set = build_set(0, trigger_count, "built-in");
  if (!builtin_set.ok()) return builtin_set.status();
  detector->builtin_set_ = std::move(*builtin_set);
  if (specs.size() > custom_begin) {
    absl::StatusOr<std::unique_ptr<PatternSet>> custom_set =
        build_set(custom_begin, specs.size(), "custom");
    if (!custom_set.ok()) return custom_set.status();
    detector->custom_set_ = std::move(*custom_set);
    // The custom patterns' prefilter: the literals each needs, lower-cased.
    auto gate = std::make_unique<CustomGate>();
    gate->filter = std::make_unique<re2::FilteredRE2>(kMinPrefilterAtomBytes);
    RE2::Options filter_options;
    filter_options.set_log_errors(false);
    // Compiled, never run: a program, no DFA cache.
    filter_options.set_max_mem(regex_budget / kPrefilterBudgetDivisor);
    for (size_t i = custom_begin; i < specs.size() && gate->filter != nullptr; ++i) {
      int id = 0;
      if (gate->filter->Add(detector->recognizers_[i].spec.pattern, filter_options, &id) !=
          RE2::NoError) {
        gate->filter.reset();
      }
    }
    if (gate->filter != nullptr) {
      std::vector<std::string> atoms;
      gate->filter->Compile(&atoms);
      std::vector<std::string> ascii;
      for (size_t a = 0; a < atoms.size(); ++a) {
        const bool is_ascii = std::all_of(atoms[a].begin(), atoms[a].end(),
                                          [](char c) { return absl::ascii_isascii(c); });
        if (is_ascii && ascii.size() < 64) {
          ascii.push_back(atoms[a]);
          gate->atom_of_word.push_back(static_cast<int>(a));
          if (atoms[a].find_first_of("ks") != std::string::npos) {
            gate->folds_beyond_ascii.push_back(static_cast<int>(a));
          }
        } else {
          gate->always_found.push_back(static_cast<int>(a));
        }
      }
      gate->atoms = ContextWords(ascii);
    }
    detector->custom_gate_ = std::move(gate);
  }
  detector->trigger_count_ = trigger_count;
  detector->custom_begin_ = custom_begin;

  for (const Recognizer& r : detector->recognizers_) {
    detector->entity_types_.push_back(r.spec.entity_type);
  }
  std::sort(detector->entity_types_.begin(), detector->entity_types_.end());
  detector->entity_types_.erase(
      std::unique(detector->entity_types_.begin(), detector->entity_types_.end()),
      detector->entity_types_.end());
  return detector;
}

std::vector<std::string> Detector::EntityTypes() const { return entity_types_; }

bool Detector::KnowsEntityType(absl::string_view type) const {
  return std::binary_search(entity_types_.begin(), entity_types_.end(), type);
}

// Whether the value [begin, end) of a match of `recognizer` is a finding, and its score.
bool Detector::HasContext(const Recognizer& recognizer, absl::string_view text, size_t begin,
                          size_t end, ScanScratch& scratch) const {
  const ContextWords& context = recognizer.context;
  const size_t digits = DigitsIn(text, begin, end);
  if (HasContextWordBefore(text, begin, digits, context) ||
      HasContextWordAfter(text, end, digits, context)) {
    return true;
  }
  size_t field_begin = 0, field_end = 0;
  return HeaderField(text, begin, end, scratch.table, field_begin, field_end) &&
         HasContextWord(text, field_begin, 0, field_end, context);
}

bool Detector::Accept(const Recognizer& recognizer, absl::string_view text, size_t begin,
                      size_t end, bool next_in_list, ScanScratch& scratch, double& score) const {
  const RecognizerSpec& spec = recognizer.spec;
  if (!spec.excluded_context.empty()) {
    const size_t window = ContextWindowBegin(begin);
    if (FoundWords(text.substr(window, begin - window), recognizer.excluded_context) != 0) {
      return false;
    }
  }
  if (recognizer.validator != nullptr && !recognizer.validator(text.substr(begin, end - begin))) {
    return false;
  }
  score = spec.score;
  if (!spec.context_words.empty()) {
    const bool context = HasContext(recognizer, text, begin, end, scratch);
    if (spec.context_required) {
      if (!context && !next_in_list) return false;
    } else if (context) {
      score = std::min(1.0, score + kContextBoost);
    }
  }
  return true;
}

void Detector::Extract(const Recognizer& recognizer, absl::string_view text, size_t region_begin,
                       size_t region_end, ScanScratch& scratch, std::vector<Candidate>& out) const {
  // No match in the region can have its required context: save the searches. The context
  // lies in the windows around the region, or in a table header before its end.
  const size_t index = static_cast<size_t>(&recognizer - recognizers_.data());
  // A built-in recognizer that requires context and checks its values also takes a value
  // right after one of its findings, in a list ("NI numbers: PX501233D, HT402985A and
  // KC661903A"), whatever region the finding was in.
  size_t& last_end = scratch.last_finding_end[index];
  const bool lists =
      recognizer.spec.context_required && index < trigger_count_ && recognizer.validator != nullptr;
  const bool list_goes_on = lists && last_end != absl::string_view::npos &&
                            region_begin <= last_end + kMostListSeparatorBytes;
  if (recognizer.spec.context_required && !list_goes_on &&
      !HasContextWord(text, 0, ContextWindowBegin(region_begin),
                      std::min(text.size(), region_end + kContextAfterBytes), recognizer.context)) {
    if (!MayHoldField(text, region_begin, region_end)) return;
    size_t& first = scratch.first_context_end[index];
    if (first == ScanScratch::kUnknown) {
      first = FindContextWord(text, 0, 0, text.size(), recognizer.context);
    }
    if (first == absl::string_view::npos || first >= region_end) return;
  }
  const re2::StringPiece input(text.data(), text.size());
  const bool has_group = recognizer.groups > 0;
  const int groups = 1 + recognizer.groups;
  absl::InlinedVector<re2::StringPiece, 5> match(static_cast<size_t>(groups));

  // The verdict on the match in `match`; on acceptance, adds the candidate.
  auto judge = [&]() -> Verdict {
    re2::StringPiece value = match[0];
    if (has_group) {
      int g = 1;
      while (g < groups && match[static_cast<size_t>(g)].data() == nullptr) ++g;
      value = g < groups ? match[static_cast<size_t>(g)] : re2::StringPiece();
    }
    if (value.data() == nullptr || value.empty()) return Verdict::kRejected;
    const size_t begin = static_cast<size_t>(value.data() - text.data());
    const size_t end = begin + value.size();
    if (IsContinuationByte(At(text, begin)) ||
        (end < text.size() && IsContinuationByte(At(text, end)))) {
      return Verdict::kRejected;
    }
    if (GluedLeft(text, begin)) return Verdict::kGluedLeft;
    if (GluedRight(text, end) || ContinuesGroups(text, begin, end)) return Verdict::kRejected;
    const std::vector<std::string>& excluded = recognizer.spec.excluded_prefixes;
    if (!excluded.empty() && HasExcludedPrefix(text, begin, excluded)) return Verdict::kExcluded;
    double score = 0;
    if (!Accept(recognizer, text, begin, end, lists && OnlyListSeparators(text, last_end, begin),
                scratch, score)) {
      return Verdict::kRejected;
    }
    out.push_back(Candidate{.begin = begin, .end = end, .score = score, .recognizer = index});
    last_end = end;
    return Verdict::kAccepted;
  };

  // Whether the rest of a short region can hold no finding, which saves a failing search:
  // it is shorter than any finding, or it cannot hold a built-in one.
  auto rest_is_empty = [&](size_t pos) {
    constexpr size_t kShortRest = 64;
    if (region_end - pos < recognizer.min_finding_bytes) return true;
    return recognizer.needs_trigger && pos > region_begin && region_end - pos <= kShortRest &&
           !MayHoldFinding(region_end - pos, CountChunk(text, pos, region_end));
  };
  // The first position at or after `from` where a finding can start: its byte can start a
  // match, it starts a character, and (when the finding is the whole match) it is not glued.
  auto next_start = [&](size_t from) {
    for (size_t p = from; p < region_end; ++p) {
      const unsigned char c = At(text, p);
      if (c < recognizer.first_byte_low || c > recognizer.first_byte_high ||
          IsContinuationByte(c) || (!has_group && GluedLeft(text, p))) {
        continue;
      }
      return p;
    }
    return region_end;
  };
  // The leftmost match from `pos` on: the anchored search at `pos` is cheap and usually hits
  // (a chunk tends to start with its entity); otherwise one unanchored search from beyond.
  auto find = [&](size_t pos) {
    return recognizer.regex->Match(input, pos, region_end, RE2::ANCHOR_START, match.data(),
                                   groups) ||
           recognizer.regex->Match(input, NextCharBoundary(text, pos), region_end, RE2::UNANCHORED,
                                   match.data(), groups);
  };
  size_t pos = next_start(region_begin);
  while (pos < region_end && !rest_is_empty(pos) && find(pos)) {
    const size_t match_begin = static_cast<size_t>(match[0].data() - text.data());
    const size_t match_end = match_begin + match[0].size();
    const Verdict verdict = judge();
    if (verdict == Verdict::kAccepted) {
      pos = next_start(match_end > match_begin ? match_end : NextCharBoundary(text, match_begin));
      continue;
    }
    if (verdict == Verdict::kExcluded) {
      pos = next_start(match_end > match_begin ? match_end : NextCharBoundary(text, match_begin));
      continue;
    }
    if (verdict == Verdict::kGluedLeft && !has_group) {
      // Every match starting inside this word would be glued too.
      pos = match_begin;
      while (pos < region_end && IsWordByte(At(text, pos))) ++pos;
      pos = next_start(pos == match_begin ? NextCharBoundary(text, match_begin) : pos);
      continue;
    }
    // Shorter matches from the same start, ending before a separator, longest first (none
    // for an empty match, which CheckRecognizerSpec keeps out but the search must survive,
    // nor for a token, which is its whole match).
    bool accepted = false;
    if (verdict == Verdict::kRejected && match_end > match_begin && !recognizer.whole_token) {
      int tries = 0;
      // Values shorter than any finding need no look: every further one is shorter still.
      for (size_t end = match_end - 1; end > match_begin && tries < kMaxShorterTries &&
                                       end - match_begin >= recognizer.min_finding_bytes;
           --end) {
        const char c = text[end];
        if (c != ' ' && c != '-' && c != ':') continue;
        ++tries;
        // When the finding is the whole match, the cheap checks come before the search.
        if (!has_group && (GluedRight(text, end) ||
                           (recognizer.validator != nullptr &&
                            !recognizer.validator(text.substr(match_begin, end - match_begin))))) {
          continue;
        }
        if (recognizer.regex->Match(input, match_begin, end, RE2::ANCHOR_BOTH, match.data(),
                                    groups) &&
            judge() == Verdict::kAccepted) {
          pos = next_start(end);
          accepted = true;
          break;
        }
      }
    }
    if (!accepted) pos = next_start(NextCharBoundary(text, match_begin));
  }
}

std::vector<size_t> Detector::LiveCustomRecognizers(absl::string_view text,
                                                    const std::vector<bool>& wanted) const {
  std::vector<int> potential;
  if (trigger_prefilter_ && custom_gate_->filter != nullptr) {
    std::vector<int> found = custom_gate_->always_found;
    for (uint64_t words = FoundWords(text, custom_gate_->atoms); words != 0; words &= words - 1) {
      found.push_back(custom_gate_->atom_of_word[static_cast<size_t>(__builtin_ctzll(words))]);
    }
    if (!custom_gate_->folds_beyond_ascii.empty() &&
        (text.find("\xE2\x84\xAA") != absl::string_view::npos ||
         text.find("\xC5\xBF") != absl::string_view::npos)) {
      found.insert(found.end(), custom_gate_->folds_beyond_ascii.begin(),
                   custom_gate_->folds_beyond_ascii.end());
      std::sort(found.begin(), found.end());
      found.erase(std::unique(found.begin(), found.end()), found.end());
    }
    custom_gate_->filter->AllPotentials(found, &potential);
  } else {
    for (size_t i = custom_begin_; i < recognizers_.size(); ++i) {
      potential.push_back(static_cast<int>(i - custom_begin_));
    }
  }
  std::vector<size_t> live;
  for (int k : potential) {
    const size_t r = custom_begin_ + static_cast<size_t>(k);
    const Recognizer& recognizer = recognizers_[r];
    if (!wanted[r] || text.size() < recognizer.min_finding_bytes) continue;
    // No match can have its required context.
    if (trigger_prefilter_ && recognizer.spec.context_required &&
        !HasContextWord(text, 0, 0, text.size(), recognizer.context)) {
      continue;
    }
    live.push_back(r);
  }
  std::sort(live.begin(), live.end());
  return live;
}

std::vector<Finding> Detector::Scan(absl::string_view text, const ScanOptions& options) const {
  std::vector<bool> wanted(recognizers_.size(), options.entity_types.empty());
  if (!options.entity_types.empty()) {
    for (size_t i = 0; i < recognizers_.size(); ++i) {
      wanted[i] = std::find(options.entity_types.begin(), options.entity_types.end(),
                            recognizers_[i].spec.entity_type) != options.entity_types.end();
    }
  }
  // What the sets report, each recognizer with a region it matches in, is gathered first and
  // extracted recognizer by recognizer: consecutive searches with one regexp (and the set's
  // over all regions) find their DFA states in the cache, which the other regexps' states
  // would have evicted. The candidates are sorted below, so their order changes nothing.
  struct Job {
    size_t recognizer;
    size_t region;  // Regions are numbered in order; the custom set's (all the text) is last.
    size_t begin;
    size_t end;
  };
  std::vector<Job> jobs;
  std::vector<int> hits;
  size_t regions = 0;
  // The built-in recognizers read the text with its typographic spaces and dashes and its
  // full-width characters folded to ASCII (see folded_text.h), and their findings are mapped
  // back; custom recognizers read the text as it is.
  std::optional<FoldedText> folded;
  if (FoldedText::HoldsFoldable(text)) folded.emplace(text);
  const absl::string_view builtin_text = folded.has_value() ? folded->text() : text;
  auto scan_set = [&](const PatternSet& set, absl::string_view scanned, size_t begin, size_t end,
                      const std::vector<bool>& runs) {
    const size_t region = regions++;
    hits.clear();
    RE2::Set::ErrorInfo error{RE2::Set::kNoError};
    const bool matched =
        set.set->Match(re2::StringPiece(scanned.data() + begin, end - begin), &hits, &error);
    if (!matched) {
      hits.clear();
      // The DFA ran out of memory: every recognizer runs on its own (RE2 falls back to
      // the NFA there), which is slower but finds the same.
      if (error.kind != RE2::Set::kNoError) {
        for (size_t i = 0; i < set.recognizer_of.size(); ++i) hits.push_back(static_cast<int>(i));
      }
    }
    for (int hit : hits) {
      const size_t r = set.recognizer_of[static_cast<size_t>(hit)];
      // A region shorter than the recognizer's shortest finding cannot hold one.
      if (runs[r] && end - begin >= recognizers_[r].min_finding_bytes) {
        jobs.push_back(Job{.recognizer = r, .region = region, .begin = begin, .end = end});
      }
    }
  };
  if (trigger_prefilter_) {
    for (const Region& region : TriggerRegions(builtin_text)) {
      scan_set(*builtin_set_, builtin_text, region.begin, region.end, wanted);
    }
  } else if (!builtin_text.empty()) {
    scan_set(*builtin_set_, builtin_text, 0, builtin_text.size(), wanted);
  }
  const size_t builtin_regions = regions;
  // The named-secret recognizers, each on the named settings (or, without the prefilter, the
  // whole text).
  std::vector<Region> settings;
  if (trigger_prefilter_) {
    settings = NamedSettingRegions(builtin_text);
  } else if (!builtin_text.empty()) {
    settings.push_back(Region{0, builtin_text.size()});
  }
  for (const Region& setting : settings) {
    const size_t region = regions++;
    for (size_t r = trigger_count_; r < custom_begin_; ++r) {
      if (wanted[r] && setting.end - setting.begin >= recognizers_[r].min_finding_bytes) {
        jobs.push_back(
            Job{.recognizer = r, .region = region, .begin = setting.begin, .end = setting.end});
      }
    }
  }
  const size_t named_regions = regions;
  if (custom_set_ != nullptr && !text.empty()) {
    const std::vector<size_t> live = LiveCustomRecognizers(text, wanted);
    if (live.size() == 1) {
      // One pass of its own regexp instead of the set's and then its own.
      jobs.push_back(
          Job{.recognizer = live[0], .region = regions++, .begin = 0, .end = text.size()});
    } else if (!live.empty()) {
      std::vector<bool> runs(recognizers_.size(), false);
      for (size_t r : live) runs[r] = true;
      scan_set(*custom_set_, text, 0, text.size(), runs);
    }
  }

  // The jobs by recognizer (a counting sort), in the order of their regions within each.
  std::vector<size_t> first_job(recognizers_.size() + 1, 0);
  for (const Job& job : jobs) ++first_job[job.recognizer + 1];
  for (size_t r = 0; r < recognizers_.size(); ++r) first_job[r + 1] += first_job[r];
  std::vector<Job> by_recognizer(jobs.size());
  for (const Job& job : jobs) by_recognizer[first_job[job.recognizer]++] = job;
  std::vector<Candidate> extracted;
  extracted.reserve(jobs.size());
  std::vector<size_t> extracted_end(by_recognizer.size());  // Of each job's candidates.
  ScanScratch scratch;
  scratch.first_context_end.assign(recognizers_.size(), ScanScratch::kUnknown);
  scratch.last_finding_end.assign(recognizers_.size(), absl::string_view::npos);
  ScanScratch folded_scratch;  // The memo of the folded text, when there is one.
  if (folded.has_value()) {
    folded_scratch.first_context_end = scratch.first_context_end;
    folded_scratch.last_finding_end = scratch.last_finding_end;
  }
  for (size_t k = 0; k < by_recognizer.size(); ++k) {
    const Job& job = by_recognizer[k];
    const size_t first = extracted.size();
    if (folded.has_value() && job.recognizer < custom_begin_) {
      Extract(recognizers_[job.recognizer], builtin_text, job.begin, job.end, folded_scratch,
              extracted);
      for (size_t c = first; c < extracted.size(); ++c) {
        extracted[c].begin = folded->OriginalOffset(extracted[c].begin);
        extracted[c].end = folded->OriginalOffset(extracted[c].end);
      }
    } else {
      Extract(recognizers_[job.recognizer], text, job.begin, job.end, scratch, extracted);
    }
    extracted_end[k] = extracted.size();
  }

  // Threshold, then overlaps: higher score, longer, earlier, listed first.
  auto by_begin = [](const Candidate& a, const Candidate& b) {
    return std::tie(a.begin, a.end, a.recognizer) < std::tie(b.begin, b.end, b.recognizer);
  };
  // The candidates above the threshold ordered by begin: by region (a counting sort; the
  // regions are disjoint and in order), then within each region, and the custom set's
  // merged in. (begin, end, recognizer) identifies a candidate, so this is the one order.
  std::vector<size_t> first_candidate(regions + 1, 0);
  for (size_t k = 0, from = 0; k < by_recognizer.size(); from = extracted_end[k++]) {
    for (size_t c = from; c < extracted_end[k]; ++c) {
      if (extracted[c].score >= options.min_score) ++first_candidate[by_recognizer[k].region + 1];
    }
  }
  for (size_t r = 0; r < regions; ++r) first_candidate[r + 1] += first_candidate[r];
  std::vector<Candidate> candidates(first_candidate[regions]);
  {
    std::vector<size_t> next = first_candidate;
    for (size_t k = 0, from = 0; k < by_recognizer.size(); from = extracted_end[k++]) {
      for (size_t c = from; c < extracted_end[k]; ++c) {
        if (extracted[c].score >= options.min_score) {
          candidates[next[by_recognizer[k].region]++] = extracted[c];
        }
      }
    }
  }
  for (size_t r = 0; r < regions; ++r) {
    const auto begin = candidates.begin() + static_cast<std::ptrdiff_t>(first_candidate[r]);
    const auto end = candidates.begin() + static_cast<std::ptrdiff_t>(first_candidate[r + 1]);
    if (end - begin > 1) std::sort(begin, end, by_begin);
  }
  // Three runs in order, each sorted: the built-ins' regions, the named settings, the custom
  // set's text.
  auto run_start = [&](size_t region) {
    return candidates.begin() + static_cast<std::ptrdiff_t>(first_candidate[region]);
  };
  std::inplace_merge(candidates.begin(), run_start(builtin_regions), run_start(named_regions),
                     by_begin);
  std::inplace_merge(candidates.begin(), run_start(named_regions), candidates.end(), by_begin);
  // Within each cluster of transitively overlapping candidates, keep the best first: higher
  // score, longer, earlier, listed first. Most clusters are a single candidate.
  auto better = [](const Candidate& a, const Candidate& b) {
    return std::make_tuple(-a.score, b.end - b.begin, a.begin, a.recognizer) <
           std::make_tuple(-b.score, a.end - a.begin, b.begin, b.recognizer);
  };
  std::vector<Candidate> kept;
  kept.reserve(candidates.size());
  for (size_t i = 0; i < candidates.size();) {
    size_t j = i + 1;
    size_t cluster_end = candidates[i].end;
    while (j < candidates.size() && candidates[j].begin < cluster_end) {
      cluster_end = std::max(cluster_end, candidates[j].end);
      ++j;
    }
    if (j == i + 1) {
      kept.push_back(candidates[i]);
    } else {
      std::sort(candidates.begin() + static_cast<std::ptrdiff_t>(i),
                candidates.begin() + static_cast<std::ptrdiff_t>(j), better);
      std::map<size_t, size_t> chosen;  // Begin -> end of the candidates kept in the cluster.
      for (size_t k = i; k < j; ++k) {
        const Candidate& c = candidates[k];
        auto next = chosen.lower_bound(c.begin);
        if (next != chosen.end() && next->first < c.end) continue;
        if (next != chosen.begin() && std::prev(next)->second > c.begin) continue;
        chosen.emplace(c.begin, c.end);
        kept.push_back(c);
      }
      std::sort(kept.end() - static_cast<std::ptrdiff_t>(chosen.size()), kept.end(), by_begin);
    }
    i = j;
  }
  std::vector<Finding> findings;
  findings.reserve(kept.size());
  for (const Candidate& c : kept) {
    const RecognizerSpec& spec = recognizers_[c.recognizer].spec;
    findings.push_back(Finding{.entity_type = spec.entity_type,
                               .begin = c.begin,
                               .end = c.end,
                               .score = c.score,
                               .recognizer = spec.name});
  }
  return findings;
}

}  // namespace policy::pii
