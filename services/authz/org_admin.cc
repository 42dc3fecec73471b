#include "services/authz/org_admin.h"

#include <algorithm>
#include <initializer_list>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/crypto/crypto.h"
#include "common/status/status.h"
#include "common/text/caller_text.h"
#include "services/authz/decision.h"
#include "services/authz/org_file.h"
#include "services/authz/org_validation.h"

namespace policy::authz {
namespace {

bool HoldsOwner(const std::vector<RoleGrant>& grants) {
  return std::any_of(grants.begin(), grants.end(),
                     [](const RoleGrant& g) { return g.role == Role::kOwner; });
}

bool LimitsDiffer(const Project& a, const Project& b) {
  return a.rpm_limit != b.rpm_limit || a.tpm_limit != b.tpm_limit ||
         a.member_rpm_limit != b.member_rpm_limit || a.member_tpm_limit != b.member_tpm_limit;
}

bool LimitsDiffer(const ServiceAccount& a, const ServiceAccount& b) {
  return a.rpm_limit != b.rpm_limit || a.tpm_limit != b.tpm_limit;
}

// Until when `id` manages owners in `state` (an active member's organisation owner grant
// live at `now`, the latest of them; InfiniteFuture for one without an end); InfinitePast when
// they do not.
absl::Time OwnerUntil(const OrgState& state, absl::string_view id, absl::Time now) {
  const Member* member = state.FindMember(id);
  absl::Time until = absl::InfinitePast();
  if (member == nullptr || member->removed_at.has_value()) return until;
  for (const RoleGrant& g : member->grants) {
    if (g.role != Role::kOwner || !g.project.empty()) continue;
    const absl::Time end = g.expires_at.value_or(absl::InfiniteFuture());
    if (end > now) until = std::max(until, end);
  }
  return until;
}

// An organisation file may not take owners.manage from the owner applying it (removing them,
// or their owner grant, or ending it sooner): the file could otherwise leave owners none of
// whom holds an admin key, and no one able to issue one. Another owner makes that change.
absl::Status CheckApplierStaysOwner(const OrgState& before, const OrgState& after,
                                    absl::string_view actor, absl::Time now) {
  const absl::Time was = OwnerUntil(before, actor, now);
  if (was == absl::InfinitePast() || OwnerUntil(after, actor, now) >= was) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "the file removes ", Quoted(actor),
      ", who applies it, or their owner grant (or ends it sooner); an owner "
      "cannot take their own ownership away by a file (another owner applies that change), so "
      "that an owner able to issue admin keys remains"));
}

absl::Status NotFound(absl::string_view kind, absl::string_view id) {
  return absl::NotFoundError(absl::StrCat("no ", kind, " ", Quoted(id)));
}

// A creation where `stored` holds the id already: OK when `wanted` asks for exactly what is
// stored (a retried creation, which then changes and records nothing), else ALREADY_EXISTS
// naming the first field, as the proto names it, in which they differ. A removed member or
// service account, or an archived project, differs in removed_at or archived: never revived.
absl::Status ExistsAlready(absl::string_view kind, absl::string_view id,
                           std::initializer_list<std::pair<bool, absl::string_view>> differs) {
  // An archived or removed id first, whatever else differs (an erased member's address).
  for (const auto& [differ, field] : differs) {
    if (differ && (field == "archived" || field == "removed_at")) {
      return absl::AlreadyExistsError(absl::StrCat(
          kind, " ", Quoted(id), field == "archived" ? " was archived" : " was removed",
          ": its id is never used again; choose another"));
    }
  }
  for (const auto& [differ, field] : differs) {
    if (differ) {
      return absl::AlreadyExistsError(
          absl::StrCat(kind, " ", Quoted(id), " exists already, with a different ", field));
    }
  }
  return absl::OkStatus();
}

// Compared as stored: lists sorted as OrgState::Sort sorts them.
template <typename T>
T Normalized(T entity) {
  OrgState state;
  if constexpr (std::is_same_v<T, Project>) {
    state.projects.push_back(std::move(entity));
    state.Sort();
    return std::move(state.projects.front());
  } else if constexpr (std::is_same_v<T, Member>) {
    state.members.push_back(std::move(entity));
    state.Sort();
    return std::move(state.members.front());
  } else {
    state.service_accounts.push_back(std::move(entity));
    state.Sort();
    return std::move(state.service_accounts.front());
  }
}

