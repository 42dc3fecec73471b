#include "services/edge/conventions.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/ids/api_key_prefix.h"

namespace policy::edge {

std::string DecisionEntryId(absl::string_view request_id) {
  return absl::StrCat(kDecisionEntryPrefix, request_id);
}

std::string UsageEntryId(absl::string_view request_id) {
  return absl::StrCat(kUsageEntryPrefix, request_id);
}

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

absl::Status CheckRole(absl::string_view role, absl::string_view field) {
  if (role.empty() || role.size() > 64) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": 1 to 64 bytes"));
  }
  for (char c : role) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": only letters, digits, _ and - are allowed"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckNoSecret(absl::string_view value, absl::string_view field) {
  const std::string lower = absl::AsciiStrToLower(value);
  for (absl::string_view prefix : ids::kApiKeyPrefixes) {
    if (absl::StrContains(lower, prefix)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": holds what looks like an API key; secrets never go in identifiers"));
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
