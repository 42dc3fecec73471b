#include "common/pii_rule/pii_rule.h"

#include <algorithm>
#include <array>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace policy {
namespace {

constexpr std::array<std::pair<PiiTreatment, absl::string_view>, 7> kTreatments = {{
    {PiiTreatment::kRedact, "redact"},
    {PiiTreatment::kMask, "mask"},
    {PiiTreatment::kReplace, "replace"},
    {PiiTreatment::kHash, "hash"},
    {PiiTreatment::kPlaceholder, "placeholder"},
    {PiiTreatment::kBlock, "block"},
    {PiiTreatment::kAllow, "allow"},
}};

}  // namespace

bool IsValidEntityType(absl::string_view entity_type) {
  if (entity_type.empty() || entity_type.size() > kMaxEntityTypeBytes) return false;
  if (!absl::ascii_isupper(static_cast<unsigned char>(entity_type[0]))) return false;
  return std::all_of(entity_type.begin(), entity_type.end(), [](char c) {
    return absl::ascii_isupper(static_cast<unsigned char>(c)) ||
           absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '_';
  });
}

absl::string_view PiiTreatmentName(PiiTreatment treatment) {
  for (const auto& [t, name] : kTreatments) {
    if (t == treatment) return name;
  }
  return "unknown";
}

std::optional<PiiTreatment> ParsePiiTreatment(absl::string_view name) {
  for (const auto& [t, n] : kTreatments) {
    if (n == name) return t;
  }
  return std::nullopt;
}

std::string PiiTreatmentNames() {
  std::string names;
  for (const auto& [t, name] : kTreatments) {
    absl::StrAppend(&names, names.empty() ? "" : ", ", name);
  }
  return names;
}

std::string FormatPiiRule(const PiiRule& rule) {
  return absl::StrCat(rule.entity_type, "=", PiiTreatmentName(rule.treatment));
}

absl::StatusOr<PiiRule> ParsePiiRule(absl::string_view text, absl::string_view field) {
  const size_t equals = text.find('=');
  if (equals == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": '", text.substr(0, 80), "' is not TYPE=treatment (US_SSN=block)"));
  }
  PiiRule rule;
  rule.entity_type = std::string(text.substr(0, equals));
  if (!IsValidEntityType(rule.entity_type)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": '", text.substr(0, std::min(equals, size_t{80})),
                     "' is not an entity type name ([A-Z][A-Z0-9_]*, at most 64 bytes)"));
  }
  const absl::string_view name = text.substr(equals + 1);
  std::optional<PiiTreatment> treatment = ParsePiiTreatment(name);
  if (!treatment.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": '", name.substr(0, 80), "' is not one of ", PiiTreatmentNames()));
  }
  rule.treatment = *treatment;
  return rule;
}

absl::Status ValidatePiiRules(absl::Span<const PiiRule> rules, absl::string_view field) {
  if (rules.size() > kMaxPiiRules) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": at most ", kMaxPiiRules, " rules, not ", rules.size()));
  }
  absl::flat_hash_set<absl::string_view> seen;
  for (size_t i = 0; i < rules.size(); ++i) {
    const std::string& type = rules[i].entity_type;
    if (!IsValidEntityType(type)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, "[", i, "]: '", absl::string_view(type).substr(0, kMaxEntityTypeBytes),
          "' is not an entity type name ([A-Z][A-Z0-9_]*, at most 64 bytes)"));
    }
    if (!seen.insert(type).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "[", i, "]: ", type, " has another rule already"));
    }
  }
  return absl::OkStatus();
}

void SortPiiRules(std::vector<PiiRule>& rules) {
  std::sort(rules.begin(), rules.end(),
            [](const PiiRule& a, const PiiRule& b) { return a.entity_type < b.entity_type; });
}

}  // namespace policy
