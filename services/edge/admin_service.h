#ifndef POLICY_SERVICES_EDGE_ADMIN_SERVICE_H_
#define POLICY_SERVICES_EDGE_ADMIN_SERVICE_H_

#include <atomic>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/time/time.h"
#include "common/server/blocking_pool.h"
#include "policy/audit/v1/audit.grpc.pb.h"
#include "policy/authz/v1/authz.grpc.pb.h"
#include "policy/edge/v1/admin.grpc.pb.h"
#include "policy/keys/v1/keys.grpc.pb.h"
#include "policy/pii/v1/pii.grpc.pb.h"
#include "policy/region/v1/region.grpc.pb.h"
#include "services/edge/downstream.h"

namespace policy::edge {

// policy.edge.v1.AdminService: authenticates the admin key, has authz authorise the acting
// member, then calls the services (see admin.proto). Administration is rare and waits on
// several services in turn, so each call runs on the blocking pool with blocking stubs, every
// downstream call carrying the caller's deadline (at most `max_call_time`). The key is
// verified before a call takes a place in the pool's queue (none: refused at once);
// AcceptInvitation, which needs no key, is one asynchronous call to authz with a bound of its
// own instead. `redaction` is the deployment's redaction policy (FlowOptions::redaction), which
// projects' own PII rules are checked against.
class AdminService final : public v1::AdminService::CallbackService {
 public:
  AdminService(const DownstreamChannels& channels, server::BlockingPool* pool,
               absl::Duration max_call_time, pii::v1::RedactionPolicy redaction = {});

