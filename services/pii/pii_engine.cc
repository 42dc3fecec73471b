#include "services/pii/pii_engine.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/status/status.h"
#include "common/text/utf8.h"

namespace policy::pii {
namespace {

bool IsScore(double score) { return score >= 0 && score <= 1; }  // False for NaN.

absl::Status UnknownType(absl::string_view field, absl::string_view type) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": unknown entity type '", type,
                   "' (ListEntityTypes names the types this deployment detects)"));
}

// A refusal of the policy itself, `message` naming its field ("policy.rules: ...").
absl::Status PolicyInvalid(absl::string_view message) {
  return WithReason(absl::InvalidArgumentError(message), kReasonPolicyInvalid);
}

}  // namespace

bool PolicyHashes(const AnonymizationPolicy& policy) {
  auto hashes = [](const EntityRule& rule) {
    return rule.action == Action::kRedact && rule.op == Operator::kKeyedHash;
  };
  if (hashes(policy.default_rule)) return true;
  return std::any_of(policy.rules.begin(), policy.rules.end(),
                     [&](const auto& entry) { return hashes(entry.second); });
}

PiiEngine::PiiEngine(std::unique_ptr<Detector> detector,
                     std::unique_ptr<PseudonymKeys> pseudonym_keys, PiiLimits limits)
    : detector_(std::move(detector)), pseudonym_keys_(std::move(pseudonym_keys)), limits_(limits) {}

absl::Status PiiEngine::CheckTexts(absl::Span<const absl::string_view> texts, size_t max_bytes,
                                   absl::string_view field) const {
  if (texts.size() > limits_.max_messages) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": ", texts.size(), " texts, more than the limit of ", limits_.max_messages));
  }
  size_t total = 0;
  for (absl::string_view text : texts) total += text.size();
  if (total > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", total, " bytes together, more than the limit of ", max_bytes));
  }
  for (size_t i = 0; i < texts.size(); ++i) {
    if (size_t bad = FindInvalidUtf8(texts[i]); bad != absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "[", i, "]: not valid UTF-8 at byte ", bad));
    }
  }
  return absl::OkStatus();
}

absl::Status PiiEngine::CheckScanOptions(const ScanOptions& options,
                                         absl::string_view field) const {
  if (!IsScore(options.min_score)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".min_score: ", options.min_score, " is outside [0, 1]"));
  }
  absl::flat_hash_set<absl::string_view> seen;
  for (size_t i = 0; i < options.entity_types.size(); ++i) {
    const std::string& type = options.entity_types[i];
    const std::string where = absl::StrCat(field, ".entity_types[", i, "]");
    if (!detector_->KnowsEntityType(type)) return UnknownType(where, type);
    if (!seen.insert(type).second) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", type, " is listed twice"));
    }
  }
  return absl::OkStatus();
}

absl::Status PiiEngine::CheckRedaction(const RedactionParams& params) const {
  if (absl::Status s = ValidatePolicy(params.policy); !s.ok()) {
    return PolicyInvalid(absl::StrCat("policy.", s.message()));
  }
  if (!IsScore(params.min_score)) {
    return PolicyInvalid(
        absl::StrCat("policy.min_score: ", params.min_score, " is outside [0, 1]"));
  }
  for (const auto& [type, rule] : params.policy.rules) {
    if (!detector_->KnowsEntityType(type)) {
      return PolicyInvalid(UnknownType("policy.rules", type).message());
    }
  }
  for (const auto& [type, data_class] : params.policy.classes) {
    if (!detector_->KnowsEntityType(type)) {
      return PolicyInvalid(UnknownType("policy.classes", type).message());
    }
  }
  if (PolicyHashes(params.policy)) {
    if (pseudonym_keys_ == nullptr) {
      // A refusal of the policy (it names the field that hashes), in this deployment's state.
      const bool by_default = params.policy.default_rule.action == Action::kRedact &&
                              params.policy.default_rule.op == Operator::kKeyedHash;
      return WithReason(
          absl::FailedPreconditionError(
              absl::StrCat(by_default ? "policy.default_rule.operator" : "policy.rules",
                           ": OPERATOR_HASH, but this deployment has no pseudonym key configured")),
          kReasonPolicyInvalid);
    }
    if (params.project_id.empty()) {
      return absl::InvalidArgumentError(
          "project_id is required when the policy hashes values (the key is per project)");
    }
  }
  return absl::OkStatus();
}

std::vector<std::vector<Finding>> PiiEngine::Scan(absl::Span<const absl::string_view> texts,
                                                  const ScanOptions& options) const {
  std::vector<std::vector<Finding>> found;
  found.reserve(texts.size());
  for (absl::string_view text : texts) found.push_back(detector_->Scan(text, options));
  return found;
}

absl::StatusOr<Redaction> PiiEngine::Redact(absl::Span<const absl::string_view> texts,
                                            const RedactionParams& params) const {
  if (absl::Status s = CheckRedaction(params); !s.ok()) return s;
  std::shared_ptr<const PseudonymKey> key;
  if (PolicyHashes(params.policy)) {
    absl::StatusOr<std::shared_ptr<const PseudonymKey>> derived =
        pseudonym_keys_->ForProject(params.project_id);
    if (!derived.ok()) return derived.status();
    key = *std::move(derived);
  }
  ScanOptions options;
  options.min_score = params.min_score;
  Redaction redaction{.found = Scan(texts, options), .texts = {}, .context = RequestContext(key)};
  redaction.texts.reserve(texts.size());
  for (absl::string_view text : texts) redaction.context.SkipPlaceholderNumbersUsedIn(text);
  for (size_t i = 0; i < texts.size(); ++i) {
    absl::StatusOr<AnonymizedText> anonymized =
        Anonymize(texts[i], redaction.found[i], params.policy, redaction.context);
    if (!anonymized.ok()) return anonymized.status();
    redaction.texts.push_back(*std::move(anonymized));
  }
  return redaction;
}

DataClass PiiEngine::ClassOf(absl::Span<const std::vector<Finding>> found,
                             const AnonymizationPolicy& policy) {
  DataClass data_class = policy.base_class;
  for (const std::vector<Finding>& findings : found) {
    for (const Finding& finding : findings) {
      data_class = std::max(data_class, policy.ClassOf(finding.entity_type));
    }
  }
  return data_class;
}

}  // namespace policy::pii
