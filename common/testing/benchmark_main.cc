// The main() of every Google Benchmark binary in the suite (policy_benchmark_main).
#include "absl/synchronization/mutex.h"
#include "benchmark/benchmark.h"

int main(int argc, char** argv) {
  // As in the servers (server::PrepareServerProcess): Debian's Abseil leaves mutex deadlock
  // detection on, which puts a global lock behind every mutex operation.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
