#ifndef POLICY_SERVICES_AUTHZ_AUTHORIZER_H_
#define POLICY_SERVICES_AUTHZ_AUTHORIZER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock/clock.h"
#include "services/authz/decision.h"
#include "services/authz/org_cache.h"
#include "services/authz/rate_limiter.h"

namespace policy::authz {

struct AuthorizeRequest {
  CheckRequest check;
  int64_t estimated_tokens = 0;
};

// A budget as the caller sees it: "project.rpm", "principal.tpm", ...
struct Budget {
  std::string name;
  int64_t limit_per_minute = 0;
  int64_t remaining = 0;
};

struct Authorization {
  Decision decision;  // reason kNone and allowed, or the denial; see rate_limited.
  bool rate_limited = false;
  std::string limit_rule;  // "rate_limit.project.rpm", ... when rate_limited.
  absl::Duration retry_after = absl::ZeroDuration();  // InfiniteDuration: never.
  std::vector<Budget> budgets;
  int64_t org_version = 0;
  // An allowed API action in a project whose data policy requires zero data retention.
  bool zero_data_retention = false;
  // An API action in a project that exists: where the project's data policy keeps its calls.
  std::optional<Residency> residency;
  // The same: the project's own rules for what pii finds (DataPolicy::pii_rules), and the
  // class of its prompts before pii looks at them.
  std::vector<PiiRule> pii_rules;
  std::optional<DataClass> data_class;
};

// What a request used, reported after the LLM call.
struct UsageReport {
  std::string request_id;
  CheckRequest who;  // The principal and project (other fields unused).
  int64_t estimated_tokens = 0;
  int64_t actual_tokens = 0;
  // The request was never sent to the model: the request unit its check reserved comes back
  // too. Requires actual_tokens == 0.
  bool refund_request = false;
};

struct UsageReconciliation {
  int64_t adjusted_tokens = 0;  // actual - estimated: charged (> 0) or refunded (< 0).
  bool duplicate = false;       // The id was reported before; nothing changed now.
};

// Every "may this principal do this?": the rules of decision.h on the cached organisation,
// then, for API permissions, the rate limits: requests and tokens per minute for the project,
// for the principal inside the project (members: the project's member limits; service
// accounts: their own), all or nothing.
//
// Fails closed: UNAVAILABLE while the organisation snapshot is staler than its bound, or
// while the limits' shared store cannot be reached and this replica's leases do not cover
// the request. Thread-safe.
class Authorizer {
 public:
  Authorizer(const OrgCache* cache, RateLimiter* limiter, Clock* clock);

  // Decides from memory alone; nullopt when the rate limiter must consult its store (call
  // Authorize then, off the callback threads).
  absl::StatusOr<std::optional<Authorization>> TryAuthorize(const AuthorizeRequest& request);
  absl::StatusOr<Authorization> Authorize(const AuthorizeRequest& request);

  // Reconciles a request's estimated tokens with the actual ones, on the same token buckets
  // the check charged, and with refund_request gives back the unit the check took from each
  // request bucket; once per `request_id` (at most 128 bytes) across every replica for
  // kReportRetention: a retry with the same id changes nothing and says so (duplicate);
  // the same id with other usage is ALREADY_EXISTS.
  absl::StatusOr<UsageReconciliation> ReportUsage(const UsageReport& report);

 private:
  // Fills `out`; sets *decided to false (and leaves `out` partial) when the limiter must
  // consult its store and `may_block` is false.
  absl::Status Evaluate(const AuthorizeRequest& request, bool may_block, Authorization& out,
                        bool& decided);

  const OrgCache* const cache_;
  RateLimiter* const limiter_;
  Clock* const clock_;
};

}  // namespace policy::authz

#endif  // POLICY_SERVICES_AUTHZ_AUTHORIZER_H_
