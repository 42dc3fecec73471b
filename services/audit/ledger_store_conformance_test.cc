// One suite, every LedgerStore: the memory store always, PostgreSQL whenever a test database
// is configured (always in CI: POLICY_TEST_REQUIRE_PG=1 makes a missing one fatal).
//
// The ledgers' tables refuse TRUNCATE, so tests never reset them: each test works on ledgers
// named after itself.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <limits>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/clock/clock.h"
#include "common/crypto/crypto.h"
#include "common/pg/migrations.h"
#include "common/pg/pool.h"
#include "common/pg/test_database.h"
#include "common/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/audit/audit_migrations.h"
#include "services/audit/ledger.h"
#include "services/audit/memory_ledger_store.h"
#include "services/audit/postgres_ledger_store.h"

namespace policy::audit {

// Readable failures (gtest finds these by argument-dependent lookup).
void PrintTo(const Entry& e, std::ostream* os) {
  *os << "Entry{" << LedgerName(e.ledger) << " #" << e.index << " t=" << absl::ToUnixMicros(e.time)
      << " " << ActionName(e.action) << " tokens=" << e.tokens << " request_id=" << e.request_id
      << " leaf=" << absl::BytesToHexString(AsBytes(e.leaf_hash)).substr(0, 12)
      << " completed=" << e.completed.size() << "}";
}
void PrintTo(const SubjectKey& k, std::ostream* os) {
  *os << "SubjectKey{" << absl::BytesToHexString(k.locator).substr(0, 12) << ", "
      << absl::BytesToHexString(k.ref).substr(0, 12) << ", " << absl::CHexEscape(k.wrapped) << "}";
}

namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

// A store under test; `replica` gives a second store on the same data when the backend has
// replicas (nullptr otherwise).
struct Backend {
  std::unique_ptr<LedgerStore> store;
  std::function<std::unique_ptr<LedgerStore>()> replica;
  std::shared_ptr<pg::Pool> pool;  // PostgreSQL only.
};

using BackendFactory = std::function<Backend()>;

Backend MakeMemory() { return Backend{std::make_unique<MemoryLedgerStore>(), nullptr, nullptr}; }

Backend MakePostgres() {
  const pg::TestDatabase* db = pg::TestDatabase::Get();
  // Nothing to reset: tests use ledgers of their own (the tables refuse TRUNCATE anyway).
  // value() throws on failure, which fails the test with the status.
  std::shared_ptr<pg::Pool> pool = db->Reset("audit", Migrations(), "SELECT 1").value();
  Backend backend;
  backend.store = std::make_unique<PostgresLedgerStore>(pool.get(), kWriterRole);
  backend.replica = [pool] {
    return std::make_unique<PostgresLedgerStore>(pool.get(), kWriterRole);
  };
  backend.pool = pool;
  return backend;
}

// Recomputes the tree of `entries` (a whole ledger, in index order) and checks every stored
// hash against it; returns the root.
Hash VerifyLedger(const std::vector<Entry>& entries) {
  CompactTree tree;
  for (size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    EXPECT_EQ(e.index, i);
    EXPECT_EQ(e.leaf_hash, EntryLeafHash(e)) << "entry " << i;
    std::vector<Hash> completed;
    tree.Append(EntryLeafHash(e), &completed);
    EXPECT_EQ(e.completed, completed) << "entry " << i;
  }
  EXPECT_EQ(tree.size(), entries.size());
  return tree.Root();
}

// The root of the perfect subtree `node`, from the leaves of `entries`.
Hash SubtreeRoot(const std::vector<Entry>& entries, const NodeId& node) {
  CompactTree tree;
  const uint64_t first = node.index << node.level;
  for (uint64_t i = first; i <= LastLeaf(node); ++i) {
    std::vector<Hash> completed;
    tree.Append(EntryLeafHash(entries[i]), &completed);
  }
  return tree.Root();
}

class LedgerStoreConformanceTest
    : public ::testing::TestWithParam<std::pair<std::string, BackendFactory>> {
 protected:
  void SetUp() override {
    if (postgres() && pg::TestDatabase::Get() == nullptr) {
      GTEST_SKIP() << "POLICY_TEST_PG_URL is not set";
    }
    backend_ = GetParam().second();
    store_ = backend_.store.get();
    // This test's name as a project: [a-z0-9-_], short enough for suffixes.
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : name) c = absl::ascii_isalnum(c) ? absl::ascii_tolower(c) : '-';
    name_ = name.substr(0, 56);
    ledger_ = Ledger();
  }

  bool postgres() const { return GetParam().first == "postgres"; }

  LedgerRef Ledger(const std::string& suffix = "", const std::string& environment = "staging") {
    return LedgerRef{absl::StrCat(name_, suffix), environment};
  }

  // A pseudonym unique to this test.
  std::string Ref(const std::string& who) const { return crypto::Sha256(name_ + "/" + who); }

  Entry NewEntry(const LedgerRef& ledger, int n, const std::string& request_id = "") {
    Entry e;
    e.ledger = ledger;
    e.time = base_ + absl::Seconds(n);
    e.action = n % 3 == 0 ? Action::kApiCall : Action::kKeyCreated;
    e.actor = SealedSubject{Ref(n % 2 == 0 ? "alice" : "bob"), std::string("sealed\0actor", 12)};
    e.model = "gpt-test";
    e.tokens = 100 + n;
    e.latency = absl::Microseconds(1000 + n);
    e.outcome = n % 5 == 0 ? Outcome::kBlocked : Outcome::kSuccess;
    e.metadata = {{"route", "/v1/chat"}, {"n", absl::StrCat(n)}, {"bin", std::string("a\0b", 3)}};
    e.content_hash = crypto::Sha256(absl::StrCat("content ", n));
    e.request_id = request_id;
    if (n % 4 == 1) e.subject = SealedSubject{Ref("carol"), std::string("\0sealed carol", 13)};
    return e;
  }

  // Appends (with `new_keys`) and expects every outcome OK and new.
  std::vector<Entry> AppendAll(std::vector<Entry> entries, LedgerStore* store = nullptr,
                               std::vector<SubjectKey> new_keys = {}) {
    absl::StatusOr<std::vector<AppendOutcome>> outcomes =
        (store != nullptr ? store : store_)->Append(std::move(entries), std::move(new_keys));
    EXPECT_TRUE(outcomes.ok()) << outcomes.status();
    std::vector<Entry> out;
    if (!outcomes.ok()) return out;
    for (AppendOutcome& o : *outcomes) {
      EXPECT_TRUE(o.status.ok()) << o.status;
      EXPECT_FALSE(o.duplicate);
      out.push_back(std::move(o.entry));
    }
    return out;
  }

  std::vector<Entry> ReadAll(const LedgerRef& ledger) {
    absl::StatusOr<std::vector<Entry>> entries = store_->ReadRange(ledger, 0, 1'000'000);
    EXPECT_TRUE(entries.ok()) << entries.status();
    return entries.ok() ? *entries : std::vector<Entry>{};
  }

