#ifndef POLICY_COMMON_IDS_PROJECT_ID_H_
#define POLICY_COMMON_IDS_PROJECT_ID_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

// The one rule for project ids, shared by every service that stores or names a project
// (authz creates them, keys issue keys for them, audit keeps a ledger per project): what one
// service accepts, the others accept too.
namespace policy::ids {

inline constexpr size_t kMaxProjectIdBytes = 64;

// Whether `id` is 1 to kMaxProjectIdBytes bytes of lowercase ASCII letters, digits, '-' and
// '_'.
bool IsProjectId(absl::string_view id);

// OK when IsProjectId(id); otherwise INVALID_ARGUMENT "<field>: ..." saying what is wrong,
// without quoting `id`.
absl::Status ValidateProjectId(absl::string_view id, absl::string_view field);

}  // namespace policy::ids

#endif  // POLICY_COMMON_IDS_PROJECT_ID_H_
