#include "services/authz/org_state.h"

#include <algorithm>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/crypto/crypto.h"
#include "common/ledger/ledger_record.h"
#include "common/status/status.h"
#include "common/text/caller_text.h"
#include "services/authz/org_validation.h"

namespace policy::authz {
namespace {

template <typename T>
const std::string& KeyOf(const T& entity) {
  return entity.id;
}
template <>
const std::string& KeyOf<IdpGroup>(const IdpGroup& group) {
  return group.name;
}

// Binary search in a list sorted by key; works on const and mutable lists alike.
template <typename Entities>
auto FindIn(Entities& entities, absl::string_view key) -> decltype(&entities[0]) {
  auto it = std::lower_bound(entities.begin(), entities.end(), key,
                             [](const auto& e, absl::string_view k) { return KeyOf(e) < k; });
  return it != entities.end() && KeyOf(*it) == key ? &*it : nullptr;
}

template <typename T>
void SortByKey(std::vector<T>& entities) {
  std::sort(entities.begin(), entities.end(),
            [](const T& a, const T& b) { return KeyOf(a) < KeyOf(b); });
}

template <typename T>
absl::Status CheckUnique(const std::vector<T>& entities, absl::string_view kind) {
  for (size_t i = 1; i < entities.size(); ++i) {
    if (KeyOf(entities[i]) == KeyOf(entities[i - 1])) {
      return absl::InvalidArgumentError(
          absl::StrCat(kind, " ", Quoted(KeyOf(entities[i])), " is defined twice"));
    }
  }
  return absl::OkStatus();
}

bool IsLowerHex(absl::string_view text, size_t digits) {
  return text.size() == digits && std::all_of(text.begin(), text.end(), [](char c) {
           return absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f');
         });
}

bool Removed(const std::optional<absl::Time>& removed_at) { return removed_at.has_value(); }

bool LiveOwner(const Member& member, absl::Time now) {
  if (Removed(member.removed_at)) return false;
  return std::any_of(member.grants.begin(), member.grants.end(), [&](const RoleGrant& g) {
    return g.role == Role::kOwner && (!g.expires_at.has_value() || now < *g.expires_at);
  });
}

// A member who stays owner for good: not removed, with an owner grant that never expires.
bool StandingOwner(const Member& member) {
  if (Removed(member.removed_at)) return false;
  return std::any_of(member.grants.begin(), member.grants.end(), [](const RoleGrant& g) {
    return g.role == Role::kOwner && !g.expires_at.has_value();
  });
}

std::string FormatOptionalTime(const std::optional<absl::Time>& t) {
  return t.has_value() ? FormatTimeText(*t) : "";
}

std::string FormatList(const std::vector<std::string>& items) {
  return absl::StrCat("[", absl::StrJoin(items, ", "), "]");
}

std::string FormatGrant(const RoleGrant& grant) {
  std::string text(RoleName(grant.role));
  if (!grant.project.empty()) absl::StrAppend(&text, "@", grant.project);
  if (grant.expires_at.has_value()) {
    absl::StrAppend(&text, " until ", FormatTimeText(*grant.expires_at));
  }
  return text;
}

std::string FormatPiiRules(const std::vector<PiiRule>& rules) {
  std::vector<std::string> items;
  for (const PiiRule& r : rules) items.push_back(FormatPiiRule(r));
  return FormatList(items);
}

std::string FormatGrants(const std::vector<RoleGrant>& grants) {
  std::vector<std::string> items;
  for (const RoleGrant& g : grants) items.push_back(FormatGrant(g));
  return FormatList(items);
}

// Each field named as the organisation file writes it, so that a plan reads as the file.
using Fields = std::vector<std::pair<std::string, std::string>>;

Fields FieldsOf(const Project& p) {
  return {{"name", p.name},
          {"environment", std::string(EnvironmentName(p.environment))},
          {"archived", p.archived ? "true" : "false"},
          {"data_policy.zero_data_retention", p.data_policy.zero_data_retention ? "true" : "false"},
          {"data_policy.retention_days", absl::StrCat(p.data_policy.retention_days)},
          {"data_policy.residency", std::string(ResidencyName(p.data_policy.residency))},
          {"data_policy.pii", FormatPiiRules(p.data_policy.pii_rules)},
          {"data_policy.data_class", std::string(DataClassName(p.data_policy.data_class))},
          {"models", FormatList(p.allowed_models)},
          {"limits.rpm", absl::StrCat(p.rpm_limit)},
          {"limits.tpm", absl::StrCat(p.tpm_limit)},
          {"limits.member_rpm", absl::StrCat(p.member_rpm_limit)},
          {"limits.member_tpm", absl::StrCat(p.member_tpm_limit)},
          {"key_holders", std::string(KeyHoldersName(p.key_holders))}};
}

Fields FieldsOf(const Member& m) {
  return {{"email", m.email},
          {"grants", FormatGrants(m.grants)},
          {"provisioned_by", m.provisioned_by},
          {"removed_at", FormatOptionalTime(m.removed_at)},
          {"erased_at", FormatOptionalTime(m.erased_at)}};
}

Fields FieldsOf(const ServiceAccount& a) {
  std::vector<std::string> networks;
  for (const Cidr& c : a.ip_allowlist.entries()) networks.push_back(FormatCidr(c));
  return {{"project", a.project},
          {"environment", std::string(EnvironmentName(a.environment))},
          {"permissions", FormatList(a.permissions)},
          {"ip_allowlist", FormatList(networks)},
          {"limits.rpm", absl::StrCat(a.rpm_limit)},
          {"limits.tpm", absl::StrCat(a.tpm_limit)},
          {"max_key_lifetime", absl::FormatDuration(a.max_key_lifetime)},
          {"removed_at", FormatOptionalTime(a.removed_at)}};
}

// What a diff shows of an invitation: not its digests nor its creator, so that replacing its
// secret id is an update without fields.
Fields FieldsOf(const Invitation& i) {
  return {{"email", i.email},
          {"role", std::string(RoleName(i.role))},
          {"projects", FormatList(i.projects)},
          {"expires_at", FormatTimeText(i.expires_at)},
          {"state", std::string(InvitationStateName(i.state))},
          {"closed_at", FormatOptionalTime(i.closed_at)}};
}

Fields FieldsOf(const IdpGroup& g) {
  return {{"grants", FormatGrants(g.grants)}, {"members", FormatList(g.members)}};
}

template <typename T>
void DiffKind(const std::vector<T>& before, const std::vector<T>& after, absl::string_view kind,
              std::vector<EntityChange>& out) {
  size_t i = 0, j = 0;
  while (i < before.size() || j < after.size()) {
    if (j == after.size() || (i < before.size() && KeyOf(before[i]) < KeyOf(after[j]))) {
      EntityChange change{EntityChange::Op::kDelete, std::string(kind), KeyOf(before[i]), {}};
      for (auto& [field, value] : FieldsOf(before[i])) change.fields.push_back({field, value, ""});
      out.push_back(std::move(change));
      ++i;
    } else if (i == before.size() || KeyOf(after[j]) < KeyOf(before[i])) {
      EntityChange change{EntityChange::Op::kCreate, std::string(kind), KeyOf(after[j]), {}};
      for (auto& [field, value] : FieldsOf(after[j])) {
        if (!value.empty()) change.fields.push_back({field, "", value});
      }
      out.push_back(std::move(change));
      ++j;
    } else {
      if (!(before[i] == after[j])) {
        EntityChange change{EntityChange::Op::kUpdate, std::string(kind), KeyOf(after[j]), {}};
        Fields old_fields = FieldsOf(before[i]), new_fields = FieldsOf(after[j]);
        for (size_t f = 0; f < new_fields.size(); ++f) {
          if (old_fields[f].second != new_fields[f].second) {
            change.fields.push_back(
                {new_fields[f].first, old_fields[f].second, new_fields[f].second});
          }
        }
        out.push_back(std::move(change));
      }
      ++i;
      ++j;
    }
  }
}

absl::Status CheckProjectExists(const OrgState& state, absl::string_view project,
                                absl::string_view who) {
  if (state.FindProject(project) != nullptr) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(who, " names unknown project ", Quoted(project)));
}

// A project's environment is its own for good: it decides who may hold the project's keys (by
// default service accounts only in production) and the environment its keys and service
// accounts live in.
absl::Status CheckEnvironmentsKept(const OrgState& before, const OrgState& after) {
  for (const Project& p : after.projects) {
    const Project* old = before.FindProject(p.id);
    if (old == nullptr || old->environment == p.environment) continue;
    return absl::FailedPreconditionError(
        absl::StrCat("project ", Quoted(p.id), ": environment: ", EnvironmentName(old->environment),
                     " cannot change to ", EnvironmentName(p.environment),
                     " (it decides who may hold the project's keys); create a project in ",
                     EnvironmentName(p.environment), " instead"));
  }
  return absl::OkStatus();
}

}  // namespace

