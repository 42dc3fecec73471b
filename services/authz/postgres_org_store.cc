#include "services/authz/postgres_org_store.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/pg/values.h"
#include "common/status/status.h"

namespace policy::authz {
namespace {

using pg::FormatTextArray;
using pg::Micros;
using pg::OptionalTime;
using pg::ParseTextArray;

absl::StatusOr<std::vector<RoleGrant>> ParseGroupGrants(const std::vector<std::string>& items) {
  std::vector<RoleGrant> grants;
  for (const std::string& item : items) {
    std::vector<std::string> parts = absl::StrSplit(item, ' ');
    if (parts.size() != 2) return absl::DataLossError(absl::StrCat("bad group grant ", item));
    RoleGrant grant;
    ASSIGN_OR_RETURN(grant.role, ParseRole(parts[0]));
    grant.project = parts[1];
    grants.push_back(std::move(grant));
  }
  return grants;
}

std::vector<std::string> FormatGroupGrants(const std::vector<RoleGrant>& grants) {
  std::vector<std::string> items;
  for (const RoleGrant& g : grants) items.push_back(absl::StrCat(RoleName(g.role), " ", g.project));
  return items;
}

absl::StatusOr<InvitationState> ParseStoredInvitationState(absl::string_view name) {
  if (name == "pending") return InvitationState::kPending;
  if (name == "accepted") return InvitationState::kAccepted;
  if (name == "revoked") return InvitationState::kRevoked;
  return absl::DataLossError(absl::StrCat("bad invitation state ", name));
}

// Reads the whole organisation. The caller makes the reads consistent: a repeatable-read
// transaction, or one holding the org row's lock.
absl::StatusOr<OrgState> ReadState(pqxx::transaction_base& tx) {
  OrgState state;
  state.version = tx.exec1("SELECT version FROM authz.org")[0].as<int64_t>();
  for (const pqxx::row& r :
       tx.exec("SELECT id, name, environment, archived, zero_data_retention, retention_days, "
               "allowed_models, rpm_limit, tpm_limit, member_rpm_limit, member_tpm_limit, "
               "key_holders, residency, pii_rules, data_class FROM authz.projects")) {
    Project p;
    p.id = r[0].as<std::string>();
    p.name = r[1].as<std::string>();
    ASSIGN_OR_RETURN(p.environment, ParseEnvironment(r[2].as<std::string>()));
    p.archived = r[3].as<bool>();
    p.data_policy.zero_data_retention = r[4].as<bool>();
    p.data_policy.retention_days = r[5].as<int>();
    ASSIGN_OR_RETURN(p.allowed_models, ParseTextArray(r[6]));
    p.rpm_limit = r[7].as<int64_t>();
    p.tpm_limit = r[8].as<int64_t>();
    p.member_rpm_limit = r[9].as<int64_t>();
    p.member_tpm_limit = r[10].as<int64_t>();
    ASSIGN_OR_RETURN(p.key_holders, ParseKeyHolders(r[11].as<std::string>()));
    std::optional<Residency> residency = ParseResidency(r[12].as<std::string>());
    if (!residency.has_value()) {
      return absl::DataLossError(absl::StrCat("project ", p.id, ": bad residency"));
    }
    p.data_policy.residency = *residency;
    ASSIGN_OR_RETURN(const std::vector<std::string> pii_rules, ParseTextArray(r[13]));
    for (const std::string& text : pii_rules) {
      absl::StatusOr<PiiRule> rule = ParsePiiRule(text, "pii_rules");
      if (!rule.ok()) {
        return absl::DataLossError(absl::StrCat("project ", p.id, ": ", rule.status().message()));
      }
      p.data_policy.pii_rules.push_back(*std::move(rule));
    }
    if (absl::Status s = ValidatePiiRules(p.data_policy.pii_rules, "pii_rules"); !s.ok()) {
      return absl::DataLossError(absl::StrCat("project ", p.id, ": ", s.message()));
    }
    std::optional<DataClass> data_class = ParseDataClass(r[14].as<std::string>());
    if (!data_class.has_value()) {
      return absl::DataLossError(absl::StrCat("project ", p.id, ": bad data class"));
    }
    p.data_policy.data_class = *data_class;
    state.projects.push_back(std::move(p));
  }
  absl::flat_hash_map<std::string, size_t> member_index;
  for (const pqxx::row& r : tx.exec("SELECT id, email, " POLICY_PG_US(
           "removed_at") ", provisioned_by, removal_id, " POLICY_PG_US("erased_at") " FROM "
                                                                                    "authz."
                                                                                    "members")) {
    Member m;
    m.id = r[0].as<std::string>();
    m.email = r[1].as<std::string>();
    m.removed_at = OptionalTime(r[2]);
    m.provisioned_by = r[3].as<std::string>();
    m.removal_id = r[4].as<std::string>();
    m.erased_at = OptionalTime(r[5]);
    member_index[m.id] = state.members.size();
    state.members.push_back(std::move(m));
  }
  for (const pqxx::row& r : tx.exec("SELECT member_id, role, project, " POLICY_PG_US(
           "expires_at") " FROM authz.role_grants")) {
    auto it = member_index.find(r[0].as<std::string>());
    if (it == member_index.end()) return absl::DataLossError("grant of an unknown member");
    RoleGrant g;
    ASSIGN_OR_RETURN(g.role, ParseRole(r[1].as<std::string>()));
    g.project = r[2].as<std::string>();
    g.expires_at = OptionalTime(r[3]);
    state.members[it->second].grants.push_back(std::move(g));
  }
  for (const pqxx::row& r :
       tx.exec("SELECT id, project, environment, permissions, ip_allowlist, rpm_limit, "
               "tpm_limit, max_key_lifetime_seconds, " POLICY_PG_US(
                   "removed_at") " FROM authz.service_accounts")) {
    ServiceAccount a;
    a.id = r[0].as<std::string>();
    a.project = r[1].as<std::string>();
    ASSIGN_OR_RETURN(a.environment, ParseEnvironment(r[2].as<std::string>()));
    ASSIGN_OR_RETURN(a.permissions, ParseTextArray(r[3]));
    ASSIGN_OR_RETURN(std::vector<std::string> networks, ParseTextArray(r[4]));
    absl::StatusOr<IpAllowlist> allowlist = IpAllowlist::Parse(networks);
    if (!allowlist.ok()) return absl::DataLossError(allowlist.status().message());
    a.ip_allowlist = *std::move(allowlist);
    a.rpm_limit = r[5].as<int64_t>();
    a.tpm_limit = r[6].as<int64_t>();
    a.max_key_lifetime = absl::Seconds(r[7].as<int64_t>());
    a.removed_at = OptionalTime(r[8]);
    state.service_accounts.push_back(std::move(a));
  }
  for (const pqxx::row& r :
       tx.exec("SELECT id, email, role, projects, " POLICY_PG_US("created_at") ", " POLICY_PG_US(
           "expires_at") ", state, " POLICY_PG_US("closed_at") ", secret_digest, request_digest, "
                                                               "created_by FROM "
                                                               "authz.invitations")) {
    Invitation i;
    i.id = r[0].as<std::string>();
    i.email = r[1].as<std::string>();
    ASSIGN_OR_RETURN(i.role, ParseRole(r[2].as<std::string>()));
    ASSIGN_OR_RETURN(i.projects, ParseTextArray(r[3]));
    i.created_at = absl::FromUnixMicros(r[4].as<int64_t>());
    i.expires_at = absl::FromUnixMicros(r[5].as<int64_t>());
    ASSIGN_OR_RETURN(i.state, ParseStoredInvitationState(r[6].as<std::string>()));
    i.closed_at = OptionalTime(r[7]);
    i.secret_digest = r[8].as<std::string>();
    i.request_digest = r[9].as<std::string>();
    i.created_by = r[10].as<std::string>();
    state.invitations.push_back(std::move(i));
  }
  for (const pqxx::row& r : tx.exec("SELECT name, grants, members FROM authz.idp_groups")) {
    IdpGroup g;
    g.name = r[0].as<std::string>();
    ASSIGN_OR_RETURN(std::vector<std::string> grants, ParseTextArray(r[1]));
    ASSIGN_OR_RETURN(g.grants, ParseGroupGrants(grants));
    ASSIGN_OR_RETURN(g.members, ParseTextArray(r[2]));
    state.idp_groups.push_back(std::move(g));
  }
  state.Sort();
  return state;
}

void WriteProject(pqxx::work& tx, const Project& p) {
  std::vector<std::string> pii_rules;
  for (const PiiRule& rule : p.data_policy.pii_rules) pii_rules.push_back(FormatPiiRule(rule));
  tx.exec_params(
      "INSERT INTO authz.projects (id, name, environment, archived, zero_data_retention, "
      "retention_days, allowed_models, rpm_limit, tpm_limit, member_rpm_limit, "
      "member_tpm_limit, key_holders, residency, pii_rules, data_class) "
      "VALUES ($1, $2, $3, $4, $5, $6, $7::text[], $8, $9, $10, $11, $12, $13, $14::text[], $15) "
      "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, environment = EXCLUDED.environment, "
      "archived = EXCLUDED.archived, zero_data_retention = EXCLUDED.zero_data_retention, "
      "retention_days = EXCLUDED.retention_days, allowed_models = EXCLUDED.allowed_models, "
      "rpm_limit = EXCLUDED.rpm_limit, tpm_limit = EXCLUDED.tpm_limit, "
      "member_rpm_limit = EXCLUDED.member_rpm_limit, "
      "member_tpm_limit = EXCLUDED.member_tpm_limit, key_holders = EXCLUDED.key_holders, "
      "residency = EXCLUDED.residency, pii_rules = EXCLUDED.pii_rules, "
      "data_class = EXCLUDED.data_class",
      p.id, p.name, std::string(EnvironmentName(p.environment)), p.archived,
      p.data_policy.zero_data_retention, p.data_policy.retention_days,
      FormatTextArray(p.allowed_models), p.rpm_limit, p.tpm_limit, p.member_rpm_limit,
      p.member_tpm_limit, std::string(KeyHoldersName(p.key_holders)),
      std::string(ResidencyName(p.data_policy.residency)), FormatTextArray(pii_rules),
      std::string(DataClassName(p.data_policy.data_class)));
}

void WriteMember(pqxx::work& tx, const Member& m) {
  tx.exec_params("INSERT INTO authz.members (id, email, removed_at, provisioned_by, removal_id, "
                 "erased_at) VALUES ($1, $2, " POLICY_PG_TS("$3") ", $4, $5, " POLICY_PG_TS(
                     "$6") ") ON CONFLICT (id) DO UPDATE SET "
                           "email = EXCLUDED.email, removed_at = EXCLUDED.removed_at, "
                           "provisioned_by = EXCLUDED.provisioned_by, "
                           "removal_id = EXCLUDED.removal_id, erased_at = EXCLUDED.erased_at",
                 m.id, m.email, Micros(m.removed_at), m.provisioned_by, m.removal_id,
                 Micros(m.erased_at));
  tx.exec_params("DELETE FROM authz.role_grants WHERE member_id = $1", m.id);
  for (const RoleGrant& g : m.grants) {
    tx.exec_params(
        "INSERT INTO authz.role_grants (member_id, role, project, expires_at) "
        "VALUES ($1, $2, $3, " POLICY_PG_TS("$4") ")",
        m.id, std::string(RoleName(g.role)), g.project, Micros(g.expires_at));
  }
}

void WriteServiceAccount(pqxx::work& tx, const ServiceAccount& a) {
  std::vector<std::string> networks;
  for (const Cidr& c : a.ip_allowlist.entries()) networks.push_back(FormatCidr(c));
  tx.exec_params(
      "INSERT INTO authz.service_accounts (id, project, environment, permissions, "
      "ip_allowlist, rpm_limit, tpm_limit, max_key_lifetime_seconds, removed_at) VALUES ($1, "
      "$2, $3, $4::text[], $5::text[], $6, $7, $8, " POLICY_PG_TS("$9") ") "
      "ON CONFLICT (id) DO UPDATE SET project = EXCLUDED.project, "
      "environment = EXCLUDED.environment, permissions = EXCLUDED.permissions, "
      "ip_allowlist = EXCLUDED.ip_allowlist, rpm_limit = EXCLUDED.rpm_limit, "
      "tpm_limit = EXCLUDED.tpm_limit, "
      "max_key_lifetime_seconds = EXCLUDED.max_key_lifetime_seconds, "
      "removed_at = EXCLUDED.removed_at",
      a.id, a.project, std::string(EnvironmentName(a.environment)),
      FormatTextArray(a.permissions), FormatTextArray(networks), a.rpm_limit, a.tpm_limit,
      absl::ToInt64Seconds(a.max_key_lifetime), Micros(a.removed_at));
}

void WriteInvitation(pqxx::work& tx, const Invitation& i) {
  tx.exec_params(
      "INSERT INTO authz.invitations (id, email, role, projects, created_at, expires_at, "
      "state, closed_at, secret_digest, request_digest, created_by) VALUES ($1, $2, $3, "
      "$4::text[], " POLICY_PG_TS("$5") ", " POLICY_PG_TS("$6") ", $7, " POLICY_PG_TS(
          "$8") ", $9, $10, $11) ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, "
                "role = EXCLUDED.role, projects = EXCLUDED.projects, "
                "expires_at = EXCLUDED.expires_at, state = EXCLUDED.state, "
                "closed_at = EXCLUDED.closed_at, secret_digest = EXCLUDED.secret_digest",
      i.id, i.email, std::string(RoleName(i.role)), FormatTextArray(i.projects),
      Micros(i.created_at), Micros(i.expires_at), std::string(InvitationStateName(i.state)),
      Micros(i.closed_at), i.secret_digest, i.request_digest, i.created_by);
}

void WriteIdpGroup(pqxx::work& tx, const IdpGroup& g) {
  tx.exec_params(
      "INSERT INTO authz.idp_groups (name, grants, members) VALUES ($1, $2::text[], "
      "$3::text[]) ON CONFLICT (name) DO UPDATE SET grants = EXCLUDED.grants, "
      "members = EXCLUDED.members",
      g.name, FormatTextArray(FormatGroupGrants(g.grants)), FormatTextArray(g.members));
}

// Writes what differs between `before` (what the database holds) and `after`.
void WriteChanges(pqxx::work& tx, const OrgState& before, const OrgState& after) {
  const std::vector<EntityChange> changes = Diff(before, after);
  // Removals first, so that an e-mail freed by a removal can be taken in the same change.
  for (const EntityChange& c : changes) {
    if (c.kind != "member") continue;
    const Member* m = after.FindMember(c.id);
    if (m != nullptr && m->removed_at.has_value()) WriteMember(tx, *m);
  }
  for (const EntityChange& c : changes) {
    if (c.kind == "project") {
      WriteProject(tx, *after.FindProject(c.id));
    } else if (c.kind == "member") {
      const Member* m = after.FindMember(c.id);
      if (!m->removed_at.has_value()) WriteMember(tx, *m);
    } else if (c.kind == "service_account") {
      WriteServiceAccount(tx, *after.FindServiceAccount(c.id));
    } else if (c.kind == "invitation") {
      if (c.op == EntityChange::Op::kDelete) {
        tx.exec_params("DELETE FROM authz.invitations WHERE id = $1", c.id);
      } else {
        WriteInvitation(tx, *after.FindInvitation(c.id));
      }
    } else if (c.kind == "idp_group") {
      if (c.op == EntityChange::Op::kDelete) {
        tx.exec_params("DELETE FROM authz.idp_groups WHERE name = $1", c.id);
      } else {
        auto it = std::find_if(after.idp_groups.begin(), after.idp_groups.end(),
                               [&](const IdpGroup& g) { return g.name == c.id; });
        WriteIdpGroup(tx, *it);
      }
    }
  }
  tx.exec_params("UPDATE authz.org SET version = $1", after.version);
}

absl::StatusOr<OrgState> ReadSnapshot(pqxx::connection& connection) {
  pqxx::transaction<pqxx::repeatable_read, pqxx::readwrite_policy::read_only> tx(connection);
  ASSIGN_OR_RETURN(OrgState state, ReadState(tx));
  tx.commit();
  return state;
}

}  // namespace

PostgresOrgStore::PostgresOrgStore(pg::Pool* pool, Clock* clock, absl::Duration watch_heartbeat)
    : pool_(pool),
      clock_(clock),
      watch_heartbeat_(watch_heartbeat),
      outbox_(pool, "authz.ledger_outbox") {}

std::vector<pg::Privilege> PostgresOrgStore::Privileges() {
  std::vector<pg::Privilege> privileges = ledger::PostgresOutbox::Privileges("authz.ledger_outbox");
  // SELECT ... FOR UPDATE of the one row, then the version's bump.
  pg::AddTablePrivileges("authz.org", {"SELECT", "UPDATE"}, &privileges);
  for (const char* table : {"authz.projects", "authz.members", "authz.service_accounts"}) {
    pg::AddTablePrivileges(table, {"SELECT", "INSERT", "UPDATE"}, &privileges);
  }
  // A member's grants are rewritten whole.
  pg::AddTablePrivileges("authz.role_grants", {"SELECT", "INSERT", "DELETE"}, &privileges);
  for (const char* table : {"authz.invitations", "authz.idp_groups"}) {
    pg::AddTablePrivileges(table, {"SELECT", "INSERT", "UPDATE", "DELETE"}, &privileges);
  }
  return privileges;
}

PostgresOrgStore::~PostgresOrgStore() { StopWatching(); }

std::shared_ptr<const OrgState> PostgresOrgStore::Latest() {
  absl::MutexLock lock(&mu_);
  return latest_;
}

void PostgresOrgStore::Remember(const std::shared_ptr<const OrgState>& state) {
  absl::MutexLock lock(&mu_);
  if (latest_ == nullptr || state->version > latest_->version) latest_ = state;
  if (observer_ != nullptr) observer_->OnState(state);
}

absl::StatusOr<Mutated> PostgresOrgStore::Mutate(const OrgMutation& mutation, absl::Time now,
                                                 const OrgChangeSource& source) {
  Mutated result;
  absl::Status status = pool_->Transact([&](pqxx::work& tx) -> absl::Status {
    const int64_t version = tx.exec1("SELECT version FROM authz.org FOR UPDATE")[0].as<int64_t>();
    std::shared_ptr<const OrgState> base = Latest();
    if (base == nullptr || base->version != version) {
      ASSIGN_OR_RETURN(OrgState read, ReadState(tx));
      base = std::make_shared<const OrgState>(std::move(read));
    }
    ASSIGN_OR_RETURN(OrgState after, ApplyMutation(*base, mutation, now));
    result.before = base;
    if (after.version == base->version) {
      result.after = base;
      return absl::OkStatus();
    }
    WriteChanges(tx, *base, after);
    ASSIGN_OR_RETURN(std::vector<ledger::LedgerRecord> records,
                     LedgerRecordsOf(source, *base, after));
    outbox_.Write(tx, records);
    if (const ErasedAddresses erased(*base, after); !erased.empty()) {
      outbox_.EraseFromFailed(tx, [&](absl::string_view id) { return erased.Names(id); });
    }
    result.after = std::make_shared<const OrgState>(std::move(after));
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  Remember(result.after);
  return result;
}

absl::StatusOr<std::shared_ptr<const OrgState>> PostgresOrgStore::Load() {
  std::shared_ptr<const OrgState> state;
  absl::Status status = pool_->Transact([&](pqxx::work& tx) -> absl::Status {
    tx.exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY");
    ASSIGN_OR_RETURN(OrgState read, ReadState(tx));
    state = std::make_shared<const OrgState>(std::move(read));
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  Remember(state);
  return state;
}

void PostgresOrgStore::Watch(OrgStoreObserver* observer) {
  StopWatching();
  {
    absl::MutexLock lock(&mu_);
    observer_ = observer;
    if (latest_ != nullptr) observer_->OnState(latest_);
  }
  pg::NotificationFeed::Callbacks callbacks;
  callbacks.resync = [this](pqxx::connection& c) -> absl::Status {
    ASSIGN_OR_RETURN(OrgState state, ReadSnapshot(c));
    Remember(std::make_shared<const OrgState>(std::move(state)));
    return absl::OkStatus();
  };
  callbacks.changed = [this](pqxx::connection& c,
                             const std::vector<std::string>& versions) -> absl::Status {
    int64_t newest = 0;
    for (const std::string& v : versions) {
      int64_t parsed = 0;
      if (absl::SimpleAtoi(v, &parsed)) newest = std::max(newest, parsed);
    }
    std::shared_ptr<const OrgState> latest = Latest();
    if (latest != nullptr && latest->version >= newest) return absl::OkStatus();
    ASSIGN_OR_RETURN(OrgState state, ReadSnapshot(c));
    Remember(std::make_shared<const OrgState>(std::move(state)));
    return absl::OkStatus();
  };
  callbacks.in_sync = [this](absl::Time as_of) {
    absl::MutexLock lock(&mu_);
    if (observer_ != nullptr) observer_->OnInSync(as_of);
  };
  feed_ = std::make_unique<pg::NotificationFeed>(pool_->options().url, "policy_authz_changed",
                                                 std::move(callbacks), clock_, watch_heartbeat_);
  feed_->Start();
}

void PostgresOrgStore::StopWatching() {
  if (feed_ != nullptr) {
    feed_->Stop();
    feed_.reset();
  }
  absl::MutexLock lock(&mu_);
  observer_ = nullptr;
}

}  // namespace policy::authz
