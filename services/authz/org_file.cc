// The organisation file format. One YAML document whose top level is a map with the keys
// below, each optional (an empty map `{}` declares an empty organisation). Every other key,
// at any level, is an error, as is a key given twice.
//
//   projects:                          # list
//     - id: support-eu                 # required; letters, digits and . _ - @ + :
//       name: Customer support (EU)    # required, 1 to 200 bytes of UTF-8 text
//       environment: production        # required: production | staging | development | sandbox
//       archived: false                # optional, default false
//       data_policy: {zero_data_retention: true, retention_days: 0, residency: eu,
//                     pii: {US_SSN: block, EMAIL_ADDRESS: placeholder}, data_class: pii}
//                                      # optional map, each key optional; default false / 30 /
//                                      # global / none / internal; residency: eu | us | apac |
//                                      # global (anywhere); pii: the project's own rule per
//                                      # entity type, replacing the deployment's: redact | mask
//                                      # | replace | hash | placeholder | block | allow;
//                                      # data_class: public | internal | pii | phi, how
//                                      # sensitive its prompts are before pii looks at them
//       models: [gpt-4o, gpt-4o-mini]  # optional, default none (no model may be called)
//       key_holders: service_accounts  # optional: service_accounts | members (members whose
//                                      # grants allow the call, and service accounts); default
//                                      # service_accounts in production, members elsewhere
//       limits: {rpm: 600, tpm: 200000, member_rpm: 60, member_tpm: 20000}
//                                      # required map; rpm and tpm required, member_* default 0
//   members:                           # list
//     - id: alice                      # required
//       email: alice@acme.example      # required; stored lower-case; unique among members
//       roles:                         # optional, default none
//         - {role: owner}              # owner | admin (organisation roles, no project)
//         - {role: member, project: support-eu, expires: 2027-06-30T00:00:00Z}
//                                      # member | reader need a project; expires: RFC 3339
//       provisioned_by: idp            # optional: only "idp", for a member the identity
//                                      # provider created (FormatOrgFile writes it); members
//                                      # without it are managed by the file; with it, an entry
//                                      # for a member the group sync removed changes nothing
//   service_accounts:                  # list
//     - id: sa-support-prod            # required
//       project: support-eu            # required, a project of this file
//       environment: production        # optional, default the project's (and must equal it)
//       permissions: [chat.completions, embeddings]   # required, API permissions
//       ip_allowlist: [10.20.0.0/16, "2001:db8:20::/48"]  # optional, default none (allows
//                                      # nothing); IPv4/IPv6 CIDR blocks or bare addresses
//       limits: {rpm: 300, tpm: 100000}  # required map, both keys required
//       max_key_lifetime: 90d          # optional, default 90d; Nd, Nh, Nm or Ns
//   idp_groups:                        # list
//     - name: support-engineers        # required, 1 to 200 bytes, unique
//       grants: [{role: member, project: support-eu}]  # required; member | reader only
//       members: [bob@acme.example]    # optional; e-mails as the identity provider lists them;
//                                      # left out, the group keeps the members the group
//                                      # sync gave it (the identity provider owns them)
//
// Types are strict: integers and booleans are plain (unquoted) scalars, limits are not
// negative, lists are YAML sequences (null only for an empty top-level section). Every error
// is INVALID_ARGUMENT "line N: <path>: <problem>", the path as in projects[0].limits.rpm.
#include "services/authz/org_file.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <sstream>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status/status.h"
#include "common/text/caller_text.h"
#include "common/text/utf8.h"
#include "common/yaml/yaml_document.h"
#include "services/authz/org_validation.h"

namespace policy::authz {
namespace {

using Node = YAML::Node;

constexpr size_t kMaxGroupMembers = 100000;
constexpr absl::string_view kTimeFormat = "%Y-%m-%d%ET%H:%M:%E*S%Ez";

// ---------------------------------------------------------------------------------------
// Errors.

YAML::Mark MarkOf(const Node& node) {
  try {
    return node.Mark();
  } catch (const YAML::Exception&) {
    return YAML::Mark::null_mark();
  }
}

std::string LinePrefix(const YAML::Mark& mark) { return YamlLinePrefix(mark); }

// INVALID_ARGUMENT "line N: path: message" (the line and path when known).
absl::Status Invalid(const Node& node, absl::string_view path, absl::string_view message) {
  return absl::InvalidArgumentError(
      absl::StrCat(LinePrefix(MarkOf(node)), path, path.empty() ? "" : ": ", message));
}

std::string KindOf(const Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Undefined:
      break;
  }
  return "an undefined value";
}

std::string Child(absl::string_view path, absl::string_view key) {
  return path.empty() ? std::string(key) : absl::StrCat(path, ".", key);
}

std::string Index(absl::string_view path, size_t i) { return absl::StrCat(path, "[", i, "]"); }

// ---------------------------------------------------------------------------------------
// Scalars.

absl::StatusOr<std::string> ReadString(const Node& node, absl::string_view path) {
  if (!node.IsScalar()) {
    return Invalid(node, path, absl::StrCat("expected a string, got ", KindOf(node)));
  }
  const std::string& text = node.Scalar();
  if (!IsPlainText(text)) {
    return Invalid(node, path, "must be UTF-8 text without control characters");
  }
  return text;
}

// A plain (unquoted) scalar: integers and booleans must not be strings.
absl::StatusOr<std::string> ReadPlain(const Node& node, absl::string_view path,
                                      absl::string_view expected) {
  if (!node.IsScalar()) {
    return Invalid(node, path, absl::StrCat("expected ", expected, ", got ", KindOf(node)));
  }
  if (node.Tag() == "!") {  // Quoted.
    return Invalid(node, path,
                   absl::StrCat("expected ", expected, ", got the string ", Quoted(node.Scalar())));
  }
  return node.Scalar();
}

absl::StatusOr<bool> ReadBool(const Node& node, absl::string_view path) {
  ASSIGN_OR_RETURN(const std::string text, ReadPlain(node, path, "true or false"));
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  return Invalid(node, path, absl::StrCat("expected true or false, got ", Quoted(text)));
}

// A non-negative integer.
absl::StatusOr<int64_t> ReadCount(const Node& node, absl::string_view path) {
  ASSIGN_OR_RETURN(const std::string text, ReadPlain(node, path, "an integer"));
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value)) {
    return Invalid(node, path, absl::StrCat("expected an integer, got ", Quoted(text)));
  }
  if (value < 0) return Invalid(node, path, "must not be negative");
  return value;
}

