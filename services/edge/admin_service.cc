#include "services/edge/admin_service.h"

#include <algorithm>
#include <iterator>
#include <memory>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "common/client/channel.h"
#include "common/ledger/ledger_record.h"
#include "common/proto/well_known.h"
#include "services/edge/conventions.h"
#include "services/edge/downstream_status.h"
#include "services/edge/org_plan.h"
#include "services/edge/pii_rules.h"
#include "services/edge/proto_convert.h"

namespace policy::edge {
namespace {

using grpc::Status;
using grpc::StatusCode;

constexpr size_t kMaxAdminRequestIdBytes = 100;

// An answer from `service`: what it refused passes through (NOT_FOUND, FAILED_PRECONDITION,
// ALREADY_EXISTS, ... name the problem); a failure to answer is the dependency's, with its own
// words for an administrator (`with_detail`) and without them for anyone else.
Status Forwarded(absl::string_view service, const Status& s, absl::Time deadline,
                 bool with_detail = true) {
  if (s.ok() || !FailedToAnswer(s.error_code())) return s;
  return DependencyFailure(service, s, deadline, with_detail);
}

// Calls `method` of `stub` with `deadline`; its answer as Forwarded says.
template <typename Stub, typename Request, typename Response>
Status Call(absl::string_view service, Stub& stub,
            Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
            const Request& request, Response* response, absl::Time deadline) {
  grpc::ClientContext call;
  client::SetDeadline(call, deadline);
  return Forwarded(service, (stub.*method)(&call, request, response), deadline);
}

// How long a plan waits for region's endpoints, against which it judges the projects' models.
constexpr absl::Duration kPlanEndpointsWait = absl::Seconds(1);

// How long RemoveMember waits for the ledger entry of a removal made before (authz's outbox
// delivers it, usually within its relay's poll interval).
constexpr absl::Duration kRemovalEntryWait = absl::Seconds(2);

// `s` with keys' name for a request id (`internal`, CallerRequestId's) replaced by the
// caller's own (`caller`), so that an error names the id the caller sent.
Status InCallerTerms(const Status& s, const std::string& internal, const std::string& caller) {
  if (s.ok() || internal.empty() || !absl::StrContains(s.error_message(), internal)) return s;
  return Status(s.error_code(), absl::StrReplaceAll(s.error_message(), {{internal, caller}}),
                s.error_details());
}

// A request that hands out a secret or changes several services must be safe to retry.
Status RequireRequestId(const std::string& request_id) {
  if (request_id.empty()) {
    return Status(StatusCode::INVALID_ARGUMENT, "request_id: required (it makes retries safe)");
  }
  if (absl::Status s = CheckRequestId(request_id, "request_id", kMaxAdminRequestIdBytes); !s.ok()) {
    return EdgeStatus(s);
  }
  return Status::OK;
}

// The request id under which keys remembers an administrator's key request: the caller's
// own, so that a retry returns the secret to the caller who asked and to no one else.
std::string CallerRequestId(const std::string& member, const std::string& request_id) {
  if (request_id.empty()) return request_id;
  return absl::StrCat("admin:",
                      ledger::ShortDigest(absl::StrCat(member.size(), ":", member, request_id)));
}

// A project or service-account key lives in its holder's environment (`environment`, a
// lower-case name; `holder` names it for the message): an unspecified environment becomes
// it, another one is refused.
Status KeyEnvironment(const std::string& environment, absl::string_view holder,
                      keys::v1::CreateKeyRequest* request) {
  // The enum's names are the environments' (EnvironmentName) in upper case, prefixed.
  keys::v1::Environment wanted = keys::v1::ENVIRONMENT_UNSPECIFIED;
  if (environment.empty() ||
      !keys::v1::Environment_Parse(absl::StrCat("ENVIRONMENT_", absl::AsciiStrToUpper(environment)),
                                   &wanted)) {
    return Status(StatusCode::FAILED_PRECONDITION,
                  absl::StrCat(holder, " has no environment keys can live in"));
  }
  if (request->environment() == keys::v1::ENVIRONMENT_UNSPECIFIED) {
    request->set_environment(wanted);
  } else if (request->environment() != wanted) {
    return Status(StatusCode::INVALID_ARGUMENT,
                  absl::StrCat("environment: ", holder, "'s keys live in ", environment));
  }
  return Status::OK;
}

// Keeps the key `request` (a CreateKeyRequest or RotateKeyRequest) asks for within its service
// account's max_key_lifetime (none: no cap here): a longer `ttl`, or an `expire_time` (when
// not null) further off, is refused; a request stating neither gets the account's maximum as
// its `ttl`. A `ttl` stated, 0 included, is left for keys to judge.
template <typename KeyRequest>
Status CapLifetime(const authz::v1::ServiceAccount& account,
                   const google::protobuf::Timestamp* expire_time, KeyRequest* request) {
  absl::StatusOr<absl::Duration> max =
      proto::DurationFromProto(account.max_key_lifetime(), "max_key_lifetime");
  if (!max.ok() || *max <= absl::ZeroDuration()) return Status::OK;
  const Status too_long(StatusCode::INVALID_ARGUMENT,
                        absl::StrCat("ttl: service account ", account.id(),
                                     " allows keys of at most ", absl::FormatDuration(*max)));
  if (request->has_ttl()) {
    absl::StatusOr<absl::Duration> asked = proto::DurationFromProto(request->ttl(), "ttl");
    if (!asked.ok()) return EdgeStatus(asked.status());
    if (*asked > *max) return too_long;
  }
  if (expire_time != nullptr) {
    absl::StatusOr<absl::Time> until = proto::TimeFromProto(*expire_time, "expire_time");
    if (!until.ok()) return EdgeStatus(until.status());
    if (*until > absl::Now() + *max) return too_long;
  }
  if (!request->has_ttl() && expire_time == nullptr) {
    proto::SetDuration(*max, request->mutable_ttl());
  }
  return Status::OK;
}

// Whether `change` removes an entity of `kind` ("member", "service_account").
bool Removes(const authz::v1::EntityChange& change, absl::string_view kind) {
  if (change.kind() != kind) return false;
  if (change.op() == "delete") return true;
  for (const authz::v1::FieldChange& field : change.fields()) {
    if (field.field() == "removed_at" && field.before().empty() && !field.after().empty()) {
      return true;
    }
  }
  return false;
}

}  // namespace

AdminService::AdminService(const DownstreamChannels& channels, server::BlockingPool* pool,
                           absl::Duration max_call_time, pii::v1::RedactionPolicy redaction)
    : keys_(keys::v1::KeyService::NewStub(channels.keys)),
      authz_(authz::v1::AuthzService::NewStub(channels.authz)),
      pii_(pii::v1::PiiService::NewStub(channels.pii)),
      region_(region::v1::RegionService::NewStub(channels.region)),
      audit_(audit::v1::AuditService::NewStub(channels.audit)),
      pool_(pool),
      max_call_time_(max_call_time),
      redaction_(std::move(redaction)) {}

Status AdminService::AdminKeyOf(const grpc::CallbackServerContext& context, std::string* secret) {
  const auto& metadata = context.client_metadata();
  auto [it, end] = metadata.equal_range("authorization");
  if (it != end && std::next(it) != end) {
    return Status(StatusCode::UNAUTHENTICATED,
                  "more than one authorization entry in the metadata: send one admin key");
  }
  if (it != end) *secret = BearerToken(absl::string_view(it->second.data(), it->second.size()));
  if (it == end || secret->empty()) {
    return Status(StatusCode::UNAUTHENTICATED,
                  "an admin key is required in the metadata: authorization: Bearer psk_admin_...");
  }
  return Status::OK;
}

Status AdminService::Authenticated(const Status& verify, const keys::v1::VerifyKeyResponse& key,
                                   Caller* caller) {
  if (!verify.ok()) return KeyFailure(verify, caller->deadline, "admin key");
  if (key.key().kind() != keys::v1::KEY_KIND_ADMIN) {
    return Status(StatusCode::PERMISSION_DENIED, "administration needs an admin key");
  }
  caller->member = key.key().owner().id();
  return Status::OK;
}

Status AdminService::CheckMember(const Caller& caller, const std::string& member,
                                 const std::string& action, const std::string& project,
                                 bool grants_only, authz::v1::CheckResponse* decision) {
  authz::v1::CheckRequest check;
  check.mutable_principal()->set_kind(authz::v1::PRINCIPAL_KIND_MEMBER);
  check.mutable_principal()->set_id(member);
  check.set_project(project);
  check.set_action(action);
  check.set_grants_only(grants_only);
  return Call("authz", *authz_, &authz::v1::AuthzService::Stub::Check, check, decision,
              caller.deadline);
}

Status AdminService::Authorize(const Caller& caller, const std::string& action,
                               const std::string& project) {
  authz::v1::CheckResponse decision;
  if (Status s =
          CheckMember(caller, caller.member, action, project, /*grants_only=*/false, &decision);
      !s.ok()) {
    return s;
  }
  // As authz answers its own administration calls: a project that does not exist is not
  // found (a typo), not a role the caller lacks.
  if (decision.reason() == "PROJECT_NOT_FOUND") {
    return Status(StatusCode::NOT_FOUND, absl::StrCat("no project '", project, "'"));
  }
  if (decision.reason() == "PROJECT_ARCHIVED") {
    return Status(StatusCode::FAILED_PRECONDITION,
                  absl::StrCat("project ", project,
                               " is archived: nothing but reading its "
                               "settings happens in it"));
  }
  if (decision.verdict() != authz::v1::VERDICT_ALLOW) {
    // As authz says it of its own administration calls.
    return Status(
        StatusCode::PERMISSION_DENIED,
        absl::StrCat("member '", caller.member, "' may not ", action,
                     project.empty() ? "" : absl::StrCat(" in ", project), " (",
                     decision.reason() == "PERMISSION_DENIED" ? "no role of theirs grants it"
                     : decision.reason() == "UNKNOWN_PRINCIPAL"
                         ? "UNKNOWN_PRINCIPAL: not a member of the organisation"
                         : decision.reason(),
                     ")"));
  }
  return Status::OK;
}

Status AdminService::AuthorizeIssue(const Caller& caller, keys::v1::CreateKeyRequest* request) {
  const keys::v1::Principal& owner = request->owner();
  const bool own = owner.type() == keys::v1::PRINCIPAL_TYPE_MEMBER && owner.id() == caller.member;
  if (owner.type() == keys::v1::PRINCIPAL_TYPE_MEMBER && !own &&
      request->kind() != keys::v1::KEY_KIND_SERVICE_ACCOUNT) {
    if (Status s = Authorize(caller, "owners.manage", ""); !s.ok()) return s;
    // A key for nobody would be an orphan credential.
    authz::v1::Member member;
    if (Status s = MemberOf(caller, owner.id(), &member); !s.ok()) return s;
    if (member.has_removed_at()) {
      return Status(StatusCode::FAILED_PRECONDITION,
                    absl::StrCat("owner: member ", member.id(), " was removed"));
    }
  }
  switch (request->kind()) {
    case keys::v1::KEY_KIND_ADMIN:
      return Authorize(caller, "members.manage", "");
    case keys::v1::KEY_KIND_PROJECT: {
      if (Status s = Authorize(caller, "keys.manage", request->project()); !s.ok()) return s;
      authz::v1::Project project;
      if (Status s = ProjectOf(caller, request->project(), &project); !s.ok()) return s;
      if (owner.type() == keys::v1::PRINCIPAL_TYPE_MEMBER &&
          project.key_holders() == authz::v1::KEY_HOLDERS_SERVICE_ACCOUNTS) {
        return Status(StatusCode::FAILED_PRECONDITION,
                      absl::StrCat("owner: project ", project.id(),
                                   "'s keys are held by its service accounts only (key_holders); "
                                   "issue a service-account key"));
      }
      if (owner.type() == keys::v1::PRINCIPAL_TYPE_MEMBER) {
        if (Status s = OwnerMayUse(caller, owner.id(), project.id(), request->scopes()); !s.ok()) {
          return s;
        }
      }
      return KeyEnvironment(project.environment(), "the project", request);
    }
    case keys::v1::KEY_KIND_SERVICE_ACCOUNT: {
      // Without a project named, the account's. An account that does not exist and one the
      // caller may not read are refused alike, so that no caller learns which accounts exist
      // or where.
      authz::v1::ServiceAccount account;
      if (request->project().empty()) {
        if (Status s = ServiceAccountOf(caller, owner, &account); !s.ok()) {
          if (s.error_code() != StatusCode::NOT_FOUND &&
              s.error_code() != StatusCode::PERMISSION_DENIED) {
            return s;
          }
          return Status(
              StatusCode::NOT_FOUND,
              absl::StrCat("owner: no service account '", owner.id(), "' that member '",
                           caller.member, "' may read; name its project to be told more"));
        }
        request->set_project(account.project());
      }
      if (Status s = Authorize(caller, "keys.manage", request->project()); !s.ok()) return s;
      if (Status s = ServiceAccountOf(caller, owner, &account); !s.ok()) return s;
      if (account.project() != request->project()) {
        return Status(StatusCode::INVALID_ARGUMENT,
                      absl::StrCat("project: service account ", account.id(), " belongs to ",
                                   account.project()));
      }
      // An account without an environment of its own lives in its project's.
      std::string environment = account.environment();
      if (environment.empty()) {
        authz::v1::Project project;
        if (Status s = ProjectOf(caller, account.project(), &project); !s.ok()) return s;
        environment = project.environment();
      }
      if (Status s = KeyEnvironment(environment, "the service account", request); !s.ok()) {
        return s;
      }
      return CapLifetime(account, request->has_expire_time() ? &request->expire_time() : nullptr,
                         request);
    }
    default:
      return Status(StatusCode::INVALID_ARGUMENT, "kind: required");
  }
}

Status AdminService::OwnerMayUse(const Caller& caller, const std::string& member,
                                 const std::string& project,
                                 const google::protobuf::RepeatedPtrField<std::string>& scopes) {
  for (const std::string& scope : scopes) {
    authz::v1::CheckResponse decision;
    const Status s = CheckMember(caller, member, scope, project, /*grants_only=*/true, &decision);
    // A scope authz does not know as an action is none of its business.
    if (s.error_code() == StatusCode::INVALID_ARGUMENT) continue;
    if (!s.ok()) return s;
    if (decision.verdict() == authz::v1::VERDICT_ALLOW) continue;
    return Status(
        StatusCode::FAILED_PRECONDITION,
        absl::StrCat("owner: member '", member, "' may not use ", scope, " in ", project, " (",
                     decision.reason() == "PERMISSION_DENIED" ? "no role of theirs grants it"
                                                              : decision.reason(),
                     "): a key for it would be refused on every call; grant them a role that "
                     "allows it first"));
  }
  return Status::OK;
}

Status AdminService::AuthorizeKey(const Caller& caller, const std::string& key_id, KeyChange change,
                                  keys::v1::RotateKeyRequest* rotate) {
  keys::v1::GetKeyRequest get;
  get.set_key_id(key_id);
  keys::v1::GetKeyResponse got;
  if (Status s =
          Call("keys", *keys_, &keys::v1::KeyService::Stub::GetKey, get, &got, caller.deadline);
      !s.ok()) {
    return s;
  }
  const keys::v1::Key& key = got.key();
  // Self-service: whoever holds a key may kill it (a leaked key must not wait for an admin).
  if (change == KeyChange::kRevoke && key.owner().type() == keys::v1::PRINCIPAL_TYPE_MEMBER &&
      key.owner().id() == caller.member) {
    return Status::OK;
  }
  const bool admin_key = key.kind() == keys::v1::KEY_KIND_ADMIN;
  if (Status s = admin_key ? Authorize(caller, "members.manage", "")
                           : Authorize(caller, "keys.manage", key.project());
      !s.ok()) {
    return s;
  }
  if (key.owner().type() == keys::v1::PRINCIPAL_TYPE_SERVICE_ACCOUNT) {
    if (change != KeyChange::kRotate) return Status::OK;
    // The successor lives within the account's max_key_lifetime too.
    authz::v1::ServiceAccount account;
    if (Status s = ServiceAccountOf(caller, key.owner(), &account); !s.ok()) return s;
    return CapLifetime(account, nullptr, rotate);
  }
  // A member's project key in a project whose keys service accounts hold gets no successor.
  if (change == KeyChange::kRotate && key.kind() == keys::v1::KEY_KIND_PROJECT) {
    authz::v1::Project project;
    if (Status s = ProjectOf(caller, key.project(), &project); !s.ok()) return s;
    if (project.key_holders() == authz::v1::KEY_HOLDERS_SERVICE_ACCOUNTS) {
      return Status(StatusCode::FAILED_PRECONDITION,
                    absl::StrCat("key_id: project ", project.id(),
                                 "'s keys are held by its service accounts only (key_holders); "
                                 "a member's key there is revoked, not rotated"));
    }
    // Nor does a key its owner can no longer use (their roles changed since).
    if (Status s = OwnerMayUse(caller, key.owner().id(), project.id(), key.scopes()); !s.ok()) {
      return s;
    }
  }
  if (key.owner().id() == caller.member) return Status::OK;
  // Rotating hands the caller a secret that acts as the owner; revoking locks the owner out.
  if (change == KeyChange::kRotate) return Authorize(caller, "owners.manage", "");
  authz::v1::Member owner;
  if (Status s = MemberOf(caller, key.owner().id(), &owner); !s.ok()) {
    // A member authz no longer knows holds nothing an owner must protect.
    return s.error_code() == StatusCode::NOT_FOUND ? Status::OK : s;
  }
  for (const authz::v1::RoleGrant& grant : owner.grants()) {
    if (grant.role() == "owner") return Authorize(caller, "owners.manage", "");
  }
  return Status::OK;
}

Status AdminService::MemberOf(const Caller& caller, const std::string& id,
                              authz::v1::Member* member) {
  authz::v1::GetMemberRequest get;
  get.mutable_actor()->set_member_id(caller.member);
  get.set_id(id);
  return Call("authz", *authz_, &authz::v1::AuthzService::Stub::GetMember, get, member,
              caller.deadline);
}

Status AdminService::ProjectOf(const Caller& caller, const std::string& id,
                               authz::v1::Project* project) {
  authz::v1::GetProjectRequest get;
  get.mutable_actor()->set_member_id(caller.member);
  get.set_id(id);
  return Call("authz", *authz_, &authz::v1::AuthzService::Stub::GetProject, get, project,
              caller.deadline);
}

Status AdminService::ServiceAccountOf(const Caller& caller, const keys::v1::Principal& owner,
                                      authz::v1::ServiceAccount* account) {
  if (owner.type() != keys::v1::PRINCIPAL_TYPE_SERVICE_ACCOUNT) {
    return Status(StatusCode::INVALID_ARGUMENT,
                  "owner: a service-account key needs a service account as its owner");
  }
  authz::v1::GetServiceAccountRequest get;
  get.mutable_actor()->set_member_id(caller.member);
  get.set_id(owner.id());
  if (Status s = Call("authz", *authz_, &authz::v1::AuthzService::Stub::GetServiceAccount, get,
                      account, caller.deadline);
      !s.ok()) {
    return s;
  }
  if (account->has_removed_at()) {
    return Status(StatusCode::FAILED_PRECONDITION,
                  absl::StrCat("service account ", account->id(), " was removed"));
  }
  return Status::OK;
}

grpc::ServerUnaryReactor* AdminService::Run(grpc::CallbackServerContext* context,
                                            std::function<Status(const Caller&)> work) {
  // Refused before the pool without a key, and its key verified (asynchronously, on no
  // thread of the pool) before it takes a place there: callers without a valid admin key
  // cannot crowd out those with one.
  std::string secret;
  if (Status s = AdminKeyOf(*context, &secret); !s.ok()) return server::FinishNow(context, s);
  struct Verification {
    grpc::ClientContext call;
    keys::v1::VerifyKeyRequest request;
    keys::v1::VerifyKeyResponse response;
    Caller caller;
    std::function<Status(const Caller&)> work;
  };
  auto* verification = new Verification;
  verification->caller.deadline = client::DownstreamDeadline(*context, max_call_time_);
  client::SetDeadline(verification->call, verification->caller.deadline);
  verification->request.set_secret(std::move(secret));
  verification->work = std::move(work);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  keys_->async()->VerifyKey(
      &verification->call, &verification->request, &verification->response,
      [this, context, reactor, verification](Status verified) {
        std::unique_ptr<Verification> done(verification);
        if (Status s = Authenticated(verified, done->response, &done->caller); !s.ok()) {
          reactor->Finish(std::move(s));
          return;
        }
        pool_->RunFor(context, reactor,
                      [caller = std::move(done->caller), work = std::move(done->work)] {
                        return work(caller);
                      });
      });
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::RemoveMember(grpc::CallbackServerContext* context,
                                                     const v1::RemoveMemberRequest* request,
                                                     v1::RemoveMemberResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) -> Status {
    if (request->member_id().empty()) {
      return Status(StatusCode::INVALID_ARGUMENT, "member_id: required");
    }
    if (Status s = RequireRequestId(request->request_id()); !s.ok()) return s;
    // 1. The member (authz decides whether the caller may: members.manage, owners.manage
    //    for an owner). Removing a removed member changes nothing.
    authz::v1::RemoveMemberRequest remove;
    remove.mutable_actor()->set_member_id(caller.member);
    remove.set_id(request->member_id());
    authz::v1::RemoveMemberResponse removed;
    if (Status s = Call("authz", *authz_, &authz::v1::AuthzService::Stub::RemoveMember, remove,
                        &removed, caller.deadline);
        !s.ok()) {
      return s;
    }
    // 2. Their keys (keys records each revocation), under a request id of the caller's, the
    //    member's and the caller's request id: the caller's retry repeats nothing, and the same
    //    id sent for another member (or by another admin) is another revocation.
    const std::string revocation_id = absl::StrCat(
        "remove-member:",
        ledger::ShortDigest(absl::StrCat(caller.member.size(), ":", caller.member, "\n",
                                         request->member_id().size(), ":", request->member_id(),
                                         "\n", request->request_id())));
    if (Status s = InCallerTerms(
            RevokeKeysOf(caller, keys::v1::PRINCIPAL_TYPE_MEMBER, request->member_id(),
                         revocation_id, response->mutable_revoked_keys()),
            revocation_id, request->request_id());
        !s.ok()) {
      return s;
    }
    // 3. The removal's ledger entry.
    if (Status s =
            RemovalEntry(caller, request->member_id(), removed, response->mutable_audit_id());
        !s.ok()) {
      return s;
    }
    *response->mutable_member() = removed.member();
    return Status::OK;
  });
}

