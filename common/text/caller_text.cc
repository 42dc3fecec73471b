#include "common/text/caller_text.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/text/utf8.h"

namespace policy {
namespace {

// The length of the character at the start of valid UTF-8 `text` that a terminal would obey
// or a reader would not see (C1 controls; left-to-right and right-to-left marks, line and
// paragraph separators, bidirectional overrides and isolates), or 0.
size_t CommandAt(absl::string_view text) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  if (byte(0) == 0xc2 && text.size() >= 2 && byte(1) >= 0x80 && byte(1) <= 0x9f) return 2;
  if (byte(0) == 0xe2 && text.size() >= 3 &&
      ((byte(1) == 0x80 && (byte(2) == 0x8e || byte(2) == 0x8f)) ||  // U+200E, U+200F
       (byte(1) == 0x80 && byte(2) >= 0xa8 && byte(2) <= 0xae) ||    // U+2028 to U+202E
       (byte(1) == 0x81 && byte(2) >= 0xa6 && byte(2) <= 0xa9))) {   // U+2066 to U+2069
    return 3;
  }
  return 0;
}

// Appends `text` to `out`, with control characters (C0 and C1), bidirectional overrides,
// backslashes, single quotes when `quotes`, and bytes that are not UTF-8 as C escapes.
void AppendEscaped(absl::string_view text, bool quotes, std::string* out) {
  while (!text.empty()) {
    const size_t bad = FindInvalidUtf8(text);
    absl::string_view valid = text.substr(0, bad);
    while (!valid.empty()) {
      const char c = valid[0];
      const auto u = static_cast<unsigned char>(c);
      size_t escaped = u < 0x20 || u == 0x7f || (quotes && c == '\'') || c == '\\' ? 1 : 0;
      if (escaped == 0) escaped = CommandAt(valid);
      if (escaped > 0) {
        absl::StrAppend(out, absl::CHexEscape(valid.substr(0, escaped)));
        valid.remove_prefix(escaped);
      } else {
        out->push_back(c);
        valid.remove_prefix(1);
      }
    }
    if (bad == absl::string_view::npos) break;
    absl::StrAppend(out, absl::CHexEscape(text.substr(bad, 1)));
    text.remove_prefix(bad + 1);
  }
}

}  // namespace

std::string Quoted(absl::string_view value) {
  size_t cut = std::min(value.size(), kQuotedBytes);
  if (cut < value.size()) {
    // A character the cut would split is left out whole.
    size_t lead = cut;
    while (lead > 0 && cut - lead < 3 &&
           (static_cast<unsigned char>(value[lead - 1]) & 0xc0) == 0x80) {
      --lead;
    }
    if (lead > 0) {
      const auto c = static_cast<unsigned char>(value[lead - 1]);
      const size_t length = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
      if (length > 1 && lead - 1 + length > cut) cut = lead - 1;
    }
  }
  absl::string_view shown = value.substr(0, cut);
  std::string out = "'";
  AppendEscaped(shown, /*quotes=*/true, &out);
  if (cut < value.size()) {
    absl::StrAppend(&out, "\xe2\x80\xa6' (", value.size(), " bytes)");  // "…"
  } else {
    out.push_back('\'');
  }
  return out;
}

std::string Escaped(absl::string_view text) {
  std::string out;
  AppendEscaped(text, /*quotes=*/false, &out);
  return out;
}

absl::Status CheckMaxBytes(std::initializer_list<TextBound> bounds) {
  for (const TextBound& b : bounds) {
    if (b.value.size() > b.max_bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(b.field, ": longer than ", b.max_bytes, " bytes"));
    }
  }
  return absl::OkStatus();
}

}  // namespace policy
