#include "services/authz/org.h"

#include <array>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/text/caller_text.h"

namespace policy::authz {
namespace {

constexpr std::array<std::pair<Role, absl::string_view>, 4> kRoles = {{{Role::kOwner, "owner"},
                                                                       {Role::kAdmin, "admin"},
                                                                       {Role::kMember, "member"},
                                                                       {Role::kReader, "reader"}}};
constexpr std::array<std::pair<Environment, absl::string_view>, 4> kEnvironments = {
    {{Environment::kProduction, "production"},
     {Environment::kStaging, "staging"},
     {Environment::kDevelopment, "development"},
     {Environment::kSandbox, "sandbox"}}};

constexpr std::array<std::pair<KeyHolders, absl::string_view>, 2> kKeyHolders = {
    {{KeyHolders::kServiceAccounts, "service_accounts"}, {KeyHolders::kMembers, "members"}}};

template <typename Enum, size_t N>
absl::string_view NameOf(const std::array<std::pair<Enum, absl::string_view>, N>& names,
                         Enum value) {
  for (const auto& [v, name] : names) {
    if (v == value) return name;
  }
  return "unknown";
}

template <typename Enum, size_t N>
absl::StatusOr<Enum> Parse(const std::array<std::pair<Enum, absl::string_view>, N>& names,
                           absl::string_view text, absl::string_view what) {
  for (const auto& [v, name] : names) {
    if (name == text) return v;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown ", what, " ", Quoted(text)));
}

}  // namespace

absl::string_view RoleName(Role role) { return NameOf(kRoles, role); }
absl::StatusOr<Role> ParseRole(absl::string_view name) { return Parse(kRoles, name, "role"); }
absl::string_view EnvironmentName(Environment e) { return NameOf(kEnvironments, e); }
absl::StatusOr<Environment> ParseEnvironment(absl::string_view name) {
  return Parse(kEnvironments, name, "environment");
}
bool IsOrgRole(Role role) { return role == Role::kOwner || role == Role::kAdmin; }

absl::string_view KeyHoldersName(KeyHolders holders) { return NameOf(kKeyHolders, holders); }
absl::StatusOr<KeyHolders> ParseKeyHolders(absl::string_view name) {
  return Parse(kKeyHolders, name, "key_holders");
}
KeyHolders DefaultKeyHolders(Environment environment) {
  return environment == Environment::kProduction ? KeyHolders::kServiceAccounts
                                                 : KeyHolders::kMembers;
}

std::shared_ptr<const OrgSnapshot> OrgSnapshot::Build(std::vector<Project> projects,
                                                      std::vector<Member> members,
                                                      std::vector<ServiceAccount> accounts,
                                                      absl::Time as_of,
                                                      const std::vector<IdpGroup>& groups) {
  if (!groups.empty()) {
    absl::flat_hash_map<absl::string_view, std::vector<const IdpGroup*>> groups_by_email;
    for (const IdpGroup& group : groups) {
      for (const std::string& email : group.members) groups_by_email[email].push_back(&group);
    }
    for (Member& m : members) {
      auto it = groups_by_email.find(m.email);
      if (it == groups_by_email.end()) continue;
      for (const IdpGroup* group : it->second) {
        m.grants.insert(m.grants.end(), group->grants.begin(), group->grants.end());
      }
    }
  }
  std::shared_ptr<OrgSnapshot> snapshot(new OrgSnapshot());
  for (Project& p : projects) {
    std::string id = p.id;
    snapshot->projects_.emplace(std::move(id), std::move(p));
  }
  for (Member& m : members) {
    std::string id = m.id;
    snapshot->members_.emplace(std::move(id), std::move(m));
  }
  for (ServiceAccount& a : accounts) {
    std::string id = a.id;
    snapshot->service_accounts_.emplace(std::move(id), std::move(a));
  }
  snapshot->as_of_ = as_of;
  return snapshot;
}

const Project* OrgSnapshot::FindProject(absl::string_view id) const {
  auto it = projects_.find(id);
  return it == projects_.end() ? nullptr : &it->second;
}

const Member* OrgSnapshot::FindMember(absl::string_view id) const {
  auto it = members_.find(id);
  return it == members_.end() ? nullptr : &it->second;
}

const ServiceAccount* OrgSnapshot::FindServiceAccount(absl::string_view id) const {
  auto it = service_accounts_.find(id);
  return it == service_accounts_.end() ? nullptr : &it->second;
}

}  // namespace policy::authz
