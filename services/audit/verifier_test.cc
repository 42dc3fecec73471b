#include "services/audit/verifier.h"

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/audit/memory_ledger_store.h"

namespace policy::audit {
namespace {

using ::testing::HasSubstr;

const LedgerRef kLedger{"proj-prod", "production"};

// A ledger of 40 entries with checkpoints at 16 and 40, as stored.
class VerifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    signer_ = CheckpointSigner::Create(std::string(32, '\x05')).value();
    std::vector<Entry> entries;
    for (int i = 0; i < 40; ++i) {
      Entry e;
      e.ledger = kLedger;
      e.time = absl::FromUnixSeconds(1'800'000'000 + i);
      e.action = i % 3 ? Action::kApiCall : Action::kDecisionDeny;
      e.actor = SealedSubject{std::string(32, static_cast<char>('a' + i % 5)), "sealed"};
      e.tokens = i;
      e.request_id = absl::StrCat("r", i);
      entries.push_back(std::move(e));
    }
    std::vector<Entry> first(entries.begin(), entries.begin() + 16);
    std::vector<Entry> rest(entries.begin() + 16, entries.end());
    ASSERT_TRUE(store_.Append(std::move(first), {}).ok());
    Sign();
    ASSERT_TRUE(store_.Append(std::move(rest), {}).ok());
    Sign();
    entries_ = store_.ReadRange(kLedger, 0, 100).value();
    checkpoints_ = store_.ListCheckpoints(kLedger).value();
    ASSERT_EQ(checkpoints_.size(), 2u);
  }

  void Sign() {
    const uint64_t size = store_.Size(kLedger).value();
    const std::vector<Entry> stored = store_.ReadRange(kLedger, 0, size).value();
    std::vector<Hash> leaves;
    for (const Entry& e : stored) leaves.push_back(e.leaf_hash);
    ASSERT_TRUE(
        store_.AddCheckpoint(signer_->Sign(kLedger, size, RootOf(leaves), absl::Now()).value())
            .ok());
  }

  IntegrityReport Verify(const std::vector<Entry>& entries,
                         std::optional<Checkpoint> trusted = std::nullopt) {
    return VerifyWith(entries, checkpoints_, std::move(trusted));
  }

  IntegrityReport VerifyWith(const std::vector<Entry>& entries, std::vector<Checkpoint> checkpoints,
                             std::optional<Checkpoint> trusted = std::nullopt,
                             std::vector<std::string> previous_public_keys = {}) {
    previous_public_keys.insert(previous_public_keys.begin(), signer_->public_key());
    LedgerVerifier verifier(kLedger, CheckpointKeys(std::move(previous_public_keys)),
                            std::move(checkpoints), std::move(trusted));
    for (const Entry& e : entries) {
      if (!verifier.Add(e)) break;
    }
    return verifier.Finish().value();
  }

  MemoryLedgerStore store_;
  std::unique_ptr<CheckpointSigner> signer_;
  std::vector<Entry> entries_;
  std::vector<Checkpoint> checkpoints_;
};

TEST_F(VerifierTest, AnIntactLedgerVerifies) {
  IntegrityReport r = Verify(entries_);
  EXPECT_TRUE(r.valid) << r.problem;
  EXPECT_EQ(r.entries_checked, 40u);
  EXPECT_EQ(r.checkpoints_checked, 2u);
  EXPECT_EQ(r.root, checkpoints_[1].root);
}

TEST_F(VerifierTest, AnEditedFieldIsFoundAtItsIndex) {
  std::vector<Entry> tampered = entries_;
  tampered[23].tokens = 1'000'000;
  IntegrityReport r = Verify(tampered);
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 23u);
  EXPECT_THAT(r.problem, HasSubstr("leaf hash"));
}

TEST_F(VerifierTest, AnEditWithARecomputedLeafHashIsStillFound) {
  std::vector<Entry> tampered = entries_;
  tampered[23].tokens = 7;
  tampered[23].leaf_hash = EntryLeafHash(tampered[23]);
  IntegrityReport r = Verify(tampered);
  EXPECT_FALSE(r.valid);
  // Index 23 completes subtrees of levels 1 to 3, whose stored hashes no longer match.
  EXPECT_EQ(r.first_bad_index, 23u);
  EXPECT_THAT(r.problem, HasSubstr("subtree"));
}

