#include "services/audit/ledger_metrics.h"

#include <memory>
#include <string>
#include <vector>

#include "common/clock/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "services/audit/memory_ledger_store.h"

namespace policy::audit {
namespace {

// The value of `name`'s series whose labels include project=`project`, or -1 when absent.
double Value(prometheus::Registry& registry, const std::string& name, const std::string& project) {
  for (const prometheus::MetricFamily& family : registry.Collect()) {
    if (family.name != name) continue;
    for (const prometheus::ClientMetric& metric : family.metric) {
      for (const prometheus::ClientMetric::Label& label : metric.label) {
        if (label.name == "project" && label.value == project)
          return family.type == prometheus::MetricType::Counter ? metric.counter.value
                                                                : metric.gauge.value;
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
      {LedgerOverview{
           .ledger = checkpoint.ledger, .size = 10, .latest_checkpoint = checkpoint, .refused = {}},
       LedgerOverview{.ledger = {"playground", "development"},
                      .size = 2,
                      .latest_checkpoint = std::nullopt,
                      .refused = {}}},
      now);
  EXPECT_EQ(Value(registry, "policy_audit_ledger_entries", "support-eu"), 10);
  EXPECT_EQ(Value(registry, "policy_audit_unsigned_entries", "support-eu"), 3);
  EXPECT_EQ(Value(registry, "policy_audit_checkpoint_age_seconds", "support-eu"), 3);
  EXPECT_EQ(Value(registry, "policy_audit_ledger_entries", "playground"), 2);
  EXPECT_EQ(Value(registry, "policy_audit_unsigned_entries", "playground"), 2);
  // A ledger never signed ages from when it was first seen with entries: one whose first
  // checkpoint never comes is alerted on like any other.
  EXPECT_EQ(Value(registry, "policy_audit_checkpoint_age_seconds", "playground"), 0);
  const LedgerOverview unsigned_playground{.ledger = {"playground", "development"},
                                           .size = 5,
                                           .latest_checkpoint = std::nullopt,
                                           .refused = {}};
  metrics.Update({unsigned_playground}, now + absl::Seconds(400));
  EXPECT_EQ(Value(registry, "policy_audit_checkpoint_age_seconds", "playground"), 400);
  EXPECT_EQ(Value(registry, "policy_audit_unsigned_entries", "playground"), 5);
  // Once signed, its checkpoint's age.
  Checkpoint first;
  first.ledger = unsigned_playground.ledger;
  first.tree_size = 5;
  first.time = now + absl::Seconds(410);
  metrics.Update({LedgerOverview{
                     .ledger = first.ledger, .size = 5, .latest_checkpoint = first, .refused = {}}},
                 now + absl::Seconds(420));
  EXPECT_EQ(Value(registry, "policy_audit_checkpoint_age_seconds", "playground"), 10);
}

// A store whose ledger `broken` has lost the hashes its next checkpoint needs.
class BrokenLedgerStore : public MemoryLedgerStore {
 public:
  explicit BrokenLedgerStore(LedgerRef broken) : broken_(std::move(broken)) {}
  absl::StatusOr<absl::flat_hash_map<NodeId, Hash>> NodeHashes(
      const LedgerRef& ledger, absl::Span<const NodeId> nodes) override {
    if (ledger == broken_) return absl::DataLossError("the frontier is gone");
    return MemoryLedgerStore::NodeHashes(ledger, nodes);
  }

 private:
  const LedgerRef broken_;
};

TEST(LedgerMetricsTest, ALedgerThatCannotBeSignedStillShowsItsGrowthAndAge) {
  const LedgerRef broken{"aaa-broken", "production"};
  const LedgerRef fine{"zzz-fine", "production"};
  BrokenLedgerStore store(broken);
  FakeClock clock;
  auto signer = CheckpointSigner::Create(std::string(32, '\x07')).value();
  auto subjects = SubjectCipher::Create(std::string(32, '\x09')).value();
  AuditLedger ledger(&store, subjects.get(), signer.get(), &clock);
  auto append = [&](const LedgerRef& ref) {
    EntryInput in;
    in.actor = "svc-a";
    in.ledger = ref;
    ASSERT_TRUE(ledger.Append(in).ok());
  };
  // Both ledgers have a checkpoint of size 1 (the broken one's signed by hand: the root of
  // one entry is its leaf hash).
  append(broken);
  append(fine);
  prometheus::Registry registry;
  LedgerMetrics metrics(registry);
  std::vector<LedgerOverview> overview;
  ASSERT_TRUE(
      store
          .AddCheckpoint(
              signer
                  ->Sign(broken, 1, store.ReadRange(broken, 0, 1).value()[0].leaf_hash, clock.Now())
                  .value())
          .ok());
  // The broken ledger's checkpoint cannot be checked against its stored hashes: refused,
  // and counted, from the first round on.
  EXPECT_EQ(SignCheckpointsAndUpdate(ledger, metrics, overview, clock.Now()).code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(Value(registry, "policy_audit_checkpoint_refusals_total", "aaa-broken"), 1);
  // A ledger never refused is shown at 0 (-1: no series), so that increase() sees a first one.
  EXPECT_EQ(Value(registry, "policy_audit_checkpoint_refusals_total", "zzz-fine"), 0);
  EXPECT_EQ(Value(registry, "policy_audit_unsigned_entries", "zzz-fine"), 0);
  EXPECT_EQ(Value(registry, "policy_audit_unsigned_entries", "aaa-broken"), 0);

  clock.Advance(absl::Minutes(10));
  append(broken);
  append(broken);
  append(fine);
  const absl::Status signing = SignCheckpointsAndUpdate(ledger, metrics, overview, clock.Now());
  EXPECT_EQ(signing.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(signing.message(), ::testing::HasSubstr("aaa-broken/production"));
  EXPECT_THAT(signing.message(), ::testing::Not(::testing::HasSubstr("zzz-fine")));
  // The ledger after the broken one was signed.
  EXPECT_EQ(store.GetCheckpoint(fine, 0).value().tree_size, 2u);
  EXPECT_EQ(Value(registry, "policy_audit_unsigned_entries", "zzz-fine"), 0);
  EXPECT_EQ(Value(registry, "policy_audit_checkpoint_age_seconds", "zzz-fine"), 0);
  // The broken one shows its growth, and the age of its newest checkpoint grows.
  EXPECT_EQ(Value(registry, "policy_audit_ledger_entries", "aaa-broken"), 3);
  EXPECT_EQ(Value(registry, "policy_audit_unsigned_entries", "aaa-broken"), 2);
  EXPECT_EQ(Value(registry, "policy_audit_checkpoint_age_seconds", "aaa-broken"), 600);
  clock.Advance(absl::Minutes(5));
  EXPECT_FALSE(SignCheckpointsAndUpdate(ledger, metrics, overview, clock.Now()).ok());
  EXPECT_EQ(Value(registry, "policy_audit_checkpoint_age_seconds", "aaa-broken"), 900);
  EXPECT_EQ(Value(registry, "policy_audit_checkpoint_refusals_total", "aaa-broken"), 3);
}

}  // namespace
}  // namespace policy::audit
