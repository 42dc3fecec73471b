#ifndef POLICY_SERVICES_REGION_CIRCUIT_BREAKER_H_
#define POLICY_SERVICES_REGION_CIRCUIT_BREAKER_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

// The circuit breaker of one endpoint: whether requests may be routed to it, learned from the
// outcomes of the requests sent there.
//
//   closed ──(N failures in a row, or failure rate over the window; enough reporters)──▶ open
//   open ──(cool_down elapsed)──▶ half_open
//   half_open ──(a success)──▶ closed        half_open ──(a failure)──▶ open (new cool-down)
//   open or half_open ──(another replica closed after this one last opened; Adopt)──▶ closed
//
// Time is never read from a clock: every method takes `now`, so tests drive it by hand. The
// breaker treats time as non-decreasing: a `now` earlier than the latest `now` passed to a
// mutating method (Admit, Record, Adopt) is taken as that latest time, so callers that read
// the clock before taking the lock that guards the breaker need not order their calls.
// REQUIRES: every `now` is finite.
//
// Reporters: each outcome names who reported it (the edge sends the calling key's project, the
// tenant). Either trigger opens the breaker only when the failures it counts (the run of
// failures in a row, or the failures in the window) come from at least min(min_reporters, R)
// distinct reporters, where R is the number of distinct reporters of any outcome in the window:
// one tenant alone cannot open an endpoint others use, while an endpoint only one reporter
// uses (R = 1) still opens. A trip withheld for lack of reporters is counted
// (BreakerSnapshot::trips_withheld). Reporters are hashed, never kept, and at most
// kBreakerMaxReporters of them are tracked per window bucket and per run, so memory is bounded
// however many report; since min_reporters is at most that many, the counts compared are exact
// up to it.
namespace policy::region {

enum class BreakerState { kClosed, kOpen, kHalfOpen };

// "closed", "open" or "half_open".
absl::string_view BreakerStateName(BreakerState s);

struct BreakerOptions {
  // Opens after this many failures in a row (at least 1).
  int consecutive_failures = 3;
  // ... or when failures / outcomes in the window exceed this (between 0 and 1; 1 turns the
  // rate trigger off, since no rate exceeds it).
  double failure_rate = 0.5;
  // ... with at least this many outcomes in the window (at least 1), so that a few early
  // failures do not open a breaker on their own.
  int min_window_outcomes = 20;
  // The sliding window of the rate trigger: kBreakerWindowBuckets time buckets of window / 10
  // each, so memory is bounded whatever the request rate. An outcome counts from when it is
  // recorded until at least window * 9/10 and at most window later. At least 10 ms.
  absl::Duration window = absl::Seconds(60);
  // How long the breaker stays open before it turns half-open (positive, finite).
  absl::Duration cool_down = absl::Seconds(30);
  // Requests admitted while half-open before an outcome is reported (at least 1).
  int half_open_probes = 1;
  // How long a probe holds its slot without an outcome being reported; after that the probe
  // is presumed lost (not failed) and its slot is given to another request, so a breaker never
  // stays half-open with every slot held by requests nobody reports on (positive, finite).
  absl::Duration probe_timeout = absl::Seconds(30);
  // The weight of a new latency sample in the exponentially weighted average (0 < a <= 1).
  double latency_smoothing = 0.2;
  // Q: either trigger opens the breaker only when its failures come from at least min(Q, R)
  // distinct reporters, R being the distinct reporters of the outcomes in the window (1 to
  // kBreakerMaxReporters; 1: any reporter alone may open it).
  int min_reporters = 2;
};

// The number of time buckets in BreakerOptions::window.
inline constexpr int kBreakerWindowBuckets = 10;
// The longest Outcome::reporter a caller may name (ReportOutcome refuses longer ones).
inline constexpr size_t kMaxReporterBytes = 256;
// The most distinct reporters tracked per window bucket and per run of failures, and so the
// largest BreakerOptions::min_reporters.
inline constexpr int kBreakerMaxReporters = 8;

// OK, or INVALID_ARGUMENT whose message names the first field out of range (as documented on
// BreakerOptions).
absl::Status ValidateBreakerOptions(const BreakerOptions& o);

// What came of one request sent to the endpoint.
struct Outcome {
  bool success;
  // How long it took. A success with a positive, finite latency is a latency sample; zero
  // means "not measured". Failures are never latency samples: they end either fast (refused
  // connections) or at the deadline, which says nothing about how fast the endpoint serves.
  absl::Duration latency;
  // When the request was routed, on the clock `now` is read from; absl::InfiniteFuture() when
  // unknown. A time after the outcome's `now` is taken as that `now`. An outcome of a request
  // routed before the breaker last opened (half-open) or last closed (closed) is a late reply
  // about the period that change ended: it feeds the latency average and nothing else.
  absl::Time routed_at = absl::InfiniteFuture();
  // Who reported it (the edge: the calling key's project); empty is one reporter like any
  // other. Only its hash is kept.
  std::string reporter = {};
};

struct BreakerSnapshot {
  BreakerState state = BreakerState::kClosed;
  // Failures reported in closed or half-open state since the latest success reported in those
  // states (outcomes reported while open, and late replies, do not count; see Record); 0 after
  // the breaker closes.
  int consecutive_failures = 0;
  // Outcomes in the window at `now`. The window is emptied when the breaker closes and takes
  // only outcomes reported while closed.
  uint64_t window_successes = 0;
  uint64_t window_failures = 0;
  // The exponentially weighted average latency, rounded to the nanosecond; none before the
  // first latency sample (see Outcome::latency). Kept across state changes.
  std::optional<absl::Duration> latency_ewma;
  // When not closed: when the breaker (last) opened, and when that open period ends and it
  // turns half-open (opened_at + cool_down). absl::InfinitePast() when closed.
  absl::Time opened_at = absl::InfinitePast();
  absl::Time half_open_at = absl::InfinitePast();
  // Half-open: probes admitted and neither reported on nor timed out. 0 otherwise.
  int probes_in_flight = 0;
  // When the breaker last closed, in any state: the latest of the times a success reported
  // here closed it and of the peers' closes it adopted (see Adopt). absl::InfinitePast() if it
  // has never closed.
  absl::Time closed_at = absl::InfinitePast();
  // Failures, since the breaker was made, on which a trigger fired but the breaker stayed
  // closed because the failures came from too few reporters (see BreakerOptions::
  // min_reporters). Kept across state changes.
  uint64_t trips_withheld = 0;
};

// Not thread-safe by itself (the router's registry guards it); all methods take `now`
// explicitly so that tests drive time with no sleeps.
class CircuitBreaker {
 public:
  // REQUIRES: ValidateBreakerOptions(options) is OK.
  explicit CircuitBreaker(BreakerOptions options = {});

