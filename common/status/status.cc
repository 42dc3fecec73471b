#include "common/status/status.h"

#include <utility>

#include "absl/strings/cord.h"

namespace policy {
namespace {

constexpr absl::string_view kReasonPayload = "policy.suite/reason";

}  // namespace

absl::Status WithReason(absl::Status status, absl::string_view reason) {
  if (!status.ok()) status.SetPayload(kReasonPayload, absl::Cord(reason));
  return status;
}

std::optional<std::string> ReasonOf(const absl::Status& status) {
  auto payload = status.GetPayload(kReasonPayload);
  if (!payload.has_value()) return std::nullopt;
  return std::string(*payload);
}

absl::Status WithoutReason(absl::Status status) {
  status.ErasePayload(kReasonPayload);
  return status;
}

}  // namespace policy
