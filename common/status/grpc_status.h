#ifndef POLICY_COMMON_STATUS_GRPC_STATUS_H_
#define POLICY_COMMON_STATUS_GRPC_STATUS_H_

#include <optional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/support/status.h"

namespace policy {

// The one translation from a domain status to what a gRPC caller sees.
//
// Codes are kept. INTERNAL, UNKNOWN and DATA_LOSS are the server's own failures: the caller
// gets a generic message and the full status is logged. A reason attached with WithReason
// travels as a google.rpc.ErrorInfo (domain `domain`) in the status details.
grpc::Status ToGrpcStatus(const absl::Status& status, absl::string_view domain);

// The translation back, for clients of other services: the code, the message and the
// ErrorInfo reason when present.
absl::Status FromGrpcStatus(const grpc::Status& status);

// `status` (not OK) with a google.rpc.RetryInfo beside its other details: the caller should
// wait `delay` before sending the request again.
grpc::Status WithRetryDelay(const grpc::Status& status, absl::Duration delay);

// The RetryInfo delay in `status`'s details; nullopt when it carries none.
std::optional<absl::Duration> RetryDelayOf(const grpc::Status& status);

}  // namespace policy

#endif  // POLICY_COMMON_STATUS_GRPC_STATUS_H_
