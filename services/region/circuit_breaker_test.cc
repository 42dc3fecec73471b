#include "services/region/circuit_breaker.h"

#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace policy::region {
namespace {

using ::testing::HasSubstr;
using ::testing::Optional;

// A multiple of every window bucket width used below, so bucket boundaries fall on round
// offsets from it.
const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

const Outcome kSuccess{true, absl::Milliseconds(10)};
const Outcome kFailure{false, absl::ZeroDuration()};

// Options where only the rate trigger can open the breaker.
BreakerOptions RateOnly() {
  BreakerOptions o;
  o.consecutive_failures = 1000;
  return o;
}

// Records failures at `now` until the breaker opens.
void Trip(CircuitBreaker& b, absl::Time now) {
  for (int i = 0; i < 1000 && b.State(now) != BreakerState::kOpen; ++i) b.Record(kFailure, now);
  ASSERT_EQ(b.State(now), BreakerState::kOpen);
}

TEST(BreakerStateNameTest, NamesEachState) {
  EXPECT_EQ(BreakerStateName(BreakerState::kClosed), "closed");
  EXPECT_EQ(BreakerStateName(BreakerState::kOpen), "open");
  EXPECT_EQ(BreakerStateName(BreakerState::kHalfOpen), "half_open");
}

TEST(ValidateBreakerOptionsTest, DefaultsAreValid) {
  EXPECT_TRUE(ValidateBreakerOptions(BreakerOptions{}).ok());
}

TEST(ValidateBreakerOptionsTest, RejectsEachBadFieldNamingIt) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  struct Case {
    std::string field;
    std::function<void(BreakerOptions&)> spoil;
  };
  const std::vector<Case> cases = {
      {"consecutive_failures", [](BreakerOptions& o) { o.consecutive_failures = 0; }},
      {"consecutive_failures", [](BreakerOptions& o) { o.consecutive_failures = -1; }},
      {"failure_rate", [](BreakerOptions& o) { o.failure_rate = -0.1; }},
      {"failure_rate", [](BreakerOptions& o) { o.failure_rate = 1.01; }},
      {"failure_rate", [&](BreakerOptions& o) { o.failure_rate = nan; }},
      {"min_window_outcomes", [](BreakerOptions& o) { o.min_window_outcomes = 0; }},
      {"window", [](BreakerOptions& o) { o.window = absl::ZeroDuration(); }},
      {"window", [](BreakerOptions& o) { o.window = absl::Milliseconds(9); }},
      {"window", [](BreakerOptions& o) { o.window = absl::InfiniteDuration(); }},
      {"cool_down", [](BreakerOptions& o) { o.cool_down = absl::ZeroDuration(); }},
      {"cool_down", [](BreakerOptions& o) { o.cool_down = -absl::Seconds(1); }},
      {"cool_down", [](BreakerOptions& o) { o.cool_down = absl::InfiniteDuration(); }},
      {"half_open_probes", [](BreakerOptions& o) { o.half_open_probes = 0; }},
      {"probe_timeout", [](BreakerOptions& o) { o.probe_timeout = absl::ZeroDuration(); }},
      {"probe_timeout", [](BreakerOptions& o) { o.probe_timeout = absl::InfiniteDuration(); }},
      {"latency_smoothing", [](BreakerOptions& o) { o.latency_smoothing = 0; }},
      {"latency_smoothing", [](BreakerOptions& o) { o.latency_smoothing = 1.5; }},
      {"latency_smoothing", [&](BreakerOptions& o) { o.latency_smoothing = nan; }},
      {"min_reporters", [](BreakerOptions& o) { o.min_reporters = 0; }},
      {"min_reporters", [](BreakerOptions& o) { o.min_reporters = kBreakerMaxReporters + 1; }},
  };
  for (const Case& c : cases) {
    BreakerOptions o;
    c.spoil(o);
    const absl::Status status = ValidateBreakerOptions(o);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.field << ": " << status;
    EXPECT_THAT(std::string(status.message()),
                HasSubstr(absl::StrCat("BreakerOptions.", c.field, " ")))
        << status;
  }
}

TEST(ValidateBreakerOptionsTest, AcceptsBoundaryValues) {
  BreakerOptions o;
  o.consecutive_failures = 1;
  o.failure_rate = 0;
  o.min_window_outcomes = 1;
  o.window = absl::Milliseconds(10);
  o.half_open_probes = 1;
  o.latency_smoothing = 1;
  o.min_reporters = 1;
  EXPECT_TRUE(ValidateBreakerOptions(o).ok());
  o.failure_rate = 1;
  o.min_reporters = kBreakerMaxReporters;
  EXPECT_TRUE(ValidateBreakerOptions(o).ok());
}

TEST(CircuitBreakerTest, StartsClosedAndAdmits) {
  CircuitBreaker b;
  EXPECT_EQ(b.State(kT0), BreakerState::kClosed);
  EXPECT_TRUE(b.WouldAdmit(kT0));
  EXPECT_TRUE(b.Admit(kT0));
  const BreakerSnapshot s = b.Snapshot(kT0);
  EXPECT_EQ(s.state, BreakerState::kClosed);
  EXPECT_EQ(s.consecutive_failures, 0);
  EXPECT_EQ(s.window_successes, 0u);
  EXPECT_EQ(s.window_failures, 0u);
  EXPECT_EQ(s.latency_ewma, std::nullopt);
  EXPECT_EQ(s.opened_at, absl::InfinitePast());
  EXPECT_EQ(s.probes_in_flight, 0);
}

TEST(CircuitBreakerTest, OpensAfterExactlyConsecutiveFailures) {
  CircuitBreaker b;
  EXPECT_EQ(b.Record(kFailure, kT0), BreakerState::kClosed);
  EXPECT_EQ(b.Record(kFailure, kT0 + absl::Seconds(1)), BreakerState::kClosed);
  EXPECT_EQ(b.Snapshot(kT0 + absl::Seconds(1)).consecutive_failures, 2);
  EXPECT_TRUE(b.Admit(kT0 + absl::Seconds(1)));

  const absl::Time third = kT0 + absl::Seconds(2);
  EXPECT_EQ(b.Record(kFailure, third), BreakerState::kOpen);
  EXPECT_FALSE(b.Admit(third));
  const BreakerSnapshot s = b.Snapshot(third);
  EXPECT_EQ(s.state, BreakerState::kOpen);
  EXPECT_EQ(s.consecutive_failures, 3);
  EXPECT_EQ(s.opened_at, third);
  EXPECT_EQ(s.half_open_at, third + absl::Seconds(30));
}

TEST(CircuitBreakerTest, SuccessResetsConsecutiveFailures) {
  CircuitBreaker b;
  absl::Time now = kT0;
  for (const Outcome& o : {kFailure, kFailure, kSuccess, kFailure, kFailure}) {
    EXPECT_EQ(b.Record(o, now), BreakerState::kClosed);
    now += absl::Seconds(1);
  }
  EXPECT_EQ(b.Snapshot(now).consecutive_failures, 2);
  EXPECT_EQ(b.Record(kFailure, now), BreakerState::kOpen);
}