  const absl::Time base_ = absl::FromUnixMicros(1'800'000'000'123'456);
  Backend backend_;
  LedgerStore* store_ = nullptr;
  std::string name_;
  LedgerRef ledger_;
};

TEST_P(LedgerStoreConformanceTest, AppendAssignsConsecutiveIndexesAndHashes) {
  const LedgerRef other = Ledger("", "production");
  std::vector<Entry> first = AppendAll({NewEntry(ledger_, 0), NewEntry(ledger_, 1)});
  ASSERT_THAT(first, SizeIs(2));
  EXPECT_EQ(first[0].index, 0u);
  EXPECT_EQ(first[1].index, 1u);
  // Two ledgers in one batch: each counts on; outcomes follow the input's order.
  std::vector<Entry> batch;
  for (int n = 2; n < 9; ++n) {
    batch.push_back(NewEntry(ledger_, n));
    batch.push_back(NewEntry(other, n));
  }
  std::vector<Entry> second = AppendAll(batch);
  ASSERT_THAT(second, SizeIs(14));
  for (size_t i = 0; i < second.size(); ++i) {
    EXPECT_EQ(second[i].ledger, batch[i].ledger);
    EXPECT_EQ(second[i].index, i % 2 == 0 ? 2 + i / 2 : i / 2);
    EXPECT_EQ(second[i].tokens, batch[i].tokens);
  }
  std::vector<Entry> expected = first;
  std::vector<Entry> expected_other;
  for (size_t i = 0; i < second.size(); ++i) {
    (i % 2 == 0 ? expected : expected_other).push_back(second[i]);
  }
  // Every field round-trips, and the hashes are those of the tree.
  std::vector<Entry> stored = ReadAll(ledger_);
  EXPECT_EQ(stored, expected);
  VerifyLedger(stored);
  EXPECT_EQ(ReadAll(other), expected_other);
  VerifyLedger(expected_other);
  EXPECT_EQ(store_->Size(ledger_).value(), 9u);
  EXPECT_EQ(store_->Size(other).value(), 7u);
  EXPECT_EQ(store_->Size(Ledger("-none")).value(), 0u);

  absl::StatusOr<std::vector<LedgerSize>> ledgers = store_->ListLedgers();
  ASSERT_TRUE(ledgers.ok()) << ledgers.status();
  std::vector<std::pair<LedgerRef, uint64_t>> mine;
  for (const LedgerSize& l : *ledgers) {
    if (l.ledger.project == ledger_.project) mine.emplace_back(l.ledger, l.size);
  }
  EXPECT_THAT(mine, ElementsAre(std::make_pair(other, 7u), std::make_pair(ledger_, 9u)));
}

TEST_P(LedgerStoreConformanceTest, EmptyAppendAndOrganisationLedger) {
  absl::StatusOr<std::vector<AppendOutcome>> none = store_->Append({}, {});
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_THAT(*none, IsEmpty());
  // The organisation's ledger (empty project and environment) is shared by every test: only
  // relative checks.
  const LedgerRef organisation;
  const uint64_t before = store_->Size(organisation).value();
  std::vector<Entry> appended = AppendAll({NewEntry(organisation, 1), NewEntry(organisation, 2)});
  ASSERT_THAT(appended, SizeIs(2));
  EXPECT_EQ(appended[0].index, before);
  EXPECT_EQ(appended[1].index, before + 1);
  EXPECT_EQ(store_->Size(organisation).value(), before + 2);
  VerifyLedger(ReadAll(organisation));
}

TEST_P(LedgerStoreConformanceTest, RequestIdsMakeAppendsIdempotent) {
  std::vector<Entry> first = AppendAll({NewEntry(ledger_, 0, "r0"), NewEntry(ledger_, 1, "r1")});
  ASSERT_THAT(first, SizeIs(2));

  Entry retry = NewEntry(ledger_, 0, "r0");
  retry.time += absl::Seconds(30);  // A retry is recorded later; still the same request.
  retry.actor.sealed = "sealed again";
  Entry different = NewEntry(ledger_, 1, "r1");
  different.model = "another-model";
  Entry fresh = NewEntry(ledger_, 2, "r2");
  Entry fresh_again = NewEntry(ledger_, 2, "r2");
  fresh_again.time += absl::Seconds(1);
  Entry fresh_different = NewEntry(ledger_, 2, "r2");
  fresh_different.tokens = 1;
  Entry plain = NewEntry(ledger_, 3);
  absl::StatusOr<std::vector<AppendOutcome>> outcomes =
      store_->Append({retry, different, fresh, fresh_again, fresh_different, plain}, {});
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  ASSERT_THAT(*outcomes, SizeIs(6));
  const std::vector<AppendOutcome>& o = *outcomes;
  // The stored entry, as first appended.
  EXPECT_TRUE(o[0].status.ok()) << o[0].status;
  EXPECT_TRUE(o[0].duplicate);
  EXPECT_EQ(o[0].entry, first[0]);
  EXPECT_EQ(o[1].status.code(), absl::StatusCode::kFailedPrecondition) << o[1].status;
  EXPECT_THAT(o[1].status.message(), HasSubstr("(index 1)"));
  EXPECT_FALSE(o[1].duplicate);
  // New, and again within the batch: the second is the first.
  EXPECT_TRUE(o[2].status.ok()) << o[2].status;
  EXPECT_FALSE(o[2].duplicate);
  EXPECT_EQ(o[2].entry.index, 2u);
  EXPECT_TRUE(o[3].status.ok()) << o[3].status;
  EXPECT_TRUE(o[3].duplicate);
  EXPECT_EQ(o[3].entry, o[2].entry);
  EXPECT_EQ(o[4].status.code(), absl::StatusCode::kFailedPrecondition) << o[4].status;
  EXPECT_THAT(o[4].status.message(), HasSubstr("(index 2)"));
  // The rest of the batch is appended regardless.
  EXPECT_TRUE(o[5].status.ok()) << o[5].status;
  EXPECT_FALSE(o[5].duplicate);
  EXPECT_EQ(o[5].entry.index, 3u);

  std::vector<Entry> stored = ReadAll(ledger_);
  ASSERT_THAT(stored, SizeIs(4));
  EXPECT_EQ(stored[2], o[2].entry);
  EXPECT_EQ(stored[3], o[5].entry);
  VerifyLedger(stored);

  absl::StatusOr<Entry> found = store_->FindRequest(ledger_, "r2");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(*found, o[2].entry);
  EXPECT_EQ(store_->FindRequest(ledger_, "r9").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->FindRequest(Ledger("-none"), "r0").status().code(),
            absl::StatusCode::kNotFound);
  // Request ids are per ledger.
  std::vector<Entry> elsewhere = AppendAll({NewEntry(Ledger("-b"), 0, "r0")});
  ASSERT_THAT(elsewhere, SizeIs(1));
  EXPECT_EQ(elsewhere[0].index, 0u);
}

TEST_P(LedgerStoreConformanceTest, ConcurrentAppendsFromTwoStoresStayConsecutive) {
  std::unique_ptr<LedgerStore> replica = backend_.replica ? backend_.replica() : nullptr;
  LedgerStore* stores[2] = {store_, replica != nullptr ? replica.get() : store_};
  // Both stores have a cached tree, which the other's appends make stale.
  AppendAll({NewEntry(ledger_, 0)}, stores[0]);
  AppendAll({NewEntry(ledger_, 1)}, stores[1]);
  AppendAll({NewEntry(ledger_, 2)}, stores[0]);

  constexpr int kThreads = 4;
  constexpr int kPerThread = 200;
  constexpr int kBatch = 10;
  std::vector<std::thread> threads;
  std::vector<absl::Status> failures(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int b = 0; b < kPerThread / kBatch; ++b) {
        std::vector<Entry> batch;
        for (int i = 0; i < kBatch; ++i) {
          const int n = 1000 * (t + 1) + b * kBatch + i;
          batch.push_back(NewEntry(ledger_, n, absl::StrCat("t", t, "-", n)));
        }
        absl::StatusOr<std::vector<AppendOutcome>> outcomes = stores[t % 2]->Append(batch, {});
        if (!outcomes.ok()) {
          failures[t] = outcomes.status();
          return;
        }
        for (const AppendOutcome& o : *outcomes) {
          if (!o.status.ok() || o.duplicate) {
            failures[t] = absl::InternalError(absl::StrCat("outcome: ", o.status.ToString()));
            return;
          }
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : failures) EXPECT_TRUE(s.ok()) << s;

  constexpr uint64_t kTotal = 3 + kThreads * kPerThread;
  std::vector<Entry> stored = ReadAll(ledger_);
  ASSERT_THAT(stored, SizeIs(kTotal));
  std::set<std::string> request_ids;
  for (const Entry& e : stored) request_ids.insert(e.request_id);
  EXPECT_THAT(request_ids, SizeIs(kThreads * kPerThread + 1));  // + the three without
  VerifyLedger(stored);

  // Each store's next append continues the tree the other grew.
  for (int round = 0; round < 2; ++round) {
    for (LedgerStore* store : stores) {
      const uint64_t size = store->Size(ledger_).value();
      std::vector<Entry> next = AppendAll({NewEntry(ledger_, 5000 + round)}, store);
      ASSERT_THAT(next, SizeIs(1));
      EXPECT_EQ(next[0].index, size);
    }
  }
  stored = ReadAll(ledger_);
  EXPECT_THAT(stored, SizeIs(kTotal + 4));
  VerifyLedger(stored);
}

TEST_P(LedgerStoreConformanceTest, ReadRangeAndQueryFilter) {
  std::vector<Entry> batch;
  for (int n = 0; n < 20; ++n) batch.push_back(NewEntry(ledger_, n));
  batch[7].time = batch[6].time;  // Equal times stay in index order.
  std::vector<Entry> all = AppendAll(batch);
  ASSERT_THAT(all, SizeIs(20));

  absl::StatusOr<std::vector<Entry>> range = store_->ReadRange(ledger_, 5, 3);
  ASSERT_TRUE(range.ok()) << range.status();
  EXPECT_THAT(*range, ElementsAre(all[5], all[6], all[7]));
  EXPECT_THAT(store_->ReadRange(ledger_, 18, 100).value(), ElementsAre(all[18], all[19]));
  EXPECT_THAT(store_->ReadRange(ledger_, 20, 100).value(), IsEmpty());
  EXPECT_THAT(store_->ReadRange(ledger_, 0, 0).value(), IsEmpty());
  EXPECT_THAT(store_->ReadRange(Ledger("-none"), 0, 10).value(), IsEmpty());

  // ForEachEntry: from an index to the end, or until the visitor stops.
  std::vector<Entry> visited;
  auto collect = [&](size_t stop_after) {
    return [&visited, stop_after](const Entry& e) {
      visited.push_back(e);
      return visited.size() < stop_after;
    };
  };
  ASSERT_TRUE(store_->ForEachEntry(ledger_, 16, collect(100)).ok());
  EXPECT_THAT(visited, ElementsAre(all[16], all[17], all[18], all[19]));
  visited.clear();
  ASSERT_TRUE(store_->ForEachEntry(ledger_, 2, collect(3)).ok());
  EXPECT_THAT(visited, ElementsAre(all[2], all[3], all[4]));
  visited.clear();
  ASSERT_TRUE(store_->ForEachEntry(Ledger("-none"), 0, collect(100)).ok());
  EXPECT_THAT(visited, IsEmpty());

  auto expect_query = [&](const EntryFilter& filter) -> size_t {
    std::vector<Entry> expected;
    for (const Entry& e : all) {
      if (expected.size() >= filter.limit) break;
      if (e.index < filter.after_index) continue;
      if (filter.action.has_value() && e.action != *filter.action) continue;
      if (!filter.actor_ref.empty() && e.actor.ref != filter.actor_ref) continue;
      if (filter.start.has_value() && e.time < *filter.start) continue;
      if (filter.end.has_value() && e.time >= *filter.end) continue;
      expected.push_back(e);
    }
    absl::StatusOr<std::vector<Entry>> got = store_->Query(filter);
    EXPECT_TRUE(got.ok()) << got.status();
    if (got.ok()) {
      EXPECT_EQ(*got, expected);
    }
    return expected.size();
  };
  EntryFilter filter;
  filter.ledger = ledger_;
  EXPECT_EQ(expect_query(filter), 20u);
  filter.limit = 4;
  EXPECT_EQ(expect_query(filter), 4u);
  filter.limit = 100;
  filter.action = Action::kApiCall;
  EXPECT_EQ(expect_query(filter), 7u);
  filter.action = Action::kKeyRevoked;
  EXPECT_EQ(expect_query(filter), 0u);
  filter.action.reset();
  filter.actor_ref = Ref("alice");
  EXPECT_EQ(expect_query(filter), 10u);
  filter.actor_ref = Ref("nobody");
  EXPECT_EQ(expect_query(filter), 0u);
  filter.actor_ref.clear();
  filter.start = all[3].time;  // Inclusive.
  filter.end = all[9].time;    // Exclusive.
  EXPECT_EQ(expect_query(filter), 6u);
  // Bounds finer than the entries' whole microseconds compare exactly, not truncated: an
  // entry just before the start is out, one just before the end is in.
  filter.start = all[3].time + absl::Nanoseconds(1);
  filter.end = all[9].time + absl::Nanoseconds(1);
  EXPECT_EQ(expect_query(filter), 6u);
  filter.start = all[3].time - absl::Nanoseconds(1);
  filter.end = all[9].time - absl::Nanoseconds(1);
  EXPECT_EQ(expect_query(filter), 6u);
  filter.start = all[3].time;
  filter.end = all[9].time;
  filter.after_index = 5;
  EXPECT_EQ(expect_query(filter), 4u);
  filter.action = Action::kKeyCreated;
  filter.actor_ref = Ref("bob");
  EXPECT_EQ(expect_query(filter), 2u);  // 5 and 7
  filter.limit = 1;
  EXPECT_EQ(expect_query(filter), 1u);
  filter = EntryFilter{};
  filter.ledger = ledger_;
  filter.after_index = 25;
  EXPECT_EQ(expect_query(filter), 0u);
  filter.ledger = Ledger("-none");
  filter.after_index = 0;
  EXPECT_THAT(store_->Query(filter).value(), IsEmpty());
}

TEST_P(LedgerStoreConformanceTest, EntriesOfSubjectAcrossLedgers) {
  const LedgerRef a = Ledger("-a");
  const LedgerRef b = Ledger("-b");
  const std::string dave = Ref("dave");
  auto entry = [&](const LedgerRef& ledger, int n, int second, bool as_actor) {
    Entry e = NewEntry(ledger, n);
    e.time = base_ + absl::Seconds(second);
    if (as_actor) {
      e.actor = SealedSubject{dave, "sealed dave"};
    } else {
      e.subject = SealedSubject{dave, "sealed dave"};
    }
    return e;
  };
  // b before a in time; equal times order by ledger, then index.
  std::vector<Entry> appended = AppendAll({
      entry(b, 0, 5, true),   // b#0 t5
      entry(a, 1, 5, false),  // a#0 t5
      NewEntry(a, 2),         // a#1, not dave's
      entry(a, 3, 1, true),   // a#2 t1
      entry(b, 4, 9, false),  // b#1 t9
      entry(a, 5, 5, true),   // a#3 t5
  });
  ASSERT_THAT(appended, SizeIs(6));
  absl::StatusOr<std::vector<Entry>> got = store_->EntriesOfSubject(dave, std::nullopt, 100);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(*got, ElementsAre(appended[3], appended[1], appended[5], appended[0], appended[4]));
  EXPECT_THAT(store_->EntriesOfSubject(dave, std::nullopt, 2).value(),
              ElementsAre(appended[3], appended[1]));
  // Page by page from a cursor: each page resumes just after the last entry of the one before,
  // also between entries of the same time (a#0 and a#3 at t5, then b#0 at t5).
  EXPECT_THAT(store_->EntriesOfSubject(dave, CursorOf(appended[1]), 2).value(),
              ElementsAre(appended[5], appended[0]));
  EXPECT_THAT(store_->EntriesOfSubject(dave, CursorOf(appended[0]), 2).value(),
              ElementsAre(appended[4]));
  EXPECT_THAT(store_->EntriesOfSubject(dave, CursorOf(appended[4]), 2).value(), IsEmpty());
  EXPECT_THAT(store_->EntriesOfSubject(Ref("nobody"), std::nullopt, 10).value(), IsEmpty());
  // carol is the subject of NewEntry's n % 4 == 1 when not replaced: a#3 only.
  EXPECT_THAT(store_->EntriesOfSubject(Ref("carol"), std::nullopt, 10).value(),
              ElementsAre(appended[5]));
}

TEST_P(LedgerStoreConformanceTest, NodeHashesOfEveryNode) {
  std::vector<Entry> batch;
  for (int n = 0; n < 37; ++n) batch.push_back(NewEntry(ledger_, n));
  // In several appends, so that stored completions span batches.
  std::vector<Entry> all = AppendAll({batch.begin(), batch.begin() + 10});
  std::vector<Entry> rest = AppendAll({batch.begin() + 10, batch.end()});
  all.insert(all.end(), rest.begin(), rest.end());
  ASSERT_THAT(all, SizeIs(37));
  VerifyLedger(all);

  std::vector<NodeId> nodes;
  for (int level = 0; level <= 5; ++level) {
    for (uint64_t index = 0; LastLeaf(NodeId{level, index}) < 37; ++index) {
      nodes.push_back(NodeId{level, index});
    }
  }
  EXPECT_THAT(nodes, SizeIs(37 + 18 + 9 + 4 + 2 + 1));
  absl::StatusOr<absl::flat_hash_map<NodeId, Hash>> hashes = store_->NodeHashes(ledger_, nodes);
  ASSERT_TRUE(hashes.ok()) << hashes.status();
  EXPECT_THAT(*hashes, SizeIs(nodes.size()));
  for (const NodeId& node : nodes) {
    EXPECT_EQ(hashes->at(node), SubtreeRoot(all, node)) << node.level << "," << node.index;
  }
  // The frontier's nodes give the root.
  std::vector<Hash> frontier;
  for (const NodeId& node : FrontierNodes(37)) frontier.push_back(hashes->at(node));
  absl::StatusOr<CompactTree> tree = CompactTree::FromFrontier(37, frontier);
  ASSERT_TRUE(tree.ok()) << tree.status();
  EXPECT_EQ(tree->Root(), VerifyLedger(all));

  EXPECT_THAT(store_->NodeHashes(ledger_, {}).value(), IsEmpty());
  for (const NodeId& beyond : {NodeId{0, 37}, NodeId{1, 18}, NodeId{3, 4}, NodeId{6, 0}}) {
    EXPECT_EQ(store_->NodeHashes(ledger_, {NodeId{0, 0}, beyond}).status().code(),
              absl::StatusCode::kFailedPrecondition)
        << beyond.level << "," << beyond.index;
  }
  EXPECT_EQ(store_->NodeHashes(Ledger("-none"), {NodeId{0, 0}}).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_P(LedgerStoreConformanceTest, Checkpoints) {
  auto checkpoint = [&](uint64_t size, const std::string& signature) {
    Checkpoint c;
    c.ledger = ledger_;
    c.tree_size = size;
    c.root = HashFromBytes(crypto::Sha256(absl::StrCat("root ", size))).value();
    c.time = base_ + absl::Microseconds(size);
    c.signature = signature;
    c.key_id = "0123456789abcdef";
    return c;
  };
  EXPECT_EQ(store_->GetCheckpoint(ledger_, 0).status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(store_->ListCheckpoints(ledger_).value(), IsEmpty());
  const Checkpoint c5 = checkpoint(5, std::string(64, '\0'));
  const Checkpoint c10 = checkpoint(10, std::string(64, '\x7f'));
  ASSERT_TRUE(store_->AddCheckpoint(c10).ok());
  ASSERT_TRUE(store_->AddCheckpoint(c5).ok());
  // One of the same size is kept.
  ASSERT_TRUE(store_->AddCheckpoint(checkpoint(5, std::string(64, 'x'))).ok());
  EXPECT_EQ(store_->GetCheckpoint(ledger_, 0).value(), c10);
  EXPECT_EQ(store_->GetCheckpoint(ledger_, 5).value(), c5);
  EXPECT_EQ(store_->GetCheckpoint(ledger_, 7).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->GetCheckpoint(Ledger("-none"), 0).status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(store_->ListCheckpoints(ledger_).value(), ElementsAre(c5, c10));
  // A page: sizes above after_size, smallest first, at most limit.
  EXPECT_THAT(store_->ListCheckpointsAfter(ledger_, 0, 1).value(), ElementsAre(c5));
  EXPECT_THAT(store_->ListCheckpointsAfter(ledger_, 0, 10).value(), ElementsAre(c5, c10));
  EXPECT_THAT(store_->ListCheckpointsAfter(ledger_, 5, 10).value(), ElementsAre(c10));
  EXPECT_THAT(store_->ListCheckpointsAfter(ledger_, 7, 1).value(), ElementsAre(c10));
  EXPECT_THAT(store_->ListCheckpointsAfter(ledger_, 10, 10).value(), IsEmpty());
  EXPECT_THAT(store_->ListCheckpointsAfter(ledger_, 0, 0).value(), IsEmpty());
  EXPECT_THAT(
      store_->ListCheckpointsAfter(ledger_, std::numeric_limits<uint64_t>::max(), 10).value(),
      IsEmpty());
  EXPECT_THAT(store_->ListCheckpointsAfter(Ledger("-none"), 0, 10).value(), IsEmpty());
  // No bound: size 0 too (the service never signs one; verification must see a forged one).
  EXPECT_THAT(store_->ListCheckpointsAfter(ledger_, std::nullopt, 10).value(),
              ElementsAre(c5, c10));
  const Checkpoint c0 = checkpoint(0, std::string(64, '\x01'));
  ASSERT_TRUE(store_->AddCheckpoint(c0).ok());
  EXPECT_THAT(store_->ListCheckpointsAfter(ledger_, std::nullopt, 1).value(), ElementsAre(c0));
  EXPECT_THAT(store_->ListCheckpointsAfter(ledger_, std::nullopt, 10).value(),
              ElementsAre(c0, c5, c10));
  EXPECT_THAT(store_->ListCheckpointsAfter(ledger_, 0, 10).value(), ElementsAre(c5, c10));
  // A checkpoint makes its ledger known (empty).
  bool listed = false;
  const std::vector<LedgerSize> ledgers = store_->ListLedgers().value();
  for (const LedgerSize& l : ledgers) {
    if (l.ledger == ledger_) listed = l.size == 0;
  }
  EXPECT_TRUE(listed);
}

TEST_P(LedgerStoreConformanceTest, SubjectKeys) {
  auto key = [&](const std::string& locator, const std::string& wrapped) {
    return SubjectKey{Ref(locator), Ref(absl::StrCat("pseudonym of ", locator, " ", wrapped)),
                      wrapped, std::nullopt};
  };
  // An entry naming `actor` (and `subject`) by their pseudonyms.
  auto naming = [&](int n, const SubjectKey& actor, const SubjectKey* subject = nullptr) {
    Entry e = NewEntry(ledger_, n);
    e.actor = SealedSubject{actor.ref, "sealed actor"};
    e.subject =
        subject != nullptr ? SealedSubject{subject->ref, "sealed subject"} : SealedSubject{};
    return e;
  };
  const SubjectKey k1 = key("one", std::string("\0wrapped one", 12));
  const SubjectKey k2 = key("two", "wrapped two");
  const SubjectKey unnamed = key("three", "named by no entry");
  EXPECT_EQ(store_->GetSubjectKey(k1.locator).status().code(), absl::StatusCode::kNotFound);
  // Stored by the append whose entries name them; a key no appended entry names is not.
  ASSERT_THAT(AppendAll({naming(0, k1, &k2)}, store_, {k1, unnamed, k2}), SizeIs(1));
  EXPECT_EQ(store_->GetSubjectKey(k1.locator).value(), k1);
  EXPECT_EQ(store_->GetSubjectKey(k2.locator).value(), k2);
  EXPECT_EQ(store_->GetSubjectKey(unnamed.locator).status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<absl::flat_hash_map<std::string, SubjectKey>> by_locator =
      store_->FindSubjectKeys({k1.locator, Ref("no such locator"), k2.locator});
  ASSERT_TRUE(by_locator.ok()) << by_locator.status();
  EXPECT_THAT(*by_locator, SizeIs(2));
  EXPECT_EQ(by_locator->at(k1.locator), k1);
  EXPECT_EQ(by_locator->at(k2.locator), k2);
  EXPECT_THAT(store_->FindSubjectKeys({}).value(), IsEmpty());
  // Looking makes nothing.
  EXPECT_THAT(store_->FindSubjectKeys({Ref("no such locator")}).value(), IsEmpty());
  EXPECT_EQ(store_->GetSubjectKey(Ref("no such locator")).status().code(),
            absl::StatusCode::kNotFound);

  absl::StatusOr<absl::flat_hash_map<std::string, SubjectKey>> by_ref =
      store_->SubjectKeysByRef({k1.ref, k2.ref, Ref("nobody")});
  ASSERT_TRUE(by_ref.ok()) << by_ref.status();
  EXPECT_THAT(*by_ref, SizeIs(2));
  EXPECT_EQ(by_ref->at(k1.ref), k1);
  EXPECT_EQ(by_ref->at(k2.ref), k2);
  EXPECT_THAT(store_->SubjectKeysByRef({}).value(), IsEmpty());

  EXPECT_EQ(store_->DeleteSubjectKey(k2.locator).value(), true);
  EXPECT_EQ(store_->DeleteSubjectKey(k2.locator).value(), false);
  EXPECT_EQ(store_->GetSubjectKey(k2.locator).status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(store_->SubjectKeysByRef({k1.ref, k2.ref}).value(), SizeIs(1));
  EXPECT_THAT(store_->FindSubjectKeys({k1.locator, k2.locator}).value(), SizeIs(1));
  EXPECT_EQ(store_->GetSubjectKey(k1.locator).value(), k1);
  const SubjectKey renewed = key("two", "new key");
  ASSERT_THAT(AppendAll({naming(1, renewed)}, store_, {renewed}), SizeIs(1));
  EXPECT_EQ(store_->GetSubjectKey(k2.locator).value(), renewed);
  EXPECT_EQ(store_->Size(ledger_).value(), 2u);
}

// A batch adding a key for a locator that has one (a concurrent batch added it) is refused
// whole, ABORTED: nothing appended, none of its keys stored.
TEST_P(LedgerStoreConformanceTest, AnAppendAddingAKeyStoredMeanwhileIsRefusedWhole) {
  auto key = [&](const std::string& locator, const std::string& wrapped) {
    return SubjectKey{Ref(locator), Ref(absl::StrCat("pseudonym of ", locator, " ", wrapped)),
                      wrapped, std::nullopt};
  };
  auto naming = [&](int n, const SubjectKey& actor) {
    Entry e = NewEntry(ledger_, n);
    e.actor = SealedSubject{actor.ref, "sealed actor"};
    return e;
  };
  const SubjectKey first = key("erin", "first");
  ASSERT_THAT(AppendAll({naming(0, first)}, store_, {first}), SizeIs(1));
  const SubjectKey frank = key("frank", "only key");
  const SubjectKey second = key("erin", "second");
  absl::StatusOr<std::vector<AppendOutcome>> refused =
      store_->Append({naming(1, frank), naming(2, second)}, {frank, second});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kAborted) << refused.status();
  EXPECT_EQ(store_->Size(ledger_).value(), 1u);
  EXPECT_EQ(store_->GetSubjectKey(first.locator).value(), first);
  EXPECT_EQ(store_->GetSubjectKey(frank.locator).status().code(), absl::StatusCode::kNotFound);
  // The same through a store whose tree is stale (a transaction rather than one statement).
  if (backend_.replica) {
    const SubjectKey third = key("erin", "third");
    EXPECT_EQ(backend_.replica()->Append({naming(1, third)}, {third}).status().code(),
              absl::StatusCode::kAborted);
    EXPECT_EQ(store_->Size(ledger_).value(), 1u);
    EXPECT_EQ(store_->GetSubjectKey(first.locator).value(), first);
  }
  // Sealed again with the stored key, it is appended.
  ASSERT_THAT(AppendAll({naming(1, frank), naming(2, first)}, store_, {frank}), SizeIs(2));
  EXPECT_EQ(store_->GetSubjectKey(frank.locator).value(), frank);

  // Of concurrent batches each adding a key for one new subject, one stores its key; the
  // others are refused and append nothing.
  constexpr int kThreads = 8;
  std::vector<absl::Status> statuses(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const SubjectKey candidate = key("gina", absl::StrCat("candidate ", t));
      statuses[t] = store_->Append({naming(10 + t, candidate)}, {candidate}).status();
    });
  }
  for (std::thread& t : threads) t.join();
  int stored = -1;
  for (int t = 0; t < kThreads; ++t) {
    if (statuses[t].ok()) {
      EXPECT_EQ(stored, -1) << "two batches stored a key for one subject";
      stored = t;
    } else {
      EXPECT_EQ(statuses[t].code(), absl::StatusCode::kAborted) << statuses[t];
    }
  }
  ASSERT_NE(stored, -1);
  EXPECT_EQ(store_->GetSubjectKey(Ref("gina")).value().wrapped, absl::StrCat("candidate ", stored));
  EXPECT_EQ(store_->Size(ledger_).value(), 4u);
}

// A key the batch's refused entries alone name (their request id records another entry) is
// not stored.
TEST_P(LedgerStoreConformanceTest, AKeyOnlyRefusedEntriesNameIsNotStored) {
  ASSERT_THAT(AppendAll({NewEntry(ledger_, 0, "r0")}), SizeIs(1));
  const SubjectKey hal{Ref("hal"), Ref("pseudonym of hal"), "wrapped hal", std::nullopt};
  Entry e = NewEntry(ledger_, 1, "r0");
  e.actor = SealedSubject{hal.ref, "sealed hal"};
  absl::StatusOr<std::vector<AppendOutcome>> outcomes = store_->Append({e}, {hal});
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  ASSERT_THAT(*outcomes, SizeIs(1));
  EXPECT_EQ((*outcomes)[0].status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->GetSubjectKey(hal.locator).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Size(ledger_).value(), 1u);
}

// --- The ledger over each store: records delivered again after their subject was forgotten.

// An AuditLedger over a store, with a master key of its own: its subjects' keys are its own,
// whatever other tests stored.
struct LedgerOver {
  explicit LedgerOver(LedgerStore* store)
      : signer(CheckpointSigner::Create(crypto::RandomBytes(32).value()).value()),
        subjects(SubjectCipher::Create(crypto::RandomBytes(32).value()).value()),
        ledger(store, subjects.get(), signer.get(), &clock) {}
  FakeClock clock;
  std::unique_ptr<CheckpointSigner> signer;
  std::unique_ptr<SubjectCipher> subjects;
  AuditLedger ledger;
};

// A record another service's outbox delivers (and may deliver again).
EntryInput Record(const LedgerRef& ledger, Action action, const std::string& actor,
                  const std::string& subject, const std::string& request_id) {
  EntryInput in;
  in.action = action;
  in.actor = actor;
  in.ledger = ledger;
  in.subject = subject;
  in.request_id = request_id;
  in.metadata = {{"role", "viewer"}};
  return in;
}

TEST_P(LedgerStoreConformanceTest,
       ARecordDeliveredAgainAfterItsSubjectWasForgottenIsTheFirstEntry) {
  LedgerOver audit(store_);
  const std::string carol = "carol@example.com";
  const EntryInput removal =
      Record(ledger_, Action::kMemberRemoved, "owner@example.com", carol, "keys:member-removed:1");
  const EntryInput call = Record(ledger_, Action::kApiCall, carol, "", "edge:call:1");
  const Entry removed = audit.ledger.Append(removal).value().entry;
  const Entry called = audit.ledger.Append(call).value().entry;
  ASSERT_TRUE(audit.ledger.Forget(carol, "dpo@example.com", "erase-carol").value().forgotten);
  const std::string locator = audit.subjects->Locator(carol);
  ASSERT_TRUE(absl::IsNotFound(store_->GetSubjectKey(locator).status()));

  // Delivered again, as subject and as actor: the first entries, and no key for her.
  for (const auto& [record, first] : {std::pair(&removal, &removed), std::pair(&call, &called)}) {
    absl::StatusOr<AppendOutcome> again = audit.ledger.Append(*record);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_TRUE(again->duplicate);
    EXPECT_EQ(again->entry, *first);
    EXPECT_TRUE(absl::IsNotFound(store_->GetSubjectKey(locator).status()));
  }
  // In a batch with a new entry naming someone else, the same.
  absl::StatusOr<std::vector<AppendOutcome>> batch =
      audit.ledger.AppendBatch({removal, Record(ledger_, Action::kMemberAdded, "owner@example.com",
                                                "dave@example.com", "keys:member-added:2")});
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_THAT(*batch, SizeIs(2));
  EXPECT_TRUE((*batch)[0].status.ok()) << (*batch)[0].status;
  EXPECT_TRUE((*batch)[0].duplicate);
  EXPECT_EQ((*batch)[0].entry, removed);
  EXPECT_TRUE((*batch)[1].status.ok()) << (*batch)[1].status;
  EXPECT_FALSE((*batch)[1].duplicate);
  EXPECT_EQ(store_->Size(ledger_).value(), 3u);
  EXPECT_TRUE(absl::IsNotFound(store_->GetSubjectKey(locator).status()));

  // Another request under the id is refused, and makes no key for her either.
  EntryInput changed = removal;
  changed.metadata["role"] = "owner";
  absl::StatusOr<AppendOutcome> refused = audit.ledger.Append(changed);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("keys:member-removed:1"));
  EXPECT_TRUE(absl::IsNotFound(store_->GetSubjectKey(locator).status()));
  EXPECT_EQ(store_->Size(ledger_).value(), 3u);
  // Her entries still reveal no one.
  std::vector<RevealedEntry> entries =
      audit.ledger.Export(ledger_, 0, 10, "auditor@example.com", false).value();
  ASSERT_THAT(entries, SizeIs(3));
  EXPECT_EQ(entries[0].subject, "");
  EXPECT_EQ(entries[1].actor, "");
}

TEST_P(LedgerStoreConformanceTest, ARefusedAppendMakesNoKey) {
  LedgerOver audit(store_);
  const EntryInput dave = Record(ledger_, Action::kMemberAdded, "owner@example.com",
                                 "dave@example.com", "keys:member-added:1");
  const Entry first = audit.ledger.Append(dave).value().entry;
  // The id records Dave's addition: Erin's, under it, is another request.
  for (const EntryInput& other : {Record(ledger_, Action::kMemberAdded, "owner@example.com",
                                         "erin@example.com", "keys:member-added:1"),
                                  Record(ledger_, Action::kMemberAdded, "erin@example.com",
                                         "dave@example.com", "keys:member-added:1")}) {
    absl::StatusOr<AppendOutcome> refused = audit.ledger.Append(other);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition) << refused.status();
  }
  EXPECT_TRUE(absl::IsNotFound(
      store_->GetSubjectKey(audit.subjects->Locator("erin@example.com")).status()));
  EXPECT_EQ(audit.ledger.Append(dave).value().entry, first);
  EXPECT_EQ(store_->Size(ledger_).value(), 1u);
}

TEST_P(LedgerStoreConformanceTest, ANewRecordNamingAForgottenSubjectGetsAFreshKeyOfItsOwn) {
  LedgerOver audit(store_);
  const std::string carol = "carol@example.com";
  const EntryInput added =
      Record(ledger_, Action::kMemberAdded, "owner@example.com", carol, "keys:member-added:1");
  const Entry first = audit.ledger.Append(added).value().entry;
  ASSERT_TRUE(audit.ledger.Forget(carol, "dpo@example.com", "erase-carol").value().forgotten);

  // A change made after the erasure is recorded, readable until she is forgotten again.
  absl::StatusOr<AppendOutcome> later = audit.ledger.Append(
      Record(ledger_, Action::kMemberRemoved, "owner@example.com", carol, "keys:member-removed:2"));
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_FALSE(later->duplicate);
  const absl::StatusOr<SubjectKey> key = store_->GetSubjectKey(audit.subjects->Locator(carol));
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->ref, later->entry.subject.ref);
  EXPECT_NE(key->ref, first.subject.ref);
  std::vector<RevealedEntry> entries =
      audit.ledger.Export(ledger_, 0, 10, "auditor@example.com", false).value();
  ASSERT_THAT(entries, SizeIs(2));
  EXPECT_EQ(entries[0].subject, "");  // Erased, and stays so.
  EXPECT_EQ(entries[1].subject, carol);
  SubjectPage page =
      audit.ledger.ExportSubject(carol, "dpo@example.com", std::nullopt, kMaxPageSize).value();
  ASSERT_THAT(page.entries, SizeIs(1));
  EXPECT_EQ(page.entries[0].entry.index, later->entry.index);

  // The record from before the erasure delivered again: still its first entry, whose
  // pseudonym is not hers any more; her new key stays as it is.
  absl::StatusOr<AppendOutcome> again = audit.ledger.Append(added);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->entry, first);
  EXPECT_EQ(store_->GetSubjectKey(audit.subjects->Locator(carol)).value(), *key);
  EntryInput changed = added;
  changed.metadata["role"] = "owner";
  EXPECT_EQ(audit.ledger.Append(changed).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->Size(ledger_).value(), 2u);
}

// A batch's new subject keys are stored with its entries: someone only its refused entries
// name (here, an entry the batch repeats the request id of, with other content) gets no key.
TEST_P(LedgerStoreConformanceTest, AnEntryRefusedInABatchMakesNoKey) {
  LedgerOver audit(store_);
  const std::string erin = "erin@example.com";
  absl::StatusOr<std::vector<AppendOutcome>> outcomes = audit.ledger.AppendBatch(
      {Record(ledger_, Action::kMemberAdded, "owner@example.com", "dave@example.com",
              "keys:member-added:1"),
       Record(ledger_, Action::kMemberAdded, "owner@example.com", erin, "keys:member-added:1")});
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  ASSERT_THAT(*outcomes, SizeIs(2));
  EXPECT_TRUE((*outcomes)[0].status.ok()) << (*outcomes)[0].status;
  EXPECT_EQ((*outcomes)[1].status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->Size(ledger_).value(), 1u);
  EXPECT_TRUE(absl::IsNotFound(store_->GetSubjectKey(audit.subjects->Locator(erin)).status()));
  EXPECT_TRUE(store_->GetSubjectKey(audit.subjects->Locator("dave@example.com")).ok());
}

// Batches appended at once that name the same new people all succeed, and each person gets
// one key: an AuditLedger makes one batch's new keys at a time (a store refuses a second key
// for one person, ABORTED, and a batch is sealed again only once).
TEST_P(LedgerStoreConformanceTest, ConcurrentBatchesNamingNewPeopleMakeOneKeyEach) {
  LedgerOver audit(store_);
  constexpr int kThreads = 8, kBatches = 10;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int b = 0; b < kBatches; ++b) {
        std::vector<EntryInput> batch;
        // Each batch names people other batches name too, most of them new to the ledger.
        for (int p = 0; p < 10; ++p) {
          const int who = b * 5 + t + p;
          batch.push_back(Record(ledger_, Action::kApiCall,
                                 absl::StrCat("user-", who, "@example.com"), "",
                                 absl::StrCat("edge:call:", t, "-", b, "-", p)));
        }
        absl::StatusOr<std::vector<AppendOutcome>> outcomes = audit.ledger.AppendBatch(batch);
        EXPECT_TRUE(outcomes.ok()) << outcomes.status();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const std::vector<Entry> entries = ReadAll(ledger_);
  EXPECT_EQ(entries.size(), static_cast<size_t>(kThreads * kBatches * 10));
  std::set<std::string> refs;
  for (const Entry& e : entries) refs.insert(e.actor.ref);
  std::set<std::string> named;
  for (int t = 0; t < kThreads; ++t) {
    for (int b = 0; b < kBatches; ++b) {
      for (int p = 0; p < 10; ++p) named.insert(absl::StrCat(b * 5 + t + p));
    }
  }
  EXPECT_EQ(refs.size(), named.size());  // One pseudonym per person.
}

// A store may keep the subject keys it found or stored; another replica destroying one (the
// subject forgotten) makes the next append sealed with it fail, and the key is looked up
// afresh after. (The memory store has no replicas: it destroys the key itself.)
TEST_P(LedgerStoreConformanceTest, AppendRefusesAKeyAReplicaDestroyed) {
  std::unique_ptr<LedgerStore> replica_store =
      backend_.replica ? backend_.replica() : std::unique_ptr<LedgerStore>();
  LedgerStore* replica = replica_store != nullptr ? replica_store.get() : store_;
  auto key = [&](const std::string& wrapped) {
    return SubjectKey{Ref("locator of erin"), Ref(absl::StrCat("pseudonym under ", wrapped)),
                      wrapped, std::nullopt};
  };
  const SubjectKey first = key("first");
  Entry e = NewEntry(ledger_, 0);
  e.actor = SealedSubject{first.ref, "sealed erin"};
  // The transaction, then the one statement:
  ASSERT_THAT(AppendAll({e}, store_, {first}), SizeIs(1));
  e = NewEntry(ledger_, 1);
  e.actor = SealedSubject{first.ref, "sealed erin"};
  ASSERT_THAT(AppendAll({e}), SizeIs(1));

  ASSERT_TRUE(replica->DeleteSubjectKey(first.locator).value());
  e = NewEntry(ledger_, 2);
  e.actor = SealedSubject{first.ref, "sealed erin"};
  absl::StatusOr<std::vector<AppendOutcome>> refused = store_->Append({e}, {});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kAborted) << refused.status();
  EXPECT_EQ(store_->Size(ledger_).value(), 2u);
  // Looked up again: none; a new key, stored with the entry sealed again.
  EXPECT_THAT(store_->FindSubjectKeys({first.locator}).value(), IsEmpty());
  const SubjectKey second = key("second");
  e.actor = SealedSubject{second.ref, "sealed erin again"};
  std::vector<Entry> appended = AppendAll({e}, store_, {second});
  ASSERT_THAT(appended, SizeIs(1));
  EXPECT_EQ(appended[0].index, 2u);
  EXPECT_EQ(store_->GetSubjectKey(first.locator).value(), second);

