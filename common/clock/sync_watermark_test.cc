#include "common/clock/sync_watermark.h"

#include "gtest/gtest.h"

namespace policy {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

TEST(SyncWatermarkTest, LagsFromTheLatestProof) {
  SyncWatermark w;
  EXPECT_EQ(w.Lag(kT0), absl::InfiniteDuration());
  EXPECT_FALSE(w.Within(kT0, absl::Hours(1)));
  w.Advance(kT0);
  EXPECT_EQ(w.Lag(kT0), absl::ZeroDuration());
  EXPECT_EQ(w.Lag(kT0 + absl::Milliseconds(300)), absl::Milliseconds(300));
  EXPECT_TRUE(w.Within(kT0 + absl::Seconds(1), absl::Seconds(1)));
  EXPECT_FALSE(w.Within(kT0 + absl::Seconds(1) + absl::Nanoseconds(1), absl::Seconds(1)));
  w.Advance(absl::InfiniteFuture());
  EXPECT_EQ(w.Lag(kT0 + absl::Hours(24)), absl::ZeroDuration());
  w.Advance(kT0);  // Always current stays so.
  EXPECT_EQ(w.Lag(kT0 + absl::Hours(24)), absl::ZeroDuration());
}

TEST(SyncWatermarkTest, AProofLaterThanNowProvesNothingUntilTheNextOne) {
  SyncWatermark w;
  w.Advance(kT0);
  // The clock stepped back an hour: the proof of kT0 says nothing about kT0 - 1h.
  EXPECT_EQ(w.Lag(kT0 - absl::Hours(1)), absl::Hours(1));
  EXPECT_FALSE(w.Within(kT0 - absl::Seconds(2), absl::Seconds(1)));
  // A reader whose `now` was read an instant before the proof was taken.
  EXPECT_TRUE(w.Within(kT0 - absl::Milliseconds(1), absl::Seconds(1)));
  // The next proof, on the stepped-back clock, replaces it.
  w.Advance(kT0 - absl::Hours(1));
  EXPECT_EQ(w.Lag(kT0 - absl::Hours(1) + absl::Milliseconds(200)), absl::Milliseconds(200));
  EXPECT_FALSE(w.Within(kT0 - absl::Hours(1) + absl::Seconds(2), absl::Seconds(1)));
}

}  // namespace
}  // namespace policy
