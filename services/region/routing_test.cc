#include "services/region/routing.h"

#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace policy::region {
namespace {

using ::testing::HasSubstr;

Endpoint Make(const std::string& id, Residency residency, int32_t priority, Capabilities caps,
              std::vector<std::string> models = {"gpt-4.1"}) {
  Endpoint e;
  e.id = id;
  e.region = id;
  e.provider = Provider::kAzure;
  e.base_url = "https://" + id + ".openai.azure.com";
  e.deployment = "d";
  e.residency = residency;
  e.capabilities = caps;
  e.models = std::move(models);
  e.priority = priority;
  return e;
}

constexpr Capabilities kPrivate{.zero_data_retention = true, .private_link = true, .cached = false};
constexpr Capabilities kStandard{};
constexpr Capabilities kCached{.zero_data_retention = false, .private_link = false, .cached = true};

// The seed's four regions, with a second EU endpoint and a cached global one.
std::vector<Endpoint> Registry() {
  return {Make("westeurope", Residency::kEu, 1, kPrivate),
          Make("swedencentral", Residency::kEu, 2, kPrivate),
          Make("eastus", Residency::kUs, 1, kPrivate),
          Make("japaneast", Residency::kApac, 2, kStandard),
          Make("openai-global", Residency::kGlobal, 3, kStandard, {"gpt-4.1", "gpt-4o"}),
          Make("global-cache", Residency::kGlobal, 3, kCached)};
}

std::vector<EndpointHealth> Healthy(size_t n) { return std::vector<EndpointHealth>(n); }

std::string ChosenId(const std::vector<Endpoint>& endpoints, const RouteDecision& d) {
  return d.chosen.has_value() ? endpoints[*d.chosen].id : "BLOCKED";
}

RouteRequest Request(std::optional<Residency> residency, DataClass c,
                     Preference p = Preference::kPriority, std::string model = "gpt-4.1") {
  return RouteRequest{residency, c, std::move(model), p};
}

TEST(RoutingTest, ResidencyIsMetExactly) {
  const auto endpoints = Registry();
  auto health = Healthy(endpoints.size());
  for (auto [residency, want] :
       {std::pair{Residency::kEu, "westeurope"}, std::pair{Residency::kUs, "eastus"},
        std::pair{Residency::kApac, "japaneast"}}) {
    auto d = Route(Request(residency, DataClass::kInternal), endpoints, health, 0.5);
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(ChosenId(endpoints, *d), want);
    for (const Candidate& c : d->candidates) {
      if (endpoints[c.endpoint].residency != residency) {
        EXPECT_EQ(c.exclusion, Exclusion::kResidency) << endpoints[c.endpoint].id;
      }
    }
  }
}

TEST(RoutingTest, AProjectThatKeepsNoDataGoesOnlyWhereNothingIsKept) {
  const auto endpoints = Registry();
  auto health = Healthy(endpoints.size());
  // Public data of a project without the requirement may use the cached endpoint (or any).
  RouteRequest request = Request(Residency::kApac, DataClass::kPublic);
  auto apac = Route(request, endpoints, health, 0);
  EXPECT_EQ(ChosenId(endpoints, *apac), "japaneast");
  // With it, APAC's standard endpoint does not qualify, whatever the data.
  request.zero_data_retention = true;
  apac = Route(request, endpoints, health, 0);
  ASSERT_TRUE(apac.ok());
  EXPECT_FALSE(apac->chosen.has_value());
  EXPECT_EQ(apac->candidates[3].exclusion, Exclusion::kRetention);
  const std::string why = Explain(request, endpoints, *apac);
  EXPECT_THAT(why, HasSubstr("public data with zero data retention, model gpt-4.1"));
  EXPECT_THAT(why, HasSubstr("japaneast: retention"));
  request.residency = std::nullopt;
  auto any = Route(request, endpoints, health, 0);
  ASSERT_TRUE(any->chosen.has_value());
  EXPECT_TRUE(endpoints[*any->chosen].capabilities.zero_data_retention);
}

TEST(RoutingTest, ClassificationDecidesWhichEndpointsQualify) {
  const auto endpoints = Registry();
  auto health = Healthy(endpoints.size());
  // APAC has only a standard endpoint: PII cannot go there, internal data can.
  auto pii = Route(Request(Residency::kApac, DataClass::kPii), endpoints, health, 0);
  ASSERT_TRUE(pii.ok());
  EXPECT_FALSE(pii->chosen.has_value());
  EXPECT_EQ(pii->candidates[3].exclusion, Exclusion::kClassification);
  auto phi = Route(Request(std::nullopt, DataClass::kPhi), endpoints, health, 0);
  EXPECT_TRUE(endpoints[*phi->chosen].capabilities.zero_data_retention);
  // Internal data never goes to a cached endpoint; public data may.
  std::vector<Endpoint> global = {endpoints[5], endpoints[4]};
  global[1].priority = 4;
  auto internal = Route(Request(std::nullopt, DataClass::kInternal), global, Healthy(2), 0);
  EXPECT_EQ(ChosenId(global, *internal), "openai-global");
  EXPECT_EQ(internal->candidates[0].exclusion, Exclusion::kClassification);
  auto pub = Route(Request(std::nullopt, DataClass::kPublic), global, Healthy(2), 0);
  EXPECT_EQ(ChosenId(global, *pub), "global-cache");
}

// A cache keeps prompts and answers, whatever else the endpoint promises: PII and PHI, and
// every request of a project that keeps no data, never go to one, even one that also claims
// zero data retention and a private link.
TEST(RoutingTest, SensitiveDataAndZeroRetentionNeverGoToACache) {
  constexpr Capabilities kPrivateCache{
      .zero_data_retention = true, .private_link = true, .cached = true};
  std::vector<Endpoint> endpoints = {Make("eu-cache", Residency::kEu, 1, kPrivateCache),
                                     Make("eu-private", Residency::kEu, 2, kPrivate)};
  for (DataClass c : {DataClass::kPii, DataClass::kPhi}) {
    auto d = Route(Request(Residency::kEu, c), endpoints, Healthy(2), 0);
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(ChosenId(endpoints, *d), "eu-private") << DataClassName(c);
    EXPECT_EQ(d->candidates[0].exclusion, Exclusion::kClassification) << DataClassName(c);
    EXPECT_FALSE(d->failover);
  }
  RouteRequest no_retention = Request(Residency::kEu, DataClass::kPublic);
  no_retention.zero_data_retention = true;
  auto d = Route(no_retention, endpoints, Healthy(2), 0);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(ChosenId(endpoints, *d), "eu-private");
  EXPECT_EQ(d->candidates[0].exclusion, Exclusion::kRetention);
  // Only the cache left: blocked, saying why.
  endpoints.pop_back();
  auto blocked = Route(Request(Residency::kEu, DataClass::kPii), endpoints, Healthy(1), 0);
  ASSERT_TRUE(blocked.ok());
  EXPECT_FALSE(blocked->chosen.has_value());
  EXPECT_THAT(Explain(Request(Residency::kEu, DataClass::kPii), endpoints, *blocked),
              HasSubstr("eu-cache: classification"));
  // Public data of a project that keeps data may still use it.
  auto pub = Route(Request(Residency::kEu, DataClass::kPublic), endpoints, Healthy(1), 0);
  EXPECT_EQ(ChosenId(endpoints, *pub), "eu-cache");
}

// A retried decision names the endpoint its first attempt was routed to: it goes there while
// that endpoint still takes it, whatever the preference would choose now, and is blocked,
// saying so, when it no longer does.
TEST(RoutingTest, ARetryGoesWhereItsFirstAttemptWentOrNowhere) {
  const auto endpoints = Registry();
  auto health = Healthy(endpoints.size());
  RouteRequest retry = Request(Residency::kEu, DataClass::kPii);
  retry.endpoint_id = "swedencentral";  // Priority 2: the preference would choose westeurope.
  auto d = Route(retry, endpoints, health, 0);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(ChosenId(endpoints, *d), "swedencentral");
  EXPECT_FALSE(d->failover);
  health[1].admits = false;
  d = Route(retry, endpoints, health, 0);
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->chosen.has_value());  // Not westeurope, which the retry never went to.
  EXPECT_THAT(Explain(retry, endpoints, *d),
              HasSubstr("NO_COMPLIANT_REGION: endpoint 'swedencentral', where the request was "
                        "first routed, no longer takes it (unhealthy)"));
  // Compliance first: an endpoint of another residency is never chosen, named or not.
  retry.endpoint_id = "eastus";
  d = Route(retry, endpoints, health, 0);
  EXPECT_FALSE(d->chosen.has_value());
  EXPECT_THAT(Explain(retry, endpoints, *d), HasSubstr("(residency)"));
  retry.endpoint_id = "gone";
  d = Route(retry, endpoints, health, 0);
  EXPECT_FALSE(d->chosen.has_value());
  EXPECT_THAT(Explain(retry, endpoints, *d), HasSubstr("(not in the registry)"));
}