absl::Status CreationOver(const Project& stored, const Project& wanted) {
  const Project w = Normalized(wanted);
  return ExistsAlready(
      "project", stored.id,
      {{stored.name != w.name, "name"},
       {stored.environment != w.environment, "environment"},
       {stored.archived != w.archived, "archived"},
       {stored.data_policy != w.data_policy, "data_policy"},
       {stored.allowed_models != w.allowed_models, "allowed_models"},
       {stored.rpm_limit != w.rpm_limit || stored.tpm_limit != w.tpm_limit, "limits"},
       {stored.member_rpm_limit != w.member_rpm_limit ||
            stored.member_tpm_limit != w.member_tpm_limit,
        "member_limits"},
       {stored.key_holders != w.key_holders, "key_holders"},
       {stored != w, "setting"}});
}

absl::Status CreationOver(const Member& stored, const Member& wanted) {
  const Member w = Normalized(wanted);
  return ExistsAlready("member", stored.id,
                       {{stored.email != w.email, "email"},
                        {stored.grants != w.grants, "grants"},
                        {stored.removed_at != w.removed_at, "removed_at"},
                        {stored.provisioned_by != w.provisioned_by, "provisioned_by"},
                        {stored != w, "setting"}});
}

absl::Status CreationOver(const ServiceAccount& stored, const ServiceAccount& wanted) {
  const ServiceAccount w = Normalized(wanted);
  return ExistsAlready(
      "service account", stored.id,
      {{stored.project != w.project, "project"},
       {stored.environment != w.environment, "environment"},
       {stored.permissions != w.permissions, "permissions"},
       {stored.ip_allowlist != w.ip_allowlist, "ip_allowlist"},
       {stored.rpm_limit != w.rpm_limit || stored.tpm_limit != w.tpm_limit, "limits"},
       {stored.max_key_lifetime != w.max_key_lifetime, "max_key_lifetime"},
       {stored.removed_at != w.removed_at, "removed_at"},
       {stored != w, "setting"}});
}

// A creation retried under the request id that created `earlier`: OK when `asked` (with
// `projects`, its projects sorted as stored, and `valid_for`) asks for what `earlier` holds,
// else ALREADY_EXISTS naming the first field, as the request names it, that differs. The
// member first, so that another member learns nothing of what was asked.
absl::Status RetriedInvitation(const Invitation& earlier, const Invitation& asked,
                               const std::vector<std::string>& projects, absl::Duration valid_for,
                               absl::string_view request_id) {
  const std::pair<bool, absl::string_view> differs[] = {
      {earlier.created_by != asked.created_by, "actor"},
      {earlier.email != asked.email, "email"},
      {earlier.role != asked.role, "role"},
      {earlier.projects != projects, "projects"},
      {earlier.expires_at - earlier.created_at != valid_for, "valid_for"},
  };
  for (const auto& [differ, field] : differs) {
    if (differ) {
      return absl::AlreadyExistsError(absl::StrCat("request_id ", Quoted(request_id),
                                                   " created an invitation already,",
                                                   " with a different ", field));
    }
  }
  return absl::OkStatus();
}

// What a plan would do to organisation `version`. The changes stamp the time they are made
// (a removal's removed_at is `now`); the fingerprint names that time "(now)", so that applying
// a plan later matches it.
std::string PlanFingerprint(int64_t version, const std::vector<EntityChange>& changes,
                            absl::Time now) {
  const std::string diff =
      absl::StrReplaceAll(FormatDiff(changes), {{FormatTimeText(now), "(now)"}});
  return absl::BytesToHexString(crypto::Sha256(absl::StrCat("org-plan/v1\n", version, "\n", diff)));
}

}  // namespace

absl::Status CheckFileReference(absl::string_view reference) {
  const bool allowed = std::all_of(reference.begin(), reference.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
           absl::string_view("._:/+#-").find(c) != absl::string_view::npos;
  });
  if (reference.size() <= kMaxFileReferenceBytes && allowed) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "reference: at most ", kMaxFileReferenceBytes,
      " bytes of letters, digits and . _ : / + # - (a commit or a tag; never personal data, "
      "which the ledger would keep)"));
}

OrgAdmin::OrgAdmin(OrgStore* store, const OrgCache* cache, Clock* clock)
    : store_(store), cache_(cache), clock_(clock) {}

absl::Status OrgAdmin::Authorize(absl::string_view actor, absl::string_view action,
                                 absl::string_view project) const {
  ASSIGN_OR_RETURN(OrgView view, cache_->Current());
  return Authorize(view, actor, action, project);
}

