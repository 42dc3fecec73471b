#ifndef POLICY_COMMON_STATUS_STATUS_H_
#define POLICY_COMMON_STATUS_STATUS_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace policy {

// Attaches a stable, machine-readable reason (UPPER_SNAKE_CASE, e.g. "KEY_REVOKED") to a
// status. The gRPC translation carries it to callers as google.rpc.ErrorInfo.
absl::Status WithReason(absl::Status status, absl::string_view reason);

// The reason attached by WithReason, if any.
std::optional<std::string> ReasonOf(const absl::Status& status);

// The same status without its reason (what an untrusted caller may see).
absl::Status WithoutReason(absl::Status status);

}  // namespace policy

#define POLICY_STATUS_CONCAT_INNER_(a, b) a##b
#define POLICY_STATUS_CONCAT_(a, b) POLICY_STATUS_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` (an absl::Status) is not OK.
#define RETURN_IF_ERROR(expr)                                           \
  do {                                                                  \
    if (::absl::Status policy_status_ = (expr); !policy_status_.ok()) { \
      return policy_status_;                                            \
    }                                                                   \
  } while (false)

// `ASSIGN_OR_RETURN(T x, StatusOr<T>-expr)` declares or assigns `x` from the value, or
// returns the error from the enclosing function.
#define ASSIGN_OR_RETURN(lhs, expr) \
  POLICY_ASSIGN_OR_RETURN_IMPL_(POLICY_STATUS_CONCAT_(policy_statusor_, __LINE__), lhs, expr)

#define POLICY_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, expr) \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) {                                    \
    return std::move(statusor).status();                   \
  }                                                        \
  lhs = std::move(statusor).value()

#endif  // POLICY_COMMON_STATUS_STATUS_H_
