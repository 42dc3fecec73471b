// One suite, every KeyStore: the memory store always, PostgreSQL whenever a test database is
// configured (always in CI: POLICY_TEST_REQUIRE_PG=1 makes a missing one fatal).
#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "common/clock/clock.h"
#include "common/ledger/postgres_outbox.h"
#include "common/pg/migrations.h"
#include "common/pg/pool.h"
#include "common/pg/runtime_role_testing.h"
#include "common/pg/test_database.h"
#include "common/pg/values.h"
#include "common/testing/eventually.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/keys/keys_migrations.h"
#include "services/keys/keys_test_util.h"
#include "services/keys/memory_key_store.h"
#include "services/keys/postgres_key_store.h"

namespace policy::keys {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

// A store under test; `replica` gives a second store on the same data when the backend has
// replicas (nullptr otherwise).
struct Backend {
  std::unique_ptr<KeyStore> store;
  std::function<std::unique_ptr<KeyStore>()> replica;
  std::vector<std::shared_ptr<void>> keep_alive;
};

using BackendFactory = std::function<Backend(Clock*)>;

Backend MakeMemory(Clock* clock) {
  return Backend{std::make_unique<MemoryKeyStore>(clock), nullptr, {}};
}

Backend PostgresBackend(std::shared_ptr<pg::Pool> pool, Clock* clock) {
  Backend backend;
  backend.store = std::make_unique<PostgresKeyStore>(pool.get(), clock, absl::Milliseconds(50));
  backend.replica = [pool, clock] {
    return std::make_unique<PostgresKeyStore>(pool.get(), clock, absl::Milliseconds(50));
  };
  backend.keep_alive.push_back(pool);
  return backend;
}

Backend MakePostgres(Clock* clock) {
  // value() throws on failure, which fails the test with the status.
  return PostgresBackend(
      pg::TestDatabase::Get()->Reset("keys", Migrations(), kResetKeysSql).value(), clock);
}

// The store logged in as the service's runtime role (migration 004), as tools/dev and the
// chart's production example run it.
Backend MakePostgresRuntime(Clock* clock) {
  return PostgresBackend(
      pg::TestDatabase::Get()->ResetAsRuntime("keys", Migrations(), kResetKeysSql).value(), clock);
}

class RecordingObserver : public KeyStoreObserver {
 public:
  void OnReset(std::vector<KeyRecord> keys) override {
    absl::MutexLock lock(&mu_);
    ++resets_;
    current_.clear();
    for (KeyRecord& k : keys) current_[k.key_id] = std::move(k);
  }
  void OnChanged(std::vector<KeyRecord> keys) override {
    absl::MutexLock lock(&mu_);
    for (KeyRecord& k : keys) current_[k.key_id] = std::move(k);
  }
  void OnInSync(absl::Time as_of) override {
    absl::MutexLock lock(&mu_);
    in_sync_.push_back(as_of);
  }
  // Waits (bounded) until `predicate` holds over the current view.
  bool WaitFor(const std::function<bool(const std::map<std::string, KeyRecord>&)>& predicate,
               absl::Duration timeout = absl::Seconds(5)) {
    absl::MutexLock lock(&mu_);
    auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return predicate(current_); };
    return mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
  }
  // Waits (bounded) until the store has reported itself in sync at least once.
  bool WaitForInSync(absl::Duration timeout = absl::Seconds(10)) {
    absl::MutexLock lock(&mu_);
    auto reported = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !in_sync_.empty(); };
    return mu_.AwaitWithTimeout(absl::Condition(&reported), timeout);
  }
  std::vector<absl::Time> in_sync() {
    absl::MutexLock lock(&mu_);
    return in_sync_;
  }
  int resets() {
    absl::MutexLock lock(&mu_);
    return resets_;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, KeyRecord> current_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Time> in_sync_ ABSL_GUARDED_BY(mu_);
  int resets_ ABSL_GUARDED_BY(mu_) = 0;
};

// The database server's clock_timestamp(), to the microsecond.
absl::Time DatabaseNow() {
  pqxx::connection c(pg::TestDatabase::Get()->url());
  pqxx::nontransaction tx(c);
  return absl::FromUnixMicros(
      tx.exec1("SELECT " POLICY_PG_US("clock_timestamp()"))[0].as<int64_t>());
}