TEST(RoutingTest, PreferencesOrderTheEligibleEndpoints) {
  auto endpoints = Registry();
  auto health = Healthy(endpoints.size());
  health[0].latency = absl::Milliseconds(45);
  health[1].latency = absl::Milliseconds(20);
  auto by_priority = Route(Request(Residency::kEu, DataClass::kPii), endpoints, health, 0);
  EXPECT_EQ(ChosenId(endpoints, *by_priority), "westeurope");
  auto by_latency = Route(Request(Residency::kEu, DataClass::kPii, Preference::kLowestLatency),
                          endpoints, health, 0);
  EXPECT_EQ(ChosenId(endpoints, *by_latency), "swedencentral");
  // Equal priority: the lower latency wins.
  endpoints[1].priority = 1;
  auto tie = Route(Request(Residency::kEu, DataClass::kPii), endpoints, health, 0);
  EXPECT_EQ(ChosenId(endpoints, *tie), "swedencentral");
}

TEST(RoutingTest, WeightedDrawsWithinTheBestTierByWeight) {
  auto endpoints = Registry();
  endpoints[1].priority = 1;
  endpoints[0].weight = 300;
  endpoints[1].weight = 100;
  auto health = Healthy(endpoints.size());
  int first = 0;
  for (int i = 0; i < 400; ++i) {
    auto d = Route(Request(Residency::kEu, DataClass::kPii, Preference::kWeighted), endpoints,
                   health, (i + 0.5) / 400.0);
    ASSERT_TRUE(d->chosen.has_value());
    if (*d->chosen == 0) ++first;
  }
  EXPECT_EQ(first, 300);  // Exactly the weights' share for evenly spread draws.
  // Weight 0 is never drawn while another endpoint of the tier has weight.
  endpoints[0].weight = 0;
  for (double r : {0.0, 0.5, 0.999}) {
    auto d = Route(Request(Residency::kEu, DataClass::kPii, Preference::kWeighted), endpoints,
                   health, r);
    EXPECT_EQ(ChosenId(endpoints, *d), "swedencentral");
  }
}