TEST(CircuitBreakerTest, RateOpensOnlyOnceMinWindowOutcomesReached) {
  CircuitBreaker b(RateOnly());
  // 19 outcomes, 10 of them failures: over the rate, but under min_window_outcomes.
  for (int i = 0; i < 19; ++i) {
    EXPECT_EQ(b.Record(i % 2 == 0 ? kFailure : kSuccess, kT0), BreakerState::kClosed) << i;
  }
  // 20 outcomes at exactly the rate (10 / 20): not over it.
  EXPECT_EQ(b.Record(kSuccess, kT0), BreakerState::kClosed);
  const BreakerSnapshot s = b.Snapshot(kT0);
  EXPECT_EQ(s.window_failures, 10u);
  EXPECT_EQ(s.window_successes, 10u);
  // 11 / 21 is over it.
  EXPECT_EQ(b.Record(kFailure, kT0), BreakerState::kOpen);
  EXPECT_EQ(b.Snapshot(kT0).opened_at, kT0);
}

TEST(CircuitBreakerTest, RateIsCheckedOnFailuresOnly) {
  BreakerOptions o = RateOnly();
  o.failure_rate = 0;  // Any failure is over the rate once min_window_outcomes is reached.
  o.min_window_outcomes = 3;
  CircuitBreaker b(o);
  EXPECT_EQ(b.Record(kFailure, kT0), BreakerState::kClosed);
  EXPECT_EQ(b.Record(kSuccess, kT0), BreakerState::kClosed);
  EXPECT_EQ(b.Record(kSuccess, kT0), BreakerState::kClosed);  // Three outcomes, by a success.
  EXPECT_EQ(b.Record(kFailure, kT0), BreakerState::kOpen);
}

TEST(CircuitBreakerTest, FailuresOlderThanTheWindowStopCounting) {
  CircuitBreaker b(RateOnly());  // Window 60 s in buckets of 6 s.
  for (int i = 0; i < 15; ++i) b.Record(kFailure, kT0);
  EXPECT_EQ(b.Snapshot(kT0 + absl::Seconds(53)).window_failures, 15u);
  EXPECT_EQ(b.Snapshot(kT0 + absl::Seconds(60)).window_failures, 0u);

  // 10 failures and 10 successes in the window: at the rate, not over it. Counting the old
  // failures too, 25 / 35 would be.
  const absl::Time later = kT0 + absl::Seconds(60);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(b.Record(i % 2 == 0 ? kSuccess : kFailure, later), BreakerState::kClosed) << i;
  }
  EXPECT_EQ(b.Snapshot(later).window_failures, 10u);
}

TEST(CircuitBreakerTest, SuccessesOlderThanTheWindowStopCounting) {
  CircuitBreaker b(RateOnly());
  for (int i = 0; i < 30; ++i) b.Record(kSuccess, kT0);
  for (int i = 0; i < 19; ++i) b.Record(kFailure, kT0 + absl::Seconds(30));
  EXPECT_EQ(b.State(kT0 + absl::Seconds(30)), BreakerState::kClosed);  // 19 / 49.
  // The successes have left the window: 20 / 20.
  EXPECT_EQ(b.Record(kFailure, kT0 + absl::Seconds(60)), BreakerState::kOpen);
}

TEST(CircuitBreakerTest, WindowBucketsBoundHowLongAnOutcomeCounts) {
  CircuitBreaker b(RateOnly());
  // Recorded at the end of a 6 s bucket: counts for just over 54 s.
  b.Record(kFailure, kT0 + absl::Seconds(6) - absl::Milliseconds(1));
  EXPECT_EQ(b.Snapshot(kT0 + absl::Seconds(59)).window_failures, 1u);
  EXPECT_EQ(b.Snapshot(kT0 + absl::Seconds(60)).window_failures, 0u);
  // Recorded at the start of a bucket: counts for the full 60 s.
  b.Record(kFailure, kT0 + absl::Seconds(60));
  EXPECT_EQ(b.Snapshot(kT0 + absl::Seconds(120) - absl::Nanoseconds(1)).window_failures, 1u);
  EXPECT_EQ(b.Snapshot(kT0 + absl::Seconds(120)).window_failures, 0u);
}

TEST(CircuitBreakerTest, OpenRefusesUntilCoolDownThenAdmitsExactlyTheProbes) {
  BreakerOptions o;
  o.half_open_probes = 2;
  CircuitBreaker b(o);
  Trip(b, kT0);

  const absl::Time almost = kT0 + absl::Seconds(30) - absl::Nanoseconds(1);
  EXPECT_EQ(b.State(almost), BreakerState::kOpen);
  EXPECT_FALSE(b.WouldAdmit(almost));
  EXPECT_FALSE(b.Admit(almost));

  const absl::Time half_open = kT0 + absl::Seconds(30);
  EXPECT_EQ(b.State(half_open), BreakerState::kHalfOpen);
  EXPECT_TRUE(b.WouldAdmit(half_open));
  EXPECT_TRUE(b.WouldAdmit(half_open));  // WouldAdmit takes no probe.
  EXPECT_TRUE(b.Admit(half_open));
  EXPECT_EQ(b.Snapshot(half_open).probes_in_flight, 1);
  EXPECT_TRUE(b.Admit(half_open + absl::Seconds(1)));
  EXPECT_FALSE(b.WouldAdmit(half_open + absl::Seconds(1)));
  EXPECT_FALSE(b.Admit(half_open + absl::Seconds(1)));
  EXPECT_FALSE(b.Admit(half_open + absl::Seconds(20)));
  const BreakerSnapshot s = b.Snapshot(half_open + absl::Seconds(20));
  EXPECT_EQ(s.state, BreakerState::kHalfOpen);
  EXPECT_EQ(s.probes_in_flight, 2);
  EXPECT_EQ(s.opened_at, kT0);
  EXPECT_EQ(s.half_open_at, half_open);
}

TEST(CircuitBreakerTest, HalfOpenSuccessCloses) {
  CircuitBreaker b;
  Trip(b, kT0);
  const absl::Time half_open = kT0 + absl::Seconds(30);
  ASSERT_TRUE(b.Admit(half_open));
  EXPECT_EQ(b.Record(kSuccess, half_open + absl::Seconds(1)), BreakerState::kClosed);

  const absl::Time after = half_open + absl::Seconds(1);
  const BreakerSnapshot s = b.Snapshot(after);
  EXPECT_EQ(s.state, BreakerState::kClosed);
  EXPECT_EQ(s.consecutive_failures, 0);
  EXPECT_EQ(s.window_successes, 0u);  // The window starts afresh.
  EXPECT_EQ(s.window_failures, 0u);
  EXPECT_EQ(s.opened_at, absl::InfinitePast());
  EXPECT_EQ(s.probes_in_flight, 0);
  EXPECT_TRUE(b.Admit(after));
  EXPECT_TRUE(b.Admit(after));
  // Counting starts again from zero.
  EXPECT_EQ(b.Record(kFailure, after), BreakerState::kClosed);
  EXPECT_EQ(b.Record(kFailure, after), BreakerState::kClosed);
  EXPECT_EQ(b.Record(kFailure, after), BreakerState::kOpen);
}

TEST(CircuitBreakerTest, HalfOpenFailureReopensWithAFreshCoolDown) {
  CircuitBreaker b;
  Trip(b, kT0);
  const absl::Time probe = kT0 + absl::Seconds(45);
  ASSERT_TRUE(b.Admit(probe));
  const absl::Time failed = probe + absl::Seconds(2);
  EXPECT_EQ(b.Record(kFailure, failed), BreakerState::kOpen);

  const BreakerSnapshot s = b.Snapshot(failed);
  EXPECT_EQ(s.opened_at, failed);
  EXPECT_EQ(s.half_open_at, failed + absl::Seconds(30));
  EXPECT_EQ(s.consecutive_failures, 4);
  EXPECT_EQ(s.probes_in_flight, 0);
  EXPECT_FALSE(b.Admit(failed + absl::Seconds(30) - absl::Nanoseconds(1)));
  EXPECT_TRUE(b.Admit(failed + absl::Seconds(30)));
}

