// Fuzz target for Merkle proof verification, which runs on untrusted input in client-side
// verifiers. From the input bytes:
//  1. Arbitrary sizes, index, roots and proof for VerifyInclusion and VerifyConsistency: they
//     must return, and can accept only sizes the planner accepts with a proof of the planned
//     length (anything else would be a verifier that ignores part of its input).
//  2. A tree of up to 32 distinct leaves made from the input, stored the way the ledger stores
//     it (each perfect subtree with its last leaf, from CompactTree::Append): planned and
//     assembled proofs must equal the RFC's reference proofs and verify, and must fail after
//     one mutation the input chooses.
//  3. Sizes anywhere in 64 bits over a tree of identical leaves, whose hashes are known per
//     level: planned proofs must verify against the compact tree's roots.
// Any violation traps.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "services/audit/merkle.h"

namespace {

using policy::audit::AssembleProof;
using policy::audit::CompactTree;
using policy::audit::ConsistencyProofOf;
using policy::audit::FrontierNodes;
using policy::audit::Hash;
using policy::audit::InclusionProofOf;
using policy::audit::LeafHash;
using policy::audit::NodeHash;
using policy::audit::NodeId;
using policy::audit::NodesOf;
using policy::audit::PlanConsistencyProof;
using policy::audit::PlanInclusionProof;
using policy::audit::ProofPlan;
using policy::audit::RootOf;
using policy::audit::VerifyConsistency;
using policy::audit::VerifyInclusion;

void Require(bool condition) {
  if (!condition) __builtin_trap();
}

// Reads the fuzz input front to back; past its end every read gives zeros.
class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  uint8_t Byte() {
    if (size_ == 0) return 0;
    --size_;
    return *data_++;
  }
  uint64_t Uint64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | Byte();
    return v;
  }
  // A 64-bit size or index of a shape picked by the next byte: small, near a power of two,
  // near 2^64, or raw.
  uint64_t Size() {
    const uint8_t shape = Byte();
    const uint64_t v = Uint64();
    switch (shape % 4) {
      case 0:
        return v % 300;
      case 1:
        return (uint64_t{1} << (v % 64)) + (v >> 58) - 32;
      case 2:
        return ~uint64_t{0} - v % 300;
      default:
        return v;
    }
  }
  Hash TakeHash() {
    Hash h{};
    for (char& c : h) c = static_cast<char>(Byte());
    return h;
  }
  // The bytes not read yet.
  absl::string_view Rest() const {
    return absl::string_view(reinterpret_cast<const char*>(data_), size_);
  }

 private:
  const uint8_t* data_;
  size_t size_;
};

Hash Flipped(Hash h, uint8_t bit) {
  h[bit / 8 % h.size()] ^= static_cast<char>(1 << (bit % 8));
  return h;
}

// 1. Arbitrary input: the verifiers return, and accept only well-formed claims.
void VerifyArbitraryProofs(FuzzInput& in) {
  const uint64_t a = in.Size();
  const uint64_t b = in.Size();
  const Hash first = in.TakeHash();
  const Hash second = in.TakeHash();
  std::vector<Hash> proof(in.Byte() % 80);
  for (Hash& h : proof) h = in.TakeHash();

  const absl::StatusOr<ProofPlan> inclusion = PlanInclusionProof(a, b);
  Require(inclusion.ok() == (a < b));
  if (inclusion.ok()) Require(inclusion->elements.size() <= 64);
  if (VerifyInclusion(first, a, b, proof, second)) {
    Require(inclusion.ok() && inclusion->elements.size() == proof.size());
  }
  const absl::StatusOr<ProofPlan> consistency = PlanConsistencyProof(a, b);
  Require(consistency.ok() == (a > 0 && a <= b));
  if (consistency.ok()) Require(consistency->elements.size() <= 65);
  if (VerifyConsistency(a, b, first, second, proof)) {
    Require(consistency.ok() && consistency->elements.size() == proof.size());
  }
}

