#ifndef POLICY_SERVICES_EDGE_PII_RULES_H_
#define POLICY_SERVICES_EDGE_PII_RULES_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "policy/authz/v1/authz.pb.h"
#include "policy/pii/v1/pii.pb.h"

// A project's own PII rules (authz's DataPolicy.pii) in the edge's redaction policy.
namespace policy::edge {

// The rules each project's data policy had when authz last answered a check in it
// (CheckResponse.pii). A decision's redaction starts with them, beside the check that states
// the rules in force; a decision whose check states others redacts again with those, so a
// stale entry costs a second redaction and never decides anything. Thread-safe; holds at
// most `capacity` projects, then starts afresh.
class KnownPiiRules {
 public:
  explicit KnownPiiRules(size_t capacity = 10'000) : capacity_(capacity) {}

  // The rules last remembered for `project`; null when none are.
  std::shared_ptr<const authz::v1::PiiPolicy> Find(absl::string_view project) const;
  void Remember(absl::string_view project, const authz::v1::PiiPolicy& rules);

 private:
  const size_t capacity_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<const authz::v1::PiiPolicy>> rules_
      ABSL_GUARDED_BY(mu_);
};

// Whether `a` and `b` state the same rules in the same order.
bool SameRules(const authz::v1::PiiPolicy& a, const authz::v1::PiiPolicy& b);

// The entity types pii detects, as `known` (its ListEntityTypes answer) names them; the views
// live as long as `known`.
absl::flat_hash_set<absl::string_view> DetectedTypes(const pii::v1::ListEntityTypesResponse& known);

// Whether `rule` replaces its values (action REDACT or unspecified), rather than blocking
// or allowing them.
bool Redacts(const pii::v1::EntityRule& rule);

// The rule `policy` applies to `entity_type`: its own, or the default rule.
const pii::v1::EntityRule& RuleFor(const pii::v1::RedactionPolicy& policy,
                                   absl::string_view entity_type);

// `deployment` with `project`'s rules in place of its own rules for the same types, into
// `out`; the project's rules come last. A type the deployment blocks stays blocked whatever
// the project says: its blocks (--blocked_entity_types) are the floor every project stands
// on. With `forwards_as_sent` (Envoy's check: the prompt goes on as the caller sent it),
// every rule that would redact, the default rule's included, blocks instead. Returns the
// index in `out`'s rules of the first of the project's (their number when none is there).
int ApplyProjectRules(const pii::v1::RedactionPolicy& deployment,
                      const authz::v1::PiiPolicy& project, bool forwards_as_sent,
                      pii::v1::RedactionPolicy* out);

// OK when a project's `rules` take effect as stated under `deployment` and pii can apply them
// as `known` (pii's ListEntityTypes answer) describes it. Else, naming the first rule that
// fails ("<field>[1]: ..."): INVALID_ARGUMENT for a rule that would let through a type the
// deployment blocks, or for a type pii does not detect; FAILED_PRECONDITION for a hash where
// pii has no pseudonym key.
absl::Status CheckProjectRules(const authz::v1::PiiPolicy& rules,
                               const pii::v1::RedactionPolicy& deployment,
                               const pii::v1::ListEntityTypesResponse& known,
                               absl::string_view field);

// Whether pii's refusal `message` of `policy`, which ApplyProjectRules made with the project's
// rules from `first_project_rule` on (its answer), is about one of those: it names one by its
// index ("policy.rules[3]..."); or, naming none, one of their types in quotes, or a hash
// without a pseudonym key ("policy.rules: OPERATOR_HASH, ...") when one of them hashes.
bool RefusesProjectRule(absl::string_view message, const pii::v1::RedactionPolicy& policy,
                        int first_project_rule);

}  // namespace policy::edge

#endif  // POLICY_SERVICES_EDGE_PII_RULES_H_
