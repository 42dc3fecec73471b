#ifndef POLICY_SERVICES_AUTHZ_ORG_VALIDATION_H_
#define POLICY_SERVICES_AUTHZ_ORG_VALIDATION_H_

#include <vector>

#include "absl/status/status.h"
#include "services/authz/org.h"

// Checks of what administrators submit, before anything is stored. Each returns
// INVALID_ARGUMENT naming the field (and entry) at fault, or FAILED_PRECONDITION when the
// value is fine but the organisation's state forbids the change.
namespace policy::authz {

inline constexpr size_t kMaxIdBytes = 128;
inline constexpr size_t kMaxNameBytes = 200;
inline constexpr size_t kMaxModels = 64;
inline constexpr size_t kMaxPermissions = 32;
inline constexpr size_t kMaxGrants = 256;

// Ids: 1 to 128 of [A-Za-z0-9._@+:-].
absl::Status ValidateId(absl::string_view id, absl::string_view field);

// Name present, limits non-negative, models distinct and well-formed.
absl::Status ValidateProject(const Project& project);

// A plausible e-mail address; grants distinct, org roles without a project and project roles
// with one.
absl::Status ValidateMember(const Member& member);

// Permissions are known API permissions (no administrative actions), distinct.
absl::Status ValidateServiceAccount(const ServiceAccount& account);

// FAILED_PRECONDITION when `change` would leave `members` without an owner holding a live
// grant at `now` (removing or demoting the last owner). `change` replaces the member with
// the same id; a member with removed_at set counts as gone.
absl::Status CheckOwnersRemain(const std::vector<Member>& members, const Member& change,
                               absl::Time now);

}  // namespace policy::authz

#endif  // POLICY_SERVICES_AUTHZ_ORG_VALIDATION_H_
