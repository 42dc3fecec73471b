#include "services/authz/authorizer.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/crypto.h"
#include "common/ids/project_id.h"
#include "common/status/status.h"
#include "common/text/caller_text.h"
#include "services/authz/org_validation.h"

namespace policy::authz {
namespace {

// A digest of what a usage report says, so that a retry can be told from another report
// reusing the id.
std::string UsageFingerprint(const UsageReport& report) {
  const CheckRequest& who = report.who;
  return absl::BytesToHexString(crypto::Sha256(absl::StrCat(
      static_cast<int>(who.principal_kind), ":", who.principal_id.size(), ":", who.principal_id,
      ":", who.project.size(), ":", who.project, ":", report.estimated_tokens, ":",
      report.actual_tokens, report.refund_request ? ":refund_request" : "")));
}

// The buckets an API request counts against, and the names callers see for them. Bucket keys
// are short ("p/<project>/r", "m/<member>/<project>/t", "s/<account>/r") so that most fit in
// a string's inline buffer: they are built on every check.
struct Charges {
  Charges() {
    buckets.reserve(4);
    names.reserve(4);
  }
  std::vector<BucketCharge> buckets;
  std::vector<absl::string_view> names;
  void Add(absl::string_view name, std::string key, int64_t per_minute, int64_t units) {
    buckets.push_back(BucketCharge{std::move(key), per_minute, units});
    names.push_back(name);
  }
};

// Limits stored before the bounds of ValidateLimits count as the largest allowed.
int64_t Rpm(int64_t limit) { return std::min(limit, kMaxRpmLimit); }
int64_t Tpm(int64_t limit) { return std::min(limit, kMaxTpmLimit); }

// `tokens` for the token buckets, `requests` for the request buckets (0 leaves them out;
// negative gives units back).
Charges ChargesFor(const OrgSnapshot& org, const CheckRequest& check, int64_t requests,
                   int64_t tokens) {
  Charges charges;
  const Project* project = org.FindProject(check.project);
  if (project == nullptr) return charges;
  const std::string& p = project->id;
  if (requests != 0)
    charges.Add("project.rpm", absl::StrCat("p/", p, "/r"), Rpm(project->rpm_limit), requests);
  if (tokens != 0)
    charges.Add("project.tpm", absl::StrCat("p/", p, "/t"), Tpm(project->tpm_limit), tokens);
  if (check.principal_kind == PrincipalKind::kServiceAccount) {
    const ServiceAccount* account = org.FindServiceAccount(check.principal_id);
    if (account == nullptr) return charges;
    if (account->rpm_limit > 0 && requests != 0) {
      charges.Add("principal.rpm", absl::StrCat("s/", account->id, "/r"), Rpm(account->rpm_limit),
                  requests);
    }
    if (account->tpm_limit > 0 && tokens != 0) {
      charges.Add("principal.tpm", absl::StrCat("s/", account->id, "/t"), Tpm(account->tpm_limit),
                  tokens);
    }
  } else {
    if (project->member_rpm_limit > 0 && requests != 0) {
      charges.Add("principal.rpm", absl::StrCat("m/", check.principal_id, "/", p, "/r"),
                  Rpm(project->member_rpm_limit), requests);
    }
    if (project->member_tpm_limit > 0 && tokens != 0) {
      charges.Add("principal.tpm", absl::StrCat("m/", check.principal_id, "/", p, "/t"),
                  Tpm(project->member_tpm_limit), tokens);
    }
  }
  return charges;
}

}  // namespace

Authorizer::Authorizer(const OrgCache* cache, RateLimiter* limiter, Clock* clock)
    : cache_(cache), limiter_(limiter), clock_(clock) {}

absl::StatusOr<std::optional<Authorization>> Authorizer::TryAuthorize(
    const AuthorizeRequest& request) {
  Authorization result;
  bool decided = false;
  RETURN_IF_ERROR(Evaluate(request, /*may_block=*/false, result, decided));
  if (!decided) return std::optional<Authorization>();
  return std::optional<Authorization>(std::move(result));
}

absl::StatusOr<Authorization> Authorizer::Authorize(const AuthorizeRequest& request) {
  Authorization result;
  bool decided = false;
  RETURN_IF_ERROR(Evaluate(request, /*may_block=*/true, result, decided));
  return result;
}

absl::Status Authorizer::Evaluate(const AuthorizeRequest& request, bool may_block,
                                  Authorization& result, bool& decided) {
  decided = true;
  if (request.estimated_tokens < 0) {
    return absl::InvalidArgumentError("estimated_tokens must not be negative");
  }
  if (request.estimated_tokens > kMaxTpmLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("estimated_tokens: more than the maximum of ", kMaxTpmLimit));
  }
  ASSIGN_OR_RETURN(OrgView view, cache_->Current());
  const absl::Time now = clock_->Now();
  result.org_version = view.state->version;
  ASSIGN_OR_RETURN(result.decision, Check(*view.snapshot, request.check, now));
  const Project* project = view.snapshot->FindProject(request.check.project);
  if (project != nullptr && result.decision.action_kind == ActionKind::kApi) {
    result.residency = project->data_policy.residency;
    result.pii_rules = project->data_policy.pii_rules;
    result.data_class = project->data_policy.data_class;
  }
  if (!result.decision.allowed) return absl::OkStatus();
  if (result.decision.action_kind != ActionKind::kApi) return absl::OkStatus();
  if (request.check.grants_only) return absl::OkStatus();  // No budget taken.
  if (project != nullptr) {
    result.zero_data_retention = project->data_policy.zero_data_retention;
  }

