#include "services/region/circuit_breaker.h"

#include <algorithm>
#include <cmath>

#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"

namespace policy::region {
namespace {

constexpr absl::Duration kMinWindow = absl::Milliseconds(10);

bool PositiveFinite(absl::Duration d) {
  return d > absl::ZeroDuration() && d != absl::InfiniteDuration();
}

absl::Status FieldError(absl::string_view field, absl::string_view requirement,
                        absl::string_view got) {
  return absl::InvalidArgumentError(
      absl::StrCat("BreakerOptions.", field, " must be ", requirement, ", got ", got));
}

// Reporters are told apart within this process only: a per-process hash suffices.
uint64_t ReporterHash(absl::string_view reporter) {
  return absl::Hash<absl::string_view>{}(reporter);
}

}  // namespace

absl::string_view BreakerStateName(BreakerState s) {
  switch (s) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half_open";
  }
  return "unknown";
}

absl::Status ValidateBreakerOptions(const BreakerOptions& o) {
  if (o.consecutive_failures < 1) {
    return FieldError("consecutive_failures", "at least 1", absl::StrCat(o.consecutive_failures));
  }
  if (!(o.failure_rate >= 0 && o.failure_rate <= 1)) {  // Also rejects NaN.
    return FieldError("failure_rate", "between 0 and 1", absl::StrCat(o.failure_rate));
  }
  if (o.min_window_outcomes < 1) {
    return FieldError("min_window_outcomes", "at least 1", absl::StrCat(o.min_window_outcomes));
  }
  if (o.window < kMinWindow || o.window == absl::InfiniteDuration()) {
    return FieldError("window", "at least 10ms and finite", absl::FormatDuration(o.window));
  }
  if (!PositiveFinite(o.cool_down)) {
    return FieldError("cool_down", "positive and finite", absl::FormatDuration(o.cool_down));
  }
  if (o.half_open_probes < 1) {
    return FieldError("half_open_probes", "at least 1", absl::StrCat(o.half_open_probes));
  }
  if (!PositiveFinite(o.probe_timeout)) {
    return FieldError("probe_timeout", "positive and finite",
                      absl::FormatDuration(o.probe_timeout));
  }
  if (!(o.latency_smoothing > 0 && o.latency_smoothing <= 1)) {  // Also rejects NaN.
    return FieldError("latency_smoothing", "in (0, 1]", absl::StrCat(o.latency_smoothing));
  }
  if (o.min_reporters < 1 || o.min_reporters > kBreakerMaxReporters) {
    return FieldError("min_reporters", absl::StrCat("between 1 and ", kBreakerMaxReporters),
                      absl::StrCat(o.min_reporters));
  }
  return absl::OkStatus();
}

CircuitBreaker::CircuitBreaker(BreakerOptions options)
    : options_(options), bucket_width_(options_.window / kBreakerWindowBuckets) {}

absl::Time CircuitBreaker::Effective(absl::Time now) const { return std::max(now, latest_now_); }

absl::Time CircuitBreaker::Advance(absl::Time now) {
  latest_now_ = Effective(now);
  if (state_ == BreakerState::kOpen && latest_now_ >= opened_at_ + options_.cool_down) {
    state_ = BreakerState::kHalfOpen;
    probes_.clear();
  }
  return latest_now_;
}

BreakerState CircuitBreaker::StateAt(absl::Time now) const {
  if (state_ == BreakerState::kOpen && now >= opened_at_ + options_.cool_down) {
    return BreakerState::kHalfOpen;
  }
  return state_;
}

int CircuitBreaker::ProbesHeld(absl::Time now) const {
  // A breaker that reads half-open only because its cool-down has passed holds no probes yet.
  if (state_ != BreakerState::kHalfOpen) return 0;
  return static_cast<int>(std::count_if(probes_.begin(), probes_.end(), [&](absl::Time admitted) {
    return now < admitted + options_.probe_timeout;
  }));
}

BreakerState CircuitBreaker::State(absl::Time now) const { return StateAt(Effective(now)); }