Project* OrgState::FindProject(absl::string_view id) { return FindIn(projects, id); }
Member* OrgState::FindMember(absl::string_view id) { return FindIn(members, id); }
ServiceAccount* OrgState::FindServiceAccount(absl::string_view id) {
  return FindIn(service_accounts, id);
}
Invitation* OrgState::FindInvitation(absl::string_view id) { return FindIn(invitations, id); }
IdpGroup* OrgState::FindIdpGroup(absl::string_view name) { return FindIn(idp_groups, name); }
const Project* OrgState::FindProject(absl::string_view id) const { return FindIn(projects, id); }
const Member* OrgState::FindMember(absl::string_view id) const { return FindIn(members, id); }
const ServiceAccount* OrgState::FindServiceAccount(absl::string_view id) const {
  return FindIn(service_accounts, id);
}
const Invitation* OrgState::FindInvitation(absl::string_view id) const {
  return FindIn(invitations, id);
}
const IdpGroup* OrgState::FindIdpGroup(absl::string_view name) const {
  return FindIn(idp_groups, name);
}

Invitation* OrgState::FindInvitationBySecret(absl::string_view secret_digest) {
  for (Invitation& i : invitations) {
    if (SecretDigestOf(i) == secret_digest) return &i;
  }
  return nullptr;
}

