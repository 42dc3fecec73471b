#include "services/authz/proto_convert.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/data_class/data_class_proto.h"
#include "common/ids/project_id.h"
#include "common/pii_rule/pii_rule_proto.h"
#include "common/proto/well_known.h"
#include "common/residency/residency_proto.h"
#include "common/status/status.h"
#include "common/text/caller_text.h"
#include "google/protobuf/util/json_util.h"
#include "services/authz/org_validation.h"

namespace policy::authz {
namespace {

using proto::DurationFromProto;
using proto::SetDuration;
using proto::SetTime;
using proto::TimeFromProto;

// Prefixes a domain parser's INVALID_ARGUMENT with the request field it came from.
absl::Status InField(absl::string_view field, const absl::Status& status) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", status.message()));
}

std::vector<std::string> Strings(const google::protobuf::RepeatedPtrField<std::string>& items) {
  return std::vector<std::string>(items.begin(), items.end());
}

void ToProto(const RoleGrant& grant, pb::RoleGrant* out) {
  out->set_role(std::string(RoleName(grant.role)));
  out->set_project(grant.project);
  if (grant.expires_at.has_value()) SetTime(*grant.expires_at, out->mutable_expires_at());
}

}  // namespace

absl::StatusOr<CheckRequest> PrincipalFromProto(const pb::Principal& principal,
                                                absl::string_view project) {
  CheckRequest check;
  switch (principal.kind()) {
    case pb::PRINCIPAL_KIND_MEMBER:
      check.principal_kind = PrincipalKind::kMember;
      break;
    case pb::PRINCIPAL_KIND_SERVICE_ACCOUNT:
      check.principal_kind = PrincipalKind::kServiceAccount;
      break;
    default:
      return absl::InvalidArgumentError(
          "principal.kind must be PRINCIPAL_KIND_MEMBER or PRINCIPAL_KIND_SERVICE_ACCOUNT");
  }
  if (principal.id().empty()) return absl::InvalidArgumentError("principal.id is required");
  RETURN_IF_ERROR(CheckMaxBytes({{"principal.id", principal.id(), kMaxIdBytes}}));
  if (!project.empty()) RETURN_IF_ERROR(ids::ValidateProjectId(project, "project"));
  check.principal_id = principal.id();
  check.project = std::string(project);
  return check;
}

absl::StatusOr<AuthorizeRequest> FromProto(const pb::CheckRequest& request) {
  AuthorizeRequest out;
  ASSIGN_OR_RETURN(out.check, PrincipalFromProto(request.principal(), request.project()));
  if (request.action().empty()) return absl::InvalidArgumentError("action is required");
  RETURN_IF_ERROR(CheckMaxBytes(
      {{"action", request.action(), kMaxActionBytes}, {"model", request.model(), kMaxModelBytes}}));
  out.check.action = request.action();
  out.check.model = request.model();
  out.check.explain = request.explain();
  out.check.grants_only = request.grants_only();
  ASSIGN_OR_RETURN(out.check.residency,
                   ResidencyFromProto(request.residency(), Residency::kGlobal, "residency"));
  if (!request.source_ip().empty()) {
    absl::StatusOr<IpAddress> ip = ParseIpAddress(request.source_ip());
    if (!ip.ok()) return InField("source_ip", ip.status());
    out.check.source_ip = *ip;
  }
  if (request.estimated_tokens() < 0) {
    return absl::InvalidArgumentError("estimated_tokens must not be negative");
  }
  if (request.estimated_tokens() > kMaxTpmLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("estimated_tokens: more than the maximum of ", kMaxTpmLimit));
  }
  out.estimated_tokens = request.estimated_tokens();
  return out;
}