  // The transaction path (a store whose tree is stale) checks as well.
  ASSERT_TRUE(replica->DeleteSubjectKey(second.locator).value());
  ASSERT_THAT(AppendAll({NewEntry(ledger_, 3)}, replica), SizeIs(1));
  e = NewEntry(ledger_, 4);
  e.actor = SealedSubject{second.ref, "sealed"};
  EXPECT_EQ(store_->Append({e}, {}).status().code(), absl::StatusCode::kAborted);
  EXPECT_EQ(store_->Size(ledger_).value(), 4u);
}

// A forgetting is kept (the latest), found by locator, and refuses a new key made for the
// subject by a batch that had not seen it, on either append path; purged, it is gone.
TEST_P(LedgerStoreConformanceTest, AForgettingRefusesNewKeysOfBatchesThatHadNotSeenIt) {
  const std::string erin = Ref("locator of erin");
  const std::string other = Ref("locator of nobody forgotten");
  // Long ago, so that purging below removes no forgetting of another test sharing the store.
  const absl::Time t1 = absl::FromUnixMicros(40'000'000'123'456);
  ASSERT_TRUE(store_->RecordForgotten(erin, t1).ok());
  ASSERT_TRUE(store_->RecordForgotten(erin, t1 - absl::Minutes(5)).ok());  // Earlier: kept t1.
  absl::flat_hash_map<std::string, absl::Time> found = store_->FindForgotten({erin, other}).value();
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found.at(erin), t1);
  EXPECT_THAT(store_->FindForgotten({}).value(), IsEmpty());

  auto naming = [&](int n, const SubjectKey& key) {
    Entry e = NewEntry(ledger_, n);
    e.actor = SealedSubject{key.ref, "sealed erin"};
    return e;
  };
  SubjectKey unseen{erin, Ref("pseudonym under unseen"), "unseen", std::nullopt};
  SubjectKey stale{erin, Ref("pseudonym under stale"), "stale", t1 - absl::Minutes(5)};
  for (const SubjectKey& refused : {unseen, stale}) {
    absl::StatusOr<std::vector<AppendOutcome>> appended =
        store_->Append({naming(0, refused)}, {refused});
    EXPECT_EQ(appended.status().code(), absl::StatusCode::kAborted) << appended.status();
    EXPECT_THAT(appended.status().message(), HasSubstr("forgotten meanwhile"));
    // The transaction path (a store whose tree is stale) checks as well.
    if (backend_.replica) {
      EXPECT_EQ(backend_.replica()->Append({naming(0, refused)}, {refused}).status().code(),
                absl::StatusCode::kAborted);
    }
  }
  EXPECT_EQ(store_->Size(ledger_).value(), 0u);
  EXPECT_EQ(store_->GetSubjectKey(erin).status().code(), absl::StatusCode::kNotFound);

  // A batch that saw the forgetting stores its key (without the time it saw).
  const SubjectKey seen{erin, Ref("pseudonym under seen"), "seen", t1};
  ASSERT_THAT(AppendAll({naming(0, seen)}, store_, {seen}), SizeIs(1));
  SubjectKey stored = seen;
  stored.forgotten_at.reset();
  EXPECT_EQ(store_->GetSubjectKey(erin).value(), stored);
  EXPECT_EQ(store_->FindSubjectKeys({erin}).value().at(erin), stored);

  // A later forgetting replaces t1; purging what is older than it removes nothing, purging
  // past it removes it.
  const absl::Time t2 = t1 + absl::Hours(1);
  ASSERT_TRUE(store_->RecordForgotten(erin, t2).ok());
  EXPECT_EQ(store_->FindForgotten({erin}).value().at(erin), t2);
  ASSERT_TRUE(store_->PurgeForgotten(t2).ok());
  EXPECT_EQ(store_->FindForgotten({erin}).value().size(), 1u);
  absl::StatusOr<int64_t> purged = store_->PurgeForgotten(t2 + absl::Microseconds(1));
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_GE(*purged, 1);
  EXPECT_THAT(store_->FindForgotten({erin}).value(), IsEmpty());
}

