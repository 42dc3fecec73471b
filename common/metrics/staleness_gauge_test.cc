#include "common/metrics/staleness_gauge.h"

#include "gtest/gtest.h"
#include "prometheus/registry.h"

namespace policy::metrics {
namespace {

double Value(prometheus::Registry& registry) {
  std::vector<prometheus::MetricFamily> families = registry.Collect();
  EXPECT_EQ(families.size(), 1u);
  EXPECT_EQ(families.at(0).name, "copy_staleness_seconds");
  return families.at(0).metric.at(0).gauge.value;
}

TEST(StalenessGaugeTest, ShowsSecondsBehindAndMinusOneBeforeTheFirstSync) {
  prometheus::Registry registry;
  StalenessGauge gauge(registry, "copy_staleness_seconds", "help");
  gauge.Set(absl::InfiniteDuration());
  EXPECT_EQ(Value(registry), -1);
  gauge.Set(absl::Milliseconds(250));
  EXPECT_DOUBLE_EQ(Value(registry), 0.25);
}

}  // namespace
}  // namespace policy::metrics
