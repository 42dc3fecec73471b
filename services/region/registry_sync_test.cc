// RegistrySync over the in-memory store on a fake clock: what a replica adopts from the
// others, and how long published breaker states are kept, whether or not the replicas' clocks
// agree with the store's (the database's) and with each other.
#include "services/region/registry_sync.h"

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "common/testing/eventually.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/region/memory_endpoint_store.h"
#include "services/region/registry_sync_testing.h"

namespace policy::region {
namespace {

using ::policy::testing::ReturnsPromptly;
using ::testing::ElementsAre;
using ::testing::Field;

using ::policy::region::testing::Eu;
using ::policy::region::testing::kActor;
using ::policy::region::testing::kSkew;
using ::policy::region::testing::LongCoolDown;

class RegistrySyncTest : public ::testing::Test {
 protected:
  RegistrySyncTest() {
    EXPECT_TRUE(store_.Create(Eu("westeurope"), kActor).ok());
    EXPECT_TRUE(store_.Create(Eu("swedencentral"), kActor).ok());
  }

  // A state replica `replica` published `age` ago (by the store's clock), open since then.
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

  FakeClock clock_;  // The store's (the database's).
  MemoryEndpointStore store_{&clock_};
  // The replica under test's: the store's unless a test skews it.
  SkewedClock replica_clock_{&clock_};
  EndpointRegistry registry_{&replica_clock_, LongCoolDown()};
  RegistrySync sync_{&store_, &registry_, "new", &replica_clock_};
};

// The replica under test's clock off by GetParam() from the store's.
class SkewedReplicaTest : public RegistrySyncTest,
                          public ::testing::WithParamInterface<absl::Duration> {
 protected:
  SkewedReplicaTest() { replica_clock_.set_skew(GetParam()); }
};

// The in-memory store whose Version() hangs while the gate is shut, as a query waiting on a
// table lock does, or fails while failing is set.
class GatedStore : public MemoryEndpointStore {
 public:
  explicit GatedStore(Clock* clock) : MemoryEndpointStore(clock) {}
  absl::StatusOr<int64_t> Version() override {
    if (failing_) return absl::UnavailableError("database connection lost");
    if (shut_) {
      entered_.Notify();
      open_.WaitForNotification();
    }
    return MemoryEndpointStore::Version();
  }
  void Shut() { shut_ = true; }
  void WaitUntilHanging() { entered_.WaitForNotification(); }
  void Open() { open_.Notify(); }
  void SetFailing(bool failing) { failing_ = failing; }

 private:
  std::atomic<bool> failing_{false};
  std::atomic<bool> shut_{false};
  absl::Notification entered_;
  absl::Notification open_;
};

// The in-memory store whose Now() takes kRoundTrip on `clock` (the store's clock, which the
// replica's follows) and reads the store's clock `read_at` after the call's midpoint.
class RoundTripStore : public MemoryEndpointStore {
 public:
  static constexpr absl::Duration kRoundTrip = absl::Milliseconds(4);

  explicit RoundTripStore(FakeClock* clock) : MemoryEndpointStore(clock), clock_(clock) {}
  absl::StatusOr<absl::Time> Now() override {
    clock_->Advance(kRoundTrip / 2);
    const absl::Time now = clock_->Now() + read_at_;
    clock_->Advance(kRoundTrip / 2);
    return now;
  }
  // Beyond half the round trip either way, the store's clock stepped during the call.
  void set_read_at(absl::Duration read_at) { read_at_ = read_at; }

