#include "services/authz/decision.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/ids/model_api.h"
#include "common/text/caller_text.h"

namespace policy::authz {
namespace {

std::vector<Action> MakeActions() {
  std::vector<Action> actions;
  // API permissions: the model APIs decisions are about, then the others.
  for (absl::string_view api : ModelApis()) actions.push_back({api, ActionKind::kApi, false});
  actions.insert(actions.end(), {
                                    {"files.read", ActionKind::kApi, false},
                                    {"files.write", ActionKind::kApi, false},
                                    {"fine-tuning.read", ActionKind::kApi, false},
                                    {"fine-tuning.write", ActionKind::kApi, false},
                                    {"models.read", ActionKind::kApi, false},
                                    // Administration of one project.
                                    {"settings.read", ActionKind::kAdmin, false},
                                    {"usage.read", ActionKind::kAdmin, false},
                                    {"keys.create", ActionKind::kAdmin, false},
                                    {"keys.manage", ActionKind::kAdmin, false},
                                    {"service-accounts.manage", ActionKind::kAdmin, false},
                                    {"project.update", ActionKind::kAdmin, false},
                                    // Administration of the organisation.
                                    {"projects.manage", ActionKind::kAdmin, true},
                                    {"members.manage", ActionKind::kAdmin, true},
                                    {"invitations.manage", ActionKind::kAdmin, true},
                                    {"org.read", ActionKind::kAdmin, true},
                                    {"audit.read", ActionKind::kAdmin, true},
                                    {"owners.manage", ActionKind::kAdmin, true},
                                    {"billing.manage", ActionKind::kAdmin, true},
                                });
  return actions;
}

const std::vector<Action>& Actions() {
  static const auto* const kActions = new std::vector<Action>(MakeActions());
  return *kActions;
}

bool IsOneOf(absl::string_view name, std::initializer_list<absl::string_view> names) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

// Collects the trace only when asked: the common path allocates nothing.
class Recorder {
 public:
  Recorder(bool explain, ActionKind kind) : explain_(explain) { decision_.action_kind = kind; }
  void Pass(absl::string_view rule, std::string detail = "") {
    if (explain_) decision_.trace.push_back({rule, true, std::move(detail)});
  }
  Decision Deny(DenyReason reason, absl::string_view rule, std::string detail = "") {
    if (explain_) decision_.trace.push_back({rule, false, std::move(detail)});
    decision_.allowed = false;
    decision_.reason = reason;
    decision_.rule = rule;
    return std::move(decision_);
  }
  Decision Allow(absl::string_view rule) {
    decision_.allowed = true;
    decision_.reason = DenyReason::kNone;
    decision_.rule = rule;
    return std::move(decision_);
  }
  bool explain() const { return explain_; }

