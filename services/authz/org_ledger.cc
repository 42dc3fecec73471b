#include "services/authz/org_ledger.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status/status.h"

namespace policy::authz {
namespace {

using ledger::LedgerRecord;

// What Diff says of `field` in `change`: its value before and after ("" for none).
const FieldChange* FieldOf(const EntityChange& change, absl::string_view field) {
  for (const FieldChange& f : change.fields) {
    if (f.field == field) return &f;
  }
  return nullptr;
}

// Whether `change` sets `field`, unset before, to a value (a removal's time, for one).
bool Sets(const EntityChange& change, absl::string_view field) {
  const FieldChange* f = FieldOf(change, field);
  return f != nullptr && f->before.empty() && !f->after.empty();
}

// The names of the fields an update changed, comma-separated, for *_CHANGED records: which
// fields changed (as the organisation file's plan names them), never their values, which may
// hold personal data.
std::string ChangedFields(const EntityChange& change) {
  return absl::StrJoin(change.fields, ",",
                       [](std::string* out, const FieldChange& f) { out->append(f.field); });
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

void RecordProject(const EntityChange& c, const Project& p, Recorder& out) {
  std::map<std::string, std::string> metadata = {
      {"project", p.id}, {"environment", std::string(EnvironmentName(p.environment))}};
  if (c.op == EntityChange::Op::kCreate) {
    out.Add("PROJECT_CREATED", "", std::move(metadata));
  } else if (const FieldChange* archived = FieldOf(c, "archived");
             archived != nullptr && archived->after == "true") {
    out.Add("PROJECT_DELETED", "", std::move(metadata));
  } else {
    metadata["fields"] = ChangedFields(c);
    out.Add("PROJECT_CHANGED", "", std::move(metadata));
  }
}

void RecordMember(const EntityChange& c, const Member& m, Recorder& out) {
  if (c.op == EntityChange::Op::kCreate) {
    out.Add("MEMBER_ADDED", m.id, {{"roles", GrantsText(m.grants)}});
  } else if (Sets(c, "removed_at")) {
    out.Add("MEMBER_REMOVED", m.id, {}, MemberRemovalRequestId(m));
  } else {
    out.Add("MEMBER_ROLE_CHANGED", m.id,
            {{"roles", GrantsText(m.grants)}, {"fields", ChangedFields(c)}});
  }
}

void RecordServiceAccount(const EntityChange& c, const ServiceAccount& a, Recorder& out) {
  std::map<std::string, std::string> metadata = {{"service_account", a.id}, {"project", a.project}};
  if (c.op == EntityChange::Op::kCreate) {
    out.Add("SERVICE_ACCOUNT_CREATED", "", std::move(metadata));
  } else if (Sets(c, "removed_at")) {
    out.Add("SERVICE_ACCOUNT_REMOVED", "", std::move(metadata),
            ledger::RemovalRequestId("authz", "service-account", ledger::ShortDigest(a.id)));
  } else {
    metadata["fields"] = ChangedFields(c);
    out.Add("SERVICE_ACCOUNT_CHANGED", "", std::move(metadata));
  }
}

void RecordInvitation(const EntityChange& c, const Invitation& i, Recorder& out) {
  // An update no field of Diff names replaced only the secret id (a retried creation): the
  // invitation the ledger knows is unchanged, and the creation's record stays its only one.
  if (c.op == EntityChange::Op::kUpdate && c.fields.empty()) return;
  std::map<std::string, std::string> metadata = {{"invitation", InvitationRef(i)}};
  if (c.op == EntityChange::Op::kCreate) {
    metadata["change"] = "created";
    metadata["role"] = std::string(RoleName(i.role));
  } else if (c.op == EntityChange::Op::kDelete) {
    metadata["change"] = "deleted";
  } else if (const FieldChange* state = FieldOf(c, "state"); state != nullptr) {
    metadata["change"] = state->after;  // "revoked", "accepted", ...
  } else {
    metadata["change"] = "updated";
  }
  out.Add("INVITATION_CHANGED", i.email, std::move(metadata));
}

void RecordGroup(const EntityChange& c, const IdpGroup* g, Recorder& out) {
  std::map<std::string, std::string> metadata = {
      {"group", c.id},
      {"change", c.op == EntityChange::Op::kCreate   ? "created"
                 : c.op == EntityChange::Op::kDelete ? "deleted"
                                                     : "updated"}};
  if (g != nullptr) {
    metadata["roles"] = GrantsText(g->grants);
    metadata["members"] = absl::StrCat(g->members.size());
  }
  out.Add("IDP_GROUP_CHANGED", "", std::move(metadata));
}

}  // namespace

ErasedAddresses::ErasedAddresses(const OrgState& before, const OrgState& after) {
  for (const Member& m : after.members) {
    if (!m.erased_at.has_value()) continue;
    const Member* was = before.FindMember(m.id);
    if (was == nullptr || was->erased_at.has_value() || was->email.empty()) continue;
    const bool still_held =
        std::any_of(after.members.begin(), after.members.end(), [&](const Member& other) {
          return !other.removed_at.has_value() && absl::EqualsIgnoreCase(other.email, was->email);
        });
    if (!still_held) addresses_.push_back(was->email);
  }
}

bool ErasedAddresses::Names(absl::string_view identifier) const {
  return std::any_of(addresses_.begin(), addresses_.end(),
                     [&](const std::string& a) { return absl::EqualsIgnoreCase(a, identifier); });
}

std::string MemberRemovalRequestId(const Member& member) {
  return ledger::RemovalRequestId(
      "authz", "member",
      member.removal_id.empty() ? ledger::ShortDigest(member.id) : member.removal_id);
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
  const std::vector<EntityChange> changes = Diff(before, after);
  // An erasure names nobody: its invitations and groups are counted, not recorded (their
  // records would name the address).
  std::vector<const Member*> erased;
  for (const EntityChange& c : changes) {
    if (c.kind == "member" && Sets(c, "erased_at")) erased.push_back(after.FindMember(c.id));
  }
  if (!erased.empty()) {
    const auto count = [&](absl::string_view kind) {
      return absl::StrCat(std::count_if(changes.begin(), changes.end(),
                                        [&](const EntityChange& c) { return c.kind == kind; }));
    };
    for (const Member* m : erased) {
      out.Add("MEMBER_ERASED", "",
              {{"removal", MemberRemovalRequestId(*m)},
               {"invitations_deleted", count("invitation")},
               {"idp_groups_changed", count("idp_group")}});
    }
    return std::move(out).Finish();
  }
  // A record describes the entity as the change left it, or as it was when deleted (only
  // invitations and groups are ever deleted).
  for (const EntityChange& c : changes) {
    const OrgState& state = c.op == EntityChange::Op::kDelete ? before : after;
    if (c.kind == "project") {
      RecordProject(c, *state.FindProject(c.id), out);
    } else if (c.kind == "member") {
      RecordMember(c, *state.FindMember(c.id), out);
    } else if (c.kind == "service_account") {
      RecordServiceAccount(c, *state.FindServiceAccount(c.id), out);
    } else if (c.kind == "invitation") {
      RecordInvitation(c, *state.FindInvitation(c.id), out);
    } else if (c.kind == "idp_group") {
      RecordGroup(c, c.op == EntityChange::Op::kDelete ? nullptr : after.FindIdpGroup(c.id), out);
    }
  }
  if (source.org_file && out.size() > 0) {
    const size_t changes = out.size();
    std::map<std::string, std::string> metadata = {{"org_version", absl::StrCat(after.version)},
                                                   {"changes", absl::StrCat(changes)},
                                                   {"file_sha256", source.file_sha256}};
    if (!source.reference.empty()) metadata["reference"] = source.reference;
    out.Add("ORG_FILE_APPLIED", "", std::move(metadata));
  }
  return std::move(out).Finish();
}

}  // namespace policy::authz