absl::Status OrgAdmin::Authorize(const OrgView& view, absl::string_view actor,
                                 absl::string_view action, absl::string_view project) const {
  if (actor.empty()) return absl::UnauthenticatedError("actor.member_id is required");
  CheckRequest check;
  check.principal_kind = PrincipalKind::kMember;
  check.principal_id = std::string(actor);
  check.project = std::string(project);
  check.action = std::string(action);
  const absl::Time now = clock_->Now();
  ASSIGN_OR_RETURN(Decision decision, Check(*view.snapshot, check, now));
  if (decision.allowed) return absl::OkStatus();
  // A missing project is the caller's problem to see as such, not a permission question.
  if (decision.reason == DenyReason::kProjectNotFound) return NotFound("project", project);
  // So is an archived one, to a caller whose roles would allow the action were it active.
  if (decision.reason == DenyReason::kProjectArchived) {
    const Member* member = view.snapshot->FindMember(actor);
    ASSIGN_OR_RETURN(const Action wanted, FindAction(action));
    if (member != nullptr && GrantsAllow(*member, project, wanted, now)) {
      return WithReason(absl::FailedPreconditionError(
                            absl::StrCat("project ", Quoted(project), " is archived; it allows no ",
                                         action, ", only reading its settings")),
                        DenyReasonName(decision.reason));
    }
  }
  return WithReason(
      absl::PermissionDeniedError(absl::StrCat(
          "member ", Quoted(actor), " may not ", action, project.empty() ? "" : " in ", project,
          " (",
          decision.reason == DenyReason::kPermissionDenied ? "no role of theirs grants it"
          : decision.reason == DenyReason::kUnknownPrincipal
              ? "UNKNOWN_PRINCIPAL: not a member of the organisation"
              : DenyReasonName(decision.reason),
          ")")),
      DenyReasonName(decision.reason));
}

absl::StatusOr<Project> OrgAdmin::CreateProject(absl::string_view actor, Project project) {
  RETURN_IF_ERROR(Authorize(actor, "projects.manage"));
  if (LimitsDiffer(project, Project{})) RETURN_IF_ERROR(Authorize(actor, "billing.manage"));
  project.archived = false;
  ASSIGN_OR_RETURN(Mutated m, store_->Mutate(
                                  [&](OrgState& s) -> absl::Status {
                                    if (const Project* p = s.FindProject(project.id)) {
                                      return CreationOver(*p, project);
                                    }
                                    s.projects.push_back(project);
                                    return absl::OkStatus();
                                  },
                                  clock_->Now(), OrgChangeSource{std::string(actor)}));
  return *m.after->FindProject(project.id);
}

absl::StatusOr<Project> OrgAdmin::UpdateProject(absl::string_view actor, Project project,
                                                UnstatedSettings unstated,
                                                const std::optional<Project>& expected) {
  RETURN_IF_ERROR(Authorize(actor, "project.update", project.id));
  ASSIGN_OR_RETURN(OrgView view, cache_->Current());
  const Project* current = view.state->FindProject(project.id);
  if (current == nullptr) return NotFound("project", project.id);
  if (LimitsDiffer(*current, project)) RETURN_IF_ERROR(Authorize(actor, "billing.manage"));
  ASSIGN_OR_RETURN(
      Mutated m, store_->Mutate(
                     [&](OrgState& s) -> absl::Status {
                       Project* p = s.FindProject(project.id);
                       if (p == nullptr) return NotFound("project", project.id);
                       if (LimitsDiffer(*p, project) && LimitsDiffer(*current, *p)) {
                         return absl::AbortedError("the project's limits changed meanwhile; retry");
                       }
                       project.archived = p->archived;
                       if (unstated.key_holders) project.key_holders = p->key_holders;
                       if (unstated.residency) {
                         project.data_policy.residency = p->data_policy.residency;
                       }
                       if (unstated.pii_rules) {
                         project.data_policy.pii_rules = p->data_policy.pii_rules;
                       }
                       if (unstated.data_class) {
                         project.data_policy.data_class = p->data_policy.data_class;
                       }
                       // Neither what the caller read nor what it asks for (a retry): another
                       // change came in between, which writing this would undo.
                       if (expected.has_value()) {
                         Project read = Normalized(*expected);
                         read.archived = p->archived;
                         // What the caller read, as a client that does not know these
                         // settings read it.
                         if (unstated.key_holders) read.key_holders = p->key_holders;
                         if (unstated.residency) {
                           read.data_policy.residency = p->data_policy.residency;
                         }
                         if (unstated.pii_rules) {
                           read.data_policy.pii_rules = p->data_policy.pii_rules;
                         }
                         if (unstated.data_class) {
                           read.data_policy.data_class = p->data_policy.data_class;
                         }
                         if (*p != read && *p != Normalized(project)) {
                           return absl::FailedPreconditionError(absl::StrCat(
                               "expected: project ", Quoted(project.id),
                               " changed since it was read; read it again and repeat the "
                               "change (nothing was changed)"));
                         }
                       }
                       *p = project;
                       return absl::OkStatus();
                     },
                     clock_->Now(), OrgChangeSource{std::string(actor)}));
  return *m.after->FindProject(project.id);
}