TEST(RoutingTest, FailoverStaysInsideTheResidencyAndBlocksWhenNothingIsLeft) {
  const auto endpoints = Registry();
  auto health = Healthy(endpoints.size());
  health[0].admits = false;  // westeurope's breaker is open.
  auto failover = Route(Request(Residency::kEu, DataClass::kPii), endpoints, health, 0);
  EXPECT_EQ(ChosenId(endpoints, *failover), "swedencentral");
  EXPECT_TRUE(failover->failover);
  EXPECT_EQ(failover->candidates[0].exclusion, Exclusion::kUnhealthy);
  EXPECT_THAT(Explain(Request(Residency::kEu, DataClass::kPii), endpoints, *failover),
              HasSubstr("failover"));

  health[1].admits = false;  // Both EU endpoints down: blocked, never sent to the US.
  auto blocked = Route(Request(Residency::kEu, DataClass::kPii), endpoints, health, 0);
  ASSERT_TRUE(blocked.ok());
  EXPECT_FALSE(blocked->chosen.has_value());
  const std::string why = Explain(Request(Residency::kEu, DataClass::kPii), endpoints, *blocked);
  EXPECT_THAT(why, HasSubstr("NO_COMPLIANT_REGION"));
  EXPECT_THAT(why, HasSubstr("westeurope: unhealthy"));
  EXPECT_THAT(why, HasSubstr("eastus: residency"));
  EXPECT_THAT(why, HasSubstr("japaneast: residency"));

  // A healthy endpoint ranked below the chosen one is no failover.
  health = Healthy(endpoints.size());
  health[1].admits = false;
  auto normal = Route(Request(Residency::kEu, DataClass::kPii), endpoints, health, 0);
  EXPECT_EQ(ChosenId(endpoints, *normal), "westeurope");
  EXPECT_FALSE(normal->failover);
}

