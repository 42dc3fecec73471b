#ifndef POLICY_COMMON_RESIDENCY_RESIDENCY_H_
#define POLICY_COMMON_RESIDENCY_RESIDENCY_H_

#include <optional>

#include "absl/strings/string_view.h"

// Data residency, one vocabulary for every service that speaks of it: where an endpoint keeps
// and processes data (region), and where a project's data must stay (authz's data policy).
namespace policy {

// kGlobal: no promise (an endpoint) or no requirement (a project, a request).
enum class Residency { kEu, kUs, kApac, kGlobal };

absl::string_view ResidencyName(Residency r);  // "eu", "us", "apac", "global"
std::optional<Residency> ParseResidency(absl::string_view name);

}  // namespace policy

#endif  // POLICY_COMMON_RESIDENCY_RESIDENCY_H_
