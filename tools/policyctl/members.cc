// policyctl members and invitations.
#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tools/policyctl/cli.h"

namespace policy::policyctl {
namespace {

// One line of text per member: id, e-mail and grants (those of a group marked as such).
void PrintMember(const authz::v1::Member& m) {
  std::vector<std::string> roles;
  for (const authz::v1::RoleGrant& grant : m.grants()) {
    roles.push_back(
        absl::StrCat(grant.role(), grant.project().empty() ? "" : "@", grant.project()));
  }
  // What their identity provider's groups grant them, marked as such.
  for (const authz::v1::RoleGrant& grant : m.group_grants()) {
    roles.push_back(
        absl::StrCat(grant.role(), grant.project().empty() ? "" : "@", grant.project(), "(group)"));
  }
  std::printf("%s  %s  %s%s\n", m.id().c_str(),
              m.has_erased_at() ? "(address erased)" : m.email().c_str(),
              absl::StrJoin(roles, " ").c_str(), m.has_removed_at() ? "  (removed)" : "");
}

// "owner,member@support-eu,reader@playground" as role grants.
std::vector<authz::v1::RoleGrant> Grants(const std::string& roles) {
  std::vector<authz::v1::RoleGrant> grants;
  for (absl::string_view r : absl::StrSplit(roles, ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> role_project = absl::StrSplit(r, absl::MaxSplits('@', 1));
    authz::v1::RoleGrant grant;
    grant.set_role(role_project.first);
    grant.set_project(role_project.second);
    grants.push_back(std::move(grant));
  }
  return grants;
}

}  // namespace

int Members(const Invocation& in) {
  const std::string verb = in.words.empty() ? "" : in.words[0];
  const bool list = in.words.size() == 1 && verb == "list";
  const bool add = in.words.size() == 1 && verb == "add";
  const bool with_id = in.words.size() == 2 && (verb == "remove" || verb == "set-roles");
  if (!list && !add && !with_id) {
    return Usage("members list, members add, members set-roles ID or members remove ID");
  }
  Global g;
  std::string request_id, project, id, email, roles;
  bool include_removed = false;
  int64_t page_size = kListPageSize;
  if (int rc = ParseFlags(
          in, g,
          [&](config::Parser& p) {
            p.AddString("request_id", &request_id, "remove: makes a retry repeat nothing");
            p.AddString("project", &project, "list: only members with a role in this project");
            p.AddBool("include_removed", &include_removed, "list: removed members too");
            AddPageSize(p, &page_size);
            p.AddString("id", &id, "add: the member's id");
            p.AddString("email", &email,
                        "add: the member's e-mail; list: only members with this e-mail");
            p.AddString("roles", &roles,
                        "add, set-roles: e.g. member@support-eu,reader@playground");
          });
      rc != kOk) {
    return rc;
  }
  if (int rc = Int32Flags({{"page_size", page_size}}); rc != kOk) return rc;
  // set-roles replaces every grant: without --roles it would take them all away, which a
  // script that lost the flag must not do by accident; --roles= says so on purpose.
  if (verb == "set-roles" &&
      std::none_of(in.flags.begin(), in.flags.end(), [](const std::string& f) {
        return f == "--roles" || absl::StartsWith(f, "--roles=");
      })) {
    return Usage(
        "members set-roles needs --roles, the member's every grant (--roles= takes them all "
        "away)");
  }
  if (int rc = NeedAdminKey(g); rc != kOk) return rc;
  if (add || verb == "set-roles") {
    auto stub = edge::v1::AdminService::NewStub(Channel(g));
    authz::v1::Member member;
    grpc::Status status;
    if (add) {
      if (int rc = RequiredFlags("members add", {{"id", &id}, {"email", &email}}); rc != kOk) {
        return rc;
      }
      authz::v1::AddMemberRequest request;
      request.mutable_member()->set_id(id);
      request.mutable_member()->set_email(email);
      for (authz::v1::RoleGrant& grant : Grants(roles)) {
        *request.mutable_member()->add_grants() = std::move(grant);
      }
      status = stub->AddMember(Context(g, true).get(), request, &member);
    } else {
      authz::v1::SetMemberRolesRequest request;
      request.set_id(in.words[1]);
      for (authz::v1::RoleGrant& grant : Grants(roles)) *request.add_grants() = std::move(grant);
      status = stub->SetMemberRoles(Context(g, true).get(), request, &member);
    }
    if (!status.ok()) return Failed(status);
    return Show(g, member, [&] { PrintMember(member); });
  }
  if (list) {
    edge::v1::ListMembersRequest request;
    request.set_project(project);
    request.set_include_removed(include_removed);
    request.set_email(email);
    request.set_page_size(static_cast<int32_t>(page_size));
    authz::v1::ListMembersResponse response;
    auto stub = edge::v1::AdminService::NewStub(Channel(g));
    if (grpc::Status s = ListAll(request, &response,
                                 [&](const auto& r, auto* page) {
                                   return stub->ListMembers(Context(g, true).get(), r, page);
                                 });
        !s.ok()) {
      return Failed(s);
    }
    return Show(g, response, [&] {
      for (const authz::v1::Member& m : response.members()) PrintMember(m);
    });
  }
  request_id = RequestIdOr(request_id);
  edge::v1::RemoveMemberRequest request;
  request.set_member_id(in.words[1]);
  request.set_request_id(request_id);
  edge::v1::RemoveMemberResponse response;
  auto stub = edge::v1::AdminService::NewStub(Channel(g));
  if (grpc::Status s = stub->RemoveMember(Context(g, true).get(), request, &response); !s.ok()) {
    return FailedRetryable(s, request_id);
  }
  return ShowWithRequestId(g, response, request_id, [&] {
    std::printf("removed %s (request %s, ledger %s); revoked %d keys\n",
                response.member().id().c_str(), request_id.c_str(),
                // "<project>/<environment>/<index>", both empty for the organisation's ledger.
                absl::StartsWith(response.audit_id(), "//")
                    ? absl::StrCat("organisation/", response.audit_id().substr(2)).c_str()
                    : response.audit_id().c_str(),
                response.revoked_keys_size());
    for (const keys::v1::Key& k : response.revoked_keys()) PrintKey(k);
  });
}

int Invitations(const Invocation& in) {
  const std::string verb = in.words.empty() ? "" : in.words[0];
  if (!(in.words.size() == 1 && (verb == "list" || verb == "create")) &&
      !(in.words.size() == 2 && (verb == "revoke" || verb == "accept"))) {
    return Usage(
        "invitations list, invitations create, invitations revoke REF|ID or invitations accept ID");
  }
  Global g;
  std::string email, role = "member", projects, member_id, request_id;
  absl::Duration valid_for = absl::ZeroDuration();
  int64_t page_size = kListPageSize;
  if (int rc = ParseFlags(
          in, g,
          [&](config::Parser& p) {
            p.AddString("email", &email, "create: whom to invite; accept: the invitee's e-mail");
            p.AddString("member_id", &member_id,
                        "accept: the new member's id (default: member:<next number>)");
            p.AddString("role", &role, "create: owner, admin, member or reader");
            p.AddString("projects", &projects, "create: comma-separated projects (member, reader)");
            p.AddDuration("valid_for", &valid_for, "create: default 7 days, at most 30");
            p.AddString("request_id", &request_id,
                        "create: makes a retry answer the first call's invitation; at most 128 "
                        "bytes (default: a fresh one)");
            AddPageSize(p, &page_size);
          });
      rc != kOk) {
    return rc;
  }
  if (int rc = Int32Flags({{"page_size", page_size}}); rc != kOk) return rc;
  if (int rc = NonNegativeFlags({{"valid_for", valid_for}}); rc != kOk) return rc;
  auto stub = edge::v1::AdminService::NewStub(Channel(g));
  if (verb == "accept") {  // The invitee's call: no admin key, the invitation's id.
    authz::v1::AcceptInvitationRequest request;
    request.set_id(in.words[1]);
    request.set_email(email);
    request.set_member_id(member_id);
    authz::v1::Member member;
    if (grpc::Status s = stub->AcceptInvitation(Context(g, false).get(), request, &member);
        !s.ok()) {
      return Failed(s);
    }
    return Show(g, member, [&] { PrintMember(member); });
  }
  if (int rc = NeedAdminKey(g); rc != kOk) return rc;
  auto print = [](const authz::v1::Invitation& i) {
    std::printf("%s  %s  %s [%s]  %s\n", i.ref().c_str(), i.email().c_str(), i.role().c_str(),
                absl::StrJoin(i.projects(), ",").c_str(), i.state().c_str());
    // Only CreateInvitation's answer carries the secret id (a retry's a fresh one, which
    // replaces it); it is never shown again.
    if (!i.id().empty()) std::printf("secret id (send it to the invitee): %s\n", i.id().c_str());
  };
  if (verb == "list") {
    authz::v1::ListInvitationsRequest request;
    request.set_page_size(static_cast<int32_t>(page_size));
    authz::v1::ListInvitationsResponse response;
    if (grpc::Status s = ListAll(request, &response,
                                 [&](const auto& r, auto* page) {
                                   return stub->ListInvitations(Context(g, true).get(), r, page);
                                 });
        !s.ok()) {
      return Failed(s);
    }
    return Show(g, response, [&] {
      for (const authz::v1::Invitation& i : response.invitations()) print(i);
    });
  }
  authz::v1::Invitation invitation;
  if (verb == "create") {
    authz::v1::CreateInvitationRequest request;
    request.set_email(email);
    request.set_role(role);
    for (const std::string& p : List(projects)) request.add_projects(p);
    if (in.Given("valid_for")) {
      request.mutable_valid_for()->set_seconds(absl::ToInt64Seconds(valid_for));
    }
    request_id = RequestIdOr(request_id);
    request.set_request_id(request_id);
    if (grpc::Status s = stub->CreateInvitation(Context(g, true).get(), request, &invitation);
        !s.ok()) {
      return FailedRetryable(s, request_id);
    }
    return ShowWithRequestId(g, invitation, request_id, [&] {
      print(invitation);
      std::printf("request %s\n", request_id.c_str());
    });
  }
  authz::v1::RevokeInvitationRequest request;
  request.set_id(in.words[1]);
  if (grpc::Status s = stub->RevokeInvitation(Context(g, true).get(), request, &invitation);
      !s.ok()) {
    return Failed(s);
  }
  return Show(g, invitation, [&] { print(invitation); });
}

}  // namespace policy::policyctl
