#ifndef POLICY_SERVICES_AUTHZ_MEMORY_BUCKET_STORE_H_
#define POLICY_SERVICES_AUTHZ_MEMORY_BUCKET_STORE_H_

#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/authz/rate_limiter.h"

namespace policy::authz {

// The buckets of one process, in memory: for tests and a single replica (--store=memory).
// Times count in whole microseconds and levels in doubles, with the same arithmetic as
// PostgresBucketStore, so both give the same levels. A bucket whose per_minute changed has its
// level clamped to [-per_minute, per_minute] on its next use.
// Thread-safe.
class MemoryBucketStore : public BucketStore {
 public:
  absl::StatusOr<std::vector<Taken>> TakeAll(const std::vector<Take>& takes,
                                             absl::Time now) override;
  absl::Status Adjust(const std::string& key, int64_t per_minute, int64_t delta,
                      absl::Time now) override;
  absl::StatusOr<ReportOutcome> AdjustOnce(const std::string& report_id,
                                           const std::string& fingerprint,
                                           const std::vector<BucketCharge>& deltas,
                                           absl::Time now) override;

 private:
  struct Bucket {
    double level = 0;
    int64_t updated_at_us = 0;  // Microseconds since the epoch.
    int64_t per_minute = 0;
  };
  // The bucket `key`, created full at `now_us` when unknown, refilled to `now_us`.
  Bucket& Refill(const std::string& key, int64_t per_minute, int64_t now_us)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AdjustLocked(const std::string& key, int64_t per_minute, int64_t delta, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  struct Report {
    std::string fingerprint;
    absl::Time at;
  };

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Bucket> buckets_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Report> reports_ ABSL_GUARDED_BY(mu_);
  // Report ids in the order they were recorded, for forgetting them after kReportRetention.
  std::deque<std::pair<absl::Time, std::string>> report_order_ ABSL_GUARDED_BY(mu_);
};

}  // namespace policy::authz

#endif  // POLICY_SERVICES_AUTHZ_MEMORY_BUCKET_STORE_H_