absl::StatusOr<Project> OrgAdmin::ArchiveProject(absl::string_view actor, absl::string_view id) {
  RETURN_IF_ERROR(Authorize(actor, "projects.manage"));
  ASSIGN_OR_RETURN(Mutated m, store_->Mutate(
                                  [&](OrgState& s) -> absl::Status {
                                    Project* p = s.FindProject(id);
                                    if (p == nullptr) return NotFound("project", id);
                                    p->archived = true;
                                    return absl::OkStatus();
                                  },
                                  clock_->Now(), OrgChangeSource{std::string(actor)}));
  return *m.after->FindProject(id);
}

absl::StatusOr<Member> OrgAdmin::AddMember(absl::string_view actor, Member member) {
  RETURN_IF_ERROR(Authorize(actor, "members.manage"));
  if (HoldsOwner(member.grants)) RETURN_IF_ERROR(Authorize(actor, "owners.manage"));
  member.email = absl::AsciiStrToLower(member.email);
  member.removed_at.reset();
  member.provisioned_by.clear();
  const absl::Time now = clock_->Now();
  ASSIGN_OR_RETURN(
      Mutated m,
      store_->Mutate(
          [&](OrgState& s) -> absl::Status {
            // A retry of what is stored is done, whatever has expired since.
            if (const Member* m = s.FindMember(member.id)) return CreationOver(*m, member);
            for (size_t i = 0; i < member.grants.size(); ++i) {
              if (member.grants[i].expires_at.has_value() && *member.grants[i].expires_at <= now) {
                return absl::InvalidArgumentError(
                    absl::StrCat("member.grants[", i, "].expires_at: ",
                                 absl::FormatTime(absl::RFC3339_sec, *member.grants[i].expires_at,
                                                  absl::UTCTimeZone()),
                                 " has passed: the grant would allow nothing"));
              }
            }
            if (s.FindActiveMemberByEmail(member.email) != nullptr) {
              return absl::AlreadyExistsError(
                  absl::StrCat("a member with e-mail ", member.email, " exists"));
            }
            s.members.push_back(member);
            return absl::OkStatus();
          },
          now, OrgChangeSource{std::string(actor)}));
  return *m.after->FindMember(member.id);
}

absl::StatusOr<Member> OrgAdmin::SetMemberRoles(absl::string_view actor, absl::string_view id,
                                                std::vector<RoleGrant> grants) {
  RETURN_IF_ERROR(Authorize(actor, "members.manage"));
  ASSIGN_OR_RETURN(OrgView view, cache_->Current());
  const Member* current = view.state->FindMember(id);
  if (current == nullptr) return NotFound("member", id);
  if (HoldsOwner(grants) || HoldsOwner(current->grants)) {
    RETURN_IF_ERROR(Authorize(actor, "owners.manage"));
  }
  ASSIGN_OR_RETURN(Mutated m,
                   store_->Mutate(
                       [&](OrgState& s) -> absl::Status {
                         Member* member = s.FindMember(id);
                         if (member == nullptr) return NotFound("member", id);
                         if (member->removed_at.has_value()) {
                           return absl::FailedPreconditionError(
                               absl::StrCat("member ", Quoted(id), " was removed"));
                         }
                         if (HoldsOwner(member->grants) && !HoldsOwner(current->grants)) {
                           return absl::AbortedError("the member's roles changed meanwhile");
                         }
                         member->grants = grants;
                         return absl::OkStatus();
                       },
                       clock_->Now(), OrgChangeSource{std::string(actor)}));
  return *m.after->FindMember(id);
}

