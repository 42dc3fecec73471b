#ifndef POLICY_SERVICES_AUTHZ_ORG_LEDGER_H_
#define POLICY_SERVICES_AUTHZ_ORG_LEDGER_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/ledger/ledger_record.h"
#include "services/authz/org_state.h"

namespace policy::authz {

// Who changes the organisation, and how, as the ledger tells it.
struct OrgChangeSource {
  // The member acting (for an accepted invitation, the member it made); kServiceActor for
  // the service's own changes (the bootstrap file).
  std::string actor;
  // An org file's apply: its changes are followed by one ORG_FILE_APPLIED record, with the
  // file's SHA-256 (hex) and the applier's reference to it (a commit, say; may be empty).
  bool org_file = false;
  std::string file_sha256{};
  std::string reference{};
};

inline constexpr absl::string_view kServiceActor = "authz-service";

// The records of the change from `before` to `after` (one version on), for the organisation's
// ledger: one per entity created, updated or removed, in Diff's order (projects, members,
// service accounts, invitations, groups), then ORG_FILE_APPLIED for an org file; none for an
// invitation whose secret id alone was replaced (a retried creation, which Diff shows with
// no field). Ledger
// records never hold an invitation's secret id (it accepts the invitation): they name it by
// InvitationRef. A member's removal carries MemberRemovalRequestId, a service account's
// ledger::RemovalRequestId("authz", "service-account", ShortDigest of its id) (which the
// record's metadata names anyway); every other record gets a random request id. A change that
// erases a member (sets erased_at) is recorded by one MEMBER_ERASED record alone, with no
// subject: metadata "removal" (MemberRemovalRequestId), "invitations_deleted" and
// "idp_groups_changed" (counts).
absl::StatusOr<std::vector<ledger::LedgerRecord>> LedgerRecordsOf(const OrgChangeSource& source,
                                                                  const OrgState& before,
                                                                  const OrgState& after);

// The e-mail addresses a change erased from the organisation: the address of each member it
// erased (set erased_at) that no member left after it holds (ignoring case), as EraseMember
// deletes the invitations to it. A store erases them from the records it holds that the
// ledger refused (they would name the address).
class ErasedAddresses {
 public:
  ErasedAddresses(const OrgState& before, const OrgState& after);
  bool empty() const { return addresses_.empty(); }
  // Whether `identifier` is one of the addresses, ignoring case.
  bool Names(absl::string_view identifier) const;

 private:
  std::vector<std::string> addresses_;
};

// The request id of the ledger's record of removed `member`'s removal, the same for every
// writer and every retry: ledger::RemovalRequestId("authz", "member", removal_id), which says
// nothing of the member. For a member removed before removals drew an id (an empty
// removal_id), the ShortDigest of their id, as their record was then named.
std::string MemberRemovalRequestId(const Member& member);

// A member's grants as the ledger names them: "owner", "member@support-eu", comma-separated;
// past about 1,000 bytes the rest are counted ("...,reader@p9,... 12 more").
std::string GrantsText(const std::vector<RoleGrant>& grants);

}  // namespace policy::authz

#endif  // POLICY_SERVICES_AUTHZ_ORG_LEDGER_H_
