#include "services/edge/pii_rules.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace policy::edge {
namespace {

bool Redacts(const pii::v1::EntityRule& rule) {
  return rule.action() == pii::v1::ACTION_REDACT || rule.action() == pii::v1::ACTION_UNSPECIFIED;
}

}  // namespace

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

void ApplyProjectRules(const pii::v1::RedactionPolicy& deployment,
                       const authz::v1::PiiPolicy& project, bool forwards_as_sent,
                       pii::v1::RedactionPolicy* out) {
  *out = deployment;
  if (project.rules_size() > 0) {
    absl::flat_hash_set<absl::string_view> overridden;
    for (const pii::v1::EntityRule& rule : project.rules()) overridden.insert(rule.entity_type());
    auto* rules = out->mutable_rules();
    rules->erase(std::remove_if(rules->begin(), rules->end(),
                                [&](const pii::v1::EntityRule& rule) {
                                  return overridden.contains(rule.entity_type());
                                }),
                 rules->end());
    for (const pii::v1::EntityRule& rule : project.rules()) *out->add_rules() = rule;
  }
  if (!forwards_as_sent) return;
  if (Redacts(out->default_rule())) out->mutable_default_rule()->set_action(pii::v1::ACTION_BLOCK);
  for (pii::v1::EntityRule& rule : *out->mutable_rules()) {
    if (Redacts(rule)) rule.set_action(pii::v1::ACTION_BLOCK);
  }
}

absl::Status CheckProjectRulesServable(const authz::v1::PiiPolicy& rules,
                                       const pii::v1::ListEntityTypesResponse& known,
                                       absl::string_view field) {
  absl::flat_hash_set<absl::string_view> detected;
  for (const pii::v1::EntityTypeInfo& info : known.entity_types()) {
    detected.insert(info.entity_type());
  }
  for (int i = 0; i < rules.rules_size(); ++i) {
    const pii::v1::EntityRule& rule = rules.rules(i);
    if (!detected.contains(rule.entity_type())) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "[", i, "]: the pii service detects no entity type '",
                       absl::string_view(rule.entity_type()).substr(0, 64),
                       "' (pii's ListEntityTypes names those it does)"));
    }
    if (Redacts(rule) && rule.operator_() == pii::v1::OPERATOR_HASH && !known.keyed_hashing()) {
      return absl::FailedPreconditionError(
          absl::StrCat(field, "[", i, "]: ", rule.entity_type(),
                       "=hash, but the pii service has no pseudonym key "
                       "(POLICY_PII_PSEUDONYM_KEY)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace policy::edge
