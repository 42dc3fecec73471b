#include "services/keys/key_lifecycle.h"

#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/clock/clock.h"
#include "common/paging/page_token.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/keys/api_key.h"
#include "services/keys/keys_test_util.h"
#include "services/keys/memory_key_store.h"

namespace policy::keys {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

class KeyLifecycleTest : public ::testing::Test {
 protected:
  KeyLifecycleTest()
      : pepper_(TestPepper()), lifecycle_(&store_, pepper_.get(), &clock_, KeyPolicy{}) {}

  static CreateKeyParams Params(std::string owner = "alice", std::string project = "proj-dev") {
    CreateKeyParams params;
    params.kind = KeyKind::kProject;
    params.owner = {PrincipalType::kMember, std::move(owner)};
    params.project = std::move(project);
    params.environment = Environment::kDevelopment;
    params.scopes = {"embeddings", "chat.completions"};
    return params;
  }

  IssuedKey MustCreate(CreateKeyParams params) {
    absl::StatusOr<IssuedKey> issued = lifecycle_.Create(params);
    EXPECT_TRUE(issued.ok()) << issued.status();
    return issued.ok() ? *issued : IssuedKey{};
  }

  absl::StatusCode CreateCode(const CreateKeyParams& params) {
    return lifecycle_.Create(params).status().code();
  }

  FakeClock clock_;
  MemoryKeyStore store_{&clock_};
  std::unique_ptr<Pepper> pepper_;
  KeyLifecycle lifecycle_;
};

TEST_F(KeyLifecycleTest, CreateStoresOnlyAHashAndARedactedForm) {
  IssuedKey issued = MustCreate(Params());
  absl::StatusOr<KeyRecord> stored = store_.Get(issued.key.key_id);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->secret_hash, pepper_->HashSecret(ParseSecret(issued.secret)->random_part));
  EXPECT_EQ(stored->secret_hash.size(), 32u);
  EXPECT_EQ(stored->redacted, RedactSecret(issued.secret));
  EXPECT_THAT(stored->scopes, ElementsAre("chat.completions", "embeddings"));  // Sorted.
  EXPECT_EQ(stored->expires_at, clock_.Now() + KeyPolicy{}.default_ttl);
  EXPECT_THAT(OutboxActions(store_), ElementsAre("KEY_CREATED"));
}