  grpc::ServerUnaryReactor* RemoveMember(grpc::CallbackServerContext* context,
                                         const v1::RemoveMemberRequest* request,
                                         v1::RemoveMemberResponse* response) override;
  grpc::ServerUnaryReactor* PlanOrgFile(grpc::CallbackServerContext* context,
                                        const v1::PlanOrgFileRequest* request,
                                        authz::v1::PlanOrgFileResponse* response) override;
  grpc::ServerUnaryReactor* ApplyOrgFile(grpc::CallbackServerContext* context,
                                         const v1::ApplyOrgFileRequest* request,
                                         v1::ApplyOrgFileResponse* response) override;
  grpc::ServerUnaryReactor* SyncIdpGroup(grpc::CallbackServerContext* context,
                                         const v1::SyncIdpGroupRequest* request,
                                         v1::SyncIdpGroupResponse* response) override;
  grpc::ServerUnaryReactor* ExportOrgFile(grpc::CallbackServerContext* context,
                                          const authz::v1::ExportOrgFileRequest* request,
                                          authz::v1::ExportOrgFileResponse* response) override;
  grpc::ServerUnaryReactor* ListMembers(grpc::CallbackServerContext* context,
                                        const v1::ListMembersRequest* request,
                                        authz::v1::ListMembersResponse* response) override;
  grpc::ServerUnaryReactor* AddMember(grpc::CallbackServerContext* context,
                                      const authz::v1::AddMemberRequest* request,
                                      authz::v1::Member* response) override;
  grpc::ServerUnaryReactor* SetMemberRoles(grpc::CallbackServerContext* context,
                                           const authz::v1::SetMemberRolesRequest* request,
                                           authz::v1::Member* response) override;
  grpc::ServerUnaryReactor* CreateInvitation(grpc::CallbackServerContext* context,
                                             const authz::v1::CreateInvitationRequest* request,
                                             authz::v1::Invitation* response) override;
  grpc::ServerUnaryReactor* RevokeInvitation(grpc::CallbackServerContext* context,
                                             const authz::v1::RevokeInvitationRequest* request,
                                             authz::v1::Invitation* response) override;
  grpc::ServerUnaryReactor* AcceptInvitation(grpc::CallbackServerContext* context,
                                             const authz::v1::AcceptInvitationRequest* request,
                                             authz::v1::Member* response) override;
  grpc::ServerUnaryReactor* ListInvitations(grpc::CallbackServerContext* context,
                                            const authz::v1::ListInvitationsRequest* request,
                                            authz::v1::ListInvitationsResponse* response) override;
  grpc::ServerUnaryReactor* ListProjects(grpc::CallbackServerContext* context,
                                         const authz::v1::ListProjectsRequest* request,
                                         authz::v1::ListProjectsResponse* response) override;
  grpc::ServerUnaryReactor* CreateProject(grpc::CallbackServerContext* context,
                                          const authz::v1::CreateProjectRequest* request,
                                          authz::v1::Project* response) override;
  grpc::ServerUnaryReactor* UpdateProject(grpc::CallbackServerContext* context,
                                          const authz::v1::UpdateProjectRequest* request,
                                          authz::v1::Project* response) override;
  grpc::ServerUnaryReactor* ListEntityTypes(grpc::CallbackServerContext* context,
                                            const v1::ListEntityTypesRequest* request,
                                            v1::ListEntityTypesResponse* response) override;
  grpc::ServerUnaryReactor* ArchiveProject(grpc::CallbackServerContext* context,
                                           const authz::v1::ArchiveProjectRequest* request,
                                           authz::v1::Project* response) override;
  grpc::ServerUnaryReactor* ListServiceAccounts(
      grpc::CallbackServerContext* context, const authz::v1::ListServiceAccountsRequest* request,
      authz::v1::ListServiceAccountsResponse* response) override;
  grpc::ServerUnaryReactor* CreateServiceAccount(
      grpc::CallbackServerContext* context, const authz::v1::CreateServiceAccountRequest* request,
      authz::v1::ServiceAccount* response) override;
  grpc::ServerUnaryReactor* RemoveServiceAccount(
      grpc::CallbackServerContext* context, const authz::v1::RemoveServiceAccountRequest* request,
      v1::RemoveServiceAccountResponse* response) override;
  grpc::ServerUnaryReactor* CreateKey(grpc::CallbackServerContext* context,
                                      const keys::v1::CreateKeyRequest* request,
                                      keys::v1::CreateKeyResponse* response) override;
  grpc::ServerUnaryReactor* RotateKey(grpc::CallbackServerContext* context,
                                      const keys::v1::RotateKeyRequest* request,
                                      keys::v1::RotateKeyResponse* response) override;
  grpc::ServerUnaryReactor* RevokeKey(grpc::CallbackServerContext* context,
                                      const keys::v1::RevokeKeyRequest* request,
                                      keys::v1::RevokeKeyResponse* response) override;
  grpc::ServerUnaryReactor* ListKeys(grpc::CallbackServerContext* context,
                                     const keys::v1::ListKeysRequest* request,
                                     keys::v1::ListKeysResponse* response) override;
  grpc::ServerUnaryReactor* GetRotationReport(
      grpc::CallbackServerContext* context, const keys::v1::GetRotationReportRequest* request,
      keys::v1::GetRotationReportResponse* response) override;
  grpc::ServerUnaryReactor* GetInventoryReport(
      grpc::CallbackServerContext* context, const keys::v1::GetInventoryReportRequest* request,
      keys::v1::GetInventoryReportResponse* response) override;
  grpc::ServerUnaryReactor* ListEndpoints(grpc::CallbackServerContext* context,
                                          const region::v1::ListEndpointsRequest* request,
                                          region::v1::ListEndpointsResponse* response) override;
  grpc::ServerUnaryReactor* CreateEndpoint(grpc::CallbackServerContext* context,
                                           const region::v1::CreateEndpointRequest* request,
                                           region::v1::CreateEndpointResponse* response) override;
  grpc::ServerUnaryReactor* UpdateEndpoint(grpc::CallbackServerContext* context,
                                           const region::v1::UpdateEndpointRequest* request,
                                           region::v1::UpdateEndpointResponse* response) override;
  grpc::ServerUnaryReactor* DeleteEndpoint(grpc::CallbackServerContext* context,
                                           const region::v1::DeleteEndpointRequest* request,
                                           region::v1::DeleteEndpointResponse* response) override;
  grpc::ServerUnaryReactor* GetHealthReport(grpc::CallbackServerContext* context,
                                            const region::v1::GetHealthReportRequest* request,
                                            region::v1::GetHealthReportResponse* response) override;
  grpc::ServerUnaryReactor* QueryAudit(grpc::CallbackServerContext* context,
                                       const audit::v1::QueryEntriesRequest* request,
                                       audit::v1::QueryEntriesResponse* response) override;
  grpc::ServerUnaryReactor* VerifyLedger(grpc::CallbackServerContext* context,
                                         const audit::v1::VerifyLedgerRequest* request,
                                         audit::v1::VerifyLedgerResponse* response) override;
  grpc::ServerUnaryReactor* GetComplianceSummary(
      grpc::CallbackServerContext* context, const audit::v1::GetComplianceSummaryRequest* request,
      audit::v1::GetComplianceSummaryResponse* response) override;
  grpc::ServerUnaryReactor* GetCheckpoint(grpc::CallbackServerContext* context,
                                          const audit::v1::GetCheckpointRequest* request,
                                          audit::v1::GetCheckpointResponse* response) override;
  grpc::ServerUnaryReactor* ListCheckpoints(grpc::CallbackServerContext* context,
                                            const audit::v1::ListCheckpointsRequest* request,
                                            audit::v1::ListCheckpointsResponse* response) override;
  grpc::ServerUnaryReactor* GetInclusionProof(
      grpc::CallbackServerContext* context, const audit::v1::GetInclusionProofRequest* request,
      audit::v1::GetInclusionProofResponse* response) override;
  grpc::ServerUnaryReactor* GetConsistencyProof(
      grpc::CallbackServerContext* context, const audit::v1::GetConsistencyProofRequest* request,
      audit::v1::GetConsistencyProofResponse* response) override;
  grpc::ServerUnaryReactor* ExportSubject(grpc::CallbackServerContext* context,
                                          const audit::v1::ExportSubjectRequest* request,
                                          audit::v1::ExportSubjectResponse* response) override;
  grpc::ServerUnaryReactor* ForgetSubject(grpc::CallbackServerContext* context,
                                          const audit::v1::ForgetSubjectRequest* request,
                                          audit::v1::ForgetSubjectResponse* response) override;