void ToProto(const Authorization& a, pb::CheckResponse* out) {
  out->set_verdict(a.decision.allowed ? pb::VERDICT_ALLOW : pb::VERDICT_DENY);
  if (!a.decision.allowed) out->set_reason(std::string(DenyReasonName(a.decision.reason)));
  out->set_rule(a.rate_limited ? a.limit_rule : std::string(a.decision.rule));
  if (a.rate_limited && a.retry_after != absl::InfiniteDuration()) {
    SetDuration(a.retry_after, out->mutable_retry_after());
  }
  for (const Budget& b : a.budgets) {
    pb::Budget* budget = out->add_budgets();
    budget->set_name(b.name);
    budget->set_limit_per_minute(b.limit_per_minute);
    budget->set_remaining(b.remaining);
  }
  for (const RuleOutcome& r : a.decision.trace) {
    pb::RuleOutcome* rule = out->add_trace();
    rule->set_rule(std::string(r.rule));
    rule->set_passed(r.passed);
    rule->set_detail(r.detail);
  }
  out->set_org_version(a.org_version);
  out->set_zero_data_retention(a.zero_data_retention);
  if (a.residency.has_value()) out->set_residency(ResidencyToProto(*a.residency));
  for (const PiiRule& rule : a.pii_rules) PiiRuleToProto(rule, out->mutable_pii()->add_rules());
  if (a.data_class.has_value()) out->set_data_class(DataClassToProto(*a.data_class));
}

namespace {

// Checked in the caller's order (errors name its indices), then ordered by entity type.
absl::StatusOr<std::vector<PiiRule>> PiiRulesFromProto(const pb::PiiPolicy& in) {
  constexpr absl::string_view kField = "project.data_policy.pii.rules";
  if (static_cast<size_t>(in.rules_size()) > kMaxPiiRules) {
    return absl::InvalidArgumentError(
        absl::StrCat(kField, ": at most ", kMaxPiiRules, " rules, not ", in.rules_size()));
  }
  std::vector<PiiRule> rules;
  for (int i = 0; i < in.rules_size(); ++i) {
    ASSIGN_OR_RETURN(PiiRule rule,
                     PiiRuleFromProto(in.rules(i), absl::StrCat(kField, "[", i, "]")));
    rules.push_back(std::move(rule));
  }
  RETURN_IF_ERROR(ValidatePiiRules(rules, kField));
  SortPiiRules(rules);
  return rules;
}

}  // namespace

absl::StatusOr<Project> FromProto(const pb::Project& in) {
  RETURN_IF_ERROR(ids::ValidateProjectId(in.id(), "project.id"));
  RETURN_IF_ERROR(CheckMaxBytes({{"project.name", in.name(), kMaxNameBytes}}));
  Project p;
  p.id = in.id();
  p.name = in.name();
  absl::StatusOr<Environment> environment = ParseEnvironment(in.environment());
  if (!environment.ok()) return InField("project.environment", environment.status());
  p.environment = *environment;
  p.data_policy.zero_data_retention = in.data_policy().zero_data_retention();
  p.data_policy.retention_days =
      in.has_data_policy() ? in.data_policy().retention_days() : DataPolicy{}.retention_days;
  ASSIGN_OR_RETURN(p.data_policy.residency,
                   ResidencyFromProto(in.data_policy().residency(), Residency::kGlobal,
                                      "project.data_policy.residency"));
  ASSIGN_OR_RETURN(p.data_policy.pii_rules, PiiRulesFromProto(in.data_policy().pii()));
  ASSIGN_OR_RETURN(p.data_policy.data_class,
                   DataClassFromProto(in.data_policy().data_class(), DataClass::kInternal,
                                      "project.data_policy.data_class"));
  p.allowed_models = Strings(in.allowed_models());
  p.rpm_limit = in.limits().rpm();
  p.tpm_limit = in.limits().tpm();
  p.member_rpm_limit = in.member_limits().rpm();
  p.member_tpm_limit = in.member_limits().tpm();
  switch (in.key_holders()) {
    case pb::KEY_HOLDERS_UNSPECIFIED:
      p.key_holders = DefaultKeyHolders(p.environment);
      break;
    case pb::KEY_HOLDERS_SERVICE_ACCOUNTS:
      p.key_holders = KeyHolders::kServiceAccounts;
      break;
    case pb::KEY_HOLDERS_MEMBERS:
      p.key_holders = KeyHolders::kMembers;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("project.key_holders: unknown value ", in.key_holders()));
  }
  return p;
}

