#ifndef POLICY_COMMON_PII_RULE_PII_RULE_H_
#define POLICY_COMMON_PII_RULE_PII_RULE_H_

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

// A project's rule for one type of personal data or secret that pii finds in its prompts, in
// one vocabulary for authz (which keeps it in the project's data policy), the organisation
// file and policyctl.
namespace policy {

// An entity type as pii names it: 1 to 64 bytes of [A-Z][A-Z0-9_]* (US_SSN, EMAIL_ADDRESS).
inline constexpr size_t kMaxEntityTypeBytes = 64;
bool IsValidEntityType(absl::string_view entity_type);

// What becomes of a value of the type: replaced (by one of pii's operators), the request
// blocked, or the value allowed through (still counted and recorded).
enum class PiiTreatment { kRedact, kMask, kReplace, kHash, kPlaceholder, kBlock, kAllow };

// "redact", "mask", "replace", "hash", "placeholder", "block", "allow".
absl::string_view PiiTreatmentName(PiiTreatment treatment);
std::optional<PiiTreatment> ParsePiiTreatment(absl::string_view name);
// "redact, mask, replace, hash, placeholder, block, allow": every name, for messages.
std::string PiiTreatmentNames();

struct PiiRule {
  std::string entity_type;
  PiiTreatment treatment = PiiTreatment::kRedact;
  bool operator==(const PiiRule&) const = default;
};

inline constexpr size_t kMaxPiiRules = 64;

// "US_SSN=block".
std::string FormatPiiRule(const PiiRule& rule);
// The reverse of FormatPiiRule; INVALID_ARGUMENT "<field>: ..." naming what is wrong.
absl::StatusOr<PiiRule> ParsePiiRule(absl::string_view text, absl::string_view field);

// OK when there are at most kMaxPiiRules, each for a valid entity type and none for a type
// another names; else INVALID_ARGUMENT naming "<field>[i]".
absl::Status ValidatePiiRules(absl::Span<const PiiRule> rules, absl::string_view field);

// Ordered by entity type: the one order rules are kept and compared in.
void SortPiiRules(std::vector<PiiRule>& rules);

}  // namespace policy

#endif  // POLICY_COMMON_PII_RULE_PII_RULE_H_
