#include "services/edge/downstream_status.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/status/grpc_status.h"
#include "common/status/status.h"

namespace policy::edge {
namespace {

// pii's reason for a refusal of the policy a request carries (pii.proto).
constexpr absl::string_view kPiiReasonPolicyInvalid = "POLICY_INVALID";
constexpr absl::string_view kPolicyField = "policy.";

}  // namespace

bool FailedToAnswer(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::DATA_LOSS:
    case grpc::StatusCode::UNIMPLEMENTED:
      return true;
    default:
      return false;
  }
}

bool Refused(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return true;
    default:
      return false;
  }
}

grpc::Status DependencyFailure(absl::string_view service, const grpc::Status& s,
                               absl::Time deadline, bool with_detail) {
  if (s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED || absl::Now() >= deadline) {
    return grpc::Status(
        grpc::StatusCode::DEADLINE_EXCEEDED,
        absl::StrCat("the ", service, " service did not answer before the deadline"));
  }
  return grpc::Status(
      grpc::StatusCode::UNAVAILABLE,
      absl::StrCat("the ", service, " service could not answer (",
                   absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())), ")",
                   with_detail ? absl::StrCat(": ", s.error_message()) : ""));
}

grpc::Status DownstreamFailure(absl::string_view service, const grpc::Status& s,
                               absl::Time deadline) {
  if (s.error_code() == grpc::StatusCode::INVALID_ARGUMENT) return s;
  return DependencyFailure(service, s, deadline);
}

absl::string_view RedactionSetting(absl::string_view pii_field) {
  absl::ConsumePrefix(&pii_field, kPolicyField);
  if (absl::StartsWith(pii_field, "rules")) return "blocked_entity_types";
  if (absl::StartsWith(pii_field, "default_rule")) return "redaction_operator";
  return "redaction_operator, blocked_entity_types";
}

grpc::Status RedactFailure(const grpc::Status& s, absl::Time deadline, bool refuses_project_rule) {
  const bool policy_refused = ReasonOf(FromGrpcStatus(s)) == kPiiReasonPolicyInvalid ||
                              (s.error_code() == grpc::StatusCode::INVALID_ARGUMENT &&
                               absl::StartsWith(s.error_message(), kPolicyField));
  if (policy_refused && refuses_project_rule) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("the project's data_policy.pii rules are refused by the pii "
                                     "service (fix or remove them: policyctl projects update "
                                     "--pii): ",
                                     s.error_message()));
  }
  if (policy_refused && (s.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
                         s.error_code() == grpc::StatusCode::FAILED_PRECONDITION)) {
    return grpc::Status(
        grpc::StatusCode::UNAVAILABLE,
        absl::StrCat("the edge's redaction policy is refused by the pii service (setting to fix: ",
                     RedactionSetting(s.error_message()), "): ", s.error_message()));
  }
  return DownstreamFailure("pii", s, deadline);
}

grpc::Status LedgerFailure(const grpc::Status& s, absl::string_view field, absl::Time deadline) {
  if (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
      s.error_code() == grpc::StatusCode::ALREADY_EXISTS) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat(field,
                                     ": already used for a different request; a new request "
                                     "needs a new id"));
  }
  return DownstreamFailure("audit", s, deadline);
}

grpc::Status KeyFailure(const grpc::Status& s, absl::Time deadline, absl::string_view what) {
  if (FailedToAnswer(s.error_code()) || s.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
    return DependencyFailure("keys", s, deadline);
  }
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, absl::StrCat(what, " is not valid"));
}

grpc::Status EdgeStatus(const absl::Status& status) {
  return ToGrpcStatus(status, "edge.policy-suite");
}

}  // namespace policy::edge
