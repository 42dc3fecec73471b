#ifndef POLICY_COMMON_TEXT_UTF8_H_
#define POLICY_COMMON_TEXT_UTF8_H_

#include <cstddef>

#include "absl/strings/string_view.h"

namespace policy {

// The offset of the first byte of `text` that does not begin a well-formed UTF-8 sequence
// (shortest form, no surrogates, at most U+10FFFF, not cut off by the end), or
// absl::string_view::npos when the whole text is UTF-8.
size_t FindInvalidUtf8(absl::string_view text);

inline bool IsUtf8(absl::string_view text) {
  return FindInvalidUtf8(text) == absl::string_view::npos;
}

// Whether `text` is UTF-8 (as IsUtf8) without control characters: no C0 control (NUL, tab
// and newline included), DEL or C1 control (U+0080..U+009F). What names, addresses and
// other one-line text that people and ledgers read must be.
bool IsPlainText(absl::string_view text);

}  // namespace policy

#endif  // POLICY_COMMON_TEXT_UTF8_H_
