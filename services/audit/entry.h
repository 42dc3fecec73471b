#ifndef POLICY_SERVICES_AUDIT_ENTRY_H_
#define POLICY_SERVICES_AUDIT_ENTRY_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "services/audit/merkle.h"

// The audit ledger's domain types: plain values, no proto, no SQL.
namespace policy::audit {

enum class Action {
  kApiCall,
  kKeyCreated,
  kKeyRotated,
  kKeyRevoked,
  kModelChanged,
  kPolicyViolation,
  kPiiDetected,
  kRateLimited,
  kFallbackTriggered,
  kDecisionAllow,
  kDecisionDeny,
  kMemberAdded,
  kMemberRemoved,
  kMemberRoleChanged,
  kProjectCreated,
  kProjectChanged,
  kProjectDeleted,
  kKeyOverlapEnded,
  kAuditRead,
  kSubjectForgotten,
  kSubjectAccessExported,
  kServiceAccountCreated,
  kServiceAccountRemoved,
  kEndpointChanged,
  kInvitationChanged,
  kOrgFileApplied,
  kServiceAccountChanged,
  kIdpGroupChanged,
  kMemberErased,
};
inline constexpr int kActionCount = 29;

enum class Outcome { kSuccess, kError, kBlocked };

absl::string_view ActionName(Action action);  // "api_call", "key_created", ...
std::optional<Action> ActionFromName(absl::string_view name);
absl::string_view OutcomeName(Outcome outcome);  // "success", "error", "blocked"

// One ledger: a project and environment, or the organisation's (both empty).
struct LedgerRef {
  std::string project;
  std::string environment;
  bool operator==(const LedgerRef&) const = default;
  auto operator<=>(const LedgerRef&) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const LedgerRef& ref) {
    return H::combine(std::move(h), ref.project, ref.environment);
  }
};

// "project/environment", or "organisation".
std::string LedgerName(const LedgerRef& ledger);

// INVALID_ARGUMENT naming `field` unless the project is empty or a project id
// (ids::ValidateProjectId: [a-z0-9_-]{1,64}) and the environment one of production, staging,
// development, sandbox (empty exactly when the project is).
absl::Status ValidateLedger(const LedgerRef& ledger, absl::string_view field);

using Metadata = std::map<std::string, std::string>;

// What a caller records.
struct EntryInput {
  Action action = Action::kApiCall;
  std::string actor;  // Required.
  LedgerRef ledger;
  std::string model;
  int64_t tokens = 0;
  absl::Duration latency;  // Whole microseconds are kept.
  Outcome outcome = Outcome::kSuccess;
  Metadata metadata;
  std::string content_hash;  // Empty or 32 bytes.
  std::string request_id;    // Empty: not idempotent.
  std::string subject;       // Empty: none.
  // When the change happened where it was made, when that may be earlier than the append
  // (a record another service's outbox delivers): decides whether a person forgotten in
  // between is named (AuditLedger::Append). None, or later than the ledger's clock: the time
  // of the append. Not stored.
  std::optional<absl::Time> occurred_at;
};

inline constexpr size_t kMaxIdentifierBytes = 256;
inline constexpr size_t kMaxModelBytes = 128;
inline constexpr size_t kMaxMetadataPairs = 32;
inline constexpr size_t kMaxMetadataKeyBytes = 64;
inline constexpr size_t kMaxMetadataValueBytes = 1024;
inline constexpr size_t kMaxRequestIdBytes = 128;
// A trillion tokens: far beyond one request, small enough that ledger sums are exact.
inline constexpr int64_t kMaxTokens = 1'000'000'000'000;
inline constexpr absl::Duration kMaxLatency = absl::Hours(24);

// INVALID_ARGUMENT naming the field ("entry.metadata[\"k\"]: ...") for anything outside the
// bounds above, non-UTF-8 text, tokens outside 0..kMaxTokens, latency outside 0..kMaxLatency.
absl::Status ValidateEntryInput(const EntryInput& input);
// INVALID_ARGUMENT naming `field` unless `request_id` is at most kMaxRequestIdBytes of
// [A-Za-z0-9_.:-] (empty passes).
absl::Status ValidateRequestId(absl::string_view request_id, absl::string_view field);

// INVALID_ARGUMENT naming `field` unless `identifier` (an actor or a subject) is at most
// kMaxIdentifierBytes of UTF-8 without NUL bytes.
absl::Status ValidateIdentifier(absl::string_view identifier, absl::string_view field);

// A subject identifier as stored: a pseudonym and the identifier sealed under the subject's
// key. Both empty for "no subject".
struct SealedSubject {
  std::string ref;     // 32 bytes: HMAC-SHA-256(subject key, identifier).
  std::string sealed;  // AES-256-GCM(subject key, identifier).
  bool empty() const { return ref.empty(); }
  bool operator==(const SealedSubject&) const = default;
};

// A stored entry: what the leaf hash covers, and the hashes stored with it.
struct Entry {
  LedgerRef ledger;
  uint64_t index = 0;
  absl::Time time;  // Whole microseconds.
  Action action = Action::kApiCall;
  SealedSubject actor;
  std::string model;
  int64_t tokens = 0;
  absl::Duration latency;  // Whole microseconds.
  Outcome outcome = Outcome::kSuccess;
  Metadata metadata;
  std::string content_hash;
  std::string request_id;
  SealedSubject subject;
  Hash leaf_hash{};
  // The hashes of the perfect subtrees this entry completes, level 1 upward
  // (CompletedLevels(index) of them).
  std::vector<Hash> completed;
  // EntryAuthenticator::Mac of the entry (checkpoint.h): 32 bytes, written by the audit
  // service, which alone holds its key; empty for entries stored before entries carried one
  // (migration 004) or by a store no AuditLedger authenticates. Not part of the leaf.
  std::string mac;

  bool operator==(const Entry&) const = default;
};

// The leaf data: a versioned, length-prefixed encoding of every field above except the
// hashes. Equal entries encode equally; any changed field changes the encoding.
std::string EncodeLeafData(const Entry& entry);
Hash EntryLeafHash(const Entry& entry);

// Whether two entries record the same request: every field a caller chose is equal (the
// time, index, sealed identifiers and hashes are not compared).
bool SameRequest(const Entry& a, const Entry& b);

// The metadata's own canonical encoding (stored as one column) and its inverse;
// DATA_LOSS for bytes that are not such an encoding.
std::string EncodeMetadata(const Metadata& metadata);
absl::StatusOr<Metadata> DecodeMetadata(absl::string_view bytes);

// The completed hashes as stored: concatenated, 32 bytes each; DATA_LOSS for a length that
// is not a multiple of 32.
std::string EncodeHashes(const std::vector<Hash>& hashes);
absl::StatusOr<std::vector<Hash>> DecodeHashes(absl::string_view bytes);

}  // namespace policy::audit

#endif  // POLICY_SERVICES_AUDIT_ENTRY_H_
