#include "common/text/caller_text.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/text/utf8.h"

namespace policy {
namespace {

// Appends `text` to `out`, with control characters (but a newline when `keep_newlines`),
// backslashes, single quotes when `quotes`, and bytes that are not UTF-8 as C escapes.
void AppendEscaped(absl::string_view text, bool quotes, bool keep_newlines, std::string* out) {
  while (!text.empty()) {
    const size_t bad = FindInvalidUtf8(text);
    for (char c : text.substr(0, bad)) {
      const auto u = static_cast<unsigned char>(c);
      if (((u < 0x20 || u == 0x7f) && !(keep_newlines && c == '\n')) || (quotes && c == '\'') ||
          c == '\\') {
        absl::StrAppend(out, absl::CHexEscape(absl::string_view(&c, 1)));
      } else {
        out->push_back(c);
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
  AppendEscaped(shown, /*quotes=*/true, /*keep_newlines=*/false, &out);
  if (cut < value.size()) {
    absl::StrAppend(&out, "\xe2\x80\xa6' (", value.size(), " bytes)");  // "…"
  } else {
    out.push_back('\'');
  }
  return out;
}

std::string Escaped(absl::string_view text, bool keep_newlines) {
  std::string out;
  AppendEscaped(text, /*quotes=*/false, keep_newlines, &out);
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
