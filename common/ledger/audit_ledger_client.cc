#include "common/ledger/audit_ledger_client.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/client/channel.h"
#include "common/proto/well_known.h"
#include "policy/audit/v1/audit.grpc.pb.h"

namespace policy::ledger {

namespace av1 = audit::v1;

struct AuditLedgerClient::Stub {
  explicit Stub(std::shared_ptr<grpc::Channel> channel)
      : stub(av1::AuditService::NewStub(std::move(channel))) {}
  std::unique_ptr<av1::AuditService::Stub> stub;
};

AuditLedgerClient::AuditLedgerClient(std::shared_ptr<grpc::Channel> channel,
                                     absl::Duration call_timeout)
    : stub_(std::make_unique<Stub>(std::move(channel))), call_timeout_(call_timeout) {}

AuditLedgerClient::~AuditLedgerClient() = default;

void AuditLedgerClient::Cancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  if (in_flight_ != nullptr) in_flight_->TryCancel();
}

Delivery AuditLedgerClient::Deliver(const LedgerRecord& record, absl::Time occurred_at) {
  av1::Action action = av1::ACTION_UNSPECIFIED;
  if (!av1::Action_Parse(absl::StrCat("ACTION_", record.action), &action) ||
      action == av1::ACTION_UNSPECIFIED) {
    return Delivery{Delivery::Result::kRefused,
                    absl::StrCat("unknown ledger action \"", record.action, "\"")};
  }
  av1::AppendRequest request;
  av1::EntryInput& entry = *request.mutable_entry();
  entry.set_action(action);
  entry.set_actor(record.actor);
  entry.set_project(record.project);
  entry.set_environment(record.environment);
  entry.set_outcome(av1::OUTCOME_SUCCESS);
  entry.set_subject(record.subject);
  entry.set_request_id(record.request_id);
  proto::SetTime(occurred_at, entry.mutable_occurred_at());
  entry.mutable_metadata()->insert(record.metadata.begin(), record.metadata.end());

  grpc::ClientContext call;
  client::SetDeadline(call, absl::Now() + call_timeout_);
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) return Delivery{Delivery::Result::kRetry, "stopping"};
    in_flight_ = &call;
  }
  av1::AppendResponse response;
  const grpc::Status status = stub_->stub->Append(&call, request, &response);
  {
    absl::MutexLock lock(&mu_);
    in_flight_ = nullptr;
  }
  if (status.ok()) {
    return Delivery{
        response.duplicate() ? Delivery::Result::kDuplicate : Delivery::Result::kRecorded, ""};
  }
  std::string error = absl::StrCat("audit Append of ", record.request_id, ": code ",
                                   status.error_code(), ": ", status.error_message());
  switch (status.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
      return Delivery{Delivery::Result::kRefused, std::move(error)};
    default:
      return Delivery{Delivery::Result::kRetry, std::move(error)};
  }
}

std::unique_ptr<LedgerDestination> OpenLedgerDestination(
    const std::string& audit_target, std::shared_ptr<grpc::ChannelCredentials> credentials) {
  if (audit_target.empty()) return std::make_unique<LogLedgerDestination>();
  return std::make_unique<AuditLedgerClient>(
      client::OpenChannel(audit_target, std::move(credentials)));
}

}  // namespace policy::ledger
