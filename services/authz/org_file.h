#ifndef POLICY_SERVICES_AUTHZ_ORG_FILE_H_
#define POLICY_SERVICES_AUTHZ_ORG_FILE_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "services/authz/org.h"
#include "services/authz/org_state.h"

// The declarative organisation file: the whole organisation as YAML, applied with plan (what
// would change) and apply (all of it in one transaction). See deploy/examples/org.yaml.
namespace policy::authz {

// What a file declares: every project, member, service account and identity-provider group
// the organisation should have. Invitations are not managed by the file.
struct OrgFile {
  std::vector<Project> projects;
  std::vector<Member> members;
  std::vector<ServiceAccount> service_accounts;
  std::vector<IdpGroup> idp_groups;
  // The groups whose entry leaves `members` out: the identity provider's group sync keeps
  // their members, and applying the file leaves them as they are (none for a new group).
  std::vector<std::string> groups_kept_by_sync;
  // Where each member stands in the file, parallel to `members`: "line N: members[i]" (the
  // line when known); empty for a file not read by ParseOrgFile.
  std::vector<std::string> member_places;
  // Where each entry stands, by the name errors give it ("member 'mia'", "project 'support'",
  // "service account 'sa-ci'"): "line N: members[i]"; empty for a file not read by
  // ParseOrgFile.
  absl::flat_hash_map<std::string, std::string> places;
};

// `status` (from applying `file`) with the place of the entry it begins by naming, when the
// file lists it: "member 'u1': project p is archived" becomes "line 40: members[3]: member
// 'u1': project p is archived". Other statuses as they are.
absl::Status WithFilePlace(const OrgFile& file, const absl::Status& status);

// What the file states that counts for nothing as of `now`: each grant of a member or a group
// whose expiry has passed, as "line 12: members[3]: member 'u1': the admin grant on project
// 'p' lapsed at 2026-01-01T00:00:00Z and grants nothing". Not errors: an export keeps such
// grants, and a temporary grant lapses while its file stands.
std::vector<std::string> LapsedGrants(const OrgFile& file, absl::Time now);

inline constexpr size_t kMaxOrgFileBytes = 4 << 20;

// Parses and checks a file. INVALID_ARGUMENT naming the place and the problem, with the line
// when YAML knows it: "line 12: members[3].roles[0].role: unknown role 'ownr'"; unknown keys
// are errors (a typo must not be silently ignored), as are duplicate ids and files larger
// than kMaxOrgFileBytes.
absl::StatusOr<OrgFile> ParseOrgFile(absl::string_view yaml);

// The organisation as a file (projects including archived ones, members and service
// accounts not removed, groups): ParseOrgFile(FormatOrgFile(s)) declares s.
std::string FormatOrgFile(const OrgState& state);

// Makes `state` what `file` declares, as of `now`: creates and updates what the file lists,
// archives projects and removes (removed_at = now) members and service accounts it does not
// list, replaces the groups (a group whose entry leaves `members` out keeps its members) and
// then reconciles group members as SyncIdpGroup does.
// Invitations are untouched. A member listed with `provisioned_by: idp` that the identity
// provider's group sync has removed is left removed (such entries, as FormatOrgFile writes
// them, describe the group sync's members). FAILED_PRECONDITION naming the entry when the file
// lists any other removed member or service account (removal is final), or a member the
// reconciliation would remove (an IdP-provisioned member without grants of its own that no
// group of the file lists). Does not validate the result: the caller runs ValidateOrgState
// (through ApplyMutation, which also refuses a listed project's change of environment).
absl::Status ApplyOrgFile(const OrgFile& file, absl::Time now, OrgState& state);

// The identity provider's view of group `name` replaces its member list: every e-mail
// without an active member gets one (id "idp:<n>", the next number no member has had;
// provisioned_by = kProvisionedByIdp; no grants of its own), and
// every member provisioned by the identity provider that no group lists any more and that
// holds no grants of its own is removed at `now`. E-mails compare case-insensitively and are
// stored lower-case. NOT_FOUND for an unknown group; INVALID_ARGUMENT for a malformed
// e-mail; FAILED_PRECONDITION for no e-mail at all while the group has members, unless
// `may_empty` (an identity provider's empty answer is more often a fault than a group emptied,
// and removal is final).
absl::Status SyncIdpGroup(absl::string_view name, const std::vector<std::string>& emails,
                          absl::Time now, OrgState& state, bool may_empty = false);

}  // namespace policy::authz

#endif  // POLICY_SERVICES_AUTHZ_ORG_FILE_H_
