// Proof verification on untrusted input: never crashes or loops; real proofs of a tree built
// from the input verify and one changed byte makes them fail.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "services/audit/merkle.h"

namespace {

using policy::audit::Hash;

uint64_t Take64(const uint8_t*& data, size_t& size) {
  uint64_t v = 0;
  const size_t n = size < 8 ? size : 8;
  std::memcpy(&v, data, n);
  data += n;
  size -= n;
  return v;
}

Hash TakeHash(const uint8_t*& data, size_t& size) {
  Hash h{};
  const size_t n = size < 32 ? size : 32;
  std::memcpy(h.data(), data, n);
  data += n;
  size -= n;
  return h;
}

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace policy::audit;
  const uint8_t* const start = data;
  const size_t total = size;
  // Arbitrary proofs.
  const uint64_t a = Take64(data, size), b = Take64(data, size);
  const Hash r1 = TakeHash(data, size), r2 = TakeHash(data, size);
  std::vector<Hash> proof;
  while (size > 0 && proof.size() < 70) proof.push_back(TakeHash(data, size));
  (void)VerifyInclusion(r1, a, b, proof, r2);
  (void)VerifyInclusion(r1, a % 300, b % 300, proof, r2);
  (void)VerifyConsistency(a, b, r1, r2, proof);
  (void)VerifyConsistency(a % 300, b % 300, r1, r2, proof);

  // Real proofs over a tree of the input's bytes.
  const size_t n = 1 + total % 40;
  std::vector<Hash> leaves;
  for (size_t i = 0; i < n; ++i) {
    leaves.push_back(
        LeafHash(absl::string_view(reinterpret_cast<const char*>(start), total > i ? i : total)));
  }
  const Hash root = RootOf(leaves);
  const uint64_t index = a % n, old_size = 1 + b % n;
  std::vector<Hash> inclusion = InclusionProofOf(leaves, index);
  Check(VerifyInclusion(leaves[index], index, n, inclusion, root));
  std::vector<Hash> consistency = ConsistencyProofOf(leaves, old_size);
  const Hash old_root = RootOf(absl::MakeConstSpan(leaves).first(old_size));
  Check(VerifyConsistency(old_size, n, old_root, root, consistency));
  if (!inclusion.empty()) {
    inclusion[a % inclusion.size()][b % 32] ^= 1;
    Check(!VerifyInclusion(leaves[index], index, n, inclusion, root));
  }
  if (!consistency.empty()) {
    consistency[a % consistency.size()][b % 32] ^= 1;
    Check(!VerifyConsistency(old_size, n, old_root, root, consistency));
  }
  return 0;
}
