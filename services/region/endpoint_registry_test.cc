// The registry with real breakers on a fake clock: outcomes open breakers, routing fails over
// inside the residency, cool-downs and probes bring endpoints back. No sleeps.
#include "services/region/endpoint_registry.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace policy::region {
namespace {

using ::testing::HasSubstr;

Endpoint Make(const std::string& id, Residency residency, int32_t priority) {
  Endpoint e;
  e.id = id;
  e.region = id;
  e.base_url = "https://" + id + ".example.com";
  e.deployment = "gpt-4-1";
  e.residency = residency;
  e.capabilities = {.zero_data_retention = true, .private_link = true, .cached = false};
  e.models = {"gpt-4.1"};
  e.priority = priority;
  return e;
}

const RouteRequest kEu{Residency::kEu, DataClass::kPii, "gpt-4.1", Preference::kPriority};
const Outcome kFailure{false, absl::ZeroDuration()};
const Outcome kSuccess{true, absl::Milliseconds(40)};

class EndpointRegistryTest : public ::testing::Test {
 protected:
  EndpointRegistryTest() : registry_(&clock_, BreakerOptions{}) {
    EXPECT_TRUE(
        registry_
            .Replace({Make("westeurope", Residency::kEu, 1),
                      Make("swedencentral", Residency::kEu, 2), Make("eastus", Residency::kUs, 1)})
            .ok());
  }

  std::string RouteEu() {
    absl::StatusOr<RouteResult> r = registry_.Route(kEu);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok()) return "error";
    return r->chosen() != nullptr ? r->chosen()->id : "BLOCKED";
  }

  FakeClock clock_;
  EndpointRegistry registry_;
};

TEST_F(EndpointRegistryTest, FailuresOpenTheBreakerAndTrafficFailsOverInsideTheResidency) {
  EXPECT_EQ(RouteEu(), "westeurope");
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(registry_.ReportOutcome("westeurope", kFailure).value(), BreakerState::kClosed);
  }
  EXPECT_EQ(RouteEu(), "westeurope");  // Two failures in a row: still closed.
  EXPECT_EQ(registry_.ReportOutcome("westeurope", kFailure).value(), BreakerState::kOpen);

  absl::StatusOr<RouteResult> failover = registry_.Route(kEu);
  ASSERT_TRUE(failover.ok());
  EXPECT_EQ(failover->chosen()->id, "swedencentral");
  EXPECT_TRUE(failover->decision.failover);
  EXPECT_THAT(failover->explanation, HasSubstr("failover"));

  // Cool-down over: one probe goes to westeurope, the next request still to sweden.
  clock_.Advance(absl::Seconds(30));
  EXPECT_EQ(RouteEu(), "westeurope");
  EXPECT_EQ(RouteEu(), "swedencentral");
  EXPECT_EQ(registry_.ReportOutcome("westeurope", kSuccess).value(), BreakerState::kClosed);
  EXPECT_EQ(RouteEu(), "westeurope");

  const HealthReport health = registry_.Health();
  EXPECT_EQ(health.requests, 6u);
  EXPECT_EQ(health.failovers, 2u);
  EXPECT_DOUBLE_EQ(health.failover_rate, 2.0 / 6.0);
  ASSERT_EQ(health.endpoints.size(), 3u);
  EXPECT_EQ(health.endpoints[0].routed, 4u);
  EXPECT_EQ(health.endpoints[0].failures, 3u);
  EXPECT_EQ(health.endpoints[0].successes, 1u);
  EXPECT_EQ(health.endpoints[0].breaker.state, BreakerState::kClosed);
  EXPECT_EQ(health.endpoints[0].breaker.latency_ewma, absl::Milliseconds(40));
}

TEST_F(EndpointRegistryTest, WhenEveryCompliantEndpointIsDownTheRequestIsBlocked) {
  for (const char* id : {"westeurope", "swedencentral"}) {
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(registry_.ReportOutcome(id, kFailure).ok());
  }
  absl::StatusOr<RouteResult> blocked = registry_.Route(kEu);
  ASSERT_TRUE(blocked.ok());
  EXPECT_EQ(blocked->chosen(), nullptr);  // eastus is healthy, and never used for EU data.
  EXPECT_THAT(blocked->explanation, HasSubstr("NO_COMPLIANT_REGION"));
  EXPECT_THAT(blocked->explanation, HasSubstr("eastus: residency"));
  EXPECT_EQ(registry_.Health().blocked, 1u);
}

TEST_F(EndpointRegistryTest, ReplaceKeepsTheBreakersOfRemainingEndpoints) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(registry_.ReportOutcome("westeurope", kFailure).ok());
  ASSERT_TRUE(registry_
                  .Replace({Make("swedencentral", Residency::kEu, 2),
                            Make("westeurope", Residency::kEu, 1)})
                  .ok());
  EXPECT_EQ(RouteEu(), "swedencentral");  // westeurope is still open after the reload.
  EXPECT_EQ(registry_.ReportOutcome("eastus", kSuccess).status().code(),
            absl::StatusCode::kNotFound);
  // A bad registry changes nothing.
  EXPECT_EQ(
      registry_
          .Replace({Make("westeurope", Residency::kEu, 1), Make("westeurope", Residency::kEu, 2)})
          .code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(registry_.Health().endpoints.size(), 2u);
}