 private:
  FakeClock* const clock_;
  absl::Duration read_at_ = absl::ZeroDuration();
};

TEST(RegistrySyncOffsetTest, MeasuredEachRoundAndKeptWhileTheReadStillBoundsIt) {
  FakeClock clock;
  RoundTripStore store(&clock);
  SkewedClock replica_clock(&clock, kSkew);
  EndpointRegistry registry(&replica_clock, BreakerOptions{});
  RegistrySync sync(&store, &registry, "r1", &replica_clock);
  EXPECT_EQ(sync.clock_offset(), absl::ZeroDuration());  // None measured yet.
  ASSERT_TRUE(sync.SyncOnce().ok());
  EXPECT_EQ(sync.clock_offset(), -kSkew);  // From the midpoint of the read.

  // A read later in the call is as consistent with the offset measured before: kept, so that
  // round-trip jitter does not move the times this replica publishes.
  store.set_read_at(RoundTripStore::kRoundTrip / 4);
  ASSERT_TRUE(sync.SyncOnce().ok());
  EXPECT_EQ(sync.clock_offset(), -kSkew);
  store.set_read_at(-RoundTripStore::kRoundTrip / 2);
  ASSERT_TRUE(sync.SyncOnce().ok());
  EXPECT_EQ(sync.clock_offset(), -kSkew);

  // The store's clock stepped a second ahead: measured anew.
  store.set_read_at(absl::Seconds(1));
  ASSERT_TRUE(sync.SyncOnce().ok());
  EXPECT_EQ(sync.clock_offset(), absl::Seconds(1) - kSkew);
}

TEST(RegistrySyncHangTest, ReadinessNeverWaitsForAHungRoundAndLapsesAfterMaxStaleness) {
  FakeClock clock;
  GatedStore store(&clock);
  ASSERT_TRUE(store.Create(Eu("westeurope"), kActor).ok());
  EndpointRegistry registry(&clock, BreakerOptions{});
  RegistrySync sync(&store, &registry, "r1", &clock);
  ASSERT_TRUE(sync.SyncOnce().ok());
  const absl::Time synced = sync.synced_at();
  const absl::Duration max_staleness = absl::Seconds(10);
  EXPECT_TRUE(sync.Ready(max_staleness));

  store.Shut();
  clock.Advance(absl::Seconds(2));
  std::thread round([&] { EXPECT_TRUE(sync.SyncOnce().ok()); });
  store.WaitUntilHanging();

  bool healthy = false, ready = false;
  EXPECT_TRUE(ReturnsPromptly([&] { healthy = sync.healthy(); }));
  EXPECT_TRUE(healthy);  // The last finished round succeeded.
  EXPECT_TRUE(ReturnsPromptly([&] { ready = sync.Ready(max_staleness); }));
  EXPECT_TRUE(ready);  // 2 s since the last successful round began.
  clock.Advance(max_staleness);
  EXPECT_TRUE(ReturnsPromptly([&] { ready = sync.Ready(max_staleness); }));
  EXPECT_FALSE(ready);  // 12 s: the hung round turns readiness off.
  EXPECT_EQ(sync.synced_at(), synced);

  store.Open();
  round.join();
  EXPECT_TRUE(sync.Ready(max_staleness));
  EXPECT_EQ(sync.synced_at(), synced + absl::Seconds(2));
}

TEST(RegistrySyncHangTest, AFailedRoundTurnsReadinessOffAtOnce) {
  FakeClock clock;
  GatedStore store(&clock);
  EndpointRegistry registry(&clock, BreakerOptions{});
  RegistrySync sync(&store, &registry, "r1", &clock);
  EXPECT_FALSE(sync.healthy());
  EXPECT_FALSE(sync.Ready(absl::InfiniteDuration()));
  ASSERT_TRUE(sync.SyncOnce().ok());
  EXPECT_TRUE(sync.Ready(absl::InfiniteDuration()));
  store.SetFailing(true);
  EXPECT_FALSE(sync.SyncOnce().ok());
  EXPECT_FALSE(sync.healthy());
  EXPECT_FALSE(sync.Ready(absl::InfiniteDuration()));
  store.SetFailing(false);
  EXPECT_TRUE(sync.SyncOnce().ok());
  EXPECT_TRUE(sync.Ready(absl::InfiniteDuration()));
}

// The retention is counted on the store's clock, whatever the replica's says.
TEST_P(SkewedReplicaTest, AFirstRoundAdoptsOpenBreakersPublishedWithinTheRetentionOnly) {
  PublishOpen("westeurope", "peer", RegistrySync::kBreakerRetention - absl::Minutes(1));
  PublishOpen("swedencentral", "peer", RegistrySync::kBreakerRetention + absl::Minutes(1));
  ASSERT_TRUE(sync_.SyncOnce().ok());
  EXPECT_EQ(StateOf(registry_, "westeurope"), BreakerState::kOpen);
  EXPECT_EQ(StateOf(registry_, "swedencentral"), BreakerState::kClosed);
}

TEST_P(SkewedReplicaTest, StatesOlderThanTheRetentionAreRemovedAtMostOncePerInterval) {
  // A replica gone for good published these; the store keeps them until someone removes them.
  PublishOpen("westeurope", "gone", RegistrySync::kBreakerRetention + absl::Seconds(1));
  PublishOpen("swedencentral", "gone", RegistrySync::kBreakerRetention - absl::Minutes(30));
  PublishOpen("swedencentral", "peer", absl::Minutes(1));
  ASSERT_TRUE(sync_.SyncOnce().ok());
  EXPECT_THAT(PublishedByOthers(), ElementsAre("swedencentral/gone", "swedencentral/peer"));

  // 45 minutes later the second one is past the retention, but the interval has not passed.
  clock_.Advance(absl::Minutes(45));  // The replica's clock too.
  ASSERT_TRUE(sync_.SyncOnce().ok());
  EXPECT_THAT(PublishedByOthers(), ElementsAre("swedencentral/gone", "swedencentral/peer"));

  clock_.Advance(RegistrySync::kBreakerCleanupInterval - absl::Minutes(45));
  ASSERT_TRUE(sync_.SyncOnce().ok());
  EXPECT_THAT(PublishedByOthers(), ElementsAre("swedencentral/peer"));
}

INSTANTIATE_TEST_SUITE_P(Skews, SkewedReplicaTest,
                         ::testing::Values(absl::ZeroDuration(), -kSkew, kSkew),
                         [](const auto& info) -> std::string {
                           if (info.param == absl::ZeroDuration()) return "agrees";
                           return info.param < absl::ZeroDuration() ? "lags" : "ahead";
                         });

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

// Two or three replicas over one store, default breaker options, and westeurope the only
// endpoint a PII request in the EU may go to.
class ReplicasTest : public RegistrySyncTest {
 protected:
  ReplicasTest() {
    Endpoint disabled = Eu("swedencentral");
    disabled.enabled = false;
    EXPECT_TRUE(store_.Update(disabled, kActor).ok());
  }

