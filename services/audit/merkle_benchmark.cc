// Merkle hashing, appends, whole-ledger root rebuilding (a verifier's inner loop: the goal is
// at least a million entries per second) and proof verification. Prints figures; asserts
// nothing about time.
//
//   <build dir>/services/audit/audit_merkle_benchmark --benchmark_min_time=0.5
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "benchmark/benchmark.h"
#include "services/audit/merkle.h"

namespace policy::audit {
namespace {

// SHA-256(0x00 || 200 bytes): four SHA-256 blocks.
void BM_LeafHash(benchmark::State& state) {
  std::string leaf(static_cast<size_t>(state.range(0)), 'x');
  for (auto _ : state) {
    Hash h = LeafHash(leaf);
    leaf[0] = h[0];  // A dependency between iterations, as in a real loop.
    benchmark::DoNotOptimize(h);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_LeafHash)->Arg(200);

// SHA-256(0x01 || left || right): 65 bytes, two SHA-256 blocks.
void BM_NodeHash(benchmark::State& state) {
  Hash left = LeafHash("left");
  const Hash right = LeafHash("right");
  for (auto _ : state) {
    left = NodeHash(left, right);
    benchmark::DoNotOptimize(left);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_NodeHash);

// One append with the completed subtrees collected for storage: one NodeHash per leaf on
// average, no allocation once the vectors have grown.
void BM_CompactTreeAppend(benchmark::State& state) {
  CompactTree tree;
  std::vector<Hash> completed;
  Hash leaf = LeafHash("leaf");
  for (auto _ : state) {
    tree.Append(leaf, &completed);
    leaf[0] = static_cast<char>(tree.size());
    benchmark::DoNotOptimize(completed.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CompactTreeAppend);

// The root of state.range(0) entries of 200 bytes from scratch: leaf hash, append with the
// completed subtrees, and the root at the end. Items are entries.
void BM_RebuildRoot(benchmark::State& state) {
  const int64_t entries = state.range(0);
  std::string leaf(200, 'y');
  std::vector<Hash> completed;
  for (auto _ : state) {
    CompactTree tree;
    for (int64_t i = 0; i < entries; ++i) {
      leaf[static_cast<size_t>(i % 200)] = static_cast<char>(i);
      tree.Append(LeafHash(leaf), &completed);
    }
    benchmark::DoNotOptimize(tree.Root());
  }
  state.SetItemsProcessed(state.iterations() * entries);
}
BENCHMARK(BM_RebuildRoot)->Arg(1'000'000)->Unit(benchmark::kMillisecond);

// Inclusion proofs of a 2^16-entry tree (16 hashes each), as a client verifies them.
void BM_VerifyInclusion(benchmark::State& state) {
  constexpr uint64_t kSize = uint64_t{1} << 16;
  absl::flat_hash_map<NodeId, Hash> nodes;
  CompactTree tree;
  std::vector<Hash> leaves;
  std::vector<Hash> completed;
  for (uint64_t i = 0; i < kSize; ++i) {
    leaves.push_back(LeafHash(std::to_string(i)));
    nodes[NodeId{0, i}] = leaves.back();
    tree.Append(leaves.back(), &completed);
    for (size_t k = 0; k < completed.size(); ++k) {
      const int level = static_cast<int>(k) + 1;
      nodes[NodeId{level, i >> level}] = completed[k];
    }
  }
  const Hash root = tree.Root();
  std::vector<uint64_t> indexes;
  std::vector<std::vector<Hash>> proofs;
  for (uint64_t index = 0; index < kSize; index += 997) {
    indexes.push_back(index);
    proofs.push_back(AssembleProof(PlanInclusionProof(index, kSize).value(), nodes).value());
  }
  size_t next = 0;
  for (auto _ : state) {
    if (!VerifyInclusion(leaves[indexes[next]], indexes[next], kSize, proofs[next], root)) {
      state.SkipWithError("a valid proof did not verify");
      break;
    }
    next = next + 1 == proofs.size() ? 0 : next + 1;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_VerifyInclusion);

}  // namespace
}  // namespace policy::audit
