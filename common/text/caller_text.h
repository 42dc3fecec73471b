#ifndef POLICY_COMMON_TEXT_CALLER_TEXT_H_
#define POLICY_COMMON_TEXT_CALLER_TEXT_H_

#include <cstddef>
#include <initializer_list>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

// Text a caller sent: bounded on entry, and quoted in messages so that no reply grows with
// it (gRPC carries a status message in the reply's metadata, which has a size limit).
namespace policy {

// The most of a caller's value Quoted keeps.
inline constexpr size_t kQuotedBytes = 64;

// `value` in single quotes for a status or log message: at most its first kQuotedBytes
// bytes (cut at a character boundary), followed by "… (N bytes)" when cut; what Escaped
// escapes, and single quotes, written as C escapes.
std::string Quoted(absl::string_view value);

// `text` whole on one line, safe to print to a terminal: control characters (C0, newlines
// included, and C1), line and paragraph separators, direction marks, bidirectional overrides
// and isolates, backslashes and bytes that are not UTF-8 written as C escapes.
std::string Escaped(absl::string_view text);

// One field of a request and its bound.
struct TextBound {
  absl::string_view field;
  absl::string_view value;
  size_t max_bytes;
};

// INVALID_ARGUMENT "<field>: longer than N bytes" for the first of `bounds` whose value is
// longer than its max_bytes; OK otherwise.
absl::Status CheckMaxBytes(std::initializer_list<TextBound> bounds);

}  // namespace policy

#endif  // POLICY_COMMON_TEXT_CALLER_TEXT_H_
