#ifndef POLICY_SERVICES_EDGE_DOWNSTREAM_STATUS_H_
#define POLICY_SERVICES_EDGE_DOWNSTREAM_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/support/status.h"

// What the edge's callers learn when a service behind it answers with an error.
namespace policy::edge {

// The service failed to answer (down, overloaded, past the deadline, broken), as opposed to
// refusing what it was asked.
bool FailedToAnswer(grpc::StatusCode code);

// Whether a downstream call that failed with `code` was refused: the service answered that
// it did nothing (a bad or conflicting request, no permission, no room). Any other failure
// may have happened after the service acted.
bool Refused(grpc::StatusCode code);

// A dependency that failed, for the edge's caller: UNAVAILABLE naming the service and the code
// it failed with, or DEADLINE_EXCEEDED once `deadline` has passed; never an answer. The
// dependency's own message (addresses, a database's error) only `with_detail`, for an
// administrator: an API caller learns nothing of the suite's insides.
grpc::Status DependencyFailure(absl::string_view service, const grpc::Status& status,
                               absl::Time deadline, bool with_detail = false);

// `status` from `service` for the edge's caller: the caller's own input refused
// (INVALID_ARGUMENT) stays as it is; the rest is a dependency failure.
grpc::Status DownstreamFailure(absl::string_view service, const grpc::Status& status,
                               absl::Time deadline);

// The edge setting a field of the redaction policy comes from, as pii names the field in a
// refusal ("policy.rules[0].entity_type", "policy.default_rule.operator"): blocked_entity_types
// for the rules, redaction_operator for the default rule (MakeRedactionPolicy builds them);
// both for any other part, which no single setting names.
absl::string_view RedactionSetting(absl::string_view pii_field);

// What a caller learns when pii did not redact its messages. pii refusing the edge's own
// redaction policy (INVALID_ARGUMENT with ErrorInfo reason POLICY_INVALID, or naming a
// "policy." field) is the edge's misconfiguration, not the caller's: UNAVAILABLE, like any
// dependency the edge cannot use, saying that pii refuses the edge's redaction policy and
// naming the setting to fix. Input of the caller's that pii refused (its messages: too large,
// not UTF-8, ...) stays INVALID_ARGUMENT; the rest is a dependency failure.
// `refuses_project_rule`: what pii refused is one of the project's own rules (DataPolicy.pii,
// RefusesProjectRule): FAILED_PRECONDITION then names them, as the project's to fix.
grpc::Status RedactFailure(const grpc::Status& status, absl::Time deadline,
                           bool refuses_project_rule = false);

// What a caller learns when audit did not record its decision or usage: a request id the
// ledger already holds for another entry is the caller's mistake (FAILED_PRECONDITION,
// naming `field`), input audit refused stays INVALID_ARGUMENT, the rest is a dependency
// failure.
grpc::Status LedgerFailure(const grpc::Status& status, absl::string_view field,
                           absl::Time deadline);

// What a caller learns when keys did not verify its key: UNAUTHENTICATED "<what> is not
// valid" ("API key", or "admin key" on the admin API) whatever keys said of the key (unknown,
// malformed, revoked, expired), unless keys failed to answer or refused the edge itself
// (PERMISSION_DENIED: the edge's certificate is not among keys' tls_allowed_clients), which is
// a dependency failure.
grpc::Status KeyFailure(const grpc::Status& status, absl::Time deadline,
                        absl::string_view what = "API key");

// The edge's own refusal as its callers see it: common/status's one translation, in the
// edge's error domain.
grpc::Status EdgeStatus(const absl::Status& status);

}  // namespace policy::edge

#endif  // POLICY_SERVICES_EDGE_DOWNSTREAM_STATUS_H_