 private:
  // One call's acting member and deadline.
  struct Caller {
    std::string member;
    absl::Time deadline;
  };

  // The admin key in `context`'s "authorization: Bearer" metadata, or UNAUTHENTICATED when
  // there is none, or more than one authorization entry (which of them would be meant).
  static grpc::Status AdminKeyOf(const grpc::CallbackServerContext& context, std::string* secret);
  // Given keys' answer to verifying the caller's key (`verify`, `key`): fills `caller`'s
  // member with the key's owner, or says why the key does not authenticate an administrator.
  static grpc::Status Authenticated(const grpc::Status& verify,
                                    const keys::v1::VerifyKeyResponse& key, Caller* caller);
  // OK when authz lets `caller` do `action` (in `project`, when not empty);
  // PERMISSION_DENIED naming the action otherwise.
  grpc::Status Authorize(const Caller& caller, const std::string& action,
                         const std::string& project);
  // Authorises issuing the key `request` describes, and completes it. A key lets whoever holds
  // its secret act as its owner, so:
  //  - admin keys need members.manage, and owners.manage when owned by another member;
  //  - project keys need keys.manage in the project, and owners.manage when owned by another
  //    member; they live in the project's environment;
  //  - service-account keys need keys.manage in the account's project; they live in the
  //    account's environment, within its max_key_lifetime (the default lifetime when none is
  //    asked for).
  // An unspecified environment becomes the holder's.
  grpc::Status AuthorizeIssue(const Caller& caller, keys::v1::CreateKeyRequest* request);
  enum class KeyChange { kRotate, kRevoke };
  // Authorises `change` of an existing key. A member may revoke a key they hold themselves
  // whatever their roles. Otherwise: keys.manage in its project (members.manage for admin
  // keys); rotating another member's key (which hands the caller a secret acting as them)
  // needs owners.manage, and so does revoking an owner's key. Rotating a service-account key
  // caps its successor's lifetime in `rotate` as AuthorizeIssue does.
  grpc::Status AuthorizeKey(const Caller& caller, const std::string& key_id, KeyChange change,
                            keys::v1::RotateKeyRequest* rotate);
  // Member `id`, read as the caller.
  grpc::Status MemberOf(const Caller& caller, const std::string& id, authz::v1::Member* member);
  // Every member, removed or not, with e-mail address `email` (compared without case), read as
  // the caller, appended to `members`; never another, whatever authz answers.
  grpc::Status MembersWithEmail(const Caller& caller, const std::string& email,
                                std::vector<authz::v1::Member>* members);
  // audit's ForgetSubject of `subject` for the caller's `request`: under the request's id when
  // `derived_id_kind` is empty, else under "<kind>:" and the ShortDigest of the request's id
  // followed by `derived_id_of`, so that a retry repeats this erasure too.
  grpc::Status Forget(const Caller& caller, const audit::v1::ForgetSubjectRequest& request,
                      const std::string& subject, absl::string_view derived_id_kind,
                      absl::string_view derived_id_of, audit::v1::ForgetSubjectResponse* forgotten);
  // Erases removed `member`'s personal data in the organisation (authz EraseMember); `erased`
  // says whether it is erased (now or before). An active member is left as they are, and so is
  // everyone while authz runs a release without EraseMember.
  grpc::Status EraseMember(const Caller& caller, const authz::v1::Member& member, bool* erased);
  // authz's Check of `member` doing `action` in `project` ("" for the organisation), under the
  // caller's deadline; `grants_only`: by their standing alone (CheckRequest.grants_only).
  grpc::Status CheckMember(const Caller& caller, const std::string& member,
                           const std::string& action, const std::string& project, bool grants_only,
                           authz::v1::CheckResponse* decision);
  // OK when `member` may use each of `scopes` in `project` by their standing (authz's Check,
  // grants_only): FAILED_PRECONDITION naming the first they may not, since a key for it would
  // be refused on every call. For a member's project key issued or rotated.
  grpc::Status OwnerMayUse(const Caller& caller, const std::string& member,
                           const std::string& project,
                           const google::protobuf::RepeatedPtrField<std::string>& scopes);
  // Project `id`, read as the caller.
  grpc::Status ProjectOf(const Caller& caller, const std::string& id, authz::v1::Project* project);
  // The live service account `owner` names, read as the caller.
  grpc::Status ServiceAccountOf(const Caller& caller, const keys::v1::Principal& owner,
                                authz::v1::ServiceAccount* account);
  // The id of the organisation's ledger entry of member `member_id`'s removal, which authz
  // `removed` answered, in `audit_id`: written as the caller's, under authz's request id for it,
  // when this call removed them (removed_now), read by that request id otherwise, and left empty
  // when it has not reached the ledger within a short wait.
  grpc::Status RemovalEntry(const Caller& caller, const std::string& member_id,
                            const authz::v1::RemoveMemberResponse& removed, std::string* audit_id);
  // Revokes every key of removed principal `id` (a member or a service account, by `type`),
  // idempotent on `request_id`; appends the revoked keys to `revoked`.
  grpc::Status RevokeKeysOf(const Caller& caller, keys::v1::PrincipalType type,
                            const std::string& id, const std::string& request_id,
                            google::protobuf::RepeatedPtrField<keys::v1::Key>* revoked);
  // Offboards what an organisation change left at `org_version` removed: every key of the
  // principals in `removed_now`, and of the others in `offboard` (removed in the day before),
  // the keys still verifying, so that a retry of a change cut short after it committed
  // finishes the job. Each revocation's request id is the caller's, the principal's and the
  // version's, so that a retry repeats nothing; appends the keys revoked to `revoked`.
  using Principals = std::set<std::pair<keys::v1::PrincipalType, std::string>>;
  grpc::Status Offboard(const Caller& caller, const Principals& removed_now,
                        const Principals& offboard, int64_t org_version,
                        google::protobuf::RepeatedPtrField<keys::v1::Key>* revoked);
  // Sets `holds` to whether principal `id` (of `type`) holds a key that still verifies.
  grpc::Status HoldsVerifyingKeys(const Caller& caller, keys::v1::PrincipalType type,
                                  const std::string& id, bool* holds);
  // OK when `project` states no PII rules, or the caller may `action` (in the project, for
  // project.update) and the rules hold (CheckProjectRules): a rule pii could not apply
  // would fail every decision in the project.
  grpc::Status CheckPiiRules(const Caller& caller, const std::string& action,
                             const authz::v1::Project& project);
  // authz's plan of organisation file `yaml` as the caller, with the rules of each project it
  // creates or changes held as CheckPiiRules holds them; `rules_checked`: whether any of
  // those projects states rules (pii was asked).
  grpc::Status PlanOrgFileAsCaller(const Caller& caller, const std::string& yaml,
                                   authz::v1::PlanOrgFileResponse* plan, bool* rules_checked);
  // Forwards `request` to authz's `method` with the caller as its actor (authz records the
  // changes it makes), once `check` (when given) is OK for the caller.
  template <typename Request, typename Response>
  grpc::ServerUnaryReactor* AsActor(grpc::CallbackServerContext* context, const Request* request,
                                    Response* response,
                                    grpc::Status (authz::v1::AuthzService::Stub::*method)(
                                        grpc::ClientContext*, const Request&, Response*),
                                    std::function<grpc::Status(const Caller&)> check = nullptr);
  // Authorises `action` in the organisation, then calls `method` of audit with `request`.
  // A call that `walks_ledger` (VerifyLedger, GetComplianceSummary: time in proportion to a
  // whole ledger) waits for audit up to its caller's deadline, at most kMaxLedgerWalkTime
  // rather than max_call_time; at most kMaxLedgerWalks of them at once hold this edge's admin
  // threads (RESOURCE_EXHAUSTED beyond).
  template <typename Request, typename Response>
  grpc::ServerUnaryReactor* ForAuditor(grpc::CallbackServerContext* context,
                                       const std::string& action, const Request* request,
                                       Response* response,
                                       grpc::Status (audit::v1::AuditService::Stub::*method)(
                                           grpc::ClientContext*, const Request&, Response*),
                                       bool walks_ledger = false);
  // Runs `work` on the pool for an authenticated caller: a call without a key is refused at
  // once, and its key verified before it takes a place in the pool's queue.
  grpc::ServerUnaryReactor* Run(grpc::CallbackServerContext* context,
                                std::function<grpc::Status(const Caller&)> work);

  std::unique_ptr<keys::v1::KeyService::Stub> keys_;
  std::unique_ptr<authz::v1::AuthzService::Stub> authz_;
  std::unique_ptr<pii::v1::PiiService::Stub> pii_;
  std::unique_ptr<region::v1::RegionService::Stub> region_;
  std::unique_ptr<audit::v1::AuditService::Stub> audit_;
  server::BlockingPool* const pool_;
  const absl::Duration max_call_time_;
  static constexpr absl::Duration kMaxLedgerWalkTime = absl::Minutes(10);
  static constexpr int kMaxLedgerWalks = 1;
  std::atomic<int> ledger_walks_{0};
  const pii::v1::RedactionPolicy redaction_;
  // AcceptInvitation calls in progress (they need no key): at most kMaxAcceptsInFlight.
  static constexpr int kMaxAcceptsInFlight = 4;
  std::atomic<int> accepting_{0};
};

}  // namespace policy::edge

#endif  // POLICY_SERVICES_EDGE_ADMIN_SERVICE_H_
