#include "services/edge/pii_rules.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace policy::edge {
namespace {

// The types `deployment` blocks.
absl::flat_hash_set<absl::string_view> BlockedTypes(const pii::v1::RedactionPolicy& deployment) {
  absl::flat_hash_set<absl::string_view> blocked;
  for (const pii::v1::EntityRule& rule : deployment.rules()) {
    if (rule.action() == pii::v1::ACTION_BLOCK) blocked.insert(rule.entity_type());
  }
  return blocked;
}

}  // namespace

const pii::v1::EntityRule& RuleFor(const pii::v1::RedactionPolicy& policy,
                                   absl::string_view entity_type) {
  for (const pii::v1::EntityRule& rule : policy.rules()) {
    if (rule.entity_type() == entity_type) return rule;
  }
  return policy.default_rule();
}

absl::flat_hash_set<absl::string_view> DetectedTypes(
    const pii::v1::ListEntityTypesResponse& known) {
  absl::flat_hash_set<absl::string_view> detected;
  for (const pii::v1::EntityTypeInfo& info : known.entity_types()) {
    detected.insert(info.entity_type());
  }
  return detected;
}

bool Redacts(const pii::v1::EntityRule& rule) {
  return rule.action() == pii::v1::ACTION_REDACT || rule.action() == pii::v1::ACTION_UNSPECIFIED;
}

std::shared_ptr<const authz::v1::PiiPolicy> KnownPiiRules::Find(absl::string_view project) const {
  absl::MutexLock lock(&mu_);
  auto it = rules_.find(project);
  return it == rules_.end() ? nullptr : it->second;
}

void KnownPiiRules::Remember(absl::string_view project, const authz::v1::PiiPolicy& rules) {
  auto copy = std::make_shared<const authz::v1::PiiPolicy>(rules);
  absl::MutexLock lock(&mu_);
  if (rules_.size() >= capacity_ && !rules_.contains(project)) rules_.clear();
  rules_[project] = std::move(copy);
}

bool SameRules(const authz::v1::PiiPolicy& a, const authz::v1::PiiPolicy& b) {
  if (a.rules_size() != b.rules_size()) return false;
  for (int i = 0; i < a.rules_size(); ++i) {
    const pii::v1::EntityRule& x = a.rules(i);
    const pii::v1::EntityRule& y = b.rules(i);
    if (x.entity_type() != y.entity_type() || x.action() != y.action() ||
        x.operator_() != y.operator_()) {
      return false;
    }
  }
  return true;
}

int ApplyProjectRules(const pii::v1::RedactionPolicy& deployment,
                      const authz::v1::PiiPolicy& project, bool forwards_as_sent,
                      pii::v1::RedactionPolicy* out) {
  *out = deployment;
  int first_project_rule = out->rules_size();
  if (project.rules_size() > 0) {
    const absl::flat_hash_set<absl::string_view> blocked = BlockedTypes(deployment);
    absl::flat_hash_set<absl::string_view> overridden;
    for (const pii::v1::EntityRule& rule : project.rules()) {
      if (!blocked.contains(rule.entity_type())) overridden.insert(rule.entity_type());
    }
    auto* rules = out->mutable_rules();
    rules->erase(std::remove_if(rules->begin(), rules->end(),
                                [&](const pii::v1::EntityRule& rule) {
                                  return overridden.contains(rule.entity_type());
                                }),
                 rules->end());
    first_project_rule = out->rules_size();
    for (const pii::v1::EntityRule& rule : project.rules()) {
      if (overridden.contains(rule.entity_type())) *out->add_rules() = rule;
    }
  }
  if (!forwards_as_sent) return first_project_rule;
  if (Redacts(out->default_rule())) out->mutable_default_rule()->set_action(pii::v1::ACTION_BLOCK);
  for (pii::v1::EntityRule& rule : *out->mutable_rules()) {
    if (Redacts(rule)) rule.set_action(pii::v1::ACTION_BLOCK);
  }
  return first_project_rule;
}

absl::Status CheckProjectRules(const authz::v1::PiiPolicy& rules,
                               const pii::v1::RedactionPolicy& deployment,
                               const pii::v1::ListEntityTypesResponse& known,
                               absl::string_view field) {
  const absl::flat_hash_set<absl::string_view> blocked = BlockedTypes(deployment);
  const absl::flat_hash_set<absl::string_view> detected = DetectedTypes(known);
  for (int i = 0; i < rules.rules_size(); ++i) {
    const pii::v1::EntityRule& rule = rules.rules(i);
    const absl::string_view type = absl::string_view(rule.entity_type()).substr(0, 64);
    if (blocked.contains(type) && rule.action() != pii::v1::ACTION_BLOCK) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "[", i, "]: the edge blocks ", type,
                       " in every project (blocked_entity_types); a project's rule may only "
                       "block it too"));
    }
    if (!detected.contains(type)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "[", i, "]: the pii service detects no entity type '", type,
                       "' (policyctl entity-types lists those it does)"));
    }
    if (Redacts(rule) && rule.operator_() == pii::v1::OPERATOR_HASH && !known.keyed_hashing()) {
      return absl::FailedPreconditionError(
          absl::StrCat(field, "[", i, "]: ", type,
                       "=hash, but the pii service has no pseudonym key "
                       "(POLICY_PII_PSEUDONYM_KEY)"));
    }
  }
  return absl::OkStatus();
}

bool RefusesProjectRule(absl::string_view message, const pii::v1::RedactionPolicy& policy,
                        int first_project_rule) {
  if (first_project_rule >= policy.rules_size()) return false;
  absl::string_view rest = message;
  if (absl::ConsumePrefix(&rest, "policy.rules[")) {
    int index = 0;
    const size_t close = rest.find(']');
    if (close != absl::string_view::npos && absl::SimpleAtoi(rest.substr(0, close), &index)) {
      return index >= first_project_rule;
    }
  }
  for (int i = first_project_rule; i < policy.rules_size(); ++i) {
    const pii::v1::EntityRule& rule = policy.rules(i);
    if (absl::StrContains(message, absl::StrCat("'", rule.entity_type(), "'"))) return true;
    if (absl::StartsWith(message, "policy.rules") && absl::StrContains(message, "OPERATOR_HASH") &&
        Redacts(rule) && rule.operator_() == pii::v1::OPERATOR_HASH) {
      return true;
    }
  }
  return false;
}

}  // namespace policy::edge
