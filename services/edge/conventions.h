#ifndef POLICY_SERVICES_EDGE_CONVENTIONS_H_
#define POLICY_SERVICES_EDGE_CONVENTIONS_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

// The conventions the edge's APIs share: their limits and how they read credentials and
// request ids. Free of wire types; the conversions between services' messages are in
// proto_convert.h.
namespace policy::edge {

// The most tokens one request may be estimated (or reported) to use.
inline constexpr int64_t kMaxEstimatedTokens = 10'000'000;

// The tokens a prompt of `prompt_bytes` (its messages' contents together) is counted as at
// least: one per 4 bytes (tokenizers average about that on English text, more tokens on
// most other text), at most kMaxEstimatedTokens. A request's estimate is never less, so that
// tokens-per-minute limits count a large prompt whatever its caller estimates.
inline int64_t PromptTokens(size_t prompt_bytes) {
  return static_cast<int64_t>(
      std::min<size_t>(prompt_bytes / 4, static_cast<size_t>(kMaxEstimatedTokens)));
}

// How long to wait before retrying, as callers are told it ("retry after N s", an HTTP
// retry-after header): whole seconds, rounded up, at least 1.
inline int64_t RetryAfterSeconds(absl::Duration wait) {
  return std::max<int64_t>(1, absl::ToInt64Seconds(absl::Ceil(wait, absl::Seconds(1))));
}

// The ledger request ids of the decision a caller asked for under `request_id` and of its
// usage. Every id a caller chooses is recorded behind one of these prefixes, which no
// service's own records use ("keys:...", "authz:...", ...): a caller cannot take the id
// under which a key's revocation or a member's removal is to be recorded.
inline constexpr absl::string_view kDecisionEntryPrefix = "decision:";
inline constexpr absl::string_view kUsageEntryPrefix = "usage:";
std::string DecisionEntryId(absl::string_view request_id);
std::string UsageEntryId(absl::string_view request_id);

// A decision's request id, with the longer prefix, within the ledger's 128 bytes.
inline constexpr size_t kMaxDecisionRequestIdBytes = 128 - kDecisionEntryPrefix.size();

// A caller's request id: at most `max_bytes` of [A-Za-z0-9_.:-]; INVALID_ARGUMENT naming
// `field` otherwise.
absl::Status CheckRequestId(absl::string_view id, absl::string_view field, size_t max_bytes = 128);

// A chat message's role ("system", "user", "assistant", "tool", ...): 1 to 64 bytes of
// [A-Za-z0-9_-]; INVALID_ARGUMENT naming `field` otherwise.
absl::Status CheckRole(absl::string_view role, absl::string_view field);

// INVALID_ARGUMENT naming `field` when `value` holds one of the suite's own API keys (their
// prefixes make them recognisable): identifiers are recorded in the ledger as they are, and
// a secret must never be.
absl::Status CheckNoSecret(absl::string_view value, absl::string_view field);

// The token of an "authorization: Bearer <token>" value (the scheme in any case, blanks
// trimmed); empty when the value is not a bearer credential.
std::string BearerToken(absl::string_view authorization);

}  // namespace policy::edge

#endif  // POLICY_SERVICES_EDGE_CONVENTIONS_H_
