#include "services/audit/ledger_metrics.h"

#include <string>

#include "gtest/gtest.h"
#include "prometheus/registry.h"

namespace policy::audit {
namespace {

// The value of `name`'s series whose labels include project=`project`, or -1 when absent.
double Value(prometheus::Registry& registry, const std::string& name, const std::string& project) {
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      for (const prometheus::ClientMetric::Label& label : metric.label) {
        if (label.name == "project" && label.value == project) return metric.gauge.value;
      }
    }
  }
  return -1;
}

TEST(LedgerMetricsTest, ShowsEachLedgersSizeUnsignedEntriesAndCheckpointAge) {
  prometheus::Registry registry;
  LedgerMetrics metrics(registry);
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  Checkpoint checkpoint;
  checkpoint.ledger = {"support-eu", "production"};
  checkpoint.tree_size = 7;
  checkpoint.time = now - absl::Seconds(3);
  metrics.Update(
      {LedgerOverview{.ledger = checkpoint.ledger, .size = 10, .latest_checkpoint = checkpoint},
       LedgerOverview{
           .ledger = {"playground", "development"}, .size = 2, .latest_checkpoint = std::nullopt}},
      now);
  EXPECT_EQ(Value(registry, "policy_audit_ledger_entries", "support-eu"), 10);
  EXPECT_EQ(Value(registry, "policy_audit_unsigned_entries", "support-eu"), 3);
  EXPECT_EQ(Value(registry, "policy_audit_checkpoint_age_seconds", "support-eu"), 3);
  EXPECT_EQ(Value(registry, "policy_audit_ledger_entries", "playground"), 2);
  EXPECT_EQ(Value(registry, "policy_audit_unsigned_entries", "playground"), 2);
  EXPECT_EQ(Value(registry, "policy_audit_checkpoint_age_seconds", "playground"), -1);
}

}  // namespace
}  // namespace policy::audit