  const BreakerOptions& options() const { return options_; }

  // The state at `now` (an open breaker whose cool-down has passed reads as half-open).
  BreakerState State(absl::Time now) const;

  // Whether a request may be routed here at `now`. Closed: always. Open: never. Half-open: at
  // most half_open_probes requests; each call that returns true takes a probe slot, held until
  // an outcome is reported (which closes or re-opens the breaker and so frees every slot) or
  // until probe_timeout has passed since the call.
  bool Admit(absl::Time now);

  // Whether Admit would return true at `now`, without taking a probe (for listing candidates).
  bool WouldAdmit(absl::Time now) const;

  // Reports an outcome observed at `now` and returns the state after the report.
  //  - closed: a success resets the consecutive failures; a failure counts toward both
  //    triggers, and opens the breaker (cool-down from `now`) when either fires with the
  //    failures it counts coming from enough reporters (BreakerOptions::min_reporters;
  //    otherwise trips_withheld grows by one). The rate is checked on failures only: old
  //    successes leaving the window never open a breaker alone.
  //  - half-open: a success closes it (resetting consecutive failures, window and probes); a
  //    failure, whoever reports it, re-opens it with a new cool-down from `now`. Any outcome of a
  //    request routed since the breaker opened decides, whether or not it was admitted here as a
  //    probe (another replica may have admitted it).
  //  - open: outcomes are late replies; a success updates the latency average, and nothing
  //    else changes.
  // An outcome of a request routed before the breaker last opened (half-open) or closed
  // (closed) changes nothing but the latency average (see Outcome::routed_at): replies to
  // requests caught in an outage, arriving after the close, do not re-open the breaker, and a
  // late success of a request sent before the outage does not close it.
  // In every state a success with a latency sample updates the latency average.
  BreakerState Record(const Outcome& outcome, absl::Time now);

  BreakerSnapshot Snapshot(absl::Time now) const;
  // Snapshot(now).latency_ewma, without counting the window (for the router's every request).
  std::optional<absl::Duration> LatencyEwma() const;

