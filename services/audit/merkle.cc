#include "services/audit/merkle.h"

#include <openssl/sha.h>

#include <cstring>
#include <string>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace policy::audit {
namespace {

Hash Sha256Of(const unsigned char* data, size_t size) {
  Hash out;
  SHA256(data, size, reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

// The largest power of two smaller than n (n >= 2).
uint64_t SplitPoint(uint64_t n) {
  uint64_t k = 1;
  while (k << 1 < n) k <<= 1;
  return k;
}

// The perfect subtrees of the range [start, start + size), `start` aligned to a power of two
// larger than `size` (as every range of the RFC's recursion is), largest first.
std::vector<NodeId> RangeNodes(uint64_t start, uint64_t size) {
  std::vector<NodeId> nodes;
  for (int level = 63; level >= 0; --level) {
    const uint64_t width = uint64_t{1} << level;
    if (size & width) {
      nodes.push_back(NodeId{level, start >> level});
      start += width;
    }
  }
  return nodes;
}

void PlanPath(uint64_t m, uint64_t start, uint64_t n, ProofPlan& plan) {
  if (n <= 1) return;
  const uint64_t k = SplitPoint(n);
  if (m < k) {
    PlanPath(m, start, k, plan);
    plan.elements.push_back(RangeNodes(start + k, n - k));
  } else {
    PlanPath(m - k, start + k, n - k, plan);
    plan.elements.push_back(RangeNodes(start, k));
  }
}

void PlanSubproof(uint64_t m, uint64_t start, uint64_t n, bool whole, ProofPlan& plan) {
  if (m == n) {
    if (!whole) plan.elements.push_back(RangeNodes(start, n));
    return;
  }
  const uint64_t k = SplitPoint(n);
  if (m <= k) {
    PlanSubproof(m, start, k, whole, plan);
    plan.elements.push_back(RangeNodes(start + k, n - k));
  } else {
    PlanSubproof(m - k, start + k, n - k, false, plan);
    plan.elements.push_back(RangeNodes(start, k));
  }
}

bool Lsb(uint64_t x) { return (x & 1) != 0; }

void Path(absl::Span<const Hash> leaves, uint64_t m, std::vector<Hash>& out) {
  const uint64_t n = leaves.size();
  if (n <= 1) return;
  const uint64_t k = SplitPoint(n);
  if (m < k) {
    Path(leaves.subspan(0, k), m, out);
    out.push_back(RootOf(leaves.subspan(k)));
  } else {
    Path(leaves.subspan(k), m - k, out);
    out.push_back(RootOf(leaves.subspan(0, k)));
  }
}

void Subproof(absl::Span<const Hash> leaves, uint64_t m, bool whole, std::vector<Hash>& out) {
  const uint64_t n = leaves.size();
  if (m == n) {
    if (!whole) out.push_back(RootOf(leaves));
    return;
  }
  const uint64_t k = SplitPoint(n);
  if (m <= k) {
    Subproof(leaves.subspan(0, k), m, whole, out);
    out.push_back(RootOf(leaves.subspan(k)));
  } else {
    Subproof(leaves.subspan(k), m - k, false, out);
    out.push_back(RootOf(leaves.subspan(0, k)));
  }
}

}  // namespace

Hash LeafHash(absl::string_view leaf_data) {
  unsigned char stack[512];
  if (leaf_data.size() < sizeof(stack)) {
    stack[0] = 0;
    std::memcpy(stack + 1, leaf_data.data(), leaf_data.size());
    return Sha256Of(stack, leaf_data.size() + 1);
  }
  std::string buffer(1, '\0');
  buffer.append(leaf_data.data(), leaf_data.size());
  return Sha256Of(reinterpret_cast<const unsigned char*>(buffer.data()), buffer.size());
}

Hash NodeHash(const Hash& left, const Hash& right) {
  unsigned char buffer[65];
  buffer[0] = 1;
  std::memcpy(buffer + 1, left.data(), 32);
  std::memcpy(buffer + 33, right.data(), 32);
  return Sha256Of(buffer, sizeof(buffer));
}

Hash EmptyRootHash() { return Sha256Of(nullptr, 0); }

absl::StatusOr<Hash> HashFromBytes(absl::string_view bytes) {
  if (bytes.size() != 32) {
    return absl::InvalidArgumentError(absl::StrCat("a hash is 32 bytes, not ", bytes.size()));
  }
  Hash h;
  std::memcpy(h.data(), bytes.data(), 32);
  return h;
}

uint64_t LastLeaf(NodeId node) { return ((node.index + 1) << node.level) - 1; }

int CompletedLevels(uint64_t leaf_index) { return __builtin_ctzll(~leaf_index); }

std::vector<NodeId> FrontierNodes(uint64_t size) { return RangeNodes(0, size); }

absl::StatusOr<CompactTree> CompactTree::FromFrontier(uint64_t size, std::vector<Hash> frontier) {
  const size_t expected = static_cast<size_t>(__builtin_popcountll(size));
  if (frontier.size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat("a tree of ", size, " leaves has ", expected,
                                                   " frontier hashes, not ", frontier.size()));
  }
  CompactTree tree;
  tree.size_ = size;
  tree.frontier_ = std::move(frontier);
  return tree;
}

void CompactTree::Append(const Hash& leaf_hash, std::vector<Hash>* completed) {
  if (completed != nullptr) completed->clear();
  Hash h = leaf_hash;
  for (uint64_t s = size_; Lsb(s); s >>= 1) {
    h = NodeHash(frontier_.back(), h);
    frontier_.pop_back();
    if (completed != nullptr) completed->push_back(h);
  }
  frontier_.push_back(h);
  ++size_;
}

Hash CompactTree::Root() const {
  if (frontier_.empty()) return EmptyRootHash();
  Hash root = frontier_.back();
  for (size_t i = frontier_.size() - 1; i-- > 0;) root = NodeHash(frontier_[i], root);
  return root;
}

absl::StatusOr<ProofPlan> PlanInclusionProof(uint64_t index, uint64_t size) {
  if (index >= size) {
    return absl::InvalidArgumentError(
        absl::StrCat("index ", index, " is not in a tree of ", size, " leaves"));
  }
  ProofPlan plan;
  PlanPath(index, 0, size, plan);
  return plan;
}

absl::StatusOr<ProofPlan> PlanConsistencyProof(uint64_t old_size, uint64_t new_size) {
  if (old_size == 0 || old_size > new_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("no consistency proof from size ", old_size, " to size ", new_size));
  }
  ProofPlan plan;
  PlanSubproof(old_size, 0, new_size, true, plan);
  return plan;
}

