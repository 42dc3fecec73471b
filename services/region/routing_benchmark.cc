// The in-process route decision over a registry of 100 endpoints (25 per residency, mixed
// capabilities, 3 models each), for each preference. Prints decisions per second.
//   build/services/region/region_route_benchmark
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "services/region/routing.h"

namespace policy::region {
namespace {

struct Fixture {
  std::vector<Endpoint> endpoints;
  std::vector<EndpointHealth> health;
  Fixture() {
    const Residency residencies[] = {Residency::kEu, Residency::kUs, Residency::kApac,
                                     Residency::kGlobal};
    for (int i = 0; i < 100; ++i) {
      Endpoint e;
      e.id = absl::StrCat("endpoint-", i);
      e.region = absl::StrCat("region-", i % 13);
      e.base_url = absl::StrCat("https://", e.id, ".openai.azure.com");
      e.deployment = "deployment";
      e.residency = residencies[i % 4];
      e.capabilities = {
          .zero_data_retention = i % 3 != 0, .private_link = i % 2 == 0, .cached = i % 5 == 0};
      e.models = {"gpt-4.1", "gpt-4.1-mini", i % 2 == 0 ? "gpt-4o" : "o3"};
      e.priority = 1 + i % 3;
      e.weight = 50 + i % 7 * 10;
      endpoints.push_back(e);
      EndpointHealth h;
      h.admits = i % 11 != 0;
      h.latency = absl::Milliseconds(20 + i % 17 * 5);
      health.push_back(h);
    }
  }
};

void BM_Route(benchmark::State& state) {
  static const Fixture f;
  RouteRequest request{Residency::kEu, DataClass::kPii, "gpt-4o",
                       static_cast<Preference>(state.range(0))};
  double random = 0.0;
  for (auto _ : state) {
    random = random + 0.618033988749895;
    if (random >= 1) random -= 1;
    absl::StatusOr<RouteDecision> d = Route(request, f.endpoints, f.health, random);
    benchmark::DoNotOptimize(d);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetLabel(std::string(PreferenceName(request.preference)));
}
BENCHMARK(BM_Route)->Arg(0)->Arg(1)->Arg(2);

}  // namespace
}  // namespace policy::region
