#include "services/edge/ext_authz_service.h"

#include <string>
#include <utility>

#include "common/client/channel.h"
#include "google/protobuf/arena.h"
#include "services/edge/downstream_status.h"
#include "services/edge/ext_authz_convert.h"

namespace policy::edge {

ExtAuthzService::ExtAuthzService(Downstream* downstream, FlowOptions options,
                                 TrustedProxies trusted_proxies, absl::Duration max_decision_time,
                                 EdgeMetrics* metrics)
    : downstream_(downstream),
      options_(std::move(options)),
      trusted_proxies_(std::move(trusted_proxies)),
      max_decision_time_(max_decision_time),
      metrics_(metrics) {
  SetMessageAllocatorFor_Check(&allocator_);
}

grpc::ServerUnaryReactor* ExtAuthzService::Check(
    grpc::CallbackServerContext* context, const envoy::service::auth::v3::CheckRequest* request,
    envoy::service::auth::v3::CheckResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  google::protobuf::Arena* arena = response->GetArena();
  auto* decision = google::protobuf::Arena::CreateMessage<v1::DecideResponse>(arena);
  // The key is looked at, and verified, before the body is read: a caller without a valid
  // key costs a header lookup and a key verification, never the parsing of its body.
  std::string api_key = ApiKeyFromCheck(*request);
  if (api_key.empty()) {
    Answer(reactor,
           grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "no API key: send authorization: Bearer <key>, x-api-key or api-key"),
           *decision, response);
    return reactor;
  }
  const absl::Time deadline = client::DownstreamDeadline(*context, max_decision_time_);
  auto* verify = google::protobuf::Arena::CreateMessage<keys::v1::VerifyKeyRequest>(arena);
  verify->set_secret(std::move(api_key));
  auto* verified = google::protobuf::Arena::CreateMessage<keys::v1::VerifyKeyResponse>(arena);
  auto* call = google::protobuf::Arena::Create<grpc::ClientContext>(arena);
  client::SetDeadline(*call, deadline);
  const std::string peer = context->peer();
  downstream_->VerifyKey(
      call, verify, verified,
      [this, reactor, request, response, decision, deadline, peer, verified](grpc::Status status) {
        if (!status.ok()) {
          Answer(reactor, KeyFailure(status, deadline), *decision, response);
          return;
        }
        // A key with too many denials of late is refused before its body is read too.
        if (grpc::Status refused = CheckDenialBudget(options_, verified->key()); !refused.ok()) {
          Answer(reactor, refused, *decision, response);
          return;
        }
        Decide(reactor, peer, *request, *verified, deadline, decision, response);
      });
  return reactor;
}

void ExtAuthzService::Decide(grpc::ServerUnaryReactor* reactor, const std::string& peer,
                             const envoy::service::auth::v3::CheckRequest& request,
                             const keys::v1::VerifyKeyResponse& verified, absl::Time deadline,
                             v1::DecideResponse* decision,
                             envoy::service::auth::v3::CheckResponse* response) {
  // A request of the key holder's whose body cannot be decided on (too large to parse, not the
  // JSON of a model call, a model name the flow refuses), like a DENY, takes a unit of the
  // key's budget: a key that sends such bodies over and over is refused at the door, before
  // they are read. Not a request refused before its body is read (a method or path of no
  // model call, no body: often how Envoy is set up), nor a refusal of the connection Envoy
  // calls from (its address is the operator's to list), which cost nothing and say nothing of
  // the key.
  const std::string key_id = verified.key().key_id();
  auto charged = [this, key_id](const grpc::Status& status) {
    if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT &&
        options_.denial_budget != nullptr) {
      options_.denial_budget->Denied(key_id);
    }
  };
  auto* decide = google::protobuf::Arena::CreateMessage<v1::DecideRequest>(response->GetArena());
  bool body_read = false;
  if (absl::Status s = DecideRequestFromCheck(request, decide, &body_read); !s.ok()) {
    const grpc::Status refused = EdgeStatus(s);
    if (body_read) charged(refused);
    Answer(reactor, refused, *decision, response);
    return;
  }
  absl::StatusOr<std::string> source_ip =
      trusted_proxies_.CallerAddress(peer, decide->source_ip(), "source.address");
  if (!source_ip.ok()) {
    Answer(reactor, EdgeStatus(source_ip.status()), *decision, response);
    return;
  }
  decide->set_source_ip(*std::move(source_ip));
  // The flow takes the key as verified above (DecideRequestFromCheck reads the same headers)
  // rather than asking keys about it a second time.
  StartDecide(
      downstream_, &options_, decide, decision, deadline,
      [this, reactor, decision, response, charged](grpc::Status status) {
        charged(status);
        Answer(reactor, std::move(status), *decision, response);
      },
      &verified);
}

void ExtAuthzService::Answer(grpc::ServerUnaryReactor* reactor, const grpc::Status& status,
                             const v1::DecideResponse& decision,
                             envoy::service::auth::v3::CheckResponse* response) {
  const bool allowed = status.ok() && decision.verdict() == v1::VERDICT_ALLOW;
  metrics_->Decided("ext_authz", status, allowed, status.ok() ? decision.reason() : "");
  reactor->Finish(ToCheckResponse(status, decision, response));
}

}  // namespace policy::edge