bool CircuitBreaker::Admit(absl::Time now) {
  now = Advance(now);
  switch (state_) {
    case BreakerState::kClosed:
      return true;
    case BreakerState::kOpen:
      return false;
    case BreakerState::kHalfOpen:
      break;
  }
  std::erase_if(probes_,
                [&](absl::Time admitted) { return now >= admitted + options_.probe_timeout; });
  if (static_cast<int>(probes_.size()) >= options_.half_open_probes) return false;
  probes_.push_back(now);
  return true;
}

bool CircuitBreaker::WouldAdmit(absl::Time now) const {
  now = Effective(now);
  switch (StateAt(now)) {
    case BreakerState::kClosed:
      return true;
    case BreakerState::kOpen:
      return false;
    case BreakerState::kHalfOpen:
      break;
  }
  return ProbesHeld(now) < options_.half_open_probes;
}

BreakerState CircuitBreaker::Record(const Outcome& outcome, absl::Time now) {
  now = Advance(now);
  UpdateLatency(outcome);
  const absl::Time routed_at = std::min(outcome.routed_at, now);
  switch (state_) {
    case BreakerState::kClosed: {
      if (routed_at < closed_at_) break;  // A late reply from before the close.
      const uint64_t reporter = ReporterHash(outcome.reporter);
      AddToWindow(outcome.success, reporter, now);
      if (outcome.success) {
        consecutive_failures_ = 0;
        run_reporters_.Clear();
      } else {
        ++consecutive_failures_;
        run_reporters_.Add(reporter);
        OpenIfTripped(now);
      }
      break;
    }
    case BreakerState::kHalfOpen:
      if (routed_at < opened_at_) break;  // A late reply from before the open.
      if (outcome.success) {
        Close(now);
      } else {
        ++consecutive_failures_;
        Open(now);
      }
      break;
    case BreakerState::kOpen:
      break;
  }
  return state_;
}

std::optional<absl::Duration> CircuitBreaker::LatencyEwma() const {
  if (!latency_ewma_ns_.has_value()) return std::nullopt;
  return absl::Nanoseconds(std::llround(*latency_ewma_ns_));
}

BreakerSnapshot CircuitBreaker::Snapshot(absl::Time now) const {
  now = Effective(now);
  BreakerSnapshot s;
  s.state = StateAt(now);
  s.consecutive_failures = consecutive_failures_;
  const WindowCounts counts = CountWindow(now);
  s.window_successes = counts.successes;
  s.window_failures = counts.failures;
  s.latency_ewma = LatencyEwma();
  if (s.state != BreakerState::kClosed) {
    s.opened_at = opened_at_;
    s.half_open_at = opened_at_ + options_.cool_down;
  }
  s.probes_in_flight = ProbesHeld(now);
  s.closed_at = closed_at_;
  s.trips_withheld = trips_withheld_;
  return s;
}

void CircuitBreaker::Adopt(BreakerState state, absl::Time opened_at, absl::Time closed_at,
                           absl::Time now) {
  now = Advance(now);
  if (state == BreakerState::kClosed) {
    closed_at = std::min(closed_at, now);
    if (closed_at <= closed_at_) return;  // Nothing newer than what is known here.
    if (state_ != BreakerState::kClosed && opened_at_ < closed_at) {
      Close(closed_at);
    } else {
      closed_at_ = closed_at;
    }
    return;
  }
  opened_at = std::min(opened_at, now);
  if (opened_at + options_.cool_down <= now) return;  // The other's open period has ended.
  if (opened_at < closed_at_) return;  // A later close (here or adopted) outweighs it.
  // Closed: opened_at_ is InfinitePast. Half-open: its own open period ended before the
  // other's, which therefore wins. Open: the later end wins.
  Open(std::max(opened_at_, opened_at));
}

void CircuitBreaker::Open(absl::Time opened_at) {
  state_ = BreakerState::kOpen;
  opened_at_ = opened_at;
  probes_.clear();
}

void CircuitBreaker::Close(absl::Time closed_at) {
  state_ = BreakerState::kClosed;
  opened_at_ = absl::InfinitePast();
  closed_at_ = closed_at;
  consecutive_failures_ = 0;
  run_reporters_.Clear();
  buckets_.fill(Bucket{});
  probes_.clear();
}

