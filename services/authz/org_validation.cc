#include "services/authz/org_validation.h"

#include <algorithm>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/ids/project_id.h"
#include "common/status/status.h"
#include "common/text/utf8.h"
#include "services/authz/decision.h"

namespace policy::authz {
namespace {

bool IsIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-' || c == '@' || c == '+' || c == ':';
}

bool IsModelName(absl::string_view model) {
  return !model.empty() && model.size() <= kMaxModelBytes &&
         std::all_of(model.begin(), model.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-' || c == ':' || c == '/';
         });
}

bool LiveOwner(const Member& member, absl::Time now) {
  if (member.removed_at.has_value() && now >= *member.removed_at) return false;
  return std::any_of(member.grants.begin(), member.grants.end(), [&](const RoleGrant& g) {
    return g.role == Role::kOwner && (!g.expires_at.has_value() || now < *g.expires_at);
  });
}

}  // namespace

absl::Status ValidateRequestId(absl::string_view request_id, bool required) {
  if (required && request_id.empty()) {
    return absl::InvalidArgumentError("request_id is required");
  }
  if (request_id.size() > kMaxRequestIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("request_id is longer than ", kMaxRequestIdBytes, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status ValidateId(absl::string_view id, absl::string_view field) {
  if (id.empty()) return absl::InvalidArgumentError(absl::StrCat(field, " is required"));
  if (id.size() > kMaxIdBytes) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is longer than 128 bytes"));
  }
  if (!std::all_of(id.begin(), id.end(), IsIdChar)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " may contain only letters, digits and . _ - @ + :"));
  }
  return absl::OkStatus();
}

absl::Status ValidateLimits(int64_t rpm, int64_t tpm, absl::string_view field) {
  if (rpm < 0 || tpm < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".rpm_limit and tpm_limit must not be negative"));
  }
  if (rpm > kMaxRpmLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".rpm_limit: more than the maximum of ", kMaxRpmLimit));
  }
  if (tpm > kMaxTpmLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".tpm_limit: more than the maximum of ", kMaxTpmLimit));
  }
  return absl::OkStatus();
}

namespace {

// Everything ValidateProject and ValidateStoredProject have in common.
absl::Status ValidateProjectSettings(const Project& project) {
  if (project.name.empty() || project.name.size() > kMaxNameBytes) {
    return absl::InvalidArgumentError("project.name must be 1 to 200 bytes");
  }
  if (project.data_policy.retention_days < 0 || project.data_policy.retention_days > 3650) {
    return absl::InvalidArgumentError("project.data_policy.retention_days must be 0 to 3650");
  }
  RETURN_IF_ERROR(ValidatePiiRules(project.data_policy.pii_rules, "project.data_policy.pii"));
  if (project.allowed_models.size() > kMaxModels) {
    return absl::InvalidArgumentError("project.allowed_models has more than 64 entries");
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < project.allowed_models.size(); ++i) {
    const std::string& model = project.allowed_models[i];
    if (!IsModelName(model)) {
      return absl::InvalidArgumentError(
          absl::StrCat("project.allowed_models[", i, "] is not a model name"));
    }
    if (!seen.insert(model).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("project.allowed_models[", i, "]: ", model, " is listed twice"));
    }
  }
  return absl::OkStatus();
}

bool IsEmailAddress(absl::string_view email) {
  const size_t at = email.find('@');
  return email.size() <= kMaxEmailBytes && at != absl::string_view::npos && at != 0 &&
         at + 1 < email.size() && email.find('@', at + 1) == absl::string_view::npos &&
         email.find_first_of(" <>") == absl::string_view::npos && IsPlainText(email);
}

}  // namespace

absl::Status ValidateProject(const Project& project) {
  RETURN_IF_ERROR(ids::ValidateProjectId(project.id, "project.id"));
  RETURN_IF_ERROR(ValidateLimits(project.rpm_limit, project.tpm_limit, "project"));
  RETURN_IF_ERROR(
      ValidateLimits(project.member_rpm_limit, project.member_tpm_limit, "project.member"));
  RETURN_IF_ERROR(ValidateProjectSettings(project));
  if (!IsPlainText(project.name)) {
    return absl::InvalidArgumentError("project.name must be UTF-8 text without control characters");
  }
  return absl::OkStatus();
}

