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

// What an endpoint promises of the data sent to it.
struct EndpointPromises {
  bool zero_data_retention = false;  // The provider keeps no prompt or completion.
  bool private_link = false;         // Reached over a private network path.
  bool cached = false;               // Answers may come from (and prompts go to) a cache.
  bool operator==(const EndpointPromises&) const = default;
};

// Whether data of class `c` may go to an endpoint promising `p`: personal and health data
// only where nothing is kept, over a private link, and never to a cache (a cache keeps prompts
// and answers whatever the provider promises of its own storage); internal data never to a
// cache; public data anywhere.
bool MayReceive(DataClass c, const EndpointPromises& p);

// Whether the data of a project that keeps none (zero data retention) may go to an endpoint
// promising `p`: one that keeps nothing and is not cached.
inline bool KeepsNothing(const EndpointPromises& p) { return p.zero_data_retention && !p.cached; }

}  // namespace policy

#endif  // POLICY_COMMON_DATA_CLASS_DATA_CLASS_H_