Invitation* OrgState::FindInvitationByRequest(absl::string_view request_digest) {
  if (request_digest.empty()) return nullptr;
  for (Invitation& i : invitations) {
    if (i.request_digest == request_digest) return &i;
  }
  return nullptr;
}

Member* OrgState::FindActiveMemberByEmail(absl::string_view email) {
  for (Member& m : members) {
    if (!Removed(m.removed_at) && m.email == email) return &m;
  }
  return nullptr;
}

uint64_t OrgState::NextMemberNumber(absl::string_view prefix) const {
  uint64_t highest = 0;
  for (const Member& m : members) {
    if (!absl::StartsWith(m.id, prefix)) continue;
    const absl::string_view number = absl::string_view(m.id).substr(prefix.size());
    uint64_t n = 0;
    if (!number.empty() && number.size() < 20 &&
        std::all_of(number.begin(), number.end(), absl::ascii_isdigit) &&
        absl::SimpleAtoi(number, &n)) {
      highest = std::max(highest, n);
    }
  }
  return highest + 1;
}

void OrgState::Sort() {
  const auto by_grant = [](const RoleGrant& a, const RoleGrant& b) {
    return std::tie(a.project, a.role) < std::tie(b.project, b.role);
  };
  for (Project& p : projects) {
    std::sort(p.allowed_models.begin(), p.allowed_models.end());
    SortPiiRules(p.data_policy.pii_rules);
  }
  for (Member& m : members) std::sort(m.grants.begin(), m.grants.end(), by_grant);
  for (ServiceAccount& a : service_accounts) std::sort(a.permissions.begin(), a.permissions.end());
  for (Invitation& i : invitations) std::sort(i.projects.begin(), i.projects.end());
  for (IdpGroup& g : idp_groups) {
    std::sort(g.grants.begin(), g.grants.end(), by_grant);
    std::sort(g.members.begin(), g.members.end());
  }
  SortByKey(projects);
  SortByKey(members);
  SortByKey(service_accounts);
  SortByKey(invitations);
  SortByKey(idp_groups);
}

