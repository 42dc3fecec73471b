#include "services/pii/folded_text.h"

#include <algorithm>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace policy::pii {
namespace {

unsigned char At(absl::string_view text, size_t i) { return static_cast<unsigned char>(text[i]); }

// Whether the bytes `lead`, `second` may start a character Fold replaces: U+00A0 (C2 A0),
// U+2007-U+2013 (E2 80), U+2212 (E2 88), U+3000 (E3 80), U+FF01-U+FF5E (EF BC, EF BD).
bool IsFoldPrefix(unsigned char lead, unsigned char second) {
  switch (lead) {
    case 0xC2:
      return second == 0xA0;
    case 0xE2:
      return second == 0x80 || second == 0x88;
    case 0xE3:
      return second == 0x80;
    case 0xEF:
      return second == 0xBC || second == 0xBD;
    default:
      return false;
  }
}

// The length of the foldable character at `i`, with its ASCII byte in `ascii`; 0 when none
// starts there.
size_t FoldableAt(absl::string_view text, size_t i, char& ascii) {
  const size_t left = text.size() - i;
  const unsigned char lead = At(text, i);
  if (lead == 0xC2) {
    if (left < 2 || At(text, i + 1) != 0xA0) return 0;  // U+00A0 NO-BREAK SPACE.
    ascii = ' ';
    return 2;
  }
  if (left < 3) return 0;
  const unsigned char second = At(text, i + 1);
  const unsigned char third = At(text, i + 2);
  if (lead == 0xE2 && second == 0x80) {
    switch (third) {
      case 0x87:  // U+2007 FIGURE SPACE.
      case 0x89:  // U+2009 THIN SPACE.
      case 0xAF:  // U+202F NARROW NO-BREAK SPACE.
        ascii = ' ';
        return 3;
      case 0x90:  // U+2010 HYPHEN.
      case 0x91:  // U+2011 NON-BREAKING HYPHEN.
      case 0x92:  // U+2012 FIGURE DASH.
      case 0x93:  // U+2013 EN DASH.
        ascii = '-';
        return 3;
      default:
        return 0;
    }
  }
  if (lead == 0xE2 && second == 0x88 && third == 0x92) {  // U+2212 MINUS SIGN.
    ascii = '-';
    return 3;
  }
  if (lead == 0xE3 && second == 0x80 && third == 0x80) {  // U+3000 IDEOGRAPHIC SPACE.
    ascii = ' ';
    return 3;
  }
  // U+FF01-U+FF5E, the full-width forms of '!' to '~': EF BC 81-BF are U+FF01-U+FF3F, EF BD
  // 80-9E are U+FF40-U+FF5E.
  if (lead == 0xEF && second == 0xBC && third >= 0x81 && third <= 0xBF) {
    ascii = static_cast<char>('!' + (third - 0x81));
    return 3;
  }
  if (lead == 0xEF && second == 0xBD && third >= 0x80 && third <= 0x9E) {
    ascii = static_cast<char>('`' + (third - 0x80));
    return 3;
  }
  return 0;
}

// The first position at or after `i` where a foldable character may start (IsFoldPrefix), or
// the end.
size_t NextFoldCandidate(absl::string_view text, size_t i) {
  const size_t n = text.size();
#if defined(__SSE2__)
  const char* const data = text.data();
  auto load = [data](size_t at) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(data + at));
  };
  // ASCII text, sixty-four bytes at a time: no byte has its top bit set.
  while (i + 64 <= n &&
         _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(load(i), load(i + 16)),
                                        _mm_or_si128(load(i + 32), load(i + 48)))) == 0) {
    i += 64;
  }
  auto bytes_of = [](unsigned char c) { return _mm_set1_epi8(static_cast<char>(c)); };
  // Sixteen positions at a time, each with the byte after it: kana, hangul and most other
  // text beyond ASCII hold no candidate.
  while (i + 17 <= n) {
    const __m128i lead = load(i);
    const __m128i second = load(i + 1);
    auto is = [](__m128i bytes, __m128i c) { return _mm_cmpeq_epi8(bytes, c); };
    const __m128i e2 = is(lead, bytes_of(0xE2));
    const __m128i candidates = _mm_or_si128(
        _mm_or_si128(
            _mm_and_si128(_mm_or_si128(e2, is(lead, bytes_of(0xE3))), is(second, bytes_of(0x80))),
            _mm_and_si128(e2, is(second, bytes_of(0x88)))),
        _mm_or_si128(_mm_and_si128(is(lead, bytes_of(0xC2)), is(second, bytes_of(0xA0))),
                     _mm_and_si128(is(lead, bytes_of(0xEF)),
                                   is(_mm_or_si128(second, bytes_of(0x01)), bytes_of(0xBD)))));
    const int mask = _mm_movemask_epi8(candidates);
    if (mask != 0) return i + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
    i += 16;
  }
#endif
  while (i < n && !(i + 1 < n && IsFoldPrefix(At(text, i), At(text, i + 1)))) ++i;
  return i;
}

}  // namespace

bool FoldedText::HoldsFoldable(absl::string_view text) {
  char ascii = 0;
  for (size_t at = NextFoldCandidate(text, 0); at < text.size();
       at = NextFoldCandidate(text, at + 1)) {
    if (FoldableAt(text, at, ascii) != 0) return true;
  }
  return false;
}

FoldedText::FoldedText(absl::string_view text) {
  folded_.reserve(text.size());
  size_t removed = 0;
  size_t copied = 0;  // text[0, copied) is in folded_.
  for (size_t at = NextFoldCandidate(text, 0); at < text.size(); at = NextFoldCandidate(text, at)) {
    char ascii = 0;
    size_t length = FoldableAt(text, at, ascii);
    if (length == 0) {
      ++at;
      continue;
    }
    folded_.append(text.data() + copied, at - copied);
    // A run of such characters (a value typed full-width) folds without searching again.
    do {
      removed += length - 1;
      shifts_.emplace_back(folded_.size(), removed);
      folded_ += ascii;
      at += length;
    } while (at < text.size() && (length = FoldableAt(text, at, ascii)) != 0);
    copied = at;
  }
  folded_.append(text.data() + copied, text.size() - copied);
}

size_t FoldedText::OriginalOffset(size_t offset) const {
  // The last folded character before `offset`: the bytes removed up to it.
  const auto after = std::lower_bound(
      shifts_.begin(), shifts_.end(), offset,
      [](const std::pair<size_t, size_t>& shift, size_t at) { return shift.first < at; });
  return after == shifts_.begin() ? offset : offset + std::prev(after)->second;
}

}  // namespace policy::pii
