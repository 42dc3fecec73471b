#ifndef POLICY_SERVICES_EDGE_DENIAL_BUDGET_H_
#define POLICY_SERVICES_EDGE_DENIAL_BUDGET_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock/clock.h"

// How many DENY decisions the edge records for one key: a per-key token bucket in this
// replica's memory, checked as a request arrives.
//
// Every decision the edge makes is appended to the ledger, a denial too. Without a bound, one
// valid key in a tight retry loop (a blocked model, a prompt with a secret, a rate limit)
// writes a ledger entry per request at the edge's full throughput. So each DENY recorded for
// a key takes one unit of that key's bucket (refilled at per_minute / 60 per second, holding
// at most `burst`), and while the bucket holds less than one unit the key's requests are
// refused at the door: no decision is made or recorded and no budget is reserved. An ALLOW
// takes nothing. Requests of one key admitted together may all be denied: the bucket then
// goes into debt, at most `burst` units below empty, which the key's later requests wait out.
//
// Not authz's rate limiter (services/authz/rate_limiter.h): that one shares its buckets
// across replicas through PostgreSQL, and the point here is to spare the database. Each
// replica keeps its own buckets: with N replicas a key may have N times the budget recorded.
namespace policy::edge {

// The ErrorInfo reason of a refusal at the door (RESOURCE_EXHAUSTED).
inline constexpr char kTooManyDenials[] = "TOO_MANY_DENIALS";

struct DenialBudgetOptions {
  // Units returned to a key's bucket per minute; 0: no budget, nothing is ever refused.
  int64_t per_minute = 600;
  // The most a bucket holds: the denials a key may have recorded in a row before its
  // requests are refused. At least 1 when per_minute is not 0.
  int64_t burst = 100;
  // The most keys whose buckets are remembered; beyond, those refilled to full are dropped
  // (a full bucket is the same as none), then the ones idle longest.
  size_t max_keys = 100'000;
};

// Thread-safe.
class DenialBudget {
 public:
  // `clock` must outlive the budget.
  DenialBudget(DenialBudgetOptions options, const Clock* clock);

  bool enabled() const { return options_.per_minute > 0; }

  // Zero when a request of key `key_id` may be decided on now; otherwise how long until its
  // bucket holds one unit again. Takes nothing.
  absl::Duration RetryAfter(absl::string_view key_id) const;

  // A DENY decision was recorded for `key_id`: takes one unit from its bucket.
  void Denied(absl::string_view key_id);

  // How many keys' buckets are remembered.
  size_t size() const;

 private:
  struct Bucket {
    double level = 0;    // Units held at `updated`; negative while in debt.
    absl::Time updated;  // When the level was last refilled or taken from.
  };
  static constexpr size_t kShards = 16;
  struct alignas(64) Shard {
    mutable absl::Mutex mu;
    absl::flat_hash_map<std::string, Bucket> buckets ABSL_GUARDED_BY(mu);
  };

  Shard& ShardOf(absl::string_view key_id) const;
  // The bucket's level refilled to `now`.
  double LevelAt(const Bucket& bucket, absl::Time now) const;
  // Makes room for one more bucket in `shard`: drops every bucket refilled to full, else the
  // one idle longest.
  void MakeRoomLocked(Shard& shard, absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(shard.mu);

  const DenialBudgetOptions options_;
  const Clock* const clock_;
  const size_t max_per_shard_;
  mutable std::array<Shard, kShards> shards_;
};

}  // namespace policy::edge

#endif  // POLICY_SERVICES_EDGE_DENIAL_BUDGET_H_