// 2. Real proofs of a small tree: they match the reference, verify, and one mutation breaks them.
void CheckSmallTree(FuzzInput& in) {
  const uint64_t size = 1 + in.Byte() % 32;
  const uint64_t index = in.Byte() % size;
  const uint64_t old_size = 1 + in.Byte() % size;
  const uint8_t mutation = in.Byte();
  const uint8_t position = in.Byte();
  const uint8_t bit = in.Byte();
  const absl::string_view rest = in.Rest();

  std::vector<Hash> leaves;
  absl::flat_hash_map<NodeId, Hash> stored;
  CompactTree tree;
  std::vector<Hash> completed;
  for (uint64_t i = 0; i < size; ++i) {
    leaves.push_back(LeafHash(absl::StrCat(i, ":", rest.substr(0, i * 3))));
    stored[NodeId{0, i}] = leaves.back();
    tree.Append(leaves.back(), &completed);
    for (size_t k = 0; k < completed.size(); ++k) {
      const int level = static_cast<int>(k) + 1;
      stored[NodeId{level, i >> level}] = completed[k];
    }
  }
  const Hash root = RootOf(leaves);
  Require(tree.Root() == root);

  absl::StatusOr<std::vector<Hash>> inclusion =
      AssembleProof(PlanInclusionProof(index, size).value(), stored);
  Require(inclusion.ok() && *inclusion == InclusionProofOf(leaves, index));
  Require(VerifyInclusion(leaves[index], index, size, *inclusion, root));
  uint64_t claimed_index = index;
  Hash claimed_root = root;
  std::vector<Hash> bad = *inclusion;
  switch (mutation % 5) {
    case 0:
      if (bad.empty()) {
        bad.push_back(root);
      } else {
        Hash& h = bad[position % bad.size()];
        h = Flipped(h, bit);
      }
      break;
    case 1:
      if (bad.empty()) {
        bad.push_back(leaves[0]);
      } else {
        bad.erase(bad.begin() + position % bad.size());
      }
      break;
    case 2:
      bad.insert(bad.begin() + position % (bad.size() + 1), leaves[position % size]);
      break;
    case 3:
      claimed_index = (index + 1 + position) % (size + 1);
      if (claimed_index == index) claimed_index = size;
      break;
    default:
      claimed_root = Flipped(root, bit);
  }
  Require(!VerifyInclusion(leaves[index], claimed_index, size, bad, claimed_root));

  const auto old_leaves = absl::MakeConstSpan(leaves).first(old_size);
  const Hash old_root = RootOf(old_leaves);
  absl::StatusOr<std::vector<Hash>> consistency =
      AssembleProof(PlanConsistencyProof(old_size, size).value(), stored);
  Require(consistency.ok() && *consistency == ConsistencyProofOf(leaves, old_size));
  Require(VerifyConsistency(old_size, size, old_root, root, *consistency));
  Hash claimed_old_root = old_root;
  claimed_root = root;
  bad = *consistency;
  switch (mutation / 5 % 5) {
    case 0:
      if (bad.empty()) {
        bad.push_back(root);
      } else {
        Hash& h = bad[position % bad.size()];
        h = Flipped(h, bit);
      }
      break;
    case 1:
      if (bad.empty()) {
        claimed_root = Flipped(root, bit);
      } else {
        bad.erase(bad.begin() + position % bad.size());
      }
      break;
    case 2:
      bad.insert(bad.begin() + position % (bad.size() + 1), leaves[position % size]);
      break;
    case 3:
      claimed_old_root = Flipped(old_root, bit);
      break;
    default:
      claimed_root = Flipped(root, bit);
  }
  Require(!VerifyConsistency(old_size, size, claimed_old_root, claimed_root, bad));
}

// 3. Any 64-bit size, over identical leaves: a perfect subtree's hash depends only on its level.
void CheckUniformTree(FuzzInput& in) {
  static const std::vector<Hash> by_level = [] {
    std::vector<Hash> hashes = {LeafHash("uniform")};
    for (int level = 1; level < 64; ++level)
      hashes.push_back(NodeHash(hashes.back(), hashes.back()));
    return hashes;
  }();
  const auto root_of = [](uint64_t size) {
    std::vector<Hash> frontier;
    for (const NodeId& node : FrontierNodes(size)) frontier.push_back(by_level[node.level]);
    return CompactTree::FromFrontier(size, frontier).value().Root();
  };
  const auto assemble = [](const ProofPlan& plan) {
    absl::flat_hash_map<NodeId, Hash> hashes;
    for (const NodeId& node : NodesOf(plan)) hashes[node] = by_level[node.level];
    return AssembleProof(plan, hashes).value();
  };
  uint64_t size = in.Size();
  if (size == 0) size = 1;
  const uint64_t index = in.Uint64() % size;
  const uint64_t old_size = 1 + in.Uint64() % size;
  const Hash root = root_of(size);
  Require(VerifyInclusion(by_level[0], index, size,
                          assemble(PlanInclusionProof(index, size).value()), root));
  Require(VerifyConsistency(old_size, size, root_of(old_size), root,
                            assemble(PlanConsistencyProof(old_size, size).value())));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Each part reads its own copy of the input, so that every byte steers each of them.
  FuzzInput arbitrary(data, size);
  VerifyArbitraryProofs(arbitrary);
  FuzzInput small(data, size);
  CheckSmallTree(small);
  FuzzInput uniform(data, size);
  CheckUniformTree(uniform);
  return 0;
}
