#include "services/authz/org_file.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/authz/decision.h"

namespace policy::authz {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

const absl::Time kNow =
    absl::FromCivil(absl::CivilSecond(2026, 3, 1, 9, 0, 0), absl::UTCTimeZone());
const absl::Time kLater = kNow + absl::Hours(24);

std::string ReadExample() {
  std::ifstream in(POLICY_SOURCE_DIR "/deploy/examples/org.yaml");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

OrgFile ParseOrDie(absl::string_view yaml) {
  absl::StatusOr<OrgFile> file = ParseOrgFile(yaml);
  EXPECT_TRUE(file.ok()) << file.status();
  return file.value_or(OrgFile{});
}

// The example organisation applied to an empty state at kNow.
OrgState ExampleState() {
  OrgState state;
  absl::Status applied = ApplyOrgFile(ParseOrDie(ReadExample()), kNow, state);
  EXPECT_TRUE(applied.ok()) << applied;
  return state;
}

// The `nth` member the identity provider provisioned for `email` (0: the first), in id order,
// or null.
Member* Provisioned(OrgState& state, absl::string_view email, size_t nth = 0) {
  for (Member& m : state.members) {
    if (m.provisioned_by == kProvisionedByIdp && m.email == email && nth-- == 0) return &m;
  }
  return nullptr;
}
const Member* Provisioned(const OrgState& state, absl::string_view email, size_t nth = 0) {
  return Provisioned(const_cast<OrgState&>(state), email, nth);
}

// The error message ParseOrgFile gives for `yaml`, or "" when it parses.
std::string ParseError(absl::string_view yaml) {
  absl::StatusOr<OrgFile> file = ParseOrgFile(yaml);
  if (file.ok()) return "";
  EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument) << file.status();
  return std::string(file.status().message());
}

constexpr absl::string_view kProjectP = R"(projects:
  - id: p
    name: P
    environment: production
    limits: {rpm: 10, tpm: 100}
)";

// ---------------------------------------------------------------------------------------
// Parsing.

TEST(ParseOrgFileTest, ParsesTheExample) {
  const OrgFile file = ParseOrDie(ReadExample());
  ASSERT_EQ(file.projects.size(), 4u);
  ASSERT_EQ(file.members.size(), 5u);
  ASSERT_EQ(file.service_accounts.size(), 3u);
  ASSERT_EQ(file.idp_groups.size(), 2u);

  const Project& support = file.projects[0];
  EXPECT_EQ(support.id, "support-eu");
  EXPECT_EQ(support.environment, Environment::kProduction);
  EXPECT_TRUE(support.data_policy.zero_data_retention);
  EXPECT_EQ(support.data_policy.retention_days, 0);
  EXPECT_EQ(support.data_policy.residency, Residency::kEu);
  EXPECT_EQ(support.data_policy.data_class, DataClass::kPii);
  EXPECT_THAT(support.allowed_models, ElementsAre("gpt-4o", "gpt-4o-mini"));
  EXPECT_EQ(support.rpm_limit, 600);
  EXPECT_EQ(support.tpm_limit, 200000);
  EXPECT_EQ(support.member_rpm_limit, 60);
  EXPECT_EQ(support.member_tpm_limit, 20000);
  // Defaults.
  const Project& playground = file.projects[3];
  EXPECT_FALSE(playground.archived);
  // Every data policy setting but the one it states.
  DataPolicy public_data;
  public_data.data_class = DataClass::kPublic;
  EXPECT_EQ(playground.data_policy, public_data);
  EXPECT_EQ(file.projects[2].member_tpm_limit, 0);

  const Member& erin = file.members[4];
  EXPECT_EQ(erin.email, "erin@contractor.example");
  ASSERT_EQ(erin.grants.size(), 1u);
  EXPECT_EQ(erin.grants[0].role, Role::kMember);
  EXPECT_EQ(erin.grants[0].project, "internal-copilot");
  EXPECT_EQ(erin.grants[0].expires_at,
            absl::FromCivil(absl::CivilSecond(2027, 6, 30, 0, 0, 0), absl::UTCTimeZone()));
  EXPECT_EQ(file.members[0].grants, (std::vector<RoleGrant>{{Role::kOwner, "", std::nullopt}}));
  EXPECT_EQ(file.members[0].provisioned_by, "");

  const ServiceAccount& prod = file.service_accounts[0];
  EXPECT_EQ(prod.ip_allowlist, *IpAllowlist::Parse({"10.20.0.0/16", "2001:db8:20::/48"}));
  EXPECT_EQ(prod.max_key_lifetime, absl::Hours(24 * 90));
  EXPECT_EQ(prod.rpm_limit, 300);
  // The environment defaults to the project's.
  EXPECT_EQ(file.service_accounts[1].environment, Environment::kStaging);
  EXPECT_EQ(file.service_accounts[2].environment, Environment::kDevelopment);
  EXPECT_EQ(file.service_accounts[2].max_key_lifetime, absl::Hours(12));

  EXPECT_EQ(file.idp_groups[0].name, "support-engineers");
  EXPECT_THAT(file.idp_groups[0].members,
              ElementsAre("bob@acme.example", "frank@acme.example", "grace@acme.example"));
  EXPECT_EQ(file.idp_groups[0].grants[1],
            (RoleGrant{Role::kReader, "support-eu-staging", std::nullopt}));
}

TEST(ParseOrgFileTest, ExampleAppliedToAnEmptyStateIsValid) {
  const OrgState state = ExampleState();
  EXPECT_TRUE(ValidateOrgState(state).ok()) << ValidateOrgState(state);
  EXPECT_TRUE(ValidateTransition(OrgState{}, state, kNow).ok());
  // Group members without a member of their own are provisioned; bob has one.
  std::vector<std::string> ids;
  for (const Member& m : state.members) ids.push_back(m.id);
  // Under the next numbers, group by group in name order, address by address; never under
  // their address.
  EXPECT_THAT(
      ids, ElementsAre("alice", "bob", "carol", "dan", "erin", "idp:1", "idp:2", "idp:3", "idp:4"));
  std::vector<std::string> provisioned;
  for (const Member& m : state.members) {
    if (m.provisioned_by == kProvisionedByIdp) provisioned.push_back(m.email);
  }
  EXPECT_THAT(provisioned, ElementsAre("heidi@acme.example", "ivan@acme.example",
                                       "frank@acme.example", "grace@acme.example"));
  const Member* frank = Provisioned(state, "frank@acme.example");
  EXPECT_EQ(frank->provisioned_by, kProvisionedByIdp);
  EXPECT_TRUE(frank->grants.empty());
  EXPECT_EQ(frank->removed_at, std::nullopt);
  EXPECT_EQ(state.version, 0);
}