absl::StatusOr<Member> OrgAdmin::RemoveMember(absl::string_view actor, absl::string_view id,
                                              bool* removed_now) {
  RETURN_IF_ERROR(Authorize(actor, "members.manage"));
  ASSIGN_OR_RETURN(OrgView view, cache_->Current());
  const Member* current = view.state->FindMember(id);
  if (current == nullptr) return NotFound("member", id);
  if (HoldsOwner(current->grants)) RETURN_IF_ERROR(Authorize(actor, "owners.manage"));
  const absl::Time now = clock_->Now();
  ASSIGN_OR_RETURN(Mutated m,
                   store_->Mutate(
                       [&](OrgState& s) -> absl::Status {
                         Member* member = s.FindMember(id);
                         if (member == nullptr) return NotFound("member", id);
                         if (member->removed_at.has_value()) return absl::OkStatus();
                         // Authorized against the cached roles: an owner made
                         // since needs owners.manage, which was not checked.
                         if (HoldsOwner(member->grants) && !HoldsOwner(current->grants)) {
                           return absl::AbortedError("the member's roles changed meanwhile; retry");
                         }
                         member->removed_at = now;
                         return absl::OkStatus();
                       },
                       now, OrgChangeSource{std::string(actor)}));
  if (removed_now != nullptr) *removed_now = m.after != m.before;
  return *m.after->FindMember(id);
}

absl::StatusOr<Member> OrgAdmin::EraseMember(absl::string_view actor, absl::string_view id) {
  RETURN_IF_ERROR(Authorize(actor, "owners.manage"));
  const absl::Time now = clock_->Now();
  const auto erase = [&](OrgState& s) -> absl::Status {
    Member* member = s.FindMember(id);
    if (member == nullptr) return NotFound("member", id);
    if (member->erased_at.has_value()) return absl::OkStatus();
    if (!member->removed_at.has_value()) {
      return absl::FailedPreconditionError(
          absl::StrCat("member ", Quoted(id), " is not removed; only a removed member is erased"));
    }
    const std::string email = std::exchange(member->email, "");
    member->erased_at = now;
    const auto same_address = [&](absl::string_view other) {
      return absl::EqualsIgnoreCase(other, email);
    };
    if (std::any_of(s.members.begin(), s.members.end(), [&](const Member& m) {
          return !m.removed_at.has_value() && same_address(m.email);
        })) {
      return absl::OkStatus();
    }
    std::erase_if(s.invitations, [&](const Invitation& i) { return same_address(i.email); });
    for (IdpGroup& group : s.idp_groups) std::erase_if(group.members, same_address);
    return absl::OkStatus();
  };
  ASSIGN_OR_RETURN(Mutated m, store_->Mutate(erase, now, OrgChangeSource{std::string(actor)}));
  return *m.after->FindMember(id);
}

absl::StatusOr<OrgAdmin::CreatedInvitation> OrgAdmin::CreateInvitation(
    absl::string_view actor, Invitation invitation, absl::Duration valid_for,
    absl::string_view request_id) {
  RETURN_IF_ERROR(ValidateRequestId(request_id, /*required=*/false));
  RETURN_IF_ERROR(Authorize(actor, "invitations.manage"));
  if (invitation.role == Role::kOwner) {
    RETURN_IF_ERROR(Authorize(actor, "owners.manage"));
  }
  if (valid_for < absl::ZeroDuration() || valid_for > kMaxInvitationLifetime) {
    return absl::InvalidArgumentError(absl::StrCat(
        "valid_for must be positive and at most ", absl::ToInt64Hours(kMaxInvitationLifetime) / 24,
        " days, got ", absl::FormatDuration(valid_for), "; unset or 0 means ",
        absl::ToInt64Hours(kDefaultInvitationLifetime) / 24, " days"));
  }
  if (valid_for == absl::ZeroDuration()) valid_for = kDefaultInvitationLifetime;
  // Times to the microsecond, as every store keeps them: a retry compares its valid_for with
  // the stored lifetime.
  valid_for = absl::Trunc(valid_for, absl::Microseconds(1));
  const absl::Time now = absl::FromUnixMicros(absl::ToUnixMicros(clock_->Now()));
  ASSIGN_OR_RETURN(std::string random, crypto::RandomBytes(12));
  std::string secret_id = absl::StrCat("inv_", absl::BytesToHexString(random));
  invitation.id = InvitationDigest(secret_id);
  invitation.email = absl::AsciiStrToLower(invitation.email);
  invitation.created_at = now;
  invitation.expires_at = now + valid_for;
  invitation.state = InvitationState::kPending;
  invitation.closed_at.reset();
  invitation.secret_digest.clear();
  invitation.request_digest = request_id.empty() ? "" : InvitationRequestDigest(request_id);
  invitation.created_by = std::string(actor);
  RETURN_IF_ERROR(ValidateInvitation(invitation, now, kMaxInvitationLifetime));
  // The projects as stored, to compare a retry's with.
  std::vector<std::string> projects = invitation.projects;
  std::sort(projects.begin(), projects.end());
  // The invitation answered, and whether the answer holds `secret_id` (not for a retry of a
  // creation whose invitation is no longer pending).
  std::string id;
  bool answer_secret = true;
  auto create_or_retry = [&](OrgState& s) -> absl::Status {
    Invitation* earlier = s.FindInvitationByRequest(invitation.request_digest);
    if (earlier == nullptr) {
      id = invitation.id;
      answer_secret = true;
      s.invitations.push_back(invitation);
      return absl::OkStatus();
    }
    RETURN_IF_ERROR(RetriedInvitation(*earlier, invitation, projects, valid_for, request_id));
    id = earlier->id;
    // Only digests of secret ids are kept, so a pending invitation's answer holds a fresh one,
    // which replaces the earlier; a closed one has none to give.
    answer_secret = InvitationStateAt(*earlier, now) == InvitationState::kPending;
    if (answer_secret) earlier->secret_digest = InvitationDigest(secret_id);
    return absl::OkStatus();
  };
  ASSIGN_OR_RETURN(Mutated m,
                   store_->Mutate(create_or_retry, now, OrgChangeSource{std::string(actor)}));
  if (!answer_secret) secret_id.clear();
  return CreatedInvitation{*m.after->FindInvitation(id), std::move(secret_id)};
}

