#ifndef POLICY_SERVICES_AUTHZ_ORG_VALIDATION_H_
#define POLICY_SERVICES_AUTHZ_ORG_VALIDATION_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "services/authz/org.h"

// Checks of what administrators submit, before anything is stored. Each returns
// INVALID_ARGUMENT naming the field (and entry) at fault, or FAILED_PRECONDITION when the
// value is fine but the organisation's state forbids the change.
namespace policy::authz {

inline constexpr size_t kMaxIdBytes = 128;
inline constexpr size_t kMaxNameBytes = 200;
inline constexpr size_t kMaxEmailBytes = 254;
inline constexpr size_t kMaxActionBytes = 64;
inline constexpr size_t kMaxModelBytes = 128;
inline constexpr size_t kMaxModels = 64;
inline constexpr size_t kMaxPermissions = 32;
inline constexpr size_t kMaxGrants = 256;
inline constexpr size_t kMaxRequestIdBytes = 128;
// The largest rate limits (projects, their members, service accounts), and so the largest
// estimated or actual tokens of one request: bounds under which the rate limiter's
// arithmetic cannot overflow (kMaxPerMinute, rate_limiter.h).
inline constexpr int64_t kMaxRpmLimit = 10'000'000;
inline constexpr int64_t kMaxTpmLimit = 10'000'000'000;

// A caller's request id, which makes a retry of the request safe (ReportUsage,
// CreateInvitation): any bytes, at most kMaxRequestIdBytes. INVALID_ARGUMENT naming
// `request_id` when it is longer, or empty and `required`.
absl::Status ValidateRequestId(absl::string_view request_id, bool required);

// Ids of members and service accounts: 1 to 128 of [A-Za-z0-9._@+:-]. Project ids follow
// ids::ValidateProjectId (common/ids/project_id.h).
absl::Status ValidateId(absl::string_view id, absl::string_view field);

// INVALID_ARGUMENT naming `field` unless 0 <= rpm <= kMaxRpmLimit and 0 <= tpm <= kMaxTpmLimit.
absl::Status ValidateLimits(int64_t rpm, int64_t tpm, absl::string_view field);

// The id by the project-id rule, name present and plain text (IsPlainText), limits within
// ValidateLimits, models distinct
// and well-formed: what a new project, or a project's new limits, must meet.
absl::Status ValidateProject(const Project& project);

// What every stored project meets: as ValidateProject, except that the id need only meet
// ValidateId and the limits only be non-negative (projects stored before those rules stay
// valid, so that other changes to their organisation are not refused).
absl::Status ValidateStoredProject(const Project& project);

// A plausible e-mail address (none, for an erased member, who must be removed); grants
// distinct, org roles without a project and project roles with one.
absl::Status ValidateMember(const Member& member);

// Permissions are known API permissions (no administrative actions), distinct; the project
// by the project-id rule; limits within ValidateLimits.
absl::Status ValidateServiceAccount(const ServiceAccount& account);

// As ValidateServiceAccount, except that the project need only meet ValidateId and the
// limits only be non-negative (see ValidateStoredProject).
absl::Status ValidateStoredServiceAccount(const ServiceAccount& account);

// FAILED_PRECONDITION when `change` would leave `members` without an owner holding a live
// grant at `now` (removing or demoting the last owner). `change` replaces the member with
// the same id; a member with removed_at set counts as gone.
absl::Status CheckOwnersRemain(const std::vector<Member>& members, const Member& change,
                               absl::Time now);

}  // namespace policy::authz

#endif  // POLICY_SERVICES_AUTHZ_ORG_VALIDATION_H_
