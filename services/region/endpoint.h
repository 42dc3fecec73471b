#ifndef POLICY_SERVICES_REGION_ENDPOINT_H_
#define POLICY_SERVICES_REGION_ENDPOINT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/data_class/data_class.h"
#include "common/residency/residency.h"

// The region service's domain types: the endpoints requests may go to, and what a request
// says about its data. Plain values, no proto, no SQL.
namespace policy::region {

enum class Provider { kOpenAi, kAzure };

// What an endpoint promises of the data sent to it.
using Capabilities = EndpointPromises;

inline constexpr int32_t kMinPriority = 1;  // Lower values are preferred.
inline constexpr int32_t kMaxPriority = 1000;
inline constexpr int32_t kMaxWeight = 1000;
inline constexpr size_t kMaxModels = 64;
inline constexpr size_t kMaxEndpoints = 10000;
inline constexpr size_t kMaxEndpointIdBytes = 64;
inline constexpr size_t kMaxRegionBytes = 64;
inline constexpr size_t kMaxBaseUrlBytes = 2048;
inline constexpr size_t kMaxDeploymentBytes = 64;
inline constexpr size_t kMaxModelBytes = 128;

struct Endpoint {
  std::string id;      // [a-z0-9][a-z0-9_.-]{0,63}
  std::string region;  // The provider's name for it ("westeurope"), [a-z0-9-]{1,64}.
  Provider provider = Provider::kAzure;
  std::string base_url;    // https://host[:port][/path]
  std::string deployment;  // Azure's deployment name; required for Azure.
  Residency residency = Residency::kGlobal;
  Capabilities capabilities;
  std::vector<std::string> models;  // Served models, 1..kMaxModels.
  int32_t priority = kMinPriority;  // kMinPriority..kMaxPriority.
  int32_t weight = 100;             // 0..kMaxWeight; 0: never chosen by weight.
  bool enabled = true;

  bool Serves(absl::string_view model) const;
  bool operator==(const Endpoint&) const = default;
};

absl::string_view ProviderName(Provider p);  // "openai", "azure"
std::optional<Provider> ParseProvider(absl::string_view name);

// INVALID_ARGUMENT naming `field` unless `id` is an endpoint id: 1 to 64 of [a-z0-9_.-],
// starting with a letter or digit.
absl::Status ValidateEndpointId(absl::string_view id, absl::string_view field);
// INVALID_ARGUMENT naming the field ("endpoint.base_url: ...") when `e` is malformed.
absl::Status ValidateEndpoint(const Endpoint& e);
// Each endpoint valid, ids unique, at most kMaxEndpoints.
absl::Status ValidateRegistry(absl::Span<const Endpoint> endpoints);
// RESOURCE_EXHAUSTED for a creation in a registry of kMaxEndpoints endpoints.
absl::Status RegistryFull();

// Whether `url` is https://host[:port][/path] with a DNS name, an IPv4 address or a
// bracketed IPv6 address, no user info, query or fragment.
bool IsValidBaseUrl(absl::string_view url);

}  // namespace policy::region

#endif  // POLICY_SERVICES_REGION_ENDPOINT_H_
