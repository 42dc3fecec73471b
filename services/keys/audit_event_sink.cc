#include "services/keys/audit_event_sink.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/client/channel.h"
#include "common/log/log.h"
#include "grpcpp/client_context.h"

namespace policy::keys {
namespace {

namespace av1 = audit::v1;

// Who the ledger names as acting: key events are the keys service's own records.
constexpr char kActor[] = "keys-service";

av1::Action ActionOf(KeyEvent::Type type) {
  switch (type) {
    case KeyEvent::Type::kCreated:
      return av1::ACTION_KEY_CREATED;
    case KeyEvent::Type::kRotated:
      return av1::ACTION_KEY_ROTATED;
    case KeyEvent::Type::kRevoked:
      return av1::ACTION_KEY_REVOKED;
    case KeyEvent::Type::kOverlapEnded:
      return av1::ACTION_KEY_OVERLAP_ENDED;
  }
  return av1::ACTION_UNSPECIFIED;
}

}  // namespace

av1::AppendRequest AuditEntryOf(const KeyEvent& event) {
  av1::AppendRequest request;
  av1::EntryInput& entry = *request.mutable_entry();
  entry.set_action(ActionOf(event.type));
  entry.set_actor(kActor);
  if (!event.project.empty()) {
    entry.set_project(event.project);
    entry.set_environment(std::string(EnvironmentName(event.environment)));
  }
  entry.set_outcome(av1::OUTCOME_SUCCESS);
  entry.set_subject(event.owner.id);
  auto& metadata = *entry.mutable_metadata();
  metadata["key_id"] = event.key_id;
  metadata["kind"] = std::string(KindName(event.kind));
  metadata["owner_type"] = std::string(PrincipalTypeName(event.owner.type));
  metadata["at"] = absl::FormatTime(absl::RFC3339_full, event.at, absl::UTCTimeZone());
  if (!event.related_key_id.empty()) metadata["related_key_id"] = event.related_key_id;
  if (!event.reason.empty()) metadata["reason"] = event.reason;
  entry.set_request_id(absl::StrCat("keys:", EventTypeName(event.type), ":", event.key_id));
  return request;
}

AuditEventSink::AuditEventSink(std::shared_ptr<grpc::Channel> channel,
                               AuditEventSinkOptions options, prometheus::Registry* registry)
    : stub_(av1::AuditService::NewStub(std::move(channel))), options_(options) {
  if (registry != nullptr) {
    pending_gauge_ = &prometheus::BuildGauge()
                          .Name("policy_keys_audit_events_pending")
                          .Help("Key lifecycle events waiting to be recorded in the audit ledger.")
                          .Register(*registry)
                          .Add({});
    results_ = &prometheus::BuildCounter()
                    .Name("policy_keys_audit_events_total")
                    .Help(
                        "Key lifecycle events sent to the audit ledger, by result: recorded, "
                        "duplicate (recorded before), refused (logged), dropped (queue full).")
                    .Register(*registry);
  }
  sender_ = std::thread([this] { Run(); });
}

AuditEventSink::~AuditEventSink() {
  size_t lost;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    if (in_flight_ != nullptr) in_flight_->TryCancel();
    lost = queue_.size();
  }
  sender_.join();
  if (lost > 0) {
    LogError("key events not recorded in the audit ledger at shutdown",
             {{"events", absl::StrCat(lost)}});
  }
}

void AuditEventSink::Publish(const KeyEvent& event) {
  av1::AppendRequest request = AuditEntryOf(event);
  absl::MutexLock lock(&mu_);
  if (queue_.size() >= options_.max_pending) {
    LogError("audit event queue full: key event not recorded",
             {{"request_id", request.entry().request_id()}});
    if (results_ != nullptr) results_->Add({{"result", "dropped"}}).Increment();
    return;
  }
  queue_.push_back(std::move(request));
  if (pending_gauge_ != nullptr) pending_gauge_->Set(static_cast<double>(queue_.size()));
}

bool AuditEventSink::Flush(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto drained = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return queue_.empty(); };
  return mu_.AwaitWithTimeout(absl::Condition(&drained), timeout);
}

size_t AuditEventSink::pending() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

void AuditEventSink::Run() {
  absl::Duration backoff = options_.min_backoff;
  for (;;) {
    av1::AppendRequest request;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      request = queue_.front();
    }
    const Result result = Send(request);
    retrying_ = result == Result::kRetry;
    absl::MutexLock lock(&mu_);
    if (result == Result::kRetry) {
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), backoff);
      backoff = std::min(backoff * 2, options_.max_backoff);
      continue;
    }
    backoff = options_.min_backoff;
    queue_.pop_front();
    if (pending_gauge_ != nullptr) pending_gauge_->Set(static_cast<double>(queue_.size()));
    if (results_ != nullptr) {
      const char* name = result == Result::kRecorded    ? "recorded"
                         : result == Result::kDuplicate ? "duplicate"
                                                        : "refused";
      results_->Add({{"result", name}}).Increment();
    }
  }
}

AuditEventSink::Result AuditEventSink::Send(const av1::AppendRequest& request) {
  grpc::ClientContext call;
  client::SetDeadline(call, absl::Now() + options_.call_timeout);
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return Result::kRetry;
    in_flight_ = &call;
  }
  av1::AppendResponse response;
  const grpc::Status status = stub_->Append(&call, request, &response);
  {
    absl::MutexLock lock(&mu_);
    in_flight_ = nullptr;
  }
  if (status.ok()) return response.duplicate() ? Result::kDuplicate : Result::kRecorded;
  const std::string code = absl::StrCat(status.error_code());
  const std::string message = status.error_message();
  const LogFields fields = {
      {"request_id", request.entry().request_id()}, {"code", code}, {"message", message}};
  switch (status.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
      LogError("the audit service refused a key event", fields);
      return Result::kRefused;
    default:
      // Once per outage, not once per attempt.
      if (!retrying_) LogWarning("audit service unavailable for key events; retrying", fields);
      return Result::kRetry;
  }
}

}  // namespace policy::keys
