#ifndef POLICY_SERVICES_AUTHZ_RATE_LIMITER_H_
#define POLICY_SERVICES_AUTHZ_RATE_LIMITER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

// Requests-per-minute and tokens-per-minute limits that hold across replicas sharing one
// bucket store (PostgreSQL), without a database round trip on most decisions.
//
// Each limit is a token bucket holding at most `per_minute` units and refilled at
// per_minute / 60 units per second. The shared state lives in a BucketStore. A replica never
// admits a unit it has not taken from the shared bucket: it takes a lease (a few units ahead
// of need) and spends it locally; unused units go back when the lease expires.
//
// Bounds, for any replicas sharing one store whose clocks agree (each refills up to the `now`
// it is given: a clock S ahead admits up to per_minute * S / 1 min more):
//  - overshoot: across all replicas, units admitted in any interval of length T are at most
//    per_minute + per_minute * T / 1 min, exactly as one bucket; estimates that undershoot the
//    actual tokens are charged afterwards (Reconcile) as debt that delays later requests. A
//    lease return of unknown outcome is never sent again (under-use, not overshoot).
//  - undershoot: at most one lease per bucket per replica is held idle, for at most the lease
//    lifetime.
namespace policy::authz {

// The largest limit and the largest charge (per_minute, units, and the size of a delta) the
// limiter and the bucket stores take; larger ones are INVALID_ARGUMENT. Sums of a few such
// values fit in int64_t, and every level is a whole number well below 2^53, exact in a
// double.
inline constexpr int64_t kMaxPerMinute = 10'000'000'000;

// One bucket and what a request costs in it.
struct BucketCharge {
  std::string key;     // Identifies the bucket, e.g. "project/p1/rpm", "member/alice/p1/tpm".
  int64_t per_minute;  // The limit, 0 to kMaxPerMinute; 0 admits nothing.
  int64_t units;       // This request's cost: 1 for requests, the estimated tokens for tokens.
};

struct BucketRemaining {
  std::string key;
  int64_t per_minute = 0;
  int64_t remaining = 0;  // Units left, as far as this replica knows, after this request.
};

struct LimitDecision {
  bool allowed = false;
  std::string limiting_key;  // The bucket that denied; empty when allowed.
  // When a retry can succeed (the denying bucket refilled enough); absl::InfiniteDuration()
  // when the request costs more than the bucket ever holds.
  absl::Duration retry_after = absl::ZeroDuration();
  std::vector<BucketRemaining> remaining;  // One per charge, in order.
};

// The buckets' shared state. Implementations are thread-safe; each call is atomic.
class BucketStore {
 public:
  virtual ~BucketStore() = default;

  struct Take {
    const BucketCharge* charge;
    int64_t want;  // At least charge->units: the units plus what to lease ahead.
  };
  struct Taken {
    // 0 when the bucket holds fewer than charge->units; otherwise between units and want.
    int64_t granted = 0;
    // The bucket's level after this take (may be negative while in debt).
    double level = 0;
  };

  // Refills each bucket to `now` (per_minute / 60 per second, capped at per_minute; a clock
  // behind the bucket's last update refills nothing; PostgresBucketStore may use the
  // database's clock instead of `now`), then, all or nothing: when every bucket
  // holds its charge's units, takes min(want, level) from each; otherwise takes nothing.
  // One round trip for all buckets. Unknown buckets start full.
  virtual absl::StatusOr<std::vector<Taken>> TakeAll(const std::vector<Take>& takes,
                                                     absl::Time now) = 0;

  // Adds `delta` units to bucket `key` (refilled to `now` first): positive returns unused
  // lease units or refunds an overestimate (capped at per_minute), negative charges an
  // underestimate (the level may go below zero, down to -per_minute).
  virtual absl::Status Adjust(const std::string& key, int64_t per_minute, int64_t delta,
                              absl::Time now) = 0;