TEST_F(KeyLifecycleTest, EachChangeRecordsWhoMadeIt) {
  CreateKeyParams params = Params();
  params.actor = "alice";
  IssuedKey created = MustCreate(params);
  RotateKeyParams rotation{"", created.key.key_id, {}, {}};
  rotation.actor = "dan";
  absl::StatusOr<RotatedKey> rotated = lifecycle_.Rotate(rotation);
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  ASSERT_TRUE(lifecycle_.Revoke(rotated->new_key.key.key_id, "lost", "erin").ok());
  ASSERT_TRUE(lifecycle_.RevokePrincipal("off", {PrincipalType::kMember, "alice"}, "", "dan").ok());
  MustCreate(Params());  // Nobody named: the service.
  std::vector<std::string> actors;
  for (const ledger::LedgerRecord& r : OutboxRecords(store_)) {
    actors.push_back(absl::StrCat(r.action, " ", r.actor));
  }
  EXPECT_THAT(actors,
              ElementsAre("KEY_CREATED alice", "KEY_ROTATED dan", "KEY_CREATED dan",
                          "KEY_REVOKED erin", "KEY_REVOKED dan", "KEY_CREATED keys-service"));
  // An actor is a member's id.
  params.actor = "has space";
  absl::Status status = lifecycle_.Create(params).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("actor"));
  EXPECT_EQ(lifecycle_.Revoke(created.key.key_id, "", std::string(200, 'a')).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(KeyLifecycleTest, CreateValidatesEveryField) {
  auto expect_invalid = [&](CreateKeyParams params, const std::string& field) {
    absl::Status status = lifecycle_.Create(params).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << field;
    EXPECT_THAT(status.message(), HasSubstr(field));
  };
  CreateKeyParams p = Params();
  p.owner.id = "";
  expect_invalid(p, "owner.id");
  p = Params();
  p.owner.id = "has space";
  expect_invalid(p, "owner.id");
  p = Params();
  p.owner.type = PrincipalType::kServiceAccount;
  expect_invalid(p, "owner.type");
  p = Params();
  p.project = "";
  expect_invalid(p, "project");
  p = Params();
  p.kind = KeyKind::kAdmin;
  expect_invalid(p, "project");
  p = Params();
  p.scopes = {"Chat"};
  expect_invalid(p, "scopes");
  p = Params();
  p.scopes = std::vector<std::string>(33, "a");
  expect_invalid(p, "scopes");
  p = Params();
  p.request_id = "has space";
  expect_invalid(p, "request_id");
  p = Params();
  p.ttl = absl::Hours(1);
  p.expires_at = clock_.Now() + absl::Hours(2);
  expect_invalid(p, "at most one");
  p = Params();
  p.expires_at = clock_.Now() - absl::Seconds(1);
  expect_invalid(p, "expire_time");
  p = Params();
  p.expires_at = clock_.Now();
  expect_invalid(p, "expire_time");
  p = Params();
  p.ttl = KeyPolicy{}.max_ttl + absl::Seconds(1);
  expect_invalid(p, "maximum");
  p = Params();
  p.ttl = absl::ZeroDuration();
  expect_invalid(p, "ttl");
  EXPECT_THAT(OutboxRecords(store_), IsEmpty());
}

// A lifetime under a second is a mistake (a unit dropped: 1 ns, 500 ms), never a key: refused
// on create and rotate, naming the field and the minimum; one second is the shortest key.
TEST_F(KeyLifecycleTest, LifetimesUnderASecondAreRefused) {
  for (absl::Duration ttl : {absl::Nanoseconds(1), absl::Microseconds(1), absl::Milliseconds(999),
                             absl::Seconds(1) - absl::Nanoseconds(1)}) {
    CreateKeyParams p = Params();
    p.ttl = ttl;
    absl::Status status = lifecycle_.Create(p).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << ttl;
    EXPECT_EQ(status.message(), "ttl must be at least 1s") << ttl;

    p = Params();
    p.expires_at = clock_.Now() + ttl;
    status = lifecycle_.Create(p).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << ttl;
    EXPECT_EQ(status.message(), "expire_time must be at least 1s from now") << ttl;
  }
  EXPECT_THAT(OutboxRecords(store_), IsEmpty());

  CreateKeyParams one_second = Params();
  one_second.ttl = absl::Seconds(1);
  IssuedKey shortest = MustCreate(one_second);
  EXPECT_EQ(shortest.key.expires_at - shortest.key.created_at, absl::Seconds(1));
  one_second = Params();
  one_second.expires_at = clock_.Now() + absl::Seconds(1);
  MustCreate(one_second);

  IssuedKey key = MustCreate(Params());
  for (absl::Duration ttl : {absl::Nanoseconds(1), absl::Milliseconds(500)}) {
    absl::Status status = lifecycle_.Rotate({"", key.key.key_id, {}, ttl}).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << ttl;
    EXPECT_EQ(status.message(), "ttl must be at least 1s and at most 8760h") << ttl;
  }
  absl::StatusOr<RotatedKey> rotated =
      lifecycle_.Rotate({"", key.key.key_id, {}, absl::Seconds(1)});
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  EXPECT_EQ(rotated->new_key.key.expires_at - rotated->new_key.key.created_at, absl::Seconds(1));
}

TEST_F(KeyLifecycleTest, ExpiryAtTheMaximumIsAccepted) {
  CreateKeyParams p = Params();
  p.expires_at = clock_.Now() + KeyPolicy{}.max_ttl;
  EXPECT_TRUE(lifecycle_.Create(p).ok());
}

TEST_F(KeyLifecycleTest, RetriedCreateReturnsTheFirstKeyAndSecret) {
  CreateKeyParams p = Params();
  p.request_id = "req-1";
  IssuedKey first = MustCreate(p);
  clock_.Advance(absl::Minutes(5));
  IssuedKey second = MustCreate(p);
  EXPECT_EQ(second.key.key_id, first.key.key_id);
  EXPECT_EQ(second.secret, first.secret);
  EXPECT_THAT(lifecycle_.List({})->keys, SizeIs(1));
  EXPECT_THAT(OutboxActions(store_), ElementsAre("KEY_CREATED"));

  p.project = "proj-other";
  absl::Status reused = lifecycle_.Create(p).status();
  EXPECT_EQ(reused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(reused.message(), HasSubstr("req-1"));
}

TEST_F(KeyLifecycleTest, ConcurrentRetriesCreateOneKey) {
  CreateKeyParams p = Params();
  p.request_id = "req-concurrent";
  std::vector<std::string> secrets(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<IssuedKey> issued = lifecycle_.Create(p);
      if (issued.ok()) secrets[i] = issued->secret;
    });
  }
  for (auto& t : threads) t.join();
  for (const std::string& s : secrets) EXPECT_EQ(s, secrets[0]);
  EXPECT_FALSE(secrets[0].empty());
  EXPECT_THAT(lifecycle_.List({})->keys, SizeIs(1));
}