absl::StatusOr<std::vector<RoleGrant>> GrantsFromProto(
    const google::protobuf::RepeatedPtrField<pb::RoleGrant>& grants, absl::string_view field) {
  std::vector<RoleGrant> out;
  for (int i = 0; i < grants.size(); ++i) {
    const std::string where = absl::StrCat(field, "[", i, "]");
    RoleGrant g;
    absl::StatusOr<Role> role = ParseRole(grants[i].role());
    if (!role.ok()) return InField(absl::StrCat(where, ".role"), role.status());
    g.role = *role;
    if (!grants[i].project().empty()) {
      RETURN_IF_ERROR(ids::ValidateProjectId(grants[i].project(), absl::StrCat(where, ".project")));
    }
    g.project = grants[i].project();
    if (grants[i].has_expires_at()) {
      ASSIGN_OR_RETURN(g.expires_at,
                       TimeFromProto(grants[i].expires_at(), absl::StrCat(where, ".expires_at")));
    }
    out.push_back(std::move(g));
  }
  return out;
}

absl::StatusOr<Member> FromProto(const pb::Member& in) {
  RETURN_IF_ERROR(CheckMaxBytes(
      {{"member.id", in.id(), kMaxIdBytes}, {"member.email", in.email(), kMaxEmailBytes}}));
  Member m;
  m.id = in.id();
  m.email = in.email();
  ASSIGN_OR_RETURN(m.grants, GrantsFromProto(in.grants(), "member.grants"));
  return m;
}

absl::StatusOr<ServiceAccount> FromProto(const pb::ServiceAccount& in,
                                         EnvironmentField environment_field) {
  RETURN_IF_ERROR(CheckMaxBytes({{"service_account.id", in.id(), kMaxIdBytes}}));
  RETURN_IF_ERROR(ids::ValidateProjectId(in.project(), "service_account.project"));
  ServiceAccount a;
  a.id = in.id();
  a.project = in.project();
  if (environment_field == EnvironmentField::kRequired) {
    absl::StatusOr<Environment> environment = ParseEnvironment(in.environment());
    if (!environment.ok()) return InField("service_account.environment", environment.status());
    a.environment = *environment;
  }
  a.permissions = Strings(in.permissions());
  absl::StatusOr<IpAllowlist> allowlist = IpAllowlist::Parse(Strings(in.ip_allowlist()));
  if (!allowlist.ok()) return InField("service_account.ip_allowlist", allowlist.status());
  a.ip_allowlist = *std::move(allowlist);
  a.rpm_limit = in.limits().rpm();
  a.tpm_limit = in.limits().tpm();
  if (in.has_max_key_lifetime()) {
    ASSIGN_OR_RETURN(a.max_key_lifetime,
                     DurationFromProto(in.max_key_lifetime(), "service_account.max_key_lifetime"));
  }
  return a;
}

void ToProto(const Project& p, pb::Project* out) {
  out->set_id(p.id);
  out->set_name(p.name);
  out->set_environment(std::string(EnvironmentName(p.environment)));
  out->set_archived(p.archived);
  out->mutable_data_policy()->set_zero_data_retention(p.data_policy.zero_data_retention);
  out->mutable_data_policy()->set_retention_days(p.data_policy.retention_days);
  out->mutable_data_policy()->set_residency(ResidencyToProto(p.data_policy.residency));
  // Present even when empty: an update that sends back what it read keeps the rules.
  pb::PiiPolicy* pii = out->mutable_data_policy()->mutable_pii();
  for (const PiiRule& rule : p.data_policy.pii_rules) PiiRuleToProto(rule, pii->add_rules());
  out->mutable_data_policy()->set_data_class(DataClassToProto(p.data_policy.data_class));
  for (const std::string& m : p.allowed_models) out->add_allowed_models(m);
  out->mutable_limits()->set_rpm(p.rpm_limit);
  out->mutable_limits()->set_tpm(p.tpm_limit);
  out->mutable_member_limits()->set_rpm(p.member_rpm_limit);
  out->mutable_member_limits()->set_tpm(p.member_tpm_limit);
  out->set_key_holders(p.key_holders == KeyHolders::kServiceAccounts
                           ? pb::KEY_HOLDERS_SERVICE_ACCOUNTS
                           : pb::KEY_HOLDERS_MEMBERS);
}