TEST(RoutingTest, BadRequests) {
  const auto endpoints = Registry();
  auto health = Healthy(endpoints.size());
  EXPECT_EQ(Route(Request(std::nullopt, DataClass::kPublic, Preference::kPriority, ""), endpoints,
                  health, 0)
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      Route(Request(std::nullopt, DataClass::kPublic), endpoints, Healthy(1), 0).status().code(),
      absl::StatusCode::kInvalidArgument);
  // A model served only by a disabled endpoint is known, and blocked.
  auto disabled = endpoints;
  disabled[4].enabled = false;
  auto d = Route(Request(std::nullopt, DataClass::kPublic, Preference::kPriority, "gpt-4o"),
                 disabled, health, 0);
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->chosen.has_value());
  EXPECT_EQ(d->candidates[4].exclusion, Exclusion::kDisabled);
}

// A model no endpoint serves (one a project may allow before any endpoint offers it) is no
// mistake of the request's: nothing complies, and the explanation says why.
TEST(RoutingTest, AModelNoEndpointServesIsBlocked) {
  const auto endpoints = Registry();
  const RouteRequest request =
      Request(Residency::kEu, DataClass::kPublic, Preference::kPriority, "o3-mini");
  auto d = Route(request, endpoints, Healthy(endpoints.size()), 0);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_FALSE(d->chosen.has_value());
  for (const Candidate& c : d->candidates) EXPECT_NE(c.exclusion, Exclusion::kNone);
  EXPECT_EQ(Explain(request, endpoints, *d),
            "NO_COMPLIANT_REGION: no endpoint serves model 'o3-mini'");
  // So with no endpoint at all.
  const std::vector<Endpoint> no_endpoints;
  const std::vector<EndpointHealth> no_health;
  auto none = Route(request, absl::MakeConstSpan(no_endpoints), absl::MakeConstSpan(no_health), 0);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->chosen.has_value());
}