absl::StatusOr<absl::Time> ReadTime(const Node& node, absl::string_view path) {
  ASSIGN_OR_RETURN(const std::string text, ReadString(node, path));
  absl::Time time;
  std::string error;
  const bool parsed = text.size() >= 5 && absl::ascii_isdigit(text[0]) &&
                      absl::ascii_isdigit(text[1]) && absl::ascii_isdigit(text[2]) &&
                      absl::ascii_isdigit(text[3]) && text[4] == '-' &&
                      absl::ParseTime(kTimeFormat, text, &time, &error);
  if (!parsed) {
    return Invalid(
        node, path,
        absl::StrCat("expected an RFC 3339 time such as 2027-06-30T00:00:00Z, got ", Quoted(text)));
  }
  const int64_t year = absl::ToCivilYear(time, absl::UTCTimeZone()).year();
  if (year < 1970 || year > 9999) {
    return Invalid(node, path, absl::StrCat("year ", year, " is outside 1970 to 9999"));
  }
  return time;
}

// "90d", "12h", "30m", "45s".
absl::StatusOr<absl::Duration> ReadDuration(const Node& node, absl::string_view path) {
  ASSIGN_OR_RETURN(const std::string text, ReadString(node, path));
  const auto bad = [&] {
    return Invalid(
        node, path,
        absl::StrCat("expected a duration such as 90d, 12h, 30m or 45s, got ", Quoted(text)));
  };
  if (text.size() < 2 || text.size() > 13) return bad();
  const absl::string_view digits(text.data(), text.size() - 1);
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return absl::ascii_isdigit(c); })) {
    return bad();
  }
  int64_t count = 0;
  if (!absl::SimpleAtoi(digits, &count)) return bad();
  switch (text.back()) {
    case 'd':
      return absl::Hours(24) * count;
    case 'h':
      return absl::Hours(count);
    case 'm':
      return absl::Minutes(count);
    case 's':
      return absl::Seconds(count);
    default:
      return bad();
  }
}

absl::StatusOr<Role> ReadRole(const Node& node, absl::string_view path) {
  ASSIGN_OR_RETURN(const std::string text, ReadString(node, path));
  absl::StatusOr<Role> role = ParseRole(text);
  if (!role.ok()) return Invalid(node, path, role.status().message());
  return *role;
}

absl::StatusOr<Residency> ReadResidency(const Node& node, absl::string_view path) {
  ASSIGN_OR_RETURN(const std::string text, ReadString(node, path));
  std::optional<Residency> residency = ParseResidency(text);
  if (!residency.has_value()) return Invalid(node, path, "must be eu, us, apac or global");
  return *residency;
}

absl::StatusOr<DataClass> ReadDataClass(const Node& node, absl::string_view path) {
  ASSIGN_OR_RETURN(const std::string text, ReadString(node, path));
  std::optional<DataClass> data_class = ParseDataClass(text);
  if (!data_class.has_value()) return Invalid(node, path, "must be public, internal, pii or phi");
  return *data_class;
}

absl::StatusOr<Environment> ReadEnvironment(const Node& node, absl::string_view path) {
  ASSIGN_OR_RETURN(const std::string text, ReadString(node, path));
  absl::StatusOr<Environment> environment = ParseEnvironment(text);
  if (!environment.ok()) return Invalid(node, path, environment.status().message());
  return *environment;
}

// ---------------------------------------------------------------------------------------
// Maps and lists.

// A YAML map whose keys are strings among those a place allows, each at most once.
class MapReader {
 public:
  static absl::StatusOr<MapReader> Read(const Node& node, std::string path,
                                        std::initializer_list<absl::string_view> known) {
    if (!node.IsMap()) {
      return Invalid(node, path, absl::StrCat("expected a map, got ", KindOf(node)));
    }
    MapReader reader(node, std::move(path));
    for (auto it = node.begin(); it != node.end(); ++it) {
      const Node key = it->first;
      if (!key.IsScalar()) {
        return Invalid(key, reader.path_, absl::StrCat("keys must be strings, not ", KindOf(key)));
      }
      const std::string& name = key.Scalar();
      if (std::find(known.begin(), known.end(), name) == known.end()) {
        return Invalid(key, reader.path_,
                       absl::StrCat("unknown key ", Quoted(name), " (expected ",
                                    absl::StrJoin(known, ", "), ")"));
      }
      if (reader.Find(name) != nullptr) {
        return Invalid(key, reader.path_, absl::StrCat("key ", Quoted(name), " is given twice"));
      }
      reader.entries_.emplace_back(name, it->second);
    }
    return reader;
  }

  // The value under `key`, or null when the key is absent.
  const Node* Find(absl::string_view key) const {
    for (const auto& [name, value] : entries_) {
      if (name == key) return &value;
    }
    return nullptr;
  }

  absl::StatusOr<Node> Require(absl::string_view key) const {
    if (const Node* value = Find(key)) return *value;
    return Invalid(node_, path_, absl::StrCat("missing required key ", Quoted(key)));
  }

  std::string PathOf(absl::string_view key) const { return Child(path_, key); }
  const Node& node() const { return node_; }
  const std::string& path() const { return path_; }

 private:
  MapReader(Node node, std::string path) : node_(std::move(node)), path_(std::move(path)) {}
  Node node_;
  std::string path_;
  std::vector<std::pair<std::string, Node>> entries_;
};

