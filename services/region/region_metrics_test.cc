#include "services/region/region_metrics.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"

namespace policy::region {
namespace {

// The value of `name`'s series labelled llm_endpoint=`endpoint`, or -1 when absent.
double Value(prometheus::Registry& registry, const std::string& name, const std::string& endpoint) {
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      for (const prometheus::ClientMetric::Label& label : metric.label) {
        if (label.name == "llm_endpoint" && label.value == endpoint) {
          return family.type == prometheus::MetricType::Counter ? metric.counter.value
                                                                : metric.gauge.value;
        }
      }
    }
  }
  return -1;
}

HealthReport WithTripsWithheld(const std::string& id, uint64_t trips_withheld) {
  EndpointHealthReport e;
  e.endpoint.id = id;
  e.breaker.trips_withheld = trips_withheld;
  HealthReport report;
  report.endpoints.push_back(e);
  return report;
}

TEST(RegionMetricsTest, CountsTripsWithheldPerEndpoint) {
  constexpr char kName[] = "policy_region_breaker_trips_withheld_total";
  prometheus::Registry registry;
  RegionMetrics metrics(registry);
  metrics.Update(WithTripsWithheld("azure-westeurope", 0));
  EXPECT_EQ(Value(registry, kName, "azure-westeurope"), 0);
  metrics.Update(WithTripsWithheld("azure-westeurope", 3));
  EXPECT_EQ(Value(registry, kName, "azure-westeurope"), 3);
  metrics.Update(WithTripsWithheld("azure-westeurope", 5));
  EXPECT_EQ(Value(registry, kName, "azure-westeurope"), 5);
  // A repointed endpoint's breaker starts afresh: the counter goes on.
  metrics.Update(WithTripsWithheld("azure-westeurope", 1));
  EXPECT_EQ(Value(registry, kName, "azure-westeurope"), 6);
  // A deleted endpoint's series goes.
  metrics.Update(HealthReport{});
  EXPECT_EQ(Value(registry, kName, "azure-westeurope"), -1);
}

}  // namespace
}  // namespace policy::region