Status AdminService::RevokeKeysOf(const Caller& caller, keys::v1::PrincipalType type,
                                  const std::string& id, const std::string& request_id,
                                  google::protobuf::RepeatedPtrField<keys::v1::Key>* revoked) {
  // Every key they hold; a retry returns the keys the first call revoked.
  keys::v1::RevokePrincipalKeysRequest revoke;
  revoke.set_request_id(request_id);
  revoke.set_actor(caller.member);
  revoke.mutable_owner()->set_type(type);
  revoke.mutable_owner()->set_id(id);
  // The reason is recorded in plain text (the key store, the ledger's metadata): it names no
  // one. Who removed them is the revocation's actor, sealed in the ledger like every identifier
  // (and shredded with it when they are forgotten).
  revoke.set_reason(type == keys::v1::PRINCIPAL_TYPE_MEMBER ? "member removed"
                                                            : "service account removed");
  keys::v1::RevokePrincipalKeysResponse revoked_now;
  if (Status s = Call("keys", *keys_, &keys::v1::KeyService::Stub::RevokePrincipalKeys, revoke,
                      &revoked_now, caller.deadline);
      !s.ok()) {
    return s;
  }
  for (const keys::v1::Key& key : revoked_now.keys()) *revoked->Add() = key;
  return Status::OK;
}

