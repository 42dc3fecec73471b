#ifndef POLICY_SERVICES_AUTHZ_DECISION_H_
#define POLICY_SERVICES_AUTHZ_DECISION_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "services/authz/ip_allowlist.h"
#include "services/authz/org.h"

namespace policy::authz {

// What a principal asks to do. API permissions are what keys are used for (a model call);
// administrative actions manage the organisation.
enum class ActionKind { kApi, kAdmin };

struct Action {
  absl::string_view name;  // "chat.completions", "members.manage", ...
  ActionKind kind;
  bool org_scoped;  // An administrative action on the organisation rather than one project.
};

// The action named `name`, or INVALID_ARGUMENT for an unknown one.
absl::StatusOr<Action> FindAction(absl::string_view name);
const std::vector<Action>& AllActions();

// Whether `role` may perform `action` (the role-by-action matrix):
//  owner  - everything;
//  admin  - every administrative action but billing.manage and owners.manage; no API calls;
//  member - API calls, keys.create, settings.read and usage.read in its projects;
//  reader - settings.read and usage.read in its projects.
bool RoleAllows(Role role, const Action& action);

// Whether one of `member`'s grants live at `now` allows `action` in `project` (empty: the
// organisation): Check's grant rule alone, whatever the member's and the project's state.
bool GrantsAllow(const Member& member, absl::string_view project, const Action& action,
                 absl::Time now);

enum class PrincipalKind { kMember, kServiceAccount };

struct CheckRequest {
  PrincipalKind principal_kind = PrincipalKind::kMember;
  std::string principal_id;
  std::string project;  // Empty only for organisation-scoped administrative actions.
  std::string action;
  std::string model;                         // Required for API actions.
  std::optional<IpAddress> source_ip;        // Required for service accounts (their allowlist).
  Residency residency = Residency::kGlobal;  // API actions: what the request requires.
  bool explain = false;
  // Decide by the principal's standing alone (who, removal, project, archive, key holders,
  // grants or permissions), whatever the model, address or residency: whether a key of theirs
  // could be used for the action at all. model and source_ip are then not required, and the
  // authorizer takes no budget.
  bool grants_only = false;
};

// Machine-readable reasons a decision denies; kNone when it allows.
enum class DenyReason {
  kNone,
  kUnknownPrincipal,
  kPrincipalRemoved,
  kProjectNotFound,
  kProjectArchived,
  kPermissionDenied,
  kGrantExpired,
  kIpNotAllowed,
  kModelNotAllowed,
  kResidencyNotAllowed,  // The request requires another residency than the project's.
  kKeyHolderNotAllowed,  // A member calling in a project whose keys service accounts hold.
  kRateLimited,          // Decided by the rate limits (authorizer.h), never by Check. Last.
};
absl::string_view DenyReasonName(DenyReason reason);  // "PERMISSION_DENIED", ...

// One rule the decision looked at, for explain mode ("why was I denied").
struct RuleOutcome {
  absl::string_view rule;  // "principal.exists", "grant.role", "ip.allowlist", ...
  bool passed;
  std::string detail;
};

struct Decision {
  bool allowed = false;
  DenyReason reason = DenyReason::kNone;
  absl::string_view rule;                       // The rule that decided.
  ActionKind action_kind = ActionKind::kAdmin;  // Of the action decided on.
  std::vector<RuleOutcome> trace;  // Every rule considered, in order; only with explain.
};

// Decides `request` against `org` at `now`. Rules run in order and the first that fails
// decides; with explain, the trace also lists the ones that passed. Rate limits are not
// decided here. INVALID_ARGUMENT for a malformed request (unknown action, missing model for
// an API action, missing source IP for a service account, missing project for a
// project-scoped action): a malformed request is an error, not a denial.
absl::StatusOr<Decision> Check(const OrgSnapshot& org, const CheckRequest& request, absl::Time now);

}  // namespace policy::authz

#endif  // POLICY_SERVICES_AUTHZ_DECISION_H_
