#ifndef POLICY_SERVICES_AUTHZ_AUTHZ_SERVICE_H_
#define POLICY_SERVICES_AUTHZ_AUTHZ_SERVICE_H_

#include "absl/container/flat_hash_map.h"
#include "common/clock/clock.h"
#include "common/server/blocking_pool.h"
#include "policy/authz/v1/authz.grpc.pb.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"
#include "services/authz/authorizer.h"
#include "services/authz/key_directory.h"
#include "services/authz/org_admin.h"
#include "services/authz/org_cache.h"

namespace policy::authz {

// policy.authz.v1.AuthzService over gRPC: translation only. Check and the reads answer
// inline from memory (a check whose rate-limit leases run out goes to the blocking pool);
// everything that writes or waits on PostgreSQL runs on the blocking pool.
class AuthzService final : public v1::AuthzService::CallbackService {
 public:
  // `keys` may be null: removals then leave listing the keys to revoke to the caller.
  AuthzService(Authorizer* authorizer, OrgAdmin* admin, const OrgCache* cache, KeyDirectory* keys,
               server::BlockingPool* pool, Clock* clock, prometheus::Registry* registry);

#define POLICY_AUTHZ_RPC(name, request, response)                                                  \
  grpc::ServerUnaryReactor* name(grpc::CallbackServerContext* context, const v1::request* request, \
                                 v1::response* response) override;
  POLICY_AUTHZ_RPC(Check, CheckRequest, CheckResponse)
  POLICY_AUTHZ_RPC(ReportUsage, ReportUsageRequest, ReportUsageResponse)
  POLICY_AUTHZ_RPC(CreateProject, CreateProjectRequest, Project)
  POLICY_AUTHZ_RPC(GetProject, GetProjectRequest, Project)
  POLICY_AUTHZ_RPC(UpdateProject, UpdateProjectRequest, Project)
  POLICY_AUTHZ_RPC(ArchiveProject, ArchiveProjectRequest, Project)
  POLICY_AUTHZ_RPC(ListProjects, ListProjectsRequest, ListProjectsResponse)
  POLICY_AUTHZ_RPC(AddMember, AddMemberRequest, Member)
  POLICY_AUTHZ_RPC(GetMember, GetMemberRequest, Member)
  POLICY_AUTHZ_RPC(SetMemberRoles, SetMemberRolesRequest, Member)
  POLICY_AUTHZ_RPC(RemoveMember, RemoveMemberRequest, RemoveMemberResponse)
  POLICY_AUTHZ_RPC(EraseMember, EraseMemberRequest, Member)
  POLICY_AUTHZ_RPC(ListMembers, ListMembersRequest, ListMembersResponse)
  POLICY_AUTHZ_RPC(CreateInvitation, CreateInvitationRequest, Invitation)
  POLICY_AUTHZ_RPC(AcceptInvitation, AcceptInvitationRequest, Member)
  POLICY_AUTHZ_RPC(RevokeInvitation, RevokeInvitationRequest, Invitation)
  POLICY_AUTHZ_RPC(ListInvitations, ListInvitationsRequest, ListInvitationsResponse)
  POLICY_AUTHZ_RPC(CreateServiceAccount, CreateServiceAccountRequest, ServiceAccount)
  POLICY_AUTHZ_RPC(GetServiceAccount, GetServiceAccountRequest, ServiceAccount)
  POLICY_AUTHZ_RPC(UpdateServiceAccount, UpdateServiceAccountRequest, ServiceAccount)
  POLICY_AUTHZ_RPC(RemoveServiceAccount, RemoveServiceAccountRequest, ServiceAccount)
  POLICY_AUTHZ_RPC(ListServiceAccounts, ListServiceAccountsRequest, ListServiceAccountsResponse)
  POLICY_AUTHZ_RPC(GetServiceAccountPolicy, GetServiceAccountPolicyRequest, ServiceAccountPolicy)
  POLICY_AUTHZ_RPC(PlanOrgFile, PlanOrgFileRequest, PlanOrgFileResponse)
  POLICY_AUTHZ_RPC(ApplyOrgFile, ApplyOrgFileRequest, ApplyOrgFileResponse)
  POLICY_AUTHZ_RPC(ExportOrgFile, ExportOrgFileRequest, ExportOrgFileResponse)
  POLICY_AUTHZ_RPC(SyncIdpGroup, SyncIdpGroupRequest, SyncIdpGroupResponse)
#undef POLICY_AUTHZ_RPC

 private:
  void CountDecision(const Authorization& authorization);
  // The keys of removed `members` into `out`, setting *listed, when keys_ is configured; an
  // error says the removal is made and the keys could not be listed.
  grpc::Status ListKeysToRevoke(const grpc::ServerContextBase& context,
                                const std::vector<std::string>& members,
                                google::protobuf::RepeatedPtrField<v1::RevocableKey>* out,
                                bool* listed);
  // Reply() for a member, with its group grants.
  grpc::Status ReplyMember(const absl::StatusOr<Member>& member, v1::Member* out) const;

  Authorizer* const authorizer_;
  OrgAdmin* const admin_;
  const OrgCache* const cache_;
  KeyDirectory* const keys_;
  server::BlockingPool* const pool_;
  Clock* const clock_;
  prometheus::Counter* allowed_;
  absl::flat_hash_map<std::string, prometheus::Counter*> denied_;  // Read-only after start.
  // Rate-limit denials by the limit that refused ("rate_limit.project.rpm", ...).
  absl::flat_hash_map<std::string, prometheus::Counter*> rate_limited_;
};

}  // namespace policy::authz

#endif  // POLICY_SERVICES_AUTHZ_AUTHZ_SERVICE_H_