Status AdminService::RemovalEntry(const Caller& caller, const std::string& member_id,
                                  const authz::v1::RemoveMemberResponse& removed,
                                  std::string* audit_id) {
  // An authz of a release before removals drew their ids answers none: its record is named by
  // the digest of the member's id.
  const std::string request_id =
      !removed.removal_request_id().empty()
          ? removed.removal_request_id()
          : ledger::RemovalRequestId("authz", "member", ledger::ShortDigest(member_id));
  if (removed.removed_now()) {
    // authz recorded this caller's removal with the change, to reach the ledger through its
    // outbox; the same record is written here under the same request id (a duplicate to
    // whichever comes second), so that the answer names its entry at once.
    audit::v1::AppendRequest append;
    audit::v1::EntryInput* entry = append.mutable_entry();  // The organisation's ledger.
    entry->set_action(audit::v1::ACTION_MEMBER_REMOVED);
    entry->set_actor(caller.member);
    entry->set_outcome(audit::v1::OUTCOME_SUCCESS);
    entry->set_subject(member_id);
    entry->set_request_id(request_id);
    audit::v1::AppendResponse appended;
    grpc::ClientContext call;
    client::SetDeadline(call, caller.deadline);
    if (Status s = audit_->Append(&call, append, &appended); !s.ok()) {
      return DependencyFailure("audit", s, caller.deadline, /*with_detail=*/true);
    }
    *audit_id = AuditIdOf(appended.entry());
    return Status::OK;
  }
  // Removed before (by this caller's earlier attempt, another admin, an organisation file or a
  // group sync): the entry is authz's record of that removal, which its outbox delivers.
  audit::v1::GetEntryRequest get;
  get.set_request_id(request_id);
  const absl::Time give_up = std::min(caller.deadline, absl::Now() + kRemovalEntryWait);
  for (;;) {
    audit::v1::GetEntryResponse found;
    grpc::ClientContext call;
    client::SetDeadline(call, caller.deadline);
    const Status s = audit_->GetEntry(&call, get, &found);
    if (s.ok()) {
      *audit_id = AuditIdOf(found.entry());
      return Status::OK;
    }
    if (s.error_code() != StatusCode::NOT_FOUND) {
      return DependencyFailure("audit", s, caller.deadline, /*with_detail=*/true);
    }
    // Not there yet; after the wait, the answer goes without it (a removal made before authz
    // recorded its changes has no entry at all).
    if (absl::Now() + absl::Milliseconds(100) >= give_up) return Status::OK;
    absl::SleepFor(absl::Milliseconds(100));
  }
}

