#ifndef POLICY_SERVICES_EDGE_DECISION_FLOW_H_
#define POLICY_SERVICES_EDGE_DECISION_FLOW_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/support/status.h"
#include "policy/edge/v1/edge.pb.h"
#include "prometheus/counter.h"
#include "services/edge/denial_budget.h"
#include "services/edge/downstream.h"
#include "services/edge/pii_rules.h"

// The edge's two flows, over the other services' wire types: the edge holds no domain of its
// own, so the flow is its translation layer (a request in, the services' messages out and
// back, an answer), and its conventions.h stays free of them. Decide: keys verifies the key; then
// authz checks access and reserves budget while pii redacts the messages; then region routes; then
// audit records the decision durably; only then is the answer given. ReportUsage: keys verifies the
// key; then authz reconciles the tokens, region learns the endpoint's outcome and audit records the
// call.
//
// Failure semantics (fail closed): a key that does not verify is UNAUTHENTICATED whatever the
// reason; the caller's own mistakes are INVALID_ARGUMENT naming the field; a policy refusal is
// an OK answer with verdict DENY, recorded in the ledger like an ALLOW; a dependency that
// fails is UNAVAILABLE (DEADLINE_EXCEEDED once the deadline has passed) and never an ALLOW.
namespace policy::edge {

struct FlowOptions {
  // What pii does with each entity type found in the messages: the deployment's policy, each
  // of whose rules a project's own rule for the type replaces (authz's DataPolicy.pii).
  pii::v1::RedactionPolicy redaction;
  // Envoy's check: the prompt goes on as the caller sent it, so every rule that would redact
  // blocks instead (ApplyProjectRules).
  bool forwards_as_sent = false;
  // The projects' rules as last seen, shared by every flow of the process (see pii_rules.h);
  // null: each decision starts with none, and redacts again for a project that has rules.
  // Must outlive the flows.
  KnownPiiRules* known_pii_rules = nullptr;
  // Counts the decisions whose messages were redacted again under the rules the check stated;
  // null: not counted. Must outlive the flows.
  prometheus::Counter* repeated_redactions = nullptr;
  // Counts the decisions that failed because pii refused the project's own rules; null: not
  // counted. Must outlive the flows.
  prometheus::Counter* project_rules_refused = nullptr;
  // The largest answer an ALLOW may make (gRPC clients' default receive limit): one that
  // would be larger (its redacted messages and, when asked for, the placeholder mapping) is
  // refused with INVALID_ARGUMENT naming return_mapping (or messages), before the decision is
  // recorded, and its reservation given back.
  size_t max_answer_bytes = 4 << 20;
  // Each key's denials (see denial_budget.h), shared by every flow of the process; null: no
  // limit. A key whose budget is spent is refused as soon as it is verified, before authz,
  // pii, region or audit is asked: RESOURCE_EXHAUSTED "too many denied requests for this key;
  // retry after N s" with ErrorInfo reason TOO_MANY_DENIALS and a google.rpc.RetryInfo.
  // Such a refusal is no decision: nothing is reserved or recorded. Every DENY answered takes
  // one unit of the key's budget; an ALLOW takes none. Must outlive the flows.
  DenialBudget* denial_budget = nullptr;
};

// The policy of FlowOptions::redaction: every entity type replaced by `op` ("placeholder",
// "redact", "replace", "mask" or "hash") except `blocked_types`, which refuse the request.
// Its base class is PUBLIC: pii's report classifies what it finds, and a decision's data is
// the more sensitive of that and its project's class (DataPolicy.data_class).
// INVALID_ARGUMENT for an unknown operator or a malformed type name; whether pii detects the
// types is CheckRedactionServable's to say.
absl::StatusOr<pii::v1::RedactionPolicy> MakeRedactionPolicy(
    absl::string_view op, const std::vector<std::string>& blocked_types);

// OK when pii can apply `policy` as `known` (pii's ListEntityTypes answer) describes it: it
// detects every entity type the policy names (its rules' and classes', custom recognizers'
// types included), and it has a pseudonym key when a rule hashes. Else FAILED_PRECONDITION
// naming each problem and the setting it comes from ("blocked_entity_types: the pii service
// detects no entity type 'AWS_ACCESS_KEYS'"; "redaction_operator: hash, but ...").
absl::Status CheckRedactionServable(const pii::v1::RedactionPolicy& policy,
                                    const pii::v1::ListEntityTypesResponse& known);

// OK when a request of `key` (verified) may be decided on now; else the refusal at the door
// that FlowOptions::denial_budget describes. StartDecide checks it as soon as the key is
// verified; a caller that verifies the key itself may check it sooner, before reading more.
grpc::Status CheckDenialBudget(const FlowOptions& options, const keys::v1::Key& key);

// Checks what the edge can check itself: INVALID_ARGUMENT naming the field, UNAUTHENTICATED
// for a missing key.
absl::Status ValidateDecideRequest(const v1::DecideRequest& request);
absl::Status ValidateReportUsageRequest(const v1::ReportUsageRequest& request);

// Runs one Decide: fills `response`, then calls `done` once, on any thread. `request`,
// `response`, `options` and `downstream` must outlive `done`; every downstream call carries
// `deadline`. Downstream messages live on `response`'s arena when it has one.
// `verified_key`, when not null, is keys' OK VerifyKey answer about `request->api_key()`,
// obtained by the caller under `deadline` (ext_authz verifies the key before it reads the
// body): keys is then not asked again, and everything that follows a verification (the key's
// kind, project and scope, authz, pii, region, audit) runs as it does after the flow's own.
// It must outlive `done`. Decide over gRPC passes none: the flow verifies the key itself.
void StartDecide(Downstream* downstream, const FlowOptions* options,
                 const v1::DecideRequest* request, v1::DecideResponse* response,
                 absl::Time deadline, Downstream::Done done,
                 const keys::v1::VerifyKeyResponse* verified_key = nullptr);

// Runs one ReportUsage, with the same contract.
void StartReportUsage(Downstream* downstream, const v1::ReportUsageRequest* request,
                      v1::ReportUsageResponse* response, absl::Time deadline,
                      Downstream::Done done);

}  // namespace policy::edge

#endif  // POLICY_SERVICES_EDGE_DECISION_FLOW_H_
