// RegistrySync over PostgreSQL with replicas whose clocks are hours off the database's (and
// each other's): breaker states are shared and kept as when the clocks agree, because every
// time in region.breakers is on the database's clock. Needs a test database
// (POLICY_TEST_PG_URL); skips without one. No time passes but the real one: nothing here waits
// for a cool-down.
#include <memory>
#include <string>
#include <vector>

#include "common/clock/clock.h"
#include "common/pg/pool.h"
#include "common/pg/test_database.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/region/endpoint_registry.h"
#include "services/region/postgres_endpoint_store.h"
#include "services/region/region_migrations.h"
#include "services/region/registry_sync.h"
#include "services/region/registry_sync_testing.h"

namespace policy::region {
namespace {

using ::testing::UnorderedElementsAre;

using ::policy::region::testing::Eu;
using ::policy::region::testing::kActor;
using ::policy::region::testing::kSkew;
using ::policy::region::testing::LongCoolDown;

constexpr char kResetSql[] =
    "TRUNCATE region.breakers, region.endpoints, region.ledger_outbox; "
    "UPDATE region.registry SET version = 0";

// A replica: its own clock, `skew` off this host's (the database's, which runs here or agrees
// with it closely enough for a 3 h skew to dominate), its own store on the shared pool.
struct Replica {
  Replica(pg::Pool* pool, absl::Duration skew, const std::string& name)
      : clock(Clock::Real(), skew),
        store(pool),
        registry(&clock, LongCoolDown()),
        sync(&store, &registry, name, &clock) {}
  SkewedClock clock;
  PostgresEndpointStore store;
  EndpointRegistry registry;
  RegistrySync sync;
};

class RegistrySyncPostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (pg::TestDatabase::Get() == nullptr) GTEST_SKIP() << "POLICY_TEST_PG_URL is not set";
    pool_ = pg::TestDatabase::Get()->Reset("region", Migrations(), kResetSql).value();
    store_ = std::make_unique<PostgresEndpointStore>(pool_.get());
    ASSERT_TRUE(store_->Create(Eu("westeurope"), kActor).ok());
    ASSERT_TRUE(store_->Create(Eu("swedencentral"), kActor).ok());
  }

  absl::Time DatabaseNow() { return store_->Now().value(); }
  static void Fail(Replica& r, const std::string& id) {
    for (int i = 0; i < BreakerOptions{}.consecutive_failures; ++i) {
      ASSERT_TRUE(r.registry.ReportOutcome(id, {false, absl::ZeroDuration()}).ok());
    }
  }
  static BreakerState StateOf(const Replica& r, const std::string& id) {
    for (const EndpointHealthReport& e : r.registry.Health().endpoints) {
      if (e.endpoint.id == id) return e.breaker.state;
    }
    ADD_FAILURE() << "no endpoint " << id;
    return BreakerState::kClosed;
  }
  // The states published since the infinite past, as "endpoint/replica".
  std::vector<std::string> Published() {
    std::vector<std::string> published;
    const std::vector<PublishedBreaker> breakers =
        store_->BreakersSince(absl::InfinitePast()).value();
    for (const PublishedBreaker& b : breakers) {
      published.push_back(b.endpoint_id + "/" + b.replica);
    }
    return published;
  }

  std::shared_ptr<pg::Pool> pool_;
  std::unique_ptr<PostgresEndpointStore> store_;
};

TEST_F(RegistrySyncPostgresTest, ReplicasWithSkewedClocksAdoptEachOthersOpens) {
  Replica ahead(pool_.get(), kSkew, "ahead");
  Replica lags(pool_.get(), -kSkew, "lags");
  ASSERT_TRUE(ahead.sync.SyncOnce().ok());
  ASSERT_TRUE(lags.sync.SyncOnce().ok());
  EXPECT_NEAR(absl::ToDoubleSeconds(ahead.sync.clock_offset()), absl::ToDoubleSeconds(-kSkew), 60);
  EXPECT_NEAR(absl::ToDoubleSeconds(lags.sync.clock_offset()), absl::ToDoubleSeconds(kSkew), 60);

  // Each sees one endpoint fail, after both have fetched once: what they adopt now is what
  // their second rounds fetch.
  Fail(ahead, "westeurope");
  Fail(lags, "swedencentral");
  ASSERT_TRUE(ahead.sync.SyncOnce().ok());
  ASSERT_TRUE(lags.sync.SyncOnce().ok());
  ASSERT_TRUE(ahead.sync.SyncOnce().ok());
  for (const Replica* r : {&ahead, &lags}) {
    SCOPED_TRACE(r->sync.clock_offset());
    EXPECT_EQ(StateOf(*r, "westeurope"), BreakerState::kOpen);
    EXPECT_EQ(StateOf(*r, "swedencentral"), BreakerState::kOpen);
  }

  // Published on the database's clock: opened and published moments ago, not hours off.
  const absl::Time now = DatabaseNow();
  const std::vector<PublishedBreaker> published =
      store_->BreakersSince(absl::InfinitePast()).value();
  ASSERT_EQ(published.size(), 2u);
  for (const PublishedBreaker& b : published) {
    SCOPED_TRACE(b.replica);
    EXPECT_LT(absl::AbsDuration(now - b.opened_at), absl::Minutes(1));
    EXPECT_LT(absl::AbsDuration(now - b.published_at), absl::Minutes(1));
  }
}

TEST_F(RegistrySyncPostgresTest, TheRetentionIsCountedOnTheDatabasesClock) {
  for (const absl::Duration skew : {kSkew, -kSkew}) {
    SCOPED_TRACE(skew);
    // A replica gone for good published these, by the database's clock.
    const absl::Time now = DatabaseNow();
    const absl::Time young = now - RegistrySync::kBreakerRetention + absl::Hours(2);
    const absl::Time old = now - RegistrySync::kBreakerRetention - absl::Hours(2);
    ASSERT_TRUE(
        store_->PublishBreaker({"westeurope", "gone", BreakerState::kOpen, young, young}).ok());
    ASSERT_TRUE(
        store_->PublishBreaker({"swedencentral", "gone", BreakerState::kOpen, old, old}).ok());

    Replica r(pool_.get(), skew, "new");
    ASSERT_TRUE(r.sync.SyncOnce().ok());  // A first round removes old states, adopts the rest.
    EXPECT_THAT(Published(), UnorderedElementsAre("westeurope/gone"));
    EXPECT_EQ(StateOf(r, "westeurope"), BreakerState::kOpen);
    EXPECT_EQ(StateOf(r, "swedencentral"), BreakerState::kClosed);
    ASSERT_TRUE(store_->ForgetBreakersPublishedBefore(absl::InfiniteFuture()).ok());
  }
}

}  // namespace
}  // namespace policy::region
