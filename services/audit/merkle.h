#ifndef POLICY_SERVICES_AUDIT_MERKLE_H_
#define POLICY_SERVICES_AUDIT_MERKLE_H_

#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

// Merkle trees as RFC 6962 (and RFC 9162 section 2.1) define them, over SHA-256.
//
// Design. A log never rehashes old entries: storage keeps the hash of every perfect subtree
// with the entry of the subtree's last leaf (a leaf at index i completes the subtrees of
// levels 1..CompletedLevels(i) ending at i; CompactTree::Append hands them over), so any
// perfect subtree is one lookup by LastLeaf(node). A proof is therefore first planned as the
// perfect subtrees it needs (PlanInclusionProof, PlanConsistencyProof), storage fetches
// exactly NodesOf(plan), and AssembleProof folds them into the proof. Each proof element is
// the hash of one range of the RFC's recursion: a perfect subtree, or a range ending at the
// tree's right edge, which is the fold of the perfect subtrees it decomposes into.
// Verification (VerifyInclusion, VerifyConsistency) follows RFC 9162 and trusts nothing it is
// given. RootOf, InclusionProofOf and ConsistencyProofOf are the RFC's recursive definitions,
// the reference the rest is tested against.
//
// Every function is thread-safe; a CompactTree is a value (no internal synchronisation).
namespace policy::audit {

// A SHA-256 digest: a leaf hash, a node hash or a root.
using Hash = std::array<char, 32>;

Hash LeafHash(absl::string_view leaf_data);          // SHA-256(0x00 || leaf_data)
Hash NodeHash(const Hash& left, const Hash& right);  // SHA-256(0x01 || left || right)
Hash EmptyRootHash();                                // SHA-256(""): the empty tree's root
// A view of the 32 bytes of `h`, valid while `h` is.
inline absl::string_view AsBytes(const Hash& h) { return absl::string_view(h.data(), h.size()); }
// INVALID_ARGUMENT unless `bytes` is exactly 32 bytes long.
absl::StatusOr<Hash> HashFromBytes(absl::string_view bytes);

// A perfect subtree: the 2^level leaves [index << level, (index + 1) << level). Level 0 is a
// leaf. REQUIRES (for every function below): 0 <= level < 64 and the range fits in 64 bits.
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

// The index of the last leaf `node` covers: the entry its hash is stored with.
uint64_t LastLeaf(NodeId node);
// How many perfect subtrees (levels 1 upward) the leaf at `leaf_index` completes: the number
// of trailing one bits of `leaf_index`. Leaf 0 completes none, leaf 1 the level-1 subtree
// {0, 1}, leaf 7 the subtrees of levels 1, 2 and 3 ending at 7.
int CompletedLevels(uint64_t leaf_index);

// The perfect subtrees of `size`'s binary decomposition, largest (leftmost) first: the right
// edge of a tree of `size` leaves. Empty for size 0.
std::vector<NodeId> FrontierNodes(uint64_t size);

// The right edge of a growing tree: appends leaves and gives the root at any size with
// O(log n) memory. A value type: copy it to fork a tree.
class CompactTree {
 public:
  CompactTree() = default;  // The empty tree.

  // A tree of `size` leaves from the hashes of FrontierNodes(size), in that order;
  // INVALID_ARGUMENT when their number does not match. The hashes themselves are trusted.
  static absl::StatusOr<CompactTree> FromFrontier(uint64_t size, std::vector<Hash> frontier);

  uint64_t size() const { return size_; }
  // The hashes of FrontierNodes(size()), in that order.
  const std::vector<Hash>& frontier() const { return frontier_; }

  // Appends one leaf hash. `completed`, when not null, is cleared and then receives the hashes
  // of the perfect subtrees this leaf completes, level 1 upward: CompletedLevels(old size())
  // of them, the i-th being node {i + 1, old_size >> (i + 1)}. Allocates only when the
  // frontier or `completed` grows past its capacity. REQUIRES: size() < 2^64 - 1.
  void Append(const Hash& leaf_hash, std::vector<Hash>* completed = nullptr);

  // The RFC 6962 root (MTH) of all leaves so far; EmptyRootHash() when there are none.
  Hash Root() const;

 private:
  uint64_t size_ = 0;
  std::vector<Hash> frontier_;  // The hashes of FrontierNodes(size_).
};

// A proof as the perfect subtrees it needs: proof hash k is the fold of elements[k] (one
// node, or several for a range at the tree's right edge, largest first, folded right to left
// with NodeHash(left, accumulated)).
struct ProofPlan {
  std::vector<std::vector<NodeId>> elements;
};

// The inclusion proof of leaf `index` in a tree of `size` leaves (RFC 9162 2.1.3.1, PATH):
// at most 64 elements. INVALID_ARGUMENT unless index < size.
absl::StatusOr<ProofPlan> PlanInclusionProof(uint64_t index, uint64_t size);
// The consistency proof between trees of `old_size` and `new_size` leaves (RFC 9162 2.1.4.1,
// PROOF): at most 65 elements. INVALID_ARGUMENT unless 0 < old_size <= new_size; equal sizes
// give an empty proof.
absl::StatusOr<ProofPlan> PlanConsistencyProof(uint64_t old_size, uint64_t new_size);
// The distinct nodes of `plan`, in order of first use: what storage must fetch.
std::vector<NodeId> NodesOf(const ProofPlan& plan);
// The proof's hashes, one per element of `plan`. FAILED_PRECONDITION naming the first node
// missing from `hashes`; INVALID_ARGUMENT for an element without nodes.
absl::StatusOr<std::vector<Hash>> AssembleProof(const ProofPlan& plan,
                                                const absl::flat_hash_map<NodeId, Hash>& hashes);

// RFC 9162 2.1.3.2: whether `proof` shows that `leaf_hash` is leaf `index` of the tree of
// `size` leaves whose root is `root`. False for any malformed input (index >= size, a proof of
// the wrong length); O(min(proof.size(), 64)) hashes, no allocation. Safe on untrusted input.
//
// The proof binds the leaf to the root, not to `size` alone: trees of different sizes whose
// path from this leaf has the same shape accept the same proof, so `size` and `root` must come
// from the same signed checkpoint.
bool VerifyInclusion(const Hash& leaf_hash, uint64_t index, uint64_t size,
                     absl::Span<const Hash> proof, const Hash& root);
// RFC 9162 2.1.4.2: whether `proof` shows that the tree of `old_size` leaves with root
// `old_root` is a prefix of the tree of `new_size` leaves with root `new_root`. Equal sizes
// need an empty proof and equal roots. False for any malformed input (old_size == 0,
// old_size > new_size, a proof of the wrong length); O(min(proof.size(), 64)) hashes, no
// allocation. Safe on untrusted input.
bool VerifyConsistency(uint64_t old_size, uint64_t new_size, const Hash& old_root,
                       const Hash& new_root, absl::Span<const Hash> proof);

// The RFC's recursive definitions over all leaf hashes, O(n) each: for tests and for tools
// that hold every leaf. RootOf is MTH (EmptyRootHash() for no leaves). InclusionProofOf is
// PATH, empty unless index < leaves.size(). ConsistencyProofOf is PROOF between
// old_size and leaves.size(), empty unless 0 < old_size <= leaves.size().
Hash RootOf(absl::Span<const Hash> leaves);
std::vector<Hash> InclusionProofOf(absl::Span<const Hash> leaves, uint64_t index);
std::vector<Hash> ConsistencyProofOf(absl::Span<const Hash> leaves, uint64_t old_size);

}  // namespace policy::audit

#endif  // POLICY_SERVICES_AUDIT_MERKLE_H_
