#include "services/pii/proto_convert.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status/status.h"

namespace policy::pii {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

absl::StatusOr<Action> ActionFromProto(pb::Action action, absl::string_view field) {
  switch (action) {
    case pb::ACTION_UNSPECIFIED:
    case pb::ACTION_REDACT:
      return Action::kRedact;
    case pb::ACTION_BLOCK:
      return Action::kBlock;
    case pb::ACTION_ALLOW:
      return Action::kAllow;
    default:
      return Invalid(field, absl::StrCat(static_cast<int>(action), " is not a known action"));
  }
}

absl::StatusOr<Operator> OperatorFromProto(pb::Operator op, absl::string_view field) {
  switch (op) {
    case pb::OPERATOR_UNSPECIFIED:
    case pb::OPERATOR_REDACT:
      return Operator::kRedact;
    case pb::OPERATOR_MASK:
      return Operator::kMask;
    case pb::OPERATOR_REPLACE:
      return Operator::kReplaceWithType;
    case pb::OPERATOR_HASH:
      return Operator::kKeyedHash;
    case pb::OPERATOR_PLACEHOLDER:
      return Operator::kPlaceholder;
    default:
      return Invalid(field, absl::StrCat(static_cast<int>(op), " is not a known operator"));
  }
}

// A data class that must be given: UNSPECIFIED is INVALID_ARGUMENT.
absl::StatusOr<DataClass> RequiredDataClass(pb::DataClass data_class, absl::string_view field) {
  if (data_class == pb::DATA_CLASS_UNSPECIFIED) return Invalid(field, "a data class is required");
  return DataClassFromProto(data_class, DataClass::kInternal, field);
}

absl::StatusOr<EntityRule> RuleFromProto(const pb::EntityRule& rule, absl::string_view field) {
  absl::StatusOr<Action> action = ActionFromProto(rule.action(), absl::StrCat(field, ".action"));
  if (!action.ok()) return action.status();
  absl::StatusOr<Operator> op =
      OperatorFromProto(rule.operator_(), absl::StrCat(field, ".operator"));
  if (!op.ok()) return op.status();
  return EntityRule{.action = *action, .op = *op};
}

absl::Status CheckEntityTypeName(absl::string_view type, absl::string_view field) {
  if (type.empty()) return Invalid(field, "an entity type is required");
  if (!IsValidEntityType(type)) {
    return Invalid(field, absl::StrCat("'", type.substr(0, kMaxEntityTypeBytes),
                                       "' is not an entity type name ([A-Z][A-Z0-9_]*)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ScanOptions> FromProto(const pb::ScanOptions& options) {
  ScanOptions out;
  out.min_score = options.has_min_score() ? options.min_score() : kDefaultMinScore;
  out.entity_types.reserve(options.entity_types_size());
  for (int i = 0; i < options.entity_types_size(); ++i) {
    const std::string& type = options.entity_types(i);
    if (absl::Status s = CheckEntityTypeName(type, absl::StrCat("options.entity_types[", i, "]"));
        !s.ok()) {
      return s;
    }
    out.entity_types.push_back(type);
  }
  return out;
}

namespace {

absl::StatusOr<RedactionParams> PolicyFromProto(const pb::RedactionPolicy& policy,
                                                absl::string_view project_id) {
  RedactionParams params;
  params.project_id = std::string(project_id);
  params.min_score = policy.has_min_score() ? policy.min_score() : kDefaultMinScore;
  if (policy.has_default_rule()) {
    if (!policy.default_rule().entity_type().empty()) {
      return Invalid("policy.default_rule.entity_type", "must be empty: the rule applies to all");
    }
    absl::StatusOr<EntityRule> rule = RuleFromProto(policy.default_rule(), "policy.default_rule");
    if (!rule.ok()) return rule.status();
    params.policy.default_rule = *rule;
  }
  for (int i = 0; i < policy.rules_size(); ++i) {
    const std::string field = absl::StrCat("policy.rules[", i, "]");
    const pb::EntityRule& rule = policy.rules(i);
    if (absl::Status s = CheckEntityTypeName(rule.entity_type(), field + ".entity_type"); !s.ok()) {
      return s;
    }
    absl::StatusOr<EntityRule> converted = RuleFromProto(rule, field);
    if (!converted.ok()) return converted.status();
    if (!params.policy.rules.emplace(rule.entity_type(), *converted).second) {
      return Invalid(field, absl::StrCat("a second rule for ", rule.entity_type()));
    }
  }
  for (int i = 0; i < policy.classes_size(); ++i) {
    const std::string field = absl::StrCat("policy.classes[", i, "]");
    const pb::EntityClass& entry = policy.classes(i);
    if (absl::Status s = CheckEntityTypeName(entry.entity_type(), field + ".entity_type");
        !s.ok()) {
      return s;
    }
    absl::StatusOr<DataClass> data_class =
        RequiredDataClass(entry.data_class(), field + ".data_class");
    if (!data_class.ok()) return data_class.status();
    if (!params.policy.classes.emplace(entry.entity_type(), *data_class).second) {
      return Invalid(field, absl::StrCat("a second class for ", entry.entity_type()));
    }
  }
  if (policy.base_class() != pb::DATA_CLASS_UNSPECIFIED) {
    absl::StatusOr<DataClass> base = RequiredDataClass(policy.base_class(), "policy.base_class");
    if (!base.ok()) return base.status();
    params.policy.base_class = *base;
  }
  return params;
}

}  // namespace

absl::StatusOr<RedactionParams> FromProto(const pb::RedactionPolicy& policy,
                                          absl::string_view project_id) {
  absl::StatusOr<RedactionParams> params = PolicyFromProto(policy, project_id);
  if (!params.ok()) return WithReason(params.status(), kReasonPolicyInvalid);
  return params;
}

absl::StatusOr<PlaceholderMapping> FromProto(
    const google::protobuf::RepeatedPtrField<pb::PlaceholderEntry>& mapping) {
  std::vector<PlaceholderEntry> entries;
  entries.reserve(mapping.size());
  for (const pb::PlaceholderEntry& entry : mapping) {
    entries.push_back(PlaceholderEntry{.placeholder = entry.placeholder(),
                                       .entity_type = entry.entity_type(),
                                       .value = entry.value()});
  }
  absl::StatusOr<PlaceholderMapping> out = PlaceholderMapping::FromEntries(std::move(entries));
  if (!out.ok()) return Invalid("mapping", out.status().message());
  return out;
}

pb::Action ToProto(Action action) {
  switch (action) {
    case Action::kRedact:
      return pb::ACTION_REDACT;
    case Action::kBlock:
      return pb::ACTION_BLOCK;
    case Action::kAllow:
      return pb::ACTION_ALLOW;
  }
  return pb::ACTION_UNSPECIFIED;
}

pb::Operator ToProto(Operator op) {
  switch (op) {
    case Operator::kRedact:
      return pb::OPERATOR_REDACT;
    case Operator::kMask:
      return pb::OPERATOR_MASK;
    case Operator::kReplaceWithType:
      return pb::OPERATOR_REPLACE;
    case Operator::kKeyedHash:
      return pb::OPERATOR_HASH;
    case Operator::kPlaceholder:
      return pb::OPERATOR_PLACEHOLDER;
  }
  return pb::OPERATOR_UNSPECIFIED;
}

void ToProto(const Finding& finding, uint32_t message_index, pb::Finding* out) {
  out->set_entity_type(finding.entity_type);
  out->set_message_index(message_index);
  out->set_begin(finding.begin);
  out->set_end(finding.end);
  out->set_input_begin(finding.begin);
  out->set_input_end(finding.end);
  out->set_score(finding.score);
  out->set_recognizer(finding.recognizer);
}

void ToProto(const Finding& found, const AppliedFinding& applied, uint32_t message_index,
             pb::Finding* out) {
  ToProto(found, message_index, out);
  out->set_begin(applied.begin);
  out->set_end(applied.end);
  out->set_action(ToProto(applied.action));
  if (applied.op.has_value()) out->set_operator_(ToProto(*applied.op));
}

void ToProto(const ContentReport& report, pb::ContentReport* out) {
  out->set_blocked(report.blocked);
  for (const std::string& type : report.blocking_types) out->add_blocking_types(type);
  for (const auto& [type, count] : report.counts) (*out->mutable_counts())[type] = count;
  out->set_data_class(DataClassToProto(report.data_class));
}

void ToProto(const PlaceholderMapping& mapping,
             google::protobuf::RepeatedPtrField<pb::PlaceholderEntry>* out) {
  out->Reserve(static_cast<int>(mapping.entries().size()));
  for (const PlaceholderEntry& entry : mapping.entries()) {
    pb::PlaceholderEntry* e = out->Add();
    e->set_placeholder(entry.placeholder);
    e->set_entity_type(entry.entity_type);
    e->set_value(entry.value);
  }
}

}  // namespace policy::pii