void ToProto(const Member& m, const OrgState& state, pb::Member* out,
             std::optional<absl::string_view> only_project) {
  auto shown = [&](const RoleGrant& g) {
    return !only_project.has_value() || g.project.empty() || g.project == *only_project;
  };
  out->set_id(m.id);
  out->set_email(m.email);
  for (const RoleGrant& g : m.grants) {
    if (shown(g)) ToProto(g, out->add_grants());
  }
  for (const IdpGroup& group : state.idp_groups) {
    if (std::find(group.members.begin(), group.members.end(), m.email) == group.members.end()) {
      continue;
    }
    for (const RoleGrant& g : group.grants) {
      if (shown(g)) ToProto(g, out->add_group_grants());
    }
  }
  if (m.removed_at.has_value()) SetTime(*m.removed_at, out->mutable_removed_at());
  if (m.erased_at.has_value()) SetTime(*m.erased_at, out->mutable_erased_at());
  out->set_provisioned_by(m.provisioned_by);
}

void ToProto(const ServiceAccount& a, pb::ServiceAccount* out) {
  out->set_id(a.id);
  out->set_project(a.project);
  out->set_environment(std::string(EnvironmentName(a.environment)));
  for (const std::string& p : a.permissions) out->add_permissions(p);
  for (const Cidr& c : a.ip_allowlist.entries()) out->add_ip_allowlist(FormatCidr(c));
  out->mutable_limits()->set_rpm(a.rpm_limit);
  out->mutable_limits()->set_tpm(a.tpm_limit);
  SetDuration(a.max_key_lifetime, out->mutable_max_key_lifetime());
  if (a.removed_at.has_value()) SetTime(*a.removed_at, out->mutable_removed_at());
}

void ToProto(const Invitation& i, absl::Time now, pb::Invitation* out) {
  out->set_ref(InvitationRef(i));
  out->set_email(i.email);
  out->set_role(std::string(RoleName(i.role)));
  for (const std::string& p : i.projects) out->add_projects(p);
  SetTime(i.created_at, out->mutable_created_at());
  SetTime(i.expires_at, out->mutable_expires_at());
  out->set_state(std::string(InvitationStateName(InvitationStateAt(i, now))));
}

void ToProto(const OrgPlan& plan, google::protobuf::RepeatedPtrField<pb::EntityChange>* out) {
  for (const EntityChange& c : plan.changes) {
    pb::EntityChange* change = out->Add();
    change->set_op(std::string(OpName(c.op)));
    change->set_kind(c.kind);
    change->set_id(c.id);
    for (const FieldChange& f : c.fields) {
      pb::FieldChange* field = change->add_fields();
      field->set_field(f.field);
      field->set_before(f.before);
      field->set_after(f.after);
    }
  }
}

void PolicyDocument(const ServiceAccount& a, const Project& p, pb::ServiceAccountPolicy* out) {
  out->set_service_account(a.id);
  out->set_project(p.id);
  out->set_environment(std::string(EnvironmentName(a.environment)));
  for (const std::string& perm : a.permissions) out->add_permissions(perm);
  for (const std::string& m : p.allowed_models) out->add_allowed_models(m);
  for (const Cidr& c : a.ip_allowlist.entries()) out->add_ip_allowlist(FormatCidr(c));
  out->mutable_limits()->set_rpm(a.rpm_limit);
  out->mutable_limits()->set_tpm(a.tpm_limit);
  out->mutable_project_limits()->set_rpm(p.rpm_limit);
  out->mutable_project_limits()->set_tpm(p.tpm_limit);
  SetDuration(a.max_key_lifetime, out->mutable_max_key_lifetime());
  out->set_zero_data_retention(p.data_policy.zero_data_retention);
  out->set_residency(ResidencyToProto(p.data_policy.residency));
  for (const PiiRule& rule : p.data_policy.pii_rules) {
    PiiRuleToProto(rule, out->mutable_pii()->add_rules());
  }
  out->set_data_class(DataClassToProto(p.data_policy.data_class));
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(*out, &json, options);
  out->set_document_json(std::move(json));
}

}  // namespace policy::authz