TEST(CircuitBreakerTest, AnyOutcomeReportedWhileHalfOpenDecides) {
  CircuitBreaker b;
  Trip(b, kT0);
  // A late reply to a request admitted before the breaker opened, with no probe taken.
  EXPECT_EQ(b.Record(kSuccess, kT0 + absl::Seconds(31)), BreakerState::kClosed);
}

// Outcomes reported late, of requests routed before the breaker last opened or closed, tell
// of the period that change ended: they neither decide a half-open breaker nor re-open a
// closed one, and they feed the latency average all the same.
TEST(CircuitBreakerTest, ALateReplyRoutedBeforeTheOpenDoesNotDecideHalfOpen) {
  CircuitBreaker b;
  Trip(b, kT0);
  const absl::Time half_open = kT0 + absl::Seconds(30);
  ASSERT_TRUE(b.Admit(half_open));
  Outcome late = kSuccess;
  late.routed_at = kT0 - absl::Seconds(5);
  late.latency = absl::Milliseconds(70);
  EXPECT_EQ(b.Record(late, half_open + absl::Seconds(1)), BreakerState::kHalfOpen);
  Outcome late_failure = kFailure;
  late_failure.routed_at = kT0 - absl::Seconds(1);
  EXPECT_EQ(b.Record(late_failure, half_open + absl::Seconds(1)), BreakerState::kHalfOpen);
  BreakerSnapshot s = b.Snapshot(half_open + absl::Seconds(1));
  EXPECT_EQ(s.probes_in_flight, 1);  // The probe still holds its slot.
  EXPECT_THAT(s.latency_ewma, Optional(absl::Milliseconds(70)));
  // The probe, routed after the open, decides.
  Outcome probe = kSuccess;
  probe.routed_at = half_open;
  EXPECT_EQ(b.Record(probe, half_open + absl::Seconds(2)), BreakerState::kClosed);
}

TEST(CircuitBreakerTest, LateFailuresRoutedBeforeTheCloseDoNotReopenIt) {
  CircuitBreaker b;
  Trip(b, kT0);
  const absl::Time half_open = kT0 + absl::Seconds(30);
  ASSERT_TRUE(b.Admit(half_open));
  const absl::Time closed = half_open + absl::Seconds(1);
  ASSERT_EQ(b.Record(kSuccess, closed), BreakerState::kClosed);
  // Requests caught in the outage time out after the close.
  Outcome stuck = kFailure;
  stuck.routed_at = kT0 - absl::Seconds(1);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(b.Record(stuck, closed + absl::Seconds(30)), BreakerState::kClosed);
  }
  BreakerSnapshot s = b.Snapshot(closed + absl::Seconds(30));
  EXPECT_EQ(s.consecutive_failures, 0);
  EXPECT_EQ(s.window_failures, 0u);
  // Failures of requests routed after the close count as ever, and so does a time in the
  // future (taken as now).
  Outcome fresh = kFailure;
  fresh.routed_at = closed;
  EXPECT_EQ(b.Record(fresh, closed + absl::Seconds(31)), BreakerState::kClosed);
  fresh.routed_at = absl::InfiniteFuture();
  EXPECT_EQ(b.Record(fresh, closed + absl::Seconds(31)), BreakerState::kClosed);
  fresh.routed_at = closed + absl::Hours(1);
  EXPECT_EQ(b.Record(fresh, closed + absl::Seconds(31)), BreakerState::kOpen);
}

TEST(CircuitBreakerTest, LostProbeFreesItsSlotAfterProbeTimeout) {
  BreakerOptions o;
  o.probe_timeout = absl::Seconds(5);
  CircuitBreaker b(o);
  Trip(b, kT0);
  const absl::Time half_open = kT0 + absl::Seconds(30);
  ASSERT_TRUE(b.Admit(half_open));
  EXPECT_FALSE(b.Admit(half_open + absl::Seconds(5) - absl::Nanoseconds(1)));
  EXPECT_TRUE(b.WouldAdmit(half_open + absl::Seconds(5)));
  EXPECT_EQ(b.Snapshot(half_open + absl::Seconds(5)).probes_in_flight, 0);
  EXPECT_TRUE(b.Admit(half_open + absl::Seconds(5)));
  EXPECT_FALSE(b.Admit(half_open + absl::Seconds(6)));
  EXPECT_EQ(b.State(half_open + absl::Seconds(6)), BreakerState::kHalfOpen);
}

TEST(CircuitBreakerTest, OutcomesWhileOpenUpdateLatencyOnly) {
  CircuitBreaker b;
  Trip(b, kT0);
  EXPECT_EQ(b.Record({true, absl::Milliseconds(40)}, kT0 + absl::Seconds(1)), BreakerState::kOpen);
  EXPECT_EQ(b.Record(kFailure, kT0 + absl::Seconds(2)), BreakerState::kOpen);
  const BreakerSnapshot s = b.Snapshot(kT0 + absl::Seconds(2));
  EXPECT_EQ(s.state, BreakerState::kOpen);
  EXPECT_EQ(s.consecutive_failures, 3);
  EXPECT_EQ(s.window_successes, 0u);
  EXPECT_EQ(s.window_failures, 3u);
  EXPECT_EQ(s.opened_at, kT0);  // A failure while open does not extend the cool-down.
  EXPECT_THAT(s.latency_ewma, Optional(absl::Milliseconds(40)));
}

TEST(CircuitBreakerTest, LatencyIsAnExponentiallyWeightedAverage) {
  BreakerOptions o;
  o.latency_smoothing = 0.5;
  CircuitBreaker b(o);
  b.Record({true, absl::Milliseconds(100)}, kT0);
  EXPECT_THAT(b.Snapshot(kT0).latency_ewma, Optional(absl::Milliseconds(100)));
  b.Record({true, absl::Milliseconds(200)}, kT0);  // 0.5 * 200 + 0.5 * 100
  EXPECT_THAT(b.Snapshot(kT0).latency_ewma, Optional(absl::Milliseconds(150)));
  b.Record({true, absl::Milliseconds(50)}, kT0);  // 0.5 * 50 + 0.5 * 150
  EXPECT_THAT(b.Snapshot(kT0).latency_ewma, Optional(absl::Milliseconds(100)));
  b.Record({true, absl::Nanoseconds(3)}, kT0);  // 0.5 * 3 ns + 0.5 * 100 ms, rounded.
  EXPECT_THAT(b.Snapshot(kT0).latency_ewma, Optional(absl::Nanoseconds(50'000'002)));
}

TEST(CircuitBreakerTest, LatencyWithDefaultSmoothing) {
  CircuitBreaker b;  // a = 0.2
  b.Record({true, absl::Milliseconds(100)}, kT0);
  b.Record({true, absl::Milliseconds(200)}, kT0);  // 0.2 * 200 + 0.8 * 100
  EXPECT_THAT(b.Snapshot(kT0).latency_ewma, Optional(absl::Milliseconds(120)));
  b.Record({true, absl::Milliseconds(20)}, kT0);  // 0.2 * 20 + 0.8 * 120
  EXPECT_THAT(b.Snapshot(kT0).latency_ewma, Optional(absl::Milliseconds(100)));
}