void CircuitBreaker::UpdateLatency(const Outcome& outcome) {
  if (!outcome.success || outcome.latency <= absl::ZeroDuration() ||
      outcome.latency == absl::InfiniteDuration()) {
    return;
  }
  const double sample = absl::ToDoubleNanoseconds(outcome.latency);
  if (!latency_ewma_ns_.has_value()) {
    latency_ewma_ns_ = sample;
    return;
  }
  const double a = options_.latency_smoothing;
  latency_ewma_ns_ = a * sample + (1 - a) * *latency_ewma_ns_;
}

int64_t CircuitBreaker::BucketIndex(absl::Time t) const {
  absl::Duration rem;
  int64_t index = absl::IDivDuration(t - absl::UnixEpoch(), bucket_width_, &rem);
  if (rem < absl::ZeroDuration()) --index;  // Floor, for times before the epoch.
  return index;
}

void CircuitBreaker::ReporterSet::Add(uint64_t hash) {
  if (size_ == kBreakerMaxReporters) return;
  for (int i = 0; i < size_; ++i) {
    if (hashes_[static_cast<size_t>(i)] == hash) return;
  }
  hashes_[static_cast<size_t>(size_++)] = hash;
}

void CircuitBreaker::ReporterSet::Merge(const ReporterSet& other) {
  for (int i = 0; i < other.size_; ++i) Add(other.hashes_[static_cast<size_t>(i)]);
}

void CircuitBreaker::AddToWindow(bool success, uint64_t reporter, absl::Time now) {
  const int64_t index = BucketIndex(now);
  Bucket& bucket = buckets_[static_cast<size_t>(
      ((index % kBreakerWindowBuckets) + kBreakerWindowBuckets) % kBreakerWindowBuckets)];
  // `now` never decreases (Advance), so a bucket never holds a later index than `now`'s.
  if (bucket.index != index) {
    bucket = Bucket{};
    bucket.index = index;
  }
  ++(success ? bucket.successes : bucket.failures);
  bucket.reporters.Add(reporter);
  if (!success) bucket.failing.Add(reporter);
}

CircuitBreaker::WindowCounts CircuitBreaker::CountWindow(absl::Time now) const {
  const int64_t index = BucketIndex(now);
  WindowCounts counts;
  for (const Bucket& bucket : buckets_) {
    if (bucket.index > index - kBreakerWindowBuckets && bucket.index <= index) {
      counts.successes += bucket.successes;
      counts.failures += bucket.failures;
    }
  }
  return counts;
}

CircuitBreaker::WindowReporters CircuitBreaker::ReportersInWindow(absl::Time now) const {
  const int64_t index = BucketIndex(now);
  WindowReporters reporters;
  for (const Bucket& bucket : buckets_) {
    if (bucket.index > index - kBreakerWindowBuckets && bucket.index <= index) {
      reporters.reporters.Merge(bucket.reporters);
      reporters.failing.Merge(bucket.failing);
    }
  }
  return reporters;
}

bool CircuitBreaker::RateTripped(absl::Time now) const {
  const WindowCounts counts = CountWindow(now);
  const uint64_t total = counts.successes + counts.failures;
  if (total < static_cast<uint64_t>(options_.min_window_outcomes)) return false;
  return static_cast<double>(counts.failures) / static_cast<double>(total) > options_.failure_rate;
}

void CircuitBreaker::OpenIfTripped(absl::Time now) {
  const bool run = consecutive_failures_ >= options_.consecutive_failures;
  const bool rate = RateTripped(now);
  if (!run && !rate) return;
  const WindowReporters window = ReportersInWindow(now);
  // The failure just recorded is in the window: at least one reporter is needed.
  const int needed = std::max(1, std::min(options_.min_reporters, window.reporters.size()));
  if ((run && run_reporters_.size() >= needed) || (rate && window.failing.size() >= needed)) {
    Open(now);
  } else {
    ++trips_withheld_;
  }
}

}  // namespace policy::region