std::vector<NodeId> NodesOf(const ProofPlan& plan) {
  std::vector<NodeId> nodes;
  absl::flat_hash_set<NodeId> seen;
  for (const std::vector<NodeId>& element : plan.elements) {
    for (const NodeId& node : element) {
      if (seen.insert(node).second) nodes.push_back(node);
    }
  }
  return nodes;
}

absl::StatusOr<std::vector<Hash>> AssembleProof(const ProofPlan& plan,
                                                const absl::flat_hash_map<NodeId, Hash>& hashes) {
  std::vector<Hash> proof;
  proof.reserve(plan.elements.size());
  for (const std::vector<NodeId>& element : plan.elements) {
    Hash acc{};
    for (size_t i = element.size(); i-- > 0;) {
      auto it = hashes.find(element[i]);
      if (it == hashes.end()) {
        return absl::FailedPreconditionError(absl::StrCat("the hash of node (", element[i].level,
                                                          ", ", element[i].index, ") is missing"));
      }
      acc = i + 1 == element.size() ? it->second : NodeHash(it->second, acc);
    }
    proof.push_back(acc);
  }
  return proof;
}

bool VerifyInclusion(const Hash& leaf_hash, uint64_t index, uint64_t size,
                     absl::Span<const Hash> proof, const Hash& root) {
  if (index >= size || proof.size() > 64) return false;
  uint64_t fn = index;
  uint64_t sn = size - 1;
  Hash r = leaf_hash;
  for (const Hash& p : proof) {
    if (sn == 0) return false;
    if (Lsb(fn) || fn == sn) {
      r = NodeHash(p, r);
      while (!Lsb(fn) && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      r = NodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn == 0 && r == root;
}

bool VerifyConsistency(uint64_t old_size, uint64_t new_size, const Hash& old_root,
                       const Hash& new_root, absl::Span<const Hash> proof) {
  if (old_size == 0 || old_size > new_size || proof.size() > 128) return false;
  if (old_size == new_size) return proof.empty() && old_root == new_root;
  if (proof.empty()) return false;
  std::vector<Hash> path(proof.begin(), proof.end());
  if ((old_size & (old_size - 1)) == 0) path.insert(path.begin(), old_root);
  uint64_t fn = old_size - 1;
  uint64_t sn = new_size - 1;
  while (Lsb(fn)) {
    fn >>= 1;
    sn >>= 1;
  }
  Hash fr = path[0];
  Hash sr = path[0];
  for (size_t i = 1; i < path.size(); ++i) {
    const Hash& c = path[i];
    if (sn == 0) return false;
    if (Lsb(fn) || fn == sn) {
      fr = NodeHash(c, fr);
      sr = NodeHash(c, sr);
      while (!Lsb(fn) && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      sr = NodeHash(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn == 0 && fr == old_root && sr == new_root;
}

Hash RootOf(absl::Span<const Hash> leaves) {
  if (leaves.empty()) return EmptyRootHash();
  if (leaves.size() == 1) return leaves[0];
  const uint64_t k = SplitPoint(leaves.size());
  return NodeHash(RootOf(leaves.subspan(0, k)), RootOf(leaves.subspan(k)));
}

std::vector<Hash> InclusionProofOf(absl::Span<const Hash> leaves, uint64_t index) {
  std::vector<Hash> out;
  if (index < leaves.size()) Path(leaves, index, out);
  return out;
}

std::vector<Hash> ConsistencyProofOf(absl::Span<const Hash> leaves, uint64_t old_size) {
  std::vector<Hash> out;
  if (old_size > 0 && old_size <= leaves.size()) Subproof(leaves, old_size, true, out);
  return out;
}

}  // namespace policy::audit