TEST(CircuitBreakerTest, FailuresAndUnmeasuredLatenciesAreNotSamples) {
  CircuitBreaker b;
  b.Record({false, absl::Seconds(5)}, kT0);
  b.Record({true, absl::ZeroDuration()}, kT0);
  b.Record({true, -absl::Milliseconds(1)}, kT0);
  b.Record({true, absl::InfiniteDuration()}, kT0);
  EXPECT_EQ(b.Snapshot(kT0).latency_ewma, std::nullopt);
  b.Record({true, absl::Milliseconds(7)}, kT0);
  b.Record({false, absl::Seconds(5)}, kT0);
  EXPECT_THAT(b.Snapshot(kT0).latency_ewma, Optional(absl::Milliseconds(7)));
}

TEST(CircuitBreakerTest, LatencyIsKeptWhenTheBreakerCloses) {
  CircuitBreaker b;
  b.Record({true, absl::Milliseconds(10)}, kT0);
  Trip(b, kT0);
  EXPECT_EQ(b.Record({true, absl::Milliseconds(10)}, kT0 + absl::Seconds(30)),
            BreakerState::kClosed);
  EXPECT_THAT(b.Snapshot(kT0 + absl::Seconds(30)).latency_ewma, Optional(absl::Milliseconds(10)));
}

TEST(CircuitBreakerTest, TimeEarlierThanTheLatestSeenIsTakenAsTheLatest) {
  CircuitBreaker b;
  Trip(b, kT0 + absl::Seconds(10));
  // A caller that read the clock before the breaker opened.
  EXPECT_FALSE(b.WouldAdmit(kT0));
  EXPECT_FALSE(b.Admit(kT0));
  EXPECT_EQ(b.State(kT0), BreakerState::kOpen);
  ASSERT_TRUE(b.Admit(kT0 + absl::Seconds(40)));
  EXPECT_EQ(b.State(kT0 + absl::Seconds(39)), BreakerState::kHalfOpen);
  EXPECT_EQ(b.Record(kFailure, kT0 + absl::Seconds(39)), BreakerState::kOpen);
  EXPECT_EQ(b.Snapshot(kT0).opened_at, kT0 + absl::Seconds(40));
}

TEST(CircuitBreakerAdoptTest, ClosedAdoptsAnOpenPeriodThatHasNotEnded) {
  CircuitBreaker b;
  const absl::Time peer_opened = kT0 - absl::Seconds(10);
  b.Adopt(BreakerState::kOpen, peer_opened, absl::InfinitePast(), kT0);
  EXPECT_EQ(b.State(kT0), BreakerState::kOpen);
  EXPECT_FALSE(b.Admit(kT0));
  const BreakerSnapshot s = b.Snapshot(kT0);
  EXPECT_EQ(s.opened_at, peer_opened);
  EXPECT_EQ(s.half_open_at, kT0 + absl::Seconds(20));
  // It turns half-open when the peer's does, and its own probe decides from there.
  EXPECT_EQ(b.State(kT0 + absl::Seconds(20)), BreakerState::kHalfOpen);
  ASSERT_TRUE(b.Admit(kT0 + absl::Seconds(20)));
  EXPECT_EQ(b.Record(kSuccess, kT0 + absl::Seconds(21)), BreakerState::kClosed);
}

TEST(CircuitBreakerAdoptTest, IgnoresAnOpenPeriodThatHasEnded) {
  CircuitBreaker b;
  b.Adopt(BreakerState::kOpen, kT0 - absl::Seconds(30), absl::InfinitePast(), kT0);
  EXPECT_EQ(b.State(kT0), BreakerState::kClosed);
  b.Adopt(BreakerState::kHalfOpen, kT0 - absl::Seconds(45), absl::InfinitePast(), kT0);
  EXPECT_EQ(b.State(kT0), BreakerState::kClosed);
}

TEST(CircuitBreakerAdoptTest, AClosedPeerThatDoesNotSayWhenItClosedChangesNothing) {
  CircuitBreaker b;
  Trip(b, kT0);
  b.Adopt(BreakerState::kClosed, absl::InfinitePast(), absl::InfinitePast(),
          kT0 + absl::Seconds(1));
  EXPECT_EQ(b.State(kT0 + absl::Seconds(1)), BreakerState::kOpen);
  ASSERT_TRUE(b.Admit(kT0 + absl::Seconds(30)));
  b.Adopt(BreakerState::kClosed, absl::InfinitePast(), absl::InfinitePast(),
          kT0 + absl::Seconds(31));
  const BreakerSnapshot s = b.Snapshot(kT0 + absl::Seconds(31));
  EXPECT_EQ(s.state, BreakerState::kHalfOpen);
  EXPECT_EQ(s.probes_in_flight, 1);
  EXPECT_EQ(s.closed_at, absl::InfinitePast());
}

// The defect this guards against: this replica admitted the half-open probe, its outcome was
// reported to another replica, which closed. Without adopting that close, this breaker held
// its probe slot (excluding the endpoint) until probe_timeout.
TEST(CircuitBreakerAdoptTest, HalfOpenClosesOnAPeersLaterCloseFreeingItsProbe) {
  CircuitBreaker b;
  Trip(b, kT0);
  const absl::Time half_open = kT0 + absl::Seconds(30);
  ASSERT_TRUE(b.Admit(half_open));
  ASSERT_FALSE(b.WouldAdmit(half_open + absl::Seconds(1)));
  b.Adopt(BreakerState::kClosed, absl::InfinitePast(), half_open + absl::Seconds(1),
          half_open + absl::Seconds(2));
  const BreakerSnapshot s = b.Snapshot(half_open + absl::Seconds(2));
  EXPECT_EQ(s.state, BreakerState::kClosed);
  EXPECT_EQ(s.probes_in_flight, 0);
  EXPECT_EQ(s.consecutive_failures, 0);
  EXPECT_EQ(s.window_failures, 0u);
  EXPECT_EQ(s.opened_at, absl::InfinitePast());
  EXPECT_EQ(s.closed_at, half_open + absl::Seconds(1));
  EXPECT_TRUE(b.Admit(half_open + absl::Seconds(2)));
}

TEST(CircuitBreakerAdoptTest, OpenClosesOnAPeersLaterClose) {
  CircuitBreaker b;
  // Opened by a peer's report, whose own probe later succeeded.
  b.Adopt(BreakerState::kOpen, kT0, absl::InfinitePast(), kT0 + absl::Seconds(1));
  ASSERT_EQ(b.State(kT0 + absl::Seconds(10)), BreakerState::kOpen);
  b.Adopt(BreakerState::kClosed, absl::InfinitePast(), kT0 + absl::Seconds(9),
          kT0 + absl::Seconds(10));
  EXPECT_EQ(b.State(kT0 + absl::Seconds(10)), BreakerState::kClosed);
  EXPECT_TRUE(b.WouldAdmit(kT0 + absl::Seconds(10)));
}