TEST_F(VerifierTest, AnEditWithEveryStoredHashRecomputedFailsTheSignedCheckpoint) {
  std::vector<Entry> tampered = entries_;
  tampered[30].tokens = 7;
  CompactTree tree;
  for (Entry& e : tampered) {
    e.leaf_hash = EntryLeafHash(e);
    tree.Append(e.leaf_hash, &e.completed);
  }
  IntegrityReport r = Verify(tampered);
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 16u);  // Intact up to the checkpoint of size 16.
  EXPECT_THAT(r.problem, HasSubstr("signed checkpoint"));
}

TEST_F(VerifierTest, ADeletedRowIsFound) {
  std::vector<Entry> tampered = entries_;
  tampered.erase(tampered.begin() + 9);
  IntegrityReport r = Verify(tampered);
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 9u);
  EXPECT_THAT(r.problem, HasSubstr("missing"));
}

TEST_F(VerifierTest, SwappedRowsAreFound) {
  std::vector<Entry> tampered = entries_;
  // Swap everything but the index, as swapping two rows' contents in a table would.
  std::swap(tampered[12], tampered[31]);
  std::swap(tampered[12].index, tampered[31].index);
  IntegrityReport r = Verify(tampered);
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 12u);
}

TEST_F(VerifierTest, AnInsertedRowIsFound) {
  std::vector<Entry> tampered = entries_;
  Entry forged = tampered[5];
  forged.tokens = 0;
  forged.request_id = "forged";
  tampered.insert(tampered.begin() + 6, forged);
  for (size_t i = 6; i < tampered.size(); ++i) tampered[i].index = i;
  IntegrityReport r = Verify(tampered);
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 6u);
}

TEST_F(VerifierTest, ATruncatedTailIsFound) {
  std::vector<Entry> tampered(entries_.begin(), entries_.begin() + 33);
  IntegrityReport r = Verify(tampered);
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 33u);
  EXPECT_THAT(r.problem, HasSubstr("missing"));
}

TEST_F(VerifierTest, ATruncationThatAlsoDropsCheckpointsIsCaughtByATrustedCheckpoint) {
  std::vector<Entry> tampered(entries_.begin(), entries_.begin() + 20);
  // The server's checkpoints were cut back too; the verifier remembers size 40.
  IntegrityReport r = VerifyWith(tampered, {checkpoints_[0]}, checkpoints_[1]);
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 20u);
  EXPECT_TRUE(VerifyWith(tampered, {checkpoints_[0]}).valid);  // Without it: undetectable.
}

TEST_F(VerifierTest, ForgedOrForeignCheckpointsAreRejected) {
  std::vector<Checkpoint> forged = checkpoints_;
  forged[1].root[0] ^= 1;
  IntegrityReport r = VerifyWith(entries_, forged);
  EXPECT_FALSE(r.valid);
  EXPECT_THAT(r.problem, HasSubstr("signature"));

  auto other = CheckpointSigner::Create(std::string(32, '\x06')).value();
  std::vector<Checkpoint> foreign = checkpoints_;
  foreign[0] = other->Sign(kLedger, 16, checkpoints_[0].root, absl::Now()).value();
  EXPECT_FALSE(VerifyWith(entries_, foreign).valid);

  std::vector<Checkpoint> misplaced = checkpoints_;
  misplaced[0] =
      signer_->Sign(LedgerRef{"proj-dev", "development"}, 16, checkpoints_[0].root, absl::Now())
          .value();
  EXPECT_FALSE(VerifyWith(entries_, misplaced).valid);
}

