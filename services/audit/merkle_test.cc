#include "services/audit/merkle.h"

#include <bit>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/crypto.h"
#include "gtest/gtest.h"

namespace policy::audit {
namespace {

constexpr uint64_t kMaxSize = 70;

Hash FromHex(absl::string_view hex) { return HashFromBytes(absl::HexStringToBytes(hex)).value(); }

std::string Hex(const Hash& h) { return absl::BytesToHexString(AsBytes(h)); }

std::vector<std::string> Hexes(const std::vector<Hash>& hashes) {
  std::vector<std::string> out;
  for (const Hash& h : hashes) out.push_back(Hex(h));
  return out;
}

// --- The certificate-transparency reference tree ---------------------------------------------
//
// The leaves, node hashes, roots and proofs below are the published RFC 6962 test data of
// Google's certificate-transparency and Trillian, as kept in github.com/transparency-dev/merkle
// (testonly/constants.go and proof/verify_test.go, whose leaf numbers are 1-based). The roots
// were also recomputed independently with Python's hashlib from the RFC's definitions.

std::vector<std::string> ReferenceLeafData() {
  return {"",
          std::string("\x00", 1),
          "\x10",
          "\x20\x21",
          "\x30\x31",
          "\x40\x41\x42\x43",
          "\x50\x51\x52\x53\x54\x55\x56\x57",
          "\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f"};
}

// ReferenceNodes()[level][index]: every perfect subtree of the 8-leaf tree.
const std::vector<std::vector<std::string>>& ReferenceNodes() {
  static const auto* const kNodes = new std::vector<std::vector<std::string>>{
      {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
       "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
       "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
       "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
       "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
       "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
       "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
       "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"},
      {"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
       "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
       "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
       "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"},
      {"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
       "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"},
      {"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"},
  };
  return *kNodes;
}

// ReferenceRoots()[n - 1]: the root of the first n leaves.
const std::vector<std::string>& ReferenceRoots() {
  static const auto* const kRoots = new std::vector<std::string>{
      "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
      "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
      "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
      "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
      "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
      "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
      "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"};
  return *kRoots;
}

absl::flat_hash_map<NodeId, Hash> ReferenceNodeMap() {
  absl::flat_hash_map<NodeId, Hash> nodes;
  for (size_t level = 0; level < ReferenceNodes().size(); ++level) {
    for (size_t index = 0; index < ReferenceNodes()[level].size(); ++index) {
      nodes[NodeId{static_cast<int>(level), index}] = FromHex(ReferenceNodes()[level][index]);
    }
  }
  return nodes;
}

std::vector<Hash> ReferenceLeafHashes() {
  std::vector<Hash> leaves;
  for (const std::string& data : ReferenceLeafData()) leaves.push_back(LeafHash(data));
  return leaves;
}

TEST(MerkleHashTest, MatchesTheReferenceLeafAndNodeHashes) {
  EXPECT_EQ(Hex(EmptyRootHash()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const std::vector<std::string> data = ReferenceLeafData();
  for (size_t i = 0; i < data.size(); ++i) {
    EXPECT_EQ(Hex(LeafHash(data[i])), ReferenceNodes()[0][i]) << "leaf " << i;
  }
  for (size_t level = 1; level < ReferenceNodes().size(); ++level) {
    for (size_t i = 0; i < ReferenceNodes()[level].size(); ++i) {
      EXPECT_EQ(Hex(NodeHash(FromHex(ReferenceNodes()[level - 1][2 * i]),
                             FromHex(ReferenceNodes()[level - 1][2 * i + 1]))),
                ReferenceNodes()[level][i])
          << "level " << level << " index " << i;
    }
  }
  // Leaf data of every length across a few SHA-256 blocks, against common/crypto's SHA-256.
  for (size_t length : {0, 1, 54, 55, 56, 63, 64, 65, 119, 120, 200, 1000, 100000}) {
    const std::string data(length, static_cast<char>('a' + length % 26));
    EXPECT_EQ(AsBytes(LeafHash(data)), crypto::Sha256(absl::StrCat(std::string(1, '\0'), data)))
        << "length " << length;
  }
  const Hash a = LeafHash("a");
  const Hash b = LeafHash("b");
  EXPECT_EQ(AsBytes(NodeHash(a, b)), crypto::Sha256(absl::StrCat("\x01", AsBytes(a), AsBytes(b))));
  EXPECT_NE(NodeHash(a, b), NodeHash(b, a));
}

TEST(MerkleHashTest, HashBytesRoundTrip) {
  const Hash h = LeafHash("x");
  EXPECT_EQ(AsBytes(h).size(), 32u);
  EXPECT_EQ(HashFromBytes(AsBytes(h)).value(), h);
  EXPECT_EQ(HashFromBytes(std::string(31, 'a')).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(HashFromBytes(std::string(33, 'a')).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(HashFromBytes("").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MerkleHashTest, MatchesTheReferenceRootsAndCompactTrees) {
  const std::vector<Hash> leaves = ReferenceLeafHashes();
  const absl::flat_hash_map<NodeId, Hash> nodes = ReferenceNodeMap();
  CompactTree tree;
  EXPECT_EQ(tree.Root(), EmptyRootHash());
  EXPECT_EQ(RootOf({}), EmptyRootHash());
  for (size_t i = 0; i < leaves.size(); ++i) {
    tree.Append(leaves[i]);
    const uint64_t size = i + 1;
    EXPECT_EQ(Hex(tree.Root()), ReferenceRoots()[i]) << "size " << size;
    EXPECT_EQ(Hex(RootOf(absl::MakeConstSpan(leaves).first(size))), ReferenceRoots()[i])
        << "size " << size;
    // testonly.CompactTrees(): the frontier is the reference nodes of the size's binary
    // decomposition.
    std::vector<Hash> expected_frontier;
    for (const NodeId& node : FrontierNodes(size)) expected_frontier.push_back(nodes.at(node));
    EXPECT_EQ(Hexes(tree.frontier()), Hexes(expected_frontier)) << "size " << size;
  }
}

struct InclusionVector {
  uint64_t index;
  uint64_t size;
  std::vector<std::string> proof;
};

struct ConsistencyVector {
  uint64_t old_size;
  uint64_t new_size;
  std::vector<std::string> proof;
};

TEST(MerkleProofTest, MatchesTheReferenceInclusionProofs) {
  const std::vector<InclusionVector> vectors = {
      {0, 1, {}},
      {0,
       8,
       {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
      {5,
       8,
       {"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
      {2, 3, {"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
      {1,
       5,
       {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
  };
  const std::vector<Hash> leaves = ReferenceLeafHashes();
  const absl::flat_hash_map<NodeId, Hash> nodes = ReferenceNodeMap();
  for (const InclusionVector& v : vectors) {
    SCOPED_TRACE(absl::StrCat("leaf ", v.index, " of ", v.size));
    const auto tree = absl::MakeConstSpan(leaves).first(v.size);
    EXPECT_EQ(Hexes(InclusionProofOf(tree, v.index)), v.proof);
    absl::StatusOr<ProofPlan> plan = PlanInclusionProof(v.index, v.size);
    ASSERT_TRUE(plan.ok()) << plan.status();
    absl::StatusOr<std::vector<Hash>> proof = AssembleProof(*plan, nodes);
    ASSERT_TRUE(proof.ok()) << proof.status();
    EXPECT_EQ(Hexes(*proof), v.proof);
    EXPECT_TRUE(VerifyInclusion(leaves[v.index], v.index, v.size, *proof,
                                FromHex(ReferenceRoots()[v.size - 1])));
  }
}

TEST(MerkleProofTest, MatchesTheReferenceConsistencyProofs) {
  const std::vector<ConsistencyVector> vectors = {
      {1, 1, {}},
      {1,
       8,
       {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
      {6,
       8,
       {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
      {2,
       5,
       {"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
      {6,
       7,
       {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
  };
  const std::vector<Hash> leaves = ReferenceLeafHashes();
  const absl::flat_hash_map<NodeId, Hash> nodes = ReferenceNodeMap();
  for (const ConsistencyVector& v : vectors) {
    SCOPED_TRACE(absl::StrCat(v.old_size, " -> ", v.new_size));
    const auto tree = absl::MakeConstSpan(leaves).first(v.new_size);
    EXPECT_EQ(Hexes(ConsistencyProofOf(tree, v.old_size)), v.proof);
    absl::StatusOr<ProofPlan> plan = PlanConsistencyProof(v.old_size, v.new_size);
    ASSERT_TRUE(plan.ok()) << plan.status();
    absl::StatusOr<std::vector<Hash>> proof = AssembleProof(*plan, nodes);
    ASSERT_TRUE(proof.ok()) << proof.status();
    EXPECT_EQ(Hexes(*proof), v.proof);
    EXPECT_TRUE(VerifyConsistency(v.old_size, v.new_size, FromHex(ReferenceRoots()[v.old_size - 1]),
                                  FromHex(ReferenceRoots()[v.new_size - 1]), *proof));
  }
}

// --- Every shape up to kMaxSize leaves --------------------------------------------------------

// Distinct leaf hashes, so that no two subtrees share a hash.
std::vector<Hash> DistinctLeaves(uint64_t n) {
  std::vector<Hash> leaves;
  for (uint64_t i = 0; i < n; ++i) leaves.push_back(LeafHash(absl::StrCat("entry ", i)));
  return leaves;
}

// Every perfect subtree of `leaves`, each hashed by the reference RootOf.
absl::flat_hash_map<NodeId, Hash> AllNodes(absl::Span<const Hash> leaves) {
  absl::flat_hash_map<NodeId, Hash> nodes;
  for (int level = 0; (uint64_t{1} << level) <= leaves.size(); ++level) {
    const uint64_t width = uint64_t{1} << level;
    for (uint64_t i = 0; (i + 1) * width <= leaves.size(); ++i) {
      nodes[NodeId{level, i}] = RootOf(leaves.subspan(i * width, width));
    }
  }
  return nodes;
}

Hash Flipped(Hash h, int bit = 0) {
  h[static_cast<size_t>(bit / 8) % h.size()] ^= static_cast<char>(1 << (bit % 8));
  return h;
}

TEST(MerkleTreeTest, BasicArithmetic) {
  EXPECT_EQ(CompletedLevels(0), 0);
  EXPECT_EQ(CompletedLevels(1), 1);
  EXPECT_EQ(CompletedLevels(2), 0);
  EXPECT_EQ(CompletedLevels(7), 3);
  EXPECT_EQ(CompletedLevels(0b1011), 2);
  EXPECT_EQ(CompletedLevels(~uint64_t{0}), 64);
  EXPECT_EQ(LastLeaf(NodeId{0, 9}), 9u);
  EXPECT_EQ(LastLeaf(NodeId{3, 2}), 23u);
  EXPECT_EQ(LastLeaf(NodeId{63, 1}), ~uint64_t{0});
  EXPECT_TRUE(FrontierNodes(0).empty());
  const std::vector<NodeId> frontier_13 = {{3, 0}, {2, 2}, {0, 12}};
  EXPECT_EQ(FrontierNodes(13), frontier_13);
  EXPECT_EQ(FrontierNodes(~uint64_t{0}).size(), 64u);
  EXPECT_EQ(FrontierNodes(~uint64_t{0}).back(), (NodeId{0, ~uint64_t{0} - 1}));
}

TEST(MerkleTreeTest, CompactTreeMatchesTheDefinitionAtEverySize) {
  const std::vector<Hash> leaves = DistinctLeaves(kMaxSize);
  const absl::flat_hash_map<NodeId, Hash> nodes = AllNodes(leaves);
  std::vector<Hash> roots = {EmptyRootHash()};  // roots[n]: the root of the first n leaves.
  for (uint64_t n = 1; n <= kMaxSize; ++n)
    roots.push_back(RootOf(absl::MakeConstSpan(leaves).first(n)));

  CompactTree tree;
  std::vector<Hash> completed = {LeafHash("stale")};
  for (uint64_t i = 0; i < kMaxSize; ++i) {
    tree.Append(leaves[i], &completed);
    ASSERT_EQ(completed.size(), static_cast<size_t>(CompletedLevels(i))) << "leaf " << i;
    for (size_t k = 0; k < completed.size(); ++k) {
      const int level = static_cast<int>(k) + 1;
      const NodeId node{level, i >> level};
      EXPECT_EQ(LastLeaf(node), i);
      EXPECT_EQ(completed[k], nodes.at(node)) << "leaf " << i << " level " << level;
    }
    const uint64_t size = i + 1;
    ASSERT_EQ(tree.size(), size);
    ASSERT_EQ(tree.Root(), roots[size]) << "size " << size;
    std::vector<Hash> frontier;
    for (const NodeId& node : FrontierNodes(size)) frontier.push_back(nodes.at(node));
    EXPECT_EQ(tree.frontier(), frontier) << "size " << size;

    // A tree rebuilt from the stored frontier continues exactly as the original.
    absl::StatusOr<CompactTree> rebuilt = CompactTree::FromFrontier(size, frontier);
    ASSERT_TRUE(rebuilt.ok()) << rebuilt.status();
    EXPECT_EQ(rebuilt->Root(), roots[size]);
    for (uint64_t j = size; j < kMaxSize; ++j) {
      rebuilt->Append(leaves[j], &completed);
      ASSERT_EQ(completed.size(), static_cast<size_t>(CompletedLevels(j)));
      if (!completed.empty()) {
        EXPECT_EQ(completed.back(),
                  nodes.at(NodeId{static_cast<int>(completed.size()), j >> completed.size()}));
      }
      ASSERT_EQ(rebuilt->Root(), roots[j + 1]) << "rebuilt at " << size << ", size " << j + 1;
    }
  }

  absl::StatusOr<CompactTree> empty = CompactTree::FromFrontier(0, {});
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->Root(), EmptyRootHash());
  EXPECT_EQ(CompactTree::FromFrontier(5, {leaves[0]}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CompactTree::FromFrontier(4, {leaves[0], leaves[1]}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CompactTree::FromFrontier(0, {leaves[0]}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Whether each element of the inclusion proof of `index` in a tree of `size` leaves is a left
// sibling, from the plan (the RFC's recursion). The verifier's computation depends only on
// this: a proof verifies under another (index, size) exactly when that shape is the same.
std::vector<bool> InclusionShape(uint64_t index, uint64_t size) {
  std::vector<bool> shape;
  const ProofPlan plan = PlanInclusionProof(index, size).value();
  for (const std::vector<NodeId>& element : plan.elements) {
    shape.push_back((element.front().index << element.front().level) < index);
  }
  return shape;
}

TEST(MerkleProofTest, InclusionProofsOfEveryLeafUpTo70Leaves) {
  const std::vector<Hash> leaves = DistinctLeaves(kMaxSize);
  const absl::flat_hash_map<NodeId, Hash> nodes = AllNodes(leaves);
  // shapes[size][index]
  std::vector<std::vector<std::vector<bool>>> shapes(kMaxSize + 1);
  for (uint64_t size = 1; size <= kMaxSize; ++size) {
    for (uint64_t index = 0; index < size; ++index) {
      shapes[size].push_back(InclusionShape(index, size));
    }
  }
  int other_sizes_rejected = 0;
  int other_sizes_accepted = 0;
  for (uint64_t size = 1; size <= kMaxSize; ++size) {
    const auto tree = absl::MakeConstSpan(leaves).first(size);
    const Hash root = RootOf(tree);
    for (uint64_t index = 0; index < size; ++index) {
      SCOPED_TRACE(absl::StrCat("leaf ", index, " of ", size));
      const Hash& leaf = leaves[index];
      absl::StatusOr<ProofPlan> plan = PlanInclusionProof(index, size);
      ASSERT_TRUE(plan.ok()) << plan.status();
      absl::StatusOr<std::vector<Hash>> assembled = AssembleProof(*plan, nodes);
      ASSERT_TRUE(assembled.ok()) << assembled.status();
      const std::vector<Hash>& proof = *assembled;
      ASSERT_EQ(proof, InclusionProofOf(tree, index));
      ASSERT_TRUE(VerifyInclusion(leaf, index, size, proof, root));

      EXPECT_FALSE(VerifyInclusion(Flipped(leaf), index, size, proof, root));
      EXPECT_FALSE(VerifyInclusion(leaf, index, size, proof, Flipped(root, 255)));
      for (size_t k = 0; k < proof.size(); ++k) {
        std::vector<Hash> flipped = proof;
        flipped[k] = Flipped(flipped[k], static_cast<int>(k * 37));
        EXPECT_FALSE(VerifyInclusion(leaf, index, size, flipped, root)) << "flipped " << k;
        std::vector<Hash> removed = proof;
        removed.erase(removed.begin() + static_cast<ptrdiff_t>(k));
        EXPECT_FALSE(VerifyInclusion(leaf, index, size, removed, root)) << "removed " << k;
      }
      for (const Hash& extra : {root, leaf, Hash{}}) {
        std::vector<Hash> longer = proof;
        longer.push_back(extra);
        EXPECT_FALSE(VerifyInclusion(leaf, index, size, longer, root));
        longer = proof;
        longer.insert(longer.begin(), extra);
        EXPECT_FALSE(VerifyInclusion(leaf, index, size, longer, root));
      }
      // Every other leaf position of the same tree has a path of another shape.
      for (uint64_t other = 0; other < size + 3; ++other) {
        if (other != index) {
          EXPECT_FALSE(VerifyInclusion(leaf, other, size, proof, root)) << "as leaf " << other;
        }
      }
      // Other sizes: accepted exactly when the path has the same shape there (the size is
      // bound by the checkpoint, not by the proof), which the plans predict.
      EXPECT_FALSE(VerifyInclusion(leaf, index, index, proof, root));
      EXPECT_FALSE(VerifyInclusion(leaf, index, 0, proof, root));
      for (uint64_t other = index + 1; other <= kMaxSize; ++other) {
        if (other == size) continue;
        const bool same_shape = shapes[other][index] == shapes[size][index];
        EXPECT_EQ(VerifyInclusion(leaf, index, other, proof, root), same_shape)
            << "as a tree of " << other;
        ++(same_shape ? other_sizes_accepted : other_sizes_rejected);
      }
    }
  }
  // The comparison above really exercised both outcomes.
  EXPECT_GT(other_sizes_rejected, 10000);
  EXPECT_GT(other_sizes_accepted, 1000);
}

// The consistency analogue of InclusionShape, from the plan: whether the sizes are valid and
// equal, whether the old tree is perfect (so the proof leaves out its root, the first hash of
// the verifier's path) and, for every later element, whether it is a left sibling (inside the
// old tree). The verifier's computation depends only on this.
struct ConsistencyShape {
  bool valid = false;
  bool equal = false;
  bool perfect = false;
  std::vector<bool> left;
  bool operator==(const ConsistencyShape&) const = default;
};

ConsistencyShape ShapeOf(uint64_t old_size, uint64_t new_size) {
  ConsistencyShape shape;
  absl::StatusOr<ProofPlan> plan = PlanConsistencyProof(old_size, new_size);
  if (!plan.ok()) return shape;
  shape.valid = true;
  shape.equal = old_size == new_size;
  if (shape.equal) return shape;
  shape.perfect = std::has_single_bit(old_size);
  for (size_t k = shape.perfect ? 0 : 1; k < plan->elements.size(); ++k) {
    const NodeId& first = plan->elements[k].front();
    shape.left.push_back((first.index << first.level) < old_size);
  }
  return shape;
}

TEST(MerkleProofTest, ConsistencyProofsOfEveryPairUpTo70Leaves) {
  const std::vector<Hash> leaves = DistinctLeaves(kMaxSize);
  const absl::flat_hash_map<NodeId, Hash> nodes = AllNodes(leaves);
  int other_sizes_rejected = 0;
  int other_sizes_accepted = 0;
  for (uint64_t new_size = 1; new_size <= kMaxSize; ++new_size) {
    const auto tree = absl::MakeConstSpan(leaves).first(new_size);
    const Hash new_root = RootOf(tree);
    for (uint64_t old_size = 1; old_size <= new_size; ++old_size) {
      SCOPED_TRACE(absl::StrCat(old_size, " -> ", new_size));
      const Hash old_root = RootOf(tree.first(old_size));
      absl::StatusOr<ProofPlan> plan = PlanConsistencyProof(old_size, new_size);
      ASSERT_TRUE(plan.ok()) << plan.status();
      absl::StatusOr<std::vector<Hash>> assembled = AssembleProof(*plan, nodes);
      ASSERT_TRUE(assembled.ok()) << assembled.status();
      const std::vector<Hash>& proof = *assembled;
      ASSERT_EQ(proof, ConsistencyProofOf(tree, old_size));
      ASSERT_EQ(proof.empty(), old_size == new_size);
      ASSERT_TRUE(VerifyConsistency(old_size, new_size, old_root, new_root, proof));

      EXPECT_FALSE(VerifyConsistency(old_size, new_size, Flipped(old_root), new_root, proof));
      EXPECT_FALSE(VerifyConsistency(old_size, new_size, old_root, Flipped(new_root), proof));
      if (old_size != new_size) {
        EXPECT_FALSE(VerifyConsistency(old_size, new_size, new_root, old_root, proof));
        EXPECT_FALSE(VerifyConsistency(old_size, new_size, old_root, new_root, {}));
      }
      for (size_t k = 0; k < proof.size(); ++k) {
        std::vector<Hash> flipped = proof;
        flipped[k] = Flipped(flipped[k], static_cast<int>(k * 41 + 3));
        EXPECT_FALSE(VerifyConsistency(old_size, new_size, old_root, new_root, flipped))
            << "flipped " << k;
        std::vector<Hash> removed = proof;
        removed.erase(removed.begin() + static_cast<ptrdiff_t>(k));
        EXPECT_FALSE(VerifyConsistency(old_size, new_size, old_root, new_root, removed))
            << "removed " << k;
      }
      for (const Hash& extra : {old_root, new_root, Hash{}}) {
        std::vector<Hash> longer = proof;
        longer.push_back(extra);
        EXPECT_FALSE(VerifyConsistency(old_size, new_size, old_root, new_root, longer));
        longer = proof;
        longer.insert(longer.begin(), extra);
        EXPECT_FALSE(VerifyConsistency(old_size, new_size, old_root, new_root, longer));
      }
      // Other sizes: accepted exactly when the proof has the same shape there.
      const ConsistencyShape shape = ShapeOf(old_size, new_size);
      for (uint64_t other_old :
           {old_size - 1, old_size + 1, old_size ^ 2, 2 * old_size, old_size, uint64_t{0}}) {
        for (uint64_t other_new :
             {new_size - 1, new_size + 1, new_size * 2, new_size / 2, new_size ^ 1, new_size}) {
          if (other_old == old_size && other_new == new_size) continue;
          const bool same_shape = ShapeOf(other_old, other_new) == shape;
          EXPECT_EQ(VerifyConsistency(other_old, other_new, old_root, new_root, proof), same_shape)
              << "as " << other_old << " -> " << other_new;
          ++(same_shape ? other_sizes_accepted : other_sizes_rejected);
        }
      }
    }
  }
  EXPECT_GT(other_sizes_rejected, 10000);
  EXPECT_GT(other_sizes_accepted, 100);
}

TEST(MerkleProofTest, BadArguments) {
  for (auto [index, size] : std::vector<std::pair<uint64_t, uint64_t>>{
           {0, 0}, {5, 5}, {6, 5}, {~uint64_t{0}, ~uint64_t{0}}}) {
    EXPECT_EQ(PlanInclusionProof(index, size).status().code(), absl::StatusCode::kInvalidArgument)
        << index << " of " << size;
  }
  for (auto [old_size, new_size] :
       std::vector<std::pair<uint64_t, uint64_t>>{{0, 0}, {0, 4}, {5, 4}, {~uint64_t{0}, 1}}) {
    EXPECT_EQ(PlanConsistencyProof(old_size, new_size).status().code(),
              absl::StatusCode::kInvalidArgument)
        << old_size << " -> " << new_size;
  }
  absl::StatusOr<ProofPlan> same = PlanConsistencyProof(4, 4);
  ASSERT_TRUE(same.ok());
  EXPECT_TRUE(same->elements.empty());

  // Verification of malformed input is false, whatever the hashes.
  const Hash h = LeafHash("h");
  const std::vector<Hash> long_proof(1000, h);
  EXPECT_FALSE(VerifyInclusion(h, 0, 0, {}, h));
  EXPECT_FALSE(VerifyInclusion(h, 1, 1, {}, h));
  EXPECT_TRUE(VerifyInclusion(h, 0, 1, {}, h));
  EXPECT_FALSE(VerifyInclusion(h, 0, 1, {h}, h));
  EXPECT_FALSE(VerifyInclusion(h, 0, ~uint64_t{0}, long_proof, h));
  EXPECT_FALSE(VerifyInclusion(h, ~uint64_t{0} - 1, ~uint64_t{0}, long_proof, h));
  EXPECT_FALSE(VerifyConsistency(0, 0, h, h, {}));
  EXPECT_FALSE(VerifyConsistency(0, 5, h, h, {}));
  EXPECT_FALSE(VerifyConsistency(5, 4, h, h, {}));
  EXPECT_TRUE(VerifyConsistency(5, 5, h, h, {}));
  EXPECT_FALSE(VerifyConsistency(5, 5, h, Flipped(h), {}));
  EXPECT_FALSE(VerifyConsistency(5, 5, h, h, {h}));
  EXPECT_FALSE(VerifyConsistency(1, ~uint64_t{0}, h, h, long_proof));
  EXPECT_FALSE(VerifyConsistency(3, ~uint64_t{0}, h, h, long_proof));
}

TEST(MerkleProofTest, AssemblyNamesMissingNodes) {
  const std::vector<Hash> leaves = DistinctLeaves(9);
  absl::flat_hash_map<NodeId, Hash> nodes = AllNodes(leaves);
  absl::StatusOr<ProofPlan> plan = PlanInclusionProof(3, 9);
  ASSERT_TRUE(plan.ok());
  const std::vector<NodeId> needed = {{0, 2}, {1, 0}, {2, 1}, {0, 8}};
  EXPECT_EQ(NodesOf(*plan), needed);
  ASSERT_TRUE(AssembleProof(*plan, nodes).ok());
  nodes.erase(NodeId{2, 1});
  absl::StatusOr<std::vector<Hash>> proof = AssembleProof(*plan, nodes);
  EXPECT_EQ(proof.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(proof.status().message().find("level 2, index 1"), absl::string_view::npos)
      << proof.status();
  EXPECT_EQ(AssembleProof(*plan, {}).status().code(), absl::StatusCode::kFailedPrecondition);

  // NodesOf lists each node once, in order of first use; an element may fold several.
  ProofPlan handmade;
  handmade.elements = {{{1, 0}}, {{2, 1}, {1, 0}}, {{0, 5}, {1, 0}, {0, 5}}};
  const std::vector<NodeId> distinct = {{1, 0}, {2, 1}, {0, 5}};
  EXPECT_EQ(NodesOf(handmade), distinct);
  nodes = AllNodes(leaves);
  absl::StatusOr<std::vector<Hash>> folded = AssembleProof(handmade, nodes);
  ASSERT_TRUE(folded.ok()) << folded.status();
  ASSERT_EQ(folded->size(), 3u);
  EXPECT_EQ((*folded)[1], NodeHash(nodes.at({2, 1}), nodes.at({1, 0})));
  EXPECT_EQ((*folded)[2], NodeHash(nodes.at({0, 5}), NodeHash(nodes.at({1, 0}), nodes.at({0, 5}))));
  handmade.elements.push_back({});
  EXPECT_EQ(AssembleProof(handmade, nodes).status().code(), absl::StatusCode::kInvalidArgument);
}

// --- Huge trees -------------------------------------------------------------------------------

// Proof lengths by the closed form of github.com/transparency-dev/merkle (proof/proof.go,
// decompInclProof and consistency): an independent derivation, checked against the reference
// recursion below before it is trusted with sizes no test can build.
size_t InclusionProofLength(uint64_t index, uint64_t size) {
  const int inner = std::bit_width(index ^ (size - 1));
  const int border = std::popcount(inner == 64 ? 0 : index >> inner);
  return static_cast<size_t>(inner + border);
}

size_t ConsistencyProofLength(uint64_t old_size, uint64_t new_size) {
  if (old_size == new_size) return 0;
  const uint64_t index = old_size - 1;
  const int inner = std::bit_width(index ^ (new_size - 1));
  const int border = std::popcount(inner == 64 ? 0 : index >> inner);
  const int shift = std::countr_zero(old_size);
  const int seed = std::has_single_bit(old_size) ? 0 : 1;
  return static_cast<size_t>(seed + inner - shift + border);
}

// A tree whose leaves all have the same hash, so that a perfect subtree's hash depends only on
// its level and a tree of any size can be hashed in O(log n).
struct UniformTree {
  std::vector<Hash> by_level;  // by_level[l]: the hash of every perfect subtree of level l.

  UniformTree() {
    by_level.push_back(LeafHash("uniform"));
    for (int l = 1; l < 64; ++l) by_level.push_back(NodeHash(by_level.back(), by_level.back()));
  }
  Hash Root(uint64_t size) const {
    std::vector<Hash> frontier;
    for (const NodeId& node : FrontierNodes(size)) frontier.push_back(by_level[node.level]);
    return CompactTree::FromFrontier(size, frontier).value().Root();
  }
  absl::StatusOr<std::vector<Hash>> Assemble(const ProofPlan& plan) const {
    absl::flat_hash_map<NodeId, Hash> hashes;
    for (const NodeId& node : NodesOf(plan)) hashes[node] = by_level[node.level];
    return AssembleProof(plan, hashes);
  }
};

TEST(MerkleProofTest, ClosedFormLengthsMatchTheRecursion) {
  const std::vector<Hash> leaves = DistinctLeaves(kMaxSize);
  for (uint64_t size = 1; size <= kMaxSize; ++size) {
    const auto tree = absl::MakeConstSpan(leaves).first(size);
    for (uint64_t i = 0; i < size; ++i) {
      ASSERT_EQ(InclusionProofOf(tree, i).size(), InclusionProofLength(i, size)) << i << size;
      ASSERT_EQ(ConsistencyProofOf(tree, i + 1).size(), ConsistencyProofLength(i + 1, size))
          << i + 1 << " -> " << size;
    }
  }
}

TEST(MerkleProofTest, HugeTreesArePlannedInLogarithmicWork) {
  const UniformTree uniform;
  const uint64_t t40 = uint64_t{1} << 40;
  const uint64_t max = ~uint64_t{0};
  struct Case {
    uint64_t a;  // The leaf index, or the old size.
    uint64_t size;
  };
  for (const Case& c : std::vector<Case>{{0, t40 + 12345},
                                         {t40 - 1, t40 + 12345},
                                         {t40, t40 + 12345},
                                         {t40 + 5, t40 + 12345},
                                         {t40 + 12344, t40 + 12345},
                                         {t40 - 7, t40},
                                         {max - 1, max},
                                         {0, max},
                                         {max / 2, max}}) {
    SCOPED_TRACE(absl::StrCat("leaf ", c.a, " of ", c.size));
    absl::StatusOr<ProofPlan> plan = PlanInclusionProof(c.a, c.size);
    ASSERT_TRUE(plan.ok()) << plan.status();
    EXPECT_EQ(plan->elements.size(), InclusionProofLength(c.a, c.size));
    EXPECT_LE(NodesOf(*plan).size(), 128u);
    absl::StatusOr<std::vector<Hash>> proof = uniform.Assemble(*plan);
    ASSERT_TRUE(proof.ok()) << proof.status();
    EXPECT_TRUE(VerifyInclusion(uniform.by_level[0], c.a, c.size, *proof, uniform.Root(c.size)));
    EXPECT_FALSE(
        VerifyInclusion(uniform.by_level[0], c.a, c.size, *proof, uniform.Root(c.size - 1)));
  }
  for (const Case& c : std::vector<Case>{{1, t40 + 12345},
                                         {(t40 >> 1) + 3, t40 + 12345},
                                         {t40, t40 + 12345},
                                         {t40 + 1, t40 + 12345},
                                         {t40 + 12344, t40 + 12345},
                                         {t40 + 12345, t40 + 12345},
                                         {(max >> 1) + 2, max},
                                         {max - 1, max},
                                         {1, max}}) {
    SCOPED_TRACE(absl::StrCat(c.a, " -> ", c.size));
    absl::StatusOr<ProofPlan> plan = PlanConsistencyProof(c.a, c.size);
    ASSERT_TRUE(plan.ok()) << plan.status();
    EXPECT_EQ(plan->elements.size(), ConsistencyProofLength(c.a, c.size));
    absl::StatusOr<std::vector<Hash>> proof = uniform.Assemble(*plan);
    ASSERT_TRUE(proof.ok()) << proof.status();
    EXPECT_TRUE(VerifyConsistency(c.a, c.size, uniform.Root(c.a), uniform.Root(c.size), *proof));
  }
}

}  // namespace
}  // namespace policy::audit
