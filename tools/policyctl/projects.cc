// policyctl projects, entity types and service accounts.
#include <cstdio>
#include <optional>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/data_class/data_class_proto.h"
#include "common/pii_rule/pii_rule_proto.h"
#include "common/proto/well_known.h"
#include "common/residency/residency_proto.h"
#include "common/text/caller_text.h"
#include "tools/policyctl/cli.h"

namespace policy::policyctl {
namespace {

// "  class phi" for a project's data class other than the default (internal).
std::string DataClassText(pii::v1::DataClass c) {
  const absl::string_view name = DataClassProtoName(c, DataClass::kInternal);
  if (name == "internal") return "";
  return absl::StrCat("  class ", name);
}

// "  residency eu" for a project whose calls must stay in a residency; "" for anywhere.
std::string ResidencyText(region::v1::Residency r) {
  const absl::string_view name = ResidencyProtoName(r);
  if (name == "global" || name == "unknown") return "";
  return absl::StrCat("  residency ", name);
}

// "  pii EMAIL_ADDRESS=allow,US_SSN=block" for a project with rules of its own; "" without.
std::string PiiRulesText(const authz::v1::PiiPolicy& rules) {
  std::vector<std::string> texts;
  for (const pii::v1::EntityRule& rule : rules.rules()) {
    absl::StatusOr<PiiRule> parsed = PiiRuleFromProto(rule, "rule");
    texts.push_back(parsed.ok() ? FormatPiiRule(*parsed) : absl::StrCat(rule.entity_type(), "=?"));
  }
  if (texts.empty()) return "";
  return absl::StrCat("  pii ", absl::StrJoin(texts, ","));
}

// The rules a --pii flag states: TYPE=treatment, comma-separated, or "none"; false with
// `error` set for anything else.
bool PiiRulesFlag(const std::string& text, authz::v1::PiiPolicy* rules, std::string* error) {
  rules->Clear();
  if (text == "none") return true;
  std::vector<PiiRule> parsed;
  for (const std::string& item : List(text)) {
    absl::StatusOr<PiiRule> rule = ParsePiiRule(item, "--pii");
    if (!rule.ok()) {
      *error = std::string(rule.status().message());
      return false;
    }
    parsed.push_back(*std::move(rule));
  }
  if (absl::Status s = ValidatePiiRules(parsed, "--pii"); !s.ok()) {
    *error = std::string(s.message());
    return false;
  }
  if (parsed.empty()) {
    *error = "--pii: TYPE=treatment,... (US_SSN=block) or none";
    return false;
  }
  for (const PiiRule& rule : parsed) PiiRuleToProto(rule, rules->add_rules());
  return true;
}

}  // namespace

int Projects(const Invocation& in) {
  if (in.words.empty()) return Usage("projects: list, create, update or archive");
  const std::string& verb = in.words[0];
  Global g;
  std::string id, name, environment, models, key_holders, residency = "global", pii = "none",
                                                          data_class = "internal";
  int64_t rpm = 0, tpm = 0, member_rpm = 0, member_tpm = 0, retention_days = 0,
          page_size = kListPageSize;
  bool zdr = false, include_archived = false;
  if (int rc = ParseFlags(
          in, g,
          [&](config::Parser& p) {
            p.AddString("id", &id, "the project's id");
            p.AddString("name", &name, "its name");
            p.AddString("environment", &environment, "production, staging, development, sandbox");
            p.AddString("models", &models, "comma-separated models allowed");
            p.AddInt("rpm", &rpm, "requests per minute (0: none)");
            p.AddInt("tpm", &tpm, "tokens per minute (0: none)");
            p.AddInt("member_rpm", &member_rpm, "each member's requests per minute (0: no cap)");
            p.AddInt("member_tpm", &member_tpm, "each member's tokens per minute (0: no cap)");
            p.AddBool("zdr", &zdr, "zero data retention required");
            p.AddInt("retention_days", &retention_days, "how long data may be kept");
            p.AddString("residency", &residency,
                        "where its calls must be processed: eu, us, apac or global (anywhere)");
            p.AddString("key_holders", &key_holders,
                        "who may hold its keys: service_accounts or members (and service "
                        "accounts); default by environment");
            p.AddString("pii", &pii,
                        "its own rules for what pii finds: TYPE=treatment,... (redact, mask, "
                        "replace, hash, placeholder, block, allow) or none");
            p.AddString("data_class", &data_class,
                        "how sensitive its prompts are before pii looks at them: public, "
                        "internal, pii or phi");
            p.AddBool("include_archived", &include_archived, "list: archived projects too");
            AddPageSize(p, &page_size);
          });
      rc != kOk) {
    return rc;
  }
  if (int rc = Int32Flags({{"page_size", page_size}, {"retention_days", retention_days}});
      rc != kOk)
    return rc;
  if (int rc = NeedAdminKey(g); rc != kOk) return rc;
  auto stub = edge::v1::AdminService::NewStub(Channel(g));
  auto print = [&](const authz::v1::Project& p) {
    // The project's 0 allows nothing; a member's 0 is no cap of their own.
    auto limit = [](int64_t n, bool zero_is_none) {
      return n != 0 ? absl::StrCat(n) : zero_is_none ? "0 (none)" : "-";
    };
    std::printf(
        "%s  %s  %s  models [%s]  rpm %s tpm %s  per member rpm %s tpm %s  key holders: "
        "%s%s%s%s%s\n",
        p.id().c_str(), p.environment().c_str(), p.name().c_str(),
        absl::StrJoin(p.allowed_models(), ",").c_str(), limit(p.limits().rpm(), true).c_str(),
        limit(p.limits().tpm(), true).c_str(), limit(p.member_limits().rpm(), false).c_str(),
        limit(p.member_limits().tpm(), false).c_str(),
        p.key_holders() == authz::v1::KEY_HOLDERS_SERVICE_ACCOUNTS ? "service accounts" : "members",
        ResidencyText(p.data_policy().residency()).c_str(),
        PiiRulesText(p.data_policy().pii()).c_str(),
        DataClassText(p.data_policy().data_class()).c_str(), p.archived() ? "  (archived)" : "");
  };
  // The settings given, onto `p` (all of them on create).
  const bool creating = verb == "create";
  auto given = [&](absl::string_view flag) { return creating || in.Given(flag); };
  auto apply = [&](authz::v1::Project* p) -> int {
    if (given("name")) p->set_name(name);
    if (given("models")) {
      p->clear_allowed_models();
      for (const std::string& m : List(models)) p->add_allowed_models(m);
    }
    if (given("rpm")) p->mutable_limits()->set_rpm(rpm);
    if (given("tpm")) p->mutable_limits()->set_tpm(tpm);
    if (given("member_rpm")) p->mutable_member_limits()->set_rpm(member_rpm);
    if (given("member_tpm")) p->mutable_member_limits()->set_tpm(member_tpm);
    if (given("zdr")) p->mutable_data_policy()->set_zero_data_retention(zdr);
    if (given("retention_days")) {
      p->mutable_data_policy()->set_retention_days(static_cast<int32_t>(retention_days));
    }
    if (given("residency")) {
      region::v1::Residency r;
      if (!ResidencyFlag(residency, &r)) return Usage("--residency must be eu, us, apac or global");
      p->mutable_data_policy()->set_residency(r);
    }
    if (given("data_class")) {
      const std::optional<DataClass> c = ParseDataClass(absl::AsciiStrToLower(data_class));
      if (!c.has_value()) return Usage("--data_class must be public, internal, pii or phi");
      p->mutable_data_policy()->set_data_class(DataClassToProto(*c));
    }
    if (given("pii")) {
      std::string error;
      if (!PiiRulesFlag(pii, p->mutable_data_policy()->mutable_pii(), &error)) {
        return Usage(error);
      }
    }
    if (key_holders == "service_accounts") {
      p->set_key_holders(authz::v1::KEY_HOLDERS_SERVICE_ACCOUNTS);
    } else if (key_holders == "members") {
      p->set_key_holders(authz::v1::KEY_HOLDERS_MEMBERS);
    } else if (!key_holders.empty()) {
      return Usage("--key_holders must be service_accounts or members");
    }
    return kOk;
  };
  // Every project, every page.
  auto list_projects = [&](bool with_archived, authz::v1::ListProjectsResponse* response) {
    authz::v1::ListProjectsRequest request;
    request.set_include_archived(with_archived);
    request.set_page_size(static_cast<int32_t>(page_size));
    return ListAll(request, response, [&](const auto& r, auto* page) {
      return stub->ListProjects(Context(g, true).get(), r, page);
    });
  };
  if (verb == "list") {
    authz::v1::ListProjectsResponse response;
    if (grpc::Status s = list_projects(include_archived, &response); !s.ok()) return Failed(s);
    return Show(g, response, [&] {
      for (const authz::v1::Project& p : response.projects()) print(p);
    });
  }
  authz::v1::Project project;
  grpc::Status status;
  if (verb == "create") {
    if (int rc = RequiredFlags("projects create",
                               {{"id", &id}, {"name", &name}, {"environment", &environment}});
        rc != kOk) {
      return rc;
    }
    authz::v1::CreateProjectRequest request;
    authz::v1::Project* p = request.mutable_project();
    p->set_id(id);
    p->set_environment(environment);
    if (int rc = apply(p); rc != kOk) return rc;
    status = stub->CreateProject(Context(g, true).get(), request, &project);
  } else if (verb == "update") {
    if (in.words.size() != 2) return Usage("projects update ID");
    // Read, changed by the flags given, written back whole (UpdateProject replaces every
    // setting but archived).
    authz::v1::ListProjectsResponse all;
    if (grpc::Status s = list_projects(/*with_archived=*/true, &all); !s.ok()) return Failed(s);
    const authz::v1::Project* found = WithId(all.projects(), in.words[1]);
    if (found == nullptr) return NoSuch("project", in.words[1]);
    authz::v1::UpdateProjectRequest request;
    *request.mutable_expected() = *found;
    *request.mutable_project() = *found;
    if (int rc = apply(request.mutable_project()); rc != kOk) return rc;
    status = stub->UpdateProject(Context(g, true).get(), request, &project);
  } else if (verb == "archive") {
    if (in.words.size() != 2) return Usage("projects archive ID");
    authz::v1::ArchiveProjectRequest request;
    request.set_id(in.words[1]);
    status = stub->ArchiveProject(Context(g, true).get(), request, &project);
  } else {
    return Usage(absl::StrCat("projects: unknown verb '", verb, "'"));
  }
  if (!status.ok()) return Failed(status);
  return Show(g, project, [&] { print(project); });
}

int EntityTypes(const Invocation& in) {
  if (!in.words.empty()) return Usage("entity-types takes no argument");
  Global g;
  if (int rc = ParseFlags(in, g, [](config::Parser&) {}); rc != kOk) return rc;
  if (int rc = NeedAdminKey(g); rc != kOk) return rc;
  auto stub = edge::v1::AdminService::NewStub(Channel(g));
  edge::v1::ListEntityTypesResponse response;
  if (grpc::Status s = stub->ListEntityTypes(Context(g, true).get(),
                                             edge::v1::ListEntityTypesRequest(), &response);
      !s.ok()) {
    return Failed(s);
  }
  return Show(g, response, [&] {
    const absl::flat_hash_set<std::string> blocked(response.blocked_everywhere().begin(),
                                                   response.blocked_everywhere().end());
    for (const pii::v1::EntityTypeInfo& info : response.entity_types()) {
      const std::string name = absl::AsciiStrToLower(pii::v1::DataClass_Name(info.default_class()));
      const std::string data_class(absl::StripPrefix(name, "data_class_"));
      std::string line =
          absl::StrCat(absl::StrFormat("%-24s %-8s", info.entity_type(), data_class),
                       info.custom() ? "  custom" : "",
                       blocked.contains(info.entity_type()) ? "  blocked in every project" : "");
      absl::StripTrailingAsciiWhitespace(&line);
      std::printf("%s\n", line.c_str());
    }
    // A type the edge blocks that pii does not detect: named, as nothing can find it.
    absl::flat_hash_set<std::string> listed;
    for (const pii::v1::EntityTypeInfo& info : response.entity_types()) {
      listed.insert(info.entity_type());
    }
    for (const std::string& type : response.blocked_everywhere()) {
      if (listed.contains(type)) continue;
      std::printf("%s  blocked in every project, but pii does not detect it\n",
                  Escaped(type).c_str());
    }
    std::printf("hash: %s\n", response.keyed_hashing()
                                  ? "available (pii has a pseudonym key)"
                                  : "not available (pii has no pseudonym key)");
  });
}

int ServiceAccounts(const Invocation& in) {
  if (in.words.empty()) return Usage("service-accounts: list, create or remove");
  const std::string& verb = in.words[0];
  Global g;
  std::string id, project, environment, permissions = "chat.completions", ip_allowlist;
  int64_t rpm = 0, tpm = 0, page_size = kListPageSize;
  absl::Duration max_key_lifetime = absl::ZeroDuration();
  bool include_removed = false;
  if (int rc = ParseFlags(in, g,
                          [&](config::Parser& p) {
                            p.AddString("id", &id, "the account's id");
                            p.AddString("project", &project, "its project");
                            p.AddString("environment", &environment, "its environment");
                            p.AddString("permissions", &permissions, "comma-separated permissions");
                            p.AddString("ip_allowlist", &ip_allowlist, "comma-separated CIDRs");
                            p.AddInt("rpm", &rpm, "requests per minute (0: the project's)");
                            p.AddInt("tpm", &tpm, "tokens per minute (0: the project's)");
                            p.AddDuration("max_key_lifetime", &max_key_lifetime,
                                          "the longest its keys may live (0: the keys "
                                          "service's limit)");
                            p.AddBool("include_removed", &include_removed,
                                      "list: removed accounts too");
                            AddPageSize(p, &page_size);
                          });
      rc != kOk) {
    return rc;
  }
  if (int rc = Int32Flags({{"page_size", page_size}}); rc != kOk) return rc;
  if (int rc = NeedAdminKey(g); rc != kOk) return rc;
  auto stub = edge::v1::AdminService::NewStub(Channel(g));
  auto print = [&](const authz::v1::ServiceAccount& a) {
    std::printf("%s  %s/%s  [%s]  from [%s]%s\n", a.id().c_str(), a.project().c_str(),
                a.environment().c_str(), absl::StrJoin(a.permissions(), ",").c_str(),
                absl::StrJoin(a.ip_allowlist(), ",").c_str(),
                a.has_removed_at() ? "  (removed)" : "");
  };
  if (verb == "list") {
    authz::v1::ListServiceAccountsRequest request;
    request.set_project(project);
    request.set_include_removed(include_removed);
    request.set_page_size(static_cast<int32_t>(page_size));
    authz::v1::ListServiceAccountsResponse response;
    if (grpc::Status s = ListAll(request, &response,
                                 [&](const auto& r, auto* page) {
                                   return stub->ListServiceAccounts(Context(g, true).get(), r,
                                                                    page);
                                 });
        !s.ok()) {
      return Failed(s);
    }
    return Show(g, response, [&] {
      for (const authz::v1::ServiceAccount& a : response.service_accounts()) print(a);
    });
  }
  if (verb == "create") {
    if (int rc = RequiredFlags("service-accounts create",
                               {{"id", &id}, {"project", &project}, {"environment", &environment}});
        rc != kOk) {
      return rc;
    }
    authz::v1::CreateServiceAccountRequest request;
    authz::v1::ServiceAccount* a = request.mutable_service_account();
    a->set_id(id);
    a->set_project(project);
    a->set_environment(environment);
    for (const std::string& p : List(permissions)) a->add_permissions(p);
    for (const std::string& c : List(ip_allowlist)) a->add_ip_allowlist(c);
    a->mutable_limits()->set_rpm(rpm);
    a->mutable_limits()->set_tpm(tpm);
    if (max_key_lifetime != absl::ZeroDuration()) {
      proto::SetDuration(max_key_lifetime, a->mutable_max_key_lifetime());  // authz judges it.
    }
    authz::v1::ServiceAccount created;
    if (grpc::Status s = stub->CreateServiceAccount(Context(g, true).get(), request, &created);
        !s.ok()) {
      return Failed(s);
    }
    return Show(g, created, [&] { print(created); });
  }
  if (verb == "remove") {
    if (in.words.size() != 2) return Usage("service-accounts remove ID");
    authz::v1::RemoveServiceAccountRequest request;
    request.set_id(in.words[1]);
    edge::v1::RemoveServiceAccountResponse response;
    if (grpc::Status s = stub->RemoveServiceAccount(Context(g, true).get(), request, &response);
        !s.ok()) {
      return Failed(s);
    }
    return Show(g, response, [&] {
      print(response.service_account());
      std::printf("revoked %d keys\n", response.revoked_keys_size());
    });
  }
  return Usage(absl::StrCat("service-accounts: unknown verb '", verb, "'"));
}

}  // namespace policy::policyctl