absl::StatusOr<Member> OrgAdmin::AcceptInvitation(absl::string_view secret_id,
                                                  absl::string_view email,
                                                  absl::string_view member_id) {
  const absl::Time now = clock_->Now();
  const std::string digest = InvitationDigest(secret_id);
  std::string accepted_id;
  // The member the invitation makes (or gives roles to) is the change's actor; the mutation
  // names them before the store computes the change's records.
  OrgChangeSource source;
  ASSIGN_OR_RETURN(
      Mutated m,
      store_->Mutate(
          [&](OrgState& s) -> absl::Status {
            Invitation* invitation = s.FindInvitationBySecret(digest);
            // The same answer for an unknown id (a replaced one included) and a wrong
            // e-mail: ids are not enumerable.
            if (invitation == nullptr || invitation->email != absl::AsciiStrToLower(email)) {
              return absl::NotFoundError("no invitation with this id for this e-mail address");
            }
            ASSIGN_OR_RETURN(std::vector<RoleGrant> grants, Accept(*invitation, now));
            Member* member = s.FindActiveMemberByEmail(invitation->email);
            if (member == nullptr) {
              Member fresh;
              fresh.id = member_id.empty()
                             ? absl::StrCat(kInvitedMemberIdPrefix,
                                            s.NextMemberNumber(kInvitedMemberIdPrefix))
                             : std::string(member_id);
              fresh.email = invitation->email;
              if (s.FindMember(fresh.id) != nullptr) {
                return absl::AlreadyExistsError(
                    absl::StrCat("member id ", Quoted(fresh.id), " is taken; choose another"));
              }
              s.members.push_back(std::move(fresh));
              member = &s.members.back();
            }
            for (RoleGrant& g : grants) {
              const bool held = std::any_of(
                  member->grants.begin(), member->grants.end(),
                  [&](const RoleGrant& h) { return h.role == g.role && h.project == g.project; });
              if (!held) member->grants.push_back(std::move(g));
            }
            accepted_id = member->id;
            source.actor = member->id;
            return absl::OkStatus();
          },
          now, source));
  return *m.after->FindMember(accepted_id);
}

absl::StatusOr<Invitation> OrgAdmin::RevokeInvitation(absl::string_view actor,
                                                      absl::string_view invitation) {
  RETURN_IF_ERROR(Authorize(actor, "invitations.manage"));
  const absl::Time now = clock_->Now();
  // A ref names the invitation whose digest it begins; anything else is taken for a secret id.
  const bool is_ref = absl::StartsWith(invitation, "sha256:");
  const std::string digest = is_ref ? "" : InvitationDigest(invitation);
  auto find = [&](OrgState& s) -> Invitation* {
    if (!is_ref) return s.FindInvitationBySecret(digest);
    for (Invitation& i : s.invitations) {
      if (InvitationRef(i) == invitation) return &i;
    }
    return nullptr;
  };
  std::string id;
  ASSIGN_OR_RETURN(Mutated m,
                   store_->Mutate(
                       [&](OrgState& s) -> absl::Status {
                         Invitation* found = find(s);
                         if (found == nullptr) {
                           return is_ref ? NotFound("invitation", invitation)
                                         : absl::NotFoundError("no invitation with this secret id");
                         }
                         id = found->id;
                         return Revoke(*found, now).status();
                       },
                       now, OrgChangeSource{std::string(actor)}));
  return *m.after->FindInvitation(id);
}

