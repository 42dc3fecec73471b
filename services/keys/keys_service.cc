#include "services/keys/keys_service.h"

#include "common/status/grpc_status.h"
#include "common/status/status.h"
#include "services/keys/proto_convert.h"

namespace policy::keys {
namespace {

constexpr absl::string_view kDomain = "keys.policy-suite";

grpc::Status ToGrpc(const absl::Status& status) { return ToGrpcStatus(status, kDomain); }

}  // namespace

KeysService::KeysService(KeyLifecycle* lifecycle, const KeyVerifier* verifier,
                         server::BlockingPool* pool, Clock* clock, prometheus::Registry* registry,
                         KeysServiceOptions options)
    : lifecycle_(lifecycle),
      verifier_(verifier),
      pool_(pool),
      clock_(clock),
      options_(options),
      verifications_(prometheus::BuildCounter()
                         .Name("policy_keys_verifications_total")
                         .Help("Key verifications by result: ok or the denial reason.")
                         .Register(*registry)),
      verified_(verifications_.Add({{"result", "ok"}})) {
  // Created up front so that a flood of bad keys never takes the registry's lock.
  for (absl::string_view reason :
       {kReasonMalformed, kReasonUnknown, kReasonSecretMismatch, kReasonKindMismatch,
        kReasonRevoked, kReasonExpired, kReasonStale}) {
    denials_[reason] = &verifications_.Add({{"result", std::string(reason)}});
  }
  other_failures_ = &verifications_.Add({{"result", "error"}});
}

grpc::ServerUnaryReactor* KeysService::VerifyKey(grpc::CallbackServerContext* context,
                                                 const v1::VerifyKeyRequest* request,
                                                 v1::VerifyKeyResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<VerifiedKey> verified = verifier_->Verify(
      request->secret(), request->for_usage_report() ? kUsageReportGrace : absl::ZeroDuration());
  if (verified.ok()) {
    verified_.Increment();
    ToProto(*verified->key, verified->state, response->mutable_key());
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  absl::Status status = verified.status();
  std::optional<std::string> reason = ReasonOf(status);
  auto counter = reason.has_value() ? denials_.find(*reason) : denials_.end();
  (counter != denials_.end() ? counter->second : other_failures_)->Increment();
  if (!options_.reveal_denial_reasons) status = WithoutReason(std::move(status));
  reactor->Finish(ToGrpc(status));
  return reactor;
}

grpc::ServerUnaryReactor* KeysService::CreateKey(grpc::CallbackServerContext* context,
                                                 const v1::CreateKeyRequest* request,
                                                 v1::CreateKeyResponse* response) {
  return pool_->Run(context, [this, request, response] {
    absl::StatusOr<CreateKeyParams> params = FromProto(*request);
    if (!params.ok()) return ToGrpc(params.status());
    absl::StatusOr<IssuedKey> issued = lifecycle_->Create(*params);
    if (!issued.ok()) return ToGrpc(issued.status());
    ToProto(issued->key, clock_->Now(), response->mutable_key());
    response->set_secret(issued->secret);
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* KeysService::GetKey(grpc::CallbackServerContext* context,
                                              const v1::GetKeyRequest* request,
                                              v1::GetKeyResponse* response) {
  return pool_->Run(context, [this, request, response] {
    absl::StatusOr<KeyRecord> key = lifecycle_->Get(request->key_id());
    if (!key.ok()) return ToGrpc(key.status());
    ToProto(*key, clock_->Now(), response->mutable_key());
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* KeysService::RotateKey(grpc::CallbackServerContext* context,
                                                 const v1::RotateKeyRequest* request,
                                                 v1::RotateKeyResponse* response) {
  return pool_->Run(context, [this, request, response] {
    absl::StatusOr<RotateKeyParams> params = FromProto(*request);
    if (!params.ok()) return ToGrpc(params.status());
    absl::StatusOr<RotatedKey> rotated = lifecycle_->Rotate(*params);
    if (!rotated.ok()) return ToGrpc(rotated.status());
    const absl::Time now = clock_->Now();
    ToProto(rotated->old_key, now, response->mutable_old_key());
    ToProto(rotated->new_key.key, now, response->mutable_new_key());
    response->set_secret(rotated->new_key.secret);
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* KeysService::RevokeKey(grpc::CallbackServerContext* context,
                                                 const v1::RevokeKeyRequest* request,
                                                 v1::RevokeKeyResponse* response) {
  return pool_->Run(context, [this, request, response] {
    absl::StatusOr<std::pair<KeyRecord, bool>> revoked =
        lifecycle_->Revoke(request->key_id(), request->reason(), request->actor());
    if (!revoked.ok()) return ToGrpc(revoked.status());
    ToProto(revoked->first, clock_->Now(), response->mutable_key());
    response->set_changed(revoked->second);
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* KeysService::RevokePrincipalKeys(
    grpc::CallbackServerContext* context, const v1::RevokePrincipalKeysRequest* request,
    v1::RevokePrincipalKeysResponse* response) {
  return pool_->Run(context, [this, request, response] {
    if (!request->has_owner()) return ToGrpc(absl::InvalidArgumentError("owner is required"));
    absl::StatusOr<Principal> owner = PrincipalFromProto(request->owner(), "owner");
    if (!owner.ok()) return ToGrpc(owner.status());
    absl::StatusOr<std::vector<KeyRecord>> revoked = lifecycle_->RevokePrincipal(
        request->request_id(), *owner, request->reason(), request->actor());
    if (!revoked.ok()) return ToGrpc(revoked.status());
    const absl::Time now = clock_->Now();
    for (const KeyRecord& key : *revoked) ToProto(key, now, response->add_keys());
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* KeysService::ListKeys(grpc::CallbackServerContext* context,
                                                const v1::ListKeysRequest* request,
                                                v1::ListKeysResponse* response) {
  return pool_->Run(context, [this, request, response] {
    absl::StatusOr<ListKeysParams> params = FromProto(*request);
    if (!params.ok()) return ToGrpc(params.status());
    absl::StatusOr<KeyListing> listing = lifecycle_->List(*params);
    if (!listing.ok()) return ToGrpc(listing.status());
    const absl::Time now = clock_->Now();
    for (const KeyRecord& key : listing->keys) ToProto(key, now, response->add_keys());
    response->set_next_page_token(listing->next_page_token);
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* KeysService::GetRotationReport(
    grpc::CallbackServerContext* context, const v1::GetRotationReportRequest* request,
    v1::GetRotationReportResponse* response) {
  return pool_->Run(context, [this, request, response] {
    std::optional<std::string> project;
    if (!request->project().empty()) project = request->project();
    absl::StatusOr<RotationReport> report = lifecycle_->GetRotationReport(project);
    if (!report.ok()) return ToGrpc(report.status());
    ToProto(*report, clock_->Now(), response);
    return grpc::Status::OK;
  });
}

grpc::ServerUnaryReactor* KeysService::GetInventoryReport(
    grpc::CallbackServerContext* context, const v1::GetInventoryReportRequest* request,
    v1::GetInventoryReportResponse* response) {
  return pool_->Run(context, [this, request, response] {
    std::optional<std::string> project;
    if (!request->project().empty()) project = request->project();
    absl::StatusOr<InventoryReport> report = lifecycle_->GetInventoryReport(project);
    if (!report.ok()) return ToGrpc(report.status());
    ToProto(*report, clock_->Now(), response);
    return grpc::Status::OK;
  });
}

}  // namespace policy::keys