// An endpoint repointed (another base URL, provider, deployment or region) is another
// target: what its breaker learnt of the previous one no longer holds, and replies of requests
// routed to the previous one do not count against it.
TEST_F(EndpointRegistryTest, AnEndpointRepointedElsewhereStartsAfresh) {
  const absl::Time before = clock_.Now();
  ASSERT_TRUE(registry_.ReportOutcome("westeurope", {true, absl::Milliseconds(900)}).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(registry_.ReportOutcome("westeurope", kFailure).ok());
  ASSERT_EQ(RouteEu(), "swedencentral");
  clock_.Advance(absl::Seconds(1));
  Endpoint moved = Make("westeurope", Residency::kEu, 1);
  moved.base_url = "https://westeurope-2.example.com";
  ASSERT_TRUE(registry_.Replace({moved, Make("swedencentral", Residency::kEu, 2)}).ok());
  EXPECT_EQ(RouteEu(), "westeurope");
  HealthReport health = registry_.Health();
  EXPECT_EQ(health.endpoints[0].breaker.state, BreakerState::kClosed);
  EXPECT_EQ(health.endpoints[0].breaker.latency_ewma, std::nullopt);
  EXPECT_EQ(health.endpoints[0].failures, 0u);
  // Late failures of requests sent to the old base URL.
  Outcome old = kFailure;
  old.routed_at = before;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(registry_.ReportOutcome("westeurope", old).value(), BreakerState::kClosed);
  }
  EXPECT_EQ(RouteEu(), "westeurope");
  // Another priority is the same target: the breaker is kept.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(registry_.ReportOutcome("westeurope", kFailure).ok());
  moved.priority = 3;
  ASSERT_TRUE(registry_.Replace({moved, Make("swedencentral", Residency::kEu, 2)}).ok());
  EXPECT_EQ(RouteEu(), "swedencentral");
}

TEST_F(EndpointRegistryTest, APeersOpenBreakerIsAdopted) {
  registry_.AdoptPeerState("westeurope", BreakerState::kOpen, clock_.Now(), absl::InfinitePast());
  registry_.AdoptPeerState("no-such-endpoint", BreakerState::kOpen, clock_.Now(),
                           absl::InfinitePast());
  EXPECT_EQ(RouteEu(), "swedencentral");
  clock_.Advance(absl::Seconds(31));
  EXPECT_EQ(RouteEu(), "westeurope");  // Half-open: this replica probes by itself.
}

// A retried decision (the same request id) is drawn the same way, on any replica, so that it
// lands where the first attempt did while the registry and health are unchanged; different
// requests still spread by weight.
TEST_F(EndpointRegistryTest, TheWeightedDrawIsAFunctionOfTheRequestId) {
  ASSERT_TRUE(registry_
                  .Replace({Make("westeurope", Residency::kEu, 1),
                            Make("swedencentral", Residency::kEu, 1)})
                  .ok());
  EndpointRegistry other_replica(&clock_, BreakerOptions{});
  ASSERT_TRUE(other_replica
                  .Replace({Make("westeurope", Residency::kEu, 1),
                            Make("swedencentral", Residency::kEu, 1)})
                  .ok());
  RouteRequest weighted = kEu;
  weighted.preference = Preference::kWeighted;
  int westeurope = 0;
  for (int i = 0; i < 1000; ++i) {
    weighted.request_id = absl::StrCat("req-", i);
    absl::StatusOr<RouteResult> first = registry_.Route(weighted);
    ASSERT_TRUE(first.ok());
    const std::string id = first->chosen()->id;
    westeurope += id == "westeurope" ? 1 : 0;
    if (i < 50) {
      for (int retry = 0; retry < 5; ++retry) {
        ASSERT_EQ(registry_.Route(weighted)->chosen()->id, id) << weighted.request_id;
        ASSERT_EQ(other_replica.Route(weighted)->chosen()->id, id) << weighted.request_id;
      }
    }
  }
  EXPECT_GT(westeurope, 400);
  EXPECT_LT(westeurope, 600);
}

TEST_F(EndpointRegistryTest, LatencyPreferenceFollowsReportedLatencies) {
  ASSERT_TRUE(registry_.ReportOutcome("westeurope", {true, absl::Milliseconds(90)}).ok());
  ASSERT_TRUE(registry_.ReportOutcome("swedencentral", {true, absl::Milliseconds(30)}).ok());
  RouteRequest fastest = kEu;
  fastest.preference = Preference::kLowestLatency;
  absl::StatusOr<RouteResult> r = registry_.Route(fastest);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->chosen()->id, "swedencentral");
  EXPECT_FALSE(r->decision.failover);
}

}  // namespace
}  // namespace policy::region
