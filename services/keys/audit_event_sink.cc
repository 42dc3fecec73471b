#include "services/keys/audit_event_sink.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/client/channel.h"
#include "common/log/log.h"
#include "grpcpp/client_context.h"
#include "policy/audit/v1/audit.grpc.pb.h"
#include "services/keys/audit_entry_convert.h"

namespace policy::keys {

namespace av1 = audit::v1;

struct AuditEventSink::Client {
  explicit Client(std::shared_ptr<grpc::Channel> channel)
      : stub(av1::AuditService::NewStub(std::move(channel))) {}
  std::unique_ptr<av1::AuditService::Stub> stub;
};

AuditEventSink::AuditEventSink(std::shared_ptr<grpc::Channel> channel,
                               AuditEventSinkOptions options, prometheus::Registry* registry)
    : client_(std::make_unique<Client>(std::move(channel))), options_(options) {
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
  absl::MutexLock lock(&mu_);
  if (queue_.size() >= options_.max_pending) {
    LogError("audit event queue full: key event not recorded",
             {{"event", EventTypeName(event.type)}, {"key_id", event.key_id}});
    if (results_ != nullptr) results_->Add({{"result", "dropped"}}).Increment();
    return;
  }
  queue_.push_back(event);
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
    KeyEvent event;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_SHARED_LOCKS_REQUIRED(mu_) { return stopping_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (stopping_) return;
      event = queue_.front();
    }
    const Result result = Send(event);
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

AuditEventSink::Result AuditEventSink::Send(const KeyEvent& event) {
  const av1::AppendRequest request = AuditEntryOf(event);
  grpc::ClientContext call;
  client::SetDeadline(call, absl::Now() + options_.call_timeout);
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return Result::kRetry;
    in_flight_ = &call;
  }
  av1::AppendResponse response;
  const grpc::Status status = client_->stub->Append(&call, request, &response);
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