// Calls `read(item, item_path)` for each item of the list `node` (at most `max` items; null
// counts as empty when `null_is_empty`).
template <typename Read>
absl::Status ForEach(const Node& node, absl::string_view path, size_t max, bool null_is_empty,
                     Read read) {
  if (null_is_empty && node.IsNull()) return absl::OkStatus();
  if (!node.IsSequence()) {
    return Invalid(node, path, absl::StrCat("expected a list, got ", KindOf(node)));
  }
  if (node.size() > max) {
    return Invalid(node, path, absl::StrCat("has more than ", max, " entries"));
  }
  size_t i = 0;
  for (auto it = node.begin(); it != node.end(); ++it, ++i) {
    RETURN_IF_ERROR(read(Node(*it), Index(path, i)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ReadStrings(const Node& node, absl::string_view path,
                                                     size_t max) {
  std::vector<std::string> items;
  RETURN_IF_ERROR(ForEach(node, path, max, false, [&](const Node& item, const std::string& p) {
    ASSIGN_OR_RETURN(std::string text, ReadString(item, p));
    items.push_back(std::move(text));
    return absl::OkStatus();
  }));
  return items;
}

// A validator's message about the entity at `path`.
absl::Status Prefixed(const absl::Status& status, const Node& node, absl::string_view path) {
  if (status.ok()) return status;
  return Invalid(node, path, status.message());
}

// ---------------------------------------------------------------------------------------
// E-mail addresses.

absl::Status CheckEmailAddress(absl::string_view email) {
  // ValidateMember holds the e-mail rule; a member with a fixed valid id checks only that.
  Member probe;
  probe.id = "probe";
  probe.email = std::string(email);
  return ValidateMember(probe);
}

// An e-mail the group sync can provision a member for: a plausible address, lower-case, that
// also forms a valid member id ("idp:<email>").
absl::Status CheckIdpEmail(absl::string_view email) {
  if (!CheckEmailAddress(email).ok()) {
    return absl::InvalidArgumentError(absl::StrCat("malformed e-mail ", Quoted(email)));
  }
  if (absl::Status s = ValidateId(absl::StrCat("idp:", email), "the member id idp:<email>");
      !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed e-mail ", Quoted(email), ": ", s.message()));
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------
// The file's entities.

struct Context {
  absl::flat_hash_map<std::string, Environment> projects;  // Id to environment.
};

absl::Status CheckProjectKnown(const Context& context, const Node& node, absl::string_view path,
                               absl::string_view project) {
  if (context.projects.contains(project)) return absl::OkStatus();
  return Invalid(node, path, absl::StrCat("unknown project ", Quoted(project)));
}

absl::StatusOr<RoleGrant> ReadGrant(const Node& node, const std::string& path,
                                    const Context& context, bool project_roles_only) {
  ASSIGN_OR_RETURN(const MapReader map,
                   MapReader::Read(node, path, {"role", "project", "expires"}));
  RoleGrant grant;
  ASSIGN_OR_RETURN(const Node role, map.Require("role"));
  ASSIGN_OR_RETURN(grant.role, ReadRole(role, map.PathOf("role")));
  if (project_roles_only && IsOrgRole(grant.role)) {
    return Invalid(role, map.PathOf("role"),
                   absl::StrCat("groups grant project roles (member, reader) only, not ",
                                RoleName(grant.role)));
  }
  if (const Node* project = map.Find("project")) {
    const std::string project_path = map.PathOf("project");
    ASSIGN_OR_RETURN(grant.project, ReadString(*project, project_path));
    if (IsOrgRole(grant.role)) {
      return Invalid(
          *project, project_path,
          absl::StrCat(RoleName(grant.role), " is an organisation role; leave the project out"));
    }
    RETURN_IF_ERROR(CheckProjectKnown(context, *project, project_path, grant.project));
  } else if (!IsOrgRole(grant.role)) {
    return Invalid(node, path,
                   absl::StrCat(RoleName(grant.role), " is a project role; name the project"));
  }
  if (const Node* expires = map.Find("expires")) {
    ASSIGN_OR_RETURN(grant.expires_at, ReadTime(*expires, map.PathOf("expires")));
  }
  return grant;
}

absl::StatusOr<std::vector<RoleGrant>> ReadGrants(const Node& node, absl::string_view path,
                                                  const Context& context, bool project_roles_only) {
  std::vector<RoleGrant> grants;
  RETURN_IF_ERROR(
      ForEach(node, path, kMaxGrants, false, [&](const Node& item, const std::string& p) {
        ASSIGN_OR_RETURN(RoleGrant grant, ReadGrant(item, p, context, project_roles_only));
        for (const RoleGrant& other : grants) {
          if (other.role == grant.role && other.project == grant.project) {
            return Invalid(
                item, p,
                absl::StrCat(RoleName(grant.role),
                             grant.project.empty() ? "" : absl::StrCat(" of ", grant.project),
                             " is granted twice"));
          }
        }
        grants.push_back(std::move(grant));
        return absl::OkStatus();
      }));
  return grants;
}

// A map of entity type to treatment ({US_SSN: block}); null is none.
absl::StatusOr<std::vector<PiiRule>> ReadPiiRules(const Node& node, const std::string& path) {
  std::vector<PiiRule> rules;
  if (node.IsNull()) return rules;
  if (!node.IsMap()) return Invalid(node, path, absl::StrCat("expected a map, got ", KindOf(node)));
  if (node.size() > kMaxPiiRules) {
    return Invalid(node, path, absl::StrCat("at most ", kMaxPiiRules, " entity types"));
  }
  for (auto it = node.begin(); it != node.end(); ++it) {
    const Node key = it->first;
    if (!key.IsScalar() || !IsValidEntityType(key.Scalar())) {
      return Invalid(key, path,
                     "keys must be entity type names ([A-Z][A-Z0-9_]*, at most 64 bytes)");
    }
    const std::string& type = key.Scalar();
    for (const PiiRule& earlier : rules) {
      if (earlier.entity_type == type) {
        return Invalid(key, path, absl::StrCat("key ", Quoted(type), " is given twice"));
      }
    }
    const std::string value_path = Child(path, type);
    ASSIGN_OR_RETURN(const std::string text, ReadString(it->second, value_path));
    std::optional<PiiTreatment> treatment = ParsePiiTreatment(text);
    if (!treatment.has_value()) {
      return Invalid(it->second, value_path, absl::StrCat("must be one of ", PiiTreatmentNames()));
    }
    rules.push_back({.entity_type = type, .treatment = *treatment});
  }
  SortPiiRules(rules);
  return rules;
}

absl::StatusOr<Project> ReadProject(const Node& node, const std::string& path) {
  ASSIGN_OR_RETURN(const MapReader map,
                   MapReader::Read(node, path,
                                   {"id", "name", "environment", "archived", "data_policy",
                                    "models", "key_holders", "limits"}));
  Project project;
  ASSIGN_OR_RETURN(const Node id, map.Require("id"));
  ASSIGN_OR_RETURN(project.id, ReadString(id, map.PathOf("id")));
  ASSIGN_OR_RETURN(const Node name, map.Require("name"));
  ASSIGN_OR_RETURN(project.name, ReadString(name, map.PathOf("name")));
  ASSIGN_OR_RETURN(const Node environment, map.Require("environment"));
  ASSIGN_OR_RETURN(project.environment, ReadEnvironment(environment, map.PathOf("environment")));
  if (const Node* archived = map.Find("archived")) {
    ASSIGN_OR_RETURN(project.archived, ReadBool(*archived, map.PathOf("archived")));
  }
  if (const Node* policy = map.Find("data_policy")) {
    ASSIGN_OR_RETURN(const MapReader policy_map,
                     MapReader::Read(*policy, map.PathOf("data_policy"),
                                     {"zero_data_retention", "retention_days", "residency", "pii",
                                      "data_class"}));
    if (const Node* zdr = policy_map.Find("zero_data_retention")) {
      ASSIGN_OR_RETURN(project.data_policy.zero_data_retention,
                       ReadBool(*zdr, policy_map.PathOf("zero_data_retention")));
    }
    if (const Node* days = policy_map.Find("retention_days")) {
      const std::string days_path = policy_map.PathOf("retention_days");
      ASSIGN_OR_RETURN(const int64_t value, ReadCount(*days, days_path));
      if (value > 3650) return Invalid(*days, days_path, "must be 0 to 3650");
      project.data_policy.retention_days = static_cast<int>(value);
    }
    if (const Node* residency = policy_map.Find("residency")) {
      ASSIGN_OR_RETURN(project.data_policy.residency,
                       ReadResidency(*residency, policy_map.PathOf("residency")));
    }
    if (const Node* pii = policy_map.Find("pii")) {
      ASSIGN_OR_RETURN(project.data_policy.pii_rules, ReadPiiRules(*pii, policy_map.PathOf("pii")));
    }
    if (const Node* data_class = policy_map.Find("data_class")) {
      ASSIGN_OR_RETURN(project.data_policy.data_class,
                       ReadDataClass(*data_class, policy_map.PathOf("data_class")));
    }
  }
  if (const Node* models = map.Find("models")) {
    ASSIGN_OR_RETURN(project.allowed_models,
                     ReadStrings(*models, map.PathOf("models"), kMaxModels));
  }
  project.key_holders = DefaultKeyHolders(project.environment);
  if (const Node* holders = map.Find("key_holders")) {
    const std::string holders_path = map.PathOf("key_holders");
    ASSIGN_OR_RETURN(const std::string text, ReadString(*holders, holders_path));
    absl::StatusOr<KeyHolders> parsed = ParseKeyHolders(text);
    if (!parsed.ok()) {
      return Invalid(*holders, holders_path,
                     absl::StrCat(parsed.status().message(), " (service_accounts or members)"));
    }
    project.key_holders = *parsed;
  }
  ASSIGN_OR_RETURN(const Node limits, map.Require("limits"));
  ASSIGN_OR_RETURN(
      const MapReader limit_map,
      MapReader::Read(limits, map.PathOf("limits"), {"rpm", "tpm", "member_rpm", "member_tpm"}));
  ASSIGN_OR_RETURN(const Node rpm, limit_map.Require("rpm"));
  ASSIGN_OR_RETURN(project.rpm_limit, ReadCount(rpm, limit_map.PathOf("rpm")));
  ASSIGN_OR_RETURN(const Node tpm, limit_map.Require("tpm"));
  ASSIGN_OR_RETURN(project.tpm_limit, ReadCount(tpm, limit_map.PathOf("tpm")));
  if (const Node* member_rpm = limit_map.Find("member_rpm")) {
    ASSIGN_OR_RETURN(project.member_rpm_limit,
                     ReadCount(*member_rpm, limit_map.PathOf("member_rpm")));
  }
  if (const Node* member_tpm = limit_map.Find("member_tpm")) {
    ASSIGN_OR_RETURN(project.member_tpm_limit,
                     ReadCount(*member_tpm, limit_map.PathOf("member_tpm")));
  }
  RETURN_IF_ERROR(Prefixed(ValidateProject(project), node, path));
  return project;
}

absl::StatusOr<Member> ReadMember(const Node& node, const std::string& path,
                                  const Context& context) {
  ASSIGN_OR_RETURN(const MapReader map,
                   MapReader::Read(node, path, {"id", "email", "roles", "provisioned_by"}));
  Member member;
  ASSIGN_OR_RETURN(const Node id, map.Require("id"));
  ASSIGN_OR_RETURN(member.id, ReadString(id, map.PathOf("id")));
  ASSIGN_OR_RETURN(const Node email, map.Require("email"));
  ASSIGN_OR_RETURN(member.email, ReadString(email, map.PathOf("email")));
  member.email = absl::AsciiStrToLower(member.email);
  if (!CheckEmailAddress(member.email).ok()) {
    return Invalid(email, map.PathOf("email"),
                   absl::StrCat(Quoted(member.email), " is not an e-mail address"));
  }
  if (const Node* roles = map.Find("roles")) {
    ASSIGN_OR_RETURN(member.grants, ReadGrants(*roles, map.PathOf("roles"), context, false));
  }
  if (const Node* provisioned_by = map.Find("provisioned_by")) {
    ASSIGN_OR_RETURN(member.provisioned_by,
                     ReadString(*provisioned_by, map.PathOf("provisioned_by")));
    if (member.provisioned_by != kProvisionedByIdp) {
      return Invalid(*provisioned_by, map.PathOf("provisioned_by"),
                     absl::StrCat("expected ", Quoted(kProvisionedByIdp), ", got ",
                                  Quoted(member.provisioned_by)));
    }
  }
  RETURN_IF_ERROR(Prefixed(ValidateMember(member), node, path));
  return member;
}

absl::StatusOr<ServiceAccount> ReadServiceAccount(const Node& node, const std::string& path,
                                                  const Context& context) {
  ASSIGN_OR_RETURN(const MapReader map,
                   MapReader::Read(node, path,
                                   {"id", "project", "environment", "permissions", "ip_allowlist",
                                    "limits", "max_key_lifetime"}));
  ServiceAccount account;
  ASSIGN_OR_RETURN(const Node id, map.Require("id"));
  ASSIGN_OR_RETURN(account.id, ReadString(id, map.PathOf("id")));
  ASSIGN_OR_RETURN(const Node project, map.Require("project"));
  ASSIGN_OR_RETURN(account.project, ReadString(project, map.PathOf("project")));
  RETURN_IF_ERROR(CheckProjectKnown(context, project, map.PathOf("project"), account.project));
  account.environment = context.projects.at(account.project);
  if (const Node* environment = map.Find("environment")) {
    const std::string environment_path = map.PathOf("environment");
    ASSIGN_OR_RETURN(account.environment, ReadEnvironment(*environment, environment_path));
    const Environment expected = context.projects.at(account.project);
    if (account.environment != expected) {
      return Invalid(*environment, environment_path,
                     absl::StrCat(EnvironmentName(account.environment), " differs from ",
                                  EnvironmentName(expected), " of project ", account.project));
    }
  }
  ASSIGN_OR_RETURN(const Node permissions, map.Require("permissions"));
  ASSIGN_OR_RETURN(account.permissions,
                   ReadStrings(permissions, map.PathOf("permissions"), kMaxPermissions));
  if (const Node* allowlist = map.Find("ip_allowlist")) {
    const std::string allowlist_path = map.PathOf("ip_allowlist");
    ASSIGN_OR_RETURN(const std::vector<std::string> entries,
                     ReadStrings(*allowlist, allowlist_path, IpAllowlist::kMaxEntries));
    // Each entry on its own first, so that the error points at its line.
    for (size_t i = 0; i < entries.size(); ++i) {
      absl::StatusOr<Cidr> cidr = ParseCidr(entries[i]);
      if (!cidr.ok()) {
        return Invalid((*allowlist)[i], Index(allowlist_path, i), cidr.status().message());
      }
    }
    absl::StatusOr<IpAllowlist> parsed = IpAllowlist::Parse(entries);
    if (!parsed.ok()) return Invalid(*allowlist, allowlist_path, parsed.status().message());
    account.ip_allowlist = *std::move(parsed);
  }
  ASSIGN_OR_RETURN(const Node limits, map.Require("limits"));
  ASSIGN_OR_RETURN(const MapReader limit_map,
                   MapReader::Read(limits, map.PathOf("limits"), {"rpm", "tpm"}));
  ASSIGN_OR_RETURN(const Node rpm, limit_map.Require("rpm"));
  ASSIGN_OR_RETURN(account.rpm_limit, ReadCount(rpm, limit_map.PathOf("rpm")));
  ASSIGN_OR_RETURN(const Node tpm, limit_map.Require("tpm"));
  ASSIGN_OR_RETURN(account.tpm_limit, ReadCount(tpm, limit_map.PathOf("tpm")));
  if (const Node* lifetime = map.Find("max_key_lifetime")) {
    const std::string lifetime_path = map.PathOf("max_key_lifetime");
    ASSIGN_OR_RETURN(account.max_key_lifetime, ReadDuration(*lifetime, lifetime_path));
    if (account.max_key_lifetime <= absl::ZeroDuration() ||
        account.max_key_lifetime > absl::Hours(24 * 365)) {
      return Invalid(*lifetime, lifetime_path, "must be positive and at most 365d");
    }
  }
  RETURN_IF_ERROR(Prefixed(ValidateServiceAccount(account), node, path));
  return account;
}

// A group entry; `members_stated` says whether it has `members` (without it, the group keeps
// the members the group sync gave it).
absl::StatusOr<IdpGroup> ReadGroup(const Node& node, const std::string& path,
                                   const Context& context, bool* members_stated) {
  ASSIGN_OR_RETURN(const MapReader map, MapReader::Read(node, path, {"name", "grants", "members"}));
  IdpGroup group;
  ASSIGN_OR_RETURN(const Node name, map.Require("name"));
  ASSIGN_OR_RETURN(group.name, ReadString(name, map.PathOf("name")));
  if (group.name.empty() || group.name.size() > kMaxNameBytes) {
    return Invalid(name, map.PathOf("name"), "must be 1 to 200 bytes");
  }
  ASSIGN_OR_RETURN(const Node grants, map.Require("grants"));
  ASSIGN_OR_RETURN(group.grants, ReadGrants(grants, map.PathOf("grants"), context, true));
  if (group.grants.empty()) return Invalid(grants, map.PathOf("grants"), "grants no role");
  const Node* members = map.Find("members");
  *members_stated = members != nullptr;
  if (members != nullptr) {
    absl::flat_hash_map<std::string, size_t> seen;
    RETURN_IF_ERROR(ForEach(*members, map.PathOf("members"), kMaxGroupMembers, false,
                            [&](const Node& item, const std::string& p) {
                              ASSIGN_OR_RETURN(std::string email, ReadString(item, p));
                              email = absl::AsciiStrToLower(email);
                              if (absl::Status s = CheckIdpEmail(email); !s.ok()) {
                                return Invalid(item, p, s.message());
                              }
                              const auto [it, inserted] = seen.emplace(email, seen.size());
                              if (!inserted) {
                                return Invalid(
                                    item, p,
                                    absl::StrCat(email, " is listed twice (also ",
                                                 Index(map.PathOf("members"), it->second), ")"));
                              }
                              group.members.push_back(std::move(email));
                              return absl::OkStatus();
                            }));
  }
  return group;
}

// Duplicate keys (ids, e-mails, names) across the entries of one list.
class UniqueKeys {
 public:
  explicit UniqueKeys(absl::string_view what) : what_(what) {}
  absl::Status Add(const std::string& key, const Node& node, absl::string_view path) {
    const auto [it, inserted] = seen_.emplace(key, std::string(path));
    if (inserted) return absl::OkStatus();
    return Invalid(node, path,
                   absl::StrCat("duplicate ", what_, " ", Quoted(key), " (also ", it->second, ")"));
  }

 private:
  std::string what_;
  absl::flat_hash_map<std::string, std::string> seen_;
};

absl::StatusOr<OrgFile> ParseDocument(const Node& root) {
  OrgFile file;
  if (!root.IsMap()) {
    return Invalid(root, "", absl::StrCat("the file must be a map, got ", KindOf(root)));
  }
  ASSIGN_OR_RETURN(
      const MapReader top,
      MapReader::Read(root, "", {"projects", "members", "service_accounts", "idp_groups"}));
  constexpr size_t kUnbounded = std::numeric_limits<size_t>::max();
  Context context;
  if (const Node* projects = top.Find("projects")) {
    UniqueKeys ids("project id");
    RETURN_IF_ERROR(ForEach(*projects, "projects", kUnbounded, true,
                            [&](const Node& item, const std::string& path) {
                              ASSIGN_OR_RETURN(Project project, ReadProject(item, path));
                              RETURN_IF_ERROR(ids.Add(project.id, item, Child(path, "id")));
                              context.projects.emplace(project.id, project.environment);
                              file.places.emplace(absl::StrCat("project ", Quoted(project.id)),
                                                  absl::StrCat(LinePrefix(MarkOf(item)), path));
                              file.projects.push_back(std::move(project));
                              return absl::OkStatus();
                            }));
  }
  if (const Node* members = top.Find("members")) {
    UniqueKeys ids("member id"), emails("e-mail");
    RETURN_IF_ERROR(ForEach(
        *members, "members", kUnbounded, true, [&](const Node& item, const std::string& path) {
          ASSIGN_OR_RETURN(Member member, ReadMember(item, path, context));
          RETURN_IF_ERROR(ids.Add(member.id, item, Child(path, "id")));
          RETURN_IF_ERROR(emails.Add(member.email, item, Child(path, "email")));
          file.places.emplace(absl::StrCat("member ", Quoted(member.id)),
                              absl::StrCat(LinePrefix(MarkOf(item)), path));
          file.members.push_back(std::move(member));
          file.member_places.push_back(absl::StrCat(LinePrefix(MarkOf(item)), path));
          return absl::OkStatus();
        }));
  }
  if (const Node* accounts = top.Find("service_accounts")) {
    UniqueKeys ids("service account id");
    RETURN_IF_ERROR(
        ForEach(*accounts, "service_accounts", kUnbounded, true,
                [&](const Node& item, const std::string& path) {
                  ASSIGN_OR_RETURN(ServiceAccount account, ReadServiceAccount(item, path, context));
                  RETURN_IF_ERROR(ids.Add(account.id, item, Child(path, "id")));
                  file.places.emplace(absl::StrCat("service account ", Quoted(account.id)),
                                      absl::StrCat(LinePrefix(MarkOf(item)), path));
                  file.service_accounts.push_back(std::move(account));
                  return absl::OkStatus();
                }));
  }
  if (const Node* groups = top.Find("idp_groups")) {
    UniqueKeys names("group name");
    RETURN_IF_ERROR(ForEach(
        *groups, "idp_groups", kUnbounded, true, [&](const Node& item, const std::string& path) {
          bool members_stated = false;
          ASSIGN_OR_RETURN(IdpGroup group, ReadGroup(item, path, context, &members_stated));
          if (!members_stated) file.groups_kept_by_sync.push_back(group.name);
          RETURN_IF_ERROR(names.Add(group.name, item, Child(path, "name")));
          file.places.emplace(absl::StrCat("group ", Quoted(group.name)),
                              absl::StrCat(LinePrefix(MarkOf(item)), path));
          file.idp_groups.push_back(std::move(group));
          return absl::OkStatus();
        }));
  }
  return file;
}

// ---------------------------------------------------------------------------------------
// Formatting.

std::string FormatRfc3339(absl::Time time) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", time, absl::UTCTimeZone());
}

// Whole seconds (the granularity lifetimes are stored with; a fraction rounds up), in the
// largest unit that expresses the value exactly.
std::string FormatLifetime(absl::Duration duration) {
  int64_t seconds = absl::ToInt64Seconds(duration);
  if (seconds < std::numeric_limits<int64_t>::max() && duration > absl::Seconds(seconds)) {
    ++seconds;
  }
  if (seconds <= 0) return "0s";
  if (seconds % 86400 == 0) return absl::StrCat(seconds / 86400, "d");
  if (seconds % 3600 == 0) return absl::StrCat(seconds / 3600, "h");
  if (seconds % 60 == 0) return absl::StrCat(seconds / 60, "m");
  return absl::StrCat(seconds, "s");
}

void EmitStrings(YAML::Emitter& out, const std::vector<std::string>& items) {
  out << YAML::Flow << YAML::BeginSeq;
  for (const std::string& item : items) out << item;
  out << YAML::EndSeq;
}

void EmitGrants(YAML::Emitter& out, const std::vector<RoleGrant>& grants) {
  out << YAML::BeginSeq;
  for (const RoleGrant& grant : grants) {
    out << YAML::Flow << YAML::BeginMap;
    out << YAML::Key << "role" << YAML::Value << std::string(RoleName(grant.role));
    if (!grant.project.empty()) out << YAML::Key << "project" << YAML::Value << grant.project;
    if (grant.expires_at.has_value()) {
      out << YAML::Key << "expires" << YAML::Value << FormatRfc3339(*grant.expires_at);
    }
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;
}

void EmitProject(YAML::Emitter& out, const Project& p) {
  out << YAML::BeginMap;
  out << YAML::Key << "id" << YAML::Value << p.id;
  out << YAML::Key << "name" << YAML::Value << p.name;
  out << YAML::Key << "environment" << YAML::Value << std::string(EnvironmentName(p.environment));
  if (p.archived) out << YAML::Key << "archived" << YAML::Value << true;
  out << YAML::Key << "data_policy" << YAML::Value << YAML::Flow << YAML::BeginMap;
  out << YAML::Key << "zero_data_retention" << YAML::Value << p.data_policy.zero_data_retention;
  out << YAML::Key << "retention_days" << YAML::Value << p.data_policy.retention_days;
  if (p.data_policy.residency != Residency::kGlobal) {
    out << YAML::Key << "residency" << YAML::Value
        << std::string(ResidencyName(p.data_policy.residency));
  }
  if (!p.data_policy.pii_rules.empty()) {
    out << YAML::Key << "pii" << YAML::Value << YAML::Flow << YAML::BeginMap;
    for (const PiiRule& rule : p.data_policy.pii_rules) {
      out << YAML::Key << rule.entity_type << YAML::Value
          << std::string(PiiTreatmentName(rule.treatment));
    }
    out << YAML::EndMap;
  }
  if (p.data_policy.data_class != DataClass::kInternal) {
    out << YAML::Key << "data_class" << YAML::Value
        << std::string(DataClassName(p.data_policy.data_class));
  }
  out << YAML::EndMap;
  out << YAML::Key << "models" << YAML::Value;
  EmitStrings(out, p.allowed_models);
  if (p.key_holders != DefaultKeyHolders(p.environment)) {
    out << YAML::Key << "key_holders" << YAML::Value << std::string(KeyHoldersName(p.key_holders));
  }
  out << YAML::Key << "limits" << YAML::Value << YAML::Flow << YAML::BeginMap;
  out << YAML::Key << "rpm" << YAML::Value << p.rpm_limit;
  out << YAML::Key << "tpm" << YAML::Value << p.tpm_limit;
  if (p.member_rpm_limit != 0) {
    out << YAML::Key << "member_rpm" << YAML::Value << p.member_rpm_limit;
  }
  if (p.member_tpm_limit != 0) {
    out << YAML::Key << "member_tpm" << YAML::Value << p.member_tpm_limit;
  }
  out << YAML::EndMap;
  out << YAML::EndMap;
}

void EmitMember(YAML::Emitter& out, const Member& m) {
  out << YAML::BeginMap;
  out << YAML::Key << "id" << YAML::Value << m.id;
  out << YAML::Key << "email" << YAML::Value << m.email;
  if (!m.grants.empty()) {
    out << YAML::Key << "roles" << YAML::Value;
    EmitGrants(out, m.grants);
  }
  if (!m.provisioned_by.empty()) {
    out << YAML::Key << "provisioned_by" << YAML::Value << m.provisioned_by;
  }
  out << YAML::EndMap;
}

void EmitServiceAccount(YAML::Emitter& out, const ServiceAccount& a) {
  out << YAML::BeginMap;
  out << YAML::Key << "id" << YAML::Value << a.id;
  out << YAML::Key << "project" << YAML::Value << a.project;
  out << YAML::Key << "environment" << YAML::Value << std::string(EnvironmentName(a.environment));
  out << YAML::Key << "permissions" << YAML::Value;
  EmitStrings(out, a.permissions);
  std::vector<std::string> networks;
  for (const Cidr& cidr : a.ip_allowlist.entries()) networks.push_back(FormatCidr(cidr));
  out << YAML::Key << "ip_allowlist" << YAML::Value;
  EmitStrings(out, networks);
  out << YAML::Key << "limits" << YAML::Value << YAML::Flow << YAML::BeginMap;
  out << YAML::Key << "rpm" << YAML::Value << a.rpm_limit;
  out << YAML::Key << "tpm" << YAML::Value << a.tpm_limit;
  out << YAML::EndMap;
  out << YAML::Key << "max_key_lifetime" << YAML::Value << FormatLifetime(a.max_key_lifetime);
  out << YAML::EndMap;
}

void EmitGroup(YAML::Emitter& out, const IdpGroup& g) {
  out << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << g.name;
  out << YAML::Key << "grants" << YAML::Value;
  EmitGrants(out, g.grants);
  out << YAML::Key << "members" << YAML::Value;
  EmitStrings(out, g.members);
  out << YAML::EndMap;
}

// ---------------------------------------------------------------------------------------
// Group reconciliation.

std::string FormatRemoval(absl::string_view kind, absl::string_view id, absl::Time removed_at) {
  return absl::StrCat(kind, " ", Quoted(id), " was removed at ", FormatRfc3339(removed_at),
                      "; removal is final, use a new id");
}

// Makes the members match the groups as of `now`: removes every active member the identity
// provider provisioned that holds no grants of its own and that no group lists (or whose
// e-mail a member managed otherwise now has), then provisions a member for every group e-mail
// without an active member. Leaves the lists sorted.
absl::Status ReconcileGroups(OrgState& state, absl::Time now) {
  state.Sort();
  absl::flat_hash_set<std::string> group_emails;
  for (const IdpGroup& group : state.idp_groups) {
    for (const std::string& email : group.members) {
      RETURN_IF_ERROR(CheckIdpEmail(email));
      group_emails.insert(email);
    }
  }
  absl::flat_hash_set<std::string> managed_emails;
  for (const Member& m : state.members) {
    if (!m.removed_at.has_value() && m.provisioned_by != kProvisionedByIdp) {
      managed_emails.insert(m.email);
    }
  }
  absl::flat_hash_set<std::string> active_emails;
  for (Member& m : state.members) {
    if (m.removed_at.has_value()) continue;
    if (m.provisioned_by == kProvisionedByIdp && m.grants.empty() &&
        (!group_emails.contains(m.email) || managed_emails.contains(m.email))) {
      m.removed_at = now;
      continue;
    }
    active_emails.insert(m.email);
  }
  // Newcomers in the order of their groups and addresses, each under the next free id.
  std::vector<Member> provisioned;
  uint64_t next = state.NextMemberNumber(kIdpMemberIdPrefix);
  for (const IdpGroup& group : state.idp_groups) {
    for (const std::string& email : group.members) {
      if (!active_emails.insert(email).second) continue;
      Member member;
      member.id = absl::StrCat(kIdpMemberIdPrefix, next++);
      member.email = email;
      member.provisioned_by = std::string(kProvisionedByIdp);
      provisioned.push_back(std::move(member));
    }
  }
  for (Member& m : provisioned) state.members.push_back(std::move(m));
  state.Sort();
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<OrgFile> ParseOrgFile(absl::string_view yaml) {
  if (yaml.size() > kMaxOrgFileBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the file is larger than ", kMaxOrgFileBytes, " bytes (", yaml.size(), ")"));
  }
  absl::StatusOr<Node> root = LoadSingleYamlDocument(yaml);
  if (!root.ok()) return root.status();
  if (root->IsNull()) {
    return absl::InvalidArgumentError("the file is empty; an empty organisation is {}");
  }
  try {
    return ParseDocument(*root);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(LinePrefix(e.mark), e.msg));
  }
}

namespace {

const std::string& KeyOf(const Project& p) { return p.id; }
const std::string& KeyOf(const Member& m) { return m.id; }
const std::string& KeyOf(const ServiceAccount& a) { return a.id; }
const std::string& KeyOf(const IdpGroup& g) { return g.name; }

// `entities` in IdReadingOrder of their ids (a group's: its name).
template <typename T>
std::vector<const T*> InReadingOrder(const std::vector<T>& entities) {
  std::vector<const T*> ordered;
  ordered.reserve(entities.size());
  for (const T& e : entities) ordered.push_back(&e);
  std::sort(ordered.begin(), ordered.end(),
            [](const T* a, const T* b) { return IdReadingOrder(KeyOf(*a), KeyOf(*b)); });
  return ordered;
}

}  // namespace

std::string FormatOrgFile(const OrgState& state) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "projects" << YAML::Value << YAML::BeginSeq;
  for (const Project* p : InReadingOrder(state.projects)) EmitProject(out, *p);
  out << YAML::EndSeq;
  out << YAML::Key << "members" << YAML::Value << YAML::BeginSeq;
  for (const Member* m : InReadingOrder(state.members)) {
    if (!m->removed_at.has_value()) EmitMember(out, *m);
  }
  out << YAML::EndSeq;
  out << YAML::Key << "service_accounts" << YAML::Value << YAML::BeginSeq;
  for (const ServiceAccount* a : InReadingOrder(state.service_accounts)) {
    if (!a->removed_at.has_value()) EmitServiceAccount(out, *a);
  }
  out << YAML::EndSeq;
  out << YAML::Key << "idp_groups" << YAML::Value << YAML::BeginSeq;
  for (const IdpGroup* g : InReadingOrder(state.idp_groups)) EmitGroup(out, *g);
  out << YAML::EndSeq;
  out << YAML::EndMap;
  return absl::StrCat(out.c_str(), "\n");
}

absl::Status ApplyOrgFile(const OrgFile& file, absl::Time now, OrgState& state) {
  const auto place = [&](size_t i) {
    return i < file.member_places.size() ? file.member_places[i] : absl::StrCat("members[", i, "]");
  };
  // The members the file declares; an IdP-provisioned entry for a member the group sync has
  // removed is only a description, and declares nothing.
  absl::flat_hash_map<absl::string_view, const Member*> members;
  for (size_t i = 0; i < file.members.size(); ++i) {
    const Member& m = file.members[i];
    const Member* old = state.FindMember(m.id);
    if (old != nullptr && old->removed_at.has_value()) {
      if (m.provisioned_by == kProvisionedByIdp && old->provisioned_by == kProvisionedByIdp) {
        continue;
      }
      return absl::FailedPreconditionError(
          absl::StrCat(place(i), ": ", FormatRemoval("member", m.id, *old->removed_at)));
    }
    members[m.id] = &m;
  }
  for (const ServiceAccount& a : file.service_accounts) {
    const ServiceAccount* old = state.FindServiceAccount(a.id);
    if (old != nullptr && old->removed_at.has_value()) {
      return absl::FailedPreconditionError(
          FormatRemoval("service account", a.id, *old->removed_at));
    }
  }

  OrgState next = state;
  absl::flat_hash_map<absl::string_view, const Project*> projects;
  for (const Project& p : file.projects) projects[p.id] = &p;
  for (Project& p : next.projects) {
    auto it = projects.find(p.id);
    if (it != projects.end()) {
      p = *it->second;
    } else {
      p.archived = true;
    }
  }
  for (const Project& p : file.projects) {
    if (state.FindProject(p.id) == nullptr) next.projects.push_back(p);
  }

  for (Member& m : next.members) {
    auto it = members.find(m.id);
    if (it != members.end()) {
      m = *it->second;
      m.removed_at = std::nullopt;
    } else if (!m.removed_at.has_value() && m.provisioned_by != kProvisionedByIdp) {
      m.removed_at = now;
    }
  }
  for (const Member& m : file.members) {
    if (state.FindMember(m.id) != nullptr) continue;
    next.members.push_back(m);
    next.members.back().removed_at = std::nullopt;
  }

  absl::flat_hash_map<absl::string_view, const ServiceAccount*> accounts;
  for (const ServiceAccount& a : file.service_accounts) accounts[a.id] = &a;
  for (ServiceAccount& a : next.service_accounts) {
    auto it = accounts.find(a.id);
    if (it != accounts.end()) {
      a = *it->second;
      a.removed_at = std::nullopt;
    } else if (!a.removed_at.has_value()) {
      a.removed_at = now;
    }
  }
  for (const ServiceAccount& a : file.service_accounts) {
    if (state.FindServiceAccount(a.id) != nullptr) continue;
    next.service_accounts.push_back(a);
    next.service_accounts.back().removed_at = std::nullopt;
  }

  next.idp_groups = file.idp_groups;
  const absl::flat_hash_set<absl::string_view> kept_by_sync(file.groups_kept_by_sync.begin(),
                                                            file.groups_kept_by_sync.end());
  for (IdpGroup& group : next.idp_groups) {
    if (!kept_by_sync.contains(group.name)) continue;
    if (const IdpGroup* synced = state.FindIdpGroup(group.name)) group.members = synced->members;
  }
  RETURN_IF_ERROR(ReconcileGroups(next, now));
  // The file's members stand after the reconciliation, or the file is refused whole.
  for (size_t i = 0; i < file.members.size(); ++i) {
    const Member& m = file.members[i];
    if (!members.contains(m.id)) continue;
    const Member* after = next.FindMember(m.id);
    if (after != nullptr && after->removed_at.has_value()) {
      return absl::FailedPreconditionError(absl::StrCat(
          place(i), ": member ", Quoted(m.id), " was provisioned by the identity provider and ",
          "holds no grants of its own, and no group of this file lists ", m.email,
          " (or a member this file manages has that e-mail), so the group sync would remove it; "
          "leave it out of the file, or list its e-mail in a group"));
    }
  }
  state = std::move(next);
  return absl::OkStatus();
}

absl::Status WithFilePlace(const OrgFile& file, const absl::Status& status) {
  const absl::string_view message = status.message();
  // "member 'id'...", "project 'id'...", "service account 'id'...": the entity up to the
  // quote that closes its id.
  const size_t open = message.find('\'');
  const size_t close = open == absl::string_view::npos ? open : message.find('\'', open + 1);
  if (status.ok() || close == absl::string_view::npos) return status;
  const auto place = file.places.find(message.substr(0, close + 1));
  if (place == file.places.end()) return status;
  return absl::Status(status.code(), absl::StrCat(place->second, ": ", message));
}

std::vector<std::string> LapsedGrants(const OrgFile& file, absl::Time now) {
  std::vector<std::string> lapsed;
  const auto note = [&](const std::string& holder, const std::vector<RoleGrant>& grants) {
    for (const RoleGrant& grant : grants) {
      if (!grant.expires_at.has_value() || now < *grant.expires_at) continue;
      const auto place = file.places.find(holder);
      lapsed.push_back(
          absl::StrCat(place == file.places.end() ? "" : absl::StrCat(place->second, ": "), holder,
                       ": the ", RoleName(grant.role), " grant ",
                       grant.project.empty() ? "of the organisation"
                                             : absl::StrCat("on project ", Quoted(grant.project)),
                       " lapsed at ", FormatRfc3339(*grant.expires_at), " and grants nothing"));
    }
  };
  for (const Member& member : file.members) {
    note(absl::StrCat("member ", Quoted(member.id)), member.grants);
  }
  for (const IdpGroup& group : file.idp_groups) {
    note(absl::StrCat("group ", Quoted(group.name)), group.grants);
  }
  return lapsed;
}

absl::Status SyncIdpGroup(absl::string_view name, const std::vector<std::string>& emails,
                          absl::Time now, OrgState& state, bool may_empty) {
  const IdpGroup* group = state.FindIdpGroup(name);
  if (group == nullptr) return absl::NotFoundError(absl::StrCat("no group ", Quoted(name)));
  if (emails.empty() && !group->members.empty() && !may_empty) {
    return absl::FailedPreconditionError(absl::StrCat(
        "emails: none for group ", Quoted(name), ", which has ", group->members.size(),
        " members; an identity provider's empty answer is more often a fault than an empty "
        "group, and removal is final: state allow_empty to remove them all (nothing was "
        "changed)"));
  }
  std::vector<std::string> members;
  absl::flat_hash_set<std::string> seen;
  for (const std::string& email : emails) {
    std::string lower = absl::AsciiStrToLower(email);
    if (!CheckIdpEmail(lower).ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("group ", Quoted(name), ": malformed e-mail ", Quoted(email)));
    }
    if (seen.insert(lower).second) members.push_back(std::move(lower));
  }
  std::sort(members.begin(), members.end());
  OrgState next = state;
  next.FindIdpGroup(name)->members = std::move(members);
  RETURN_IF_ERROR(ReconcileGroups(next, now));
  state = std::move(next);
  return absl::OkStatus();
}

}  // namespace policy::authz