std::shared_ptr<const OrgSnapshot> SnapshotOf(const OrgState& state, absl::Time as_of) {
  return OrgSnapshot::Build(state.projects, state.members, state.service_accounts, as_of,
                            state.idp_groups);
}

absl::Status ValidateOrgState(const OrgState& state) {
  RETURN_IF_ERROR(CheckUnique(state.projects, "project"));
  RETURN_IF_ERROR(CheckUnique(state.members, "member"));
  RETURN_IF_ERROR(CheckUnique(state.service_accounts, "service account"));
  RETURN_IF_ERROR(CheckUnique(state.invitations, "invitation"));
  RETURN_IF_ERROR(CheckUnique(state.idp_groups, "group"));
  for (const Project& p : state.projects) {
    if (absl::Status s = ValidateStoredProject(p); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("project ", Quoted(p.id), ": ", s.message()));
    }
  }
  absl::flat_hash_set<absl::string_view> emails;
  for (const Member& m : state.members) {
    if (absl::Status s = ValidateMember(m); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("member ", Quoted(m.id), ": ", s.message()));
    }
    if (!Removed(m.removed_at) && !emails.insert(m.email).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("member ", Quoted(m.id), ": another member has the e-mail ", m.email));
    }
    for (const RoleGrant& g : m.grants) {
      if (!g.project.empty()) {
        RETURN_IF_ERROR(
            CheckProjectExists(state, g.project, absl::StrCat("member ", Quoted(m.id))));
      }
    }
  }
  for (const ServiceAccount& a : state.service_accounts) {
    if (absl::Status s = ValidateStoredServiceAccount(a); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("service account ", Quoted(a.id), ": ", s.message()));
    }
    const std::string who = absl::StrCat("service account ", Quoted(a.id));
    RETURN_IF_ERROR(CheckProjectExists(state, a.project, who));
    const Project* project = state.FindProject(a.project);
    // A removed account keeps the environment it had; it does not pin its project's.
    if (!Removed(a.removed_at) && project->environment != a.environment) {
      return absl::InvalidArgumentError(
          absl::StrCat(who, ": environment ", EnvironmentName(a.environment), " differs from ",
                       EnvironmentName(project->environment), " of project ", a.project));
    }
  }
  absl::flat_hash_set<absl::string_view> request_digests;
  for (const Invitation& i : state.invitations) {
    // The secret id is never kept: only its digest.
    if (!IsLowerHex(i.id, 2 * crypto::kSha256Size) ||
        (!i.secret_digest.empty() && !IsLowerHex(i.secret_digest, 2 * crypto::kSha256Size))) {
      return absl::InvalidArgumentError(
          "an invitation's id must be the SHA-256 of its secret id in lowercase hex");
    }
    // Nor the request id: only its InvitationRequestDigest.
    if (!i.request_digest.empty()) {
      if (!IsLowerHex(i.request_digest, 32)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "invitation ", Quoted(i.id), ": the request digest must be 32 lowercase hex digits"));
      }
      if (!request_digests.insert(i.request_digest).second) {
        return absl::InvalidArgumentError(absl::StrCat(
            "invitation ", Quoted(i.id), ": another invitation has the same request id"));
      }
    }
    for (const std::string& p : i.projects) {
      RETURN_IF_ERROR(CheckProjectExists(state, p, absl::StrCat("invitation ", Quoted(i.id))));
    }
  }
  for (const IdpGroup& g : state.idp_groups) {
    const std::string who = absl::StrCat("group ", Quoted(g.name));
    if (g.name.empty() || g.name.size() > kMaxNameBytes) {
      return absl::InvalidArgumentError("group name must be 1 to 200 bytes");
    }
    if (g.grants.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(who, " grants no role"));
    }
    for (const RoleGrant& grant : g.grants) {
      if (IsOrgRole(grant.role)) {
        return absl::InvalidArgumentError(absl::StrCat(
            who, ": groups grant project roles (member, reader) only, not ", RoleName(grant.role)));
      }
      RETURN_IF_ERROR(CheckProjectExists(state, grant.project, who));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateTransition(const OrgState& before, const OrgState& after, absl::Time now) {
  for (const Project& p : before.projects) {
    if (after.FindProject(p.id) == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("project ", Quoted(p.id), " cannot be deleted; archive it instead"));
    }
  }
  // New projects meet today's rules in full, changed limits today's bounds.
  for (const Project& p : after.projects) {
    const Project* old = before.FindProject(p.id);
    absl::Status s = absl::OkStatus();
    if (old == nullptr) {
      s = ValidateProject(p);
    } else if (old->rpm_limit != p.rpm_limit || old->tpm_limit != p.tpm_limit ||
               old->member_rpm_limit != p.member_rpm_limit ||
               old->member_tpm_limit != p.member_tpm_limit) {
      s = ValidateLimits(p.rpm_limit, p.tpm_limit, "project");
      if (s.ok()) s = ValidateLimits(p.member_rpm_limit, p.member_tpm_limit, "project.member");
    }
    if (!s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("project ", Quoted(p.id), ": ", s.message()));
    }
  }
  for (const ServiceAccount& a : after.service_accounts) {
    const ServiceAccount* old = before.FindServiceAccount(a.id);
    absl::Status s = absl::OkStatus();
    if (old == nullptr) {
      s = ValidateServiceAccount(a);
    } else if (old->rpm_limit != a.rpm_limit || old->tpm_limit != a.tpm_limit) {
      s = ValidateLimits(a.rpm_limit, a.tpm_limit, "service_account");
    }
    if (!s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("service account ", Quoted(a.id), ": ", s.message()));
    }
  }
  auto archived_now = [&](absl::string_view project) {
    const Project* p = after.FindProject(project);
    return p != nullptr && p->archived;
  };
  for (const Member& m : before.members) {
    const Member* next = after.FindMember(m.id);
    if (next == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("member ", Quoted(m.id), " cannot be deleted; remove it instead"));
    }
    if (Removed(m.removed_at) && next->removed_at != m.removed_at) {
      return absl::FailedPreconditionError(absl::StrCat("member ", Quoted(m.id), " was removed at ",
                                                        FormatTimeText(*m.removed_at),
                                                        "; removal is final, use a new id"));
    }
    if (m.erased_at.has_value() && (next->erased_at != m.erased_at || next->email != m.email)) {
      return absl::FailedPreconditionError(
          absl::StrCat("member ", Quoted(m.id), " was erased; erasure is final"));
    }
  }
  for (const Member& m : after.members) {
    const Member* old = before.FindMember(m.id);
    for (const RoleGrant& g : m.grants) {
      const bool had = old != nullptr &&
                       std::any_of(old->grants.begin(), old->grants.end(), [&](const RoleGrant& o) {
                         return o.role == g.role && o.project == g.project;
                       });
      if (!had && !g.project.empty() && archived_now(g.project)) {
        return absl::FailedPreconditionError(absl::StrCat("member ", Quoted(m.id), ": project ",
                                                          g.project,
                                                          " is archived; nothing new is granted"));
      }
    }
  }
  for (const ServiceAccount& a : before.service_accounts) {
    const ServiceAccount* next = after.FindServiceAccount(a.id);
    if (next == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("service account ", Quoted(a.id), " cannot be deleted; remove it instead"));
    }
    if (Removed(a.removed_at) && next->removed_at != a.removed_at) {
      return absl::FailedPreconditionError(
          absl::StrCat("service account ", Quoted(a.id), " was removed; removal is final"));
    }
  }
  for (const ServiceAccount& a : after.service_accounts) {
    const bool is_new = before.FindServiceAccount(a.id) == nullptr;
    if (is_new && archived_now(a.project)) {
      return absl::FailedPreconditionError(
          absl::StrCat("service account ", Quoted(a.id), ": project ", a.project, " is archived"));
    }
  }
  for (const Invitation& i : after.invitations) {
    if (before.FindInvitation(i.id) != nullptr) continue;
    for (const std::string& p : i.projects) {
      if (archived_now(p)) {
        return absl::FailedPreconditionError(
            absl::StrCat("invitation ", Quoted(i.id), ": project ", p, " is archived"));
      }
    }
  }
  // Owners: the organisation keeps one whose owner grant never expires, since an owner grant
  // that lapses with no owner left could not be given again by anyone. An organisation stored
  // before this rule without such an owner keeps at least one live owner until it has one.
  const auto live_owner = [&](const Member& m) { return LiveOwner(m, now); };
  const bool standing_before =
      std::any_of(before.members.begin(), before.members.end(), StandingOwner);
  const bool live_before = std::any_of(before.members.begin(), before.members.end(), live_owner);
  const bool live_after = std::any_of(after.members.begin(), after.members.end(), live_owner);
  if ((standing_before || (!live_before && live_after)) &&
      std::none_of(after.members.begin(), after.members.end(), StandingOwner)) {
    std::vector<std::string> expiring;
    for (const Member& m : after.members) {
      if (!live_owner(m)) continue;
      for (const RoleGrant& g : m.grants) {
        if (g.role == Role::kOwner && g.expires_at.has_value() && now < *g.expires_at) {
          expiring.push_back(absl::StrCat("the owner grant of member ", Quoted(m.id), " expires ",
                                          FormatTimeText(*g.expires_at)));
        }
      }
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "this change would leave the organisation without an owner whose owner grant never "
        "expires",
        expiring.empty() ? "" : absl::StrCat(" (", absl::StrJoin(expiring, "; "), ")"),
        "; make someone owner without an expiry first"));
  }
  if (live_before && !live_after) {
    return absl::FailedPreconditionError(
        "this change would leave the organisation without an owner; make someone else owner "
        "first");
  }
  return absl::OkStatus();
}