TEST_F(KeyLifecycleTest, RequestIdsAreForgottenAfterTheWindow) {
  CreateKeyParams p = Params();
  p.request_id = "req-window";
  IssuedKey first = MustCreate(p);
  clock_.Advance(KeyPolicy{}.idempotency_window + absl::Seconds(1));
  ASSERT_TRUE(lifecycle_.Sweep().ok());
  IssuedKey second = MustCreate(p);
  EXPECT_NE(second.key.key_id, first.key.key_id);
}

TEST_F(KeyLifecycleTest, RotateCreatesASuccessorWithTheSameGrant) {
  CreateKeyParams p = Params();
  p.ttl = absl::Hours(24 * 60);
  IssuedKey old_key = MustCreate(p);
  clock_.Advance(absl::Hours(24 * 50));
  absl::StatusOr<RotatedKey> rotated = lifecycle_.Rotate({"", old_key.key.key_id, {}, {}});
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  const KeyRecord& successor = rotated->new_key.key;
  EXPECT_EQ(rotated->old_key.state, KeyState::kRotating);
  EXPECT_EQ(rotated->old_key.overlap_ends_at, clock_.Now() + absl::Hours(24));
  EXPECT_EQ(rotated->old_key.rotated_to, successor.key_id);
  EXPECT_EQ(successor.rotated_from, old_key.key.key_id);
  EXPECT_EQ(successor.owner, old_key.key.owner);
  EXPECT_EQ(successor.project, old_key.key.project);
  EXPECT_EQ(successor.scopes, old_key.key.scopes);
  // Same lifetime as the old key by default.
  EXPECT_EQ(successor.expires_at, clock_.Now() + absl::Hours(24 * 60));
  EXPECT_THAT(OutboxActions(store_), ElementsAre("KEY_CREATED", "KEY_ROTATED", "KEY_CREATED"));
}

TEST_F(KeyLifecycleTest, OverlapNeverOutlivesTheOldKeysExpiry) {
  CreateKeyParams p = Params();
  p.ttl = absl::Hours(2);
  IssuedKey old_key = MustCreate(p);
  absl::StatusOr<RotatedKey> rotated = lifecycle_.Rotate({"", old_key.key.key_id, {}, {}});
  ASSERT_TRUE(rotated.ok());
  EXPECT_EQ(rotated->old_key.overlap_ends_at, old_key.key.expires_at);
}

TEST_F(KeyLifecycleTest, ExpiredKeysDoNotRotate) {
  CreateKeyParams p = Params();
  p.ttl = absl::Hours(1);
  IssuedKey key = MustCreate(p);
  clock_.Advance(absl::Hours(1));
  absl::Status status = lifecycle_.Rotate({"", key.key.key_id, {}, {}}).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("expired"));
  EXPECT_THAT(lifecycle_.List({})->keys, SizeIs(1));
}