  // Merges the state another replica (sharing the same database, and so these options)
  // reported for this endpoint: its breaker is in `state`, last opened at `opened_at` (when not
  // closed) and, when closed, closed at `closed_at` (absl::InfinitePast() when unknown), both
  // on the clock `now` is read from (RegistrySync converts peers' times to it). Both are
  // taken as at most `now` (an error in that conversion cannot hold this breaker open for
  // longer than cool_down from now, nor make a close look newer than it can be).
  //
  // The rule: the latest evidence wins, and between an open and a close at the same time, the
  // open.
  //  - A closed report: if this breaker is open or half-open and last opened before
  //    `closed_at`, it closes as a success reported here would have closed it (resetting
  //    consecutive failures, window and probes). One that opened at or after `closed_at` is
  //    left as it is. Either way Snapshot().closed_at becomes at least `closed_at`.
  //  - An open or half-open report whose open period [opened_at, opened_at + cool_down) has
  //    ended at `now`, or that opened before the latest close this breaker knows of
  //    (Snapshot().closed_at: its own or an adopted one), changes nothing. Otherwise the more
  //    pessimistic of the two wins: this breaker opens (from closed or half-open, dropping
  //    its probes) or stays open, and turns half-open when the other's open period ends or,
  //    if open, at its own period's end if that is later. Counters, window and latency are
  //    kept.
  void Adopt(BreakerState state, absl::Time opened_at, absl::Time closed_at, absl::Time now);

 private:
  // Distinct reporters, by hash: the first kBreakerMaxReporters added; others are not kept.
  class ReporterSet {
   public:
    void Add(uint64_t hash);
    void Merge(const ReporterSet& other);
    int size() const { return size_; }
    void Clear() { size_ = 0; }

   private:
    std::array<uint64_t, kBreakerMaxReporters> hashes_{};
    int size_ = 0;
  };
  // Outcomes recorded in one window bucket: those whose time falls in
  // [index * bucket width, (index + 1) * bucket width) since the Unix epoch.
  struct Bucket {
    int64_t index = std::numeric_limits<int64_t>::min();
    uint64_t successes = 0;
    uint64_t failures = 0;
    ReporterSet reporters;  // Of any outcome.
    ReporterSet failing;    // Of failures.
  };
  struct WindowCounts {
    uint64_t successes = 0;
    uint64_t failures = 0;
  };
  // The distinct reporters in the window, each count exact up to kBreakerMaxReporters (the
  // union of per-bucket sets that each keep the first kBreakerMaxReporters).
  struct WindowReporters {
    ReporterSet reporters;
    ReporterSet failing;
  };

  // max(now, latest_now_), without updating latest_now_.
  absl::Time Effective(absl::Time now) const;
  // Records `now` as the latest time seen, turns an open breaker whose cool-down has passed
  // half-open, and returns Effective(now).
  absl::Time Advance(absl::Time now);
  // The state at effective time `now`.
  BreakerState StateAt(absl::Time now) const;
  // Probe slots held at effective time `now` (half-open only).
  int ProbesHeld(absl::Time now) const;

  void Open(absl::Time opened_at);
  // REQUIRES: closed_at >= closed_at_.
  void Close(absl::Time closed_at);
  // Feeds a latency sample to the average when `outcome` carries one.
  void UpdateLatency(const Outcome& outcome);

  int64_t BucketIndex(absl::Time t) const;
  void AddToWindow(bool success, uint64_t reporter, absl::Time now);
  WindowCounts CountWindow(absl::Time now) const;
  WindowReporters ReportersInWindow(absl::Time now) const;
  bool RateTripped(absl::Time now) const;
  // Closed, after a failure: opens the breaker at `now` when a trigger fires with enough
  // reporters, counts a withheld trip when one fires without.
  void OpenIfTripped(absl::Time now);

  const BreakerOptions options_;
  const absl::Duration bucket_width_;

  // The stored state: kOpen may read as half-open once opened_at_ + cool_down has passed;
  // Advance makes that explicit.
  BreakerState state_ = BreakerState::kClosed;
  absl::Time opened_at_ = absl::InfinitePast();
  // The latest close known here, own or adopted; never decreases.
  absl::Time closed_at_ = absl::InfinitePast();
  absl::Time latest_now_ = absl::InfinitePast();
  int consecutive_failures_ = 0;
  // The reporters of the current run of consecutive failures (while closed).
  ReporterSet run_reporters_;
  uint64_t trips_withheld_ = 0;
  std::array<Bucket, kBreakerWindowBuckets> buckets_;
  // Half-open: when each probe holding a slot was admitted (at most half_open_probes).
  std::vector<absl::Time> probes_;
  std::optional<double> latency_ewma_ns_;
};

}  // namespace policy::region

#endif  // POLICY_SERVICES_REGION_CIRCUIT_BREAKER_H_
