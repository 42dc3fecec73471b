#include "services/authz/org_ledger.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/crypto/crypto.h"
#include "common/status/status.h"

namespace policy::authz {
namespace {

using ledger::LedgerRecord;

std::string Digest(absl::string_view text) {
  return absl::BytesToHexString(crypto::Sha256(text)).substr(0, 32);
}

bool IsRemoved(const std::optional<absl::Time>& removed_at) { return removed_at.has_value(); }

// The names of `fields` whose values differ, comma-separated, for *_CHANGED records: which
// fields changed, never their values (they may hold personal data).
std::string ChangedFields(std::initializer_list<std::pair<absl::string_view, bool>> fields) {
  std::vector<absl::string_view> names;
  for (const auto& [name, changed] : fields) {
    if (changed) names.push_back(name);
  }
  return absl::StrJoin(names, ",");
}

class Recorder {
 public:
  explicit Recorder(const OrgChangeSource& source) : source_(source) {}

  void Add(absl::string_view action, std::string subject,
           std::map<std::string, std::string> metadata, std::string request_id = "") {
    records_.push_back(LedgerRecord{.action = std::string(action),
                                    .actor = source_.actor,
                                    .project = "",
                                    .environment = "",
                                    .subject = std::move(subject),
                                    .request_id = std::move(request_id),
                                    .metadata = std::move(metadata)});
  }

  // Gives every record without a request id a random one.
  absl::StatusOr<std::vector<LedgerRecord>> Finish() && {
    for (LedgerRecord& r : records_) {
      if (!r.request_id.empty()) continue;
      ASSIGN_OR_RETURN(r.request_id, ledger::NewRequestId("authz:"));
    }
    return std::move(records_);
  }

  size_t size() const { return records_.size(); }

