#ifndef POLICY_SERVICES_AUTHZ_ORG_STATE_H_
#define POLICY_SERVICES_AUTHZ_ORG_STATE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/authz/invitation.h"
#include "services/authz/org.h"

namespace policy::authz {

// Everything the authz service stores about the organisation, at one version. Each list is
// sorted by id (groups by name). Projects are archived and members and service accounts
// removed, never deleted; invitations and groups may be deleted.
struct OrgState {
  int64_t version = 0;  // Grows by one with every committed change.
  std::vector<Project> projects;
  std::vector<Member> members;
  std::vector<ServiceAccount> service_accounts;
  std::vector<Invitation> invitations;
  std::vector<IdpGroup> idp_groups;

  Project* FindProject(absl::string_view id);
  Member* FindMember(absl::string_view id);
  // The member with this e-mail that has not been removed, or null.
  Member* FindActiveMemberByEmail(absl::string_view email);
  ServiceAccount* FindServiceAccount(absl::string_view id);
  Invitation* FindInvitation(absl::string_view id);
  IdpGroup* FindIdpGroup(absl::string_view name);
  // The invitation that the secret id with this InvitationDigest accepts now (SecretDigestOf),
  // or null: an earlier secret id of an invitation whose secret was replaced finds nothing.
  Invitation* FindInvitationBySecret(absl::string_view secret_digest);
  // The invitation created under the request id with this InvitationRequestDigest, or null.
  Invitation* FindInvitationByRequest(absl::string_view request_digest);
  const Project* FindProject(absl::string_view id) const;
  const Member* FindMember(absl::string_view id) const;
  const ServiceAccount* FindServiceAccount(absl::string_view id) const;
  const Invitation* FindInvitation(absl::string_view id) const;
  const IdpGroup* FindIdpGroup(absl::string_view name) const;
  // The number after the highest that follows `prefix` in a member id ("idp:" for "idp:7"):
  // `prefix` and it, or any number after it, is an id no member has had. New members' ids are
  // made so, the same for the same state (a plan and its apply agree), never from their
  // e-mail, which erasure removes while ids stay.
  uint64_t NextMemberNumber(absl::string_view prefix) const;

  // Restores the canonical order after entries were appended: lists by id, and set-like
  // fields (models, grants, permissions, group members) sorted, so that equal organisations
  // compare equal.
  void Sort();
};

// The snapshot decisions read, with group grants expanded. `as_of` as for OrgSnapshot.
std::shared_ptr<const OrgSnapshot> SnapshotOf(const OrgState& state, absl::Time as_of);

// Every invariant across entities: each entity valid on its own (org_validation.h); ids
// unique; invitations keep digests only (of their secret ids and request ids), request
// digests unique; e-mails unique among members not removed; grants, service accounts, invitations
// and groups name existing projects; a live service account's environment is its project's (a
// removed one keeps the environment it had); groups grant project roles only.
// INVALID_ARGUMENT naming the entity.
absl::Status ValidateOrgState(const OrgState& state);

// Checks that `after` may follow `before` at `now`: nothing but invitations and groups
// disappears; removal is final (a removed member or service account stays removed with its
// removal time); no grant, service account or invitation newly names an archived project;
// an organisation that had an owner whose owner grant never expires still has one, and one
// that gains its first owners gains such an owner (else no owner grant could be given once
// the others lapsed); and an organisation that had an owner with a live grant still has one.
// FAILED_PRECONDITION naming the entity otherwise.
absl::Status ValidateTransition(const OrgState& before, const OrgState& after, absl::Time now);

// A change to the organisation: edits the state it is given; returns an error to abandon it.
using OrgMutation = std::function<absl::Status(OrgState&)>;

// `before` with `mutation` applied, sorted, checked (ValidateOrgState, ValidateTransition at
// `now`) and one version further on; `before` itself (same version) when the mutation changed
// nothing. A project's environment never changes: FAILED_PRECONDITION naming the project and
// `environment` otherwise. A member removed by the change gets a fresh removal_id (128 random
// bits in hex); a removed member keeps theirs and an active member has none, whatever the
// mutation set. The one way every store turns a mutation into the state it commits.
absl::StatusOr<OrgState> ApplyMutation(const OrgState& before, const OrgMutation& mutation,
                                       absl::Time now);

// One field of one entity that changed, rendered as text.
struct FieldChange {
  std::string field;
  std::string before;  // Empty for a created entity.
  std::string after;
  bool operator==(const FieldChange&) const = default;
};

// One entity a change creates, updates or deletes.
struct EntityChange {
  enum class Op { kCreate, kUpdate, kDelete };
  Op op = Op::kUpdate;
  std::string kind;  // "project", "member", "service_account", "invitation", "idp_group".
  std::string id;
  std::vector<FieldChange> fields;
  bool operator==(const EntityChange&) const = default;
};
absl::string_view OpName(EntityChange::Op op);  // "create", "update", "delete".

// Ids in the order a reader expects them: runs of digits compare as numbers ("idp:2" before
// "idp:10"), other bytes as bytes; ids equal so ("7", "07") by their bytes. A strict order:
// only an id is equivalent to itself.
bool IdReadingOrder(absl::string_view a, absl::string_view b);

// What turns `before` into `after`, entity by entity, in a stable order (kind, then id).
// Versions are ignored. An invitation whose secret id alone was replaced is an update with
// no fields. Stores write the changes in this order.
std::vector<EntityChange> Diff(const OrgState& before, const OrgState& after);

// `changes` as people read them: each kind's in IdReadingOrder of their ids.
std::vector<EntityChange> InReadingOrder(std::vector<EntityChange> changes);

// The members and service accounts of `state` removed at or after `since`, each in id order.
struct RemovedPrincipals {
  std::vector<std::string> members;
  std::vector<std::string> service_accounts;
};
RemovedPrincipals RemovedSince(const OrgState& state, absl::Time since);

// A time as a diff shows it: UTC, to the second ("2026-12-03T10:21:34Z").
std::string FormatTimeText(absl::Time t);

// The diff as text, one entity per block: "+ project p1", "~ member m1", "- idp_group g",
// each followed by "    field: before -> after" lines.
std::string FormatDiff(const std::vector<EntityChange>& changes);

}  // namespace policy::authz

#endif  // POLICY_SERVICES_AUTHZ_ORG_STATE_H_
