#ifndef POLICY_SERVICES_REGION_REGISTRY_SYNC_TESTING_H_
#define POLICY_SERVICES_REGION_REGISTRY_SYNC_TESTING_H_

#include <string>

#include "absl/time/time.h"
#include "services/region/circuit_breaker.h"
#include "services/region/endpoint.h"

// What the registry sync tests (over the memory store and over PostgreSQL) share.
namespace policy::region::testing {

inline constexpr char kActor[] = "member:alice";

// Far more than a cool-down or a sync interval: a clock off by this much breaks any
// comparison of times taken on two clocks.
inline constexpr absl::Duration kSkew = absl::Hours(3);

// An EU endpoint with zero data retention serving gpt-4.1, named `id`.
inline Endpoint Eu(const std::string& id) {
  Endpoint e;
  e.id = id;
  e.region = id;
  e.base_url = "https://" + id + ".example.com";
  e.deployment = "gpt-4-1";
  e.residency = Residency::kEu;
  e.capabilities = {.zero_data_retention = true, .private_link = true, .cached = false};
  e.models = {"gpt-4.1"};
  e.priority = 1;
  return e;
}

// A cool-down longer than the retention, so that a state's age, not its open period's end,
// decides whether it is adopted.
inline BreakerOptions LongCoolDown() {
  BreakerOptions options;
  options.cool_down = absl::Hours(72);
  return options;
}

}  // namespace policy::region::testing

#endif  // POLICY_SERVICES_REGION_REGISTRY_SYNC_TESTING_H_
