#ifndef POLICY_COMMON_DATA_CLASS_DATA_CLASS_H_
#define POLICY_COMMON_DATA_CLASS_DATA_CLASS_H_

#include <optional>

#include "absl/strings/string_view.h"

// How sensitive a prompt's data is, one vocabulary for every service that speaks of it: what
// pii finds classifies it, a project's data policy may raise it, and region routes by it
// (personal and health data only to endpoints that keep nothing, over a private link; internal
// data never to a cache; public data anywhere).
namespace policy {

// Ordered by sensitivity: a larger value is more sensitive.
enum class DataClass { kPublic, kInternal, kPii, kPhi };

absl::string_view DataClassName(DataClass c);  // "public", "internal", "pii", "phi"
std::optional<DataClass> ParseDataClass(absl::string_view name);

// The more sensitive of the two.
inline DataClass MoreSensitive(DataClass a, DataClass b) { return a < b ? b : a; }

}  // namespace policy

#endif  // POLICY_COMMON_DATA_CLASS_DATA_CLASS_H_
