#ifndef POLICY_SERVICES_PII_FOLDED_TEXT_H_
#define POLICY_SERVICES_PII_FOLDED_TEXT_H_

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

// Values as word processors, PDFs, French and German locales and Japanese input methods
// write them: digit groups apart by a no-break, narrow no-break, thin, figure or ideographic
// space (U+00A0, U+202F, U+2009, U+2007, U+3000), dashes other than '-' (U+2010 hyphen, U+2011
// non-breaking hyphen, U+2012 figure dash, U+2013 en dash, U+2212 minus sign), and the
// full-width forms U+FF01-U+FF5E of '!' to '~' (digits, letters, '@', '.', '-', '+', '_',
// ':', '/', ...). The built-in recognizers are written for ASCII; the detector scans the text
// with each of these characters folded to its ASCII byte, and maps the findings back to the
// original bytes.
namespace policy::pii {

class FoldedText {
 public:
  // Whether `text` holds a character folded. Costs one vector pass over ASCII text.
  static bool HoldsFoldable(absl::string_view text);

  // `text` with each character above replaced by its ASCII byte (a space, '-', or the
  // full-width form's ASCII character); every other byte kept, invalid UTF-8 included.
  explicit FoldedText(absl::string_view text);

  absl::string_view text() const { return folded_; }

  // The offset in the original text of the character at `offset` of text() (the original's
  // size for text().size()). Increasing; a character boundary of text() maps to a character
  // boundary of the original, so a span of text() maps to the span of the original bytes it
  // was folded from. REQUIRES: offset <= text().size().
  size_t OriginalOffset(size_t offset) const;

 private:
  std::string folded_;
  // Per folded character, in order: its offset in folded_, and the bytes removed by it and
  // by the ones before it.
  std::vector<std::pair<size_t, size_t>> shifts_;
};

}  // namespace policy::pii

#endif  // POLICY_SERVICES_PII_FOLDED_TEXT_H_