TEST(ParseOrgFileTest, AcceptsAnEmptyMapAndLowerCasesEmails) {
  const OrgFile empty = ParseOrDie("{}\n");
  EXPECT_TRUE(empty.projects.empty() && empty.members.empty() && empty.service_accounts.empty() &&
              empty.idp_groups.empty());
  const OrgFile sections = ParseOrDie("projects:\nmembers: []\n");
  EXPECT_TRUE(sections.projects.empty());

  const OrgFile file = ParseOrDie(absl::StrCat(kProjectP, R"(members:
  - {id: m, email: Mixed.Case@Example.COM}
idp_groups:
  - {name: g, grants: [{role: reader, project: p}], members: [Someone@Example.com]}
)"));
  EXPECT_EQ(file.members[0].email, "mixed.case@example.com");
  EXPECT_THAT(file.idp_groups[0].members, ElementsAre("someone@example.com"));
}

TEST(ParseOrgFileTest, TimesAcceptOffsetsAndFractions) {
  const OrgFile file = ParseOrDie(absl::StrCat(kProjectP, R"(members:
  - id: m
    email: m@x.example
    roles:
      - {role: reader, project: p, expires: 2027-01-01T02:00:00.25+02:00}
)"));
  EXPECT_EQ(file.members[0].grants[0].expires_at,
            absl::FromCivil(absl::CivilSecond(2027, 1, 1, 0, 0, 0), absl::UTCTimeZone()) +
                absl::Milliseconds(250));
}

TEST(ParseOrgFileTest, UnknownKeyNamesKeyAndPath) {
  EXPECT_THAT(ParseError("projects:\n  - id: p\n    nmae: P\n"),
              StartsWith("line 3: projects[0]: unknown key 'nmae' (expected id, name, "));
  EXPECT_THAT(ParseError("projets: []\n"), StartsWith("line 1: unknown key 'projets'"));
  EXPECT_THAT(ParseError(absl::StrCat(kProjectP, "    data_policy: {zdr: true}\n")),
              StartsWith("line 6: projects[0].data_policy: unknown key 'zdr'"));
  EXPECT_EQ(ParseError("projects:\n  - id: p\n    id: q\n"),
            "line 3: projects[0]: key 'id' is given twice");
}

TEST(ParseOrgFileTest, BadRoleNamesThePath) {
  EXPECT_EQ(ParseError(absl::StrCat(kProjectP, R"(members:
  - {id: a, email: a@x.example, roles: [{role: owner}]}
  - id: b
    email: b@x.example
    roles:
      - {role: ownr}
)")),
            "line 11: members[1].roles[0].role: unknown role 'ownr'");
  EXPECT_EQ(ParseError(absl::StrCat(kProjectP, R"(members:
  - id: b
    email: b@x.example
    roles:
      - {role: owner, project: p}
      - {role: reader}
)")),
            "line 10: members[0].roles[0].project: owner is an organisation role; leave the "
            "project out");
  EXPECT_EQ(ParseError(absl::StrCat(kProjectP, R"(members:
  - id: b
    email: b@x.example
    roles:
      - {role: reader}
)")),
            "line 10: members[0].roles[0]: reader is a project role; name the project");
  EXPECT_EQ(ParseError(absl::StrCat(kProjectP, R"(members:
  - id: b
    email: b@x.example
    roles: [{role: reader, project: q}]
)")),
            "line 9: members[0].roles[0].project: unknown project 'q'");
  EXPECT_EQ(ParseError(absl::StrCat(kProjectP, R"(members:
  - id: b
    email: b@x.example
    roles: [{role: reader, project: p}, {role: reader, project: p}]
)")),
            "line 9: members[0].roles[1]: reader of p is granted twice");
  EXPECT_EQ(ParseError(absl::StrCat(kProjectP, R"(idp_groups:
  - name: g
    grants: [{role: admin}]
)")),
            "line 8: idp_groups[0].grants[0].role: groups grant project roles (member, "
            "reader) only, not admin");
}

TEST(ParseOrgFileTest, BadCidrNamesItsIndexAndLine) {
  const std::string error = ParseError(absl::StrCat(kProjectP, R"(service_accounts:
  - id: sa
    project: p
    permissions: [chat.completions]
    ip_allowlist:
      - 10.0.0.0/8
      - 10.0.0.1/8
    limits: {rpm: 1, tpm: 1}
)"));
  EXPECT_THAT(error, StartsWith("line 12: service_accounts[0].ip_allowlist[1]: "));
  EXPECT_THAT(error, HasSubstr("10.0.0.0/8"));  // ParseCidr's "did you mean".
  EXPECT_THAT(ParseError(absl::StrCat(kProjectP, R"(service_accounts:
  - id: sa
    project: p
    permissions: [chat.completions]
    ip_allowlist: [10.0.0.0/8, 10.0.0.0/8]
    limits: {rpm: 1, tpm: 1}
)")),
              StartsWith("line 10: service_accounts[0].ip_allowlist: "));
}

TEST(ParseOrgFileTest, BadDuration) {
  const auto with_lifetime = [](absl::string_view lifetime) {
    return ParseError(absl::StrCat(kProjectP, R"(service_accounts:
  - id: sa
    project: p
    permissions: [chat.completions]
    limits: {rpm: 1, tpm: 1}
    max_key_lifetime: )",
                                   lifetime, "\n"));
  };
  EXPECT_EQ(with_lifetime("90"),
            "line 11: service_accounts[0].max_key_lifetime: expected a duration such as 90d, "
            "12h, 30m or 45s, got '90'");
  EXPECT_THAT(with_lifetime("3w"), HasSubstr("got '3w'"));
  EXPECT_THAT(with_lifetime("-5d"), HasSubstr("got '-5d'"));
  EXPECT_EQ(with_lifetime("400d"),
            "line 11: service_accounts[0].max_key_lifetime: must be positive and at most 365d");
  EXPECT_THAT(with_lifetime("0s"), HasSubstr("must be positive"));
  EXPECT_THAT(with_lifetime("99999999999d"), HasSubstr("must be positive and at most 365d"));
  EXPECT_EQ(with_lifetime("45s"), "");
}

TEST(ParseOrgFileTest, BadTime) {
  const auto with_expiry = [](absl::string_view expires) {
    return ParseError(absl::StrCat(kProjectP, "members:\n  - id: m\n    email: m@x.example\n",
                                   "    roles: [{role: reader, project: p, expires: ", expires,
                                   "}]\n"));
  };
  EXPECT_EQ(with_expiry("2027-06-30"),
            "line 9: members[0].roles[0].expires: expected an RFC 3339 time such as "
            "2027-06-30T00:00:00Z, got '2027-06-30'");
  EXPECT_THAT(with_expiry("infinite-future"), HasSubstr("expected an RFC 3339 time"));
  EXPECT_THAT(with_expiry("2027-06-30T00:00:00"), HasSubstr("expected an RFC 3339 time"));
  EXPECT_EQ(with_expiry("2027-06-30T00:00:00Z"), "");
}

TEST(ParseOrgFileTest, DuplicateIdsEmailsAndNames) {
  EXPECT_EQ(ParseError(absl::StrCat(kProjectP, R"(  - id: p
    name: P again
    environment: staging
    limits: {rpm: 1, tpm: 1}
)")),
            "line 6: projects[1].id: duplicate project id 'p' (also projects[0].id)");
  EXPECT_EQ(ParseError(R"(members:
  - {id: a, email: a@x.example}
  - {id: b, email: b@x.example}
  - {id: a, email: c@x.example}
)"),
            "line 4: members[2].id: duplicate member id 'a' (also members[0].id)");
  EXPECT_EQ(ParseError(R"(members:
  - {id: a, email: a@x.example}
  - {id: b, email: A@X.example}
)"),
            "line 3: members[1].email: duplicate e-mail 'a@x.example' (also members[0].email)");
  EXPECT_EQ(ParseError(absl::StrCat(kProjectP, R"(service_accounts:
  - {id: s, project: p, permissions: [embeddings], limits: {rpm: 1, tpm: 1}}
  - {id: s, project: p, permissions: [embeddings], limits: {rpm: 1, tpm: 1}}
)")),
            "line 8: service_accounts[1].id: duplicate service account id 's' (also "
            "service_accounts[0].id)");
  EXPECT_EQ(ParseError(absl::StrCat(kProjectP, R"(idp_groups:
  - {name: g, grants: [{role: reader, project: p}]}
  - {name: g, grants: [{role: member, project: p}]}
)")),
            "line 8: idp_groups[1].name: duplicate group name 'g' (also idp_groups[0].name)");
  EXPECT_EQ(ParseError(absl::StrCat(kProjectP, R"(idp_groups:
  - {name: g, grants: [{role: reader, project: p}], members: [a@x.example, A@x.example]}
)")),
            "line 7: idp_groups[0].members[1]: a@x.example is listed twice (also "
            "idp_groups[0].members[0])");
}

TEST(ParseOrgFileTest, WrongTypes) {
  const auto project_with = [](absl::string_view extra) {
    return ParseError(absl::StrCat("projects:\n  - id: p\n    name: P\n",
                                   "    environment: production\n", extra));
  };
  constexpr absl::string_view kLimits = "    limits: {rpm: 1, tpm: 1}\n";
  EXPECT_EQ(project_with(absl::StrCat(kLimits, "    models: gpt-4o\n")),
            "line 6: projects[0].models: expected a list, got a scalar");
  EXPECT_EQ(project_with("    limits: {rpm: lots, tpm: 1}\n"),
            "line 5: projects[0].limits.rpm: expected an integer, got 'lots'");
  EXPECT_EQ(project_with("    limits: {rpm: 1.5, tpm: 1}\n"),
            "line 5: projects[0].limits.rpm: expected an integer, got '1.5'");
  EXPECT_EQ(project_with("    limits: {rpm: -1, tpm: 1}\n"),
            "line 5: projects[0].limits.rpm: must not be negative");
  EXPECT_EQ(project_with("    limits: {rpm: \"600\", tpm: 1}\n"),
            "line 5: projects[0].limits.rpm: expected an integer, got the string '600'");
  EXPECT_EQ(project_with("    limits: {rpm: 99999999999999999999, tpm: 1}\n"),
            "line 5: projects[0].limits.rpm: expected an integer, got '99999999999999999999'");
  EXPECT_EQ(project_with("    limits: {rpm: [1], tpm: 1}\n"),
            "line 5: projects[0].limits.rpm: expected an integer, got a list");
  EXPECT_EQ(project_with("    limits: {tpm: 1}\n"),
            "line 5: projects[0].limits: missing required key 'rpm'");
  EXPECT_EQ(project_with(""), "line 2: projects[0]: missing required key 'limits'");
  EXPECT_EQ(project_with(absl::StrCat(kLimits, "    archived: yes\n")),
            "line 6: projects[0].archived: expected true or false, got 'yes'");
  EXPECT_EQ(project_with(absl::StrCat(kLimits, "    data_policy: {retention_days: 5000}\n")),
            "line 6: projects[0].data_policy.retention_days: must be 0 to 3650");
  EXPECT_EQ(project_with(absl::StrCat(kLimits, "    data_policy: {residency: EU}\n")),
            "line 6: projects[0].data_policy.residency: must be eu, us, apac or global");
  EXPECT_EQ(project_with(absl::StrCat(kLimits, "    data_policy: {residency: [eu]}\n")),
            "line 6: projects[0].data_policy.residency: expected a string, got a list");
  EXPECT_EQ(project_with(absl::StrCat(kLimits, "    data_policy: {data_class: secret}\n")),
            "line 6: projects[0].data_policy.data_class: must be public, internal, pii or phi");
  EXPECT_EQ(project_with(absl::StrCat(kLimits, "    data_policy: {pii: {US_SSN: forbid}}\n")),
            "line 6: projects[0].data_policy.pii.US_SSN: must be one of redact, mask, replace, "
            "hash, placeholder, block, allow");
  EXPECT_EQ(project_with(absl::StrCat(kLimits, "    data_policy: {pii: {us_ssn: block}}\n")),
            "line 6: projects[0].data_policy.pii: keys must be entity type names "
            "([A-Z][A-Z0-9_]*, at most 64 bytes)");
  EXPECT_EQ(project_with(absl::StrCat(kLimits, "    data_policy: {pii: [US_SSN]}\n")),
            "line 6: projects[0].data_policy.pii: expected a map, got a list");
  EXPECT_EQ(project_with(
                absl::StrCat(kLimits, "    data_policy: {pii: {US_SSN: block, US_SSN: allow}}\n")),
            "line 6: projects[0].data_policy.pii: key 'US_SSN' is given twice");
  EXPECT_EQ(project_with(absl::StrCat(kLimits, "    name: {first: P}\n")),
            "line 6: projects[0]: key 'name' is given twice");
  EXPECT_EQ(ParseError("projects:\n  - id: [p]\n"),
            "line 2: projects[0].id: expected a string, got a list");
  EXPECT_EQ(ParseError("projects: p\n"), "line 1: projects: expected a list, got a scalar");
  EXPECT_EQ(ParseError("projects:\n  - p\n"), "line 2: projects[0]: expected a map, got a scalar");
  EXPECT_EQ(ParseError("projects:\n  - id: p\n    name: P\n    environment: prod\n"),
            "line 4: projects[0].environment: unknown environment 'prod'");
  EXPECT_EQ(ParseError("members:\n  - {id: m, email: not-an-address}\n"),
            "line 2: members[0].email: 'not-an-address' is not an e-mail address");
  EXPECT_EQ(ParseError("members:\n  - {id: m, email: m@x.example, provisioned_by: scim}\n"),
            "line 2: members[0].provisioned_by: expected 'idp', got 'scim'");
  EXPECT_EQ(ParseError(absl::StrCat(kProjectP, R"(idp_groups:
  - {name: g, grants: [{role: reader, project: p}], members: [not-an-address]}
)")),
            "line 7: idp_groups[0].members[0]: malformed e-mail 'not-an-address'");
  EXPECT_EQ(ParseError(absl::StrCat(kProjectP, R"(service_accounts:
  - {id: s, project: p, environment: staging, permissions: [embeddings], limits: {rpm: 1, tpm: 1}}
)")),
            "line 7: service_accounts[0].environment: staging differs from production of "
            "project p");
}

TEST(ParseOrgFileTest, ValidatorMessagesArePrefixedWithThePath) {
  EXPECT_EQ(ParseError(absl::StrCat(kProjectP, R"(service_accounts:
  - id: sa
    project: p
    permissions: [members.manage]
    limits: {rpm: 1, tpm: 1}
)")),
            "line 7: service_accounts[0]: service_account.permissions[0]: members.manage is "
            "administrative; service accounts hold API permissions only");
  EXPECT_EQ(ParseError("projects:\n  - {id: 'bad id', name: P, environment: sandbox, "
                       "limits: {rpm: 1, tpm: 1}}\n"),
            "line 2: projects[0]: project.id: a project id has only lowercase letters, digits, "
            "'-' and '_' ([a-z0-9_-]{1,64})");
  // The rule of every service (audit keeps ledgers only for such ids), not authz's own.
  EXPECT_THAT(ParseError("projects:\n  - {id: ML.Platform, name: P, environment: sandbox, "
                         "limits: {rpm: 1, tpm: 1}}\n"),
              HasSubstr("projects[0]: project.id: a project id has only"));
  EXPECT_THAT(ParseError("projects:\n  - {id: p, name: P, environment: sandbox, "
                         "limits: {rpm: 10000001, tpm: 1}}\n"),
              HasSubstr("project.rpm_limit: more than the maximum of 10000000"));
  EXPECT_THAT(ParseError("projects:\n  - {id: p, name: P, environment: sandbox, "
                         "limits: {rpm: 1, tpm: 1, member_tpm: 10000000001}}\n"),
              HasSubstr("project.member.tpm_limit: more than the maximum of 10000000000"));
  EXPECT_EQ(ParseError("projects:\n  - {id: p, name: P, environment: sandbox, "
                       "limits: {rpm: 1, tpm: 1}, models: [a, a]}\n"),
            "line 2: projects[0]: project.allowed_models[1]: a is listed twice");
}

TEST(ParseOrgFileTest, DocumentLevelErrors) {
  EXPECT_EQ(ParseError("projects:\n  - id: [p\n    name: P\n"),
            "line 3: end of sequence flow not found");
  EXPECT_THAT(ParseError("projects: [\n"), StartsWith("line "));
  EXPECT_THAT(ParseError("a: b\n c: d\n"), StartsWith("line 2: "));
  EXPECT_THAT(ParseError(""), HasSubstr("empty"));
  EXPECT_THAT(ParseError("# only a comment\n"), HasSubstr("empty"));
  EXPECT_THAT(ParseError("---\n"), HasSubstr("empty"));
  EXPECT_EQ(ParseError("- projects\n"), "line 1: the file must be a map, got a list");
  EXPECT_EQ(ParseError("just text\n"), "line 1: the file must be a map, got a scalar");
  EXPECT_EQ(ParseError("{}\n---\n{}\n"),
            "line 2: a second YAML document starts here; the file must hold exactly one");
  // Bytes YAML does not allow, named where they are.
  EXPECT_EQ(ParseError(std::string("projects: []\nmembers: \0\n", 24)),
            "line 2: control character 0x00; YAML allows tab, line feed and carriage return only");
  EXPECT_EQ(ParseError("projects:\n  - id: a\x1b[31m\n"),
            "line 2: control character 0x1b; YAML allows tab, line feed and carriage return only");
  EXPECT_EQ(ParseError("projects:\n\n  - id: \xff\n"), "line 3: not valid UTF-8");
  EXPECT_THAT(ParseError("projects: []\r\n\tmembers: []\r\n"), Not(HasSubstr("control")));
  // yaml-cpp's LoadAll never returns on these.
  EXPECT_THAT(ParseError(",{M}"), StartsWith("line 1: "));
  EXPECT_THAT(ParseError("projects: []\n,\n"), StartsWith("line 2: "));
  EXPECT_THAT(ParseError(std::string(kMaxOrgFileBytes + 1, '#')), HasSubstr("larger than"));
  EXPECT_EQ(ParseError("projects:\n  - {id: p, name: \"a\\x01b\", environment: sandbox, "
                       "limits: {rpm: 1, tpm: 1}}\n"),
            "line 2: projects[0].name: must be UTF-8 text without control characters");
}

TEST(ParseOrgFileTest, HostileDocumentsAreErrorsNotCrashes) {
  // An alias to its own enclosing list.
  EXPECT_EQ(ParseError("projects: &a [*a]\n"), "line 1: projects[0]: expected a map, got a list");
  // Deep nesting.
  EXPECT_THAT(ParseError(absl::StrCat("projects: ", std::string(100000, '['))),
              StartsWith("line 1: "));
  // An alias repeating one project many times fails on its second use.
  EXPECT_EQ(ParseError("projects:\n  - &p {id: p, name: P, environment: sandbox, "
                       "limits: {rpm: 1, tpm: 1}}\n  - *p\n  - *p\n"),
            "line 2: projects[1].id: duplicate project id 'p' (also projects[0].id)");
  EXPECT_THAT(ParseError(std::string("projects: \0\xff", 13)), StartsWith("line 1: "));
}

// ---------------------------------------------------------------------------------------
// Formatting.

void ExpectDeclares(const OrgFile& file, const OrgState& state) {
  std::vector<Member> members;
  for (const Member& m : state.members) {
    if (!m.removed_at.has_value()) members.push_back(m);
  }
  std::vector<ServiceAccount> accounts;
  for (const ServiceAccount& a : state.service_accounts) {
    if (!a.removed_at.has_value()) accounts.push_back(a);
  }
  EXPECT_EQ(file.projects, state.projects);
  EXPECT_EQ(file.members, members);
  EXPECT_EQ(file.service_accounts, accounts);
  EXPECT_EQ(file.idp_groups, state.idp_groups);
}

TEST(LapsedGrantsTest, NamesEachGrantPastItsExpiryWithItsPlace) {
  const OrgFile file = ParseOrDie(absl::StrCat(kProjectP, R"(members:
  - id: m
    email: m@x.example
    roles:
      - {role: reader, project: p, expires: 2026-02-01T00:00:00Z}
      - {role: member, project: p, expires: 2026-03-01T09:00:00Z}
      - {role: admin, expires: 2026-03-01T09:00:01Z}
  - id: n
    email: n@x.example
    roles:
      - {role: owner, expires: 2026-01-01T00:00:00Z}
idp_groups:
  - {name: eng, grants: [{role: reader, project: p, expires: 2025-12-31T23:00:00Z}]}
)"));
  EXPECT_THAT(
      LapsedGrants(file, kNow),
      ElementsAre("line 7: members[0]: member 'm': the reader grant on project 'p' lapsed at "
                  "2026-02-01T00:00:00Z and grants nothing",
                  "line 7: members[0]: member 'm': the member grant on project 'p' lapsed at "
                  "2026-03-01T09:00:00Z and grants nothing",
                  "line 13: members[1]: member 'n': the owner grant of the organisation lapsed at "
                  "2026-01-01T00:00:00Z and grants nothing",
                  "line 18: idp_groups[0]: group 'eng': the reader grant on project 'p' lapsed at "
                  "2025-12-31T23:00:00Z and grants nothing"));
  EXPECT_THAT(LapsedGrants(file, kNow - absl::Hours(24 * 365)), ::testing::IsEmpty());
}

TEST(FormatOrgFileTest, RoundTripsTheExample) {
  const OrgState state = ExampleState();
  const std::string text = FormatOrgFile(state);
  const OrgFile again = ParseOrDie(text);
  ExpectDeclares(again, state);
  // The idp-provisioned members say so.
  EXPECT_THAT(text, HasSubstr("provisioned_by: idp"));
}

TEST(ParseOrgFileTest, KeyHoldersDefaultByEnvironmentAndRoundTrip) {
  const OrgFile file = ParseOrDie(R"(projects:
  - {id: prod, name: P, environment: production, limits: {rpm: 1, tpm: 1}}
  - {id: prod-open, name: P, environment: production, key_holders: members,
     limits: {rpm: 1, tpm: 1}}
  - {id: dev, name: D, environment: development, limits: {rpm: 1, tpm: 1}}
  - {id: dev-closed, name: D, environment: development, key_holders: service_accounts,
     limits: {rpm: 1, tpm: 1}}
)");
  ASSERT_EQ(file.projects.size(), 4u);
  EXPECT_EQ(file.projects[0].key_holders, KeyHolders::kServiceAccounts);
  EXPECT_EQ(file.projects[1].key_holders, KeyHolders::kMembers);
  EXPECT_EQ(file.projects[2].key_holders, KeyHolders::kMembers);
  EXPECT_EQ(file.projects[3].key_holders, KeyHolders::kServiceAccounts);
  // The example's production project lets its members hold keys.
  EXPECT_EQ(ExampleState().FindProject("support-eu")->key_holders, KeyHolders::kMembers);

  // A file says only what differs from the environment's default, and reads back the same.
  OrgState state;
  ASSERT_TRUE(ApplyOrgFile(file, kNow, state).ok());
  const std::string text = FormatOrgFile(state);
  size_t said = 0;
  for (size_t at = text.find("key_holders:"); at != std::string::npos;
       at = text.find("key_holders:", at + 1)) {
    ++said;
  }
  EXPECT_EQ(said, 2u) << text;
  const OrgFile again = ParseOrDie(text);
  ASSERT_EQ(again.projects.size(), 4u);
  for (const Project& read : again.projects) {
    const auto declared = std::find_if(file.projects.begin(), file.projects.end(),
                                       [&](const Project& p) { return p.id == read.id; });
    ASSERT_NE(declared, file.projects.end()) << read.id;
    EXPECT_EQ(read.key_holders, declared->key_holders) << read.id;
  }
  // A bad value names the place and the choices.
  const std::string error = ParseError(R"(projects:
  - {id: p, name: P, environment: production, key_holders: everyone, limits: {rpm: 1, tpm: 1}}
)");
  EXPECT_THAT(error, HasSubstr("projects[0].key_holders"));
  EXPECT_THAT(error, HasSubstr("service_accounts or members"));
}

TEST(FormatOrgFileTest, RoundTripsEdgeCasesAndSkipsRemoved) {
  OrgState state = ExampleState();
  Project& playground = *state.FindProject("playground");
  playground.archived = true;
  playground.name = "true";  // Would read back as a boolean if not quoted.
  state.FindProject("internal-copilot")->name = "Über: copilot, [beta] #1 ~";
  state.FindProject("support-eu")->allowed_models.clear();
  Member& carol = *state.FindMember("carol");
  carol.grants[0].expires_at = kNow + absl::Milliseconds(1500) + absl::Nanoseconds(7);
  state.FindMember("dan")->removed_at = kNow;
  ServiceAccount& ci = *state.FindServiceAccount("sa-copilot-ci");
  ci.max_key_lifetime = absl::Minutes(90);
  ci.ip_allowlist = *IpAllowlist::Parse({"::/0", "0.0.0.0/0", "2001:db8::1"});
  state.FindServiceAccount("sa-support-staging")->max_key_lifetime = absl::Seconds(3601);
  state.FindServiceAccount("sa-support-prod")->removed_at = kNow;

  const std::string text = FormatOrgFile(state);
  const OrgFile again = ParseOrDie(text);
  ExpectDeclares(again, state);
  EXPECT_THAT(text, Not(HasSubstr("dan@acme.example")));
  EXPECT_THAT(text, Not(HasSubstr("sa-support-prod")));
  EXPECT_THAT(text, HasSubstr("max_key_lifetime: 90m"));
  EXPECT_THAT(text, HasSubstr("max_key_lifetime: 3601s"));
}

TEST(FormatOrgFileTest, EmptyStateFormatsToAnEmptyOrganisation) {
  const OrgFile file = ParseOrDie(FormatOrgFile(OrgState{}));
  EXPECT_TRUE(file.projects.empty() && file.members.empty() && file.service_accounts.empty() &&
              file.idp_groups.empty());
}

// ---------------------------------------------------------------------------------------
// Applying.

// The example with changes: support-eu's limits raised, playground and carol and
// sa-copilot-ci dropped, zoe added.
std::string ChangedExample() {
  std::string text = ReadExample();
  text = absl::StrReplaceAll(
      text, {{"limits: {rpm: 600, tpm: 200000, member_rpm: 60, member_tpm: 20000}",
              "limits: {rpm: 900, tpm: 200000, member_rpm: 60, member_tpm: 20000}"}});
  // Cut the playground project (the last one) and carol, and every mention of playground.
  const size_t playground = text.find("  - id: playground");
  text.erase(playground, text.find("\nmembers:") - playground);
  const size_t carol = text.find("  - id: carol");
  text.erase(carol, text.find("  - id: erin") - carol);
  const size_t ci = text.find("  - id: sa-copilot-ci");
  text.erase(ci, text.find("\nidp_groups:") - ci);
  text = absl::StrReplaceAll(text, {{"      - {role: member, project: playground}\n", ""}});
  text = absl::StrReplaceAll(
      text, {{"members:\n  - id: alice",
              "members:\n  - id: zoe\n    email: zoe@acme.example\n    roles: [{role: admin}]\n"
              "  - id: alice"}});
  return text;
}

TEST(ApplyOrgFileTest, UpdatesArchivesAndRemoves) {
  const OrgState before = ExampleState();
  OrgState after = before;
  const OrgFile file = ParseOrDie(ChangedExample());
  ASSERT_EQ(file.projects.size(), 3u);
  ASSERT_TRUE(ApplyOrgFile(file, kLater, after).ok());

  EXPECT_EQ(after.FindProject("support-eu")->rpm_limit, 900);
  const Project* playground = after.FindProject("playground");
  ASSERT_NE(playground, nullptr);  // Archived, never deleted.
  EXPECT_TRUE(playground->archived);
  Project unarchived = *playground;
  unarchived.archived = false;
  EXPECT_EQ(unarchived, *before.FindProject("playground"));

  EXPECT_EQ(after.FindMember("carol")->removed_at, kLater);
  EXPECT_EQ(after.FindMember("alice")->removed_at, std::nullopt);
  EXPECT_EQ(after.FindMember("zoe")->grants,
            (std::vector<RoleGrant>{{Role::kAdmin, "", std::nullopt}}));
  // Identity-provider members are the group sync's business, not the file's.
  EXPECT_EQ(*Provisioned(after, "heidi@acme.example"), *Provisioned(before, "heidi@acme.example"));
  EXPECT_EQ(after.FindServiceAccount("sa-copilot-ci")->removed_at, kLater);
  EXPECT_EQ(after.FindServiceAccount("sa-support-prod")->removed_at, std::nullopt);
  EXPECT_EQ(after.invitations, before.invitations);
  EXPECT_EQ(after.version, before.version);

  EXPECT_TRUE(ValidateOrgState(after).ok()) << ValidateOrgState(after);
  EXPECT_TRUE(ValidateTransition(before, after, kLater).ok())
      << ValidateTransition(before, after, kLater);

  // Applying the same file again changes nothing.
  OrgState again = after;
  ASSERT_TRUE(ApplyOrgFile(file, kLater + absl::Hours(1), again).ok());
  EXPECT_TRUE(Diff(after, again).empty()) << FormatDiff(Diff(after, again));
}

TEST(IdReadingOrderTest, NumbersCompareAsNumbers) {
  std::vector<std::string> ids = {"idp:10", "idp:2", "b",    "idp:1", "a10b", "a9c",
                                  "idp:02", "a",     "idp:", "10",    "9",    "idp:100"};
  std::sort(ids.begin(), ids.end(), IdReadingOrder);
  EXPECT_THAT(ids, ElementsAre("9", "10", "a", "a9c", "a10b", "b", "idp:", "idp:1", "idp:02",
                               "idp:2", "idp:10", "idp:100"));
  for (const std::string& a : ids) {
    EXPECT_FALSE(IdReadingOrder(a, a)) << a;
    for (const std::string& b : ids) {
      if (a != b) {
        EXPECT_NE(IdReadingOrder(a, b), IdReadingOrder(b, a)) << a << " " << b;
      }
    }
  }
}

TEST(ApplyOrgFileTest, PlansAndExportsListIdsInReadingOrder) {
  OrgState before;
  ASSERT_TRUE(ApplyOrgFile(ParseOrDie(absl::StrCat(kProjectP, R"(members:
  - {id: m, email: m@x.example, roles: [{role: owner}]}
)")),
                           kNow, before)
                  .ok());
  OrgState after = before;
  ASSERT_TRUE(ApplyOrgFile(ParseOrDie(absl::StrCat(kProjectP, R"(members:
  - {id: m, email: m@x.example, roles: [{role: owner}]}
  - {id: u10, email: u10@x.example, roles: [{role: reader, project: p}]}
  - {id: u9, email: u9@x.example, roles: [{role: reader, project: p}]}
  - {id: u100, email: u100@x.example, roles: [{role: reader, project: p}]}
)")),
                           kNow, after)
                  .ok());
  after.Sort();
  std::vector<std::string> planned;
  for (const EntityChange& change : InReadingOrder(Diff(before, after))) {
    planned.push_back(change.id);
  }
  EXPECT_THAT(planned, ElementsAre("u9", "u10", "u100"));
  const std::string exported = FormatOrgFile(after);
  EXPECT_LT(exported.find("id: m\n"), exported.find("id: u9\n"));
  EXPECT_LT(exported.find("id: u9\n"), exported.find("id: u10\n"));
  EXPECT_LT(exported.find("id: u10\n"), exported.find("id: u100\n"));
}

TEST(ApplyOrgFileTest, PlanShowsTheChanges) {
  const OrgState before = ExampleState();
  OrgState after = before;
  ASSERT_TRUE(ApplyOrgFile(ParseOrDie(ChangedExample()), kLater, after).ok());
  const std::string plan = FormatDiff(Diff(before, after));
  EXPECT_THAT(plan, HasSubstr("~ project playground\n    archived: false -> true\n"));
  EXPECT_THAT(plan, HasSubstr("~ project support-eu\n    limits.rpm: 600 -> 900\n"));
  EXPECT_THAT(plan, HasSubstr("~ member carol  (removed for good: every key it holds is revoked, "
                              "and the id cannot come back)\n    removed_at: (none) -> "
                              "2026-03-02T09:00:00Z\n"));
  EXPECT_THAT(plan, HasSubstr("+ member zoe\n    email: zoe@acme.example\n    grants: [admin]\n"));
  EXPECT_THAT(plan, HasSubstr("~ service_account sa-copilot-ci  (removed for good: every key it "
                              "holds is revoked, and the id cannot come back)\n    removed_at: "
                              "(none) -> 2026-03-02T09:00:00Z\n"));
  EXPECT_THAT(plan, HasSubstr("~ idp_group data-science\n    grants: [member@internal-copilot, "
                              "member@playground] -> [member@internal-copilot]\n"));
  EXPECT_THAT(plan, Not(HasSubstr("idp:")));
  EXPECT_THAT(plan, Not(HasSubstr("member alice")));
}

TEST(ApplyOrgFileTest, PlanNamesAResidencyChangeAsTheFileWritesIt) {
  const OrgState before = ExampleState();
  OrgState after = before;
  after.FindProject("support-eu")->data_policy.residency = Residency::kGlobal;
  after.FindProject("playground")->data_policy.residency = Residency::kApac;
  const std::string plan = FormatDiff(Diff(before, after));
  EXPECT_THAT(plan, HasSubstr("~ project support-eu\n    data_policy.residency: eu -> global\n"));
  EXPECT_THAT(plan, HasSubstr("~ project playground\n    data_policy.residency: global -> apac\n"));
  // Written only when it keeps the calls somewhere, and read back the same.
  const std::string text = FormatOrgFile(after);
  EXPECT_THAT(text, HasSubstr("residency: apac"));
  EXPECT_THAT(text, Not(HasSubstr("residency: global")));
  ExpectDeclares(ParseOrDie(text), after);
}

TEST(ApplyOrgFileTest, PlanNamesADataClassChangeAsTheFileWritesIt) {
  const OrgState before = ExampleState();
  OrgState after = before;
  after.FindProject("support-eu")->data_policy.data_class = DataClass::kPhi;
  after.FindProject("playground")->data_policy.data_class = DataClass::kInternal;
  const std::string plan = FormatDiff(Diff(before, after));
  EXPECT_THAT(plan, HasSubstr("~ project support-eu\n    data_policy.data_class: pii -> phi\n"));
  EXPECT_THAT(plan,
              HasSubstr("~ project playground\n    data_policy.data_class: public -> internal\n"));
  // Written only when it is not the default, and read back the same.
  const std::string text = FormatOrgFile(after);
  EXPECT_THAT(text, HasSubstr("data_class: phi"));
  EXPECT_THAT(text, Not(HasSubstr("data_class: internal")));
  const OrgFile read = ParseOrDie(text);
  ExpectDeclares(read, after);
  for (const Project& p : read.projects) {
    if (p.id == "support-eu") {
      EXPECT_EQ(p.data_policy.data_class, DataClass::kPhi);
    } else if (p.id == "support-eu-staging") {
      EXPECT_EQ(p.data_policy.data_class, DataClass::kInternal);
    }
  }
}

TEST(ApplyOrgFileTest, AProjectsPiiRulesAreReadOrderedPlannedAndWrittenBack) {
  const OrgState before = ExampleState();
  OrgState after = before;
  const OrgFile file = ParseOrDie(R"(
projects:
  - id: p
    name: P
    environment: sandbox
    limits: {rpm: 10, tpm: 100}
    data_policy: {pii: {US_SSN: block, EMAIL_ADDRESS: placeholder, IP_ADDRESS: allow}}
)");
  ASSERT_EQ(file.projects.size(), 1u);
  const std::vector<PiiRule> rules = file.projects[0].data_policy.pii_rules;
  EXPECT_EQ(rules, (std::vector<PiiRule>{{"EMAIL_ADDRESS", PiiTreatment::kPlaceholder},
                                         {"IP_ADDRESS", PiiTreatment::kAllow},
                                         {"US_SSN", PiiTreatment::kBlock}}));
  after.FindProject("playground")->data_policy.pii_rules = rules;
  const std::string plan = FormatDiff(Diff(before, after));
  EXPECT_THAT(plan, HasSubstr("~ project playground\n    data_policy.pii: [] -> "
                              "[EMAIL_ADDRESS=placeholder, IP_ADDRESS=allow, US_SSN=block]\n"));
  const std::string text = FormatOrgFile(after);
  EXPECT_THAT(text,
              HasSubstr("pii: {EMAIL_ADDRESS: placeholder, IP_ADDRESS: allow, US_SSN: block}"));
  ExpectDeclares(ParseOrDie(text), after);
}

TEST(ApplyOrgFileTest, RefusesARemovedId) {
  OrgState state = ExampleState();
  state.FindMember("carol")->removed_at = kNow;
  const OrgState before = state;
  absl::Status status = ApplyOrgFile(ParseOrDie(ReadExample()), kLater, state);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), StartsWith("line "));
  EXPECT_THAT(std::string(status.message()),
              HasSubstr(": members[3]: member 'carol' was removed at 2026-03-01T09:00:00Z; removal "
                        "is final, use a new id"));
  EXPECT_EQ(Diff(before, state).size(), 0u);

  state.FindMember("carol")->removed_at = std::nullopt;
  state.FindServiceAccount("sa-copilot-ci")->removed_at = kNow;
  status = ApplyOrgFile(ParseOrDie(ReadExample()), kLater, state);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()),
              StartsWith("service account 'sa-copilot-ci' was removed at "));
}

TEST(ApplyOrgFileTest, AnExportStillAppliesOnceTheGroupSyncRemovedAMemberItLists) {
  OrgState state = ExampleState();
  const std::string exported = FormatOrgFile(state);
  ASSERT_THAT(exported, HasSubstr("id: idp:4\n    email: grace@acme.example"));
  // The identity provider drops grace from her group: the sync removes her.
  ASSERT_TRUE(
      SyncIdpGroup("support-engineers", {"bob@acme.example", "frank@acme.example"}, kNow, state)
          .ok());
  ASSERT_EQ(Provisioned(state, "grace@acme.example")->removed_at, kNow);
  // The file exported before still applies, and leaves her removed (its groups list her, so a
  // new member is provisioned for her e-mail); applied again it changes nothing.
  const OrgFile file = ParseOrDie(exported);
  absl::Status applied = ApplyOrgFile(file, kLater, state);
  ASSERT_TRUE(applied.ok()) << applied;
  EXPECT_EQ(Provisioned(state, "grace@acme.example")->removed_at, kNow);
  EXPECT_EQ(Provisioned(state, "grace@acme.example", 1)->removed_at, std::nullopt);
  EXPECT_TRUE(ValidateOrgState(state).ok()) << ValidateOrgState(state);
  const OrgState once = state;
  applied = ApplyOrgFile(file, kLater + absl::Hours(1), state);
  ASSERT_TRUE(applied.ok()) << applied;
  EXPECT_EQ(Diff(once, state).size(), 0u);
}

TEST(ApplyOrgFileTest, AGroupWithoutMembersInTheFileKeepsWhatTheGroupSyncGaveIt) {
  OrgState state = ExampleState();
  // The identity provider: grace left support-engineers, judy joined.
  ASSERT_TRUE(SyncIdpGroup("support-engineers",
                           {"bob@acme.example", "frank@acme.example", "judy@acme.example"}, kNow,
                           state)
                  .ok());
  ASSERT_EQ(Provisioned(state, "grace@acme.example")->removed_at, kNow);
  // The file in git leaves the group's members to the sync.
  std::string yaml = ReadExample();
  const std::string listed =
      "    members: [bob@acme.example, frank@acme.example, grace@acme.example]\n";
  const size_t at = yaml.find(listed);
  ASSERT_NE(at, std::string::npos);
  yaml.erase(at, listed.size());
  const OrgFile file = ParseOrDie(yaml);
  EXPECT_THAT(file.groups_kept_by_sync, ::testing::ElementsAre("support-engineers"));
  const OrgState synced = state;
  absl::Status applied = ApplyOrgFile(file, kLater, state);
  ASSERT_TRUE(applied.ok()) << applied;
  EXPECT_EQ(Diff(synced, state).size(), 0u) << FormatDiff(Diff(synced, state));
  EXPECT_EQ(Provisioned(state, "judy@acme.example")->removed_at, std::nullopt);
  EXPECT_EQ(Provisioned(state, "grace@acme.example", 1), nullptr);  // Not provisioned again.
  // A file that lists them sets them: grace comes back as a new member, judy leaves.
  applied = ApplyOrgFile(ParseOrDie(ReadExample()), kLater, state);
  ASSERT_TRUE(applied.ok()) << applied;
  EXPECT_EQ(Provisioned(state, "judy@acme.example")->removed_at, kLater);
  EXPECT_EQ(Provisioned(state, "grace@acme.example", 1)->removed_at, std::nullopt);
}

TEST(ApplyOrgFileTest, AFileListingMembersItsGroupsWouldRemoveIsRefusedWhole) {
  OrgState state = ExampleState();
  OrgFile file = ParseOrDie(FormatOrgFile(state));
  // The file drops data-science but still lists heidi and ivan, whom only that group provisioned.
  file.idp_groups.erase(std::remove_if(file.idp_groups.begin(), file.idp_groups.end(),
                                       [](const IdpGroup& g) { return g.name == "data-science"; }),
                        file.idp_groups.end());
  const OrgState before = state;
  absl::Status status = ApplyOrgFile(file, kLater, state);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(status.message()), StartsWith("line "));
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("]: member 'idp:1' was provisioned by the identity "
                        "provider"));
  EXPECT_THAT(std::string(status.message()), HasSubstr("no group of this file lists"));
  EXPECT_EQ(Diff(before, state).size(), 0u);
  // Without them the file applies, and the reconciliation removes them.
  file.members.erase(std::remove_if(file.members.begin(), file.members.end(),
                                    [](const Member& m) {
                                      return m.email == "heidi@acme.example" ||
                                             m.email == "ivan@acme.example";
                                    }),
                     file.members.end());
  file.member_places.clear();
  ASSERT_TRUE(ApplyOrgFile(file, kLater, state).ok());
  EXPECT_EQ(Provisioned(state, "heidi@acme.example")->removed_at, kLater);
}

TEST(ApplyOrgFileTest, AFileListedMemberIsFileManaged) {
  OrgState state = ExampleState();
  OrgFile file = ParseOrDie(ReadExample());
  Member frank;
  frank.id = Provisioned(state, "frank@acme.example")->id;
  frank.email = "frank@acme.example";
  frank.grants = {{Role::kReader, "playground", std::nullopt}};
  file.members.push_back(frank);
  ASSERT_TRUE(ApplyOrgFile(file, kLater, state).ok());
  EXPECT_EQ(*state.FindMember(frank.id), frank);
  EXPECT_TRUE(ValidateOrgState(state).ok());
}

TEST(ApplyOrgFileTest, GroupsAreReplacedAndReconciled) {
  OrgState state = ExampleState();
  OrgFile file = ParseOrDie(ReadExample());
  file.idp_groups.pop_back();                                 // data-science goes.
  file.idp_groups[0].members.push_back("judy@acme.example");  // support-engineers gains judy.
  ASSERT_TRUE(ApplyOrgFile(file, kLater, state).ok());
  EXPECT_EQ(state.FindIdpGroup("data-science"), nullptr);
  EXPECT_EQ(Provisioned(state, "heidi@acme.example")->removed_at, kLater);
  EXPECT_EQ(Provisioned(state, "ivan@acme.example")->removed_at, kLater);
  EXPECT_EQ(Provisioned(state, "judy@acme.example")->provisioned_by, kProvisionedByIdp);
  EXPECT_EQ(Provisioned(state, "frank@acme.example")->removed_at, std::nullopt);
  EXPECT_TRUE(ValidateOrgState(state).ok());
}

TEST(ApplyOrgFileTest, AFileMemberTakesOverFromTheIdentityProvider) {
  OrgState state = ExampleState();
  std::string text = ReadExample();
  text = absl::StrReplaceAll(
      text, {{"members:\n  - id: alice",
              "members:\n  - {id: frank, email: frank@acme.example}\n  - id: alice"}});
  ASSERT_TRUE(ApplyOrgFile(ParseOrDie(text), kLater, state).ok());
  EXPECT_EQ(Provisioned(state, "frank@acme.example")->removed_at, kLater);
  EXPECT_EQ(state.FindMember("frank")->removed_at, std::nullopt);
  EXPECT_TRUE(ValidateOrgState(state).ok()) << ValidateOrgState(state);
}

// ---------------------------------------------------------------------------------------
// Group sync.

TEST(SyncIdpGroupTest, ProvisionsNewcomersAndDeprovisionsLeavers) {
  OrgState state = ExampleState();
  ASSERT_TRUE(SyncIdpGroup("support-engineers",
                           {"frank@acme.example", "Judy@ACME.example", "bob@acme.example",
                            "judy@acme.example"},
                           kLater, state)
                  .ok());
  EXPECT_THAT(state.FindIdpGroup("support-engineers")->members,
              ElementsAre("bob@acme.example", "frank@acme.example", "judy@acme.example"));
  const Member* judy = Provisioned(state, "judy@acme.example");
  ASSERT_NE(judy, nullptr);
  EXPECT_EQ(
      *judy,
      (Member{
          "idp:5", "judy@acme.example", {}, std::nullopt, std::string(kProvisionedByIdp), "", {}}));
  EXPECT_EQ(Provisioned(state, "grace@acme.example")->removed_at, kLater);
  EXPECT_EQ(Provisioned(state, "frank@acme.example")->removed_at, std::nullopt);
  // bob is managed by the file, not provisioned.
  EXPECT_EQ(Provisioned(state, "bob@acme.example"), nullptr);
  EXPECT_EQ(state.FindMember("bob")->removed_at, std::nullopt);
  EXPECT_TRUE(std::is_sorted(state.members.begin(), state.members.end(),
                             [](const Member& a, const Member& b) { return a.id < b.id; }));
  EXPECT_TRUE(ValidateOrgState(state).ok());
}

TEST(SyncIdpGroupTest, KeepsLeaversWithOwnGrantsOrAnotherGroup) {
  OrgState state = ExampleState();
  Provisioned(state, "frank@acme.example")->grants = {{Role::kReader, "playground", std::nullopt}};
  ASSERT_TRUE(
      SyncIdpGroup("data-science", {"heidi@acme.example", "grace@acme.example"}, kLater, state)
          .ok());
  ASSERT_TRUE(SyncIdpGroup("support-engineers", {"bob@acme.example"}, kLater, state).ok());
  EXPECT_EQ(Provisioned(state, "frank@acme.example")->removed_at, std::nullopt);  // Own grant.
  EXPECT_EQ(Provisioned(state, "grace@acme.example")->removed_at, std::nullopt);  // Other group.
  EXPECT_EQ(Provisioned(state, "ivan@acme.example")->removed_at, kLater);
  // A file-managed member is never removed by the sync.
  absl::Status emptied = SyncIdpGroup("support-engineers", {}, kLater, state);
  EXPECT_EQ(emptied.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(emptied.message(), HasSubstr("state allow_empty to remove them all"));
  ASSERT_TRUE(SyncIdpGroup("support-engineers", {}, kLater, state, /*may_empty=*/true).ok());
  EXPECT_EQ(state.FindMember("bob")->removed_at, std::nullopt);
}

TEST(SyncIdpGroupTest, ARejoinAfterRemovalGetsANewId) {
  OrgState state = ExampleState();
  const std::vector<std::string> without_grace = {"bob@acme.example", "frank@acme.example"};
  const std::vector<std::string> with_grace = {"bob@acme.example", "frank@acme.example",
                                               "grace@acme.example"};
  ASSERT_TRUE(SyncIdpGroup("support-engineers", without_grace, kLater, state).ok());
  ASSERT_TRUE(SyncIdpGroup("support-engineers", with_grace, kLater + absl::Hours(1), state).ok());
  EXPECT_EQ(Provisioned(state, "grace@acme.example")->removed_at, kLater);
  const Member* second = Provisioned(state, "grace@acme.example", 1);
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(second->removed_at, std::nullopt);
  EXPECT_EQ(second->email, "grace@acme.example");
  ASSERT_TRUE(
      SyncIdpGroup("support-engineers", without_grace, kLater + absl::Hours(2), state).ok());
  ASSERT_TRUE(SyncIdpGroup("support-engineers", with_grace, kLater + absl::Hours(3), state).ok());
  EXPECT_NE(Provisioned(state, "grace@acme.example", 2), nullptr);
  EXPECT_TRUE(ValidateOrgState(state).ok());
  // Re-syncing the same list changes nothing.
  const OrgState settled = state;
  ASSERT_TRUE(SyncIdpGroup("support-engineers", with_grace, kLater + absl::Hours(4), state).ok());
  EXPECT_TRUE(Diff(settled, state).empty());
}

TEST(SyncIdpGroupTest, UnknownGroupAndMalformedEmail) {
  OrgState state = ExampleState();
  const OrgState before = state;
  absl::Status status = SyncIdpGroup("nobody", {"a@acme.example"}, kLater, state);
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(status.message()), HasSubstr("nobody"));
  status = SyncIdpGroup("support-engineers", {"bob@acme.example", "not an address"}, kLater, state);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "group 'support-engineers': malformed e-mail 'not an address'");
  status = SyncIdpGroup("support-engineers", {"o'brien@acme.example"}, kLater, state);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("'o\\'brien@acme.example'"));
  EXPECT_TRUE(Diff(before, state).empty());  // Nothing changed.
}

TEST(SyncIdpGroupTest, GroupMembersHoldTheGroupsRolesInDecisions) {
  OrgState state = ExampleState();
  const auto decide = [&](absl::string_view member, absl::string_view project) {
    CheckRequest request;
    request.principal_id = std::string(member);
    request.project = std::string(project);
    request.action = "chat.completions";
    request.model = "gpt-4o";
    absl::StatusOr<Decision> decision = Check(*SnapshotOf(state, kLater), request, kLater);
    EXPECT_TRUE(decision.ok()) << decision.status();
    return decision.value_or(Decision{});
  };
  EXPECT_TRUE(decide(Provisioned(state, "frank@acme.example")->id, "support-eu").allowed);
  // The group makes frank a reader of staging: no API calls there.
  EXPECT_EQ(decide(Provisioned(state, "frank@acme.example")->id, "support-eu-staging").reason,
            DenyReason::kPermissionDenied);
  EXPECT_EQ(decide(Provisioned(state, "heidi@acme.example")->id, "support-eu").reason,
            DenyReason::kPermissionDenied);
  EXPECT_TRUE(decide(Provisioned(state, "heidi@acme.example")->id, "internal-copilot").allowed);
  // A file-managed member holds a group's grants through their e-mail.
  EXPECT_EQ(decide("carol", "internal-copilot").reason, DenyReason::kPermissionDenied);
  ASSERT_TRUE(SyncIdpGroup("data-science",
                           {"heidi@acme.example", "ivan@acme.example", "carol@acme.example"},
                           kLater, state)
                  .ok());
  EXPECT_EQ(Provisioned(state, "carol@acme.example"), nullptr);
  EXPECT_TRUE(decide("carol", "internal-copilot").allowed);

  ASSERT_TRUE(SyncIdpGroup("support-engineers", {"bob@acme.example"}, kLater, state).ok());
  EXPECT_EQ(decide(Provisioned(state, "frank@acme.example")->id, "support-eu").reason,
            DenyReason::kPrincipalRemoved);
}

}  // namespace
}  // namespace policy::authz