absl::Status ValidateStoredProject(const Project& project) {
  RETURN_IF_ERROR(ValidateId(project.id, "project.id"));
  if (project.rpm_limit < 0 || project.tpm_limit < 0 || project.member_rpm_limit < 0 ||
      project.member_tpm_limit < 0) {
    return absl::InvalidArgumentError("project.rpm_limit and tpm_limit must not be negative");
  }
  return ValidateProjectSettings(project);
}

absl::Status ValidateMember(const Member& member) {
  if (absl::Status s = ValidateId(member.id, "member.id"); !s.ok()) return s;
  if (member.erased_at.has_value()) {
    if (!member.removed_at.has_value() || !member.email.empty()) {
      return absl::InvalidArgumentError(
          "member.erased_at: only a removed member is erased, and keeps no e-mail");
    }
  } else if (!IsEmailAddress(member.email)) {
    return absl::InvalidArgumentError("member.email is not an e-mail address");
  }
  if (member.grants.size() > kMaxGrants) {
    return absl::InvalidArgumentError("member.grants has more than 256 entries");
  }
  std::set<std::pair<std::string, Role>> seen;
  for (size_t i = 0; i < member.grants.size(); ++i) {
    const RoleGrant& grant = member.grants[i];
    const std::string field = absl::StrCat("member.grants[", i, "]");
    if (IsOrgRole(grant.role) && !grant.project.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": ", RoleName(grant.role), " is an organisation role; leave project empty"));
    }
    if (!IsOrgRole(grant.role)) {
      if (absl::Status s = ValidateId(grant.project, field + ".project"); !s.ok()) return s;
    }
    if (!seen.insert({grant.project, grant.role}).second) {
      return absl::InvalidArgumentError(absl::StrCat(field, " is granted twice"));
    }
  }
  return absl::OkStatus();
}

namespace {

// Everything ValidateServiceAccount and ValidateStoredServiceAccount have in common.
absl::Status ValidateServiceAccountSettings(const ServiceAccount& account) {
  if (absl::Status s = ValidateId(account.id, "service_account.id"); !s.ok()) return s;
  if (account.permissions.empty() || account.permissions.size() > kMaxPermissions) {
    return absl::InvalidArgumentError("service_account.permissions must have 1 to 32 entries");
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < account.permissions.size(); ++i) {
    const std::string field = absl::StrCat("service_account.permissions[", i, "]");
    absl::StatusOr<Action> action = FindAction(account.permissions[i]);
    if (!action.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": ", action.status().message()));
    }
    if (action->kind != ActionKind::kApi) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": ", action->name,
                                                     " is administrative; service accounts hold "
                                                     "API permissions only"));
    }
    if (!seen.insert(account.permissions[i]).second) {
      return absl::InvalidArgumentError(absl::StrCat(field, " is listed twice"));
    }
  }
  // Whole seconds: what keys' lifetimes and the organisation file are counted in.
  if (account.max_key_lifetime < absl::Seconds(1) ||
      account.max_key_lifetime > absl::Hours(24 * 365) ||
      absl::Trunc(account.max_key_lifetime, absl::Seconds(1)) != account.max_key_lifetime) {
    return absl::InvalidArgumentError(
        "service_account.max_key_lifetime must be whole seconds, from 1s to 365 days");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateServiceAccount(const ServiceAccount& account) {
  RETURN_IF_ERROR(ValidateServiceAccountSettings(account));
  RETURN_IF_ERROR(ids::ValidateProjectId(account.project, "service_account.project"));
  return ValidateLimits(account.rpm_limit, account.tpm_limit, "service_account");
}

absl::Status ValidateStoredServiceAccount(const ServiceAccount& account) {
  RETURN_IF_ERROR(ValidateServiceAccountSettings(account));
  RETURN_IF_ERROR(ValidateId(account.project, "service_account.project"));
  if (account.rpm_limit < 0 || account.tpm_limit < 0) {
    return absl::InvalidArgumentError(
        "service_account.rpm_limit and tpm_limit must not be negative");
  }
  return absl::OkStatus();
}

absl::Status CheckOwnersRemain(const std::vector<Member>& members, const Member& change,
                               absl::Time now) {
  const bool was_owner = std::any_of(members.begin(), members.end(), [&](const Member& m) {
    return m.id == change.id && LiveOwner(m, now);
  });
  if (!was_owner || LiveOwner(change, now)) return absl::OkStatus();
  const bool another = std::any_of(members.begin(), members.end(), [&](const Member& m) {
    return m.id != change.id && LiveOwner(m, now);
  });
  if (another) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat("member ", change.id, " is the last owner; make someone else owner first"));
}

}  // namespace policy::authz