// A rotation: the checkpoint of 16 signed by an earlier key, that of 40 by the current one.
TEST_F(VerifierTest, CheckpointsOfAnEarlierKeyVerifyOnlyWhenItIsTrusted) {
  auto earlier = CheckpointSigner::Create(std::string(32, '\x06')).value();
  std::vector<Checkpoint> rotated = checkpoints_;
  rotated[0] = earlier->Sign(kLedger, 16, rotated[0].root, rotated[0].time).value();
  IntegrityReport r = VerifyWith(entries_, rotated, std::nullopt, {earlier->public_key()});
  EXPECT_TRUE(r.valid) << r.problem;
  EXPECT_EQ(r.checkpoints_checked, 2u);
  EXPECT_EQ(r.checkpoints_by_key,
            (std::map<std::string, uint64_t>{{earlier->key_id(), 1}, {signer_->key_id(), 1}}));
  // Without the earlier key: INVALID, naming the key the checkpoint names.
  r = VerifyWith(entries_, rotated);
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 0u);
  EXPECT_THAT(r.problem, HasSubstr(absl::StrCat("the checkpoint of size 16 does not carry a valid "
                                                "signature of a trusted key: it names signing key ",
                                                earlier->key_id(), ", an unknown key")));
  // A key id changed to a trusted key's: the signature still decides.
  rotated[0].key_id = signer_->key_id();
  r = VerifyWith(entries_, rotated);
  EXPECT_FALSE(r.valid);
  EXPECT_THAT(r.problem, HasSubstr(absl::StrCat("does not carry a valid signature of key ",
                                                signer_->key_id(), ", the trusted key it names")));
  r = VerifyWith(entries_, rotated, std::nullopt, {earlier->public_key()});
  EXPECT_TRUE(r.valid) << r.problem;
  EXPECT_EQ(r.checkpoints_by_key.at(earlier->key_id()), 1u);
}

