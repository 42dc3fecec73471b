#include "common/clock/sync_watermark.h"

#include "gtest/gtest.h"

namespace policy {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

TEST(SyncWatermarkTest, LagsFromTheLatestProofAndNeverMovesBack) {
  SyncWatermark w;
  EXPECT_EQ(w.Lag(kT0), absl::InfiniteDuration());
  EXPECT_FALSE(w.Within(kT0, absl::Hours(1)));
  w.Advance(kT0);
  EXPECT_EQ(w.Lag(kT0 + absl::Milliseconds(300)), absl::Milliseconds(300));
  EXPECT_TRUE(w.Within(kT0 + absl::Seconds(1), absl::Seconds(1)));
  EXPECT_FALSE(w.Within(kT0 + absl::Seconds(1) + absl::Nanoseconds(1), absl::Seconds(1)));
  w.Advance(kT0 - absl::Seconds(5));  // An older proof changes nothing.
  EXPECT_EQ(w.Lag(kT0 + absl::Seconds(1)), absl::Seconds(1));
  w.Advance(absl::InfiniteFuture());
  EXPECT_EQ(w.Lag(kT0 + absl::Hours(24)), absl::ZeroDuration());
}

}  // namespace
}  // namespace policy