  struct Replica {
    Replica(MemoryEndpointStore* store, Clock* clock, const std::string& name)
        : registry(clock, BreakerOptions{}), sync(store, &registry, name, clock) {}
    EndpointRegistry registry;
    RegistrySync sync;
  };

  // Where `r` routes a PII request in the EU: the endpoint's id, or "blocked".
  static std::string RouteOn(Replica& r) {
    absl::StatusOr<RouteResult> result = r.registry.Route(RouteRequest{
        .residency = Residency::kEu, .data_class = DataClass::kPii, .model = "gpt-4.1"});
    if (!result.ok()) return result.status().ToString();
    return result->chosen() == nullptr ? "blocked" : result->chosen()->id;
  }
  static void Fail(Replica& r) {
    for (int i = 0; i < BreakerOptions{}.consecutive_failures; ++i) {
      ASSERT_TRUE(r.registry.ReportOutcome("westeurope", {false, absl::ZeroDuration()}).ok());
    }
  }
  static absl::Status Succeed(Replica& r) {
    return r.registry.ReportOutcome("westeurope", {true, absl::Milliseconds(5)}).status();
  }
  static BreakerSnapshot BreakerOf(const Replica& r) {
    for (const EndpointHealthReport& e : r.registry.Health().endpoints) {
      if (e.endpoint.id == "westeurope") return e.breaker;
    }
    ADD_FAILURE() << "no westeurope";
    return {};
  }