grpc::ServerUnaryReactor* AdminService::PlanOrgFile(grpc::CallbackServerContext* context,
                                                    const v1::PlanOrgFileRequest* request,
                                                    authz::v1::PlanOrgFileResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) -> Status {
    bool rules_checked = false;
    if (Status s = PlanOrgFileAsCaller(caller, request->yaml(), response, &rules_checked);
        !s.ok()) {
      return s;
    }
    const bool allows_models = std::any_of(
        response->projects().begin(), response->projects().end(),
        [](const authz::v1::Project& p) { return !p.archived() && p.allowed_models_size() > 0; });
    if (!allows_models) return Status::OK;
    // The models are judged against the endpoints as a help: a plan neither fails nor waits
    // long for it.
    region::v1::ListEndpointsResponse endpoints;
    if (Status s = Call("region", *region_, &region::v1::RegionService::Stub::ListEndpoints,
                        region::v1::ListEndpointsRequest(), &endpoints,
                        std::min(caller.deadline, absl::Now() + kPlanEndpointsWait));
        !s.ok()) {
      response->add_warnings(absl::StrCat(
          "the projects' models were not checked against the endpoints: ", s.error_message()));
      return Status::OK;
    }
    for (std::string& warning : UnservedModels(PlannedProjects(response->projects()),
                                               ListedEndpoints(endpoints.endpoints()))) {
      response->add_warnings(std::move(warning));
    }
    return Status::OK;
  });
}

grpc::ServerUnaryReactor* AdminService::ApplyOrgFile(grpc::CallbackServerContext* context,
                                                     const v1::ApplyOrgFileRequest* request,
                                                     v1::ApplyOrgFileResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) -> Status {
    authz::v1::ApplyOrgFileRequest apply;
    apply.mutable_actor()->set_member_id(caller.member);
    apply.set_yaml(request->yaml());
    apply.set_plan_fingerprint(request->plan_fingerprint());
    apply.set_reference(request->reference());
    // A project rule pii could not apply: refused before anything is applied. What was
    // checked is what is applied (the checked plan's fingerprint, unless the caller gave one).
    if (Status s = Authorize(caller, "owners.manage", ""); !s.ok()) return s;
    authz::v1::PlanOrgFileResponse checked;
    bool rules_checked = false;
    if (Status s = PlanOrgFileAsCaller(caller, request->yaml(), &checked, &rules_checked);
        !s.ok()) {
      return s;
    }
    const bool checked_plan_only = apply.plan_fingerprint().empty() && rules_checked;
    if (checked_plan_only) apply.set_plan_fingerprint(checked.plan_fingerprint());
    authz::v1::ApplyOrgFileResponse applied;
    if (Status s = Call("authz", *authz_, &authz::v1::AuthzService::Stub::ApplyOrgFile, apply,
                        &applied, caller.deadline);
        !s.ok()) {
      if (checked_plan_only && s.error_code() == StatusCode::FAILED_PRECONDITION &&
          absl::StartsWith(s.error_message(), "plan_fingerprint:")) {
        return Status(StatusCode::ABORTED,
                      "the organisation changed while the file's PII rules were being checked "
                      "against pii; apply it again (nothing was changed)");
      }
      return s;
    }
    *response->mutable_changes() = applied.changes();
    response->set_text(applied.text());
    response->set_org_version(applied.org_version());
    // The members and service accounts to offboard: those the file removed, and those
    // removed in the day before, such as by an attempt of this apply that committed and was
    // cut short (its retry changes nothing).
    Principals removed_now, offboard;
    for (const authz::v1::EntityChange& change : applied.changes()) {
      if (Removes(change, "member")) {
        removed_now.emplace(keys::v1::PRINCIPAL_TYPE_MEMBER, change.id());
      } else if (Removes(change, "service_account")) {
        removed_now.emplace(keys::v1::PRINCIPAL_TYPE_SERVICE_ACCOUNT, change.id());
      }
    }
    for (const authz::v1::Principal& p : applied.offboard()) {
      offboard.emplace(p.kind() == authz::v1::PRINCIPAL_KIND_SERVICE_ACCOUNT
                           ? keys::v1::PRINCIPAL_TYPE_SERVICE_ACCOUNT
                           : keys::v1::PRINCIPAL_TYPE_MEMBER,
                       p.id());
    }
    return Offboard(caller, removed_now, offboard, applied.org_version(),
                    response->mutable_revoked_keys());
  });
}

