#ifndef POLICY_SERVICES_AUTHZ_ORG_H_
#define POLICY_SERVICES_AUTHZ_ORG_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/data_class/data_class.h"
#include "common/pii_rule/pii_rule.h"
#include "common/residency/residency.h"
#include "services/authz/ip_allowlist.h"

// The organisation as the authz service models it: plain values, no proto, no SQL.
namespace policy::authz {

enum class Environment { kProduction, kStaging, kDevelopment, kSandbox };

// Owner and admin are granted at organisation scope, member and reader per project.
enum class Role { kOwner, kAdmin, kMember, kReader };

absl::string_view RoleName(Role role);  // "owner", "admin", "member", "reader"
absl::StatusOr<Role> ParseRole(absl::string_view name);
absl::string_view EnvironmentName(Environment environment);
absl::StatusOr<Environment> ParseEnvironment(absl::string_view name);
bool IsOrgRole(Role role);  // owner, admin

// Who may hold a project's keys and call the models with them: its service accounts only, or
// its members (those with a grant that allows the call) too. Projects default to service
// accounts only in production and to members elsewhere (DefaultKeyHolders).
enum class KeyHolders { kServiceAccounts, kMembers };

absl::string_view KeyHoldersName(KeyHolders holders);  // "service_accounts", "members"
absl::StatusOr<KeyHolders> ParseKeyHolders(absl::string_view name);
KeyHolders DefaultKeyHolders(Environment environment);

struct DataPolicy {
  bool zero_data_retention = false;
  int retention_days = 30;  // Ignored with zero data retention.
  // Where the project's calls must be processed; kGlobal: anywhere. A request requiring
  // another residency is refused; one requiring none is routed within this one.
  Residency residency = Residency::kGlobal;
  // The project's own rules for what pii finds in its prompts, ordered by entity type (at most
  // one each); each replaces the deployment's rule for its type.
  std::vector<PiiRule> pii_rules;
  // How sensitive the project's prompts are before pii looks at them; what pii finds may
  // raise a prompt's class, never lower it.
  DataClass data_class = DataClass::kInternal;
  bool operator==(const DataPolicy&) const = default;
};

struct Project {
  std::string id;
  std::string name;
  Environment environment = Environment::kDevelopment;
  bool archived = false;
  DataPolicy data_policy;
  std::vector<std::string> allowed_models;  // Empty: no model may be called.
  int64_t rpm_limit = 0;                    // Requests per minute; 0 means none allowed.
  int64_t tpm_limit = 0;                    // Tokens per minute.
  // Per-member limits inside the project; 0 means no cap beyond the project's own.
  int64_t member_rpm_limit = 0;
  int64_t member_tpm_limit = 0;
  KeyHolders key_holders = KeyHolders::kMembers;
  bool operator==(const Project&) const = default;
};

struct RoleGrant {
  Role role = Role::kReader;
  std::string project;                   // Empty for organisation roles.
  std::optional<absl::Time> expires_at;  // A grant past its expiry stops counting.
  bool operator==(const RoleGrant&) const = default;
};

struct Member {
  std::string id;
  std::string email;
  std::vector<RoleGrant> grants;
  // Set the instant the member is removed: their keys are denied from then on, revoked or not.
  // Removal is final for the id.
  std::optional<absl::Time> removed_at;
  // kProvisionedByIdp for members an identity-provider group sync created; they are removed
  // once no group holds them and they have no grants of their own.
  std::string provisioned_by;
  // What the ledger's record of the removal is named by (MemberRemovalRequestId): 32 random hex
  // digits ApplyMutation draws when the member is removed, and which nothing can change
  // afterwards. Empty while the member is active, and for a member removed before removals drew
  // one (their record is named by the digest of their id).
  std::string removal_id;
  // Set when the removed member's personal data was erased (OrgAdmin::EraseMember): `email`
  // is then empty, for good. The id stays reserved.
  std::optional<absl::Time> erased_at;
  bool operator==(const Member&) const = default;
};

inline constexpr absl::string_view kProvisionedByIdp = "idp";
// The ids of members an identity-provider group sync provisions: "idp:1", "idp:2", ...
inline constexpr absl::string_view kIdpMemberIdPrefix = "idp:";
// The ids of members an accepted invitation makes when the invitee names none.
inline constexpr absl::string_view kInvitedMemberIdPrefix = "member:";

struct ServiceAccount {
  std::string id;
  std::string project;
  Environment environment = Environment::kProduction;
  std::vector<std::string> permissions;  // API permissions, e.g. "chat.completions".
  IpAllowlist ip_allowlist = *IpAllowlist::Parse({});
  int64_t rpm_limit = 0;
  int64_t tpm_limit = 0;
  absl::Duration max_key_lifetime = absl::Hours(24 * 90);
  std::optional<absl::Time> removed_at;
  bool operator==(const ServiceAccount&) const = default;
};

// An identity-provider group mapped to project roles: every member whose e-mail is in
// `members` holds `grants` for as long as they stay in the group.
struct IdpGroup {
  std::string name;
  std::vector<RoleGrant> grants;     // Project roles (member, reader) only.
  std::vector<std::string> members;  // E-mail addresses, as the identity provider last synced.
  bool operator==(const IdpGroup&) const = default;
};

// An immutable, indexed view of the whole organisation, shared by every decision until the
// next refresh replaces it. Thread-safe.
class OrgSnapshot {
 public:
  // `as_of`: every change committed before it is in the snapshot. A member's grants are
  // their own and those of every group in `groups` that lists their e-mail.
  static std::shared_ptr<const OrgSnapshot> Build(std::vector<Project> projects,
                                                  std::vector<Member> members,
                                                  std::vector<ServiceAccount> service_accounts,
                                                  absl::Time as_of,
                                                  const std::vector<IdpGroup>& groups = {});

  const Project* FindProject(absl::string_view id) const;
  const Member* FindMember(absl::string_view id) const;
  const ServiceAccount* FindServiceAccount(absl::string_view id) const;
  absl::Time as_of() const { return as_of_; }
  size_t member_count() const { return members_.size(); }
  size_t service_account_count() const { return service_accounts_.size(); }

 private:
  OrgSnapshot() = default;
  absl::flat_hash_map<std::string, Project> projects_;
  absl::flat_hash_map<std::string, Member> members_;
  absl::flat_hash_map<std::string, ServiceAccount> service_accounts_;
  absl::Time as_of_;
};

}  // namespace policy::authz

#endif  // POLICY_SERVICES_AUTHZ_ORG_H_