absl::StatusOr<ServiceAccount> OrgAdmin::CreateServiceAccount(absl::string_view actor,
                                                              ServiceAccount account) {
  RETURN_IF_ERROR(Authorize(actor, "service-accounts.manage", account.project));
  if (LimitsDiffer(account, ServiceAccount{})) RETURN_IF_ERROR(Authorize(actor, "billing.manage"));
  account.removed_at.reset();
  ASSIGN_OR_RETURN(Mutated m,
                   store_->Mutate(
                       [&](OrgState& s) -> absl::Status {
                         if (const ServiceAccount* a = s.FindServiceAccount(account.id)) {
                           return CreationOver(*a, account);
                         }
                         s.service_accounts.push_back(account);
                         return absl::OkStatus();
                       },
                       clock_->Now(), OrgChangeSource{std::string(actor)}));
  return *m.after->FindServiceAccount(account.id);
}

absl::StatusOr<ServiceAccount> OrgAdmin::UpdateServiceAccount(absl::string_view actor,
                                                              ServiceAccount account) {
  ASSIGN_OR_RETURN(OrgView view, cache_->Current());
  const ServiceAccount* current = view.state->FindServiceAccount(account.id);
  if (current == nullptr) return NotFound("service account", account.id);
  RETURN_IF_ERROR(Authorize(actor, "service-accounts.manage", current->project));
  if (LimitsDiffer(*current, account)) RETURN_IF_ERROR(Authorize(actor, "billing.manage"));
  ASSIGN_OR_RETURN(Mutated m, store_->Mutate(
                                  [&](OrgState& s) -> absl::Status {
                                    ServiceAccount* a = s.FindServiceAccount(account.id);
                                    if (a == nullptr) {
                                      return NotFound("service account", account.id);
                                    }
                                    if (a->removed_at.has_value()) {
                                      return absl::FailedPreconditionError(absl::StrCat(
                                          "service account ", Quoted(account.id), " was removed"));
                                    }
                                    // Authorized against the cached limits: a change of them
                                    // since would be unauthorized.
                                    if (LimitsDiffer(*a, account) && LimitsDiffer(*current, *a)) {
                                      return absl::AbortedError(
                                          "the service account's limits changed meanwhile; retry");
                                    }
                                    account.project = a->project;
                                    account.environment = a->environment;
                                    *a = account;
                                    return absl::OkStatus();
                                  },
                                  clock_->Now(), OrgChangeSource{std::string(actor)}));
  return *m.after->FindServiceAccount(account.id);
}

absl::StatusOr<ServiceAccount> OrgAdmin::RemoveServiceAccount(absl::string_view actor,
                                                              absl::string_view id) {
  ASSIGN_OR_RETURN(OrgView view, cache_->Current());
  const ServiceAccount* current = view.state->FindServiceAccount(id);
  if (current == nullptr) return NotFound("service account", id);
  RETURN_IF_ERROR(Authorize(actor, "service-accounts.manage", current->project));
  const absl::Time now = clock_->Now();
  ASSIGN_OR_RETURN(Mutated m, store_->Mutate(
                                  [&](OrgState& s) -> absl::Status {
                                    ServiceAccount* a = s.FindServiceAccount(id);
                                    if (a == nullptr) return NotFound("service account", id);
                                    if (!a->removed_at.has_value()) a->removed_at = now;
                                    return absl::OkStatus();
                                  },
                                  now, OrgChangeSource{std::string(actor)}));
  return *m.after->FindServiceAccount(id);
}

