#include "services/pii/folded_text.h"

#include <algorithm>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace policy::pii {
namespace {

unsigned char At(absl::string_view text, size_t i) { return static_cast<unsigned char>(text[i]); }

// Whether `c` leads a character Fold replaces (U+00A0: C2; U+2007-U+2212: E2; U+FF0B-U+FF20:
// EF).
bool IsFoldLead(unsigned char c) { return c == 0xC2 || c == 0xE2 || c == 0xEF; }

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
  if (lead == 0xEF && second == 0xBC) {
    if (third >= 0x90 && third <= 0x99) {  // U+FF10-U+FF19 FULLWIDTH DIGIT ZERO-NINE.
      ascii = static_cast<char>('0' + (third - 0x90));
      return 3;
    }
    switch (third) {
      case 0x8B:  // U+FF0B FULLWIDTH PLUS SIGN.
        ascii = '+';
        return 3;
      case 0x8D:  // U+FF0D FULLWIDTH HYPHEN-MINUS.
        ascii = '-';
        return 3;
      case 0x8E:  // U+FF0E FULLWIDTH FULL STOP.
        ascii = '.';
        return 3;
      case 0xA0:  // U+FF20 FULLWIDTH COMMERCIAL AT.
        ascii = '@';
        return 3;
      default:
        return 0;
    }
  }
  return 0;
}

// The first byte at or after `i` that may lead a foldable character (IsFoldLead), or the end.
size_t NextFoldLead(absl::string_view text, size_t i) {
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
  const __m128i c2 = _mm_set1_epi8(static_cast<char>(0xC2));
  const __m128i e2 = _mm_set1_epi8(static_cast<char>(0xE2));
  const __m128i ef = _mm_set1_epi8(static_cast<char>(0xEF));
  while (i + 16 <= n) {
    const __m128i bytes = load(i);
    const int mask = _mm_movemask_epi8(
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(bytes, c2), _mm_cmpeq_epi8(bytes, e2)),
                     _mm_cmpeq_epi8(bytes, ef)));
    if (mask != 0) return i + static_cast<size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
    i += 16;
  }
#endif
  while (i < n && !IsFoldLead(At(text, i))) ++i;
  return i;
}

}  // namespace

bool FoldedText::HoldsFoldable(absl::string_view text) {
  char ascii = 0;
  for (size_t at = NextFoldLead(text, 0); at < text.size(); at = NextFoldLead(text, at + 1)) {
    if (FoldableAt(text, at, ascii) != 0) return true;
  }
  return false;
}

FoldedText::FoldedText(absl::string_view text) {
  folded_.reserve(text.size());
  size_t removed = 0;
  size_t copied = 0;  // text[0, copied) is in folded_.
  for (size_t at = NextFoldLead(text, 0); at < text.size(); at = NextFoldLead(text, at)) {
    char ascii = 0;
    const size_t length = FoldableAt(text, at, ascii);
    if (length == 0) {
      ++at;
      continue;
    }
    folded_.append(text.data() + copied, at - copied);
    removed += length - 1;
    shifts_.emplace_back(folded_.size(), removed);
    folded_ += ascii;
    at += length;
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