grpc::ServerUnaryReactor* AdminService::SyncIdpGroup(grpc::CallbackServerContext* context,
                                                     const v1::SyncIdpGroupRequest* request,
                                                     v1::SyncIdpGroupResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) -> Status {
    // Refused here too, whatever the group holds: an authz of the earlier release, during a
    // rolling upgrade, knows no allow_empty and would empty the group.
    if (request->emails().empty() && !request->allow_empty()) {
      return Status(StatusCode::FAILED_PRECONDITION,
                    "emails: none; an identity provider's empty answer is more often a fault "
                    "than an empty group, and removal is final: state allow_empty to remove "
                    "them all (nothing was changed)");
    }
    authz::v1::SyncIdpGroupRequest sync;
    sync.mutable_actor()->set_member_id(caller.member);
    sync.set_group(request->group());
    *sync.mutable_emails() = request->emails();
    sync.set_allow_empty(request->allow_empty());
    authz::v1::SyncIdpGroupResponse synced;
    if (Status s = Call("authz", *authz_, &authz::v1::AuthzService::Stub::SyncIdpGroup, sync,
                        &synced, caller.deadline);
        !s.ok()) {
      return s;
    }
    *response->mutable_provisioned() = synced.provisioned();
    *response->mutable_deprovisioned() = synced.deprovisioned();
    response->set_org_version(synced.org_version());
    Principals removed_now, offboard;
    for (const std::string& id : synced.deprovisioned()) {
      removed_now.emplace(keys::v1::PRINCIPAL_TYPE_MEMBER, id);
    }
    for (const std::string& id : synced.offboard()) {
      offboard.emplace(keys::v1::PRINCIPAL_TYPE_MEMBER, id);
    }
    return Offboard(caller, removed_now, offboard, synced.org_version(),
                    response->mutable_revoked_keys());
  });
}

Status AdminService::Offboard(const Caller& caller, const Principals& removed_now,
                              const Principals& offboard, int64_t org_version,
                              google::protobuf::RepeatedPtrField<keys::v1::Key>* revoked) {
  Principals all = offboard;
  all.insert(removed_now.begin(), removed_now.end());
  for (const auto& principal : all) {
    const auto& [type, id] = principal;
    if (!removed_now.contains(principal)) {
      bool holds = false;
      if (Status s = HoldsVerifyingKeys(caller, type, id, &holds); !s.ok()) return s;
      if (!holds) continue;
    }
    const std::string request_id =
        absl::StrCat("org-offboard:",
                     ledger::ShortDigest(absl::StrCat(caller.member, "\n", static_cast<int>(type),
                                                      "\n", id, "\n", org_version)));
    if (Status s = RevokeKeysOf(caller, type, id, request_id, revoked); !s.ok()) return s;
  }
  return Status::OK;
}

Status AdminService::HoldsVerifyingKeys(const Caller& caller, keys::v1::PrincipalType type,
                                        const std::string& id, bool* holds) {
  *holds = false;
  keys::v1::ListKeysRequest list;
  list.mutable_owner()->set_type(type);
  list.mutable_owner()->set_id(id);
  list.set_page_size(500);
  for (;;) {
    keys::v1::ListKeysResponse page;
    if (Status s = Call("keys", *keys_, &keys::v1::KeyService::Stub::ListKeys, list, &page,
                        caller.deadline);
        !s.ok()) {
      return s;
    }
    for (const keys::v1::Key& key : page.keys()) {
      if (key.state() == keys::v1::KEY_STATE_ACTIVE ||
          key.state() == keys::v1::KEY_STATE_ROTATING) {
        *holds = true;
        return Status::OK;
      }
    }
    if (page.next_page_token().empty()) return Status::OK;
    list.set_page_token(page.next_page_token());
  }
}

grpc::ServerUnaryReactor* AdminService::ListMembers(grpc::CallbackServerContext* context,
                                                    const v1::ListMembersRequest* request,
                                                    authz::v1::ListMembersResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) -> Status {
    authz::v1::ListMembersRequest list;
    list.mutable_actor()->set_member_id(caller.member);
    list.set_page_size(request->page_size());
    list.set_page_token(request->page_token());
    list.set_include_removed(request->include_removed());
    list.set_project(request->project());
    list.set_email(request->email());
    return Call("authz", *authz_, &authz::v1::AuthzService::Stub::ListMembers, list, response,
                caller.deadline);
  });
}

template <typename Request, typename Response>
grpc::ServerUnaryReactor* AdminService::AsActor(
    grpc::CallbackServerContext* context, const Request* request, Response* response,
    Status (authz::v1::AuthzService::Stub::*method)(grpc::ClientContext*, const Request&,
                                                    Response*),
    std::function<Status(const Caller&)> check) {
  return Run(
      context,
      [this, request, response, method, check = std::move(check)](const Caller& caller) -> Status {
        if (check != nullptr) {
          if (Status s = check(caller); !s.ok()) return s;
        }
        Request forwarded = *request;
        forwarded.mutable_actor()->set_member_id(caller.member);
        return Call("authz", *authz_, method, forwarded, response, caller.deadline);
      });
}

grpc::ServerUnaryReactor* AdminService::AddMember(grpc::CallbackServerContext* context,
                                                  const authz::v1::AddMemberRequest* request,
                                                  authz::v1::Member* response) {
  return AsActor(context, request, response, &authz::v1::AuthzService::Stub::AddMember);
}

grpc::ServerUnaryReactor* AdminService::SetMemberRoles(
    grpc::CallbackServerContext* context, const authz::v1::SetMemberRolesRequest* request,
    authz::v1::Member* response) {
  return AsActor(context, request, response, &authz::v1::AuthzService::Stub::SetMemberRoles);
}

grpc::ServerUnaryReactor* AdminService::CreateInvitation(
    grpc::CallbackServerContext* context, const authz::v1::CreateInvitationRequest* request,
    authz::v1::Invitation* response) {
  return AsActor(context, request, response, &authz::v1::AuthzService::Stub::CreateInvitation);
}

grpc::ServerUnaryReactor* AdminService::RevokeInvitation(
    grpc::CallbackServerContext* context, const authz::v1::RevokeInvitationRequest* request,
    authz::v1::Invitation* response) {
  return AsActor(context, request, response, &authz::v1::AuthzService::Stub::RevokeInvitation);
}

