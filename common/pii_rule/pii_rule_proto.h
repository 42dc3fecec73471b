#ifndef POLICY_COMMON_PII_RULE_PII_RULE_PROTO_H_
#define POLICY_COMMON_PII_RULE_PII_RULE_PROTO_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/pii_rule/pii_rule.h"
#include "policy/pii/v1/pii.pb.h"

// policy.pii.v1.EntityRule <-> PiiRule, for the translation layers that carry a project's
// rules.
namespace policy {

// The rule `rule` states: BLOCK, ALLOW, or REDACT (or unspecified) with its operator
// (unspecified: REDACT). INVALID_ARGUMENT "<field>.action: unknown value N" (or .operator)
// outside the enums; the entity type is not checked here (ValidatePiiRules).
absl::StatusOr<PiiRule> PiiRuleFromProto(const pii::v1::EntityRule& rule, absl::string_view field);
void PiiRuleToProto(const PiiRule& rule, pii::v1::EntityRule* out);

}  // namespace policy

#endif  // POLICY_COMMON_PII_RULE_PII_RULE_PROTO_H_
