#ifndef POLICY_SERVICES_KEYS_KEY_H_
#define POLICY_SERVICES_KEYS_KEY_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

// The keys service's domain types: plain values, no proto, no SQL.
namespace policy::keys {

enum class KeyKind { kProject, kServiceAccount, kAdmin };
enum class PrincipalType { kMember, kServiceAccount };
enum class Environment { kProduction, kStaging, kDevelopment, kSandbox };

// kActive, kRotating and kRevoked are stored; kExpired is derived from expires_at.
enum class KeyState { kActive, kRotating, kRevoked, kExpired };

struct Principal {
  PrincipalType type = PrincipalType::kMember;
  std::string id;
  bool operator==(const Principal&) const = default;
};

// One key as the store keeps it. The secret itself is never here, only its keyed hash.
struct KeyRecord {
  std::string key_id;  // "key_" + 17 base62 characters.
  KeyKind kind = KeyKind::kProject;
  Principal owner;
  std::string project;  // Empty for admin keys.
  Environment environment = Environment::kDevelopment;
  std::vector<std::string> scopes;
  std::string secret_hash;  // HMAC-SHA-256 of the secret's random part (Pepper::HashSecret).
  std::string redacted;     // Prefix and last four characters.
  KeyState state = KeyState::kActive;  // kActive, kRotating or kRevoked.
  absl::Time created_at;
  absl::Time expires_at;
  std::optional<absl::Time> overlap_ends_at;  // Set with kRotating.
  std::string rotated_from;
  std::string rotated_to;
  std::optional<absl::Time> revoked_at;
  std::string revocation_reason;

  bool operator==(const KeyRecord&) const = default;
};

// The state a caller sees at `now`: a rotating key past its overlap end, or any key past its
// expiry, no longer verifies even before a sweep has rewritten the row.
KeyState StateAt(const KeyRecord& key, absl::Time now);

absl::string_view KindName(KeyKind kind);                 // "project", "service_account", "admin"
absl::string_view PrincipalTypeName(PrincipalType type);  // "member", "service_account"
absl::string_view EnvironmentName(Environment environment);  // "production", ...
absl::string_view StateName(KeyState state);  // "active", "rotating", "revoked", "expired"

absl::StatusOr<KeyKind> ParseKind(absl::string_view name);
absl::StatusOr<PrincipalType> ParsePrincipalType(absl::string_view name);
absl::StatusOr<Environment> ParseEnvironment(absl::string_view name);
absl::StatusOr<KeyState> ParseState(absl::string_view name);

// Revocation reasons written by the service itself.
inline constexpr absl::string_view kReasonOverlapEnded = "rotation overlap ended";

// How long after its expiry a key still verifies for reporting the usage of calls decided
// while it was valid (VerifyKeyRequest.for_usage_report).
inline constexpr absl::Duration kUsageReportGrace = absl::Hours(24);

}  // namespace policy::keys

#endif  // POLICY_SERVICES_KEYS_KEY_H_