grpc::ServerUnaryReactor* AdminService::AcceptInvitation(
    grpc::CallbackServerContext* context, const authz::v1::AcceptInvitationRequest* request,
    authz::v1::Member* response) {
  // Needs no key, so it has a bound of its own and takes no place in the pool: one
  // asynchronous call to authz, at most kMaxAcceptsInFlight at once.
  if (accepting_.fetch_add(1, std::memory_order_relaxed) >= kMaxAcceptsInFlight) {
    accepting_.fetch_sub(1, std::memory_order_relaxed);
    return server::FinishNow(
        context, Status(StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat("already ", kMaxAcceptsInFlight,
                                     " invitations being accepted; retry in a moment")));
  }
  struct Acceptance {
    grpc::ClientContext call;
    absl::Time deadline;
  };
  auto* acceptance = new Acceptance;
  acceptance->deadline = client::DownstreamDeadline(*context, max_call_time_);
  client::SetDeadline(acceptance->call, acceptance->deadline);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  authz_->async()->AcceptInvitation(&acceptance->call, request, response,
                                    [this, reactor, acceptance](Status s) {
                                      std::unique_ptr<Acceptance> done(acceptance);
                                      accepting_.fetch_sub(1, std::memory_order_relaxed);
                                      reactor->Finish(Forwarded("authz", s, done->deadline,
                                                                /*with_detail=*/false));
                                    });
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::ListInvitations(
    grpc::CallbackServerContext* context, const authz::v1::ListInvitationsRequest* request,
    authz::v1::ListInvitationsResponse* response) {
  return AsActor(context, request, response, &authz::v1::AuthzService::Stub::ListInvitations);
}

grpc::ServerUnaryReactor* AdminService::ListProjects(grpc::CallbackServerContext* context,
                                                     const authz::v1::ListProjectsRequest* request,
                                                     authz::v1::ListProjectsResponse* response) {
  return AsActor(context, request, response, &authz::v1::AuthzService::Stub::ListProjects);
}

Status AdminService::CheckPiiRules(const Caller& caller, const std::string& action,
                                   const authz::v1::Project& project) {
  const authz::v1::PiiPolicy& rules = project.data_policy().pii();
  if (rules.rules_size() == 0) return Status::OK;
  if (Status s = Authorize(caller, action, action == "project.update" ? project.id() : "");
      !s.ok()) {
    return s;
  }
  pii::v1::ListEntityTypesResponse known;
  if (Status s = Call("pii", *pii_, &pii::v1::PiiService::Stub::ListEntityTypes,
                      pii::v1::ListEntityTypesRequest(), &known, caller.deadline);
      !s.ok()) {
    return s;
  }
  return EdgeStatus(CheckProjectRules(rules, redaction_, known, "project.data_policy.pii.rules"));
}

Status AdminService::PlanOrgFileAsCaller(const Caller& caller, const std::string& yaml,
                                         authz::v1::PlanOrgFileResponse* plan,
                                         bool* rules_checked) {
  *rules_checked = false;
  authz::v1::PlanOrgFileRequest plan_request;
  plan_request.mutable_actor()->set_member_id(caller.member);
  plan_request.set_yaml(yaml);
  if (Status s = Call("authz", *authz_, &authz::v1::AuthzService::Stub::PlanOrgFile, plan_request,
                      plan, caller.deadline);
      !s.ok()) {
    return s;
  }
  pii::v1::ListEntityTypesResponse known;
  for (const authz::v1::Project& project : plan->projects()) {
    if (project.data_policy().pii().rules_size() == 0) continue;
    if (!*rules_checked) {
      if (Status s = Call("pii", *pii_, &pii::v1::PiiService::Stub::ListEntityTypes,
                          pii::v1::ListEntityTypesRequest(), &known, caller.deadline);
          !s.ok()) {
        return s;
      }
      *rules_checked = true;
    }
    if (absl::Status s =
            CheckProjectRules(project.data_policy().pii(), redaction_, known,
                              absl::StrCat("project ", project.id(), ": data_policy.pii.rules"));
        !s.ok()) {
      return EdgeStatus(s);
    }
  }
  return Status::OK;
}

grpc::ServerUnaryReactor* AdminService::ListEntityTypes(grpc::CallbackServerContext* context,
                                                        const v1::ListEntityTypesRequest* request,
                                                        v1::ListEntityTypesResponse* response) {
  (void)request;
  return Run(context, [this, response](const Caller& caller) -> Status {
    if (Status s = Authorize(caller, "org.read", ""); !s.ok()) return s;
    pii::v1::ListEntityTypesResponse known;
    if (Status s = Call("pii", *pii_, &pii::v1::PiiService::Stub::ListEntityTypes,
                        pii::v1::ListEntityTypesRequest(), &known, caller.deadline);
        !s.ok()) {
      return s;
    }
    response->mutable_entity_types()->Swap(known.mutable_entity_types());
    response->set_keyed_hashing(known.keyed_hashing());
    for (const pii::v1::EntityRule& rule : redaction_.rules()) {
      if (rule.action() == pii::v1::ACTION_BLOCK)
        response->add_blocked_everywhere(rule.entity_type());
    }
    return Status::OK;
  });
}

grpc::ServerUnaryReactor* AdminService::CreateProject(
    grpc::CallbackServerContext* context, const authz::v1::CreateProjectRequest* request,
    authz::v1::Project* response) {
  return AsActor(context, request, response, &authz::v1::AuthzService::Stub::CreateProject,
                 [this, request](const Caller& caller) {
                   return CheckPiiRules(caller, "projects.manage", request->project());
                 });
}

grpc::ServerUnaryReactor* AdminService::UpdateProject(
    grpc::CallbackServerContext* context, const authz::v1::UpdateProjectRequest* request,
    authz::v1::Project* response) {
  return AsActor(context, request, response, &authz::v1::AuthzService::Stub::UpdateProject,
                 [this, request](const Caller& caller) {
                   return CheckPiiRules(caller, "project.update", request->project());
                 });
}

grpc::ServerUnaryReactor* AdminService::ArchiveProject(
    grpc::CallbackServerContext* context, const authz::v1::ArchiveProjectRequest* request,
    authz::v1::Project* response) {
  return AsActor(context, request, response, &authz::v1::AuthzService::Stub::ArchiveProject);
}

grpc::ServerUnaryReactor* AdminService::ListServiceAccounts(
    grpc::CallbackServerContext* context, const authz::v1::ListServiceAccountsRequest* request,
    authz::v1::ListServiceAccountsResponse* response) {
  return AsActor(context, request, response, &authz::v1::AuthzService::Stub::ListServiceAccounts);
}

grpc::ServerUnaryReactor* AdminService::CreateServiceAccount(
    grpc::CallbackServerContext* context, const authz::v1::CreateServiceAccountRequest* request,
    authz::v1::ServiceAccount* response) {
  return AsActor(context, request, response, &authz::v1::AuthzService::Stub::CreateServiceAccount);
}

grpc::ServerUnaryReactor* AdminService::RemoveServiceAccount(
    grpc::CallbackServerContext* context, const authz::v1::RemoveServiceAccountRequest* request,
    v1::RemoveServiceAccountResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) -> Status {
    authz::v1::RemoveServiceAccountRequest remove = *request;
    remove.mutable_actor()->set_member_id(caller.member);
    if (Status s = Call("authz", *authz_, &authz::v1::AuthzService::Stub::RemoveServiceAccount,
                        remove, response->mutable_service_account(), caller.deadline);
        !s.ok()) {
      return s;
    }
    // Every key it holds (authz records the removal, keys each revocation); the request id
    // is the caller's and the account's, so that the caller's retry repeats nothing and
    // another admin's removal of a removed account revokes what is left (nothing, usually).
    const std::string request_id = absl::StrCat(
        "remove-sa:", ledger::ShortDigest(absl::StrCat(caller.member, "\n", request->id())));
    return RevokeKeysOf(caller, keys::v1::PRINCIPAL_TYPE_SERVICE_ACCOUNT, request->id(), request_id,
                        response->mutable_revoked_keys());
  });
}

grpc::ServerUnaryReactor* AdminService::CreateKey(grpc::CallbackServerContext* context,
                                                  const keys::v1::CreateKeyRequest* request,
                                                  keys::v1::CreateKeyResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) -> Status {
    if (Status s = RequireRequestId(request->request_id()); !s.ok()) return s;
    keys::v1::CreateKeyRequest create = *request;
    if (Status s = AuthorizeIssue(caller, &create); !s.ok()) return s;
    create.set_request_id(CallerRequestId(caller.member, request->request_id()));
    create.set_actor(caller.member);
    return InCallerTerms(Call("keys", *keys_, &keys::v1::KeyService::Stub::CreateKey, create,
                              response, caller.deadline),
                         create.request_id(), request->request_id());
  });
}

grpc::ServerUnaryReactor* AdminService::RotateKey(grpc::CallbackServerContext* context,
                                                  const keys::v1::RotateKeyRequest* request,
                                                  keys::v1::RotateKeyResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) -> Status {
    if (Status s = RequireRequestId(request->request_id()); !s.ok()) return s;
    keys::v1::RotateKeyRequest rotate = *request;
    if (Status s = AuthorizeKey(caller, request->key_id(), KeyChange::kRotate, &rotate); !s.ok()) {
      return s;
    }
    rotate.set_request_id(CallerRequestId(caller.member, request->request_id()));
    rotate.set_actor(caller.member);
    return InCallerTerms(Call("keys", *keys_, &keys::v1::KeyService::Stub::RotateKey, rotate,
                              response, caller.deadline),
                         rotate.request_id(), request->request_id());
  });
}