class KeyStoreConformanceTest
    : public ::testing::TestWithParam<std::pair<std::string, BackendFactory>> {
 protected:
  void SetUp() override {
    if (postgres() && pg::TestDatabase::Get() == nullptr) {
      GTEST_SKIP() << "POLICY_TEST_PG_URL is not set";
    }
    if (GetParam().first == "postgres_runtime" &&
        pg::TestDatabase::Get()->RuntimeUrl("keys").empty()) {
      GTEST_SKIP() << "POLICY_TEST_PG_KEYS_RUNTIME_URL is not set";
    }
    backend_ = GetParam().second(&clock_);
    store_ = backend_.store.get();
  }
  void TearDown() override {
    if (store_ != nullptr) store_->StopWatching();
  }
  bool postgres() const { return absl::StartsWith(GetParam().first, "postgres"); }

  // Sets the test's clock to the store's, by which RevokeEndedOverlaps judges: the database
  // server's for PostgreSQL; the memory store reads clock_ itself.
  void SetClockToTheStores() {
    if (!postgres()) return;
    clock_.Set(DatabaseNow());
  }

  KeyRecord NewKey(const std::string& suffix, const std::string& owner = "alice",
                   const std::string& project = "proj-dev") {
    KeyRecord key;
    key.key_id = "key_" + std::string(17 - suffix.size(), '0') + suffix;
    key.kind = KeyKind::kProject;
    key.owner = {PrincipalType::kMember, owner};
    key.project = project;
    key.environment = Environment::kStaging;
    key.scopes = {"chat.completions", "embeddings"};
    key.secret_hash = std::string(32, static_cast<char>(suffix.size()));
    key.secret_hash[0] = '\0';  // Binary-safe.
    key.redacted = "psk_proj_...abcd";
    key.state = KeyState::kActive;
    key.created_at = clock_.Now() + absl::Microseconds(counter_++);
    key.expires_at = clock_.Now() + absl::Hours(24 * 30);
    return key;
  }

  IdempotencyRecord Request(const std::string& id, std::vector<std::string> key_ids = {}) {
    return IdempotencyRecord{id,
                             "create",
                             std::string("\x01\x02fp", 4),
                             std::move(key_ids),
                             std::string("\0sealed", 7),
                             clock_.Now()};
  }

  FakeClock clock_{absl::FromUnixMicros(1'800'000'000'123'456)};
  RecordingObserver observer_;  // Outlives the watch, which TearDown stops.
  Backend backend_;
  KeyStore* store_ = nullptr;
  int counter_ = 0;
};

TEST_P(KeyStoreConformanceTest, InsertThenGetRoundTripsEveryField) {
  KeyRecord key = NewKey("1");
  key.overlap_ends_at = clock_.Now() + absl::Microseconds(7);
  key.state = KeyState::kRotating;
  key.rotated_from = "key_00000000000000009";
  key.rotated_to = "key_00000000000000008";
  ASSERT_TRUE(store_->Insert(key, std::nullopt, "").ok());
  absl::StatusOr<KeyRecord> got = store_->Get(key.key_id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, key);

  KeyRecord revoked = NewKey("2");
  revoked.state = KeyState::kRevoked;
  revoked.revoked_at = clock_.Now();
  revoked.revocation_reason = "because";
  revoked.kind = KeyKind::kAdmin;
  revoked.project = "";
  revoked.scopes = {};
  ASSERT_TRUE(store_->Insert(revoked, std::nullopt, "").ok());
  EXPECT_EQ(*store_->Get(revoked.key_id), revoked);
}

TEST_P(KeyStoreConformanceTest, GetUnknownIsNotFound) {
  EXPECT_EQ(store_->Get("key_0000000000000000x").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(KeyStoreConformanceTest, DuplicatesAreRefusedAndWriteNothing) {
  KeyRecord key = NewKey("1");
  ASSERT_TRUE(store_->Insert(key, Request("r1", {key.key_id}), "").ok());
  EXPECT_EQ(store_->Insert(key, std::nullopt, "").code(), absl::StatusCode::kAlreadyExists);
  KeyRecord other = NewKey("2");
  EXPECT_EQ(store_->Insert(other, Request("r1", {other.key_id}), "").code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->Get(other.key_id).status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<std::optional<IdempotencyRecord>> request = store_->GetRequest("r1");
  ASSERT_TRUE(request.ok());
  ASSERT_TRUE(request->has_value());
  EXPECT_EQ(**request, Request("r1", {key.key_id}));
  EXPECT_FALSE(store_->GetRequest("r2")->has_value());
}

TEST_P(KeyStoreConformanceTest, RotateMovesTheOldKeyAndInsertsTheSuccessor) {
  KeyRecord old_key = NewKey("1");
  ASSERT_TRUE(store_->Insert(old_key, std::nullopt, "").ok());
  KeyRecord successor = NewKey("2");
  successor.rotated_from = old_key.key_id;
  const absl::Time overlap_end = clock_.Now() + absl::Hours(24);
  absl::StatusOr<KeyRecord> updated =
      store_->Rotate(old_key.key_id, overlap_end, successor, Request("rot", {"a", "b"}), "");
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->state, KeyState::kRotating);
  EXPECT_EQ(updated->overlap_ends_at, overlap_end);
  EXPECT_EQ(updated->rotated_to, successor.key_id);
  EXPECT_EQ(*store_->Get(old_key.key_id), *updated);
  EXPECT_EQ(*store_->Get(successor.key_id), successor);
  EXPECT_TRUE(store_->GetRequest("rot")->has_value());

  // A rotating key does not rotate again, and nothing is written.
  KeyRecord third = NewKey("3");
  absl::Status again =
      store_->Rotate(old_key.key_id, overlap_end, third, std::nullopt, "").status();
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->Get(third.key_id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(
      store_->Rotate("key_0000000000000000x", overlap_end, third, std::nullopt, "").status().code(),
      absl::StatusCode::kNotFound);
}

TEST_P(KeyStoreConformanceTest, ConcurrentRotationsExactlyOneWins) {
  KeyRecord old_key = NewKey("1");
  ASSERT_TRUE(store_->Insert(old_key, std::nullopt, "").ok());
  std::vector<KeyRecord> successors;
  for (int i = 0; i < 8; ++i) successors.push_back(NewKey(absl::StrCat("s", i)));
  std::atomic<int> won{0}, refused{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      absl::Status s = store_
                           ->Rotate(old_key.key_id, clock_.Now() + absl::Hours(1), successors[i],
                                    std::nullopt, "")
                           .status();
      if (s.ok()) ++won;
      if (s.code() == absl::StatusCode::kFailedPrecondition) ++refused;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(won.load(), 1);
  EXPECT_EQ(refused.load(), 7);
  int stored = 0;
  for (const KeyRecord& s : successors) stored += store_->Get(s.key_id).ok();
  EXPECT_EQ(stored, 1);
}

TEST_P(KeyStoreConformanceTest, RevokeKeepsTheFirstRevocation) {
  KeyRecord key = NewKey("1");
  ASSERT_TRUE(store_->Insert(key, std::nullopt, "").ok());
  auto first = store_->Revoke(key.key_id, "compromised", clock_.Now(), "");
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(first->second);
  EXPECT_EQ(first->first.state, KeyState::kRevoked);
  auto second = store_->Revoke(key.key_id, "later", clock_.Now() + absl::Hours(1), "");
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->second);
  EXPECT_EQ(second->first.revocation_reason, "compromised");
  EXPECT_EQ(second->first.revoked_at, clock_.Now());
  EXPECT_EQ(store_->Revoke("key_0000000000000000x", "", clock_.Now(), "").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(KeyStoreConformanceTest, RevokeOwnedByTouchesOnlyThatOwnersLiveKeys) {
  KeyRecord a1 = NewKey("1", "alice"), a2 = NewKey("2", "alice"), b1 = NewKey("3", "bob");
  KeyRecord sa = NewKey("4", "alice");
  sa.owner.type = PrincipalType::kServiceAccount;  // Same id, other principal type.
  for (const KeyRecord& k : {a1, a2, b1, sa}) ASSERT_TRUE(store_->Insert(k, std::nullopt, "").ok());
  ASSERT_TRUE(store_->Revoke(a2.key_id, "earlier", clock_.Now(), "").ok());

  auto revoked = store_->RevokeOwnedBy({PrincipalType::kMember, "alice"}, "offboarded",
                                       clock_.Now(), Request("off"), "");
  ASSERT_TRUE(revoked.ok()) << revoked.status();
  ASSERT_THAT(*revoked, SizeIs(1));
  EXPECT_EQ((*revoked)[0].key_id, a1.key_id);
  EXPECT_EQ((*revoked)[0].revocation_reason, "offboarded");
  EXPECT_EQ(store_->Get(b1.key_id)->state, KeyState::kActive);
  EXPECT_EQ(store_->Get(sa.key_id)->state, KeyState::kActive);
  EXPECT_EQ(store_->Get(a2.key_id)->revocation_reason, "earlier");
  EXPECT_THAT((*store_->GetRequest("off"))->key_ids, ElementsAre(a1.key_id));

  EXPECT_EQ(
      store_->RevokeOwnedBy({PrincipalType::kMember, "bob"}, "x", clock_.Now(), Request("off"), "")
          .status()
          .code(),
      absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->Get(b1.key_id)->state, KeyState::kActive);
}

// Whether `count` sessions of this test's database wait for a lock, within 10 s. From
// pg_locks, which shows every role's sessions' locks (pg_stat_activity hides the wait events
// of the store's sessions when it logs in as another role than the watcher).
bool SessionsWaitForLocks(pqxx::connection& watcher, int count) {
  for (int i = 0; i < 1000; ++i) {
    pqxx::nontransaction tx(watcher);
    const int waiting =
        tx.exec(
              "SELECT count(DISTINCT l.pid) FROM pg_locks l JOIN pg_stat_activity a "
              "ON a.pid = l.pid WHERE a.datname = current_database() AND NOT l.granted")[0][0]
            .as<int>();
    if (waiting >= count) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST_P(KeyStoreConformanceTest, RevokeOwnedByRacingARotationLeavesNoLiveSuccessor) {
  if (!postgres()) GTEST_SKIP() << "the memory store is one critical section";
  KeyRecord old_key = NewKey("1", "alice");
  ASSERT_TRUE(store_->Insert(old_key, std::nullopt, "").ok());
  std::unique_ptr<KeyStore> replica = backend_.replica();
  KeyRecord successor = NewKey("2", "alice");
  successor.rotated_from = old_key.key_id;

  // A third session holds the old key's row, so the rotation (on this replica) and then the
  // revocation (on the other) both queue behind it.
  pqxx::connection holder(pg::TestDatabase::Get()->url());
  pqxx::connection watcher(pg::TestDatabase::Get()->url());
  auto hold = std::make_unique<pqxx::work>(holder);
  hold->exec_params("SELECT 1 FROM keys.api_keys WHERE key_id = $1 FOR UPDATE", old_key.key_id);
  absl::Status rotated;
  std::thread rotation([&] {
    rotated =
        store_->Rotate(old_key.key_id, clock_.Now() + absl::Hours(1), successor, std::nullopt, "")
            .status();
  });
  ASSERT_TRUE(SessionsWaitForLocks(watcher, 1));
  absl::StatusOr<std::vector<KeyRecord>> revoked;
  std::thread revocation([&] {
    revoked = replica->RevokeOwnedBy({PrincipalType::kMember, "alice"}, "offboarded", clock_.Now(),
                                     Request("off"), "");
  });
  ASSERT_TRUE(SessionsWaitForLocks(watcher, 2));
  hold->commit();
  rotation.join();
  revocation.join();

  ASSERT_TRUE(rotated.ok()) << rotated;
  ASSERT_TRUE(revoked.ok()) << revoked.status();
  std::vector<std::string> ids;
  for (const KeyRecord& k : *revoked) ids.push_back(k.key_id);
  EXPECT_THAT(ids, ::testing::UnorderedElementsAre(old_key.key_id, successor.key_id));
  EXPECT_EQ(store_->Get(successor.key_id)->state, KeyState::kRevoked);
  EXPECT_THAT((*store_->GetRequest("off"))->key_ids,
              ::testing::UnorderedElementsAre(old_key.key_id, successor.key_id));
}

TEST_P(KeyStoreConformanceTest, RevokeEndedOverlapsReturnsEachKeyOnce) {
  SetClockToTheStores();
  KeyRecord ends_now = NewKey("1"), ends_later = NewKey("2"), active = NewKey("3");
  for (const KeyRecord& k : {ends_now, ends_later, active}) {
    ASSERT_TRUE(store_->Insert(k, std::nullopt, "").ok());
  }
  ASSERT_TRUE(store_->Rotate(ends_now.key_id, clock_.Now(), NewKey("4"), std::nullopt, "").ok());
  ASSERT_TRUE(
      store_
          ->Rotate(ends_later.key_id, clock_.Now() + absl::Hours(1), NewKey("5"), std::nullopt, "")
          .ok());
  auto swept = store_->RevokeEndedOverlaps();
  ASSERT_TRUE(swept.ok()) << swept.status();
  ASSERT_THAT(*swept, SizeIs(1));
  EXPECT_EQ((*swept)[0].key_id, ends_now.key_id);
  EXPECT_EQ((*swept)[0].revoked_at, clock_.Now());
  EXPECT_EQ((*swept)[0].revocation_reason, kReasonOverlapEnded);
  EXPECT_THAT(*store_->RevokeEndedOverlaps(), IsEmpty());
  EXPECT_EQ(store_->Get(ends_later.key_id)->state, KeyState::kRotating);
}

TEST_P(KeyStoreConformanceTest, AnOverlapThatRanToExpiryIsNotRevoked) {
  SetClockToTheStores();
  KeyRecord key = NewKey("1");
  key.expires_at = clock_.Now() - absl::Hours(1);  // Both the expiry and the overlap passed.
  ASSERT_TRUE(store_->Insert(key, std::nullopt, "").ok());
  ASSERT_TRUE(store_->Rotate(key.key_id, key.expires_at, NewKey("2"), std::nullopt, "").ok());
  auto swept = store_->RevokeEndedOverlaps();
  ASSERT_TRUE(swept.ok()) << swept.status();
  EXPECT_THAT(*swept, IsEmpty());
  EXPECT_EQ(store_->Get(key.key_id)->state, KeyState::kRotating);
}

// Replicas whose clocks disagree with the store's sweep alike: one running an hour ahead
// does not cut a running overlap short, one running an hour behind still ends an ended one.
TEST_P(KeyStoreConformanceTest, SweepsJudgeByTheStoresClockNotTheReplicas) {
  SetClockToTheStores();
  const std::unique_ptr<Pepper> pepper = TestPepper();
  SkewedClock replica_clock(&clock_);
  KeyLifecycle replica(store_, pepper.get(), &replica_clock, KeyPolicy{});
  KeyRecord running = NewKey("1"), ended = NewKey("2"), just_ended = NewKey("3");
  for (const KeyRecord& k : {running, ended, just_ended}) {
    ASSERT_TRUE(store_->Insert(k, std::nullopt, "").ok());
  }
  ASSERT_TRUE(
      store_
          ->Rotate(running.key_id, clock_.Now() + absl::Minutes(30), NewKey("4"), std::nullopt, "")
          .ok());
  ASSERT_TRUE(
      store_->Rotate(ended.key_id, clock_.Now() - absl::Minutes(30), NewKey("5"), std::nullopt, "")
          .ok());
  ASSERT_TRUE(store_
                  ->Rotate(just_ended.key_id, clock_.Now() - absl::Seconds(1), NewKey("6"),
                           std::nullopt, "")
                  .ok());

  // An hour behind the database: the ended overlaps end all the same.
  replica_clock.set_skew(-absl::Hours(1));
  ASSERT_TRUE(replica.Sweep().ok());
  EXPECT_EQ(store_->Get(ended.key_id)->state, KeyState::kRevoked);
  EXPECT_EQ(store_->Get(just_ended.key_id)->state, KeyState::kRevoked);
  EXPECT_EQ(store_->Get(running.key_id)->state, KeyState::kRotating);
  // An hour ahead: the running overlap is not cut short. (So far ahead, the replica's verifier
  // fails closed meanwhile, --max_clock_skew; its sweep must not act on its clock either.)
  replica_clock.set_skew(absl::Hours(1));
  ASSERT_TRUE(replica.Sweep().ok());
  EXPECT_EQ(store_->Get(running.key_id)->state, KeyState::kRotating);
}

// Migration 006: keys.api_keys is never truncated, not even by its owner (the runtime role may
// not truncate at all): every replica's cache would go on verifying the removed keys.
TEST_P(KeyStoreConformanceTest, TruncatingTheKeysIsRefused) {
  if (GetParam().first != "postgres")
    GTEST_SKIP() << "by hand, as the tables' owner: one backend is enough";
  KeyRecord key = NewKey("1");
  ASSERT_TRUE(store_->Insert(key, std::nullopt, "").ok());
  pqxx::connection owner(pg::TestDatabase::Get()->url());
  for (const char* sql :
       {"TRUNCATE keys.api_keys", "TRUNCATE keys.requests, keys.api_keys, keys.ledger_outbox",
        "TRUNCATE TABLE ONLY keys.api_keys RESTART IDENTITY CASCADE"}) {
    pqxx::work tx(owner);
    try {
      tx.exec(sql);
      tx.commit();
      ADD_FAILURE() << sql << " was not refused";
    } catch (const pqxx::sql_error& e) {
      EXPECT_EQ(e.sqlstate(), "23001") << sql << ": " << e.what();
      EXPECT_THAT(e.what(), HasSubstr("keys.api_keys is never truncated")) << sql;
      EXPECT_THAT(e.what(), HasSubstr("revoke keys instead")) << sql;
    }
  }
  absl::StatusOr<KeyRecord> kept = store_->Get(key.key_id);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(*kept, key);
}

// Migration 006: a key only moves forward (active, rotating, then expired or revoked), as
// every replica's cache assumes, which ignores a key going back. An UPDATE by hand that would
// move one back is refused, in its stored state or in the state derived from it on the
// database's clock; forward changes by hand still go through.
TEST_P(KeyStoreConformanceTest, AKeyNeverGoesBack) {
  if (GetParam().first != "postgres")
    GTEST_SKIP() << "by hand, as the tables' owner: one backend is enough";
  SetClockToTheStores();
  KeyRecord revoked = NewKey("1"), rotating = NewKey("2"), expired = NewKey("3"),
            overlap_ended = NewKey("4"), live = NewKey("5");
  expired.expires_at = clock_.Now() - absl::Minutes(1);
  for (const KeyRecord& k : {revoked, rotating, expired, overlap_ended, live}) {
    ASSERT_TRUE(store_->Insert(k, std::nullopt, "").ok());
  }
  ASSERT_TRUE(store_->Revoke(revoked.key_id, "leaked", clock_.Now(), "").ok());
  ASSERT_TRUE(
      store_->Rotate(rotating.key_id, clock_.Now() + absl::Hours(1), NewKey("6"), std::nullopt, "")
          .ok());
  ASSERT_TRUE(store_
                  ->Rotate(overlap_ended.key_id, clock_.Now() - absl::Minutes(1), NewKey("7"),
                           std::nullopt, "")
                  .ok());

  const std::vector<std::pair<std::string, std::string>> going_back = {
      {revoked.key_id,
       "SET state = 'active', revoked_at = NULL, revocation_reason = '' WHERE key_id = $1"},
      {revoked.key_id,
       "SET state = 'rotating', revoked_at = NULL, overlap_ends_at = now() + interval '1 hour' "
       "WHERE key_id = $1"},
      {rotating.key_id,
       "SET state = 'active', overlap_ends_at = NULL, rotated_to = '' WHERE key_id = $1"},
      {expired.key_id, "SET expires_at = now() + interval '1 day' WHERE key_id = $1"},
      {overlap_ended.key_id, "SET overlap_ends_at = now() + interval '1 hour' WHERE key_id = $1"},
      {overlap_ended.key_id,
       "SET state = 'active', overlap_ends_at = NULL, rotated_to = '' WHERE key_id = $1"},
  };
  pqxx::connection owner(pg::TestDatabase::Get()->url());
  for (const auto& [key_id, set] : going_back) {
    const KeyRecord before = *store_->Get(key_id);
    pqxx::work tx(owner);
    try {
      tx.exec_params("UPDATE keys.api_keys " + set, key_id);
      tx.commit();
      ADD_FAILURE() << set << " was not refused";
    } catch (const pqxx::sql_error& e) {
      EXPECT_EQ(e.sqlstate(), "23001") << set << ": " << e.what();
      EXPECT_THAT(e.what(), HasSubstr("key " + key_id + " would go back")) << set;
      EXPECT_THAT(e.what(), HasSubstr("create a new key instead")) << set;
    }
    EXPECT_EQ(*store_->Get(key_id), before) << set;
  }

  pqxx::work tx(owner);
  EXPECT_EQ(tx.exec_params("UPDATE keys.api_keys SET state = 'revoked', revoked_at = now(), "
                           "revocation_reason = 'by hand' WHERE key_id IN ($1, $2, $3)",
                           rotating.key_id, expired.key_id, overlap_ended.key_id)
                .affected_rows(),
            3u);
  EXPECT_EQ(tx.exec_params("UPDATE keys.api_keys SET expires_at = now() + interval '1 hour' "
                           "WHERE key_id = $1",
                           live.key_id)
                .affected_rows(),
            1u);
  tx.commit();
  EXPECT_EQ(store_->Get(expired.key_id)->state, KeyState::kRevoked);
}

TEST_P(KeyStoreConformanceTest, ListFiltersByDerivedStateAndPaginatesNewestFirst) {
  KeyRecord active = NewKey("1", "alice", "p1");
  KeyRecord expired = NewKey("2", "alice", "p1");
  expired.expires_at = clock_.Now();
  KeyRecord revoked = NewKey("3", "bob", "p2");
  KeyRecord rotating = NewKey("4", "bob", "p2");
  KeyRecord overlap_over = NewKey("5", "bob", "p2");
  KeyRecord admin = NewKey("6", "carol", "");
  admin.kind = KeyKind::kAdmin;
  for (const KeyRecord& k : {active, expired, revoked, rotating, overlap_over, admin}) {
    ASSERT_TRUE(store_->Insert(k, std::nullopt, "").ok());
  }
  ASSERT_TRUE(store_->Revoke(revoked.key_id, "x", clock_.Now(), "").ok());
  ASSERT_TRUE(store_
                  ->Rotate(rotating.key_id, clock_.Now() + absl::Hours(1), NewKey("7", "bob", "p2"),
                           std::nullopt, "")
                  .ok());
  ASSERT_TRUE(
      store_->Rotate(overlap_over.key_id, clock_.Now(), NewKey("8", "bob", "p2"), std::nullopt, "")
          .ok());

  auto ids = [&](KeyFilter filter) {
    filter.now = clock_.Now();
    std::vector<std::string> out;
    absl::StatusOr<KeyPage> page = store_->List(filter, 100, std::nullopt);
    EXPECT_TRUE(page.ok()) << page.status();
    if (page.ok()) {
      for (const KeyRecord& k : page->keys) out.push_back(k.key_id);
    }
    return out;
  };
  EXPECT_THAT(ids({.state = KeyState::kExpired}), ElementsAre(expired.key_id));
  EXPECT_THAT(ids({.state = KeyState::kRevoked}),
              UnorderedElementsAre(revoked.key_id, overlap_over.key_id));
  EXPECT_THAT(ids({.state = KeyState::kRotating}), ElementsAre(rotating.key_id));
  EXPECT_THAT(ids({.kind = KeyKind::kAdmin}), ElementsAre(admin.key_id));
  EXPECT_THAT(ids({.project = std::string("p1")}), ElementsAre(expired.key_id, active.key_id));
  EXPECT_THAT(ids({.owner = Principal{PrincipalType::kMember, "alice"}}),
              ElementsAre(expired.key_id, active.key_id));
  EXPECT_THAT(ids({.owner = Principal{PrincipalType::kServiceAccount, "alice"}}), IsEmpty());
  EXPECT_THAT(ids({}), SizeIs(8));

  // Pages of 3 cover everything once, newest first.
  std::vector<std::string> paged;
  std::optional<ListCursor> after;
  int pages = 0;
  do {
    absl::StatusOr<KeyPage> page = store_->List({.now = clock_.Now()}, 3, after);
    ASSERT_TRUE(page.ok());
    for (const KeyRecord& k : page->keys) paged.push_back(k.key_id);
    after = page->next;
    ++pages;
  } while (after.has_value());
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(paged, ids({}));
  for (size_t i = 1; i < paged.size(); ++i) EXPECT_GT(paged[i - 1], paged[i]);
}

TEST_P(KeyStoreConformanceTest, ForgetRequestsBefore) {
  ASSERT_TRUE(store_->Insert(NewKey("1"), Request("old"), "").ok());
  clock_.Advance(absl::Hours(2));
  ASSERT_TRUE(store_->Insert(NewKey("2"), Request("new"), "").ok());
  absl::StatusOr<int> forgotten = store_->ForgetRequestsBefore(clock_.Now() - absl::Hours(1));
  ASSERT_TRUE(forgotten.ok());
  EXPECT_EQ(*forgotten, 1);
  EXPECT_FALSE(store_->GetRequest("old")->has_value());
  EXPECT_TRUE(store_->GetRequest("new")->has_value());
}

TEST_P(KeyStoreConformanceTest, WatchDeliversTheStoreThenEveryChange) {
  KeyRecord before = NewKey("1");
  ASSERT_TRUE(store_->Insert(before, std::nullopt, "").ok());
  RecordingObserver& observer = observer_;
  store_->Watch(&observer);
  ASSERT_TRUE(observer.WaitFor([&](const auto& m) { return m.contains(before.key_id); }));
  EXPECT_GE(observer.resets(), 1);

  // Own changes arrive before the call returns.
  KeyRecord created = NewKey("2");
  ASSERT_TRUE(store_->Insert(created, std::nullopt, "").ok());
  ASSERT_TRUE(store_->Revoke(before.key_id, "x", clock_.Now(), "").ok());
  EXPECT_TRUE(observer.WaitFor(
      [&](const auto& m) {
        return m.contains(created.key_id) && m.at(before.key_id).state == KeyState::kRevoked;
      },
      absl::ZeroDuration()));
  // In sync is reported once the feed has proved itself (a heartbeat), soon but not at once.
  EXPECT_TRUE(observer.WaitForInSync());
}

TEST_P(KeyStoreConformanceTest, ReplicasHearOfEachOthersChanges) {
  if (!backend_.replica) GTEST_SKIP() << "an in-process store has no replicas";
  std::unique_ptr<KeyStore> replica = backend_.replica();
  RecordingObserver& observer = observer_;
  store_->Watch(&observer);
  ASSERT_TRUE(observer.WaitFor([](const auto&) { return true; }));
  KeyRecord key = NewKey("1");
  ASSERT_TRUE(replica->Insert(key, std::nullopt, "").ok());
  ASSERT_TRUE(replica->Revoke(key.key_id, "x", clock_.Now(), "").ok());
  const absl::Time start = absl::Now();  // Both committed.
  ASSERT_TRUE(observer.WaitFor([&](const auto& m) {
    return m.contains(key.key_id) && m.at(key.key_id).state == KeyState::kRevoked;
  }));
  // The stated bound is one heartbeat plus a round trip; notifications arrive far sooner.
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  // Heartbeats keep coming while the database answers.
  const size_t beats = observer.in_sync().size();
  EXPECT_TRUE(policy::testing::Eventually([&] { return observer.in_sync().size() > beats; }));
}

// The outbox: the records of each change's events, written with the change.

std::vector<ledger::LedgerRecord> RecordsIn(KeyStore* store) {
  std::vector<ledger::LedgerRecord> records;
  absl::StatusOr<std::vector<ledger::OutboxEntry>> outbox = store->outbox().Read(1000);
  EXPECT_TRUE(outbox.ok()) << outbox.status();
  if (!outbox.ok()) return records;
  int64_t last = 0;
  for (const ledger::OutboxEntry& entry : *outbox) {
    EXPECT_GT(entry.sequence, last);
    last = entry.sequence;
    records.push_back(entry.record);
  }
  return records;
}

ledger::Delivery Recorded() { return ledger::Delivery{ledger::Delivery::Result::kRecorded, ""}; }

TEST_P(KeyStoreConformanceTest, EveryChangeWritesItsRecordsInTheOrderOfTheChanges) {
  SetClockToTheStores();
  KeyRecord a = NewKey("1"), b = NewKey("2"), c = NewKey("3", "bob");
  b.rotated_from = a.key_id;
  ASSERT_TRUE(store_->Insert(a, std::nullopt, "").ok());
  ASSERT_TRUE(store_->Insert(c, Request("rc", {c.key_id}), "dan").ok());
  absl::StatusOr<KeyRecord> rotated =
      store_->Rotate(a.key_id, clock_.Now() - absl::Seconds(1), b, std::nullopt, "dan");
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  ASSERT_TRUE(store_->Revoke(b.key_id, "laptop lost", clock_.Now(), "erin").ok());
  ASSERT_TRUE(store_->Revoke(b.key_id, "again", clock_.Now(), "").ok());  // No change, no record.
  auto offboarded = store_->RevokeOwnedBy({PrincipalType::kMember, "bob"}, "offboarded",
                                          clock_.Now() + absl::Seconds(2), std::nullopt, "alice");
  ASSERT_TRUE(offboarded.ok()) << offboarded.status();
  auto swept = store_->RevokeEndedOverlaps();
  ASSERT_TRUE(swept.ok()) << swept.status();
  ASSERT_THAT(*swept, SizeIs(1));

  KeyRecord b_revoked = *store_->Get(b.key_id);
  KeyRecord c_revoked = *store_->Get(c.key_id);
  EXPECT_THAT(RecordsIn(store_),
              ElementsAre(LedgerRecordOf(CreatedEvent(a)), LedgerRecordOf(CreatedEvent(c, "dan")),
                          LedgerRecordOf(RotatedEvent(*rotated, b.created_at, "dan")),
                          LedgerRecordOf(CreatedEvent(b, "dan")),
                          LedgerRecordOf(RevokedEvent(b_revoked, "erin")),
                          LedgerRecordOf(RevokedEvent(c_revoked, "alice")),
                          LedgerRecordOf(OverlapEndedEvent((*swept)[0]))));
  // What those events say, spelled out for two of them.
  const KeyEvent rotation = RotatedEvent(*rotated, b.created_at);
  EXPECT_EQ(rotation.related_key_id, b.key_id);
  EXPECT_EQ(rotation.at, b.created_at);
  const KeyEvent revocation = RevokedEvent(b_revoked);
  EXPECT_EQ(revocation.at, clock_.Now());
  EXPECT_EQ(revocation.reason, "laptop lost");
  EXPECT_EQ(revocation.project, "proj-dev");
  EXPECT_EQ(revocation.environment, Environment::kStaging);
  // Each record names who made the change; the service itself where no one was named.
  const std::vector<ledger::LedgerRecord> records = RecordsIn(store_);
  ASSERT_THAT(records, SizeIs(7));
  std::vector<std::string> actors;
  for (const ledger::LedgerRecord& r : records) actors.push_back(r.actor);
  EXPECT_THAT(actors,
              ElementsAre("keys-service", "dan", "dan", "dan", "erin", "alice", "keys-service"));
  EXPECT_EQ(OverlapEndedEvent((*swept)[0]).at, clock_.Now() - absl::Seconds(1));
}

TEST_P(KeyStoreConformanceTest, AChangeThatFailsWritesNoRecord) {
  KeyRecord a = NewKey("1"), b = NewKey("2");
  ASSERT_TRUE(store_->Insert(a, Request("ra", {a.key_id}), "").ok());
  ASSERT_TRUE(store_->Insert(b, std::nullopt, "").ok());
  const std::vector<ledger::LedgerRecord> before = RecordsIn(store_);
  ASSERT_THAT(before, SizeIs(2));

  EXPECT_FALSE(store_->Insert(a, std::nullopt, "").ok());             // Key id taken.
  EXPECT_FALSE(store_->Insert(NewKey("3"), Request("ra"), "").ok());  // Request id taken.
  // The old key is updated first, then the successor's id turns out taken: all undone.
  EXPECT_EQ(store_->Rotate(a.key_id, clock_.Now(), b, std::nullopt, "").status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->Get(a.key_id)->state, KeyState::kActive);
  EXPECT_EQ(store_->Rotate("key_0000000000000000x", clock_.Now(), NewKey("4"), std::nullopt, "")
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  EXPECT_FALSE(store_->Revoke("key_0000000000000000x", "", clock_.Now(), "").ok());
  EXPECT_FALSE(
      store_->RevokeOwnedBy({PrincipalType::kMember, "alice"}, "x", clock_.Now(), Request("ra"), "")
          .ok());
  EXPECT_EQ(store_->Get(b.key_id)->state, KeyState::kActive);
  EXPECT_EQ(RecordsIn(store_), before);
}

TEST_P(KeyStoreConformanceTest, OneDrainAtATime) {
  ASSERT_TRUE(store_->Insert(NewKey("1"), std::nullopt, "").ok());
  std::unique_ptr<KeyStore> replica = backend_.replica ? backend_.replica() : nullptr;
  KeyStore* other = replica != nullptr ? replica.get() : store_;
  absl::Notification handling, release;
  std::thread first([&] {
    auto drain = store_->outbox().Drain(10, [&](const ledger::OutboxEntry&) {
      handling.Notify();
      release.WaitForNotification();
      return Recorded();
    });
    EXPECT_TRUE(drain.ok() && drain->delivered == 1);
  });
  handling.WaitForNotification();
  bool called = false;
  auto second = other->outbox().Drain(10, [&](const ledger::OutboxEntry&) {
    called = true;
    return Recorded();
  });
  release.Notify();
  first.join();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->busy);
  EXPECT_FALSE(called);
  EXPECT_THAT(RecordsIn(store_), IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(
    Stores, KeyStoreConformanceTest,
    ::testing::Values(std::make_pair(std::string("memory"), BackendFactory(MakeMemory)),
                      std::make_pair(std::string("postgres"), BackendFactory(MakePostgres)),
                      std::make_pair(std::string("postgres_runtime"),
                                     BackendFactory(MakePostgresRuntime))),
    [](const auto& info) { return info.param.first; });

// Migration 004 grants policy_keys_runtime what PostgresKeyStore's statements need and no
// more: the runtime login role passes the start-up checks and cannot change the schema.
TEST(KeysRuntimeRoleTest, HoldsWhatTheStoreNeedsAndNothingMore) {
  const pg::TestDatabase* db = pg::TestDatabase::Get();
  if (db == nullptr) GTEST_SKIP() << "POLICY_TEST_PG_URL is not set";
  const std::string runtime = db->RuntimeUrl("keys");
  if (runtime.empty()) GTEST_SKIP() << "POLICY_TEST_PG_KEYS_RUNTIME_URL is not set";
  ASSERT_TRUE(db->Reset("keys", Migrations(), kResetKeysSql).ok());
  pg::ExpectLeastPrivilegedRuntimeRole(*db, runtime, "keys", Migrations(),
                                       PostgresKeyStore::Privileges());
}

// Migration 003 moves keys' own outbox (audit_outbox, one typed row per event) into the
// shared ledger_outbox: each event still waiting comes out as the record LedgerRecordOf makes
// of it, in the same order, with its attempts, error and failed mark.
// Writes `e` to keys.audit_outbox as the store wrote events before migration 003 (and as a
// replica of that release still does during an upgrade).
void InsertPreMigrationEvent(pqxx::work& tx, const KeyEvent& e) {
  tx.exec_params(
      "INSERT INTO keys.audit_outbox (event, key_id, kind, owner_type, owner_id, project, "
      "environment, at, related_key_id, reason) VALUES "
      "($1, $2, $3, $4, $5, $6, $7, " POLICY_PG_TS("$8") ", $9, $10)",
      std::string(EventTypeName(e.type)), e.key_id, std::string(KindName(e.kind)),
      std::string(PrincipalTypeName(e.owner.type)), e.owner.id, e.project,
      std::string(EnvironmentName(e.environment)), pg::Micros(e.at), e.related_key_id, e.reason);
}

TEST(KeysMigrationTest, WaitingEventsMoveToTheLedgerOutboxAsTheirRecords) {
  const pg::TestDatabase* db = pg::TestDatabase::Get();
  if (db == nullptr) GTEST_SKIP() << "POLICY_TEST_PG_URL is not set";
  const std::vector<pg::Migration>& all = Migrations();
  ASSERT_GE(all.size(), 3u);
  ASSERT_EQ(std::string(all[2].name), "ledger_outbox");
  const std::string url = db->CreateDatabase("keys_migration_003");
  ASSERT_TRUE(pg::ApplyMigrations(url, "keys", {all[0], all[1]}).ok());

  const absl::Time t = absl::FromUnixSeconds(1'800'000'000);
  const Principal alice{PrincipalType::kMember, "alice@example.com"};
  const Principal robot{PrincipalType::kServiceAccount, "sa-ci"};
  const std::vector<KeyEvent> events = {
      {KeyEvent::Type::kCreated, "key_00000000000000001", KeyKind::kProject, alice, "proj-a",
       Environment::kStaging, t + absl::Microseconds(123456), "key_00000000000000000", ""},
      {KeyEvent::Type::kRotated, "key_00000000000000001", KeyKind::kProject, alice, "proj-a",
       Environment::kStaging, t, "key_00000000000000002", ""},
      {KeyEvent::Type::kRevoked, "key_00000000000000003", KeyKind::kAdmin, alice, "",
       Environment::kProduction, t + absl::Microseconds(120000), "",
       "laptop \"lost\"\tit's\\gone\n\x01 \xe2\x80\x94 caf\xc3\xa9"},
      {KeyEvent::Type::kOverlapEnded, "key_00000000000000004", KeyKind::kServiceAccount, robot,
       "proj-b", Environment::kSandbox, t - absl::Microseconds(1), "key_00000000000000005",
       std::string(kReasonOverlapEnded)},
  };
  pg::Pool pool(pg::PoolOptions{.url = url, .size = 2});
  ASSERT_TRUE(pool.Transact([&](pqxx::work& tx) {
                    // As the store wrote them before migration 003.
                    for (const KeyEvent& e : events) InsertPreMigrationEvent(tx, e);
                    tx.exec(
                        "UPDATE keys.audit_outbox SET attempts = 3, last_error = 'audit down' "
                        "WHERE event = 'key_created'");
                    tx.exec(
                        "UPDATE keys.audit_outbox SET attempts = 1, last_error = 'refused', "
                        "failed = true WHERE event = 'key_revoked'");
                    return absl::OkStatus();
                  })
                  .ok());

  ASSERT_TRUE(pg::ApplyMigrations(url, "keys", all).ok());
  ledger::PostgresOutbox outbox(&pool, "keys.ledger_outbox");
  absl::StatusOr<std::vector<ledger::OutboxEntry>> entries = outbox.Read(100);
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_THAT(*entries, SizeIs(events.size()));
  for (size_t i = 0; i < events.size(); ++i) {
    const ledger::OutboxEntry& entry = (*entries)[i];
    EXPECT_EQ(entry.record, LedgerRecordOf(events[i])) << i;
    EXPECT_EQ(entry.attempts, i == 0 ? 3 : i == 2 ? 1 : 0) << i;
    EXPECT_EQ(entry.last_error, i == 0 ? "audit down" : i == 2 ? "refused" : "") << i;
    EXPECT_EQ(entry.failed, i == 2) << i;
  }
  EXPECT_EQ((*entries)[0].record.metadata.at("at"), "2027-01-15T08:00:00.123456+00:00");
  EXPECT_EQ((*entries)[2].record.metadata.at("at"), "2027-01-15T08:00:00.12+00:00");

  // Records written now come after the moved ones, and so do the events a replica of the
  // previous release still writes to the old table during a rolling upgrade: they move over
  // in the same transaction, as their records.
  const KeyEvent late = {KeyEvent::Type::kRevoked,
                         "key_00000000000000009",
                         KeyKind::kProject,
                         alice,
                         "proj-a",
                         Environment::kStaging,
                         t,
                         "",
                         "offboarded"};
  ASSERT_TRUE(pool.Transact([&](pqxx::work& tx) {
                    outbox.Write(tx, {LedgerRecordOf(events[0])});
                    InsertPreMigrationEvent(tx, late);
                    EXPECT_EQ(tx.exec("SELECT count(*) FROM keys.audit_outbox")[0][0].as<int>(), 0);
                    return absl::OkStatus();
                  })
                  .ok());
  entries = outbox.Read(100);
  ASSERT_TRUE(entries.ok()) << entries.status();
  ASSERT_THAT(*entries, SizeIs(events.size() + 2));
  EXPECT_GT((*entries)[events.size()].sequence, (*entries)[events.size() - 1].sequence);
  EXPECT_GT(entries->back().sequence, (*entries)[events.size()].sequence);
  EXPECT_EQ(entries->back().record, LedgerRecordOf(late));
}

}  // namespace
}  // namespace policy::keys
