// One suite, every BucketStore: the memory store always, PostgreSQL whenever a test database is
// configured (always in CI: POLICY_TEST_REQUIRE_PG=1 makes a missing one fatal). Then two
// RateLimiter replicas sharing one PostgreSQL database.
#include <atomic>
#include <cmath>
#include <functional>
#include <iostream>
#include <latch>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/pg/pool.h"
#include "common/pg/test_database.h"
#include "common/testing/eventually.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/authz/authz_migrations.h"
#include "services/authz/memory_bucket_store.h"
#include "services/authz/postgres_bucket_store.h"
#include "services/authz/rate_limiter.h"

namespace policy::authz {
namespace {

using ::testing::ElementsAre;
using Taken = BucketStore::Taken;

const absl::Time kT0 = absl::FromUnixMicros(1'800'000'000'123'456);

// A pool on the test database, migrated, with no buckets.
std::shared_ptr<pg::Pool> EmptyDatabase() {
  const pg::TestDatabase* db = pg::TestDatabase::Get();
  // value() throws on failure, which fails the test with the status.
  return db->Reset("authz", Migrations(), "TRUNCATE authz.rate_buckets, authz.usage_reports")
      .value();
}

// A store under test and what it needs alive.
struct Backend {
  std::unique_ptr<BucketStore> store;
  std::shared_ptr<void> keep_alive;
};

using BackendFactory = std::function<Backend()>;

Backend MakeMemory() { return Backend{std::make_unique<MemoryBucketStore>(), nullptr}; }

Backend MakePostgres() {
  std::shared_ptr<pg::Pool> pool = EmptyDatabase();
  return Backend{
      std::make_unique<PostgresBucketStore>(pool.get(), PostgresBucketStore::RefillClock::kCaller),
      pool};
}

// The store logged in as the service's runtime role (migration 008), whose take_buckets and
// adjust_bucket run with its privileges.
Backend MakePostgresRuntime() {
  std::shared_ptr<pg::Pool> pool =
      pg::TestDatabase::Get()
          ->ResetAsRuntime("authz", Migrations(),
                           "TRUNCATE authz.rate_buckets, authz.usage_reports")
          .value();
  return Backend{
      std::make_unique<PostgresBucketStore>(pool.get(), PostgresBucketStore::RefillClock::kCaller),
      pool};
}

MATCHER_P2(TakenIs, granted, level, "") {
  return arg.granted == granted && std::abs(arg.level - level) < 1e-6;
}

class BucketStoreConformanceTest
    : public ::testing::TestWithParam<std::pair<std::string, BackendFactory>> {
 protected:
  void SetUp() override {
    if (absl::StartsWith(GetParam().first, "postgres") && pg::TestDatabase::Get() == nullptr) {
      GTEST_SKIP() << "POLICY_TEST_PG_URL is not set";
    }
    if (GetParam().first == "postgres_runtime" &&
        pg::TestDatabase::Get()->RuntimeUrl("authz").empty()) {
      GTEST_SKIP() << "POLICY_TEST_PG_AUTHZ_RUNTIME_URL is not set";
    }
    backend_ = GetParam().second();
    store_ = backend_.store.get();
  }

  // Takes (key, per_minute, units, want) in one TakeAll.
  std::vector<Taken> TakeAll(
      const std::vector<std::tuple<std::string, int64_t, int64_t, int64_t>>& takes, absl::Time at) {
    std::vector<BucketCharge> charges;
    charges.reserve(takes.size());
    for (const auto& [key, per_minute, units, want] : takes) {
      charges.push_back({key, per_minute, units});
    }
    std::vector<BucketStore::Take> request;
    for (size_t i = 0; i < takes.size(); ++i)
      request.push_back({&charges[i], std::get<3>(takes[i])});
    absl::StatusOr<std::vector<Taken>> taken = store_->TakeAll(request, at);
    EXPECT_TRUE(taken.ok()) << taken.status();
    return taken.ok() ? *taken : std::vector<Taken>{};
  }

  Taken Take(const std::string& key, int64_t per_minute, int64_t units, int64_t want,
             absl::Time at) {
    std::vector<Taken> taken = TakeAll({{key, per_minute, units, want}}, at);
    return taken.size() == 1 ? taken[0] : Taken{-1, std::nan("")};
  }

  // The level at `at`, read by taking nothing.
  double Level(const std::string& key, int64_t per_minute, absl::Time at) {
    return Take(key, per_minute, 0, 0, at).level;
  }

  void Adjust(const std::string& key, int64_t per_minute, int64_t delta, absl::Time at) {
    absl::Status s = store_->Adjust(key, per_minute, delta, at);
    EXPECT_TRUE(s.ok()) << s;
  }

  Backend backend_;
  BucketStore* store_ = nullptr;
};

TEST_P(BucketStoreConformanceTest, UnknownBucketStartsFull) {
  EXPECT_EQ(Level("a", 600, kT0), 600);
  EXPECT_THAT(Take("b", 600, 1, 31, kT0), TakenIs(31, 569));
}

TEST_P(BucketStoreConformanceTest, TakesWantOrWhatIsLeftButNeverLessThanUnits) {
  EXPECT_THAT(Take("a", 10, 1, 8, kT0), TakenIs(8, 2));
  EXPECT_THAT(Take("a", 10, 2, 5, kT0), TakenIs(2, 0));
  EXPECT_THAT(Take("a", 10, 1, 1, kT0), TakenIs(0, 0));
  // Whole units only: 0.5 units refilled are not enough for one.
  EXPECT_THAT(Take("a", 10, 1, 1, kT0 + absl::Seconds(3)), TakenIs(0, 0.5));
  EXPECT_THAT(Take("a", 10, 1, 5, kT0 + absl::Seconds(9)), TakenIs(1, 0.5));
}

TEST_P(BucketStoreConformanceTest, TakesFromAllBucketsOrFromNone) {
  EXPECT_THAT(Take("short", 10, 10, 10, kT0), TakenIs(10, 0));
  EXPECT_THAT(TakeAll({{"full", 600, 1, 5}, {"short", 10, 1, 1}}, kT0),
              ElementsAre(TakenIs(0, 600), TakenIs(0, 0)));
  EXPECT_EQ(Level("full", 600, kT0), 600);
  EXPECT_THAT(TakeAll({{"full", 600, 1, 5}, {"short", 10, 1, 1}}, kT0 + absl::Seconds(6)),
              ElementsAre(TakenIs(5, 595), TakenIs(1, 0)));
}

TEST_P(BucketStoreConformanceTest, TakesFromManyNewBucketsAtOnce) {
  std::vector<std::tuple<std::string, int64_t, int64_t, int64_t>> takes;
  for (int i = 0; i < 40; ++i) takes.emplace_back(absl::StrCat("k", i), 100 + i, 1, i + 1);
  std::vector<Taken> taken = TakeAll(takes, kT0);
  ASSERT_EQ(taken.size(), takes.size());
  for (int i = 0; i < 40; ++i) {
    EXPECT_THAT(taken[i], TakenIs(i + 1, 100 - 1)) << i;
    EXPECT_EQ(Level(absl::StrCat("k", i), 100 + i, kT0), 100 - 1) << i;
  }
}

TEST_P(BucketStoreConformanceTest, BucketNamedTwiceIsTakenTwiceInOrder) {
  EXPECT_THAT(TakeAll({{"a", 10, 4, 4}, {"a", 10, 4, 4}}, kT0),
              ElementsAre(TakenIs(4, 6), TakenIs(4, 2)));
  EXPECT_THAT(TakeAll({{"a", 10, 2, 2}, {"a", 10, 1, 1}}, kT0),
              ElementsAre(TakenIs(0, 2), TakenIs(0, 2)));
  EXPECT_EQ(Level("a", 10, kT0), 2);
}

TEST_P(BucketStoreConformanceTest, EmptyTakeTakesNothing) {
  absl::StatusOr<std::vector<Taken>> taken = store_->TakeAll({}, kT0);
  ASSERT_TRUE(taken.ok()) << taken.status();
  EXPECT_TRUE(taken->empty());
}

TEST_P(BucketStoreConformanceTest, RefillsPerMinuteOverSixtyEverySecondUpToPerMinute) {
  EXPECT_THAT(Take("a", 60, 60, 60, kT0), TakenIs(60, 0));
  EXPECT_EQ(Level("a", 60, kT0 + absl::Seconds(10)), 10);
  EXPECT_EQ(Level("a", 60, kT0 + absl::Milliseconds(10'500)), 10.5);
  EXPECT_EQ(Level("a", 60, kT0 + absl::Seconds(1000)), 60);
}

TEST_P(BucketStoreConformanceTest, RefillCountsMicroseconds) {
  const int64_t per_minute = 60'000'000;  // One unit per microsecond.
  EXPECT_THAT(Take("a", per_minute, per_minute, per_minute, kT0), TakenIs(per_minute, 0));
  EXPECT_EQ(Level("a", per_minute, kT0 + absl::Microseconds(7)), 7);
  EXPECT_EQ(Level("a", per_minute, kT0 + absl::Microseconds(7) + absl::Nanoseconds(999)), 7);
}

TEST_P(BucketStoreConformanceTest, ClockBehindTheBucketRefillsNothing) {
  EXPECT_THAT(Take("a", 60, 60, 60, kT0), TakenIs(60, 0));
  EXPECT_EQ(Level("a", 60, kT0 - absl::Seconds(5)), 0);
  EXPECT_THAT(Take("a", 60, 1, 1, kT0 - absl::Seconds(5)), TakenIs(0, 0));
  // Refilled from the latest time seen, not from the earlier one.
  EXPECT_EQ(Level("a", 60, kT0 + absl::Seconds(2)), 2);
  Adjust("a", 60, 3, kT0 - absl::Seconds(30));
  EXPECT_EQ(Level("a", 60, kT0 + absl::Seconds(2)), 5);
}

TEST_P(BucketStoreConformanceTest, AdjustAddsUpToPerMinute) {
  EXPECT_THAT(Take("a", 100, 40, 40, kT0), TakenIs(40, 60));
  Adjust("a", 100, 30, kT0);
  EXPECT_EQ(Level("a", 100, kT0), 90);
  Adjust("a", 100, 30, kT0);
  EXPECT_EQ(Level("a", 100, kT0), 100);
}

TEST_P(BucketStoreConformanceTest, AdjustChargesDebtDownToMinusPerMinute) {
  Adjust("a", 100, -150, kT0);  // Unknown: starts full.
  EXPECT_EQ(Level("a", 100, kT0), -50);
  Adjust("a", 100, -500, kT0);
  EXPECT_THAT(Take("a", 100, 1, 1, kT0), TakenIs(0, -100));
  EXPECT_EQ(Level("a", 100, kT0 + absl::Seconds(30)), -50);
  EXPECT_THAT(Take("a", 100, 0, 0, kT0 + absl::Seconds(90)), TakenIs(0, 50));
}

TEST_P(BucketStoreConformanceTest, AdjustRefillsFirst) {
  EXPECT_THAT(Take("a", 60, 60, 60, kT0), TakenIs(60, 0));
  Adjust("a", 60, 1, kT0 + absl::Seconds(10));
  EXPECT_EQ(Level("a", 60, kT0 + absl::Seconds(10)), 11);
  Adjust("a", 60, -20, kT0 + absl::Seconds(10));
  EXPECT_EQ(Level("a", 60, kT0 + absl::Seconds(10)), -9);
}

TEST_P(BucketStoreConformanceTest, ChangedLimitClampsTheLevel) {
  EXPECT_EQ(Level("a", 600, kT0), 600);
  EXPECT_EQ(Level("a", 100, kT0), 100);
  EXPECT_EQ(Level("a", 600, kT0 + absl::Seconds(1)), 110);  // Refills at the new limit.
  Adjust("b", 100, -150, kT0);
  EXPECT_EQ(Level("b", 20, kT0), -20);
  Adjust("c", 100, -150, kT0);
  Adjust("c", 20, 0, kT0);
  EXPECT_EQ(Level("c", 100, kT0), -20);
}

TEST_P(BucketStoreConformanceTest, ConcurrentTakesNeverGrantMoreThanTheBucket) {
  std::atomic<int64_t> granted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        // Every thread also takes from a bucket of its own, so locks span several rows.
        BucketCharge shared{"shared", 100, 1};
        BucketCharge own{absl::StrCat("own/", t), 1000, 1};
        absl::StatusOr<std::vector<Taken>> taken =
            i % 2 == 0 ? store_->TakeAll({{&shared, 3}, {&own, 1}}, kT0)
                       : store_->TakeAll({{&own, 1}, {&shared, 3}}, kT0);
        ASSERT_TRUE(taken.ok()) << taken.status();
        granted += (*taken)[i % 2 == 0 ? 0 : 1].granted;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(granted.load(), 100);
  EXPECT_EQ(Level("shared", 100, kT0), 0);
}

TEST_P(BucketStoreConformanceTest, AdjustOnceAppliesAReportOnce) {
  using Outcome = BucketStore::ReportOutcome;
  const std::vector<BucketCharge> deltas = {{"z", 100, -30}, {"a", 100, 10}, {"m", 50, -70}};
  Adjust("a", 100, -40, kT0);
  EXPECT_EQ(*store_->AdjustOnce("req-1", "f1", deltas, kT0), Outcome::kApplied);
  EXPECT_EQ(Level("z", 100, kT0), 70);
  EXPECT_EQ(Level("a", 100, kT0), 70);
  EXPECT_EQ(Level("m", 50, kT0), -20);

  EXPECT_EQ(*store_->AdjustOnce("req-1", "f1", deltas, kT0), Outcome::kDuplicate);
  EXPECT_EQ(*store_->AdjustOnce("req-1", "f2", {{"z", 100, -1}}, kT0), Outcome::kConflict);
  EXPECT_EQ(Level("z", 100, kT0), 70);
  EXPECT_EQ(Level("a", 100, kT0), 70);
  EXPECT_EQ(Level("m", 50, kT0), -20);

  // Another id, nothing to adjust: recorded all the same.
  EXPECT_EQ(*store_->AdjustOnce("req-2", "f", {}, kT0), Outcome::kApplied);
  EXPECT_EQ(*store_->AdjustOnce("req-2", "f", {}, kT0), Outcome::kDuplicate);
}

TEST_P(BucketStoreConformanceTest, AdjustOnceForgetsReportsAfterTheRetention) {
  using Outcome = BucketStore::ReportOutcome;
  EXPECT_EQ(*store_->AdjustOnce("old", "f", {{"a", 100, -10}}, kT0), Outcome::kApplied);
  const absl::Time within = kT0 + kReportRetention - absl::Seconds(1);
  EXPECT_EQ(*store_->AdjustOnce("new", "f", {}, within), Outcome::kApplied);
  EXPECT_EQ(*store_->AdjustOnce("old", "f", {{"a", 100, -10}}, within), Outcome::kDuplicate);
  const absl::Time after = kT0 + kReportRetention + absl::Seconds(1);
  EXPECT_EQ(*store_->AdjustOnce("newer", "f", {}, after), Outcome::kApplied);
  EXPECT_EQ(*store_->AdjustOnce("old", "f", {{"a", 100, -10}}, after), Outcome::kApplied);
  EXPECT_EQ(*store_->AdjustOnce("new", "f", {}, after), Outcome::kDuplicate);
}

TEST_P(BucketStoreConformanceTest, ConcurrentRetriesOfOneReportApplyItOnce) {
  std::atomic<int> applied{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        // Buckets named in both orders, so a lock-order mistake would deadlock.
        const std::vector<BucketCharge> deltas =
            t % 2 == 0 ? std::vector<BucketCharge>{{"x", 1000, -7}, {"y", 1000, -7}}
                       : std::vector<BucketCharge>{{"y", 1000, -7}, {"x", 1000, -7}};
        absl::StatusOr<BucketStore::ReportOutcome> outcome =
            store_->AdjustOnce(absl::StrCat("req-", i), "f", deltas, kT0);
        ASSERT_TRUE(outcome.ok()) << outcome.status();
        if (*outcome == BucketStore::ReportOutcome::kApplied) ++applied;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(applied.load(), 10);
  EXPECT_EQ(Level("x", 1000, kT0), 930);
  EXPECT_EQ(Level("y", 1000, kT0), 930);
}

// The limits authz accepts are at most kMaxPerMinute, and so are the charges: at those values
// the arithmetic of every store stays exact (no bigint or int64 overflow).
TEST_P(BucketStoreConformanceTest, TheLargestLimitsAndChargesAreExact) {
  constexpr int64_t kMax = kMaxPerMinute;
  const absl::Time later = kT0 + absl::Hours(24 * 365 * 100);  // A century of refill.
  EXPECT_THAT(Take("a", kMax, kMax, kMax, kT0), TakenIs(kMax, 0));
  EXPECT_THAT(Take("a", kMax, 1, kMax, kT0), TakenIs(0, 0));
  EXPECT_EQ(Level("a", kMax, kT0 + absl::Seconds(6)), kMax / 10);
  EXPECT_EQ(Level("a", kMax, later), kMax);
  Adjust("a", kMax, -kMax, later);
  Adjust("a", kMax, -kMax, later);
  Adjust("a", kMax, -kMax, later);
  EXPECT_EQ(Level("a", kMax, later), -kMax);
  Adjust("a", kMax, kMax, later);
  Adjust("a", kMax, kMax, later);
  Adjust("a", kMax, kMax, later);
  EXPECT_EQ(Level("a", kMax, later), kMax);
  Adjust("new-up", kMax, kMax, kT0);  // Created full, then capped.
  EXPECT_EQ(Level("new-up", kMax, kT0), kMax);
  Adjust("new-down", kMax, -kMax, kT0);
  EXPECT_EQ(Level("new-down", kMax, kT0), 0);
  absl::StatusOr<BucketStore::ReportOutcome> once =
      store_->AdjustOnce("r1", "f", {{"p", kMax, -kMax}, {"q", kMax, kMax}}, kT0);
  ASSERT_TRUE(once.ok()) << once.status();
  EXPECT_EQ(*once, BucketStore::ReportOutcome::kApplied);
  EXPECT_EQ(Level("p", kMax, kT0), 0);
  // A request's four buckets at their largest, in one take.
  EXPECT_THAT(TakeAll({{"p/r", 10'000'000, 1, 10'000'000},
                       {"p/t", kMax, kMax, kMax},
                       {"m/r", 10'000'000, 1, 10'000'000},
                       {"m/t", kMax, kMax, kMax}},
                      later),
              ElementsAre(TakenIs(10'000'000, 0), TakenIs(kMax, 0), TakenIs(10'000'000, 0),
                          TakenIs(kMax, 0)));
}

TEST_P(BucketStoreConformanceTest, RefusesLimitsAndChargesBeyondTheLargest) {
  constexpr int64_t kMax = kMaxPerMinute;
  constexpr int64_t kHuge = std::numeric_limits<int64_t>::max();
  const std::vector<std::tuple<int64_t, int64_t, int64_t>> takes = {
      {kMax + 1, 1, 1}, {kHuge, 1, 1}, {kMax, kMax + 1, kMax + 1}, {kMax, 1, kHuge}};
  for (const auto& [per_minute, units, want] : takes) {
    BucketCharge charge{"a", per_minute, units};
    absl::StatusOr<std::vector<Taken>> taken = store_->TakeAll({{&charge, want}}, kT0);
    EXPECT_EQ(taken.status().code(), absl::StatusCode::kInvalidArgument)
        << per_minute << " " << units << " " << want;
  }
  for (const auto& [per_minute, delta] : std::vector<std::pair<int64_t, int64_t>>{
           {kHuge, 1}, {kMax, kHuge}, {kMax, -kHuge}, {kMax, kMax + 1}}) {
    EXPECT_EQ(store_->Adjust("a", per_minute, delta, kT0).code(),
              absl::StatusCode::kInvalidArgument)
        << per_minute << " " << delta;
    EXPECT_EQ(store_->AdjustOnce("r", "f", {{"a", per_minute, delta}}, kT0).status().code(),
              absl::StatusCode::kInvalidArgument)
        << per_minute << " " << delta;
  }
  EXPECT_EQ(Level("a", 10, kT0), 10);  // Nothing was taken or adjusted.
}

TEST_P(BucketStoreConformanceTest, ALimiterAtTheLargestLimitsAdmitsAndDenies) {
  constexpr int64_t kMax = kMaxPerMinute;
  RateLimiter limiter(store_);
  absl::StatusOr<LimitDecision> all =
      limiter.Acquire({{"p/r", 10'000'000, 1}, {"p/t", kMax, kMax}}, kT0);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_TRUE(all->allowed);
  absl::StatusOr<LimitDecision> more = limiter.Acquire({{"p/t", kMax, kMax}}, kT0);
  ASSERT_TRUE(more.ok()) << more.status();
  EXPECT_FALSE(more->allowed);
  EXPECT_EQ(more->retry_after, absl::Minutes(1));
  absl::StatusOr<BucketStore::ReportOutcome> refund =
      limiter.Reconcile("r", "f", {{"p/t", kMax, -kMax}}, kT0);
  ASSERT_TRUE(refund.ok()) << refund.status();
  EXPECT_EQ(Level("p/t", kMax, kT0), kMax);
  EXPECT_EQ(limiter.Acquire({{"p/t", kMax, kMax + 1}}, kT0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A request the model never saw gives back, once, the unit it took from each request bucket
// and the tokens it reserved: what authz's ReportUsage with refund_request sends.
TEST_P(BucketStoreConformanceTest, ARequestUnitGivenBackIsAdmittedOnceMore) {
  RateLimiter limiter(store_);
  const std::vector<BucketCharge> request = {{"p/r", 2, 1}, {"m/r", 1, 1}, {"p/t", 100, 10}};
  const std::vector<BucketCharge> refund = {{"p/r", 2, -1}, {"m/r", 1, -1}, {"p/t", 100, -10}};
  ASSERT_TRUE(limiter.Acquire(request, kT0)->allowed);
  absl::StatusOr<LimitDecision> denied = limiter.Acquire(request, kT0);
  ASSERT_TRUE(denied.ok()) << denied.status();
  EXPECT_FALSE(denied->allowed);
  EXPECT_EQ(denied->limiting_key, "m/r");

  ASSERT_EQ(*limiter.Reconcile("refund-1", "f", refund, kT0), BucketStore::ReportOutcome::kApplied);
  EXPECT_EQ(Level("m/r", 1, kT0), 1);
  EXPECT_TRUE(limiter.Acquire(request, kT0)->allowed);
  ASSERT_EQ(*limiter.Reconcile("refund-1", "f", refund, kT0),
            BucketStore::ReportOutcome::kDuplicate);
  EXPECT_EQ(Level("m/r", 1, kT0), 0);
  EXPECT_FALSE(limiter.Acquire(request, kT0)->allowed);
}

INSTANTIATE_TEST_SUITE_P(
    Stores, BucketStoreConformanceTest,
    ::testing::Values(std::make_pair(std::string("memory"), BackendFactory(MakeMemory)),
                      std::make_pair(std::string("postgres"), BackendFactory(MakePostgres)),
                      std::make_pair(std::string("postgres_runtime"),
                                     BackendFactory(MakePostgresRuntime))),
    [](const auto& info) { return info.param.first; });

// A replica: its own pool, store and limiter.
struct Replica {
  explicit Replica(const std::string& url)
      : pool(pg::PoolOptions{.url = url, .size = 4}),
        store(&pool, PostgresBucketStore::RefillClock::kCaller),
        limiter(&store) {}
  pg::Pool pool;
  PostgresBucketStore store;
  RateLimiter limiter;
};

// Requests from `threads_per_replica` threads on each replica, all at `now`, then one more
// thread per replica until it is denied (spending what the others left leased). Returns what
// each replica admitted.
std::vector<int> Hammer(std::vector<Replica*> replicas, const std::vector<BucketCharge>& charges,
                        absl::Time now, int threads_per_replica, int requests_per_thread) {
  std::vector<std::atomic<int>> admitted(replicas.size());
  auto decide = [&](size_t r) -> bool {
    if (std::optional<LimitDecision> d = replicas[r]->limiter.TryAcquireLocal(charges, now)) {
      return d->allowed;
    }
    absl::StatusOr<LimitDecision> d = replicas[r]->limiter.Acquire(charges, now);
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() && d->allowed;
  };
  for (Replica* r : replicas) EXPECT_TRUE(r->pool.Ping().ok());  // Connected before the race.
  std::latch start(static_cast<ptrdiff_t>(replicas.size()) * threads_per_replica);
  std::vector<std::thread> threads;
  for (size_t r = 0; r < replicas.size(); ++r) {
    for (int t = 0; t < threads_per_replica; ++t) {
      threads.emplace_back([&, r] {
        start.arrive_and_wait();
        for (int i = 0; i < requests_per_thread; ++i) {
          if (decide(r)) ++admitted[r];
        }
      });
    }
  }
  for (std::thread& t : threads) t.join();
  std::vector<int> counts;
  for (size_t r = 0; r < replicas.size(); ++r) {
    const int by_threads = admitted[r].load();
    while (decide(r)) ++admitted[r];
    std::cout << "  replica " << r << ": " << by_threads << " admitted by " << threads_per_replica
              << " threads, " << admitted[r].load() - by_threads << " more from its leases\n";
    counts.push_back(admitted[r].load());
  }
  return counts;
}

// With the database's clock a replica's own clock does not matter, and a bucket stamped in the
// future (by a replica whose clock ran ahead, through an older release) refills from now on.
TEST(DatabaseClockTest, ABucketStampedInTheFutureRefillsFromNow) {
  if (pg::TestDatabase::Get() == nullptr) GTEST_SKIP() << "POLICY_TEST_PG_URL is not set";
  std::shared_ptr<pg::Pool> pool = EmptyDatabase();
  PostgresBucketStore store(pool.get(), PostgresBucketStore::RefillClock::kDatabase);
  auto sql = [&](const std::string& statement) {
    std::string result;
    EXPECT_TRUE(pool->Transact([&](pqxx::work& tx) {
                      pqxx::result r = tx.exec(statement);
                      if (!r.empty()) result = r[0][0].as<std::string>();
                      return absl::OkStatus();
                    })
                    .ok());
    return result;
  };
  // 60000 a minute: one unit a millisecond. Empty, and stamped five minutes ahead.
  sql("INSERT INTO authz.rate_buckets VALUES ('limited', 0, clock_timestamp() + interval "
      "'5 minutes', 60000)");
  BucketCharge charge{"limited", 60000, 1};
  // A replica whose clock is right is not held back until then.
  EXPECT_TRUE(policy::testing::Eventually([&] {
    absl::StatusOr<std::vector<Taken>> taken = store.TakeAll({{&charge, 1}}, absl::Now());
    EXPECT_TRUE(taken.ok()) << taken.status();
    return taken.ok() && (*taken)[0].granted == 1;
  }));
  // A replica whose clock runs ahead stamps nothing in the future.
  const absl::Time skewed = absl::Now() + absl::Minutes(5);
  ASSERT_TRUE(store.TakeAll({{&charge, 1}}, skewed).ok());
  EXPECT_EQ(sql("SELECT updated_at <= clock_timestamp() FROM authz.rate_buckets WHERE key = "
                "'limited'"),
            "t");
  ASSERT_TRUE(store.Adjust("limited", 60000, -1, skewed).ok());
  EXPECT_EQ(sql("SELECT updated_at <= clock_timestamp() FROM authz.rate_buckets WHERE key = "
                "'limited'"),
            "t");

  // Adjust refills a bucket stamped in the future from now on too.
  sql("UPDATE authz.rate_buckets SET level = 0, updated_at = clock_timestamp() + interval "
      "'5 minutes' WHERE key = 'limited'");
  ASSERT_TRUE(store.Adjust("limited", 60000, 0, absl::Now()).ok());
  EXPECT_EQ(sql("SELECT updated_at <= clock_timestamp() FROM authz.rate_buckets WHERE key = "
                "'limited'"),
            "t");
  EXPECT_TRUE(policy::testing::Eventually([&] {
    absl::StatusOr<std::vector<Taken>> taken = store.TakeAll({{&charge, 1}}, absl::Now());
    return taken.ok() && (*taken)[0].granted == 1;
  }));
}

TEST(TwoReplicasTest, AdmitNoMoreThanTheSmallerBucketBetweenThem) {
  if (pg::TestDatabase::Get() == nullptr) GTEST_SKIP() << "POLICY_TEST_PG_URL is not set";
  std::shared_ptr<pg::Pool> pool = EmptyDatabase();
  PostgresBucketStore observer(pool.get(), PostgresBucketStore::RefillClock::kCaller);
  auto level = [&](const std::string& key, int64_t per_minute, absl::Time at) {
    BucketCharge probe{key, per_minute, 0};
    absl::StatusOr<std::vector<Taken>> taken = observer.TakeAll({{&probe, 0}}, at);
    EXPECT_TRUE(taken.ok()) << taken.status();
    return taken.ok() ? (*taken)[0].level : std::nan("");
  };

  Replica a(pg::TestDatabase::Get()->url());
  Replica b(pg::TestDatabase::Get()->url());
  const std::vector<BucketCharge> charges = {{"project/p1/rpm", 300, 1},
                                             {"member/alice/p1/rpm", 120, 1}};

  std::cout << "at t0 (both buckets full):\n";
  std::vector<int> first = Hammer({&a, &b}, charges, kT0, 3, 60);
  std::cout << "  in all: " << first[0] + first[1] << " (member bucket: 120)\n";
  EXPECT_EQ(first[0] + first[1], 120);
  ASSERT_TRUE(a.limiter.ReturnLeases(absl::InfiniteFuture()).ok());
  ASSERT_TRUE(b.limiter.ReturnLeases(absl::InfiniteFuture()).ok());
  EXPECT_EQ(level("member/alice/p1/rpm", 120, kT0), 0);
  EXPECT_EQ(level("project/p1/rpm", 300, kT0), 300 - 120);

  const absl::Time later = kT0 + absl::Seconds(30);
  std::cout << "at t0 + 30 s:\n";
  std::vector<int> second = Hammer({&a, &b}, charges, later, 3, 30);
  std::cout << "  in all: " << second[0] + second[1] << " (member refill: 60)\n";
  EXPECT_LE(second[0] + second[1], 60);
  EXPECT_EQ(second[0] + second[1], 60);  // Leases were spent to the last unit.
  ASSERT_TRUE(a.limiter.ReturnLeases(absl::InfiniteFuture()).ok());
  ASSERT_TRUE(b.limiter.ReturnLeases(absl::InfiniteFuture()).ok());
  EXPECT_EQ(level("member/alice/p1/rpm", 120, later), 0);
  EXPECT_EQ(level("project/p1/rpm", 300, later), 300 - 60);
}

}  // namespace
}  // namespace policy::authz