absl::StatusOr<OrgState> ApplyMutation(const OrgState& before, const OrgMutation& mutation,
                                       absl::Time now) {
  OrgState after = before;
  RETURN_IF_ERROR(mutation(after));
  after.Sort();
  after.version = before.version;
  if (Diff(before, after).empty()) return after;
  RETURN_IF_ERROR(CheckEnvironmentsKept(before, after));
  RETURN_IF_ERROR(ValidateOrgState(after));
  RETURN_IF_ERROR(ValidateTransition(before, after, now));
  // Each member's removal id: kept once drawn, drawn for a member removed now, none for an
  // active member; whatever the mutation did to it.
  for (Member& m : after.members) {
    const Member* old = before.FindMember(m.id);
    if (old != nullptr && old->removed_at.has_value()) {
      m.removal_id = old->removal_id;
    } else if (m.removed_at.has_value()) {
      ASSIGN_OR_RETURN(m.removal_id, ledger::NewRequestId(""));
    } else {
      m.removal_id.clear();
    }
  }
  after.version = before.version + 1;
  return after;
}

absl::string_view OpName(EntityChange::Op op) {
  switch (op) {
    case EntityChange::Op::kCreate:
      return "create";
    case EntityChange::Op::kUpdate:
      return "update";
    case EntityChange::Op::kDelete:
      return "delete";
  }
  return "unknown";
}

