#include "services/edge/edge_config.h"

#include "absl/strings/str_cat.h"
#include "common/client/channel.h"
#include "common/status/status.h"
#include "services/edge/trusted_proxies.h"

namespace policy::edge {
namespace {

// The most max_answer_bytes may be: what the edge's own channels receive from pii.
constexpr int64_t kMaxAnswerBytes = client::kMaxAnswerBytes;
// The most denials_per_key_per_minute and denial_burst may be: past a thousand a second a key
// is not limited in any way that spares the ledger.
constexpr int64_t kMaxDenialsPerMinute = 60'000;
constexpr int64_t kMaxDenialBurst = 10'000;

}  // namespace

void EdgeConfig::Register(config::Parser& p) {
  server.Register(p);
  p.AddString("keys_target", &targets.keys, "the keys service, host:port");
  p.AddString("authz_target", &targets.authz, "the authz service, host:port");
  p.AddString("pii_target", &targets.pii, "the pii service, host:port");
  p.AddString("region_target", &targets.region, "the region service, host:port");
  p.AddString("audit_target", &targets.audit, "the audit service, host:port");
  p.AddDuration("max_decision_time", &max_decision_time,
                "the longest a decision may take, whatever the caller's deadline");
  p.AddString("redaction_operator", &redaction_operator,
              "placeholder, redact, replace, mask or hash: what replaces personal data");
  p.AddList("blocked_entity_types", &blocked_entity_types,
            "comma-separated entity types whose presence refuses the request");
  p.AddList("trusted_proxies", &trusted_proxies,
            "comma-separated CIDR blocks of the peers that may state a caller's address "
            "(Decide's source_ip, ext_authz's source.address); others are judged by their own");
  p.AddInt("max_answer_bytes", &max_answer_bytes,
           "largest Decide answer (clients' receive limit); larger: INVALID_ARGUMENT");
  p.AddInt("denials_per_key_per_minute", &denials_per_key_per_minute,
           "DENY decisions recorded per key per minute before its requests are refused "
           "(RESOURCE_EXHAUSTED, not recorded); 0: no limit");
  p.AddInt("denial_burst", &denial_burst,
           "DENY decisions one key may have recorded in a row (denials_per_key_per_minute's "
           "bucket)");
  p.AddDuration("dependency_check_interval", &dependency_check_interval,
                "how often the five services' health is checked (readiness)");
  p.AddInt("dependency_failures", &dependency_failures,
           "checks of one service in a row that must fail before the edge is unready");
  p.AddInt("admin_threads", &admin_threads, "threads for the admin API's calls");
  p.AddInt("admin_queue", &admin_queue, "admin calls that may wait for those threads");
}

absl::Status EdgeConfig::Validate() const {
  if (absl::Status s = server.Validate(); !s.ok()) return s;
  for (const auto& [name, target] :
       {std::pair<const char*, const std::string&>{"keys_target", targets.keys},
        {"authz_target", targets.authz},
        {"pii_target", targets.pii},
        {"region_target", targets.region},
        {"audit_target", targets.audit}}) {
    if (target.empty()) return absl::InvalidArgumentError(absl::StrCat(name, ": required"));
    RETURN_IF_ERROR(client::CheckTarget(name, target));
  }
  if (max_decision_time < absl::Milliseconds(10) || max_decision_time > absl::Minutes(5)) {
    return absl::InvalidArgumentError("max_decision_time must be between 10ms and 5m");
  }
  if (absl::Status s = TrustedProxies::Parse(trusted_proxies).status(); !s.ok()) return s;
  if (server.shutdown_grace < max_decision_time) {
    // Every call's downstream deadline is at most max_decision_time after it started, so a
    // grace at least that long lets every call in flight at shutdown answer for itself.
    return absl::InvalidArgumentError(absl::StrCat(
        "shutdown_grace (", absl::FormatDuration(server.shutdown_grace),
        ") must be at least max_decision_time (", absl::FormatDuration(max_decision_time),
        "): calls in flight at shutdown would be cancelled after being recorded"));
  }
  if (dependency_check_interval < absl::Milliseconds(50) ||
      dependency_check_interval > absl::Minutes(1)) {
    return absl::InvalidArgumentError("dependency_check_interval must be between 50ms and 1m");
  }
  if (max_answer_bytes < (64 << 10) || max_answer_bytes > kMaxAnswerBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_answer_bytes must be between 65536 and ", kMaxAnswerBytes, " (64 MiB)"));
  }
  if (denials_per_key_per_minute < 0 || denials_per_key_per_minute > kMaxDenialsPerMinute) {
    return absl::InvalidArgumentError(
        absl::StrCat("denials_per_key_per_minute must be between 0 (no limit) and ",
                     kMaxDenialsPerMinute, ", not ", denials_per_key_per_minute));
  }
  if (denial_burst < 1 || denial_burst > kMaxDenialBurst) {
    return absl::InvalidArgumentError(absl::StrCat("denial_burst must be between 1 and ",
                                                   kMaxDenialBurst, ", not ", denial_burst));
  }
  if (dependency_failures < 1 || dependency_failures > 100) {
    return absl::InvalidArgumentError("dependency_failures must be between 1 and 100");
  }
  if (admin_threads < 1 || admin_threads > 64 || admin_queue < 1) {
    return absl::InvalidArgumentError(
        "admin_threads must be between 1 and 64 and admin_queue positive");
  }
  return absl::OkStatus();
}

}  // namespace policy::edge