 private:
  const OrgChangeSource& source_;
  std::vector<LedgerRecord> records_;
};

void RecordProjects(const OrgState& before, const OrgState& after, Recorder& out) {
  for (const Project& p : after.projects) {
    const Project* old = before.FindProject(p.id);
    if (old != nullptr && *old == p) continue;
    std::map<std::string, std::string> metadata = {
        {"project", p.id}, {"environment", std::string(EnvironmentName(p.environment))}};
    if (old == nullptr) {
      out.Add("PROJECT_CREATED", "", std::move(metadata));
    } else if (p.archived && !old->archived) {
      out.Add("PROJECT_DELETED", "", std::move(metadata));
    } else {
      metadata["fields"] =
          ChangedFields({{"name", old->name != p.name},
                         {"environment", old->environment != p.environment},
                         {"archived", old->archived != p.archived},
                         {"data_policy", !(old->data_policy == p.data_policy)},
                         {"allowed_models", old->allowed_models != p.allowed_models},
                         {"rpm_limit", old->rpm_limit != p.rpm_limit},
                         {"tpm_limit", old->tpm_limit != p.tpm_limit},
                         {"member_rpm_limit", old->member_rpm_limit != p.member_rpm_limit},
                         {"member_tpm_limit", old->member_tpm_limit != p.member_tpm_limit}});
      out.Add("PROJECT_CHANGED", "", std::move(metadata));
    }
  }
}

void RecordMembers(const OrgState& before, const OrgState& after, Recorder& out) {
  for (const Member& m : after.members) {
    const Member* old = before.FindMember(m.id);
    if (old != nullptr && *old == m) continue;
    if (old == nullptr) {
      out.Add("MEMBER_ADDED", m.id, {{"roles", GrantsText(m.grants)}});
    } else if (IsRemoved(m.removed_at) && !IsRemoved(old->removed_at)) {
      out.Add("MEMBER_REMOVED", m.id, {}, ledger::RemovalRequestId("authz", "member", m.id));
    } else {
      out.Add("MEMBER_ROLE_CHANGED", m.id,
              {{"roles", GrantsText(m.grants)},
               {"fields",
                ChangedFields({{"email", old->email != m.email},
                               {"grants", old->grants != m.grants},
                               {"provisioned_by", old->provisioned_by != m.provisioned_by}})}});
    }
  }
}

void RecordServiceAccounts(const OrgState& before, const OrgState& after, Recorder& out) {
  for (const ServiceAccount& a : after.service_accounts) {
    const ServiceAccount* old = before.FindServiceAccount(a.id);
    if (old != nullptr && *old == a) continue;
    std::map<std::string, std::string> metadata = {{"service_account", a.id},
                                                   {"project", a.project}};
    if (old == nullptr) {
      out.Add("SERVICE_ACCOUNT_CREATED", "", std::move(metadata));
    } else if (IsRemoved(a.removed_at) && !IsRemoved(old->removed_at)) {
      out.Add("SERVICE_ACCOUNT_REMOVED", "", std::move(metadata),
              ledger::RemovalRequestId("authz", "service-account", a.id));
    } else {
      metadata["fields"] =
          ChangedFields({{"permissions", old->permissions != a.permissions},
                         {"ip_allowlist", !(old->ip_allowlist == a.ip_allowlist)},
                         {"rpm_limit", old->rpm_limit != a.rpm_limit},
                         {"tpm_limit", old->tpm_limit != a.tpm_limit},
                         {"max_key_lifetime", old->max_key_lifetime != a.max_key_lifetime}});
      out.Add("SERVICE_ACCOUNT_CHANGED", "", std::move(metadata));
    }
  }
}

void RecordInvitations(const OrgState& before, const OrgState& after, Recorder& out) {
  for (const Invitation& i : after.invitations) {
    const Invitation* old = before.FindInvitation(i.id);
    if (old != nullptr && *old == i) continue;
    std::map<std::string, std::string> metadata = {{"invitation", InvitationRef(i.id)}};
    if (old == nullptr) {
      metadata["change"] = "created";
      metadata["role"] = std::string(RoleName(i.role));
    } else if (i.state != old->state) {
      metadata["change"] = std::string(InvitationStateName(i.state));
    } else {
      metadata["change"] = "updated";
    }
    out.Add("INVITATION_CHANGED", i.email, std::move(metadata));
  }
  for (const Invitation& i : before.invitations) {
    if (after.FindInvitation(i.id) != nullptr) continue;
    out.Add("INVITATION_CHANGED", i.email,
            {{"invitation", InvitationRef(i.id)}, {"change", "deleted"}});
  }
}

void RecordGroups(const OrgState& before, const OrgState& after, Recorder& out) {
  std::map<std::string, std::pair<const IdpGroup*, const IdpGroup*>> groups;
  for (const IdpGroup& g : before.idp_groups) groups[g.name].first = &g;
  for (const IdpGroup& g : after.idp_groups) groups[g.name].second = &g;
  for (const auto& [name, pair] : groups) {
    const auto& [old, now] = pair;
    if (old != nullptr && now != nullptr && *old == *now) continue;
    const char* change = old == nullptr ? "created" : now == nullptr ? "deleted" : "updated";
    std::map<std::string, std::string> metadata = {{"group", name}, {"change", change}};
    if (now != nullptr) {
      metadata["roles"] = GrantsText(now->grants);
      metadata["members"] = absl::StrCat(now->members.size());
    }
    out.Add("IDP_GROUP_CHANGED", "", std::move(metadata));
  }
}

}  // namespace

std::string InvitationRef(absl::string_view invitation_id) {
  return absl::StrCat("sha256:", Digest(invitation_id));
}

std::string GrantsText(const std::vector<RoleGrant>& grants) {
  // The ledger takes metadata values of up to 1 KiB: a longer list keeps its first grants
  // and counts the rest.
  constexpr size_t kMaxBytes = 1000;
  std::string text;
  for (size_t i = 0; i < grants.size(); ++i) {
    const RoleGrant& g = grants[i];
    std::string grant = g.project.empty() ? std::string(RoleName(g.role))
                                          : absl::StrCat(RoleName(g.role), "@", g.project);
    if (text.size() + grant.size() + 1 > kMaxBytes - 24) {
      absl::StrAppend(&text, ",... ", grants.size() - i, " more");
      break;
    }
    absl::StrAppend(&text, text.empty() ? "" : ",", grant);
  }
  return text;
}

absl::StatusOr<std::vector<LedgerRecord>> LedgerRecordsOf(const OrgChangeSource& source,
                                                          const OrgState& before,
                                                          const OrgState& after) {
  Recorder out(source);
  RecordProjects(before, after, out);
  RecordMembers(before, after, out);
  RecordServiceAccounts(before, after, out);
  RecordInvitations(before, after, out);
  RecordGroups(before, after, out);
  if (source.org_file && out.size() > 0) {
    const size_t changes = out.size();
    out.Add("ORG_FILE_APPLIED", "",
            {{"org_version", absl::StrCat(after.version)}, {"changes", absl::StrCat(changes)}});
  }
  return std::move(out).Finish();
}

}  // namespace policy::authz
