#include "common/status/grpc_status.h"

#include <string>

#include "common/log/log.h"
#include "common/status/status.h"
#include "google/rpc/status.pb.h"

namespace policy {
namespace {

constexpr absl::string_view kErrorInfoType = "type.googleapis.com/google.rpc.ErrorInfo";
constexpr absl::string_view kRetryInfoType = "type.googleapis.com/google.rpc.RetryInfo";

bool IsServerFault(absl::StatusCode code) {
  return code == absl::StatusCode::kInternal || code == absl::StatusCode::kUnknown ||
         code == absl::StatusCode::kDataLoss;
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status, absl::string_view domain) {
  if (status.ok()) return grpc::Status::OK;
  const auto code = static_cast<grpc::StatusCode>(status.code());
  if (IsServerFault(status.code())) {
    LogError("internal error", {{"status", status.ToString()}});
    return grpc::Status(code, "internal error; see the server log");
  }
  std::string message(status.message());
  std::optional<std::string> reason = ReasonOf(status);
  if (!reason.has_value()) return grpc::Status(code, message);

  google::rpc::ErrorInfo info;
  info.set_reason(*reason);
  info.set_domain(std::string(domain));
  google::rpc::Status details;
  details.set_code(static_cast<int>(code));
  details.set_message(message);
  auto* any = details.add_details();
  any->set_type_url(std::string(kErrorInfoType));
  any->set_value(info.SerializeAsString());
  return grpc::Status(code, message, details.SerializeAsString());
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  absl::Status result(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
  google::rpc::Status details;
  if (status.error_details().empty() || !details.ParseFromString(status.error_details())) {
    return result;
  }
  for (const auto& any : details.details()) {
    google::rpc::ErrorInfo info;
    if (any.type_url() == kErrorInfoType && info.ParseFromString(any.value())) {
      return WithReason(std::move(result), info.reason());
    }
  }
  return result;
}

grpc::Status WithRetryDelay(const grpc::Status& status, absl::Duration delay) {
  if (status.ok()) return status;
  google::rpc::Status details;
  if (status.error_details().empty() || !details.ParseFromString(status.error_details())) {
    details.Clear();
    details.set_code(static_cast<int>(status.error_code()));
    details.set_message(status.error_message());
  }
  google::rpc::RetryInfo info;
  const int64_t seconds = absl::ToInt64Seconds(delay);
  info.mutable_retry_delay()->set_seconds(seconds);
  info.mutable_retry_delay()->set_nanos(
      static_cast<int32_t>(absl::ToInt64Nanoseconds(delay - absl::Seconds(seconds))));
  auto* any = details.add_details();
  any->set_type_url(std::string(kRetryInfoType));
  any->set_value(info.SerializeAsString());
  return grpc::Status(status.error_code(), status.error_message(), details.SerializeAsString());
}

std::optional<absl::Duration> RetryDelayOf(const grpc::Status& status) {
  google::rpc::Status details;
  if (status.error_details().empty() || !details.ParseFromString(status.error_details())) {
    return std::nullopt;
  }
  for (const auto& any : details.details()) {
    google::rpc::RetryInfo info;
    if (any.type_url() == kRetryInfoType && info.ParseFromString(any.value())) {
      return absl::Seconds(info.retry_delay().seconds()) +
             absl::Nanoseconds(info.retry_delay().nanos());
    }
  }
  return std::nullopt;
}

}  // namespace policy