grpc::ServerUnaryReactor* AdminService::RevokeKey(grpc::CallbackServerContext* context,
                                                  const keys::v1::RevokeKeyRequest* request,
                                                  keys::v1::RevokeKeyResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) -> Status {
    // keys keeps, records and logs the reason with anything in it that looks like a secret
    // redacted: the leaked key an operator pastes into it is not refused.
    if (Status s = AuthorizeKey(caller, request->key_id(), KeyChange::kRevoke, nullptr); !s.ok()) {
      return s;
    }
    keys::v1::RevokeKeyRequest revoke = *request;
    revoke.set_actor(caller.member);
    return Call("keys", *keys_, &keys::v1::KeyService::Stub::RevokeKey, revoke, response,
                caller.deadline);
  });
}

grpc::ServerUnaryReactor* AdminService::ListKeys(grpc::CallbackServerContext* context,
                                                 const keys::v1::ListKeysRequest* request,
                                                 keys::v1::ListKeysResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) -> Status {
    Status allowed = request->project().empty()
                         ? Authorize(caller, "org.read", "")
                         : Authorize(caller, "keys.manage", request->project());
    if (!allowed.ok()) return allowed;
    return Call("keys", *keys_, &keys::v1::KeyService::Stub::ListKeys, *request, response,
                caller.deadline);
  });
}

grpc::ServerUnaryReactor* AdminService::GetRotationReport(
    grpc::CallbackServerContext* context, const keys::v1::GetRotationReportRequest* request,
    keys::v1::GetRotationReportResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) -> Status {
    Status allowed = request->project().empty()
                         ? Authorize(caller, "org.read", "")
                         : Authorize(caller, "keys.manage", request->project());
    if (!allowed.ok()) return allowed;
    return Call("keys", *keys_, &keys::v1::KeyService::Stub::GetRotationReport, *request, response,
                caller.deadline);
  });
}

grpc::ServerUnaryReactor* AdminService::ListEndpoints(
    grpc::CallbackServerContext* context, const region::v1::ListEndpointsRequest* request,
    region::v1::ListEndpointsResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) -> Status {
    if (Status allowed = Authorize(caller, "org.read", ""); !allowed.ok()) return allowed;
    return Call("region", *region_, &region::v1::RegionService::Stub::ListEndpoints, *request,
                response, caller.deadline);
  });
}

grpc::ServerUnaryReactor* AdminService::CreateEndpoint(
    grpc::CallbackServerContext* context, const region::v1::CreateEndpointRequest* request,
    region::v1::CreateEndpointResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) -> Status {
    if (Status allowed = Authorize(caller, "projects.manage", ""); !allowed.ok()) return allowed;
    // Region records the change in the organisation's ledger, with the change, as the caller's.
    region::v1::CreateEndpointRequest forwarded = *request;
    forwarded.set_actor(caller.member);
    return Call("region", *region_, &region::v1::RegionService::Stub::CreateEndpoint, forwarded,
                response, caller.deadline);
  });
}

grpc::ServerUnaryReactor* AdminService::UpdateEndpoint(
    grpc::CallbackServerContext* context, const region::v1::UpdateEndpointRequest* request,
    region::v1::UpdateEndpointResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) -> Status {
    if (Status allowed = Authorize(caller, "projects.manage", ""); !allowed.ok()) return allowed;
    // Region records the change in the organisation's ledger, with the change, as the caller's.
    region::v1::UpdateEndpointRequest forwarded = *request;
    forwarded.set_actor(caller.member);
    return Call("region", *region_, &region::v1::RegionService::Stub::UpdateEndpoint, forwarded,
                response, caller.deadline);
  });
}

grpc::ServerUnaryReactor* AdminService::DeleteEndpoint(
    grpc::CallbackServerContext* context, const region::v1::DeleteEndpointRequest* request,
    region::v1::DeleteEndpointResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) -> Status {
    if (Status allowed = Authorize(caller, "projects.manage", ""); !allowed.ok()) return allowed;
    // Region records the change in the organisation's ledger, with the change, as the caller's.
    region::v1::DeleteEndpointRequest forwarded = *request;
    forwarded.set_actor(caller.member);
    return Call("region", *region_, &region::v1::RegionService::Stub::DeleteEndpoint, forwarded,
                response, caller.deadline);
  });
}

template <typename Request, typename Response>
grpc::ServerUnaryReactor* AdminService::ForAuditor(
    grpc::CallbackServerContext* context, const std::string& action, const Request* request,
    Response* response,
    Status (audit::v1::AuditService::Stub::*method)(grpc::ClientContext*, const Request&,
                                                    Response*),
    bool walks_ledger) {
  return Run(context,
             [this, context, action, request, response, method,
              walks_ledger](const Caller& caller) -> Status {
               if (Status allowed = Authorize(caller, action, ""); !allowed.ok()) return allowed;
               Request forwarded = *request;
               if constexpr (requires { forwarded.set_requested_by(""); }) {
                 forwarded.set_requested_by(caller.member);  // Whoever the key says, recorded.
               }
               absl::Time deadline = caller.deadline;
               if (walks_ledger) {
                 if (ledger_walks_.fetch_add(1) >= kMaxLedgerWalks) {
                   ledger_walks_.fetch_sub(1);
                   return Status(
                       StatusCode::RESOURCE_EXHAUSTED,
                       "a ledger verification or compliance summary is already running through "
                       "this edge; retry once it has ended");
                 }
                 deadline = client::DownstreamDeadline(*context, kMaxLedgerWalkTime);
               }
               grpc::ClientContext call;
               client::SetDeadline(call, deadline);
               const Status s = (audit_.get()->*method)(&call, forwarded, response);
               if (walks_ledger) ledger_walks_.fetch_sub(1);
               // DATA_LOSS is audit's verdict on the ledger's stored rows (an inclusion proof it
               // refuses to give), not a failure to answer: passed on as it is.
               if (s.error_code() == StatusCode::DATA_LOSS) return s;
               return Forwarded("audit", s, deadline);
             });
}

grpc::ServerUnaryReactor* AdminService::QueryAudit(grpc::CallbackServerContext* context,
                                                   const audit::v1::QueryEntriesRequest* request,
                                                   audit::v1::QueryEntriesResponse* response) {
  return ForAuditor(context, "audit.read", request, response,
                    &audit::v1::AuditService::Stub::QueryEntries);
}

grpc::ServerUnaryReactor* AdminService::VerifyLedger(grpc::CallbackServerContext* context,
                                                     const audit::v1::VerifyLedgerRequest* request,
                                                     audit::v1::VerifyLedgerResponse* response) {
  return ForAuditor(context, "audit.read", request, response,
                    &audit::v1::AuditService::Stub::VerifyLedger, /*walks_ledger=*/true);
}

grpc::ServerUnaryReactor* AdminService::GetComplianceSummary(
    grpc::CallbackServerContext* context, const audit::v1::GetComplianceSummaryRequest* request,
    audit::v1::GetComplianceSummaryResponse* response) {
  return ForAuditor(context, "audit.read", request, response,
                    &audit::v1::AuditService::Stub::GetComplianceSummary, /*walks_ledger=*/true);
}

grpc::ServerUnaryReactor* AdminService::ExportOrgFile(
    grpc::CallbackServerContext* context, const authz::v1::ExportOrgFileRequest* request,
    authz::v1::ExportOrgFileResponse* response) {
  return AsActor(context, request, response, &authz::v1::AuthzService::Stub::ExportOrgFile);
}

grpc::ServerUnaryReactor* AdminService::GetInventoryReport(
    grpc::CallbackServerContext* context, const keys::v1::GetInventoryReportRequest* request,
    keys::v1::GetInventoryReportResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) -> Status {
    Status allowed = request->project().empty()
                         ? Authorize(caller, "org.read", "")
                         : Authorize(caller, "keys.manage", request->project());
    if (!allowed.ok()) return allowed;
    return Call("keys", *keys_, &keys::v1::KeyService::Stub::GetInventoryReport, *request, response,
                caller.deadline);
  });
}