  const Charges charges = ChargesFor(*view.snapshot, request.check, 1, request.estimated_tokens);
  std::optional<LimitDecision> limits = limiter_->TryAcquireLocal(charges.buckets, now);
  if (!limits.has_value()) {
    if (!may_block) {
      decided = false;
      return absl::OkStatus();
    }
    ASSIGN_OR_RETURN(limits, limiter_->Acquire(charges.buckets, now));
  }
  result.budgets.reserve(limits->remaining.size());
  for (size_t i = 0; i < limits->remaining.size() && i < charges.names.size(); ++i) {
    result.budgets.push_back(Budget{std::string(charges.names[i]), limits->remaining[i].per_minute,
                                    limits->remaining[i].remaining});
  }
  if (limits->allowed) {
    if (request.check.explain) {
      result.decision.trace.push_back(
          {"rate_limit", true, absl::StrCat(charges.buckets.size(), " limits have room")});
    }
    return absl::OkStatus();
  }
  absl::string_view limited_name = "rate_limit";
  for (size_t i = 0; i < charges.buckets.size(); ++i) {
    if (charges.buckets[i].key == limits->limiting_key) limited_name = charges.names[i];
  }
  result.rate_limited = true;
  result.limit_rule = absl::StrCat("rate_limit.", limited_name);
  result.retry_after = limits->retry_after;
  result.decision.allowed = false;
  result.decision.reason = DenyReason::kRateLimited;
  result.decision.rule = "rate_limit";
  if (request.check.explain) {
    result.decision.trace.push_back(
        {"rate_limit", false,
         limits->retry_after == absl::InfiniteDuration()
             ? absl::StrCat(limited_name, ": the request is larger than the limit")
             : absl::StrCat(limited_name, " exhausted; retry after ",
                            absl::FormatDuration(limits->retry_after))});
  }
  return absl::OkStatus();
}

absl::StatusOr<UsageReconciliation> Authorizer::ReportUsage(const UsageReport& report) {
  RETURN_IF_ERROR(ValidateRequestId(report.request_id, /*required=*/true));
  if (report.estimated_tokens < 0 || report.actual_tokens < 0) {
    return absl::InvalidArgumentError("token counts must not be negative");
  }
  if (report.estimated_tokens > kMaxTpmLimit || report.actual_tokens > kMaxTpmLimit) {
    return absl::InvalidArgumentError(absl::StrCat(
        "estimated_tokens and actual_tokens: more than the maximum of ", kMaxTpmLimit));
  }
  if (report.refund_request && report.actual_tokens != 0) {
    return absl::InvalidArgumentError(
        "actual_tokens must be 0 with refund_request: the request was not sent to the model");
  }
  const CheckRequest& who = report.who;
  // An id no member or service account can have. One the snapshot does not know is still
  // charged to its project (and its own limits): it may have been added since, or removed
  // after its request was allowed.
  RETURN_IF_ERROR(ValidateId(who.principal_id, "principal.id"));
  RETURN_IF_ERROR(ids::ValidateProjectId(who.project, "project"));
  ASSIGN_OR_RETURN(OrgView view, cache_->Current());
  if (view.snapshot->FindProject(who.project) == nullptr) {
    return absl::NotFoundError(absl::StrCat("no project ", Quoted(who.project)));
  }
  const int64_t delta = report.actual_tokens - report.estimated_tokens;
  const Charges charges = ChargesFor(*view.snapshot, who, report.refund_request ? -1 : 0, delta);
  ASSIGN_OR_RETURN(BucketStore::ReportOutcome outcome,
                   limiter_->Reconcile(report.request_id, UsageFingerprint(report), charges.buckets,
                                       clock_->Now()));
  if (outcome == BucketStore::ReportOutcome::kConflict) {
    return absl::AlreadyExistsError(absl::StrCat("request_id ", Quoted(report.request_id),
                                                 " was reported before with other usage"));
  }
  return UsageReconciliation{delta, outcome == BucketStore::ReportOutcome::kDuplicate};
}

}  // namespace policy::authz
