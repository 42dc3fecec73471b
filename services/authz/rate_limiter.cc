#include "services/authz/rate_limiter.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status/status.h"

namespace policy::authz {
namespace {

// Charges per request in the common case (project and member, requests and tokens).
constexpr size_t kInlineCharges = 8;

// A charge no bucket state can admit: the limit admits nothing or the request costs more than
// the bucket ever holds.
bool NeverAdmitted(int64_t per_minute, int64_t units) {
  return per_minute <= 0 || units > per_minute;
}

int64_t ClampRemaining(double shared_level, int64_t lease_units, int64_t per_minute) {
  const int64_t remaining = static_cast<int64_t>(std::floor(shared_level)) + lease_units;
  return std::clamp<int64_t>(remaining, 0, std::max<int64_t>(per_minute, 0));
}

// How long a bucket at `level` takes to refill to `units`, rounded up to whole milliseconds.
absl::Duration RefillTime(double level, int64_t units, int64_t per_minute) {
  const double missing = static_cast<double>(units) - level;
  if (missing <= 0) return absl::ZeroDuration();
  return absl::Milliseconds(
      static_cast<int64_t>(std::ceil(missing * 60000.0 / static_cast<double>(per_minute))));
}

bool OutOfRange(const BucketCharge& c) {
  return c.per_minute < 0 || c.per_minute > kMaxPerMinute || c.units < 0 || c.units > kMaxPerMinute;
}

absl::Status CheckCharges(const std::vector<BucketCharge>& charges) {
  for (const BucketCharge& c : charges) {
    if (OutOfRange(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat("bucket ", c.key, ": per_minute ", c.per_minute, ", units ", c.units));
    }
  }
  return absl::OkStatus();
}

LimitDecision Allowed(const std::vector<BucketCharge>& charges, const int64_t* remaining) {
  LimitDecision decision;
  decision.allowed = true;
  decision.remaining.reserve(charges.size());
  for (size_t i = 0; i < charges.size(); ++i) {
    decision.remaining.push_back({charges[i].key, charges[i].per_minute, remaining[i]});
  }
  return decision;
}

}  // namespace

absl::Status ValidateTake(const BucketStore::Take& take) {
  if (take.charge == nullptr) return absl::InvalidArgumentError("take without a charge");
  const BucketCharge& c = *take.charge;
  if (c.per_minute < 0 || c.per_minute > kMaxPerMinute || c.units < 0 || take.want < c.units ||
      take.want > kMaxPerMinute) {
    return absl::InvalidArgumentError(absl::StrCat("bad take of bucket ", c.key, ": per_minute ",
                                                   c.per_minute, ", units ", c.units, ", want ",
                                                   take.want));
  }
  return absl::OkStatus();
}

absl::Status ValidateAdjustment(absl::string_view key, int64_t per_minute, int64_t delta) {
  if (per_minute < 0 || per_minute > kMaxPerMinute || delta < -kMaxPerMinute ||
      delta > kMaxPerMinute) {
    return absl::InvalidArgumentError(absl::StrCat("bad adjustment of bucket ", key,
                                                   ": per_minute ", per_minute, ", delta ", delta));
  }
  return absl::OkStatus();
}

RateLimiter::RateLimiter(BucketStore* store, RateLimiterOptions options)
    : store_(store), options_(options) {}

RateLimiter::~RateLimiter() = default;

size_t RateLimiter::SpendLocked(const std::vector<BucketCharge>& charges, absl::Time now,
                                int64_t* remaining) {
  absl::InlinedVector<Lease*, kInlineCharges> spent(charges.size(), nullptr);
  for (size_t i = 0; i < charges.size(); ++i) {
    const BucketCharge& c = charges[i];
    auto it = leases_.find(c.key);
    if (it == leases_.end() || it->second.expires_at <= now || it->second.units < c.units) {
      for (size_t j = 0; j < i; ++j) spent[j]->units += charges[j].units;
      return i;
    }
    it->second.units -= c.units;
    spent[i] = &it->second;
  }
  for (size_t i = 0; i < charges.size(); ++i) {
    Lease& lease = *spent[i];
    lease.last_used = std::max(lease.last_used, now);
    remaining[i] = ClampRemaining(lease.shared_level, lease.units, charges[i].per_minute);
  }
  return charges.size();
}

int64_t RateLimiter::KnownRemainingLocked(const BucketCharge& charge) const {
  auto it = leases_.find(charge.key);
  if (it == leases_.end()) return std::max<int64_t>(charge.per_minute, 0);  // Full if unknown.
  return ClampRemaining(it->second.shared_level, it->second.units, charge.per_minute);
}

void RateLimiter::DetachExpiredLocked(const std::string& key, absl::Time now,
                                      std::vector<Adjustment>& returns) {
  auto it = leases_.find(key);
  if (it == leases_.end() || it->second.expires_at > now) return;
  if (it->second.units > 0) {
    returns.push_back({key, it->second.per_minute, it->second.units, now});
  }
  leases_.erase(it);
}

LimitDecision RateLimiter::DenyLocked(const std::vector<BucketCharge>& charges, size_t limiting,
                                      absl::Duration retry_after) {
  LimitDecision decision;
  decision.limiting_key = charges[limiting].key;
  decision.retry_after = retry_after;
  decision.remaining.reserve(charges.size());
  for (const BucketCharge& c : charges) {
    decision.remaining.push_back({c.key, c.per_minute, KnownRemainingLocked(c)});
  }
  return decision;
}

absl::Status RateLimiter::Send(std::vector<Adjustment> adjustments) {
  absl::Status first_error;
  std::vector<Adjustment> failed;
  for (Adjustment& a : adjustments) {
    absl::Status s = store_->Adjust(a.key, a.per_minute, a.delta, a.at);
    if (!s.ok()) {
      if (first_error.ok()) first_error = s;
      // Sent again only when nothing happened: one of unknown outcome may have been applied,
      // and applying it twice would give the units back twice (over the limit), where
      // dropping it leaves them taken until the bucket refills (under it).
      if (!absl::IsUnknown(s)) failed.push_back(std::move(a));
    }
  }
  if (!failed.empty()) {
    absl::MutexLock lock(&mu_);
    for (Adjustment& a : failed) unsent_.push_back(std::move(a));
  }
  return first_error;
}

std::optional<LimitDecision> RateLimiter::TryAcquireLocal(const std::vector<BucketCharge>& charges,
                                                          absl::Time now) {
  for (size_t i = 0; i < charges.size(); ++i) {
    const BucketCharge& c = charges[i];
    if (OutOfRange(c)) return std::nullopt;  // Acquire reports it.
    if (NeverAdmitted(c.per_minute, c.units)) {
      absl::MutexLock lock(&mu_);
      return DenyLocked(charges, i, absl::InfiniteDuration());
    }
  }
  absl::InlinedVector<int64_t, kInlineCharges> remaining(charges.size());
  {
    absl::MutexLock lock(&mu_);
    const size_t uncovered = SpendLocked(charges, now, remaining.data());
    if (uncovered != charges.size()) {
      auto it = short_until_.find(charges[uncovered].key);
      if (it == short_until_.end()) return std::nullopt;
      if (it->second <= now) {
        short_until_.erase(it);
        return std::nullopt;
      }
      return DenyLocked(charges, uncovered, it->second - now);
    }
  }
  return Allowed(charges, remaining.data());
}

absl::StatusOr<LimitDecision> RateLimiter::Acquire(const std::vector<BucketCharge>& charges,
                                                   absl::Time now) {
  if (absl::Status s = CheckCharges(charges); !s.ok()) return s;
  const size_t n = charges.size();

  // What each distinct bucket needs in all: first[i] is the first charge naming charges[i]'s
  // bucket, and need[first[i]] the units of all charges naming it.
  absl::InlinedVector<size_t, kInlineCharges> first(n);
  absl::InlinedVector<int64_t, kInlineCharges> need(n, 0);
  for (size_t i = 0; i < n; ++i) {
    first[i] = i;
    for (size_t j = 0; j < i; ++j) {
      if (charges[j].key == charges[i].key) {
        first[i] = j;
        break;
      }
    }
    need[first[i]] += charges[i].units;
  }
  for (size_t i = 0; i < n; ++i) {
    if (NeverAdmitted(charges[i].per_minute, need[first[i]])) {
      absl::MutexLock lock(&mu_);
      return DenyLocked(charges, i, absl::InfiniteDuration());
    }
  }

  absl::InlinedVector<int64_t, kInlineCharges> remaining(n);
  std::vector<Adjustment> returns;
  // The shortfall of each bucket the leases do not cover, taken from the store with the
  // lease-ahead on top.
  std::vector<BucketCharge> shortfalls;
  {
    absl::ReleasableMutexLock lock(&mu_);
    for (const BucketCharge& c : charges) DetachExpiredLocked(c.key, now, returns);
    if (SpendLocked(charges, now, remaining.data()) == n) {
      lock.Release();
      Send(std::move(returns)).IgnoreError();  // Kept in unsent_ on failure.
      return Allowed(charges, remaining.data());
    }
    for (size_t i = 0; i < n; ++i) {
      if (first[i] != i) continue;
      auto it = leases_.find(charges[i].key);
      const int64_t leased = it == leases_.end() ? 0 : it->second.units;
      if (leased < need[i]) {
        shortfalls.push_back({charges[i].key, charges[i].per_minute, need[i] - leased});
      }
    }
  }
  if (!returns.empty()) Send(std::move(returns)).IgnoreError();  // Kept in unsent_ on failure.

  std::vector<BucketStore::Take> takes;
  takes.reserve(shortfalls.size());
  for (const BucketCharge& s : shortfalls) {
    const int64_t ahead = std::clamp<int64_t>(
        static_cast<int64_t>(options_.lease_fraction * static_cast<double>(s.per_minute)), 1,
        s.per_minute);
    takes.push_back({&s, std::min(s.per_minute, s.units + ahead)});
  }
  absl::StatusOr<std::vector<BucketStore::Taken>> taken = store_->TakeAll(takes, now);
  if (!taken.ok()) return taken.status();
  if (taken->size() != takes.size()) {
    return absl::InternalError(
        absl::StrCat("the bucket store answered ", taken->size(), " takes of ", takes.size()));
  }
  bool granted = true;
  for (size_t k = 0; k < takes.size(); ++k) {
    if ((*taken)[k].granted < shortfalls[k].units) granted = false;
  }

  absl::ReleasableMutexLock lock(&mu_);
  if (!granted) {
    // The bucket that refills last decides when a retry can succeed.
    size_t limiting_take = 0;
    absl::Duration retry_after = absl::ZeroDuration();
    for (size_t k = 0; k < takes.size(); ++k) {
      auto it = leases_.find(shortfalls[k].key);
      if (it != leases_.end()) it->second.shared_level = (*taken)[k].level;
      const absl::Duration wait =
          RefillTime((*taken)[k].level, shortfalls[k].units, shortfalls[k].per_minute);
      if (wait > retry_after) {
        retry_after = wait;
        limiting_take = k;
      }
    }
    size_t limiting = 0;
    while (charges[limiting].key != shortfalls[limiting_take].key) ++limiting;
    short_until_[shortfalls[limiting_take].key] =
        now + std::min(retry_after, options_.lease_lifetime);
    LimitDecision decision = DenyLocked(charges, limiting, retry_after);
    for (size_t i = 0; i < n; ++i) {
      for (size_t k = 0; k < takes.size(); ++k) {
        if (shortfalls[k].key != charges[i].key) continue;
        auto it = leases_.find(charges[i].key);
        decision.remaining[i].remaining = ClampRemaining(
            (*taken)[k].level, it == leases_.end() ? 0 : it->second.units, charges[i].per_minute);
      }
    }
    return decision;
  }

  std::vector<Adjustment> stale;
  for (size_t k = 0; k < takes.size(); ++k) {
    short_until_.erase(shortfalls[k].key);
    auto [it, inserted] = leases_.try_emplace(shortfalls[k].key);
    Lease& lease = it->second;
    if (!inserted && lease.expires_at <= now) {
      // Renewed by another thread at an earlier time and expired since.
      if (lease.units > 0) stale.push_back({it->first, lease.per_minute, lease.units, now});
      lease = Lease{};
      inserted = true;
    }
    lease.units += (*taken)[k].granted;
    lease.per_minute = shortfalls[k].per_minute;
    lease.shared_level = (*taken)[k].level;
    lease.expires_at = inserted ? now + options_.lease_lifetime
                                : std::max(lease.expires_at, now + options_.lease_lifetime);
    lease.last_used = std::max(lease.last_used, now);
  }
  const size_t uncovered = SpendLocked(charges, now, remaining.data());
  if (uncovered != n) {
    // Other threads spent (or, at a later time, returned) what the leases held while the store
    // was asked, and the store had less than this request's units: the new units stay leased,
    // this request waits.
    const BucketCharge& c = charges[uncovered];
    auto it = leases_.find(c.key);
    const double level = it == leases_.end() ? 0 : it->second.shared_level;
    const int64_t leased = it == leases_.end() ? 0 : it->second.units;
    LimitDecision decision = DenyLocked(
        charges, uncovered, RefillTime(level, need[first[uncovered]] - leased, c.per_minute));
    lock.Release();
    if (!stale.empty()) Send(std::move(stale)).IgnoreError();
    return decision;
  }
  lock.Release();
  if (!stale.empty()) Send(std::move(stale)).IgnoreError();
  return Allowed(charges, remaining.data());
}

absl::StatusOr<BucketStore::ReportOutcome> RateLimiter::Reconcile(
    const std::string& report_id, const std::string& fingerprint,
    const std::vector<BucketCharge>& deltas, absl::Time now) {
  for (const BucketCharge& d : deltas) {
    RETURN_IF_ERROR(ValidateAdjustment(d.key, d.per_minute, d.units));
  }
  // The store applies the report once, whichever replica a retry reaches, so nothing is
  // spent from this replica's leases here; only its view of the shared levels follows.
  std::vector<BucketCharge> store_deltas;
  store_deltas.reserve(deltas.size());
  for (const BucketCharge& d : deltas) {
    if (d.units != 0) store_deltas.push_back({d.key, d.per_minute, -d.units});
  }
  ASSIGN_OR_RETURN(BucketStore::ReportOutcome outcome,
                   store_->AdjustOnce(report_id, fingerprint, store_deltas, now));
  if (outcome == BucketStore::ReportOutcome::kApplied) {
    absl::MutexLock lock(&mu_);
    for (const BucketCharge& d : store_deltas) {
      // Units given back: the store no longer finds the bucket short on this replica's word.
      if (d.units > 0) short_until_.erase(d.key);
      auto it = leases_.find(d.key);
      if (it == leases_.end()) continue;
      const double limit = static_cast<double>(d.per_minute);
      it->second.shared_level =
          std::clamp(it->second.shared_level + static_cast<double>(d.units), -limit, limit);
    }
  }
  return outcome;
}

absl::Status RateLimiter::ReturnLeases(absl::Time now) {
  std::vector<Adjustment> returns;
  {
    absl::MutexLock lock(&mu_);
    returns = std::move(unsent_);
    unsent_.clear();
    for (auto it = leases_.begin(); it != leases_.end();) {
      const Lease& lease = it->second;
      if (now != absl::InfiniteFuture() && lease.expires_at > now) {
        ++it;
        continue;
      }
      if (lease.units > 0) {
        // At shutdown (`now` infinite) the units go back as of the lease's last use, which
        // refills nothing the bucket has not earned.
        returns.push_back({it->first, lease.per_minute, lease.units,
                           now == absl::InfiniteFuture() ? lease.last_used : now});
      }
      leases_.erase(it++);
    }
  }
  return Send(std::move(returns));
}

}  // namespace policy::authz