grpc::ServerUnaryReactor* AdminService::GetHealthReport(
    grpc::CallbackServerContext* context, const region::v1::GetHealthReportRequest* request,
    region::v1::GetHealthReportResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) -> Status {
    if (Status allowed = Authorize(caller, "org.read", ""); !allowed.ok()) return allowed;
    return Call("region", *region_, &region::v1::RegionService::Stub::GetHealthReport, *request,
                response, caller.deadline);
  });
}

grpc::ServerUnaryReactor* AdminService::GetCheckpoint(
    grpc::CallbackServerContext* context, const audit::v1::GetCheckpointRequest* request,
    audit::v1::GetCheckpointResponse* response) {
  return ForAuditor(context, "audit.read", request, response,
                    &audit::v1::AuditService::Stub::GetCheckpoint);
}

grpc::ServerUnaryReactor* AdminService::ListCheckpoints(
    grpc::CallbackServerContext* context, const audit::v1::ListCheckpointsRequest* request,
    audit::v1::ListCheckpointsResponse* response) {
  return ForAuditor(context, "audit.read", request, response,
                    &audit::v1::AuditService::Stub::ListCheckpoints);
}

grpc::ServerUnaryReactor* AdminService::GetInclusionProof(
    grpc::CallbackServerContext* context, const audit::v1::GetInclusionProofRequest* request,
    audit::v1::GetInclusionProofResponse* response) {
  return ForAuditor(context, "audit.read", request, response,
                    &audit::v1::AuditService::Stub::GetInclusionProof);
}

grpc::ServerUnaryReactor* AdminService::GetConsistencyProof(
    grpc::CallbackServerContext* context, const audit::v1::GetConsistencyProofRequest* request,
    audit::v1::GetConsistencyProofResponse* response) {
  return ForAuditor(context, "audit.read", request, response,
                    &audit::v1::AuditService::Stub::GetConsistencyProof);
}

grpc::ServerUnaryReactor* AdminService::ExportSubject(
    grpc::CallbackServerContext* context, const audit::v1::ExportSubjectRequest* request,
    audit::v1::ExportSubjectResponse* response) {
  return ForAuditor(context, "audit.read", request, response,
                    &audit::v1::AuditService::Stub::ExportSubject);
}

Status AdminService::MembersWithEmail(const Caller& caller, const std::string& email,
                                      std::vector<authz::v1::Member>* members) {
  authz::v1::ListMembersRequest list;
  list.mutable_actor()->set_member_id(caller.member);
  list.set_include_removed(true);
  list.set_email(email);
  for (;;) {
    authz::v1::ListMembersResponse page;
    if (Status s = Call("authz", *authz_, &authz::v1::AuthzService::Stub::ListMembers, list, &page,
                        caller.deadline);
        !s.ok()) {
      return s;
    }
    for (authz::v1::Member& m : *page.mutable_members()) {
      // Checked here too: an authz of an earlier release ignores the filter and lists everyone.
      if (absl::EqualsIgnoreCase(m.email(), email)) members->push_back(std::move(m));
    }
    if (page.next_page_token().empty()) return Status::OK;
    list.set_page_token(page.next_page_token());
  }
}

Status AdminService::Forget(const Caller& caller, const audit::v1::ForgetSubjectRequest& request,
                            const std::string& subject, absl::string_view derived_id_kind,
                            absl::string_view derived_id_of,
                            audit::v1::ForgetSubjectResponse* forgotten) {
  audit::v1::ForgetSubjectRequest forget = request;
  forget.set_subject(subject);
  forget.set_requested_by(caller.member);
  if (!derived_id_kind.empty() && !request.request_id().empty()) {
    forget.set_request_id(
        absl::StrCat(derived_id_kind, ":",
                     ledger::ShortDigest(absl::StrCat(request.request_id(), derived_id_of))));
  }
  return Call("audit", *audit_, &audit::v1::AuditService::Stub::ForgetSubject, forget, forgotten,
              caller.deadline);
}

Status AdminService::EraseMember(const Caller& caller, const authz::v1::Member& member,
                                 bool* erased) {
  *erased = member.has_erased_at();
  if (!member.has_removed_at() || member.has_erased_at()) return Status::OK;
  authz::v1::EraseMemberRequest erase;
  erase.mutable_actor()->set_member_id(caller.member);
  erase.set_id(member.id());
  authz::v1::Member after;
  grpc::ClientContext call;
  client::SetDeadline(call, caller.deadline);
  const Status s = authz_->EraseMember(&call, erase, &after);
  // An authz of an earlier release cannot erase (during a rolling upgrade): not erased, yet.
  if (s.error_code() == StatusCode::UNIMPLEMENTED) return Status::OK;
  if (!s.ok()) return Forwarded("authz", s, caller.deadline);
  *erased = after.has_erased_at();
  return Status::OK;
}

grpc::ServerUnaryReactor* AdminService::ForgetSubject(
    grpc::CallbackServerContext* context, const audit::v1::ForgetSubjectRequest* request,
    audit::v1::ForgetSubjectResponse* response) {
  return Run(context, [this, request, response](const Caller& caller) -> Status {
    if (Status allowed = Authorize(caller, "owners.manage", ""); !allowed.ok()) return allowed;
    const std::string& subject = request->subject();
    // Whom the subject names in the organisation must be known before anything is forgotten:
    // the member with that id (a subject that cannot be one is none), or, for an e-mail
    // address, every member with it, removed or not. Each is forgotten under the other name
    // too (invitations are recorded under the address), and a removed one is then erased in
    // the organisation, last, as the address is known no more once it is.
    authz::v1::Member member;
    const Status lookup = MemberOf(caller, subject, &member);
    if (!lookup.ok() && lookup.error_code() != StatusCode::NOT_FOUND &&
        lookup.error_code() != StatusCode::INVALID_ARGUMENT) {
      return lookup;
    }
    std::vector<authz::v1::Member> by_email;
    if (!lookup.ok() && absl::StrContains(subject, '@')) {
      // A subject authz cannot take for an address (too long) is no member's.
      if (Status s = MembersWithEmail(caller, subject, &by_email);
          !s.ok() && s.error_code() != StatusCode::INVALID_ARGUMENT) {
        return s;
      }
    }
    const std::string email = absl::AsciiStrToLower(member.email());
    if (lookup.ok() && !email.empty() && email != subject) {
      audit::v1::ForgetSubjectResponse forgotten;
      if (Status s = Forget(caller, *request, email, "email", "", &forgotten); !s.ok()) return s;
      response->set_email_forgotten(forgotten.forgotten());
      *response->mutable_email_entry() = std::move(*forgotten.mutable_entry());
    }
    audit::v1::ForgetSubjectResponse forgotten;
    if (Status s = Forget(caller, *request, subject, "", "", &forgotten); !s.ok()) return s;
    response->set_forgotten(forgotten.forgotten());
    *response->mutable_entry() = std::move(*forgotten.mutable_entry());
    for (const authz::v1::Member& m : by_email) {
      audit::v1::ForgottenMember* out = response->add_members();
      out->set_id(m.id());
      audit::v1::ForgetSubjectResponse as_member;
      if (Status s =
              Forget(caller, *request, m.id(), "member", absl::StrCat("\n", m.id()), &as_member);
          !s.ok()) {
        return s;
      }
      out->set_forgotten(as_member.forgotten());
      *out->mutable_entry() = std::move(*as_member.mutable_entry());
    }
    if (lookup.ok()) {
      bool erased = false;
      if (Status s = EraseMember(caller, member, &erased); !s.ok()) return s;
      response->set_member_erased(erased);
    }
    for (int i = 0; i < response->members_size(); ++i) {
      bool erased = false;
      if (Status s = EraseMember(caller, by_email[i], &erased); !s.ok()) return s;
      response->mutable_members(i)->set_erased(erased);
    }
    return Status::OK;
  });
}

}  // namespace policy::edge
