// RateLimiter::TryAcquireLocal on warm leases: four charges (project and member, requests and
// tokens) whose buckets are large enough that every decision stays local. Prints the time per
// decision, single- and multi-threaded; never fails on a figure.
//   build/services/authz/authz_rate_limiter_benchmark
#include <vector>

#include "benchmark/benchmark.h"
#include "services/authz/memory_bucket_store.h"
#include "services/authz/rate_limiter.h"

namespace policy::authz {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

const std::vector<BucketCharge>& Charges() {
  static const auto* const charges = new std::vector<BucketCharge>{
      {"project/proj-42/rpm", int64_t{1} << 50, 1},
      {"project/proj-42/tpm", int64_t{1} << 50, 800},
      {"member/user-1234@company.com/proj-42/rpm", int64_t{1} << 50, 1},
      {"member/user-1234@company.com/proj-42/tpm", int64_t{1} << 50, 800},
  };
  return *charges;
}

// One limiter for every thread of a run: leases of 5% of 2^50 units never run out.
RateLimiter& WarmLimiter() {
  static MemoryBucketStore* const store = new MemoryBucketStore();
  static RateLimiter* const limiter = [] {
    auto* limiter = new RateLimiter(
        store, RateLimiterOptions{.lease_fraction = 0.05, .lease_lifetime = absl::Hours(1)});
    (void)limiter->Acquire(Charges(), kNow);
    return limiter;
  }();
  return *limiter;
}

void BM_TryAcquireLocal4Charges(benchmark::State& state) {
  RateLimiter& limiter = WarmLimiter();
  const std::vector<BucketCharge>& charges = Charges();
  int64_t missed = 0;
  for (auto _ : state) {
    std::optional<LimitDecision> d = limiter.TryAcquireLocal(charges, kNow);
    if (!d.has_value() || !d->allowed) ++missed;
    benchmark::DoNotOptimize(d);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["not_local"] = static_cast<double>(missed);
}
BENCHMARK(BM_TryAcquireLocal4Charges)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace policy::authz
