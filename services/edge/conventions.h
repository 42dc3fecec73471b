#ifndef POLICY_SERVICES_EDGE_CONVENTIONS_H_
#define POLICY_SERVICES_EDGE_CONVENTIONS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "policy/audit/v1/audit.pb.h"
#include "policy/keys/v1/keys.pb.h"

// The conventions the edge's APIs share: how it names things across services and reads
// credentials.
namespace policy::edge {

// The most tokens one request may be estimated (or reported) to use.
inline constexpr int64_t kMaxEstimatedTokens = 10'000'000;

// A ledger entry's id for callers: "<project>/<environment>/<index>" ("//<index>" in the
// organisation's ledger).
std::string AuditIdOf(const audit::v1::Entry& entry);

// The ledger environment of a key's environment ("production", ...; "" when unspecified).
std::string EnvironmentName(keys::v1::Environment environment);

// A caller's request id: at most `max_bytes` of [A-Za-z0-9_.:-]; INVALID_ARGUMENT naming
// `field` otherwise.
absl::Status CheckRequestId(absl::string_view id, absl::string_view field, size_t max_bytes = 128);

// The token of an "authorization: Bearer <token>" value (the scheme in any case, blanks
// trimmed); empty when the value is not a bearer credential.
std::string BearerToken(absl::string_view authorization);

}  // namespace policy::edge

#endif  // POLICY_SERVICES_EDGE_CONVENTIONS_H_
