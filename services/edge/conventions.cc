#include "services/edge/conventions.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace policy::edge {

absl::Status CheckRequestId(absl::string_view id, absl::string_view field, size_t max_bytes) {
  if (id.size() > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": at most ", max_bytes, " bytes"));
  }
  for (char c : id) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != ':' &&
        c != '-') {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": only letters, digits and _ . : - are allowed"));
    }
  }
  return absl::OkStatus();
}

std::string BearerToken(absl::string_view authorization) {
  authorization = absl::StripAsciiWhitespace(authorization);
  if (!absl::StartsWithIgnoreCase(authorization, "bearer ")) return "";
  return std::string(absl::StripAsciiWhitespace(authorization.substr(7)));
}

}  // namespace policy::edge
