#include "services/audit/merkle.h"

#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace policy::audit {
namespace {

std::vector<Hash> Leaves(size_t n) {
  std::vector<Hash> leaves;
  for (size_t i = 0; i < n; ++i) leaves.push_back(LeafHash(std::string(i % 7, 'a' + i % 26)));
  return leaves;
}

std::string Hex(const Hash& h) { return absl::BytesToHexString(AsBytes(h)); }

absl::flat_hash_map<NodeId, Hash> AllNodes(const std::vector<Hash>& leaves) {
  absl::flat_hash_map<NodeId, Hash> nodes;
  for (int level = 0; (uint64_t{1} << level) <= leaves.size(); ++level) {
    const uint64_t width = uint64_t{1} << level;
    for (uint64_t i = 0; (i + 1) * width <= leaves.size(); ++i) {
      nodes[NodeId{level, i}] = RootOf(absl::MakeConstSpan(leaves).subspan(i * width, width));
    }
  }
  return nodes;
}

// The certificate-transparency test leaves; the roots were computed independently with
// Python's hashlib from RFC 6962's definitions (and match the published CT test data).
TEST(MerkleTest, KnownRoots) {
  const std::vector<std::string> data = {"",
                                         std::string("\x00", 1),
                                         "\x10",
                                         "\x20\x21",
                                         "\x30\x31",
                                         "\x40\x41\x42\x43",
                                         "\x50\x51\x52\x53\x54\x55\x56\x57",
                                         "\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d"
                                         "\x6e\x6f"};
  const std::vector<std::string> roots = {
      "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
      "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
      "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
      "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
      "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
      "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
      "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"};
  CompactTree tree;
  std::vector<Hash> leaves;
  for (size_t i = 0; i < data.size(); ++i) {
    leaves.push_back(LeafHash(data[i]));
    tree.Append(leaves.back());
    EXPECT_EQ(Hex(tree.Root()), roots[i]) << i + 1;
    EXPECT_EQ(Hex(RootOf(leaves)), roots[i]) << i + 1;
  }
  EXPECT_EQ(Hex(EmptyRootHash()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(CompactTree().Root(), EmptyRootHash());
}

TEST(MerkleTest, CompactTreeMatchesTheDefinitionAndStoresCompletedSubtrees) {
  const std::vector<Hash> leaves = Leaves(70);
  CompactTree tree;
  std::vector<Hash> completed;
  const absl::flat_hash_map<NodeId, Hash> nodes = AllNodes(leaves);
  for (uint64_t i = 0; i < leaves.size(); ++i) {
    tree.Append(leaves[i], &completed);
    ASSERT_EQ(completed.size(), static_cast<size_t>(CompletedLevels(i))) << i;
    for (size_t l = 0; l < completed.size(); ++l) {
      const int level = static_cast<int>(l) + 1;
      const NodeId node{level, i >> level};
      EXPECT_EQ(LastLeaf(node), i);
      EXPECT_EQ(completed[l], nodes.at(node)) << i << " level " << level;
    }
    const uint64_t size = i + 1;
    ASSERT_EQ(tree.Root(), RootOf(absl::MakeConstSpan(leaves).first(size))) << size;
    // The frontier is the stored nodes of FrontierNodes(size); a tree rebuilt from it
    // continues identically.
    std::vector<Hash> frontier;
    for (const NodeId& n : FrontierNodes(size)) frontier.push_back(nodes.at(n));
    EXPECT_EQ(frontier, tree.frontier());
    absl::StatusOr<CompactTree> rebuilt = CompactTree::FromFrontier(size, frontier);
    ASSERT_TRUE(rebuilt.ok());
    if (size < leaves.size()) {
      rebuilt->Append(leaves[size]);
      EXPECT_EQ(rebuilt->Root(), RootOf(absl::MakeConstSpan(leaves).first(size + 1)));
    }
  }
  EXPECT_EQ(CompactTree::FromFrontier(5, {}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(MerkleTest, InclusionProofsAssembleVerifyAndRejectTampering) {
  const std::vector<Hash> leaves = Leaves(70);
  const absl::flat_hash_map<NodeId, Hash> nodes = AllNodes(leaves);
  for (uint64_t size = 1; size <= leaves.size(); ++size) {
    const auto tree = absl::MakeConstSpan(leaves).first(size);
    const Hash root = RootOf(tree);
    for (uint64_t index = 0; index < size; ++index) {
      absl::StatusOr<ProofPlan> plan = PlanInclusionProof(index, size);
      ASSERT_TRUE(plan.ok());
      absl::StatusOr<std::vector<Hash>> proof = AssembleProof(*plan, nodes);
      ASSERT_TRUE(proof.ok()) << proof.status();
      ASSERT_EQ(*proof, InclusionProofOf(tree, index)) << index << "/" << size;
      ASSERT_TRUE(VerifyInclusion(leaves[index], index, size, *proof, root));
      // (The size is not bound by the proof alone: the signed checkpoint binds it.)
      EXPECT_FALSE(VerifyInclusion(leaves[index], size, size, *proof, root));
      EXPECT_FALSE(VerifyInclusion(leaves[index], index ^ 1, size, *proof, root) &&
                   leaves[index ^ 1] != leaves[index]);
      Hash wrong_root = root;
      wrong_root[3] ^= 1;
      EXPECT_FALSE(VerifyInclusion(leaves[index], index, size, *proof, wrong_root));
      for (size_t k = 0; k < proof->size(); ++k) {
        std::vector<Hash> bad = *proof;
        bad[k][0] ^= 1;
        EXPECT_FALSE(VerifyInclusion(leaves[index], index, size, bad, root));
      }
      std::vector<Hash> longer = *proof;
      longer.push_back(root);
      EXPECT_FALSE(VerifyInclusion(leaves[index], index, size, longer, root));
      if (!proof->empty()) {
        std::vector<Hash> shorter(proof->begin(), proof->end() - 1);
        EXPECT_FALSE(VerifyInclusion(leaves[index], index, size, shorter, root));
      }
    }
  }
  EXPECT_EQ(PlanInclusionProof(5, 5).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(VerifyInclusion(leaves[0], 0, 0, {}, leaves[0]));
}

TEST(MerkleTest, ConsistencyProofsAssembleVerifyAndRejectTampering) {
  const std::vector<Hash> leaves = Leaves(70);
  const absl::flat_hash_map<NodeId, Hash> nodes = AllNodes(leaves);
  for (uint64_t size = 1; size <= leaves.size(); ++size) {
    const auto tree = absl::MakeConstSpan(leaves).first(size);
    const Hash root = RootOf(tree);
    for (uint64_t old_size = 1; old_size <= size; ++old_size) {
      const Hash old_root = RootOf(tree.first(old_size));
      absl::StatusOr<ProofPlan> plan = PlanConsistencyProof(old_size, size);
      ASSERT_TRUE(plan.ok());
      absl::StatusOr<std::vector<Hash>> proof = AssembleProof(*plan, nodes);
      ASSERT_TRUE(proof.ok());
      ASSERT_EQ(*proof, ConsistencyProofOf(tree, old_size)) << old_size << "->" << size;
      ASSERT_TRUE(VerifyConsistency(old_size, size, old_root, root, *proof))
          << old_size << "->" << size;
      Hash wrong = old_root;
      wrong[0] ^= 1;
      EXPECT_FALSE(VerifyConsistency(old_size, size, wrong, root, *proof));
      EXPECT_FALSE(VerifyConsistency(old_size, size, old_root, wrong, *proof) && old_root != root);
      for (size_t k = 0; k < proof->size(); ++k) {
        std::vector<Hash> bad = *proof;
        bad[k][1] ^= 1;
        EXPECT_FALSE(VerifyConsistency(old_size, size, old_root, root, bad));
      }
      if (old_size < size) {
        std::vector<Hash> longer = *proof;
        longer.push_back(root);
        EXPECT_FALSE(VerifyConsistency(old_size, size, old_root, root, longer));
      }
    }
  }
  EXPECT_EQ(PlanConsistencyProof(0, 4).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanConsistencyProof(5, 4).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(VerifyConsistency(5, 4, leaves[0], leaves[1], {}));
}

TEST(MerkleTest, MissingNodesAreNamedAndHugeTreesPlanInLogarithmicSpace) {
  absl::StatusOr<ProofPlan> plan = PlanInclusionProof(3, 9);
  ASSERT_TRUE(plan.ok());
  absl::StatusOr<std::vector<Hash>> proof = AssembleProof(*plan, {});
  EXPECT_EQ(proof.status().code(), absl::StatusCode::kFailedPrecondition);
  const uint64_t size = (uint64_t{1} << 40) + 12345;
  plan = PlanInclusionProof(size - 2, size);
  ASSERT_TRUE(plan.ok());
  EXPECT_LE(plan->elements.size(), 41u);
  EXPECT_LE(NodesOf(*plan).size(), 80u);
  plan = PlanConsistencyProof((uint64_t{1} << 39) + 3, size);
  ASSERT_TRUE(plan.ok());
  EXPECT_LE(plan->elements.size(), 82u);
}

}  // namespace
}  // namespace policy::audit