// Random registries, health states and requests: residency and classification are never
// violated, an unhealthy endpoint is never chosen, BLOCKED only when nothing qualifies, and
// the choice is the preference's best.
TEST(RoutingPropertyTest, ComplianceHoldsWhateverTheHealth) {
  std::mt19937_64 rng(20261202);
  const std::vector<std::string> models = {"gpt-4.1", "gpt-4.1-mini", "gpt-4o", "o3"};
  const Residency residencies[] = {Residency::kEu, Residency::kUs, Residency::kApac,
                                   Residency::kGlobal};
  auto coin = [&](double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; };
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  int chosen_count = 0, blocked_count = 0, failovers = 0;
  for (int round = 0; round < 20000; ++round) {
    const size_t n = 1 + pick(12);
    std::vector<Endpoint> endpoints;
    std::vector<EndpointHealth> health(n);
    for (size_t i = 0; i < n; ++i) {
      Capabilities caps{coin(0.5), coin(0.5), coin(0.3)};
      std::vector<std::string> served;
      for (const std::string& m : models) {
        if (coin(0.5)) served.push_back(m);
      }
      if (served.empty()) served.push_back(models[pick(models.size())]);
      Endpoint e = Make(absl::StrCat("e", i), residencies[pick(4)],
                        1 + static_cast<int32_t>(pick(3)), caps, served);
      e.weight = static_cast<int32_t>(pick(4)) * 50;
      e.enabled = coin(0.9);
      endpoints.push_back(e);
      health[i].admits = coin(0.7);
      if (coin(0.8)) health[i].latency = absl::Milliseconds(1 + pick(200));
    }
    RouteRequest request;
    if (coin(0.7)) request.residency = residencies[pick(4)];
    request.data_class = static_cast<DataClass>(pick(4));
    request.model = models[pick(models.size())];
    request.preference = static_cast<Preference>(pick(3));
    request.zero_data_retention = coin(0.2);
    const double random = std::uniform_real_distribution<double>(0, 1)(rng);

    absl::StatusOr<RouteDecision> d = Route(request, endpoints, health, random);
    ASSERT_TRUE(d.ok()) << d.status();
    // Independent statement of the rules.
    auto qualifies = [&](const Endpoint& e) {
      const bool residency_ok = !request.residency.has_value() ||
                                *request.residency == Residency::kGlobal ||
                                e.residency == *request.residency;
      bool class_ok = true;
      if (request.data_class == DataClass::kPii || request.data_class == DataClass::kPhi) {
        class_ok = e.capabilities.zero_data_retention && e.capabilities.private_link &&
                   !e.capabilities.cached;
      } else if (request.data_class == DataClass::kInternal) {
        class_ok = !e.capabilities.cached;
      }
      const bool retention_ok = !request.zero_data_retention ||
                                (e.capabilities.zero_data_retention && !e.capabilities.cached);
      return e.enabled && e.Serves(request.model) && residency_ok && class_ok && retention_ok;
    };
    std::vector<size_t> eligible;
    for (size_t i = 0; i < n; ++i) {
      if (qualifies(endpoints[i]) && health[i].admits) eligible.push_back(i);
    }
    if (!d->chosen.has_value()) {
      ++blocked_count;
      EXPECT_TRUE(eligible.empty()) << "blocked although " << eligible.size() << " qualify";
      continue;
    }
    ++chosen_count;
    failovers += d->failover ? 1 : 0;
    const size_t c = *d->chosen;
    ASSERT_TRUE(qualifies(endpoints[c]));
    ASSERT_TRUE(health[c].admits);
    if (request.residency.has_value() && *request.residency != Residency::kGlobal) {
      ASSERT_EQ(endpoints[c].residency, *request.residency);
    }
    auto latency = [&](size_t i) { return health[i].latency.value_or(absl::InfiniteDuration()); };
    for (size_t i : eligible) {
      switch (request.preference) {
        case Preference::kPriority:
          ASSERT_LE(endpoints[c].priority, endpoints[i].priority);
          if (endpoints[c].priority == endpoints[i].priority) {
            ASSERT_LE(latency(c), latency(i));
          }
          break;
        case Preference::kLowestLatency:
          ASSERT_LE(latency(c), latency(i));
          break;
        case Preference::kWeighted:
          ASSERT_LE(endpoints[c].priority, endpoints[i].priority);
          break;
      }
    }
  }
  // The generator reaches every outcome.
  EXPECT_GT(chosen_count, 1000);
  EXPECT_GT(blocked_count, 1000);
  EXPECT_GT(failovers, 100);
}

}  // namespace
}  // namespace policy::region
