#include "services/edge/denial_budget.h"

#include <algorithm>
#include <cmath>

#include "absl/hash/hash.h"

namespace policy::edge {

DenialBudget::DenialBudget(DenialBudgetOptions options, const Clock* clock)
    : options_(options),
      clock_(clock),
      max_per_shard_(std::max<size_t>(1, (options.max_keys + kShards - 1) / kShards)) {}

DenialBudget::Shard& DenialBudget::ShardOf(absl::string_view key_id) const {
  return shards_[absl::HashOf(key_id) % kShards];
}

double DenialBudget::LevelAt(const Bucket& bucket, absl::Time now) const {
  // A clock that went back refills nothing.
  const double elapsed = std::max(0.0, absl::ToDoubleSeconds(now - bucket.updated));
  const double refilled = bucket.level + elapsed * static_cast<double>(options_.per_minute) / 60;
  return std::min(static_cast<double>(options_.burst), refilled);
}

absl::Duration DenialBudget::RetryAfter(absl::string_view key_id) const {
  if (!enabled()) return absl::ZeroDuration();
  const absl::Time now = clock_->Now();
  Shard& shard = ShardOf(key_id);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.buckets.find(key_id);
  if (it == shard.buckets.end()) return absl::ZeroDuration();  // Unknown: full.
  const double level = LevelAt(it->second, now);
  if (level >= 1) return absl::ZeroDuration();
  // Whole milliseconds, rounded up (past a rounding error): the bucket holds a unit once
  // they have passed.
  const double ms = (1 - level) * 60'000 / static_cast<double>(options_.per_minute);
  return absl::Milliseconds(std::ceil(ms - 1e-6));
}

void DenialBudget::Denied(absl::string_view key_id) {
  if (!enabled()) return;
  const absl::Time now = clock_->Now();
  Shard& shard = ShardOf(key_id);
  absl::MutexLock lock(&shard.mu);
  auto it = shard.buckets.find(key_id);
  if (it == shard.buckets.end()) {
    if (shard.buckets.size() >= max_per_shard_) MakeRoomLocked(shard, now);
    it = shard.buckets
             .emplace(std::string(key_id),
                      Bucket{.level = static_cast<double>(options_.burst), .updated = now})
             .first;
  }
  Bucket& bucket = it->second;
  bucket.level = std::max(-static_cast<double>(options_.burst), LevelAt(bucket, now) - 1);
  bucket.updated = std::max(bucket.updated, now);
}

void DenialBudget::MakeRoomLocked(Shard& shard, absl::Time now) const {
  const size_t before = shard.buckets.size();
  absl::erase_if(shard.buckets, [&](const auto& entry) {
    return LevelAt(entry.second, now) >= static_cast<double>(options_.burst);
  });
  if (shard.buckets.size() < before) return;
  auto idlest = std::min_element(
      shard.buckets.begin(), shard.buckets.end(),
      [](const auto& a, const auto& b) { return a.second.updated < b.second.updated; });
  if (idlest != shard.buckets.end()) shard.buckets.erase(idlest);
}

size_t DenialBudget::size() const {
  size_t n = 0;
  for (Shard& shard : shards_) {
    absl::MutexLock lock(&shard.mu);
    n += shard.buckets.size();
  }
  return n;
}

}  // namespace policy::edge
