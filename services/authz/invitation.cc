#include "services/authz/invitation.h"

#include <set>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/crypto.h"
#include "common/ids/project_id.h"
#include "common/ledger/ledger_record.h"
#include "services/authz/org_validation.h"

namespace policy::authz {

absl::string_view InvitationStateName(InvitationState state) {
  switch (state) {
    case InvitationState::kPending:
      return "pending";
    case InvitationState::kAccepted:
      return "accepted";
    case InvitationState::kExpired:
      return "expired";
    case InvitationState::kRevoked:
      return "revoked";
  }
  return "unknown";
}

std::string InvitationDigest(absl::string_view secret_id) {
  return absl::BytesToHexString(crypto::Sha256(secret_id));
}

const std::string& SecretDigestOf(const Invitation& invitation) {
  return invitation.secret_digest.empty() ? invitation.id : invitation.secret_digest;
}

std::string InvitationRequestDigest(absl::string_view request_id) {
  return ledger::ShortDigest(absl::StrCat("authz:invitation-request:", request_id));
}

std::string InvitationRef(const Invitation& invitation) {
  return absl::StrCat("sha256:", absl::string_view(invitation.id).substr(0, 32));
}

InvitationState InvitationStateAt(const Invitation& invitation, absl::Time now) {
  if (invitation.state == InvitationState::kPending && now >= invitation.expires_at) {
    return InvitationState::kExpired;
  }
  return invitation.state;
}

absl::Status ValidateInvitation(const Invitation& invitation, absl::Time now,
                                absl::Duration max_lifetime) {
  // The e-mail rules are the members' rules.
  Member as_member;
  as_member.id = "invitee";
  as_member.email = invitation.email;
  if (absl::Status s = ValidateMember(as_member); !s.ok()) {
    return absl::InvalidArgumentError("invitation.email is not an e-mail address");
  }
  if (IsOrgRole(invitation.role)) {
    if (!invitation.projects.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("invitation.projects must be empty for the organisation role ",
                       RoleName(invitation.role)));
    }
  } else {
    if (invitation.projects.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "invitation.projects is required for the project role ", RoleName(invitation.role)));
    }
    if (invitation.projects.size() > kMaxGrants) {
      return absl::InvalidArgumentError("invitation.projects has more than 256 entries");
    }
    std::set<std::string> seen;
    for (size_t i = 0; i < invitation.projects.size(); ++i) {
      const std::string field = absl::StrCat("invitation.projects[", i, "]");
      if (absl::Status s = ids::ValidateProjectId(invitation.projects[i], field); !s.ok()) return s;
      if (!seen.insert(invitation.projects[i]).second) {
        return absl::InvalidArgumentError(absl::StrCat(field, " is listed twice"));
      }
    }
  }
  if (invitation.expires_at <= now) {
    return absl::InvalidArgumentError("invitation.expire_time is not in the future");
  }
  if (invitation.expires_at - now > max_lifetime) {
    return absl::InvalidArgumentError(absl::StrCat("invitation.expire_time is more than ",
                                                   absl::FormatDuration(max_lifetime), " away"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<RoleGrant>> Accept(Invitation& invitation, absl::Time now) {
  const InvitationState state = InvitationStateAt(invitation, now);
  if (state != InvitationState::kPending) {
    return absl::FailedPreconditionError(
        absl::StrCat("invitation ", InvitationRef(invitation), " is ", InvitationStateName(state)));
  }
  std::vector<RoleGrant> grants;
  if (IsOrgRole(invitation.role)) {
    grants.push_back({invitation.role, "", std::nullopt});
  } else {
    for (const std::string& project : invitation.projects) {
      grants.push_back({invitation.role, project, std::nullopt});
    }
  }
  invitation.state = InvitationState::kAccepted;
  invitation.closed_at = now;
  return grants;
}

absl::StatusOr<bool> Revoke(Invitation& invitation, absl::Time now) {
  const InvitationState state = InvitationStateAt(invitation, now);
  if (state == InvitationState::kRevoked) return false;
  if (state != InvitationState::kPending) {
    return absl::FailedPreconditionError(
        absl::StrCat("invitation ", InvitationRef(invitation), " is ", InvitationStateName(state)));
  }
  invitation.state = InvitationState::kRevoked;
  invitation.closed_at = now;
  return true;
}

}  // namespace policy::authz
