#include "common/text/caller_text.h"

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/text/utf8.h"

namespace policy {

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
  while (!shown.empty()) {
    const size_t bad = FindInvalidUtf8(shown);
    for (char c : shown.substr(0, bad)) {
      const auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u == 0x7f || c == '\'' || c == '\\') {
        absl::StrAppend(&out, absl::CHexEscape(absl::string_view(&c, 1)));
      } else {
        out.push_back(c);
      }
    }
    if (bad == absl::string_view::npos) break;
    absl::StrAppend(&out, absl::CHexEscape(shown.substr(bad, 1)));
    shown.remove_prefix(bad + 1);
  }
  if (cut < value.size()) {
    absl::StrAppend(&out, "\xe2\x80\xa6' (", value.size(), " bytes)");  // "…"
  } else {
    out.push_back('\'');
  }
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
