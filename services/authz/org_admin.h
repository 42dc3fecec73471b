#ifndef POLICY_SERVICES_AUTHZ_ORG_ADMIN_H_
#define POLICY_SERVICES_AUTHZ_ORG_ADMIN_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock/clock.h"
#include "services/authz/org_cache.h"
#include "services/authz/org_state.h"
#include "services/authz/org_store.h"

namespace policy::authz {

// How long after a removal a change still names the removed principals to offboard (revoke
// their keys): a retry of a change interrupted after it committed changes nothing, and
// finishes the offboarding from this list. The keys service keeps its request ids as long.
inline constexpr absl::Duration kOffboardingWindow = absl::Hours(24);

struct OrgPlan {
  std::vector<EntityChange> changes;  // InReadingOrder.
  std::string text;                   // FormatDiff(changes).
  std::string fingerprint;            // Hex SHA-256 of the base version and the changes.
  int64_t org_version = 0;            // The version planned against, or the one applied.
  // Planned only: the projects it creates or changes, as it would leave them.
  std::vector<Project> projects;
  // Planned only: what the file states that counts for nothing (LapsedGrants).
  std::vector<std::string> warnings;
  // Applied only: the principals it removed, and those removed in the kOffboardingWindow
  // before it (by an interrupted attempt of the same apply, say), to offboard.
  RemovedPrincipals offboard;
  std::vector<std::string> removed_members;  // Applied only: the members it removed itself.
};

struct IdpSyncResult {
  std::vector<std::string> provisioned;
  std::vector<std::string> deprovisioned;  // Removed by this sync.
  // The members this sync removed, and those removed in the kOffboardingWindow before it.
  std::vector<std::string> offboard;
  int64_t org_version = 0;
};

// The settings of a project an update leaves as they are: those its caller did not state
// (fields of the wire's that a client may not know).
struct UnstatedSettings {
  bool key_holders = false;
  bool residency = false;
  bool pii_rules = false;
  bool data_class = false;
};

// What an organisation file's apply may name the file by in the ledger: at most
// kMaxFileReferenceBytes of [A-Za-z0-9._:/+#-] (a commit, a tag: no e-mail address, no space),
// or nothing. INVALID_ARGUMENT naming `reference` otherwise.
inline constexpr size_t kMaxFileReferenceBytes = 128;
absl::Status CheckFileReference(absl::string_view reference);

// Administration of the organisation: who may do what, then one atomic store mutation.
//
// `actor` is the acting member's id. The actor's permission is decided by the rules of
// decision.h on the cached organisation (so the cache's staleness bound applies: UNAVAILABLE
// when stale); PERMISSION_DENIED names the action the actor lacks; NOT_FOUND names a missing
// project; FAILED_PRECONDITION (reason PROJECT_ARCHIVED) names an archived project to an actor
// whose roles would allow the action in it were it active. Billing-level settings (the rate
// limits of projects and service accounts, when set or changed) and the owner role need an
// owner (billing.manage, owners.manage); ABORTED when what was authorized changed meanwhile.
// Thread-safe.
class OrgAdmin {
 public:
  OrgAdmin(OrgStore* store, const OrgCache* cache, Clock* clock);

  // OK when `actor` may perform `action` (in `project` for project-scoped actions).
  absl::Status Authorize(absl::string_view actor, absl::string_view action,
                         absl::string_view project = "") const;
  // The same on a view the caller holds already.
  absl::Status Authorize(const OrgView& view, absl::string_view actor, absl::string_view action,
                         absl::string_view project = "") const;

  absl::StatusOr<Project> CreateProject(absl::string_view actor, Project project);
  // Replaces the project's settings but `archived` and those `unstated`. FAILED_PRECONDITION naming
  // `environment` when `project` names another environment than the project's (ApplyMutation), and
  // naming `expected` when that is given (what the caller read) and the stored project is neither
  // it nor `project`: a read-modify-write does not undo a change made in between.
  absl::StatusOr<Project> UpdateProject(absl::string_view actor, Project project,
                                        UnstatedSettings unstated = {},
                                        const std::optional<Project>& expected = std::nullopt);
  absl::StatusOr<Project> ArchiveProject(absl::string_view actor, absl::string_view id);

