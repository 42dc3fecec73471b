#ifndef POLICY_SERVICES_AUTHZ_INVITATION_H_
#define POLICY_SERVICES_AUTHZ_INVITATION_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/authz/org.h"

namespace policy::authz {

// kPending is stored; kExpired is derived from expires_at; kAccepted and kRevoked are final.
enum class InvitationState { kPending, kAccepted, kExpired, kRevoked };
absl::string_view InvitationStateName(InvitationState state);

// An invitation to join the organisation with a role, in some projects for project roles.
// Its secret id ("inv_" and 96 random bits in hex) is a bearer credential: the invitee
// accepts with it and their e-mail. It is shown once, to the creator, and never stored:
// `id` is the InvitationDigest of the first one. A retried creation (same request id, see
// OrgAdmin::CreateInvitation) replaces a pending invitation's secret id with a fresh one,
// whose digest is `secret_digest`; only the newest secret id accepts or revokes it.
struct Invitation {
  // InvitationDigest of the first secret id: the key it is stored under, which InvitationRef
  // names; it stays the same when the secret id is replaced.
  std::string id;
  std::string email;
  Role role = Role::kMember;
  std::vector<std::string> projects;  // Required for member and reader, empty for org roles.
  absl::Time created_at;
  absl::Time expires_at;
  InvitationState state = InvitationState::kPending;
  std::optional<absl::Time> closed_at;  // When accepted or revoked.
  // InvitationDigest of the secret id that accepts it; empty while that is the first one
  // (`id`), as for every invitation whose secret id was never replaced.
  std::string secret_digest;
  // InvitationRequestDigest of the request id it was created under; empty without one.
  std::string request_digest;
  // The member who created it; empty for invitations created before it was kept.
  std::string created_by;
  bool operator==(const Invitation&) const = default;
};

// The SHA-256 of an invitation's secret id, in lowercase hex (64 digits). The secret has 96
// random bits, so an unsalted digest is enough to keep it from anyone reading the store.
std::string InvitationDigest(absl::string_view secret_id);

// The InvitationDigest of the secret id that accepts `invitation` now: `secret_digest`, or
// `id` while the first secret id holds.
const std::string& SecretDigestOf(const Invitation& invitation);

// What an invitation keeps of the request id it was created under (at most
// kMaxRequestIdBytes of any bytes, which may say something of the caller): the ShortDigest
// (common/ledger) of it in the invitations' own namespace, 32 hex digits. One namespace for
// the organisation, whoever asks: the same request id from another member names the same
// request, which `created_by` then tells apart.
std::string InvitationRequestDigest(absl::string_view request_id);

// How lists, revocations, messages and the audit ledger name an invitation: "sha256:" and the
// first 32 hex digits of its digest (`invitation.id`). It never accepts the invitation.
std::string InvitationRef(const Invitation& invitation);

// The state a caller sees at `now`: a pending invitation past its expiry is expired.
InvitationState InvitationStateAt(const Invitation& invitation, absl::Time now);

// INVALID_ARGUMENT naming the field: e-mail, project list against the role, expiry in the
// future and within `max_lifetime` of `now`.
absl::Status ValidateInvitation(const Invitation& invitation, absl::Time now,
                                absl::Duration max_lifetime);

// Accepting turns a pending invitation into the member's grants. FAILED_PRECONDITION when it
// is expired, revoked or already accepted.
absl::StatusOr<std::vector<RoleGrant>> Accept(Invitation& invitation, absl::Time now);

// Revoking closes a pending invitation; revoking a revoked one changes nothing (returns
// false). FAILED_PRECONDITION for an accepted or expired one.
absl::StatusOr<bool> Revoke(Invitation& invitation, absl::Time now);

}  // namespace policy::authz

#endif  // POLICY_SERVICES_AUTHZ_INVITATION_H_
