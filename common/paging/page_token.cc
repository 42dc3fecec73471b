#include "common/paging/page_token.h"

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/crypto.h"

namespace policy::paging {
namespace {

constexpr absl::string_view kVersion = "p1";
constexpr size_t kDigestBytes = 8;

// The first kDigestBytes of SHA-256 over the filters, each length-prefixed so that no two
// lists of filters join to the same bytes.
std::string FilterDigest(absl::Span<const absl::string_view> filters) {
  std::string joined;
  for (absl::string_view f : filters) absl::StrAppend(&joined, f.size(), ":", f);
  return crypto::Sha256(joined).substr(0, kDigestBytes);
}

}  // namespace

absl::Status InvalidPageToken() {
  return absl::InvalidArgumentError("page_token: not a token this service issued");
}

std::string EncodePageToken(absl::string_view position,
                            absl::Span<const absl::string_view> filters) {
  return absl::WebSafeBase64Escape(absl::StrCat(kVersion, FilterDigest(filters), position));
}

absl::StatusOr<std::string> DecodePageToken(absl::string_view token,
                                            absl::Span<const absl::string_view> filters) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw) || raw.size() < kVersion.size() + kDigestBytes ||
      !absl::StartsWith(raw, kVersion)) {
    return InvalidPageToken();
  }
  if (raw.compare(kVersion.size(), kDigestBytes, FilterDigest(filters)) != 0) {
    return absl::InvalidArgumentError("page_token: issued for other filters");
  }
  return raw.substr(kVersion.size() + kDigestBytes);
}

}  // namespace policy::paging
