// RegistrySync over the in-memory store on a fake clock: what a replica adopts from the
// others, and how long published breaker states are kept.
#include "services/region/registry_sync.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/region/memory_endpoint_store.h"

namespace policy::region {
namespace {

using ::testing::ElementsAre;
using ::testing::Field;

constexpr char kActor[] = "member:alice";

Endpoint Eu(const std::string& id) {
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
BreakerOptions LongCoolDown() {
  BreakerOptions options;
  options.cool_down = absl::Hours(72);
  return options;
}

class RegistrySyncTest : public ::testing::Test {
 protected:
  RegistrySyncTest() {
    EXPECT_TRUE(store_.Create(Eu("westeurope"), kActor).ok());
    EXPECT_TRUE(store_.Create(Eu("swedencentral"), kActor).ok());
  }

  // A state replica `replica` published `age` ago, open since then.
  void PublishOpen(const std::string& endpoint, const std::string& replica, absl::Duration age) {
    const absl::Time at = clock_.Now() - age;
    ASSERT_TRUE(store_.PublishBreaker({endpoint, replica, BreakerState::kOpen, at, at}).ok());
  }
  // The states replicas other than the one under test published, as "endpoint/replica".
  std::vector<std::string> PublishedByOthers() {
    std::vector<std::string> replicas;
    const std::vector<PublishedBreaker> published =
        store_.BreakersSince(absl::InfinitePast()).value();
    for (const PublishedBreaker& b : published) {
      if (b.replica != "new") replicas.push_back(b.endpoint_id + "/" + b.replica);
    }
    return replicas;
  }
  BreakerState StateOf(const EndpointRegistry& registry, const std::string& id) {
    for (const EndpointHealthReport& e : registry.Health().endpoints) {
      if (e.endpoint.id == id) return e.breaker.state;
    }
    ADD_FAILURE() << "no endpoint " << id;
    return BreakerState::kClosed;
  }

  FakeClock clock_;
  MemoryEndpointStore store_;
  EndpointRegistry registry_{&clock_, LongCoolDown()};
  RegistrySync sync_{&store_, &registry_, "new", &clock_};
};

TEST_F(RegistrySyncTest, AFirstRoundAdoptsOpenBreakersPublishedWithinTheRetentionOnly) {
  PublishOpen("westeurope", "peer", RegistrySync::kBreakerRetention - absl::Minutes(1));
  PublishOpen("swedencentral", "peer", RegistrySync::kBreakerRetention + absl::Minutes(1));
  ASSERT_TRUE(sync_.SyncOnce().ok());
  EXPECT_EQ(StateOf(registry_, "westeurope"), BreakerState::kOpen);
  EXPECT_EQ(StateOf(registry_, "swedencentral"), BreakerState::kClosed);
}

TEST_F(RegistrySyncTest, StatesOlderThanTheRetentionAreRemovedAtMostOncePerInterval) {
  // A replica gone for good published these; the store keeps them until someone removes them.
  PublishOpen("westeurope", "gone", RegistrySync::kBreakerRetention + absl::Seconds(1));
  PublishOpen("swedencentral", "gone", RegistrySync::kBreakerRetention - absl::Minutes(30));
  PublishOpen("swedencentral", "peer", absl::Minutes(1));
  ASSERT_TRUE(sync_.SyncOnce().ok());
  EXPECT_THAT(PublishedByOthers(), ElementsAre("swedencentral/gone", "swedencentral/peer"));

  // 45 minutes later the second one is past the retention, but the interval has not passed.
  clock_.Advance(absl::Minutes(45));
  ASSERT_TRUE(sync_.SyncOnce().ok());
  EXPECT_THAT(PublishedByOthers(), ElementsAre("swedencentral/gone", "swedencentral/peer"));

  clock_.Advance(RegistrySync::kBreakerCleanupInterval - absl::Minutes(45));
  ASSERT_TRUE(sync_.SyncOnce().ok());
  EXPECT_THAT(PublishedByOthers(), ElementsAre("swedencentral/peer"));
}

TEST_F(RegistrySyncTest, ABreakerOpenedHereIsPublishedAndAdoptedByAnotherReplica) {
  ASSERT_TRUE(sync_.SyncOnce().ok());  // Loads the endpoints.
  for (int i = 0; i < BreakerOptions{}.consecutive_failures; ++i) {
    ASSERT_TRUE(registry_.ReportOutcome("westeurope", {false, absl::ZeroDuration()}).ok());
  }
  ASSERT_EQ(StateOf(registry_, "westeurope"), BreakerState::kOpen);
  ASSERT_TRUE(sync_.SyncOnce().ok());
  EXPECT_THAT(store_.BreakersSince(absl::InfinitePast()).value(),
              ElementsAre(Field(&PublishedBreaker::replica, "new")));

  EndpointRegistry other_registry{&clock_, LongCoolDown()};
  RegistrySync other{&store_, &other_registry, "other", &clock_};
  ASSERT_TRUE(other.SyncOnce().ok());
  EXPECT_EQ(StateOf(other_registry, "westeurope"), BreakerState::kOpen);
  EXPECT_EQ(StateOf(other_registry, "swedencentral"), BreakerState::kClosed);
}

}  // namespace
}  // namespace policy::region
