#include "services/authz/memory_bucket_store.h"

#include <algorithm>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace policy::authz {

MemoryBucketStore::Bucket& MemoryBucketStore::Refill(const std::string& key, int64_t per_minute,
                                                     int64_t now_us) {
  auto [it, inserted] = buckets_.try_emplace(key);
  Bucket& b = it->second;
  const double limit = static_cast<double>(per_minute);
  if (inserted) {
    b.level = limit;
    b.updated_at_us = now_us;
  } else {
    const int64_t elapsed_us = std::max<int64_t>(0, now_us - b.updated_at_us);
    b.level = std::min(
        limit, std::max(-limit, b.level) + limit * static_cast<double>(elapsed_us) / 60000000.0);
    b.updated_at_us = std::max(b.updated_at_us, now_us);
  }
  b.per_minute = per_minute;
  return b;
}

absl::StatusOr<std::vector<BucketStore::Taken>> MemoryBucketStore::TakeAll(
    const std::vector<Take>& takes, absl::Time now) {
  for (const Take& take : takes) {
    if (absl::Status s = ValidateTake(take); !s.ok()) return s;
  }
  const int64_t now_us = absl::ToUnixMicros(now);
  absl::MutexLock lock(&mu_);
  // Refilling changes no bucket's meaning, so it is kept even when the take fails.
  for (const Take& take : takes) Refill(take.charge->key, take.charge->per_minute, now_us);
  // Pointers only once every bucket exists: an insertion may move the others.
  std::vector<Bucket*> buckets;
  buckets.reserve(takes.size());
  for (const Take& take : takes) buckets.push_back(&buckets_.find(take.charge->key)->second);
  // Taken in input order, each bucket from its level after the earlier takes of this call (a
  // key named twice is charged twice); the buckets change only once all hold their units.
  std::vector<Taken> taken(takes.size());
  for (size_t i = 0; i < takes.size(); ++i) {
    double level = buckets[i]->level;
    for (size_t j = 0; j < i; ++j) {
      if (buckets[j] == buckets[i]) level = taken[j].level;
    }
    if (level < static_cast<double>(takes[i].charge->units)) {
      for (size_t k = 0; k < takes.size(); ++k) taken[k] = Taken{0, buckets[k]->level};
      return taken;
    }
    taken[i].granted = std::min(takes[i].want, static_cast<int64_t>(std::floor(level)));
    taken[i].level = level - static_cast<double>(taken[i].granted);
  }
  for (size_t i = 0; i < takes.size(); ++i) buckets[i]->level = taken[i].level;
  return taken;
}

absl::Status MemoryBucketStore::Adjust(const std::string& key, int64_t per_minute, int64_t delta,
                                       absl::Time now) {
  if (absl::Status s = ValidateAdjustment(key, per_minute, delta); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  AdjustLocked(key, per_minute, delta, now);
  return absl::OkStatus();
}

absl::StatusOr<BucketStore::ReportOutcome> MemoryBucketStore::AdjustOnce(
    const std::string& report_id, const std::string& fingerprint,
    const std::vector<BucketCharge>& deltas, absl::Time now) {
  for (const BucketCharge& d : deltas) {
    if (absl::Status s = ValidateAdjustment(d.key, d.per_minute, d.units); !s.ok()) return s;
  }
  absl::MutexLock lock(&mu_);
  while (!report_order_.empty() && report_order_.front().first < now - kReportRetention) {
    auto it = reports_.find(report_order_.front().second);
    if (it != reports_.end() && it->second.at == report_order_.front().first) reports_.erase(it);
    report_order_.pop_front();
  }
  auto [it, inserted] = reports_.try_emplace(report_id, Report{fingerprint, now});
  if (!inserted) {
    return it->second.fingerprint == fingerprint ? ReportOutcome::kDuplicate
                                                 : ReportOutcome::kConflict;
  }
  report_order_.emplace_back(now, report_id);
  for (const BucketCharge& d : deltas) AdjustLocked(d.key, d.per_minute, d.units, now);
  return ReportOutcome::kApplied;
}

void MemoryBucketStore::AdjustLocked(const std::string& key, int64_t per_minute, int64_t delta,
                                     absl::Time now) {
  Bucket& b = Refill(key, per_minute, absl::ToUnixMicros(now));
  const double limit = static_cast<double>(per_minute);
  b.level = std::max(-limit, std::min(limit, b.level + static_cast<double>(delta)));
}

}  // namespace policy::authz
