#include "services/edge/denial_budget.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock/clock.h"
#include "gtest/gtest.h"

namespace policy::edge {
namespace {

DenialBudgetOptions Options(int64_t per_minute, int64_t burst, size_t max_keys = 100'000) {
  DenialBudgetOptions options;
  options.per_minute = per_minute;
  options.burst = burst;
  options.max_keys = max_keys;
  return options;
}

TEST(DenialBudgetTest, AKeyIsRefusedOnceItsBurstIsDeniedAndAdmittedAsItRefills) {
  FakeClock clock;
  DenialBudget budget(Options(/*per_minute=*/6, /*burst=*/2), &clock);  // A unit per 10 s.
  EXPECT_EQ(budget.RetryAfter("key-1"), absl::ZeroDuration());
  budget.Denied("key-1");
  EXPECT_EQ(budget.RetryAfter("key-1"), absl::ZeroDuration());
  budget.Denied("key-1");
  EXPECT_EQ(budget.RetryAfter("key-1"), absl::Seconds(10));
  EXPECT_EQ(budget.RetryAfter("key-2"), absl::ZeroDuration());  // Another key: its own bucket.

  clock.Advance(absl::Seconds(4));
  EXPECT_EQ(budget.RetryAfter("key-1"), absl::Seconds(6));
  clock.Advance(absl::Seconds(6));
  EXPECT_EQ(budget.RetryAfter("key-1"), absl::ZeroDuration());
  budget.Denied("key-1");
  EXPECT_EQ(budget.RetryAfter("key-1"), absl::Seconds(10));
  // Never more than the burst, however long the key was quiet.
  clock.Advance(absl::Hours(1));
  budget.Denied("key-1");
  budget.Denied("key-1");
  EXPECT_GT(budget.RetryAfter("key-1"), absl::ZeroDuration());
}

TEST(DenialBudgetTest, DenialsOfRequestsAdmittedTogetherAreDebtAtMostABurstDeep) {
  FakeClock clock;
  DenialBudget budget(Options(/*per_minute=*/60, /*burst=*/3), &clock);
  for (int i = 0; i < 5; ++i) budget.Denied("key-1");       // Admitted while the bucket was full.
  EXPECT_EQ(budget.RetryAfter("key-1"), absl::Seconds(3));  // From -2 up to 1.
  for (int i = 0; i < 100; ++i) budget.Denied("key-1");
  EXPECT_EQ(budget.RetryAfter("key-1"), absl::Seconds(4));  // From -3 up to 1.
}

TEST(DenialBudgetTest, ZeroPerMinuteRefusesNothingAndRemembersNothing) {
  FakeClock clock;
  DenialBudget budget(Options(/*per_minute=*/0, /*burst=*/1), &clock);
  EXPECT_FALSE(budget.enabled());
  for (int i = 0; i < 10; ++i) budget.Denied("key-1");
  EXPECT_EQ(budget.RetryAfter("key-1"), absl::ZeroDuration());
  EXPECT_EQ(budget.size(), 0u);
}

TEST(DenialBudgetTest, MemoryIsBoundedDroppingRefilledBucketsThenTheIdlest) {
  FakeClock clock;
  // 16 shards of one bucket each.
  DenialBudget budget(Options(/*per_minute=*/60, /*burst=*/1, /*max_keys=*/16), &clock);
  for (int i = 0; i < 1000; ++i) {
    budget.Denied(absl::StrCat("key-", i));
    clock.Advance(absl::Milliseconds(1));
  }
  EXPECT_LE(budget.size(), 16u);
  // The latest key is still refused; refilled ones are forgotten as they would be full.
  EXPECT_GT(budget.RetryAfter("key-999"), absl::ZeroDuration());
  clock.Advance(absl::Seconds(1));
  budget.Denied("key-new");
  EXPECT_EQ(budget.RetryAfter("key-999"), absl::ZeroDuration());
  EXPECT_LE(budget.size(), 16u);
}

TEST(DenialBudgetTest, ConcurrentDenialsOfManyKeysAreEachCounted) {
  FakeClock clock;
  DenialBudget budget(Options(/*per_minute=*/60, /*burst=*/1000), &clock);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&budget] {
      for (int i = 0; i < 1000; ++i) budget.Denied(absl::StrCat("key-", i % 10));
    });
  }
  for (std::thread& t : threads) t.join();
  // 400 denials each of 1000: 600 left, so no key is refused.
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(budget.RetryAfter(absl::StrCat("key-", i)), absl::ZeroDuration());
  for (int i = 0; i < 600; ++i) budget.Denied("key-0");
  EXPECT_EQ(budget.RetryAfter("key-0"), absl::Seconds(1));
  EXPECT_EQ(budget.size(), 10u);
}

}  // namespace
}  // namespace policy::edge
