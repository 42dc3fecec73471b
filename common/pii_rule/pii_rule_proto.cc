#include "common/pii_rule/pii_rule_proto.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace policy {

absl::StatusOr<PiiRule> PiiRuleFromProto(const pii::v1::EntityRule& rule, absl::string_view field) {
  PiiRule out{.entity_type = rule.entity_type()};
  switch (rule.action()) {
    case pii::v1::ACTION_BLOCK:
      out.treatment = PiiTreatment::kBlock;
      return out;
    case pii::v1::ACTION_ALLOW:
      out.treatment = PiiTreatment::kAllow;
      return out;
    case pii::v1::ACTION_UNSPECIFIED:
    case pii::v1::ACTION_REDACT:
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".action: unknown value ", rule.action()));
  }
  switch (rule.operator_()) {
    case pii::v1::OPERATOR_UNSPECIFIED:
    case pii::v1::OPERATOR_REDACT:
      out.treatment = PiiTreatment::kRedact;
      return out;
    case pii::v1::OPERATOR_MASK:
      out.treatment = PiiTreatment::kMask;
      return out;
    case pii::v1::OPERATOR_REPLACE:
      out.treatment = PiiTreatment::kReplace;
      return out;
    case pii::v1::OPERATOR_HASH:
      out.treatment = PiiTreatment::kHash;
      return out;
    case pii::v1::OPERATOR_PLACEHOLDER:
      out.treatment = PiiTreatment::kPlaceholder;
      return out;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".operator: unknown value ", rule.operator_()));
  }
}

void PiiRuleToProto(const PiiRule& rule, pii::v1::EntityRule* out) {
  out->set_entity_type(rule.entity_type);
  switch (rule.treatment) {
    case PiiTreatment::kBlock:
      out->set_action(pii::v1::ACTION_BLOCK);
      return;
    case PiiTreatment::kAllow:
      out->set_action(pii::v1::ACTION_ALLOW);
      return;
    case PiiTreatment::kRedact:
      out->set_operator_(pii::v1::OPERATOR_REDACT);
      break;
    case PiiTreatment::kMask:
      out->set_operator_(pii::v1::OPERATOR_MASK);
      break;
    case PiiTreatment::kReplace:
      out->set_operator_(pii::v1::OPERATOR_REPLACE);
      break;
    case PiiTreatment::kHash:
      out->set_operator_(pii::v1::OPERATOR_HASH);
      break;
    case PiiTreatment::kPlaceholder:
      out->set_operator_(pii::v1::OPERATOR_PLACEHOLDER);
      break;
  }
  out->set_action(pii::v1::ACTION_REDACT);
}

}  // namespace policy