RemovedPrincipals RemovedSince(const OrgState& state, absl::Time since) {
  RemovedPrincipals removed;
  for (const Member& m : state.members) {
    if (m.removed_at.has_value() && *m.removed_at >= since) removed.members.push_back(m.id);
  }
  for (const ServiceAccount& a : state.service_accounts) {
    if (a.removed_at.has_value() && *a.removed_at >= since) {
      removed.service_accounts.push_back(a.id);
    }
  }
  std::sort(removed.members.begin(), removed.members.end());
  std::sort(removed.service_accounts.begin(), removed.service_accounts.end());
  return removed;
}

bool IdReadingOrder(absl::string_view a, absl::string_view b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (absl::ascii_isdigit(a[i]) && absl::ascii_isdigit(b[j])) {
      const auto number = [](absl::string_view text, size_t& at) {
        while (at + 1 < text.size() && text[at] == '0' && absl::ascii_isdigit(text[at + 1])) {
          ++at;
        }
        const size_t start = at;
        while (at < text.size() && absl::ascii_isdigit(text[at])) ++at;
        return text.substr(start, at - start);
      };
      const absl::string_view x = number(a, i), y = number(b, j);
      if (x.size() != y.size()) return x.size() < y.size();
      if (x != y) return x < y;
      continue;
    }
    if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]);
    ++i;
    ++j;
  }
  if (i < a.size() || j < b.size()) return j < b.size();
  return a < b;
}

