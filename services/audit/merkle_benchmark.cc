// Merkle hashing and whole-ledger root rebuilding (the verifier's inner loop).
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "services/audit/merkle.h"

namespace policy::audit {
namespace {

void BM_LeafHash200(benchmark::State& state) {
  const std::string leaf(200, 'x');
  for (auto _ : state) benchmark::DoNotOptimize(LeafHash(leaf));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_LeafHash200);

void BM_NodeHash(benchmark::State& state) {
  Hash a{}, b{};
  for (auto _ : state) {
    a = NodeHash(a, b);
    benchmark::DoNotOptimize(a);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_NodeHash);

// Leaf hash of 200 bytes and append with the completed subtrees, per entry: what verifying
// a stored ledger costs per entry besides decoding it.
void BM_RebuildRoot(benchmark::State& state) {
  std::string leaf(200, 'y');
  std::vector<Hash> completed;
  for (auto _ : state) {
    CompactTree tree;
    for (int64_t i = 0; i < state.range(0); ++i) {
      leaf[i % 200] = static_cast<char>(i);
      tree.Append(LeafHash(leaf), &completed);
    }
    benchmark::DoNotOptimize(tree.Root());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_RebuildRoot)->Arg(1'000'000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace policy::audit