  absl::StatusOr<Member> AddMember(absl::string_view actor, Member member);
  absl::StatusOr<Member> SetMemberRoles(absl::string_view actor, absl::string_view id,
                                        std::vector<RoleGrant> grants);
  // The member as removed; FAILED_PRECONDITION for the last owner. `removed_now`, when not
  // null, says whether this call removed them (false: they were removed before).
  absl::StatusOr<Member> RemoveMember(absl::string_view actor, absl::string_view id,
                                      bool* removed_now = nullptr);
  // Erases removed member `id`'s personal data for good (owners.manage): their e-mail
  // address, the invitations addressed to it and its place in identity-provider groups, those
  // two unless an active member has the same address (compared without case), whose they then
  // are too. The member as erased; FAILED_PRECONDITION for a member not removed; an erased
  // member as they are, changing nothing.
  absl::StatusOr<Member> EraseMember(absl::string_view actor, absl::string_view id);

  // The invitation as stored and its secret id, which this answer alone ever holds (empty
  // for a retry whose invitation is no longer pending).
  struct CreatedInvitation {
    Invitation invitation;
    std::string secret_id;
  };
  // A new pending invitation, its times to the microsecond. With a `request_id`
  // (ValidateRequestId; kept only as its InvitationRequestDigest) the creation is idempotent:
  // a retry by the same actor with the same e-mail, role, projects and valid_for answers the
  // invitation the first call made, with the same id and expiry, and records nothing more.
  // While that invitation is pending, the answer holds a fresh secret id, which replaces the
  // earlier one (that one then finds nothing, as an unknown id); once accepted, revoked or
  // expired, the answer holds none. The same request id with another actor or content is
  // ALREADY_EXISTS naming the first field that differs (actor, email, role, projects,
  // valid_for). Without a request id every call makes a new invitation.
  absl::StatusOr<CreatedInvitation> CreateInvitation(absl::string_view actor, Invitation invitation,
                                                     absl::Duration valid_for,
                                                     absl::string_view request_id = "");
  // The invitee (no actor), with the invitation's newest secret id: the caller has checked that
  // `email` is theirs. The member gets id `member_id`, or the next "member:<n>" when empty; an
  // active member with that e-mail gains the invited roles instead. NOT_FOUND, without echoing the
  // secret, for an unknown secret id and a wrong e-mail alike.
  absl::StatusOr<Member> AcceptInvitation(absl::string_view secret_id, absl::string_view email,
                                          absl::string_view member_id);
  // `invitation` is its InvitationRef ("sha256:...") or its secret id.
  absl::StatusOr<Invitation> RevokeInvitation(absl::string_view actor,
                                              absl::string_view invitation);

  absl::StatusOr<ServiceAccount> CreateServiceAccount(absl::string_view actor,
                                                      ServiceAccount account);
  absl::StatusOr<ServiceAccount> UpdateServiceAccount(absl::string_view actor,
                                                      ServiceAccount account);
  absl::StatusOr<ServiceAccount> RemoveServiceAccount(absl::string_view actor,
                                                      absl::string_view id);

  // Plan and apply refuse (FAILED_PRECONDITION) a file that takes owners.manage from the
  // owner applying it (see CheckApplierStaysOwner); an admin's plan is not judged by that rule.
  absl::StatusOr<OrgPlan> PlanOrgFile(absl::string_view actor, absl::string_view yaml);
  // FAILED_PRECONDITION when `fingerprint` is given and the plan it names is not what
  // applying now would do.
  // `reference` (what the file is to the applier: a commit, say) is recorded with the file's
  // SHA-256 in the ORG_FILE_APPLIED record; INVALID_ARGUMENT unless CheckFileReference holds.
  absl::StatusOr<OrgPlan> ApplyOrgFile(absl::string_view actor, absl::string_view yaml,
                                       absl::string_view fingerprint,
                                       absl::string_view reference = "");
  absl::StatusOr<std::string> ExportOrgFile(absl::string_view actor) const;
  absl::StatusOr<IdpSyncResult> SyncIdpGroup(absl::string_view actor, absl::string_view group,
                                             const std::vector<std::string>& emails,
                                             bool may_empty = false);

  static constexpr absl::Duration kDefaultInvitationLifetime = absl::Hours(24 * 7);
  static constexpr absl::Duration kMaxInvitationLifetime = absl::Hours(24 * 30);

 private:
  OrgStore* const store_;
  const OrgCache* const cache_;
  Clock* const clock_;
};

}  // namespace policy::authz

#endif  // POLICY_SERVICES_AUTHZ_ORG_ADMIN_H_