std::vector<EntityChange> Diff(const OrgState& before, const OrgState& after) {
  std::vector<EntityChange> changes;
  DiffKind(before.projects, after.projects, "project", changes);
  DiffKind(before.members, after.members, "member", changes);
  DiffKind(before.service_accounts, after.service_accounts, "service_account", changes);
  DiffKind(before.invitations, after.invitations, "invitation", changes);
  DiffKind(before.idp_groups, after.idp_groups, "idp_group", changes);
  return changes;
}

std::vector<EntityChange> InReadingOrder(std::vector<EntityChange> changes) {
  for (auto kind = changes.begin(); kind != changes.end();) {
    const auto end = std::find_if(kind, changes.end(),
                                  [&](const EntityChange& c) { return c.kind != kind->kind; });
    std::stable_sort(kind, end, [](const EntityChange& x, const EntityChange& y) {
      return IdReadingOrder(x.id, y.id);
    });
    kind = end;
  }
  return changes;
}

std::string FormatTimeText(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

std::string FormatDiff(const std::vector<EntityChange>& changes) {
  std::string text;
  for (const EntityChange& c : changes) {
    const char* sign = c.op == EntityChange::Op::kCreate   ? "+"
                       : c.op == EntityChange::Op::kDelete ? "-"
                                                           : "~";
    // Removing a member or a service account is an update of removed_at, but it is final and
    // revokes their keys: the plan says so.
    const bool removal = c.op == EntityChange::Op::kUpdate &&
                         std::any_of(c.fields.begin(), c.fields.end(), [](const FieldChange& f) {
                           return f.field == "removed_at" && f.before.empty() && !f.after.empty();
                         });
    absl::StrAppend(&text, sign, " ", c.kind, " ", c.id,
                    removal ? "  (removed for good: every key it holds is revoked, and the id "
                              "cannot come back)"
                            : "",
                    "\n");
    if (c.op == EntityChange::Op::kDelete) continue;
    for (const FieldChange& f : c.fields) {
      if (c.op == EntityChange::Op::kCreate) {
        absl::StrAppend(&text, "    ", f.field, ": ", f.after, "\n");
      } else {
        absl::StrAppend(&text, "    ", f.field, ": ", f.before.empty() ? "(none)" : f.before,
                        " -> ", f.after.empty() ? "(none)" : f.after, "\n");
      }
    }
  }
  return text;
}

}  // namespace policy::authz
