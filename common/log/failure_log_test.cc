#include "common/log/failure_log.h"

#include "gtest/gtest.h"

namespace policy {
namespace {

TEST(FailureLogTest, TheFirstFailureThenOneLineAMinuteThenTheRecoveryOnce) {
  FailureLog log("sync failed", "sync works again", absl::Minutes(1));
  const absl::Time start = absl::FromUnixSeconds(1'800'000'000);
  const absl::Status down = absl::UnavailableError("database unreachable");
  EXPECT_FALSE(log.Observe(absl::OkStatus(), start));  // Nothing to say while it works.
  EXPECT_TRUE(log.Observe(down, start));
  int lines = 0;
  // Five minutes of failures every 200 ms: one line a minute, not 1,500.
  for (absl::Time t = start + absl::Milliseconds(200); t < start + absl::Minutes(5);
       t += absl::Milliseconds(200)) {
    lines += log.Observe(down, t) ? 1 : 0;
  }
  EXPECT_EQ(lines, 4);
  EXPECT_TRUE(log.Observe(absl::OkStatus(), start + absl::Minutes(5)));
  EXPECT_FALSE(log.Observe(absl::OkStatus(), start + absl::Minutes(6)));
  // A new outage is said at once.
  EXPECT_TRUE(log.Observe(down, start + absl::Minutes(6)));
}

TEST(LogBudgetTest, AFewLinesAMinuteAndHowManyWereLeftOut) {
  LogBudget budget(3, absl::Minutes(1));
  const absl::Time start = absl::FromUnixSeconds(1'800'000'000);
  int64_t left_out = -1;
  int written = 0;
  for (int i = 0; i < 1000; ++i) written += budget.Take(start + absl::Milliseconds(i), &left_out);
  EXPECT_EQ(written, 3);
  EXPECT_EQ(left_out, 0);
  ASSERT_TRUE(budget.Take(start + absl::Minutes(1), &left_out));
  EXPECT_EQ(left_out, 997);
}

TEST(LogBudgetTest, ALimitedNumberOfLinesEachSecondAndTheRestCounted) {
  constexpr int kLibraryLinesPerSecond = 10;
  LogBudget budget(kLibraryLinesPerSecond, absl::Seconds(1));
  const absl::Time second = absl::FromUnixSeconds(1'800'000'000);
  int64_t dropped = -1;
  for (int i = 0; i < kLibraryLinesPerSecond; ++i) {
    ASSERT_TRUE(budget.Take(second + absl::Milliseconds(i), &dropped)) << i;
    EXPECT_EQ(dropped, 0);
  }
  for (int i = 0; i < 7; ++i) EXPECT_FALSE(budget.Take(second + absl::Milliseconds(900), &dropped));
  // The next second: the first line allowed says how many were refused.
  ASSERT_TRUE(budget.Take(second + absl::Seconds(1), &dropped));
  EXPECT_EQ(dropped, 7);
  ASSERT_TRUE(budget.Take(second + absl::Seconds(1), &dropped));
  EXPECT_EQ(dropped, 0);
}

}  // namespace
}  // namespace policy