TEST_F(KeyLifecycleTest, AnOverlapRunningToExpiryIsNotSweptAsRevoked) {
  CreateKeyParams p = Params();
  p.ttl = absl::Hours(2);
  IssuedKey key = MustCreate(p);
  ASSERT_TRUE(lifecycle_.Rotate({"", key.key.key_id, absl::Hours(24), {}}).ok());
  clock_.Advance(absl::Hours(3));
  ASSERT_TRUE(lifecycle_.Sweep().ok());
  KeyRecord old_key = *store_.Get(key.key.key_id);
  EXPECT_EQ(old_key.state, KeyState::kRotating);                  // Stored as it was ...
  EXPECT_EQ(StateAt(old_key, clock_.Now()), KeyState::kExpired);  // ... and simply expired.
  std::vector<std::string> actions = OutboxActions(store_);
  EXPECT_EQ(std::count(actions.begin(), actions.end(), "KEY_OVERLAP_ENDED"), 0);
}

TEST_F(KeyLifecycleTest, SweepRevokesEndedOverlapsOnce) {
  IssuedKey old_key = MustCreate(Params());
  ASSERT_TRUE(lifecycle_.Rotate({"", old_key.key.key_id, absl::Hours(1), {}}).ok());
  ASSERT_TRUE(lifecycle_.Sweep().ok());
  EXPECT_EQ(store_.Get(old_key.key.key_id)->state, KeyState::kRotating);
  clock_.Advance(absl::Hours(1));
  ASSERT_TRUE(lifecycle_.Sweep().ok());
  ASSERT_TRUE(lifecycle_.Sweep().ok());
  KeyRecord swept = *store_.Get(old_key.key.key_id);
  EXPECT_EQ(swept.state, KeyState::kRevoked);
  EXPECT_EQ(swept.revocation_reason, kReasonOverlapEnded);
  EXPECT_EQ(swept.revoked_at, clock_.Now());
  std::vector<std::string> actions = OutboxActions(store_);
  EXPECT_EQ(std::count(actions.begin(), actions.end(), "KEY_OVERLAP_ENDED"), 1);
}