TEST(CircuitBreakerAdoptTest, ABreakerOpenedAtOrAfterThePeersCloseStaysOpen) {
  for (const absl::Duration after : {absl::ZeroDuration(), absl::Seconds(1)}) {
    CircuitBreaker b;
    Trip(b, kT0 + after);  // Its own failures, reported at or after the peer's close.
    const absl::Time half_open = kT0 + after + absl::Seconds(30);
    ASSERT_TRUE(b.Admit(half_open));
    b.Adopt(BreakerState::kClosed, absl::InfinitePast(), kT0, half_open + absl::Seconds(1));
    const BreakerSnapshot s = b.Snapshot(half_open + absl::Seconds(1));
    EXPECT_EQ(s.state, BreakerState::kHalfOpen);
    EXPECT_EQ(s.opened_at, kT0 + after);
    EXPECT_EQ(s.probes_in_flight, 1);
    // Known all the same: older opens reported later are outweighed by it.
    EXPECT_EQ(s.closed_at, kT0);
  }
}

TEST(CircuitBreakerAdoptTest, APeersOpenOlderThanAKnownCloseChangesNothing) {
  // The close known here is this breaker's own: its probe succeeded after the peer opened.
  CircuitBreaker own;
  Trip(own, kT0);
  ASSERT_TRUE(own.Admit(kT0 + absl::Seconds(30)));
  ASSERT_EQ(own.Record(kSuccess, kT0 + absl::Seconds(31)), BreakerState::kClosed);
  own.Adopt(BreakerState::kOpen, kT0 + absl::Seconds(20), absl::InfinitePast(),
            kT0 + absl::Seconds(32));
  EXPECT_EQ(own.State(kT0 + absl::Seconds(32)), BreakerState::kClosed);
  EXPECT_EQ(own.Snapshot(kT0 + absl::Seconds(32)).closed_at, kT0 + absl::Seconds(31));

  // The close known here is another peer's, adopted while closed: the order in which one
  // round adopts the replicas' states does not matter.
  CircuitBreaker adopted;
  adopted.Adopt(BreakerState::kClosed, absl::InfinitePast(), kT0 + absl::Seconds(5),
                kT0 + absl::Seconds(6));
  EXPECT_EQ(adopted.Snapshot(kT0 + absl::Seconds(6)).closed_at, kT0 + absl::Seconds(5));
  adopted.Adopt(BreakerState::kOpen, kT0 + absl::Seconds(4), absl::InfinitePast(),
                kT0 + absl::Seconds(6));
  EXPECT_EQ(adopted.State(kT0 + absl::Seconds(6)), BreakerState::kClosed);
  // An open at the same time as the close wins.
  adopted.Adopt(BreakerState::kOpen, kT0 + absl::Seconds(5), absl::InfinitePast(),
                kT0 + absl::Seconds(6));
  EXPECT_EQ(adopted.State(kT0 + absl::Seconds(6)), BreakerState::kOpen);
  EXPECT_EQ(adopted.Snapshot(kT0 + absl::Seconds(6)).opened_at, kT0 + absl::Seconds(5));
}

TEST(CircuitBreakerAdoptTest, APeerClockAheadCannotPostdateItsClose) {
  CircuitBreaker b;
  b.Adopt(BreakerState::kClosed, absl::InfinitePast(), kT0 + absl::Hours(1), kT0);
  EXPECT_EQ(b.Snapshot(kT0).closed_at, kT0);
  // Another peer's failures a second later are newer than that close.
  b.Adopt(BreakerState::kOpen, kT0 + absl::Seconds(1), absl::InfinitePast(),
          kT0 + absl::Seconds(2));
  EXPECT_EQ(b.State(kT0 + absl::Seconds(2)), BreakerState::kOpen);
}

TEST(CircuitBreakerTest, ClosedAtIsWhenASuccessLastClosedIt) {
  CircuitBreaker b;
  EXPECT_EQ(b.Snapshot(kT0).closed_at, absl::InfinitePast());
  Trip(b, kT0);
  EXPECT_EQ(b.Snapshot(kT0).closed_at, absl::InfinitePast());
  ASSERT_TRUE(b.Admit(kT0 + absl::Seconds(30)));
  ASSERT_EQ(b.Record(kSuccess, kT0 + absl::Seconds(32)), BreakerState::kClosed);
  EXPECT_EQ(b.Snapshot(kT0 + absl::Seconds(40)).closed_at, kT0 + absl::Seconds(32));
  Trip(b, kT0 + absl::Seconds(50));
  EXPECT_EQ(b.Snapshot(kT0 + absl::Seconds(50)).closed_at, kT0 + absl::Seconds(32));
}

TEST(CircuitBreakerAdoptTest, OpenKeepsTheLaterEnd) {
  CircuitBreaker b;
  Trip(b, kT0);
  // The peer opened earlier: this breaker's own period ends later and stands.
  b.Adopt(BreakerState::kOpen, kT0 - absl::Seconds(5), absl::InfinitePast(),
          kT0 + absl::Seconds(1));
  EXPECT_EQ(b.Snapshot(kT0 + absl::Seconds(1)).half_open_at, kT0 + absl::Seconds(30));
  // The peer opened later: its period stands.
  b.Adopt(BreakerState::kOpen, kT0 + absl::Seconds(8), absl::InfinitePast(),
          kT0 + absl::Seconds(10));
  EXPECT_EQ(b.Snapshot(kT0 + absl::Seconds(10)).half_open_at, kT0 + absl::Seconds(38));
  EXPECT_EQ(b.State(kT0 + absl::Seconds(37)), BreakerState::kOpen);
  EXPECT_EQ(b.State(kT0 + absl::Seconds(38)), BreakerState::kHalfOpen);
}

TEST(CircuitBreakerAdoptTest, HalfOpenReopensDroppingItsProbes) {
  CircuitBreaker b;
  Trip(b, kT0);
  const absl::Time half_open = kT0 + absl::Seconds(30);
  ASSERT_TRUE(b.Admit(half_open));
  // The peer's probe failed a moment ago.
  b.Adopt(BreakerState::kOpen, half_open + absl::Seconds(1), absl::InfinitePast(),
          half_open + absl::Seconds(2));
  const BreakerSnapshot s = b.Snapshot(half_open + absl::Seconds(2));
  EXPECT_EQ(s.state, BreakerState::kOpen);
  EXPECT_EQ(s.opened_at, half_open + absl::Seconds(1));
  EXPECT_EQ(s.probes_in_flight, 0);
  // The probe's late success is a late reply to an open breaker.
  EXPECT_EQ(b.Record(kSuccess, half_open + absl::Seconds(3)), BreakerState::kOpen);
}

TEST(CircuitBreakerAdoptTest, APeerClockAheadCannotHoldItOpenLongerThanACoolDown) {
  CircuitBreaker b;
  b.Adopt(BreakerState::kOpen, kT0 + absl::Hours(1), absl::InfinitePast(), kT0);
  const BreakerSnapshot s = b.Snapshot(kT0);
  EXPECT_EQ(s.state, BreakerState::kOpen);
  EXPECT_EQ(s.opened_at, kT0);
  EXPECT_EQ(s.half_open_at, kT0 + absl::Seconds(30));
}

TEST(CircuitBreakerAdoptTest, KeepsCountersAndWindow) {
  CircuitBreaker b;
  b.Record(kFailure, kT0);
  b.Record(kSuccess, kT0);
  b.Record(kFailure, kT0);
  b.Adopt(BreakerState::kOpen, kT0, absl::InfinitePast(), kT0);
  const BreakerSnapshot s = b.Snapshot(kT0);
  EXPECT_EQ(s.state, BreakerState::kOpen);
  EXPECT_EQ(s.consecutive_failures, 1);
  EXPECT_EQ(s.window_failures, 2u);
  EXPECT_EQ(s.window_successes, 1u);
}

// Reporters: one tenant's failures alone do not open an endpoint other tenants use.