absl::StatusOr<OrgPlan> OrgAdmin::PlanOrgFile(absl::string_view actor, absl::string_view yaml) {
  RETURN_IF_ERROR(Authorize(actor, "org.read"));
  ASSIGN_OR_RETURN(OrgFile file, ParseOrgFile(yaml));
  ASSIGN_OR_RETURN(std::shared_ptr<const OrgState> base, store_->Load());
  const absl::Time now = clock_->Now();
  absl::StatusOr<OrgState> applied = ApplyMutation(
      *base,
      [&](OrgState& s) {
        RETURN_IF_ERROR(authz::ApplyOrgFile(file, now, s));
        return CheckApplierStaysOwner(*base, s, actor, now);
      },
      now);
  if (!applied.ok()) return WithFilePlace(file, applied.status());
  const OrgState& after = *applied;
  OrgPlan plan;
  const std::vector<EntityChange> changes = Diff(*base, after);
  plan.fingerprint = PlanFingerprint(base->version, changes, now);
  plan.changes = InReadingOrder(changes);
  plan.text = FormatDiff(plan.changes);
  plan.org_version = base->version;
  plan.warnings = LapsedGrants(file, now);
  for (const EntityChange& change : plan.changes) {
    if (change.kind != "project" || change.op == EntityChange::Op::kDelete) continue;
    if (const Project* p = after.FindProject(change.id)) plan.projects.push_back(*p);
  }
  return plan;
}

absl::StatusOr<OrgPlan> OrgAdmin::ApplyOrgFile(absl::string_view actor, absl::string_view yaml,
                                               absl::string_view fingerprint,
                                               absl::string_view reference) {
  RETURN_IF_ERROR(Authorize(actor, "owners.manage"));
  RETURN_IF_ERROR(CheckFileReference(reference));
  ASSIGN_OR_RETURN(OrgFile file, ParseOrgFile(yaml));
  const absl::Time now = clock_->Now();
  absl::StatusOr<Mutated> mutated = store_->Mutate(
      [&](OrgState& s) -> absl::Status {
        const OrgState before = s;
        RETURN_IF_ERROR(authz::ApplyOrgFile(file, now, s));
        RETURN_IF_ERROR(CheckApplierStaysOwner(before, s, actor, now));
        if (fingerprint.empty()) return absl::OkStatus();
        s.Sort();
        const std::vector<EntityChange> changes = Diff(before, s);
        // Nothing left to change: a retry of an apply that committed.
        if (changes.empty()) return absl::OkStatus();
        if (PlanFingerprint(before.version, changes, now) != fingerprint) {
          return absl::FailedPreconditionError(
              "plan_fingerprint: applying this file now makes other changes "
              "than the plan with that fingerprint (the file, or the "
              "organisation, changed since); plan again");
        }
        return absl::OkStatus();
      },
      now,
      OrgChangeSource{std::string(actor), /*org_file=*/true,
                      absl::BytesToHexString(crypto::Sha256(yaml)), std::string(reference)});
  if (!mutated.ok()) return WithFilePlace(file, mutated.status());
  const Mutated& m = *mutated;
  OrgPlan applied;
  applied.changes = InReadingOrder(Diff(*m.before, *m.after));
  applied.text = FormatDiff(applied.changes);
  applied.org_version = m.after->version;
  applied.offboard = RemovedSince(*m.after, now - kOffboardingWindow);
  applied.removed_members = RemovedSince(*m.after, now).members;
  return applied;
}

absl::StatusOr<std::string> OrgAdmin::ExportOrgFile(absl::string_view actor) const {
  RETURN_IF_ERROR(Authorize(actor, "org.read"));
  ASSIGN_OR_RETURN(OrgView view, cache_->Current());
  return FormatOrgFile(*view.state);
}

absl::StatusOr<IdpSyncResult> OrgAdmin::SyncIdpGroup(absl::string_view actor,
                                                     absl::string_view group,
                                                     const std::vector<std::string>& emails,
                                                     bool may_empty) {
  RETURN_IF_ERROR(Authorize(actor, "members.manage"));
  const absl::Time now = clock_->Now();
  ASSIGN_OR_RETURN(Mutated m, store_->Mutate(
                                  [&](OrgState& s) {
                                    return authz::SyncIdpGroup(group, emails, now, s, may_empty);
                                  },
                                  now, OrgChangeSource{std::string(actor)}));
  IdpSyncResult result;
  result.org_version = m.after->version;
  // Only members a sync can have removed (the identity provider's), not every removal of the
  // day: the edge checks each one's keys.
  for (std::string& id : RemovedSince(*m.after, now - kOffboardingWindow).members) {
    const Member* member = m.after->FindMember(id);
    if (member != nullptr && member->provisioned_by == kProvisionedByIdp) {
      result.offboard.push_back(std::move(id));
    }
  }
  for (const Member& after : m.after->members) {
    const Member* before = m.before->FindMember(after.id);
    if (before == nullptr) {
      result.provisioned.push_back(after.id);
    } else if (!before->removed_at.has_value() && after.removed_at.has_value()) {
      result.deprovisioned.push_back(after.id);
    }
  }
  return result;
}

}  // namespace policy::authz
