#ifndef POLICY_SERVICES_AUDIT_MERKLE_H_
#define POLICY_SERVICES_AUDIT_MERKLE_H_

#include <array>
#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

// Merkle trees as RFC 6962 (and RFC 9162 section 2.1) define them, over SHA-256.
//
// Storage keeps the hash of every perfect subtree with the entry of its last leaf: a leaf at
// index i completes the subtrees of levels 1..CompletedLevels(i) that end at i, so any node
// is one lookup. Proofs are therefore planned first, as the perfect subtrees whose hashes they
// need (PlanInclusionProof, PlanConsistencyProof), then assembled from those hashes; each proof
// element is one perfect subtree or a range at the tree's right edge, the fold of the perfect
// subtrees it decomposes into. Verification (VerifyInclusion, VerifyConsistency) follows
// RFC 9162 and trusts nothing it is given.
namespace policy::audit {

using Hash = std::array<char, 32>;

Hash LeafHash(absl::string_view leaf_data);          // SHA-256(0x00 || data)
Hash NodeHash(const Hash& left, const Hash& right);  // SHA-256(0x01 || left || right)
Hash EmptyRootHash();                                // SHA-256(""): the empty tree's root
inline absl::string_view AsBytes(const Hash& h) { return absl::string_view(h.data(), h.size()); }
// INVALID_ARGUMENT unless `bytes` is 32 bytes long.
absl::StatusOr<Hash> HashFromBytes(absl::string_view bytes);

// A perfect subtree: the 2^level leaves [index << level, (index + 1) << level).
struct NodeId {
  int level = 0;
  uint64_t index = 0;
  friend bool operator==(const NodeId& a, const NodeId& b) {
    return a.level == b.level && a.index == b.index;
  }
  template <typename H>
  friend H AbslHashValue(H h, const NodeId& n) {
    return H::combine(std::move(h), n.level, n.index);
  }
};

// The index of the last leaf a perfect subtree covers.
uint64_t LastLeaf(NodeId node);
// How many perfect subtrees (levels 1 upward) the leaf at `leaf_index` completes: the number
// of trailing one bits of the index.
int CompletedLevels(uint64_t leaf_index);

// The perfect subtrees of `size`'s binary decomposition, largest (leftmost) first: the right
// edge of a tree of `size` leaves.
std::vector<NodeId> FrontierNodes(uint64_t size);

// The right edge of a growing tree: appends leaves and gives the root at any size with
// O(log n) memory.
class CompactTree {
 public:
  CompactTree() = default;  // The empty tree.
  // A tree of `size` leaves from the hashes of FrontierNodes(size), in that order;
  // INVALID_ARGUMENT when their number does not match.
  static absl::StatusOr<CompactTree> FromFrontier(uint64_t size, std::vector<Hash> frontier);

  uint64_t size() const { return size_; }
  const std::vector<Hash>& frontier() const { return frontier_; }

  // Appends one leaf hash. `completed`, when not null, receives (cleared first) the hashes of
  // the perfect subtrees this leaf completes, level 1 upward.
  void Append(const Hash& leaf_hash, std::vector<Hash>* completed = nullptr);
  // The RFC 6962 root of all leaves so far; EmptyRootHash() when there are none.
  Hash Root() const;

 private:
  uint64_t size_ = 0;
  std::vector<Hash> frontier_;
};

// A proof as the perfect subtrees it needs: element k is the fold of elements[k].
struct ProofPlan {
  std::vector<std::vector<NodeId>> elements;
};

// The inclusion proof of leaf `index` in a tree of `size` (RFC 9162 2.1.3.1);
// INVALID_ARGUMENT unless index < size.
absl::StatusOr<ProofPlan> PlanInclusionProof(uint64_t index, uint64_t size);
// The consistency proof between `old_size` and `new_size` (RFC 9162 2.1.4.1);
// INVALID_ARGUMENT unless 0 < old_size <= new_size. Equal sizes give an empty proof.
absl::StatusOr<ProofPlan> PlanConsistencyProof(uint64_t old_size, uint64_t new_size);
// The distinct nodes of a plan, in first-use order.
std::vector<NodeId> NodesOf(const ProofPlan& plan);
// The proof's hashes; FAILED_PRECONDITION naming a node missing from `hashes`.
absl::StatusOr<std::vector<Hash>> AssembleProof(const ProofPlan& plan,
                                                const absl::flat_hash_map<NodeId, Hash>& hashes);

// RFC 9162 2.1.3.2 and 2.1.4.2: true only for a correct proof. Malformed input (index beyond
// the tree, sizes out of order, a proof of the wrong length) gives false.
bool VerifyInclusion(const Hash& leaf_hash, uint64_t index, uint64_t size,
                     absl::Span<const Hash> proof, const Hash& root);
bool VerifyConsistency(uint64_t old_size, uint64_t new_size, const Hash& old_root,
                       const Hash& new_root, absl::Span<const Hash> proof);

// The RFC's recursive definitions (MTH, PATH, PROOF) over all leaf hashes: O(n), for tests
// and for tools that hold every leaf.
Hash RootOf(absl::Span<const Hash> leaves);
std::vector<Hash> InclusionProofOf(absl::Span<const Hash> leaves, uint64_t index);
std::vector<Hash> ConsistencyProofOf(absl::Span<const Hash> leaves, uint64_t old_size);

}  // namespace policy::audit

#endif  // POLICY_SERVICES_AUDIT_MERKLE_H_