Outcome From(const Outcome& outcome, const std::string& reporter) {
  Outcome o = outcome;
  o.reporter = reporter;
  return o;
}

TEST(CircuitBreakerReportersTest, OneReporterCannotTripAnEndpointOthersUse) {
  CircuitBreaker b;  // min_reporters 2.
  EXPECT_EQ(b.Record(From(kSuccess, "tenant-b"), kT0), BreakerState::kClosed);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(b.Record(From(kFailure, "tenant-a"), kT0), BreakerState::kClosed) << i;
  }
  BreakerSnapshot s = b.Snapshot(kT0);
  EXPECT_EQ(s.consecutive_failures, 10);
  // The third failure in a row and each after it would have opened it.
  EXPECT_EQ(s.trips_withheld, 8u);

  // Nor by the failure rate: 40 failures of 41 outcomes, all but one success from one tenant.
  CircuitBreaker rate(RateOnly());
  rate.Record(From(kSuccess, "tenant-b"), kT0);
  for (int i = 0; i < 40; ++i) {
    EXPECT_EQ(rate.Record(From(kFailure, "tenant-a"), kT0), BreakerState::kClosed) << i;
  }
  EXPECT_EQ(rate.Snapshot(kT0).window_failures, 40u);
  // From the 19th failure on (20 outcomes, min_window_outcomes).
  EXPECT_EQ(rate.Snapshot(kT0).trips_withheld, 22u);
}

TEST(CircuitBreakerReportersTest, FailuresFromTwoReportersTrip) {
  CircuitBreaker b;
  b.Record(From(kSuccess, "tenant-c"), kT0);
  b.Record(From(kFailure, "tenant-a"), kT0);
  b.Record(From(kFailure, "tenant-a"), kT0);
  EXPECT_EQ(b.Record(From(kFailure, "tenant-b"), kT0), BreakerState::kOpen);
  EXPECT_EQ(b.Snapshot(kT0).trips_withheld, 0u);

  // A flood from one tenant and a single failure from another trip the rate trigger.
  CircuitBreaker rate(RateOnly());
  rate.Record(From(kSuccess, "tenant-c"), kT0);
  for (int i = 0; i < 30; ++i) rate.Record(From(kFailure, "tenant-a"), kT0);
  ASSERT_EQ(rate.State(kT0), BreakerState::kClosed);
  EXPECT_EQ(rate.Record(From(kFailure, "tenant-b"), kT0 + absl::Seconds(1)), BreakerState::kOpen);
  EXPECT_EQ(rate.Snapshot(kT0 + absl::Seconds(1)).opened_at, kT0 + absl::Seconds(1));

  // The run of failures must hold both: a success in between starts a new run.
  CircuitBreaker run;
  run.Record(From(kFailure, "tenant-b"), kT0);
  run.Record(From(kSuccess, "tenant-c"), kT0);
  run.Record(From(kFailure, "tenant-a"), kT0);
  run.Record(From(kFailure, "tenant-a"), kT0);
  EXPECT_EQ(run.Record(From(kFailure, "tenant-a"), kT0), BreakerState::kClosed);
  EXPECT_EQ(run.Record(From(kFailure, "tenant-b"), kT0), BreakerState::kOpen);
}

TEST(CircuitBreakerReportersTest, MinReportersOneIsTheBehaviourWithoutReporters) {
  BreakerOptions o;
  o.min_reporters = 1;
  CircuitBreaker b(o);
  b.Record(From(kSuccess, "tenant-b"), kT0);
  b.Record(From(kFailure, "tenant-a"), kT0);
  b.Record(From(kFailure, "tenant-a"), kT0);
  EXPECT_EQ(b.Record(From(kFailure, "tenant-a"), kT0), BreakerState::kOpen);

  BreakerOptions rate_options = RateOnly();
  rate_options.min_reporters = 1;
  CircuitBreaker rate(rate_options);
  for (int i = 0; i < 10; ++i) rate.Record(From(kSuccess, "tenant-b"), kT0);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(rate.Record(From(kFailure, "tenant-a"), kT0), BreakerState::kClosed) << i;
  }
  EXPECT_EQ(rate.Record(From(kFailure, "tenant-a"), kT0), BreakerState::kOpen);  // 11 / 21.
  EXPECT_EQ(rate.Snapshot(kT0).trips_withheld, 0u);
}

TEST(CircuitBreakerReportersTest, AnEndpointOneReporterUsesStillTrips) {
  CircuitBreaker b;
  b.Record(From(kSuccess, "tenant-a"), kT0);
  b.Record(From(kFailure, "tenant-a"), kT0);
  b.Record(From(kFailure, "tenant-a"), kT0);
  EXPECT_EQ(b.Record(From(kFailure, "tenant-a"), kT0), BreakerState::kOpen);

  CircuitBreaker rate(RateOnly());
  for (int i = 0; i < 20; ++i) rate.Record(From(kFailure, "tenant-a"), kT0);
  EXPECT_EQ(rate.State(kT0), BreakerState::kOpen);

  // R counts the reporters in the window: once another tenant's outcomes have left it, the one
  // left reporting is alone again.
  CircuitBreaker alone;
  alone.Record(From(kSuccess, "tenant-b"), kT0);
  alone.Record(From(kFailure, "tenant-a"), kT0 + absl::Seconds(60));
  alone.Record(From(kFailure, "tenant-a"), kT0 + absl::Seconds(60));
  EXPECT_EQ(alone.Record(From(kFailure, "tenant-a"), kT0 + absl::Seconds(60)), BreakerState::kOpen);
}

TEST(CircuitBreakerReportersTest, TheEmptyReporterIsOneReporter) {
  CircuitBreaker b;
  b.Record(From(kSuccess, "tenant-a"), kT0);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(b.Record(kFailure, kT0), BreakerState::kClosed) << i;
  EXPECT_EQ(b.Snapshot(kT0).trips_withheld, 1u);
  EXPECT_EQ(b.Record(From(kFailure, "tenant-a"), kT0), BreakerState::kOpen);

  // Callers that name no reporter are one reporter together: they trip alone.
  CircuitBreaker unnamed;
  for (int i = 0; i < 2; ++i) unnamed.Record(kFailure, kT0);
  EXPECT_EQ(unnamed.Record(kFailure, kT0), BreakerState::kOpen);
}

TEST(CircuitBreakerReportersTest, ManyReportersAreCountedUpToTheMostTracked) {
  BreakerOptions o;
  o.min_reporters = kBreakerMaxReporters;
  o.consecutive_failures = 1000;
  o.min_window_outcomes = 1;
  o.failure_rate = 0;  // Any failure is over the rate: the reporters alone decide.
  CircuitBreaker b(o);
  // A thousand reporters in one bucket, more than are tracked.
  for (int i = 0; i < 1000; ++i) b.Record(From(kSuccess, absl::StrCat("tenant-", i)), kT0);
  // Failures from one reporter fewer than min_reporters do not open it, the next does:
  // R is counted as at least min_reporters, however many more reported.
  for (int i = 0; i < kBreakerMaxReporters - 1; ++i) {
    EXPECT_EQ(b.Record(From(kFailure, absl::StrCat("failing-", i)), kT0), BreakerState::kClosed)
        << i;
    EXPECT_EQ(b.Record(From(kFailure, absl::StrCat("failing-", i)), kT0), BreakerState::kClosed)
        << i;
  }
  EXPECT_EQ(b.Snapshot(kT0).trips_withheld, 2u * (kBreakerMaxReporters - 1));
  EXPECT_EQ(b.Record(From(kFailure, "failing-last"), kT0), BreakerState::kOpen);

  // The same with the run of failures, and with the reporters spread over every bucket.
  o = BreakerOptions{};
  o.min_reporters = kBreakerMaxReporters;
  o.consecutive_failures = kBreakerMaxReporters;
  CircuitBreaker run(o);
  absl::Time now = kT0;
  for (int i = 0; i < 1000; ++i) {
    now = kT0 + absl::Milliseconds(59) * i;
    run.Record(From(kSuccess, absl::StrCat("tenant-", i)), now);
  }
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(
        run.Record(From(kFailure, absl::StrCat("failing-", i % (kBreakerMaxReporters - 1))), now),
        BreakerState::kClosed)
        << i;
  }
  EXPECT_EQ(run.Record(From(kFailure, "failing-last"), now), BreakerState::kOpen);
}

