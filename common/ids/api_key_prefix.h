#ifndef POLICY_COMMON_IDS_API_KEY_PREFIX_H_
#define POLICY_COMMON_IDS_API_KEY_PREFIX_H_

#include <array>

#include "absl/strings/string_view.h"

// The prefixes that name the kind of a policy-suite API key: keys issues secrets that start
// with them, pii and the edge recognise the suite's own keys by them.
namespace policy::ids {

inline constexpr absl::string_view kProjectKeyPrefix = "psk_proj_";
inline constexpr absl::string_view kServiceAccountKeyPrefix = "psk_svc_";
inline constexpr absl::string_view kAdminKeyPrefix = "psk_admin_";
inline constexpr std::array<absl::string_view, 3> kApiKeyPrefixes = {
    kProjectKeyPrefix, kServiceAccountKeyPrefix, kAdminKeyPrefix};

}  // namespace policy::ids

#endif  // POLICY_COMMON_IDS_API_KEY_PREFIX_H_
