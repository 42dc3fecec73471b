// In-process verification on a warm cache: the cost of VerifyKey without the transport.
// Prints mean time per verification and, as counters, the p50/p99/p999 of individual calls.
//   build/services/keys/keys_verify_benchmark
#include <algorithm>
#include <chrono>
#include <vector>

#include "benchmark/benchmark.h"
#include "common/clock/clock.h"
#include "services/keys/api_key.h"
#include "services/keys/keys_test_util.h"

namespace policy::keys {
namespace {

InMemoryKeys& Shared() {
  static InMemoryKeys* const kKeys = new InMemoryKeys(Clock::Real(), 10'000);
  return *kKeys;
}

void ReportPercentiles(benchmark::State& state, std::vector<int64_t>& samples) {
  if (samples.empty()) return;
  std::sort(samples.begin(), samples.end());
  auto at = [&](double q) {
    return static_cast<double>(
        samples[std::min(samples.size() - 1, static_cast<size_t>(q * samples.size()))]);
  };
  // Per-thread percentiles, averaged over the threads (counters are summed by default).
  state.counters["p50_ns"] = benchmark::Counter(at(0.50), benchmark::Counter::kAvgThreads);
  state.counters["p99_ns"] = benchmark::Counter(at(0.99), benchmark::Counter::kAvgThreads);
  state.counters["p999_ns"] = benchmark::Counter(at(0.999), benchmark::Counter::kAvgThreads);
}

// state.range(0): how many distinct keys the loop cycles through (1: one hot key; 10000:
// a large registry where most lookups miss the CPU caches).
void BM_VerifyWarmCache(benchmark::State& state) {
  InMemoryKeys& f = Shared();
  const size_t distinct = std::min<size_t>(f.secrets.size(), state.range(0));
  std::vector<int64_t> samples;
  samples.reserve(1 << 20);
  size_t i = static_cast<size_t>(state.thread_index()) * 7919;
  for (auto _ : state) {
    const std::string& secret = f.secrets[i++ % distinct];
    auto start = std::chrono::steady_clock::now();
    absl::StatusOr<VerifiedKey> verified = f.verifier.Verify(secret);
    auto end = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(verified);
    if (samples.size() < samples.capacity()) {
      samples.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(end - start).count());
    }
    if (!verified.ok()) state.SkipWithError("verification failed");
  }
  ReportPercentiles(state, samples);
}
BENCHMARK(BM_VerifyWarmCache)->Arg(1)->Arg(100)->Arg(10'000)->Threads(1)->Threads(2)->UseRealTime();

void BM_VerifyUnknownKey(benchmark::State& state) {
  InMemoryKeys& f = Shared();
  std::string unknown = GenerateSecret(KeyKind::kProject)->secret;
  for (auto _ : state) benchmark::DoNotOptimize(f.verifier.Verify(unknown));
}
BENCHMARK(BM_VerifyUnknownKey);

void BM_RejectMalformed(benchmark::State& state) {
  InMemoryKeys& f = Shared();
  std::string typo = f.secrets[0];
  typo[20] = typo[20] == 'a' ? 'b' : 'a';
  for (auto _ : state) benchmark::DoNotOptimize(f.verifier.Verify(typo));
}
BENCHMARK(BM_RejectMalformed);

}  // namespace
}  // namespace policy::keys
