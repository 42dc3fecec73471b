#include "services/authz/authz_service.h"

#include <algorithm>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/client/channel.h"
#include "common/ids/project_id.h"
#include "common/paging/page_token.h"
#include "common/proto/well_known.h"
#include "common/status/grpc_status.h"
#include "common/status/status.h"
#include "common/text/caller_text.h"
#include "services/authz/org_ledger.h"
#include "services/authz/org_validation.h"
#include "services/authz/proto_convert.h"

namespace policy::authz {
namespace {

constexpr absl::string_view kDomain = "authz.policy-suite";
constexpr int kDefaultPageSize = 50;
constexpr int kMaxPageSize = 500;
constexpr size_t kMaxPageTokenBytes = 512;    // Tokens hold an id (paging::EncodePageToken).
constexpr size_t kMaxFingerprintBytes = 128;  // A plan's fingerprint is 64 hex digits.
// The longest a removal waits for the keys service to list the keys to revoke.
constexpr absl::Duration kKeyListingLimit = absl::Seconds(5);

grpc::Status ToGrpc(const absl::Status& status) { return ToGrpcStatus(status, kDomain); }

// The actor's id and the request's `id` field (if any) within kMaxIdBytes: checked first, so
// that no message quotes a longer one.
absl::Status CheckActor(const v1::Actor& actor) {
  return CheckMaxBytes({{"actor.member_id", actor.member_id(), kMaxIdBytes}});
}

// The actor, and the id of the object a request names (required).
absl::Status CheckIds(const v1::Actor& actor, absl::string_view id) {
  RETURN_IF_ERROR(CheckActor(actor));
  if (id.empty()) return absl::InvalidArgumentError("id: required");
  return CheckMaxBytes({{"id", id, kMaxIdBytes}});
}

// A listing's actor, page token and project filter (empty: none).
absl::Status CheckListing(const v1::Actor& actor, const std::string& page_token,
                          absl::string_view project = {}) {
  RETURN_IF_ERROR(CheckActor(actor));
  RETURN_IF_ERROR(CheckMaxBytes({{"page_token", page_token, kMaxPageTokenBytes}}));
  if (!project.empty()) RETURN_IF_ERROR(ids::ValidateProjectId(project, "project"));
  return absl::OkStatus();
}

// Pages over `items` (sorted by id) in id order: those `keep` accepts, after the token's id.
// `filters` are the request's filters (paging::EncodePageToken). Returns the next page's token
// ("" on the last page).
template <typename T, typename Keep, typename Emit>
absl::StatusOr<std::string> Page(const std::vector<T>& items, int32_t page_size,
                                 const std::string& token,
                                 absl::Span<const absl::string_view> filters, Keep keep,
                                 Emit emit) {
  if (page_size < 0) return absl::InvalidArgumentError("page_size must not be negative");
  const size_t limit = page_size == 0 ? kDefaultPageSize : std::min(page_size, kMaxPageSize);
  std::string after;
  if (!token.empty()) {
    ASSIGN_OR_RETURN(after, paging::DecodePageToken(token, filters));
  }
  auto it = std::upper_bound(items.begin(), items.end(), after,
                             [](const std::string& a, const T& item) { return a < item.id; });
  if (token.empty()) it = items.begin();
  size_t emitted = 0;
  for (; it != items.end(); ++it) {
    if (!keep(*it)) continue;
    if (emitted == limit) return paging::EncodePageToken((it - 1)->id, filters);
    emit(*it);
    ++emitted;
  }
  return std::string();
}

// The gRPC status of `result`, after `fill` has written its value into the response.
template <typename T, typename Fill>
grpc::Status Reply(const absl::StatusOr<T>& result, Fill fill) {
  if (!result.ok()) return ToGrpc(result.status());
  fill(*result);
  return grpc::Status::OK;
}

grpc::ServerUnaryReactor* Finish(grpc::CallbackServerContext* context, const absl::Status& s) {
  return server::FinishNow(context, ToGrpc(s));
}

bool HasRoleIn(const Member& m, const OrgState& state, absl::string_view project) {
  for (const RoleGrant& g : m.grants) {
    if (g.project == project) return true;
  }
  for (const IdpGroup& group : state.idp_groups) {
    if (std::find(group.members.begin(), group.members.end(), m.email) == group.members.end()) {
      continue;
    }
    for (const RoleGrant& g : group.grants) {
      if (g.project == project) return true;
    }
  }
  return false;
}

}  // namespace

AuthzService::AuthzService(Authorizer* authorizer, OrgAdmin* admin, const OrgCache* cache,
                           KeyDirectory* keys, server::BlockingPool* pool, Clock* clock,
                           prometheus::Registry* registry)
    : authorizer_(authorizer),
      admin_(admin),
      cache_(cache),
      keys_(keys),
      pool_(pool),
      clock_(clock) {
  auto& family = prometheus::BuildCounter()
                     .Name("policy_authz_decisions_total")
                     .Help("Authorization decisions by verdict and reason.")
                     .Register(*registry);
  allowed_ = &family.Add({{"verdict", "allow"}, {"reason", ""}});
  // Every reason after kNone, up to kRateLimited, the last.
  for (int r = static_cast<int>(DenyReason::kNone) + 1;
       r <= static_cast<int>(DenyReason::kRateLimited); ++r) {
    const std::string name(DenyReasonName(static_cast<DenyReason>(r)));
    denied_[name] = &family.Add({{"verdict", "deny"}, {"reason", name}});
  }
  auto& limited = prometheus::BuildCounter()
                      .Name("policy_authz_rate_limited_total")
                      .Help("Requests refused by a rate limit, by the limit that refused them.")
                      .Register(*registry);
  for (const char* limit : {"project.rpm", "project.tpm", "principal.rpm", "principal.tpm"}) {
    rate_limited_[absl::StrCat("rate_limit.", limit)] = &limited.Add({{"limit", limit}});
  }
}

grpc::Status AuthzService::ReplyMember(const absl::StatusOr<Member>& member,
                                       v1::Member* out) const {
  return Reply(member, [&](const Member& m) {
    // The group grants come from the latest organisation; without it, the member's own.
    absl::StatusOr<OrgView> view = cache_->Current();
    ToProto(m, view.ok() ? *view->state : OrgState{}, out);
  });
}

void AuthzService::CountDecision(const Authorization& a) {
  if (a.decision.allowed) {
    allowed_->Increment();
    return;
  }
  auto it = denied_.find(DenyReasonName(a.decision.reason));
  if (it != denied_.end()) it->second->Increment();
  if (a.rate_limited) {
    auto limit = rate_limited_.find(a.limit_rule);
    if (limit != rate_limited_.end()) limit->second->Increment();
  }
}

grpc::ServerUnaryReactor* AuthzService::Check(grpc::CallbackServerContext* context,
                                              const v1::CheckRequest* request,
                                              v1::CheckResponse* response) {
  absl::StatusOr<AuthorizeRequest> parsed = FromProto(*request);
  if (!parsed.ok()) return Finish(context, parsed.status());
  absl::StatusOr<std::optional<Authorization>> fast = authorizer_->TryAuthorize(*parsed);
  if (!fast.ok()) return Finish(context, fast.status());
  if (fast->has_value()) {
    CountDecision(**fast);
    ToProto(**fast, response);
    return Finish(context, absl::OkStatus());
  }
  return pool_->Run(context, [this, parsed = *std::move(parsed), response] {
    absl::StatusOr<Authorization> slow = authorizer_->Authorize(parsed);
    if (!slow.ok()) return ToGrpc(slow.status());
    CountDecision(*slow);
    ToProto(*slow, response);
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* AuthzService::ReportUsage(grpc::CallbackServerContext* context,
                                                    const v1::ReportUsageRequest* request,
                                                    v1::ReportUsageResponse* response) {
  return pool_->Run(context, [this, request, response] {
    absl::StatusOr<CheckRequest> who = PrincipalFromProto(request->principal(), request->project());
    if (!who.ok()) return ToGrpc(who.status());
    absl::StatusOr<UsageReconciliation> reconciled = authorizer_->ReportUsage(
        UsageReport{request->request_id(), *std::move(who), request->estimated_tokens(),
                    request->actual_tokens(), request->refund_request()});
    if (!reconciled.ok()) return ToGrpc(reconciled.status());
    response->set_adjusted_tokens(reconciled->adjusted_tokens);
    response->set_duplicate(reconciled->duplicate);
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* AuthzService::CreateProject(grpc::CallbackServerContext* context,
                                                      const v1::CreateProjectRequest* request,
                                                      v1::Project* response) {
  if (absl::Status s = CheckActor(request->actor()); !s.ok()) return Finish(context, s);
  return pool_->Run(context, [this, request, response] {
    absl::StatusOr<Project> project = FromProto(request->project());
    if (project.ok()) project = admin_->CreateProject(request->actor().member_id(), *project);
    return Reply(project, [&](const Project& value) { ToProto(value, response); });
  });
}

grpc::ServerUnaryReactor* AuthzService::GetProject(grpc::CallbackServerContext* context,
                                                   const v1::GetProjectRequest* request,
                                                   v1::Project* response) {
  if (absl::Status s = CheckActor(request->actor()); !s.ok()) return Finish(context, s);
  if (absl::Status s = ids::ValidateProjectId(request->id(), "id"); !s.ok()) {
    return Finish(context, s);
  }
  absl::Status allowed =
      admin_->Authorize(request->actor().member_id(), "settings.read", request->id());
  if (!allowed.ok()) return Finish(context, allowed);
  absl::StatusOr<OrgView> view = cache_->Current();
  if (!view.ok()) return Finish(context, view.status());
  const Project* project = view->state->FindProject(request->id());
  if (project == nullptr) {
    return Finish(context, absl::NotFoundError(absl::StrCat("no project ", Quoted(request->id()))));
  }
  ToProto(*project, response);
  return Finish(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* AuthzService::UpdateProject(grpc::CallbackServerContext* context,
                                                      const v1::UpdateProjectRequest* request,
                                                      v1::Project* response) {
  if (absl::Status s = CheckActor(request->actor()); !s.ok()) return Finish(context, s);
  return pool_->Run(context, [this, request, response] {
    absl::StatusOr<Project> project = FromProto(request->project());
    std::optional<Project> expected;
    if (project.ok() && request->has_expected()) {
      absl::StatusOr<Project> read = FromProto(request->expected());
      if (!read.ok()) {
        project = read.status();
      } else if (read->id != project->id) {
        project = absl::InvalidArgumentError("expected.id: not the project's id");
      } else {
        expected = *std::move(read);
      }
    }
    if (project.ok()) {
      project = admin_->UpdateProject(
          request->actor().member_id(), *project,
          {.key_holders = request->project().key_holders() == v1::KEY_HOLDERS_UNSPECIFIED,
           .residency =
               request->project().data_policy().residency() == region::v1::RESIDENCY_UNSPECIFIED,
           .pii_rules = !request->project().data_policy().has_pii(),
           .data_class =
               request->project().data_policy().data_class() == pii::v1::DATA_CLASS_UNSPECIFIED},
          expected);
    }
    return Reply(project, [&](const Project& value) { ToProto(value, response); });
  });
}

grpc::ServerUnaryReactor* AuthzService::ArchiveProject(grpc::CallbackServerContext* context,
                                                       const v1::ArchiveProjectRequest* request,
                                                       v1::Project* response) {
  if (absl::Status s = CheckActor(request->actor()); !s.ok()) return Finish(context, s);
  if (absl::Status s = ids::ValidateProjectId(request->id(), "id"); !s.ok()) {
    return Finish(context, s);
  }
  return pool_->Run(context, [this, request, response] {
    absl::StatusOr<Project> project =
        admin_->ArchiveProject(request->actor().member_id(), request->id());
    return Reply(project, [&](const Project& value) { ToProto(value, response); });
  });
}

grpc::ServerUnaryReactor* AuthzService::ListProjects(grpc::CallbackServerContext* context,
                                                     const v1::ListProjectsRequest* request,
                                                     v1::ListProjectsResponse* response) {
  if (absl::Status s = CheckListing(request->actor(), request->page_token()); !s.ok()) {
    return Finish(context, s);
  }
  const std::string& actor = request->actor().member_id();
  absl::StatusOr<OrgView> view = cache_->Current();
  if (!view.ok()) return Finish(context, view.status());
  // Organisation readers see every project; others the projects whose settings they read.
  const bool sees_all = admin_->Authorize(*view, actor, "org.read").ok();
  if (!sees_all) {
    const Member* member = view->state->FindMember(actor);
    if (member == nullptr || member->removed_at.has_value()) {
      return Finish(context, absl::PermissionDeniedError(
                                 absl::StrCat("member ", Quoted(actor), " may not list projects")));
    }
  }
  absl::StatusOr<std::string> next = Page(
      view->state->projects, request->page_size(), request->page_token(),
      {request->include_archived() ? "archived" : ""},
      [&](const Project& p) {
        if (p.archived && !request->include_archived()) return false;
        return sees_all || admin_->Authorize(*view, actor, "settings.read", p.id).ok();
      },
      [&](const Project& p) { ToProto(p, response->add_projects()); });
  if (!next.ok()) return Finish(context, next.status());
  response->set_next_page_token(*next);
  return Finish(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* AuthzService::AddMember(grpc::CallbackServerContext* context,
                                                  const v1::AddMemberRequest* request,
                                                  v1::Member* response) {
  if (absl::Status s = CheckActor(request->actor()); !s.ok()) return Finish(context, s);
  return pool_->Run(context, [this, request, response] {
    absl::StatusOr<Member> member = FromProto(request->member());
    if (member.ok()) member = admin_->AddMember(request->actor().member_id(), *member);
    return ReplyMember(member, response);
  });
}

grpc::ServerUnaryReactor* AuthzService::GetMember(grpc::CallbackServerContext* context,
                                                  const v1::GetMemberRequest* request,
                                                  v1::Member* response) {
  if (absl::Status s = CheckIds(request->actor(), request->id()); !s.ok()) {
    return Finish(context, s);
  }
  // Members may read themselves; reading others needs org.read.
  if (request->actor().member_id() != request->id()) {
    absl::Status allowed = admin_->Authorize(request->actor().member_id(), "org.read");
    if (!allowed.ok()) return Finish(context, allowed);
  }
  absl::StatusOr<OrgView> view = cache_->Current();
  if (!view.ok()) return Finish(context, view.status());
  const Member* member = view->state->FindMember(request->id());
  if (member == nullptr) {
    return Finish(context, absl::NotFoundError(absl::StrCat("no member ", Quoted(request->id()))));
  }
  ToProto(*member, *view->state, response);
  return Finish(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* AuthzService::SetMemberRoles(grpc::CallbackServerContext* context,
                                                       const v1::SetMemberRolesRequest* request,
                                                       v1::Member* response) {
  if (absl::Status s = CheckIds(request->actor(), request->id()); !s.ok()) {
    return Finish(context, s);
  }
  return pool_->Run(context, [this, request, response] {
    absl::StatusOr<std::vector<RoleGrant>> grants = GrantsFromProto(request->grants(), "grants");
    if (!grants.ok()) return ToGrpc(grants.status());
    absl::StatusOr<Member> member =
        admin_->SetMemberRoles(request->actor().member_id(), request->id(), *std::move(grants));
    return ReplyMember(member, response);
  });
}

grpc::ServerUnaryReactor* AuthzService::RemoveMember(grpc::CallbackServerContext* context,
                                                     const v1::RemoveMemberRequest* request,
                                                     v1::RemoveMemberResponse* response) {
  if (absl::Status s = CheckIds(request->actor(), request->id()); !s.ok()) {
    return Finish(context, s);
  }
  return pool_->Run(context, [this, context, request, response] {
    bool removed_now = false;
    absl::StatusOr<Member> member =
        admin_->RemoveMember(request->actor().member_id(), request->id(), &removed_now);
    if (!member.ok()) return ToGrpc(member.status());
    response->set_removed_now(removed_now);
    response->set_removal_request_id(MemberRemovalRequestId(*member));
    response->mutable_revoke_keys_of()->set_kind(v1::PRINCIPAL_KIND_MEMBER);
    response->mutable_revoke_keys_of()->set_id(member->id);
    bool listed = false;
    if (grpc::Status s =
            ListKeysToRevoke(*context, {member->id}, response->mutable_keys_to_revoke(), &listed);
        !s.ok()) {
      return s;
    }
    response->set_keys_listed(listed);
    return ReplyMember(member, response->mutable_member());
  });
}

grpc::ServerUnaryReactor* AuthzService::EraseMember(grpc::CallbackServerContext* context,
                                                    const v1::EraseMemberRequest* request,
                                                    v1::Member* response) {
  if (absl::Status s = CheckIds(request->actor(), request->id()); !s.ok()) {
    return Finish(context, s);
  }
  return pool_->Run(context, [this, request, response] {
    return ReplyMember(admin_->EraseMember(request->actor().member_id(), request->id()), response);
  });
}

grpc::ServerUnaryReactor* AuthzService::ListMembers(grpc::CallbackServerContext* context,
                                                    const v1::ListMembersRequest* request,
                                                    v1::ListMembersResponse* response) {
  if (absl::Status s = CheckListing(request->actor(), request->page_token(), request->project());
      !s.ok()) {
    return Finish(context, s);
  }
  if (absl::Status s = CheckMaxBytes({{"email", request->email(), kMaxEmailBytes}}); !s.ok()) {
    return Finish(context, s);
  }
  // Every member needs org.read; those of one project, reading its settings (readers and
  // members of the project too).
  absl::Status allowed =
      request->project().empty()
          ? admin_->Authorize(request->actor().member_id(), "org.read")
          : admin_->Authorize(request->actor().member_id(), "settings.read", request->project());
  if (!allowed.ok()) return Finish(context, allowed);
  absl::StatusOr<OrgView> view = cache_->Current();
  if (!view.ok()) return Finish(context, view.status());
  const OrgState& state = *view->state;
  // A caller who may read the one project but not the organisation sees the members' roles in
  // it, not where else they work.
  std::optional<absl::string_view> only_project;
  if (!request->project().empty() &&
      !admin_->Authorize(*view, request->actor().member_id(), "org.read").ok()) {
    only_project = request->project();
  }
  // The e-mail filter joins the token's filters only when given, so that tokens of listings
  // without it stay as they were.
  std::vector<absl::string_view> filters = {request->project(),
                                            request->include_removed() ? "removed" : ""};
  if (!request->email().empty()) filters.push_back(request->email());
  absl::StatusOr<std::string> next = Page(
      state.members, request->page_size(), request->page_token(), filters,
      [&](const Member& m) {
        if (m.removed_at.has_value() && !request->include_removed()) return false;
        if (!request->email().empty() && !absl::EqualsIgnoreCase(m.email, request->email())) {
          return false;
        }
        return request->project().empty() || HasRoleIn(m, state, request->project());
      },
      [&](const Member& m) { ToProto(m, state, response->add_members(), only_project); });
  if (!next.ok()) return Finish(context, next.status());
  response->set_next_page_token(*next);
  return Finish(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* AuthzService::CreateInvitation(grpc::CallbackServerContext* context,
                                                         const v1::CreateInvitationRequest* request,
                                                         v1::Invitation* response) {
  if (absl::Status s = CheckActor(request->actor()); !s.ok()) return Finish(context, s);
  if (absl::Status s = CheckMaxBytes({{"email", request->email(), kMaxEmailBytes}}); !s.ok()) {
    return Finish(context, s);
  }
  return pool_->Run(context, [this, request, response] {
    Invitation invitation;
    invitation.email = request->email();
    absl::StatusOr<Role> role = ParseRole(request->role());
    if (!role.ok())
      return ToGrpc(absl::InvalidArgumentError(absl::StrCat("role: ", role.status().message())));
    invitation.role = *role;
    invitation.projects.assign(request->projects().begin(), request->projects().end());
    absl::Duration valid_for = absl::ZeroDuration();
    if (request->has_valid_for()) {
      absl::StatusOr<absl::Duration> d =
          proto::DurationFromProto(request->valid_for(), "valid_for");
      if (!d.ok()) return ToGrpc(d.status());
      valid_for = *d;
    }
    absl::StatusOr<OrgAdmin::CreatedInvitation> created = admin_->CreateInvitation(
        request->actor().member_id(), invitation, valid_for, request->request_id());
    return Reply(created, [&](const OrgAdmin::CreatedInvitation& value) {
      ToProto(value.invitation, clock_->Now(), response);
      response->set_id(value.secret_id);
    });
  });
}

grpc::ServerUnaryReactor* AuthzService::AcceptInvitation(grpc::CallbackServerContext* context,
                                                         const v1::AcceptInvitationRequest* request,
                                                         v1::Member* response) {
  if (absl::Status s = CheckMaxBytes({{"id", request->id(), kMaxIdBytes},
                                      {"email", request->email(), kMaxEmailBytes},
                                      {"member_id", request->member_id(), kMaxIdBytes}});
      !s.ok()) {
    return Finish(context, s);
  }
  return pool_->Run(context, [this, request, response] {
    absl::StatusOr<Member> member =
        admin_->AcceptInvitation(request->id(), request->email(), request->member_id());
    return ReplyMember(member, response);
  });
}

grpc::ServerUnaryReactor* AuthzService::RevokeInvitation(grpc::CallbackServerContext* context,
                                                         const v1::RevokeInvitationRequest* request,
                                                         v1::Invitation* response) {
  if (absl::Status s = CheckIds(request->actor(), request->id()); !s.ok()) {
    return Finish(context, s);
  }
  return pool_->Run(context, [this, request, response] {
    absl::StatusOr<Invitation> invitation =
        admin_->RevokeInvitation(request->actor().member_id(), request->id());
    return Reply(invitation,
                 [&](const Invitation& value) { ToProto(value, clock_->Now(), response); });
  });
}

grpc::ServerUnaryReactor* AuthzService::ListInvitations(grpc::CallbackServerContext* context,
                                                        const v1::ListInvitationsRequest* request,
                                                        v1::ListInvitationsResponse* response) {
  if (absl::Status s = CheckListing(request->actor(), request->page_token()); !s.ok()) {
    return Finish(context, s);
  }
  absl::Status allowed = admin_->Authorize(request->actor().member_id(), "invitations.manage");
  if (!allowed.ok()) return Finish(context, allowed);
  absl::StatusOr<OrgView> view = cache_->Current();
  if (!view.ok()) return Finish(context, view.status());
  const absl::Time now = clock_->Now();
  absl::StatusOr<std::string> next = Page(
      view->state->invitations, request->page_size(), request->page_token(), {},
      [](const Invitation&) { return true; },
      [&](const Invitation& i) { ToProto(i, now, response->add_invitations()); });
  if (!next.ok()) return Finish(context, next.status());
  response->set_next_page_token(*next);
  return Finish(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* AuthzService::CreateServiceAccount(
    grpc::CallbackServerContext* context, const v1::CreateServiceAccountRequest* request,
    v1::ServiceAccount* response) {
  if (absl::Status s = CheckActor(request->actor()); !s.ok()) return Finish(context, s);
  return pool_->Run(context, [this, request, response] {
    absl::StatusOr<ServiceAccount> account =
        FromProto(request->service_account(), EnvironmentField::kRequired);
    if (account.ok()) {
      account = admin_->CreateServiceAccount(request->actor().member_id(), *account);
    }
    return Reply(account, [&](const ServiceAccount& value) { ToProto(value, response); });
  });
}

grpc::ServerUnaryReactor* AuthzService::GetServiceAccount(
    grpc::CallbackServerContext* context, const v1::GetServiceAccountRequest* request,
    v1::ServiceAccount* response) {
  if (absl::Status s = CheckIds(request->actor(), request->id()); !s.ok()) {
    return Finish(context, s);
  }
  absl::StatusOr<OrgView> view = cache_->Current();
  if (!view.ok()) return Finish(context, view.status());
  const ServiceAccount* account = view->state->FindServiceAccount(request->id());
  if (account == nullptr) {
    return Finish(context,
                  absl::NotFoundError(absl::StrCat("no service account ", Quoted(request->id()))));
  }
  absl::Status allowed =
      admin_->Authorize(request->actor().member_id(), "settings.read", account->project);
  if (!allowed.ok()) return Finish(context, allowed);
  ToProto(*account, response);
  return Finish(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* AuthzService::UpdateServiceAccount(
    grpc::CallbackServerContext* context, const v1::UpdateServiceAccountRequest* request,
    v1::ServiceAccount* response) {
  if (absl::Status s = CheckActor(request->actor()); !s.ok()) return Finish(context, s);
  return pool_->Run(context, [this, request, response] {
    absl::StatusOr<ServiceAccount> account =
        FromProto(request->service_account(), EnvironmentField::kIgnored);
    if (account.ok()) {
      account = admin_->UpdateServiceAccount(request->actor().member_id(), *account);
    }
    return Reply(account, [&](const ServiceAccount& value) { ToProto(value, response); });
  });
}

grpc::ServerUnaryReactor* AuthzService::RemoveServiceAccount(
    grpc::CallbackServerContext* context, const v1::RemoveServiceAccountRequest* request,
    v1::ServiceAccount* response) {
  if (absl::Status s = CheckIds(request->actor(), request->id()); !s.ok()) {
    return Finish(context, s);
  }
  return pool_->Run(context, [this, request, response] {
    absl::StatusOr<ServiceAccount> account =
        admin_->RemoveServiceAccount(request->actor().member_id(), request->id());
    return Reply(account, [&](const ServiceAccount& value) { ToProto(value, response); });
  });
}

grpc::ServerUnaryReactor* AuthzService::ListServiceAccounts(
    grpc::CallbackServerContext* context, const v1::ListServiceAccountsRequest* request,
    v1::ListServiceAccountsResponse* response) {
  if (absl::Status s = CheckListing(request->actor(), request->page_token(), request->project());
      !s.ok()) {
    return Finish(context, s);
  }
  absl::Status allowed =
      request->project().empty()
          ? admin_->Authorize(request->actor().member_id(), "org.read")
          : admin_->Authorize(request->actor().member_id(), "settings.read", request->project());
  if (!allowed.ok()) return Finish(context, allowed);
  absl::StatusOr<OrgView> view = cache_->Current();
  if (!view.ok()) return Finish(context, view.status());
  absl::StatusOr<std::string> next = Page(
      view->state->service_accounts, request->page_size(), request->page_token(),
      {request->project(), request->include_removed() ? "removed" : ""},
      [&](const ServiceAccount& a) {
        if (a.removed_at.has_value() && !request->include_removed()) return false;
        return request->project().empty() || a.project == request->project();
      },
      [&](const ServiceAccount& a) { ToProto(a, response->add_service_accounts()); });
  if (!next.ok()) return Finish(context, next.status());
  response->set_next_page_token(*next);
  return Finish(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* AuthzService::GetServiceAccountPolicy(
    grpc::CallbackServerContext* context, const v1::GetServiceAccountPolicyRequest* request,
    v1::ServiceAccountPolicy* response) {
  if (absl::Status s = CheckIds(request->actor(), request->id()); !s.ok()) {
    return Finish(context, s);
  }
  absl::StatusOr<OrgView> view = cache_->Current();
  if (!view.ok()) return Finish(context, view.status());
  const ServiceAccount* account = view->state->FindServiceAccount(request->id());
  if (account == nullptr) {
    return Finish(context,
                  absl::NotFoundError(absl::StrCat("no service account ", Quoted(request->id()))));
  }
  absl::Status allowed =
      admin_->Authorize(request->actor().member_id(), "settings.read", account->project);
  if (!allowed.ok()) return Finish(context, allowed);
  PolicyDocument(*account, *view->state->FindProject(account->project), response);
  return Finish(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* AuthzService::PlanOrgFile(grpc::CallbackServerContext* context,
                                                    const v1::PlanOrgFileRequest* request,
                                                    v1::PlanOrgFileResponse* response) {
  if (absl::Status s = CheckActor(request->actor()); !s.ok()) return Finish(context, s);
  return pool_->Run(context, [this, request, response] {
    absl::StatusOr<OrgPlan> plan =
        admin_->PlanOrgFile(request->actor().member_id(), request->yaml());
    if (!plan.ok()) return ToGrpc(plan.status());
    ToProto(*plan, response->mutable_changes());
    response->set_text(plan->text);
    response->set_plan_fingerprint(plan->fingerprint);
    response->set_org_version(plan->org_version);
    for (const Project& p : plan->projects) ToProto(p, response->add_projects());
    for (const std::string& warning : plan->warnings) response->add_warnings(warning);
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* AuthzService::ApplyOrgFile(grpc::CallbackServerContext* context,
                                                     const v1::ApplyOrgFileRequest* request,
                                                     v1::ApplyOrgFileResponse* response) {
  if (absl::Status s = CheckActor(request->actor()); !s.ok()) return Finish(context, s);
  if (absl::Status s =
          CheckMaxBytes({{"plan_fingerprint", request->plan_fingerprint(), kMaxFingerprintBytes}});
      !s.ok()) {
    return Finish(context, s);
  }
  return pool_->Run(context, [this, context, request, response] {
    absl::StatusOr<OrgPlan> applied =
        admin_->ApplyOrgFile(request->actor().member_id(), request->yaml(),
                             request->plan_fingerprint(), request->reference());
    if (!applied.ok()) return ToGrpc(applied.status());
    ToProto(*applied, response->mutable_changes());
    response->set_text(applied->text);
    response->set_org_version(applied->org_version);
    for (const std::string& id : applied->offboard.members) {
      v1::Principal* p = response->add_offboard();
      p->set_kind(v1::PRINCIPAL_KIND_MEMBER);
      p->set_id(id);
    }
    for (const std::string& id : applied->offboard.service_accounts) {
      v1::Principal* p = response->add_offboard();
      p->set_kind(v1::PRINCIPAL_KIND_SERVICE_ACCOUNT);
      p->set_id(id);
    }
    bool listed = false;
    grpc::Status s = ListKeysToRevoke(*context, applied->removed_members,
                                      response->mutable_keys_to_revoke(), &listed);
    response->set_keys_listed(listed);
    return s;
  });
}

grpc::ServerUnaryReactor* AuthzService::ExportOrgFile(grpc::CallbackServerContext* context,
                                                      const v1::ExportOrgFileRequest* request,
                                                      v1::ExportOrgFileResponse* response) {
  if (absl::Status s = CheckActor(request->actor()); !s.ok()) return Finish(context, s);
  absl::StatusOr<std::string> yaml = admin_->ExportOrgFile(request->actor().member_id());
  if (!yaml.ok()) return Finish(context, yaml.status());
  response->set_yaml(*std::move(yaml));
  response->set_org_version(cache_->version());
  return Finish(context, absl::OkStatus());
}

grpc::ServerUnaryReactor* AuthzService::SyncIdpGroup(grpc::CallbackServerContext* context,
                                                     const v1::SyncIdpGroupRequest* request,
                                                     v1::SyncIdpGroupResponse* response) {
  if (absl::Status s = CheckActor(request->actor()); !s.ok()) return Finish(context, s);
  if (absl::Status s = CheckMaxBytes({{"group", request->group(), kMaxNameBytes}}); !s.ok()) {
    return Finish(context, s);
  }
  for (int i = 0; i < request->emails_size(); ++i) {
    if (request->emails(i).size() > kMaxEmailBytes) {
      return Finish(context, absl::InvalidArgumentError(absl::StrCat(
                                 "emails[", i, "]: longer than ", kMaxEmailBytes, " bytes")));
    }
  }
  return pool_->Run(context, [this, context, request, response] {
    absl::StatusOr<IdpSyncResult> result = admin_->SyncIdpGroup(
        request->actor().member_id(), request->group(),
        std::vector<std::string>(request->emails().begin(), request->emails().end()),
        request->allow_empty());
    if (!result.ok()) return ToGrpc(result.status());
    for (const std::string& id : result->provisioned) response->add_provisioned(id);
    for (const std::string& id : result->deprovisioned) response->add_deprovisioned(id);
    for (const std::string& id : result->offboard) response->add_offboard(id);
    response->set_org_version(result->org_version);
    bool listed = false;
    grpc::Status s = ListKeysToRevoke(*context, result->deprovisioned,
                                      response->mutable_keys_to_revoke(), &listed);
    response->set_keys_listed(listed);
    return s;
  });
}

grpc::Status AuthzService::ListKeysToRevoke(
    const grpc::ServerContextBase& context, const std::vector<std::string>& members,
    google::protobuf::RepeatedPtrField<v1::RevocableKey>* out, bool* listed) {
  *listed = false;
  if (keys_ == nullptr) return grpc::Status::OK;
  const absl::Time deadline = client::DownstreamDeadline(context, kKeyListingLimit);
  for (const std::string& member : members) {
    absl::StatusOr<std::vector<HeldKey>> held = keys_->KeysOf(member, deadline);
    if (!held.ok()) {
      return ToGrpc(absl::Status(
          held.status().code(),
          absl::StrCat("the change is made (every decision denies the keys of ", member,
                       ") but listing the keys to revoke failed; repeating the request is "
                       "safe: ",
                       held.status().message())));
    }
    for (const HeldKey& key : *held) {
      v1::RevocableKey* k = out->Add();
      k->set_key_id(key.key_id);
      k->set_owner_id(member);
      k->set_project(key.project);
    }
  }
  *listed = true;
  return grpc::Status::OK;
}

}  // namespace policy::authz