  static constexpr absl::Duration kInterval = absl::Milliseconds(200);
  // The store's clock unless a test skews them.
  SkewedClock a_clock_{&clock_};
  SkewedClock b_clock_{&clock_};
  Replica a_{&store_, &a_clock_, "a"};
  Replica b_{&store_, &b_clock_, "b"};
};

// A's and B's clocks off from the store's (and so from each other) by the skews of GetParam():
// whatever they are, the replicas behave as they do when the clocks agree.
struct Skews {
  absl::Duration a;
  absl::Duration b;
  std::string name;
};
void PrintTo(const Skews& skews, std::ostream* os) { *os << skews.name; }

class SkewedReplicasTest : public ReplicasTest, public ::testing::WithParamInterface<Skews> {
 protected:
  SkewedReplicasTest() {
    a_clock_.set_skew(GetParam().a);
    b_clock_.set_skew(GetParam().b);
  }
  // A time on A's clock, on B's, and the other way round.
  static absl::Time OnB(absl::Time on_a) { return on_a - GetParam().a + GetParam().b; }
  static absl::Time OnA(absl::Time on_b) { return on_b - GetParam().b + GetParam().a; }
};

// The edge's Route and its later ReportOutcome may reach different replicas: B admits the
// half-open probe, its success is reported to A. B frees its probe slot and routes to the
// endpoint again after its next round, instead of blocking until probe_timeout. A replica
// whose clock ran ahead once fetched nothing published after its first round (its fetch
// window was hours ahead of its peers' publication times), and so never saw A open.
TEST_P(SkewedReplicasTest, AProbeHeldHereIsFreedWhenAnotherReplicaCloses) {
  ASSERT_TRUE(a_.sync.SyncOnce().ok());
  ASSERT_TRUE(b_.sync.SyncOnce().ok());
  Fail(a_);
  ASSERT_TRUE(a_.sync.SyncOnce().ok());
  ASSERT_TRUE(b_.sync.SyncOnce().ok());
  ASSERT_EQ(BreakerOf(b_).state, BreakerState::kOpen);
  EXPECT_EQ(RouteOn(b_), "blocked");

  clock_.Advance(BreakerOptions{}.cool_down);
  EXPECT_EQ(RouteOn(b_), "westeurope");  // B's probe.
  EXPECT_EQ(RouteOn(b_), "blocked");     // Its one slot is held.
  ASSERT_TRUE(Succeed(a_).ok());         // The probe's outcome reaches A.
  ASSERT_EQ(BreakerOf(a_).state, BreakerState::kClosed);
  EXPECT_EQ(RouteOn(b_), "blocked");  // B has not heard yet.

  clock_.Advance(kInterval);
  ASSERT_TRUE(a_.sync.SyncOnce().ok());  // A publishes its close ...
  EXPECT_EQ(RouteOn(b_), "blocked");
  ASSERT_TRUE(b_.sync.SyncOnce().ok());  // ... which B adopts.
  const BreakerSnapshot b = BreakerOf(b_);
  EXPECT_EQ(b.state, BreakerState::kClosed);
  EXPECT_EQ(b.probes_in_flight, 0);
  EXPECT_EQ(b.closed_at, OnB(BreakerOf(a_).closed_at));
  EXPECT_EQ(RouteOn(b_), "westeurope");
  EXPECT_EQ(RouteOn(b_), "westeurope");

  // Further rounds change nothing on either replica.
  clock_.Advance(kInterval);
  ASSERT_TRUE(a_.sync.SyncOnce().ok());
  ASSERT_TRUE(b_.sync.SyncOnce().ok());
  EXPECT_EQ(BreakerOf(a_).state, BreakerState::kClosed);
  EXPECT_EQ(BreakerOf(b_).state, BreakerState::kClosed);
}

// A closes, then B sees a failure: B stays open, and A adopts B's open. A replica whose clock
// lags once adopted every close of a peer as if it had just happened (B closed here), and a
// peer's close came out newer than B's open when the peer's clock ran ahead.
TEST_P(SkewedReplicasTest, ABreakerThatOpenedAfterThePeersCloseStaysOpen) {
  ASSERT_TRUE(a_.sync.SyncOnce().ok());
  ASSERT_TRUE(b_.sync.SyncOnce().ok());
  Fail(a_);
  ASSERT_TRUE(a_.sync.SyncOnce().ok());
  ASSERT_TRUE(b_.sync.SyncOnce().ok());
  clock_.Advance(BreakerOptions{}.cool_down);
  EXPECT_EQ(RouteOn(a_), "westeurope");
  ASSERT_TRUE(Succeed(a_).ok());  // A closes ...
  clock_.Advance(absl::Milliseconds(50));
  Fail(b_);  // ... and B's probe fails after that: newer evidence.
  ASSERT_EQ(BreakerOf(b_).state, BreakerState::kOpen);
  const absl::Time b_opened = BreakerOf(b_).opened_at;

  clock_.Advance(kInterval);
  ASSERT_TRUE(a_.sync.SyncOnce().ok());
  ASSERT_TRUE(b_.sync.SyncOnce().ok());
  EXPECT_EQ(BreakerOf(b_).state, BreakerState::kOpen);
  EXPECT_EQ(BreakerOf(b_).opened_at, b_opened);
  EXPECT_EQ(RouteOn(b_), "blocked");
  // And A adopts B's open, newer than its own close.
  ASSERT_TRUE(a_.sync.SyncOnce().ok());
  EXPECT_EQ(BreakerOf(a_).state, BreakerState::kOpen);
  EXPECT_EQ(BreakerOf(a_).opened_at, OnA(b_opened));
}

INSTANTIATE_TEST_SUITE_P(Clocks, SkewedReplicasTest,
                         ::testing::Values(Skews{absl::ZeroDuration(), absl::ZeroDuration(),
                                                 "agree"},
                                           Skews{absl::ZeroDuration(), -kSkew, "b_lags"},
                                           Skews{absl::ZeroDuration(), kSkew, "b_ahead"},
                                           Skews{-kSkew, absl::ZeroDuration(), "a_lags"},
                                           Skews{kSkew, absl::ZeroDuration(), "a_ahead"},
                                           Skews{kSkew, -kSkew, "a_ahead_b_lags"},
                                           Skews{-kSkew, kSkew, "a_lags_b_ahead"}),
                         [](const auto& info) { return info.param.name; });

// C's probe failed, then B's probe succeeded and was reported to A. B reads A's close and C's
// older open in one round: the close prevails whichever it reads first, and C follows.
TEST_F(ReplicasTest, ACloseOutweighsAnOlderOpenOfAnotherReplica) {
  Replica c{&store_, &clock_, "c"};
  for (Replica* r : {&a_, &b_, &c}) ASSERT_TRUE(r->sync.SyncOnce().ok());
  Fail(a_);
  for (Replica* r : {&a_, &b_, &c}) ASSERT_TRUE(r->sync.SyncOnce().ok());
  ASSERT_EQ(BreakerOf(c).state, BreakerState::kOpen);

  clock_.Advance(BreakerOptions{}.cool_down);
  EXPECT_EQ(RouteOn(c), "westeurope");
  ASSERT_TRUE(c.registry.ReportOutcome("westeurope", {false, absl::ZeroDuration()}).ok());
  ASSERT_EQ(BreakerOf(c).state, BreakerState::kOpen);
  clock_.Advance(absl::Milliseconds(50));
  EXPECT_EQ(RouteOn(b_), "westeurope");
  ASSERT_TRUE(Succeed(a_).ok());

  clock_.Advance(kInterval);
  ASSERT_TRUE(c.sync.SyncOnce().ok());   // Publishes its open ...
  ASSERT_TRUE(a_.sync.SyncOnce().ok());  // ... A its later close.
  ASSERT_TRUE(b_.sync.SyncOnce().ok());
  EXPECT_EQ(BreakerOf(b_).state, BreakerState::kClosed);
  EXPECT_EQ(RouteOn(b_), "westeurope");
  ASSERT_TRUE(c.sync.SyncOnce().ok());
  EXPECT_EQ(BreakerOf(c).state, BreakerState::kClosed);

  // And it stays so: every replica's next rounds read the others' closes.
  for (int round = 0; round < 3; ++round) {
    clock_.Advance(kInterval);
    for (Replica* r : {&a_, &b_, &c}) ASSERT_TRUE(r->sync.SyncOnce().ok());
  }
  for (Replica* r : {&a_, &b_, &c}) EXPECT_EQ(BreakerOf(*r).state, BreakerState::kClosed);
}

}  // namespace
}  // namespace policy::region
