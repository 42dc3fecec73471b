#ifndef POLICY_SERVICES_AUTHZ_POSTGRES_BUCKET_STORE_H_
#define POLICY_SERVICES_AUTHZ_POSTGRES_BUCKET_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/pg/pool.h"
#include "common/pg/privileges.h"
#include "services/authz/rate_limiter.h"

namespace policy::authz {

// The buckets in PostgreSQL, shared by every replica: table authz.rate_buckets, and the
// functions authz.take_buckets and authz.adjust_bucket (migrations/002_rate_limits.sql), which
// lock the rows they touch in key order, so concurrent replicas serialise per bucket and never
// deadlock. Each call is one transaction. Times count in whole microseconds.
// UNAVAILABLE when the database cannot be reached (nothing was taken).
// Thread-safe.
class PostgresBucketStore : public BucketStore {
 public:
  // Whose clock refills the buckets and stamps them.
  enum class RefillClock {
    // The database's (migration 007), for every replica alike: the `now` of TakeAll, Adjust
    // and AdjustOnce's adjustments is not used, so a replica whose clock is off can neither
    // freeze the buckets for the others (by stamping them in the future) nor refill them
    // early; a bucket stamped in the future (by an older release) counts as stamped now.
    kDatabase,
    // The callers' `now` (tests with injected time).
    kCaller,
  };
  PostgresBucketStore(pg::Pool* pool, RefillClock clock);

  // What the store's statements need of schema `authz`, which migration 008 grants
  // policy_authz_runtime with PostgresOrgStore's. The functions run as their caller: their
  // statements on authz.rate_buckets need the caller's privileges too.
  static std::vector<pg::Privilege> Privileges();

  absl::StatusOr<std::vector<Taken>> TakeAll(const std::vector<Take>& takes,
                                             absl::Time now) override;
  absl::Status Adjust(const std::string& key, int64_t per_minute, int64_t delta,
                      absl::Time now) override;
  // One transaction: forgets up to 100 expired report ids, records the id (a concurrent
  // report with the same id waits for this one and then finds it), adjusts the buckets in key
  // order (as take_buckets locks them, so the two never deadlock).
  absl::StatusOr<ReportOutcome> AdjustOnce(const std::string& report_id,
                                           const std::string& fingerprint,
                                           const std::vector<BucketCharge>& deltas,
                                           absl::Time now) override;

 private:
  pg::Pool* const pool_;
  const RefillClock clock_;
};

}  // namespace policy::authz

#endif  // POLICY_SERVICES_AUTHZ_POSTGRES_BUCKET_STORE_H_
