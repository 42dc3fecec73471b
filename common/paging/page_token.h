#ifndef POLICY_COMMON_PAGING_PAGE_TOKEN_H_
#define POLICY_COMMON_PAGING_PAGE_TOKEN_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

// The one page-token format every listing uses. A token is opaque to callers (web-safe
// base64): it holds where the next page starts (`position`, any bytes, encoded by the listing)
// and a digest of the listing's filters, so that a token presented with other filters is
// refused instead of silently continuing another listing. Tokens carry no secret and are not
// authenticated: each page is authorised from its own request.
namespace policy::paging {

// INVALID_ARGUMENT "page_token: not a token this service issued": for a listing whose token
// decoded but whose position it cannot read.
absl::Status InvalidPageToken();

// `filters`: the listing's filter values, always in the same order for one listing; an absent
// filter and an empty one are the same unless the listing encodes the difference.
std::string EncodePageToken(absl::string_view position,
                            absl::Span<const absl::string_view> filters);

// The position `token` holds. InvalidPageToken() for one EncodePageToken did not make, "page_token:
// issued for other filters" for one made for other `filters`.
absl::StatusOr<std::string> DecodePageToken(absl::string_view token,
                                            absl::Span<const absl::string_view> filters);

}  // namespace policy::paging

#endif  // POLICY_COMMON_PAGING_PAGE_TOKEN_H_