// A checkpoint of the true root of the first `size` entries, signed by `signer`.
Checkpoint SignPrefix(const CheckpointSigner& signer, const std::vector<Entry>& entries,
                      uint64_t size) {
  std::vector<Hash> leaves;
  for (uint64_t i = 0; i < size; ++i) leaves.push_back(entries[i].leaf_hash);
  return signer.Sign(kLedger, size, RootOf(leaves), absl::FromUnixSeconds(1'900'000'000)).value();
}

// Someone holding a retired key (and the database) signs past the current key's checkpoints:
// a checkpoint of the earlier key after the current one took over, larger than all of its.
TEST_F(VerifierTest, ACheckpointOfARetiredKeyPastTheCurrentKeysIsInvalid) {
  auto earlier = CheckpointSigner::Create(std::string(32, '\x06')).value();
  const std::vector<Checkpoint> forged = {SignPrefix(*earlier, entries_, 8),
                                          SignPrefix(*signer_, entries_, 16),
                                          SignPrefix(*earlier, entries_, 40)};
  IntegrityReport r = VerifyWith(entries_, forged, std::nullopt, {earlier->public_key()});
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 16u);
  EXPECT_THAT(r.problem, HasSubstr(absl::StrCat(
                             "the checkpoint of size 40 was signed by earlier key ",
                             earlier->key_id(), " after the current key ", signer_->key_id(),
                             " took over (its smallest checkpoint has size 16) and goes "
                             "beyond the current key's largest (size 16)")));
  EXPECT_THAT(r.problem, HasSubstr("treat that key as compromised"));
  // A late checkpoint the current key's next one covers (a replica of the old key signing as
  // the new one first signs) vouches for nothing, but is no forgery past the current key.
  const std::vector<Checkpoint> covered = {
      SignPrefix(*earlier, entries_, 8), SignPrefix(*signer_, entries_, 16),
      SignPrefix(*earlier, entries_, 24), SignPrefix(*signer_, entries_, 40)};
  r = VerifyWith(entries_, covered, std::nullopt, {earlier->public_key()});
  EXPECT_TRUE(r.valid) << r.problem;
  EXPECT_EQ(r.checkpoints_checked, 4u);
  // Before the current key signs anything, the earlier key's checkpoints are all in its time.
  r = VerifyWith(entries_, {SignPrefix(*earlier, entries_, 8), SignPrefix(*earlier, entries_, 40)},
                 std::nullopt, {earlier->public_key()});
  EXPECT_TRUE(r.valid) << r.problem;
}

// A private seed given where a public key belongs: the problem says so, and how to fix it.
// The checkpoints of a vector; from the `tamper_from`-th walk over them on (each walk starts
// from the smallest), the first one's signature broken.
class ChangingSource : public CheckpointSource {
 public:
  ChangingSource(std::vector<Checkpoint> checkpoints, int tamper_from)
      : checkpoints_(std::move(checkpoints)), tamper_from_(tamper_from) {}

  absl::StatusOr<std::vector<Checkpoint>> Page(std::optional<uint64_t> after_size,
                                               size_t limit) override {
    if (!error_.ok()) return error_;
    if (!after_size.has_value()) ++walks_;
    std::vector<Checkpoint> out;
    for (const Checkpoint& c : checkpoints_) {
      if (out.size() < limit && (!after_size.has_value() || c.tree_size > *after_size)) {
        out.push_back(c);
      }
    }
    if (walks_ >= tamper_from_ && !out.empty() && out[0].tree_size == checkpoints_[0].tree_size) {
      out[0].signature[0] ^= 1;
    }
    return out;
  }

  absl::Status error_;

 private:
  std::vector<Checkpoint> checkpoints_;
  const int tamper_from_;
  int walks_ = 0;
};

TEST_F(VerifierTest, ACheckpointChangedAfterItWasFirstReadIsCheckedAgain) {
  ChangingSource source(checkpoints_, 2);
  LedgerVerifier verifier(kLedger, CheckpointKeys({signer_->public_key()}), &source);
  for (const Entry& e : entries_) {
    if (!verifier.Add(e)) break;
  }
  IntegrityReport r = verifier.Finish().value();
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 0u);
  EXPECT_THAT(r.problem, HasSubstr("the checkpoint of size 16 does not carry a valid signature"));

  ChangingSource intact(checkpoints_, 1'000);
  LedgerVerifier again(kLedger, CheckpointKeys({signer_->public_key()}), &intact);
  for (const Entry& e : entries_) ASSERT_TRUE(again.Add(e));
  r = again.Finish().value();
  EXPECT_TRUE(r.valid) << r.problem;
  EXPECT_EQ(r.checkpoints_checked, 2u);
}

TEST_F(VerifierTest, ASourceThatCannotBeReadIsTheVerdictsStatus) {
  ChangingSource source(checkpoints_, 1'000);
  LedgerVerifier verifier(kLedger, CheckpointKeys({signer_->public_key()}), &source);
  // Read once through on construction; then alongside the entries, from the first.
  source.error_ = absl::UnavailableError("database down");
  EXPECT_FALSE(verifier.Add(entries_[0]));
  EXPECT_EQ(verifier.Finish().status().code(), absl::StatusCode::kUnavailable);
}

// More checkpoints than a page: each is checked once, a trusted one among them too.
TEST(VerifierPagesTest, CheckpointsBeyondAPageAreEachCheckedOnce) {
  const LedgerRef ledger{"proj-prod", "production"};
  std::unique_ptr<CheckpointSigner> signer =
      CheckpointSigner::Create(std::string(32, '\x05')).value();
  const uint64_t n = 2 * LedgerVerifier::kCheckpointPage + 100;
  std::vector<Entry> entries;
  std::vector<Checkpoint> checkpoints;
  CompactTree tree;
  for (uint64_t i = 0; i < n; ++i) {
    Entry e;
    e.ledger = ledger;
    e.index = i;
    e.time = absl::FromUnixSeconds(1'800'000'000);
    e.action = Action::kApiCall;
    e.actor = SealedSubject{std::string(32, 'a'), "sealed"};
    e.request_id = absl::StrCat("r", i);
    e.leaf_hash = EntryLeafHash(e);
    tree.Append(e.leaf_hash, &e.completed);
    entries.push_back(std::move(e));
    checkpoints.push_back(signer->Sign(ledger, tree.size(), tree.Root(), absl::Now()).value());
  }
  const Checkpoint stored = checkpoints[1500 - 1];
  Checkpoint other = signer->Sign(ledger, 1500, tree.Root(), absl::Now()).value();
  auto verify = [&](std::optional<Checkpoint> trusted) {
    LedgerVerifier verifier(ledger, CheckpointKeys({signer->public_key()}), checkpoints,
                            std::move(trusted));
    for (const Entry& e : entries) {
      if (!verifier.Add(e)) break;
    }
    return verifier.Finish().value();
  };
  IntegrityReport r = verify(stored);
  EXPECT_TRUE(r.valid) << r.problem;
  EXPECT_EQ(r.checkpoints_checked, n);
  // A trusted checkpoint of a size stored with another root: checked after the stored one.
  r = verify(other);
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 1500u);
  EXPECT_THAT(r.problem, HasSubstr("differs from the trusted checkpoint"));
  // Entries missing past a page: named by the next checkpoint.
  entries.resize(1200);
  r = verify(std::nullopt);
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 1200u);
  EXPECT_THAT(r.problem, HasSubstr("a checkpoint of size 1201 was signed"));
}

TEST(CheckpointKeysTest, ASeedGivenAsAPublicKeyIsNamed) {
  auto current = CheckpointSigner::Create(std::string(32, '\x05')).value();
  auto earlier = CheckpointSigner::Create(std::string(32, '\x06')).value();
  const Checkpoint c = earlier->Sign(kLedger, 3, Hash{}, absl::FromUnixSeconds(5)).value();
  const std::string seed(32, '\x06');
  absl::Status s = CheckpointKeys({current->public_key(), seed}).SignerOf(c).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(s.message(),
              HasSubstr(absl::StrCat("trusted key ", KeyIdOf(seed), " is the private seed of key ",
                                     earlier->key_id(), ", not its public key")));
  // Any unknown key: the keys are public keys, and where to find one.
  s = CheckpointKeys({current->public_key()}).SignerOf(c).status();
  EXPECT_THAT(s.message(),
              HasSubstr("are Ed25519 public keys of 64 hex digits, not private seeds"));
  EXPECT_THAT(s.message(), HasSubstr("checkpoint signing key"));
  EXPECT_TRUE(CheckpointKeys({current->public_key(), earlier->public_key()}).SignerOf(c).ok());
}

TEST(CheckpointKeysTest, ParsesHexListsAndNamesTheBadEntry) {
  const std::string a(64, 'a'), b = std::string(63, '0') + "F";
  EXPECT_THAT(CheckpointKeys::ParseHexList("", "keys").value(), ::testing::IsEmpty());
  EXPECT_EQ(CheckpointKeys::ParseHexList(absl::StrCat(" ", a, " , ", b), "keys").value(),
            (std::vector<std::string>{std::string(32, '\xaa'),
                                      std::string(31, '\0') + std::string(1, '\x0f')}));
  for (const std::string& bad : {absl::StrCat(a, ",", a.substr(1)), absl::StrCat(a, ","),
                                 absl::StrCat(a, ",", std::string(64, 'g'))}) {
    absl::Status s = CheckpointKeys::ParseHexList(bad, "previous_public_keys").status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(s.message(), HasSubstr("previous_public_keys: entry 2 (")) << bad;
    if (bad.size() > 65) {
      EXPECT_THAT(s.message(), ::testing::Not(HasSubstr(bad.substr(65))));
    }
  }
}

TEST(CheckpointTest, NoteNamesEveryFieldAndSignaturesCoverIt) {
  auto signer = CheckpointSigner::Create(std::string(32, '\x01')).value();
  Hash root{};
  root[0] = '\x7f';
  Checkpoint c = signer->Sign(kLedger, 42, root, absl::FromUnixMicros(5)).value();
  EXPECT_EQ(CheckpointNote(c),
            absl::StrCat("policy-suite audit checkpoint v1\nledger proj-prod production\n"
                         "size 42\nroot 7f",
                         std::string(62, '0'), "\ntime 5\n"));
  EXPECT_TRUE(VerifyCheckpoint(c, signer->public_key()));
  EXPECT_EQ(c.key_id, KeyIdOf(signer->public_key()));
  Checkpoint changed = c;
  changed.tree_size = 43;
  EXPECT_FALSE(VerifyCheckpoint(changed, signer->public_key()));
  changed = c;
  changed.time += absl::Microseconds(1);
  EXPECT_FALSE(VerifyCheckpoint(changed, signer->public_key()));
  EXPECT_EQ(CheckpointSigner::Create("short").status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace policy::audit