  // What AdjustOnce did with a report.
  enum class ReportOutcome {
    kApplied,    // First seen: the adjustments were made.
    kDuplicate,  // Seen before with the same fingerprint: nothing was done again.
    kConflict,   // Seen before with another fingerprint: nothing was done.
  };
  // Records report `report_id` (with `fingerprint`, a digest of what it reports) and, in the
  // same atomic step, makes every adjustment of `deltas` as Adjust would (`units` added to
  // bucket `key`), or, when the id was recorded before, makes none. Ids recorded more than
  // kReportRetention before `now` may be forgotten.
  virtual absl::StatusOr<ReportOutcome> AdjustOnce(const std::string& report_id,
                                                   const std::string& fingerprint,
                                                   const std::vector<BucketCharge>& deltas,
                                                   absl::Time now) = 0;
};

// What every BucketStore accepts, INVALID_ARGUMENT otherwise: a take with a charge,
// 0 <= per_minute <= kMaxPerMinute and 0 <= units <= want <= kMaxPerMinute.
absl::Status ValidateTake(const BucketStore::Take& take);
// An adjustment with 0 <= per_minute <= kMaxPerMinute and -kMaxPerMinute <= delta <=
// kMaxPerMinute.
absl::Status ValidateAdjustment(absl::string_view key, int64_t per_minute, int64_t delta);

// How long a bucket store remembers a usage report's id: a retry within this time is never
// applied twice.
inline constexpr absl::Duration kReportRetention = absl::Hours(24);

struct RateLimiterOptions {
  // Units leased ahead of need, as a fraction of per_minute (at least 1 unit when > 0).
  double lease_fraction = 0.05;
  // How long a replica keeps a lease before returning its unused units.
  absl::Duration lease_lifetime = absl::Seconds(1);
};

// Thread-safe.
class RateLimiter {
 public:
  RateLimiter(BucketStore* store, RateLimiterOptions options = {});
  ~RateLimiter();  // Does not return leases; call ReturnLeases first for a clean stop.

  // Decides from this replica's leases alone; nullopt when some bucket's lease cannot cover
  // its charge and the store must be asked (call Acquire). Never blocks on the store. A
  // bucket the store found short within the last min(retry_after, lease_lifetime) is denied
  // here without asking again.
  std::optional<LimitDecision> TryAcquireLocal(const std::vector<BucketCharge>& charges,
                                               absl::Time now);

  // Decides, taking leases from the store where this replica's do not cover. All or
  // nothing: a denied request consumes nothing. UNAVAILABLE when the store cannot be reached
  // (decisions then fail closed).
  absl::StatusOr<LimitDecision> Acquire(const std::vector<BucketCharge>& charges, absl::Time now);

  // After the call: `deltas[i].units` is actual minus estimated for bucket deltas[i].key;
  // positive charges more (debt), negative refunds (and ends this replica's denial from
  // memory of that bucket). Idempotent on `report_id` (see BucketStore::AdjustOnce);
  // UNAVAILABLE when the store cannot be reached, and then nothing was charged, so the
  // caller may retry with the same id.
  absl::StatusOr<BucketStore::ReportOutcome> Reconcile(const std::string& report_id,
                                                       const std::string& fingerprint,
                                                       const std::vector<BucketCharge>& deltas,
                                                       absl::Time now);

  // Returns the unused units of leases older than their lifetime at `now` (all leases with
  // absl::InfiniteFuture()). Called periodically and at shutdown.
  absl::Status ReturnLeases(absl::Time now);

 private:
  // Units this replica took from bucket `key` (the map's key) and has not spent.
  struct Lease {
    int64_t units = 0;
    int64_t per_minute = 0;
    double shared_level = 0;  // The bucket's level after this replica's latest take or debt.
    absl::Time expires_at;    // Not spent from at or after this time.
    absl::Time last_used;     // The latest time it was taken into or spent from.
  };
  // Units to add to a bucket in the store (BucketStore::Adjust).
  struct Adjustment {
    std::string key;
    int64_t per_minute;
    int64_t delta;
    absl::Time at;
  };

  // Spends every charge from its unexpired lease, all or nothing. Returns charges.size() and
  // sets remaining[i] for each charge when all are covered; otherwise the index of the first
  // charge not covered, having spent nothing.
  size_t SpendLocked(const std::vector<BucketCharge>& charges, absl::Time now, int64_t* remaining)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Units left in `charge`'s bucket as far as this replica knows.
  int64_t KnownRemainingLocked(const BucketCharge& charge) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes `key`'s lease when it has expired at `now`, adding its unspent units to `returns`.
  void DetachExpiredLocked(const std::string& key, absl::Time now, std::vector<Adjustment>& returns)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A denial by charge `limiting`, spending nothing.
  LimitDecision DenyLocked(const std::vector<BucketCharge>& charges, size_t limiting,
                           absl::Duration retry_after) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sends `adjustments` to the store; keeps the ones it fails to take in unsent_ (except those
  // of unknown outcome, which are dropped) and returns the first error.
  absl::Status Send(std::vector<Adjustment> adjustments) ABSL_LOCKS_EXCLUDED(mu_);

  BucketStore* const store_;
  const RateLimiterOptions options_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Lease> leases_ ABSL_GUARDED_BY(mu_);
  // Buckets the store last found short, and until when this replica denies from memory a
  // charge its lease cannot cover (at most a lease lifetime): a caller over its limit does
  // not cost a database round trip per request.
  absl::flat_hash_map<std::string, absl::Time> short_until_ ABSL_GUARDED_BY(mu_);
  std::vector<Adjustment> unsent_ ABSL_GUARDED_BY(mu_);
};

}  // namespace policy::authz

#endif  // POLICY_SERVICES_AUTHZ_RATE_LIMITER_H_