// --- PostgreSQL only: what the database itself enforces. ---

// A batch that fails stores none of the subject keys it made.
TEST_P(LedgerStoreConformanceTest, AFailedBatchMakesNoKey) {
  if (!postgres()) GTEST_SKIP() << "the memory store does not validate ledgers";
  LedgerOver audit(store_);
  const std::string frank = "frank@example.com";
  // The second ledger violates the table's CHECK.
  absl::StatusOr<std::vector<AppendOutcome>> failed = audit.ledger.AppendBatch(
      {Record(ledger_, Action::kMemberAdded, "owner@example.com", frank, "keys:member-added:1"),
       Record(Ledger("", "zzz"), Action::kApiCall, "svc", "", "")});
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(store_->Size(ledger_).value(), 0u);
  for (const std::string& who : {frank, std::string("owner@example.com")}) {
    EXPECT_TRUE(absl::IsNotFound(store_->GetSubjectKey(audit.subjects->Locator(who)).status()))
        << who;
  }
}

// Appends and the destruction of subject keys are ordered: once a key's destruction has
// committed, no entry under it is committed after (an append then seals its entries under a
// fresh key). Appenders keep naming one subject while another replica destroys each key she
// gets; every key destroyed must be absent from the entries past the ledger's size read after
// its destruction.
TEST_P(LedgerStoreConformanceTest, AppendsAndTheDestructionOfSubjectKeysAreOrdered) {
  if (!postgres()) GTEST_SKIP() << "replicas";
  LedgerOver audit(store_);
  std::unique_ptr<LedgerStore> replica = backend_.replica();
  const std::string carol = "carol@example.com";
  const std::string locator = audit.subjects->Locator(carol);
  constexpr int kAppenders = 2, kBatches = 25, kBatchSize = 200;
  std::atomic<int> appenders_left{kAppenders};
  std::atomic<int> batches_appended{0};
  std::vector<std::thread> appenders;
  for (int t = 0; t < kAppenders; ++t) {
    appenders.emplace_back([&, t] {
      for (int b = 0; b < kBatches; ++b) {
        std::vector<EntryInput> batch;
        for (int i = 0; i < kBatchSize; ++i) {
          batch.push_back(Record(ledger_, Action::kApiCall, carol, "",
                                 absl::StrCat("edge:call:", t, "-", b, "-", i)));
        }
        // ABORTED too when both attempts met a destruction (or a concurrent new key).
        absl::StatusOr<std::vector<AppendOutcome>> outcomes = audit.ledger.AppendBatch(batch);
        if (outcomes.ok()) {
          ++batches_appended;
        } else {
          EXPECT_EQ(outcomes.status().code(), absl::StatusCode::kAborted) << outcomes.status();
        }
      }
      --appenders_left;
    });
  }
  struct Destroyed {
    std::string ref;
    uint64_t size_after = 0;  // The ledger's size read once the destruction committed.
  };
  std::vector<Destroyed> destroyed;
  while (appenders_left > 0) {
    absl::StatusOr<SubjectKey> key = replica->GetSubjectKey(locator);
    if (!key.ok()) {
      ASSERT_TRUE(absl::IsNotFound(key.status())) << key.status();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    ASSERT_TRUE(replica->DeleteSubjectKey(locator).value());
    destroyed.push_back(Destroyed{key->ref, replica->Size(ledger_).value()});
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  for (std::thread& t : appenders) t.join();
  EXPECT_GT(batches_appended.load(), 0);
  EXPECT_GT(destroyed.size(), 2u);
  const std::vector<Entry> entries = ReadAll(ledger_);
  int late = 0;
  for (const Destroyed& d : destroyed) {
    for (uint64_t i = d.size_after; i < entries.size(); ++i) {
      if (entries[i].actor.ref == d.ref) ++late;
    }
  }
  EXPECT_EQ(late, 0) << "entries committed under a key after its destruction had committed";
  VerifyLedger(entries);
}

// A key that names nothing does not stop a retried forget. This release stores a key only with
// an entry naming it; a replica of an earlier release (during a rolling upgrade) made keys on
// their own, through get_or_add_subject_keys (003_one_round_trip.sql, kept for it), and one
// whose append then failed names nothing.
TEST_P(LedgerStoreConformanceTest,
       AKeyAnEarlierReleaseMadeThatNamesNothingDoesNotStopARetriedForget) {
  if (!postgres()) GTEST_SKIP() << "a function for replicas of an earlier release";
  LedgerOver audit(store_);
  const std::string carol = "carol@example.com";
  ASSERT_TRUE(
      audit.ledger.Append(Record(ledger_, Action::kApiCall, carol, "", "edge:call:5")).ok());
  absl::StatusOr<ForgetResult> first = audit.ledger.Forget(carol, "dpo", "erase-1");
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(first->forgotten);
  // An earlier release's replica made her a key again for a new record, whose append failed.
  const SubjectKey key = audit.subjects->NewKey(carol).value();
  const absl::Status made = backend_.pool->Autocommit([&](pqxx::nontransaction& tx) {
    tx.exec_params(
        "SELECT * FROM audit.get_or_add_subject_keys('', ARRAY[$1::bytea], ARRAY[$2::bytea], "
        "ARRAY[$3::bytea])",
        pqxx::binarystring(key.locator), pqxx::binarystring(key.ref),
        pqxx::binarystring(key.wrapped));
    return absl::OkStatus();
  });
  ASSERT_TRUE(made.ok()) << made;
  ASSERT_EQ(store_->GetSubjectKey(key.locator).value(), key);
  absl::StatusOr<ForgetResult> retry = audit.ledger.Forget(carol, "dpo", "erase-1");
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(retry->forgotten);
  EXPECT_EQ(retry->entry.index, first->entry.index);
  EXPECT_TRUE(absl::IsNotFound(store_->GetSubjectKey(key.locator).status()));
  // Once an entry names her again, that id no longer forgets her.
  ASSERT_TRUE(
      audit.ledger.Append(Record(ledger_, Action::kApiCall, carol, "", "edge:call:6")).ok());
  EXPECT_EQ(audit.ledger.Forget(carol, "dpo", "erase-1").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_P(LedgerStoreConformanceTest, AppendIsAllOrNothing) {
  if (!postgres()) GTEST_SKIP() << "the memory store does not validate ledgers";
  AppendAll({NewEntry(ledger_, 0)});
  // The second ledger violates the table's CHECK after the first one's rows are inserted.
  absl::StatusOr<std::vector<AppendOutcome>> failed = store_->Append(
      {NewEntry(ledger_, 1), NewEntry(ledger_, 2), NewEntry(Ledger("", "zzz"), 3)}, {});
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(store_->Size(ledger_).value(), 1u);
  std::vector<Entry> next = AppendAll({NewEntry(ledger_, 4)});
  ASSERT_THAT(next, SizeIs(1));
  EXPECT_EQ(next[0].index, 1u);
  VerifyLedger(ReadAll(ledger_));
}

// The statement a store of an earlier release appends with when it holds the ledger's tree
// (migrations/003_one_round_trip.sql, with the MAC since 004_entry_mac.sql; kept for such
// replicas during a rolling upgrade, 006_subject_keys_with_entries.sql), called directly: each
// of its answers, and what each leaves stored.
TEST_P(LedgerStoreConformanceTest, OneStatementAppend) {
  if (!postgres()) GTEST_SKIP() << "a PostgreSQL function";
  ASSERT_THAT(AppendAll({NewEntry(ledger_, 0, "r0")}), SizeIs(1));
  pg::Pool* pool = backend_.pool.get();
  auto append = [&](int size, const std::string& leaf, const std::string& request_id,
                    bool retry = false, const std::string& ref = "") {
    std::string result;
    absl::Status status = pool->Autocommit([&](pqxx::nontransaction& tx) {
      const std::string ledger =
          absl::StrCat("(SELECT id FROM audit.ledgers WHERE project = '", ledger_.project, "')");
      result = tx.exec_params1(
                     absl::StrCat(
                         "SELECT audit.append_entries('', 1, 2, ", ledger,
                         ", $1::bigint, $2::bytea, $4::boolean, ARRAY[$3::text], "
                         "array_remove(ARRAY[$5::bytea], ''), ARRAY[$1::bigint], ARRAY[now()], "
                         "ARRAY['api_call'], ARRAY[''::bytea], ARRAY[''::bytea], ARRAY['m'], "
                         "ARRAY[1::bigint], ARRAY[1::bigint], ARRAY['success'], ARRAY[''::bytea], "
                         "ARRAY[''::bytea], ARRAY[$3::text], ARRAY[''::bytea], ARRAY[''::bytea], "
                         "ARRAY[$2::bytea], ARRAY[''::bytea], ARRAY[sha256($2::bytea)])"),
                     size, pqxx::binarystring(leaf), request_id, retry, pqxx::binarystring(ref))[0]
                   .as<std::string>();
      return absl::OkStatus();
    });
    EXPECT_TRUE(status.ok()) << status;
    return result;
  };
  const std::string leaf(32, 'a'), other_leaf(32, 'b');
  EXPECT_EQ(append(0, leaf, "r1"), "moved");  // Sealed against a stale size.
  EXPECT_EQ(append(1, leaf, "r0"), "request used");
  // Sealed with a subject key that no longer exists (or never did).
  EXPECT_EQ(append(1, leaf, "r1", false, Ref("forgotten")), "key destroyed");
  EXPECT_EQ(store_->Size(ledger_).value(), 1u);
  EXPECT_EQ(append(1, leaf, "r1"), "appended");
  EXPECT_EQ(store_->Size(ledger_).value(), 2u);
  std::string mac;
  ASSERT_TRUE(pool->Autocommit([&](pqxx::nontransaction& tx) {
                    mac = pqxx::binarystring(
                              tx.exec1(absl::StrCat("SELECT mac FROM audit.entries WHERE idx = 1 "
                                                    "AND ledger_id = (SELECT id FROM audit.ledgers "
                                                    "WHERE project = '",
                                                    ledger_.project, "')"))[0])
                              .str();
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_EQ(mac, crypto::Sha256(leaf));  // The MAC array, stored.
  // The same statement once more, retried (its connection broke before the answer came back),
  // and not: another writer's identical entry.
  EXPECT_EQ(append(1, leaf, "r1", /*retry=*/true), "appended before");
  EXPECT_EQ(append(1, leaf, "r1"), "moved");
  EXPECT_EQ(append(1, other_leaf, "r2", /*retry=*/true), "moved");
  EXPECT_EQ(store_->Size(ledger_).value(), 2u);
  // The switch to the writer role ended with the statement (on the connection used last,
  // which the pool hands out first).
  absl::Status role = pool->Autocommit([](pqxx::nontransaction& tx) -> absl::Status {
    if (tx.exec1("SELECT current_user = session_user")[0].as<bool>()) return absl::OkStatus();
    return absl::InternalError("the role switch outlived the statement");
  });
  EXPECT_TRUE(role.ok()) << role;
}

// The one statement of an append making a key checks the subject's forgettings once the batch
// is appended (refusing it whole when one came after what the batch saw); a retried statement
// whose batch was appended before is answered as such, whatever was forgotten since.
TEST_P(LedgerStoreConformanceTest, OneStatementAppendChecksNewKeysAgainstForgettings) {
  if (!postgres()) GTEST_SKIP() << "a PostgreSQL function";
  ASSERT_THAT(AppendAll({NewEntry(ledger_, 0, "r0")}), SizeIs(1));
  const std::string locator = Ref("locator of ivy"), ref = Ref("pseudonym of ivy");
  const absl::Time forgotten = absl::FromUnixSeconds(50'000'000);
  ASSERT_TRUE(store_->RecordForgotten(locator, forgotten).ok());
  pg::Pool* pool = backend_.pool.get();
  const std::string leaf(32, 'i');
  auto append = [&](const std::optional<absl::Time>& seen,
                    bool retry) -> absl::StatusOr<std::string> {
    std::string result;
    RETURN_IF_ERROR(pool->Autocommit([&](pqxx::nontransaction& tx) {
      result =
          tx.exec_params1(
                absl::StrCat(
                    "SELECT audit.append_entries(1, 2, 3, 4, (SELECT id FROM audit.ledgers "
                    "WHERE project = '",
                    ledger_.project,
                    "'), 1::bigint, $1::bytea, $5::boolean, ARRAY['r1'], '{}'::bytea[], "
                    "ARRAY[$2::bytea], ARRAY[$3::bytea], ARRAY['wrapped'::bytea], "
                    "ARRAY[$4::timestamptz], ARRAY[1::bigint], ARRAY[now()], ARRAY['api_call'], "
                    "ARRAY[$3::bytea], ARRAY['sealed'::bytea], ARRAY['m'], ARRAY[1::bigint], "
                    "ARRAY[1::bigint], ARRAY['success'], ARRAY[''::bytea], ARRAY[''::bytea], "
                    "ARRAY['r1'], ARRAY[''::bytea], ARRAY[''::bytea], ARRAY[$1::bytea], "
                    "ARRAY[''::bytea], ARRAY[sha256($1::bytea)])"),
                pqxx::binarystring(leaf), pqxx::binarystring(locator), pqxx::binarystring(ref),
                seen.has_value() ? absl::FormatTime(absl::RFC3339_full, *seen, absl::UTCTimeZone())
                                 : std::string("-infinity"),
                retry)[0]
              .as<std::string>();
      return absl::OkStatus();
    }));
    return result;
  };
  absl::StatusOr<std::string> unseen = append(std::nullopt, false);
  EXPECT_EQ(unseen.status().code(), absl::StatusCode::kAborted) << unseen.status();
  EXPECT_THAT(unseen.status().message(), HasSubstr("forgotten meanwhile"));
  EXPECT_EQ(store_->Size(ledger_).value(), 1u);
  EXPECT_EQ(store_->GetSubjectKey(locator).status().code(), absl::StatusCode::kNotFound);

  EXPECT_EQ(append(forgotten, false).value_or("failed"), "appended");
  EXPECT_EQ(store_->Size(ledger_).value(), 2u);
  EXPECT_EQ(store_->GetSubjectKey(locator).value().ref, ref);
  ASSERT_TRUE(store_->RecordForgotten(locator, forgotten + absl::Hours(1)).ok());
  EXPECT_EQ(append(forgotten, /*retry=*/true).value_or("failed"), "appended before");
  EXPECT_EQ(store_->Size(ledger_).value(), 2u);
  ASSERT_TRUE(store_->PurgeForgotten(forgotten + absl::Hours(2)).ok());
}

TEST_P(LedgerStoreConformanceTest, LedgerTablesAreAppendOnly) {
  if (!postgres()) GTEST_SKIP() << "database privileges and triggers";
  std::vector<Entry> appended = AppendAll({NewEntry(ledger_, 0), NewEntry(ledger_, 1)});
  ASSERT_THAT(appended, SizeIs(2));
  Checkpoint c;
  c.ledger = ledger_;
  c.tree_size = 2;
  c.time = base_;
  c.signature = "sig";
  ASSERT_TRUE(store_->AddCheckpoint(c).ok());
  pg::Pool* pool = backend_.pool.get();
  auto run = [&](const std::string& sql) {
    return pool->Transact([&](pqxx::work& tx) {
      tx.exec(sql);
      return absl::OkStatus();
    });
  };
  const std::string mine =
      absl::StrCat("(SELECT id FROM audit.ledgers WHERE project = '", ledger_.project, "')");
  // The owner (the login role) is refused by the triggers.
  for (const std::string& sql : {
           absl::StrCat("UPDATE audit.entries SET tokens = 0 WHERE ledger_id = ", mine),
           absl::StrCat("DELETE FROM audit.entries WHERE ledger_id = ", mine),
           std::string("TRUNCATE audit.entries"),
           absl::StrCat("UPDATE audit.ledgers SET project = 'x' WHERE id = ", mine),
           absl::StrCat("DELETE FROM audit.checkpoints WHERE ledger_id = ", mine),
           std::string("TRUNCATE audit.ledgers CASCADE"),
       }) {
    absl::Status status = run(sql);
    EXPECT_FALSE(status.ok()) << sql;
    EXPECT_THAT(status.message(), HasSubstr("audit ledger tables are append-only")) << sql;
  }
  // The writer role may not change rows even with the triggers disabled by the owner (in a
  // transaction that rolls back, which enables them again).
  for (const std::string& change : {
           absl::StrCat("UPDATE audit.entries SET tokens = 0 WHERE ledger_id = ", mine),
           absl::StrCat("DELETE FROM audit.entries WHERE ledger_id = ", mine),
           std::string("TRUNCATE audit.entries"),
           absl::StrCat("UPDATE audit.checkpoints SET key_id = 'x' WHERE ledger_id = ", mine),
       }) {
    absl::Status status = pool->Transact([&](pqxx::work& tx) {
      tx.exec("ALTER TABLE audit.entries DISABLE TRIGGER USER");
      tx.exec("ALTER TABLE audit.checkpoints DISABLE TRIGGER USER");
      tx.exec(absl::StrCat("SET LOCAL ROLE ", kWriterRole));
      tx.exec(change);
      return absl::OkStatus();
    });
    EXPECT_FALSE(status.ok()) << change;
    EXPECT_THAT(status.message(), HasSubstr("permission denied")) << change;
  }
  absl::Status enabled = pool->Transact([&](pqxx::work& tx) -> absl::Status {
    pqxx::result rows = tx.exec(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'audit.entries'::regclass "
        "AND NOT tgisinternal AND tgenabled = 'O'");
    if (rows[0][0].as<int>() != 2) return absl::InternalError("triggers not enabled");
    return absl::OkStatus();
  });
  EXPECT_TRUE(enabled.ok()) << enabled;
  EXPECT_EQ(ReadAll(ledger_), appended);
  // Subject keys alone may be deleted (crypto-shredding), by the writer too: see SubjectKeys.
}

TEST_P(LedgerStoreConformanceTest, CheckRole) {
  if (!postgres()) GTEST_SKIP() << "database roles";
  pg::Pool* pool = backend_.pool.get();
  EXPECT_TRUE(PostgresLedgerStore::CheckRole(pool, kWriterRole).ok());
  EXPECT_TRUE(PostgresLedgerStore::CheckRole(pool, "").ok());
  absl::Status missing = PostgresLedgerStore::CheckRole(pool, "policy_audit_no_such_role");
  EXPECT_EQ(missing.code(), absl::StatusCode::kFailedPrecondition) << missing;
  EXPECT_THAT(missing.message(), HasSubstr("CREATE ROLE policy_audit_no_such_role NOLOGIN; "
                                           "GRANT policy_audit_no_such_role TO "));
  // A store whose role is missing fails every transaction, and changes nothing.
  PostgresLedgerStore broken(pool, "policy_audit_no_such_role");
  EXPECT_FALSE(broken.Append({NewEntry(ledger_, 0)}, {}).ok());
  EXPECT_EQ(store_->Size(ledger_).value(), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Stores, LedgerStoreConformanceTest,
    ::testing::Values(std::make_pair(std::string("memory"), BackendFactory(MakeMemory)),
                      std::make_pair(std::string("postgres"), BackendFactory(MakePostgres))),
    [](const auto& info) { return info.param.first; });

}  // namespace
}  // namespace policy::audit