TEST_F(KeyLifecycleTest, RotateRefusesWhatCannotRotate) {
  IssuedKey key = MustCreate(Params());
  ASSERT_TRUE(lifecycle_.Rotate({"", key.key.key_id, {}, {}}).ok());
  absl::Status again = lifecycle_.Rotate({"", key.key.key_id, {}, {}}).status();
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(again.message(), HasSubstr("already rotated"));

  IssuedKey revoked = MustCreate(Params());
  ASSERT_TRUE(lifecycle_.Revoke(revoked.key.key_id, "").ok());
  EXPECT_EQ(lifecycle_.Rotate({"", revoked.key.key_id, {}, {}}).status().code(),
            absl::StatusCode::kFailedPrecondition);

  EXPECT_EQ(lifecycle_.Rotate({"", "key_00000000000000000", {}, {}}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(lifecycle_.Rotate({"", "nope", {}, {}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(lifecycle_.Rotate({"", key.key.key_id, absl::Hours(24 * 8), {}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(lifecycle_.Rotate({"", key.key.key_id, -absl::Hours(1), {}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(KeyLifecycleTest, ConcurrentRotationsExactlyOneWins) {
  IssuedKey key = MustCreate(Params());
  std::atomic<int> won{0}, refused{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      absl::Status status = lifecycle_.Rotate({"", key.key.key_id, {}, {}}).status();
      if (status.ok()) ++won;
      if (status.code() == absl::StatusCode::kFailedPrecondition) ++refused;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(won.load(), 1);
  EXPECT_EQ(refused.load(), 7);
  EXPECT_THAT(lifecycle_.List({})->keys, SizeIs(2));
}

TEST_F(KeyLifecycleTest, RetriedRotationReturnsTheFirstSuccessor) {
  IssuedKey key = MustCreate(Params());
  absl::StatusOr<RotatedKey> first = lifecycle_.Rotate({"rot-1", key.key.key_id, {}, {}});
  absl::StatusOr<RotatedKey> second = lifecycle_.Rotate({"rot-1", key.key.key_id, {}, {}});
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->new_key.key.key_id, first->new_key.key.key_id);
  EXPECT_EQ(second->new_key.secret, first->new_key.secret);
  EXPECT_THAT(lifecycle_.List({})->keys, SizeIs(2));
}

TEST_F(KeyLifecycleTest, ConcurrentRetriesOfOneRotationAllGetTheFirstResult) {
  IssuedKey key = MustCreate(Params());
  std::vector<std::string> successors(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      absl::StatusOr<RotatedKey> rotated = lifecycle_.Rotate({"rot-same", key.key.key_id, {}, {}});
      if (rotated.ok()) successors[i] = rotated->new_key.secret;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_FALSE(successors[0].empty());
  for (const std::string& s : successors) EXPECT_EQ(s, successors[0]);
  EXPECT_THAT(lifecycle_.List({})->keys, SizeIs(2));
}

TEST_F(KeyLifecycleTest, RequestsPastTheWindowAreNotReplayedEvenBeforeASweep) {
  CreateKeyParams p = Params();
  p.request_id = "req-stale";
  IssuedKey first = MustCreate(p);
  clock_.Advance(KeyPolicy{}.idempotency_window + absl::Seconds(1));
  absl::StatusOr<IssuedKey> again = lifecycle_.Create(p);
  EXPECT_FALSE(again.ok() && again->secret == first.secret);
}

TEST_F(KeyLifecycleTest, RevokeIsIdempotentAndKeepsTheFirstReason) {
  IssuedKey key = MustCreate(Params());
  auto first = lifecycle_.Revoke(key.key.key_id, "compromised");
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(first->second);
  clock_.Advance(absl::Minutes(1));
  auto second = lifecycle_.Revoke(key.key.key_id, "again");
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->second);
  EXPECT_EQ(second->first.revocation_reason, "compromised");
  EXPECT_EQ(lifecycle_.Revoke("key_00000000000000000", "").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(lifecycle_.Revoke(key.key.key_id, std::string(300, 'x')).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::vector<std::string> actions = OutboxActions(store_);
  EXPECT_EQ(std::count(actions.begin(), actions.end(), "KEY_REVOKED"), 1);
}

TEST_F(KeyLifecycleTest, AReasonQuotingTheSecretNeverStoresOrRecordsIt) {
  IssuedKey leaked = MustCreate(Params("alice"));
  IssuedKey other = MustCreate(Params("bob"));
  const std::string middle(ParseSecret(leaked.secret)->random_part);
  auto revoked = lifecycle_.Revoke(leaked.key.key_id, absl::StrCat("leaked: ", leaked.secret, "!"));
  ASSERT_TRUE(revoked.ok()) << revoked.status();
  EXPECT_EQ(revoked->first.revocation_reason,
            absl::StrCat("leaked: ", RedactSecret(leaked.secret), "!"));
  auto by_owner = lifecycle_.RevokePrincipal(
      "off-leak", {PrincipalType::kMember, "bob"},
      absl::StrCat("posted ", other.secret, " and ", leaked.secret, " in chat"));
  ASSERT_TRUE(by_owner.ok()) << by_owner.status();
  ASSERT_THAT(*by_owner, SizeIs(1));
  for (const std::string& reason :
       {store_.Get(leaked.key.key_id)->revocation_reason, (*by_owner)[0].revocation_reason}) {
    EXPECT_THAT(reason, ::testing::Not(HasSubstr(middle)));
    EXPECT_THAT(reason, ::testing::Not(HasSubstr(ParseSecret(other.secret)->random_part)));
  }
  for (const ledger::LedgerRecord& r : OutboxRecords(store_)) {
    for (const auto& [name, value] : r.metadata) {
      EXPECT_THAT(value, ::testing::Not(HasSubstr(middle))) << name;
      EXPECT_THAT(value, ::testing::Not(HasSubstr(ParseSecret(other.secret)->random_part)));
    }
  }
}

TEST_F(KeyLifecycleTest, RevokePrincipalRevokesOnlyTheirLiveKeys) {
  IssuedKey a1 = MustCreate(Params("alice"));
  IssuedKey a2 = MustCreate(Params("alice", "proj-prod"));
  IssuedKey a3 = MustCreate(Params("alice"));
  ASSERT_TRUE(lifecycle_.Revoke(a3.key.key_id, "").ok());
  IssuedKey b1 = MustCreate(Params("bob"));
  ASSERT_TRUE(lifecycle_.Rotate({"", a2.key.key_id, {}, {}}).ok());  // a2 rotating + successor.

  auto revoked = lifecycle_.RevokePrincipal("off-1", {PrincipalType::kMember, "alice"}, "left");
  ASSERT_TRUE(revoked.ok()) << revoked.status();
  EXPECT_THAT(*revoked, SizeIs(3));  // a1, a2 (rotating) and a2's successor.
  for (const KeyRecord& key : *revoked) {
    EXPECT_EQ(key.owner.id, "alice");
    EXPECT_EQ(key.state, KeyState::kRevoked);
    EXPECT_EQ(key.revocation_reason, "left");
  }
  EXPECT_EQ(store_.Get(b1.key.key_id)->state, KeyState::kActive);
  // One revocation record per key, written with the revocation (the last three records).
  std::vector<ledger::LedgerRecord> records = OutboxRecords(store_);
  const size_t recorded = records.size();
  ASSERT_GE(recorded, 3u);
  records.erase(records.begin(), records.end() - 3);
  for (size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(records[i], LedgerRecordOf(RevokedEvent((*revoked)[i])));
    EXPECT_EQ(records[i].action, "KEY_REVOKED");
    EXPECT_EQ(records[i].metadata["reason"], "left");
    EXPECT_EQ(records[i].metadata["at"],
              absl::FormatTime(absl::RFC3339_full, clock_.Now(), absl::UTCTimeZone()));
  }

  auto retried = lifecycle_.RevokePrincipal("off-1", {PrincipalType::kMember, "alice"}, "left");
  ASSERT_TRUE(retried.ok());
  EXPECT_THAT(*retried, SizeIs(3));
  EXPECT_EQ(OutboxRecords(store_).size(), recorded);  // A replay records nothing.
  auto fresh = lifecycle_.RevokePrincipal("", {PrincipalType::kMember, "alice"}, "left");
  ASSERT_TRUE(fresh.ok());
  EXPECT_THAT(*fresh, IsEmpty());
}

TEST_F(KeyLifecycleTest, ListFiltersAndPaginates) {
  for (int i = 0; i < 7; ++i) {
    MustCreate(Params(i % 2 == 0 ? "alice" : "bob"));
    clock_.Advance(absl::Seconds(1));
  }
  ListKeysParams params;
  params.page_size = 3;
  std::vector<std::string> seen;
  do {
    absl::StatusOr<KeyListing> page = lifecycle_.List(params);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_LE(page->keys.size(), 3u);
    for (const KeyRecord& key : page->keys) seen.push_back(key.key_id);
    params.page_token = page->next_page_token;
  } while (!params.page_token.empty());
  EXPECT_THAT(seen, SizeIs(7));
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 7u);

  ListKeysParams alice;
  alice.owner = Principal{PrincipalType::kMember, "alice"};
  EXPECT_THAT(lifecycle_.List(alice)->keys, SizeIs(4));

  ListKeysParams first_page;
  first_page.page_size = 2;
  std::string token = lifecycle_.List(first_page)->next_page_token;
  alice.page_token = token;
  EXPECT_EQ(lifecycle_.List(alice).status().code(), absl::StatusCode::kInvalidArgument);
  ListKeysParams garbage;
  garbage.page_token = "not-a-token";
  EXPECT_EQ(lifecycle_.List(garbage).status().code(), absl::StatusCode::kInvalidArgument);
  // A token is opaque but not secret: one forged with an absurd position is refused.
  ListKeysParams forged;
  forged.page_token = paging::EncodePageToken(
      absl::StrCat("9223372036854775807:", lifecycle_.List(first_page)->keys.back().key_id),
      {"", "", "", "", "", ""});
  EXPECT_EQ(lifecycle_.List(forged).status().code(), absl::StatusCode::kInvalidArgument);
  ListKeysParams negative;
  negative.page_size = -1;
  EXPECT_EQ(lifecycle_.List(negative).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(KeyLifecycleTest, RotationReportFollowsTheSeed) {
  CreateKeyParams p = Params();
  p.ttl = absl::Hours(24 * 5) + absl::Hours(3);  // WARNING, 5 days remaining.
  IssuedKey warning = MustCreate(p);
  p.ttl = absl::Hours(24 * 40);  // Fine.
  MustCreate(p);
  p.ttl = absl::Hours(1);  // Will be CRITICAL.
  IssuedKey critical = MustCreate(p);
  p.ttl = absl::Hours(2);  // Rotated already: not reported.
  IssuedKey rotated = MustCreate(p);
  ASSERT_TRUE(
      lifecycle_.Rotate({"", rotated.key.key_id, absl::Hours(1), absl::Hours(24 * 30)}).ok());
  clock_.Advance(absl::Hours(2));

  absl::StatusOr<RotationReport> report = lifecycle_.GetRotationReport(std::nullopt);
  ASSERT_TRUE(report.ok());
  ASSERT_THAT(report->entries, SizeIs(2));
  EXPECT_EQ(report->entries[0].key.key_id, critical.key.key_id);
  EXPECT_EQ(report->entries[0].urgency, Urgency::kCritical);
  EXPECT_EQ(report->entries[0].days_remaining, -1);
  EXPECT_EQ(report->entries[1].key.key_id, warning.key.key_id);
  EXPECT_EQ(report->entries[1].urgency, Urgency::kWarning);
  EXPECT_EQ(report->entries[1].days_remaining, 5);
  EXPECT_EQ(report->warning_window, absl::Hours(24 * 7));
}

TEST_F(KeyLifecycleTest, InventoryCountsStatesAndAges) {
  IssuedKey a = MustCreate(Params());
  clock_.Advance(absl::Hours(24 * 3));
  IssuedKey b = MustCreate(Params("bob", "proj-prod"));
  ASSERT_TRUE(lifecycle_.Revoke(b.key.key_id, "").ok());
  clock_.Advance(absl::Hours(12));
  absl::StatusOr<InventoryReport> report = lifecycle_.GetInventoryReport(std::nullopt);
  ASSERT_TRUE(report.ok());
  ASSERT_THAT(report->entries, SizeIs(2));
  EXPECT_EQ(report->counts_by_state[KeyState::kActive], 1);
  EXPECT_EQ(report->counts_by_state[KeyState::kRevoked], 1);
  for (const auto& entry : report->entries) {
    EXPECT_EQ(entry.age_days, entry.key.key_id == a.key.key_id ? 3 : 0);
  }
  EXPECT_THAT(lifecycle_.GetInventoryReport(std::string("proj-prod"))->entries, SizeIs(1));
}

TEST_F(KeyLifecycleTest, BootstrapOnlyWithoutAnActiveAdminKey) {
  absl::StatusOr<IssuedKey> admin = lifecycle_.BootstrapAdmin({PrincipalType::kMember, "owner"});
  ASSERT_TRUE(admin.ok()) << admin.status();
  EXPECT_EQ(admin->key.kind, KeyKind::kAdmin);
  EXPECT_TRUE(admin->secret.starts_with("psk_admin_"));
  EXPECT_EQ(lifecycle_.BootstrapAdmin({PrincipalType::kMember, "owner"}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(lifecycle_.Revoke(admin->key.key_id, "lost").ok());
  EXPECT_TRUE(lifecycle_.BootstrapAdmin({PrincipalType::kMember, "owner"}).ok());
}

}  // namespace
}  // namespace policy::keys