TEST(CircuitBreakerReportersTest, HalfOpenIsDecidedByTheFirstOutcomeWhoeverReportsIt) {
  CircuitBreaker b;
  b.Record(From(kSuccess, "tenant-c"), kT0);
  b.Record(From(kFailure, "tenant-a"), kT0);
  b.Record(From(kFailure, "tenant-a"), kT0);
  ASSERT_EQ(b.Record(From(kFailure, "tenant-b"), kT0), BreakerState::kOpen);
  const absl::Time half_open = kT0 + absl::Seconds(30);
  ASSERT_TRUE(b.Admit(half_open));
  // One tenant's failure re-opens it.
  EXPECT_EQ(b.Record(From(kFailure, "tenant-a"), half_open), BreakerState::kOpen);
  const absl::Time again = half_open + absl::Seconds(30);
  ASSERT_EQ(b.State(again), BreakerState::kHalfOpen);
  // And one tenant's success closes it, with its run's reporters forgotten.
  EXPECT_EQ(b.Record(From(kSuccess, "tenant-a"), again), BreakerState::kClosed);
  b.Record(From(kSuccess, "tenant-c"), again);
  b.Record(From(kFailure, "tenant-b"), again);
  b.Record(From(kFailure, "tenant-a"), again);
  b.Record(From(kSuccess, "tenant-c"), again);
  b.Record(From(kFailure, "tenant-a"), again);
  b.Record(From(kFailure, "tenant-a"), again);
  EXPECT_EQ(b.Record(From(kFailure, "tenant-a"), again), BreakerState::kClosed);
  EXPECT_EQ(b.Snapshot(again).trips_withheld, 1u);
}

// Whether a breaker observed in `from` may next be observed in `to`, when a peer's close was
// or was not adopted in between.
bool AllowedTransition(BreakerState from, BreakerState to, bool adopted_close) {
  if (from == to) return true;
  switch (from) {
    case BreakerState::kClosed:
      return to == BreakerState::kOpen;
    case BreakerState::kOpen:
      return to == BreakerState::kHalfOpen || (adopted_close && to == BreakerState::kClosed);
    case BreakerState::kHalfOpen:
      return true;  // To closed or open.
  }
  return false;
}