 private:
  bool explain_;
  Decision decision_;
};

bool GrantLive(const RoleGrant& grant, absl::Time now) {
  return !grant.expires_at.has_value() || now < *grant.expires_at;
}

// Whether `grant` counts in `project`: organisation roles everywhere, project roles in theirs.
bool GrantApplies(const RoleGrant& grant, absl::string_view project) {
  return IsOrgRole(grant.role) ? grant.project.empty()
                               : grant.project == project && !project.empty();
}

}  // namespace

const std::vector<Action>& AllActions() { return Actions(); }

absl::StatusOr<Action> FindAction(absl::string_view name) {
  for (const Action& action : Actions()) {
    if (action.name == name) return action;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown action ", Quoted(name)));
}

bool GrantsAllow(const Member& member, absl::string_view project, const Action& action,
                 absl::Time now) {
  return std::any_of(member.grants.begin(), member.grants.end(), [&](const RoleGrant& grant) {
    return GrantApplies(grant, project) && RoleAllows(grant.role, action) && GrantLive(grant, now);
  });
}

bool RoleAllows(Role role, const Action& action) {
  switch (role) {
    case Role::kOwner:
      return true;
    case Role::kAdmin:
      return action.kind == ActionKind::kAdmin &&
             !IsOneOf(action.name, {"billing.manage", "owners.manage"});
    case Role::kMember:
      return action.kind == ActionKind::kApi ||
             IsOneOf(action.name, {"keys.create", "settings.read", "usage.read"});
    case Role::kReader:
      return IsOneOf(action.name, {"settings.read", "usage.read"});
  }
  return false;
}

absl::string_view DenyReasonName(DenyReason reason) {
  switch (reason) {
    case DenyReason::kNone:
      return "NONE";
    case DenyReason::kUnknownPrincipal:
      return "UNKNOWN_PRINCIPAL";
    case DenyReason::kPrincipalRemoved:
      return "PRINCIPAL_REMOVED";
    case DenyReason::kProjectNotFound:
      return "PROJECT_NOT_FOUND";
    case DenyReason::kProjectArchived:
      return "PROJECT_ARCHIVED";
    case DenyReason::kPermissionDenied:
      return "PERMISSION_DENIED";
    case DenyReason::kGrantExpired:
      return "GRANT_EXPIRED";
    case DenyReason::kIpNotAllowed:
      return "IP_NOT_ALLOWED";
    case DenyReason::kModelNotAllowed:
      return "MODEL_NOT_ALLOWED";
    case DenyReason::kResidencyNotAllowed:
      return "RESIDENCY_NOT_ALLOWED";
    case DenyReason::kKeyHolderNotAllowed:
      return "KEY_HOLDER_NOT_ALLOWED";
    case DenyReason::kRateLimited:
      return "RATE_LIMITED";
  }
  return "UNKNOWN";
}

absl::StatusOr<Decision> Check(const OrgSnapshot& org, const CheckRequest& request,
                               absl::Time now) {
  absl::StatusOr<Action> found = FindAction(request.action);
  if (!found.ok()) return found.status();
  const Action action = *found;
  if (action.kind == ActionKind::kApi && request.model.empty() && !request.grants_only) {
    return absl::InvalidArgumentError(
        absl::StrCat("model is required for the API action ", action.name));
  }
  if (!action.org_scoped && request.project.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("project is required for ", action.name));
  }
  const bool is_account = request.principal_kind == PrincipalKind::kServiceAccount;
  if (is_account && !request.source_ip.has_value() && !request.grants_only) {
    return absl::InvalidArgumentError("source_ip is required for a service account");
  }

  Recorder r(request.explain, action.kind);
  const Member* member = is_account ? nullptr : org.FindMember(request.principal_id);
  const ServiceAccount* account =
      is_account ? org.FindServiceAccount(request.principal_id) : nullptr;
  if (member == nullptr && account == nullptr) {
    return r.Deny(DenyReason::kUnknownPrincipal, "principal.exists",
                  r.explain() ? absl::StrCat("no ", is_account ? "service account" : "member", " ",
                                             Quoted(request.principal_id))
                              : "");
  }
  r.Pass("principal.exists");
  const std::optional<absl::Time>& removed_at =
      member != nullptr ? member->removed_at : account->removed_at;
  if (removed_at.has_value() && now >= *removed_at) {
    return r.Deny(DenyReason::kPrincipalRemoved, "principal.active",
                  r.explain() ? absl::StrCat("removed at ", absl::FormatTime(*removed_at)) : "");
  }
  r.Pass("principal.active");

  const Project* project = nullptr;
  if (!request.project.empty()) {
    project = org.FindProject(request.project);
    if (project == nullptr) {
      return r.Deny(DenyReason::kProjectNotFound, "project.exists",
                    r.explain() ? absl::StrCat("no project ", Quoted(request.project)) : "");
    }
    r.Pass("project.exists");
    // An archived project keeps its settings readable; nothing else happens in it.
    if (project->archived && !IsOneOf(action.name, {"settings.read", "usage.read"})) {
      return r.Deny(DenyReason::kProjectArchived, "project.active",
                    r.explain() ? absl::StrCat(project->id, " is archived") : "");
    }
    r.Pass("project.active");
  }

  if (account != nullptr) {
    if (account->project != request.project) {
      return r.Deny(DenyReason::kPermissionDenied, "service_account.project",
                    r.explain() ? absl::StrCat("bound to project ", account->project) : "");
    }
    r.Pass("service_account.project");
    const bool permitted = action.kind == ActionKind::kApi &&
                           std::find(account->permissions.begin(), account->permissions.end(),
                                     action.name) != account->permissions.end();
    if (!permitted) {
      return r.Deny(DenyReason::kPermissionDenied, "service_account.permissions",
                    r.explain() ? absl::StrCat(action.name, " is not in its permission list") : "");
    }
    r.Pass("service_account.permissions");
    if (request.grants_only) return r.Allow("service_account.permissions");
    if (!account->ip_allowlist.Allows(*request.source_ip)) {
      return r.Deny(DenyReason::kIpNotAllowed, "service_account.ip_allowlist",
                    r.explain()
                        ? absl::StrCat(FormatIpAddress(*request.source_ip), " is in none of its ",
                                       account->ip_allowlist.entries().size(), " allowed networks")
                        : "");
    }
    r.Pass("service_account.ip_allowlist");
  } else {
    // A project whose keys only service accounts hold takes no call from a member, whatever
    // their roles (production, by default).
    if (action.kind == ActionKind::kApi && project->key_holders == KeyHolders::kServiceAccounts) {
      return r.Deny(DenyReason::kKeyHolderNotAllowed, "project.key_holders",
                    r.explain() ? absl::StrCat(project->id,
                                               "'s keys are held by its service "
                                               "accounts only")
                                : "");
    }
    if (action.kind == ActionKind::kApi) r.Pass("project.key_holders");
    // The member's grants that apply here: organisation roles, and roles in this project.
    bool allowed = false, expired_would_allow = false;
    for (const RoleGrant& grant : member->grants) {
      if (!GrantApplies(grant, request.project) || !RoleAllows(grant.role, action)) continue;
      if (GrantLive(grant, now)) {
        allowed = true;
        if (r.explain()) {
          r.Pass("grant.role", absl::StrCat(RoleName(grant.role), grant.project.empty()
                                                                      ? " of the organisation"
                                                                      : " of " + grant.project));
        }
        break;
      }
      expired_would_allow = true;
    }
    if (!allowed) {
      return expired_would_allow
                 ? r.Deny(DenyReason::kGrantExpired, "grant.role",
                          r.explain() ? "the grant that allowed this has expired" : "")
                 : r.Deny(DenyReason::kPermissionDenied, "grant.role",
                          r.explain() ? absl::StrCat("no role of this member allows ", action.name)
                                      : "");
    }
  }

  if (request.grants_only) return r.Allow("grant.role");
  if (action.kind == ActionKind::kApi) {
    const Residency kept = project->data_policy.residency;
    if (kept != Residency::kGlobal && request.residency != Residency::kGlobal &&
        request.residency != kept) {
      return r.Deny(
          DenyReason::kResidencyNotAllowed, "project.residency",
          r.explain() ? absl::StrCat("the request requires ", ResidencyName(request.residency),
                                     "; ", project->id, " keeps its data in ", ResidencyName(kept))
                      : "");
    }
    r.Pass("project.residency",
           r.explain() && kept != Residency::kGlobal
               ? absl::StrCat("routed within ", ResidencyName(kept), ", the project's residency")
               : "");
    const bool listed = std::find(project->allowed_models.begin(), project->allowed_models.end(),
                                  request.model) != project->allowed_models.end();
    if (!listed) {
      return r.Deny(
          DenyReason::kModelNotAllowed, "project.model_allowlist",
          r.explain() ? absl::StrCat(request.model, " is not allowed in ", project->id) : "");
    }
    r.Pass("project.model_allowlist");
  }
  return r.Allow(action.kind == ActionKind::kApi ? "project.model_allowlist" : "grant.role");
}

}  // namespace policy::authz