// Drives random outcomes, admissions, peer reports and time steps (some backwards) through
// breakers with random options, checking the invariants after every step against a model of
// the outcomes that should be in the window.
TEST(CircuitBreakerRandomTest, InvariantsHold) {
  constexpr uint32_t kSeed = 20240611;
  std::mt19937 rng(kSeed);
  auto pick = [&](auto... values) {
    const std::vector<std::common_type_t<decltype(values)...>> v = {values...};
    return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)];
  };
  auto chance = [&](double p) { return std::bernoulli_distribution(p)(rng); };

  int opened = 0, half_opened = 0, closed_again = 0, reopened = 0;
  int closed_by_peer = 0, peer_close_outweighed = 0, peer_open_outweighed = 0;
  for (int trial = 0; trial < 40; ++trial) {
    BreakerOptions o;
    o.consecutive_failures = pick(1, 2, 3, 5, 1000);
    o.failure_rate = pick(0.0, 0.25, 0.5, 0.9, 1.0);
    o.min_window_outcomes = pick(1, 5, 20);
    o.window = pick(absl::Seconds(1), absl::Seconds(10), absl::Seconds(60));
    o.cool_down = pick(absl::Milliseconds(100), absl::Seconds(1), absl::Seconds(30));
    o.half_open_probes = pick(1, 2, 3);
    o.probe_timeout = pick(absl::Milliseconds(500), absl::Seconds(5));
    o.latency_smoothing = pick(0.2, 0.5, 1.0);
    ASSERT_TRUE(ValidateBreakerOptions(o).ok());
    SCOPED_TRACE(absl::StrCat("seed ", kSeed, " trial ", trial));
    CircuitBreaker b(o);

    absl::Time clock = kT0;                       // What the caller passes.
    absl::Time effective = absl::InfinitePast();  // The latest time passed to a mutating method.
    std::deque<std::pair<absl::Time, bool>> window_model;  // Recorded while closed.
    double min_sample = std::numeric_limits<double>::infinity(), max_sample = 0;
    BreakerState observed = BreakerState::kClosed;
    absl::Time known_close = absl::InfinitePast();  // The latest close, own or adopted.

    for (int step = 0; step < 5000; ++step) {
      SCOPED_TRACE(absl::StrCat("step ", step));
      bool adopted_close = false;
      const BreakerState before = b.State(clock);
      const int action = std::uniform_int_distribution<int>(0, 9)(rng);
      if (action <= 2) {  // Time passes, now and then backwards.
        if (chance(0.05)) {
          clock -= absl::Milliseconds(std::uniform_int_distribution<int>(0, 2000)(rng));
        } else {
          const absl::Duration unit = pick(absl::Milliseconds(1), absl::Milliseconds(100),
                                           absl::Seconds(1), absl::Seconds(10));
          clock += unit * std::uniform_int_distribution<int>(0, 20)(rng);
        }
      } else if (action <= 4) {  // A request is routed, or not.
        const bool would = b.WouldAdmit(clock);
        const int probes_before = b.Snapshot(clock).probes_in_flight;
        const bool admitted = b.Admit(clock);
        effective = std::max(effective, clock);
        EXPECT_EQ(admitted, would);
        if (before == BreakerState::kOpen) {
          EXPECT_FALSE(admitted);
        }
        if (before == BreakerState::kClosed) {
          EXPECT_TRUE(admitted);
        }
        if (before == BreakerState::kHalfOpen) {
          const int probes_after = b.Snapshot(clock).probes_in_flight;
          EXPECT_LE(probes_after, o.half_open_probes);
          EXPECT_EQ(probes_after, admitted ? probes_before + 1 : probes_before);
          if (!admitted) {
            EXPECT_EQ(probes_before, o.half_open_probes);
          }
        }
      } else if (action <= 8) {  // An outcome comes back.
        const bool success = chance(pick(0.2, 0.5, 0.9));
        const absl::Duration latency =
            chance(0.2) ? absl::ZeroDuration()
                        : absl::Microseconds(std::uniform_int_distribution<int>(1, 500'000)(rng));
        effective = std::max(effective, clock);
        const BreakerState after = b.Record({success, latency}, clock);
        EXPECT_EQ(after, b.State(clock));
        if (success && latency > absl::ZeroDuration()) {
          min_sample = std::min(min_sample, absl::ToDoubleNanoseconds(latency));
          max_sample = std::max(max_sample, absl::ToDoubleNanoseconds(latency));
        }
        const BreakerSnapshot s = b.Snapshot(clock);
        switch (before) {
          case BreakerState::kClosed: {
            window_model.emplace_back(effective, success);
            const uint64_t total = s.window_successes + s.window_failures;
            const bool rate_over =
                total >= static_cast<uint64_t>(o.min_window_outcomes) &&
                static_cast<double>(s.window_failures) / static_cast<double>(total) >
                    o.failure_rate;
            if (success) {
              EXPECT_EQ(after, BreakerState::kClosed);
              EXPECT_EQ(s.consecutive_failures, 0);
            } else {
              EXPECT_EQ(after == BreakerState::kOpen,
                        s.consecutive_failures >= o.consecutive_failures || rate_over);
            }
            if (after == BreakerState::kOpen) {
              EXPECT_EQ(s.opened_at, effective);
              ++opened;
            }
            break;
          }
          case BreakerState::kHalfOpen:
            EXPECT_EQ(after, success ? BreakerState::kClosed : BreakerState::kOpen);
            if (success) {
              window_model.clear();
              known_close = effective;
              ++closed_again;
            } else {
              EXPECT_EQ(s.opened_at, effective);
              ++reopened;
            }
            break;
          case BreakerState::kOpen:
            EXPECT_EQ(after, BreakerState::kOpen);
            break;
        }
      } else {  // A peer reports its breaker.
        const BreakerState peer =
            pick(BreakerState::kClosed, BreakerState::kOpen, BreakerState::kHalfOpen);
        const absl::Time peer_opened =
            clock - o.cool_down * std::uniform_real_distribution<double>(-0.5, 2)(rng);
        // Unknown now and then (a replica that does not say).
        const absl::Time peer_closed =
            chance(0.1)
                ? absl::InfinitePast()
                : clock - o.cool_down * std::uniform_real_distribution<double>(-0.5, 2)(rng);
        const BreakerSnapshot s0 = b.Snapshot(clock);
        effective = std::max(effective, clock);
        b.Adopt(peer, peer == BreakerState::kClosed ? absl::InfinitePast() : peer_opened,
                peer == BreakerState::kClosed ? peer_closed : absl::InfinitePast(), clock);
        const BreakerSnapshot s = b.Snapshot(clock);
        if (peer == BreakerState::kClosed) {
          const absl::Time closed_at = std::min(peer_closed, effective);
          if (s0.state != BreakerState::kClosed && s0.opened_at < closed_at) {
            EXPECT_EQ(s.state, BreakerState::kClosed);
            EXPECT_EQ(s.consecutive_failures, 0);
            EXPECT_EQ(s.window_failures + s.window_successes, 0u);
            window_model.clear();
            adopted_close = true;
            ++closed_by_peer;
          } else {
            if (s0.state != BreakerState::kClosed) ++peer_close_outweighed;
            EXPECT_EQ(s.state, s0.state);
            EXPECT_EQ(s.opened_at, s0.opened_at);
            EXPECT_EQ(s.probes_in_flight, s0.probes_in_flight);
            EXPECT_EQ(s.consecutive_failures, s0.consecutive_failures);
            EXPECT_EQ(s.window_failures, s0.window_failures);
            EXPECT_EQ(s.window_successes, s0.window_successes);
          }
          known_close = std::max(known_close, closed_at);
        } else {
          const absl::Time opened_at = std::min(peer_opened, effective);
          const bool peer_period_running = opened_at + o.cool_down > effective;
          if (peer_period_running && opened_at < known_close) ++peer_open_outweighed;
          if (peer_period_running && opened_at >= known_close) {
            EXPECT_EQ(s.state, BreakerState::kOpen);
            EXPECT_GE(s.half_open_at, opened_at + o.cool_down);
            if (s0.state == BreakerState::kOpen) {
              EXPECT_GE(s.half_open_at, s0.half_open_at);
            }
          } else {
            EXPECT_EQ(s.state, s0.state);
            EXPECT_EQ(s.opened_at, s0.opened_at);
          }
          EXPECT_EQ(s.consecutive_failures, s0.consecutive_failures);
          EXPECT_EQ(s.window_failures, s0.window_failures);
          EXPECT_EQ(s.window_successes, s0.window_successes);
        }
      }

      // Invariants at every step, at the time the breaker reads `clock` as.
      const absl::Time read_at = std::max(clock, effective);
      const BreakerSnapshot s = b.Snapshot(clock);
      EXPECT_EQ(s.state, b.State(clock));
      EXPECT_TRUE(AllowedTransition(observed, s.state, adopted_close))
          << BreakerStateName(observed) << " -> " << BreakerStateName(s.state);
      if (observed == BreakerState::kOpen && s.state == BreakerState::kHalfOpen) ++half_opened;
      observed = s.state;
      if (s.state == BreakerState::kOpen) {
        EXPECT_FALSE(b.WouldAdmit(clock));
      }
      if (s.state == BreakerState::kClosed) {
        EXPECT_TRUE(b.WouldAdmit(clock));
        EXPECT_LT(s.consecutive_failures, o.consecutive_failures);
        EXPECT_EQ(s.opened_at, absl::InfinitePast());
        EXPECT_EQ(s.probes_in_flight, 0);
      } else {
        EXPECT_EQ(s.half_open_at, s.opened_at + o.cool_down);
        EXPECT_LE(s.opened_at, read_at);
        EXPECT_EQ(s.state == BreakerState::kOpen, read_at < s.half_open_at);
      }
      EXPECT_LE(s.probes_in_flight, o.half_open_probes);
      EXPECT_EQ(s.closed_at, known_close);
      if (s.state != BreakerState::kClosed) {
        EXPECT_GE(s.opened_at, s.closed_at);
      }
      EXPECT_EQ(b.WouldAdmit(clock),
                s.state == BreakerState::kClosed || (s.state == BreakerState::kHalfOpen &&
                                                     s.probes_in_flight < o.half_open_probes));

      // The window holds what was recorded while closed since the breaker last closed, in
      // the last window (at least the last 9/10 of it).
      uint64_t lower = 0, upper = 0;
      for (const auto& [at, success] : window_model) {
        if (read_at - at < o.window) ++upper;
        if (read_at - at < o.window * 9 / 10) ++lower;
      }
      const uint64_t total = s.window_successes + s.window_failures;
      EXPECT_LE(lower, total);
      EXPECT_LE(total, upper);
      while (!window_model.empty() && effective - window_model.front().first >= o.window) {
        window_model.pop_front();
      }

      if (max_sample == 0) {
        EXPECT_EQ(s.latency_ewma, std::nullopt);
      } else {
        ASSERT_TRUE(s.latency_ewma.has_value());
        EXPECT_GE(absl::ToDoubleNanoseconds(*s.latency_ewma), min_sample - 1);
        EXPECT_LE(absl::ToDoubleNanoseconds(*s.latency_ewma), max_sample + 1);
      }
      if (HasFailure()) return;  // One failing step is enough to read.
    }
  }
  // The walk went through every transition many times.
  EXPECT_GT(opened, 100);
  EXPECT_GT(half_opened, 100);
  EXPECT_GT(closed_again, 100);
  EXPECT_GT(reopened, 100);
  EXPECT_GT(closed_by_peer, 100);
  EXPECT_GT(peer_close_outweighed, 100);
  EXPECT_GT(peer_open_outweighed, 100);
}

}  // namespace
}  // namespace policy::region
