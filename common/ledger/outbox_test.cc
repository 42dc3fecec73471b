// One suite, every Outbox: the memory outbox always, PostgreSQL whenever a test database is
// configured (always in CI: POLICY_TEST_REQUIRE_PG=1 makes a missing one fatal). Then the
// relay, against a destination that answers as told.
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/ledger/memory_outbox.h"
#include "common/ledger/outbox_relay.h"
#include "common/ledger/postgres_outbox.h"
#include "common/pg/test_database.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/text_serializer.h"

namespace policy::ledger {
namespace {

using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

constexpr char kTableSql[] = R"sql(
CREATE TABLE ledger_outbox (
  seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  action      text NOT NULL,
  actor       text NOT NULL,
  project     text NOT NULL,
  environment text NOT NULL,
  subject     text NOT NULL,
  request_id  text NOT NULL,
  metadata    text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  attempts    integer NOT NULL DEFAULT 0,
  last_error  text NOT NULL DEFAULT '',
  failed      boolean NOT NULL DEFAULT false
);
CREATE INDEX ledger_outbox_pending ON ledger_outbox (seq) WHERE NOT failed;
)sql";

LedgerRecord Record(int n) {
  return LedgerRecord{.action = "MEMBER_ADDED",
                      .actor = "alice",
                      .project = n % 2 == 0 ? "" : "support-eu",
                      .environment = n % 2 == 0 ? "" : "production",
                      .subject = absl::StrCat("m", n),
                      .request_id = absl::StrCat("test:", n),
                      .metadata = {{"n", absl::StrCat(n)}, {"odd\tkey\n", "a \"value\"\\\n"}}};
}

// An outbox under test, and a way to commit records into it as a store does.
struct Backend {
  std::unique_ptr<Outbox> outbox;
  std::function<void(std::vector<LedgerRecord>)> commit;
  // The outbox's EraseFromFailed, in a change of its own.
  std::function<int(std::function<bool(absl::string_view)>)> erase_from_failed;
  // A second outbox on the same records (another replica), when the backend has replicas.
  std::function<std::unique_ptr<Outbox>()> replica;
  // Runs SQL on the outbox's database, when it has one.
  std::function<void(const std::string&)> sql;
  std::shared_ptr<void> keep_alive;
};

Backend MakeMemory() {
  auto outbox = std::make_unique<MemoryOutbox>();
  MemoryOutbox* raw = outbox.get();
  Backend b;
  b.outbox = std::move(outbox);
  b.commit = [raw](std::vector<LedgerRecord> r) { raw->Add(std::move(r)); };
  b.erase_from_failed = [raw](std::function<bool(absl::string_view)> erased) {
    return raw->EraseFromFailed(erased);
  };
  return b;
}

Backend MakePostgres() {
  static const pg::Migration kMigrations[] = {{1, "ledger_outbox", kTableSql}};
  std::shared_ptr<pg::Pool> pool =
      pg::TestDatabase::Get()
          ->Reset("ledger_test", {std::begin(kMigrations), std::end(kMigrations)},
                  "TRUNCATE ledger_test.ledger_outbox")
          .value();
  auto outbox = std::make_unique<PostgresOutbox>(pool.get(), "ledger_test.ledger_outbox");
  PostgresOutbox* raw = outbox.get();
  Backend b;
  b.outbox = std::move(outbox);
  b.commit = [pool, raw](std::vector<LedgerRecord> r) {
    ASSERT_TRUE(pool->Transact([&](pqxx::work& tx) {
                      raw->Write(tx, r);
                      return absl::OkStatus();
                    })
                    .ok());
  };
  b.erase_from_failed = [pool, raw](std::function<bool(absl::string_view)> erased) {
    int changed = -1;
    EXPECT_TRUE(pool->Transact([&](pqxx::work& tx) {
                      changed = raw->EraseFromFailed(tx, erased);
                      return absl::OkStatus();
                    })
                    .ok());
    return changed;
  };
  b.replica = [pool] {
    return std::make_unique<PostgresOutbox>(pool.get(), "ledger_test.ledger_outbox");
  };
  b.sql = [pool](const std::string& statement) {
    ASSERT_TRUE(pool->Transact([&](pqxx::work& tx) {
                      tx.exec(statement);
                      return absl::OkStatus();
                    })
                    .ok());
  };
  b.keep_alive = pool;
  return b;
}

class OutboxTest : public ::testing::TestWithParam<std::function<Backend()>> {
 protected:
  void SetUp() override {
    if (GetParam() == nullptr) GTEST_SKIP() << "POLICY_TEST_PG_URL not set";
    backend_ = GetParam()();
  }
  Backend backend_;
};

Delivery Taken() { return Delivery{Delivery::Result::kRecorded, ""}; }

TEST_P(OutboxTest, RecordsComeOutInOrderAsWrittenAndLeaveOnceTaken) {
  backend_.commit({Record(1), Record(2)});
  backend_.commit({Record(3)});
  std::vector<LedgerRecord> seen;
  absl::StatusOr<OutboxDrain> drain = backend_.outbox->Drain(10, [&](const OutboxEntry& e) {
    seen.push_back(e.record);
    return Taken();
  });
  ASSERT_TRUE(drain.ok()) << drain.status();
  EXPECT_THAT(seen, ElementsAre(Record(1), Record(2), Record(3)));  // Metadata intact.
  EXPECT_EQ(drain->delivered, 3);
  EXPECT_EQ(drain->pending, 0);
  EXPECT_THAT(backend_.outbox->Read(10).value(), IsEmpty());
}

// Each record carries the time its change was written, however much later it is delivered:
// the audit ledger decides from it whether a person forgotten in between is named.
TEST_P(OutboxTest, EachRecordKeepsTheTimeItWasWritten) {
  const absl::Time before = absl::Now() - absl::Microseconds(1);
  backend_.commit({Record(1)});
  const absl::Time between = absl::Now();
  absl::SleepFor(absl::Milliseconds(20));
  backend_.commit({Record(2)});
  const absl::Time after = absl::Now() + absl::Microseconds(1);
  absl::SleepFor(absl::Milliseconds(20));
  std::vector<absl::Time> times;
  ASSERT_TRUE(backend_.outbox
                  ->Drain(10,
                          [&](const OutboxEntry& e) {
                            times.push_back(e.occurred_at);
                            return Taken();
                          })
                  .ok());
  ASSERT_EQ(times.size(), 2u);
  EXPECT_GE(times[0], before);
  EXPECT_LE(times[0], between);
  EXPECT_GT(times[1], between);
  EXPECT_LE(times[1], after);
}

TEST_P(OutboxTest, ARetryStopsTheDrainAndNothingOvertakesIt) {
  backend_.commit({Record(1), Record(2)});
  int calls = 0;
  absl::StatusOr<OutboxDrain> drain = backend_.outbox->Drain(10, [&](const OutboxEntry&) {
    ++calls;
    return Delivery{Delivery::Result::kRetry, "audit unavailable"};
  });
  ASSERT_TRUE(drain.ok()) << drain.status();
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(drain->retry);
  EXPECT_EQ(drain->pending, 2);
  std::vector<OutboxEntry> left = backend_.outbox->Read(10).value();
  ASSERT_THAT(left, SizeIs(2));
  EXPECT_EQ(left[0].attempts, 1);
  EXPECT_EQ(left[0].last_error, "audit unavailable");
  EXPECT_EQ(left[1].attempts, 0);
}

TEST_P(OutboxTest, ARefusedRecordStaysMarkedFailedAndIsNotHandedOutAgain) {
  backend_.commit({Record(1), Record(2)});
  std::vector<std::string> seen;
  auto refuse_first = [&](const OutboxEntry& e) {
    seen.push_back(e.record.request_id);
    return e.record.request_id == "test:1" ? Delivery{Delivery::Result::kRefused, "bad action"}
                                           : Taken();
  };
  absl::StatusOr<OutboxDrain> drain = backend_.outbox->Drain(10, refuse_first);
  ASSERT_TRUE(drain.ok()) << drain.status();
  EXPECT_EQ(drain->refused, 1);
  EXPECT_EQ(drain->delivered, 1);
  EXPECT_EQ(drain->failed, 1);
  EXPECT_EQ(drain->pending, 0);
  ASSERT_TRUE(backend_.outbox->Drain(10, refuse_first).ok());
  EXPECT_THAT(seen, ElementsAre("test:1", "test:2"));
  std::vector<OutboxEntry> left = backend_.outbox->Read(10).value();
  ASSERT_THAT(left, SizeIs(1));
  EXPECT_TRUE(left[0].failed);
  EXPECT_EQ(left[0].last_error, "bad action");
}

// An erasure reaches the identifiers of entries refused for good, which are never delivered
// (and so never sealed by the ledger); entries still to deliver keep theirs.
TEST_P(OutboxTest, ErasingReachesFailedEntriesOnly) {
  backend_.commit({Record(1), Record(2), Record(3)});
  absl::StatusOr<OutboxDrain> drain = backend_.outbox->Drain(10, [](const OutboxEntry& e) {
    if (e.record.request_id == "test:1") return Delivery{Delivery::Result::kRefused, "bad action"};
    if (e.record.request_id == "test:2") return Delivery{Delivery::Result::kRefused, ""};
    return Delivery{Delivery::Result::kRetry, "unreachable"};
  });
  ASSERT_TRUE(drain.ok()) << drain.status();
  ASSERT_EQ(drain->failed, 2);

  // m1 names a failed entry, m3 the one still to deliver.
  EXPECT_EQ(
      backend_.erase_from_failed([](absl::string_view id) { return id == "m1" || id == "m3"; }), 1);
  EXPECT_EQ(backend_.erase_from_failed([](absl::string_view id) { return id == "alice"; }), 2);
  EXPECT_EQ(backend_.erase_from_failed([](absl::string_view id) { return id == "alice"; }), 0);

  std::vector<OutboxEntry> left = backend_.outbox->Read(10).value();
  ASSERT_THAT(left, SizeIs(3));
  EXPECT_EQ(left[0].record.actor, "");
  EXPECT_EQ(left[0].record.subject, "");
  EXPECT_EQ(left[0].last_error, "bad action (subject erased) (actor erased)");
  EXPECT_EQ(left[0].record.metadata, Record(1).metadata);
  EXPECT_EQ(left[1].record.actor, "");
  EXPECT_EQ(left[1].record.subject, "m2");
  EXPECT_EQ(left[1].last_error, "(actor erased)");
  EXPECT_FALSE(left[2].failed);
  EXPECT_EQ(left[2].record, Record(3));
  EXPECT_EQ(left[2].last_error, "unreachable");
}

TEST_P(OutboxTest, ADamagedRowIsSetAsideWithoutBlockingTheRest) {
  if (!backend_.sql) GTEST_SKIP() << "only a database's rows can be damaged";
  backend_.commit({Record(1)});
  backend_.sql(
      "UPDATE ledger_test.ledger_outbox SET metadata = 'no tab in this line' "
      "WHERE request_id = 'test:1'");
  backend_.commit({Record(2)});
  std::vector<std::string> seen;
  absl::StatusOr<OutboxDrain> drain = backend_.outbox->Drain(10, [&](const OutboxEntry& e) {
    seen.push_back(e.record.request_id);
    return Taken();
  });
  ASSERT_TRUE(drain.ok()) << drain.status();
  EXPECT_THAT(seen, ElementsAre("test:2"));
  EXPECT_EQ(drain->refused, 1);
  EXPECT_EQ(drain->failed, 1);
  EXPECT_EQ(drain->pending, 0);
}

TEST_P(OutboxTest, OneDrainAtATime) {
  backend_.commit({Record(1)});
  std::unique_ptr<Outbox> replica = backend_.replica ? backend_.replica() : nullptr;
  Outbox* other = replica != nullptr ? replica.get() : backend_.outbox.get();
  absl::Notification inside, release;
  std::thread first([&] {
    ASSERT_TRUE(backend_.outbox
                    ->Drain(10,
                            [&](const OutboxEntry&) {
                              inside.Notify();
                              release.WaitForNotification();
                              return Taken();
                            })
                    .ok());
  });
  inside.WaitForNotification();
  int handed = 0;
  absl::StatusOr<OutboxDrain> second = other->Drain(10, [&](const OutboxEntry&) {
    ++handed;
    return Taken();
  });
  release.Notify();
  first.join();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->busy);
  EXPECT_EQ(handed, 0);
  EXPECT_THAT(backend_.outbox->Read(10).value(), IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(Memory, OutboxTest, ::testing::Values(MakeMemory));
INSTANTIATE_TEST_SUITE_P(Postgres, OutboxTest,
                         ::testing::Values(pg::TestDatabase::Get() != nullptr
                                               ? std::function<Backend()>(MakePostgres)
                                               : nullptr));

TEST(LedgerRecordTest, MetadataSurvivesEncoding) {
  const std::map<std::string, std::string> metadata = {
      {"", ""}, {"tab\there", "new\nline"}, {"back\\slash", "\x01\xff"}};
  EXPECT_EQ(DecodeMetadata(EncodeMetadata(metadata)).value(), metadata);
  EXPECT_FALSE(DecodeMetadata("no tab here\n").ok());
}

// A destination that answers from a script, then takes everything.
class ScriptedDestination : public LedgerDestination {
 public:
  explicit ScriptedDestination(std::vector<Delivery::Result> script) : script_(script) {}
  Delivery Deliver(const LedgerRecord& record, absl::Time occurred_at) override {
    absl::MutexLock lock(&mu_);
    delivered_.push_back(record.request_id);
    occurred_at_.push_back(occurred_at);
    Delivery::Result r = Delivery::Result::kRecorded;
    if (!script_.empty()) {
      r = script_.front();
      script_.erase(script_.begin());
    }
    return Delivery{r, r == Delivery::Result::kRecorded ? "" : "scripted"};
  }
  std::vector<std::string> delivered() {
    absl::MutexLock lock(&mu_);
    return delivered_;
  }
  std::vector<absl::Time> occurred_at() {
    absl::MutexLock lock(&mu_);
    return occurred_at_;
  }

 private:
  absl::Mutex mu_;
  std::vector<Delivery::Result> script_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> delivered_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Time> occurred_at_ ABSL_GUARDED_BY(mu_);
};

OutboxRelayOptions Fast() {
  return OutboxRelayOptions{.batch = 2,
                            .poll_interval = absl::Milliseconds(5),
                            .min_backoff = absl::Milliseconds(1),
                            .max_backoff = absl::Milliseconds(5)};
}

TEST(OutboxRelayTest, RetriesUntilTakenKeepsOrderAndCounts) {
  MemoryOutbox outbox;
  outbox.Add({Record(1), Record(2)});
  absl::SleepFor(absl::Milliseconds(2));
  outbox.Add({Record(3)});
  const std::vector<OutboxEntry> written = outbox.Read(10).value();
  ASSERT_THAT(written, SizeIs(3));
  ASSERT_LT(written[1].occurred_at, written[2].occurred_at);
  ScriptedDestination destination({Delivery::Result::kRetry, Delivery::Result::kRetry,
                                   Delivery::Result::kRecorded, Delivery::Result::kRefused});
  prometheus::Registry registry;
  OutboxRelay relay(&outbox, &destination, Fast(), "authz", &registry);
  ASSERT_TRUE(relay.Flush(absl::Seconds(5)));
  EXPECT_THAT(destination.delivered(),
              ElementsAre("test:1", "test:1", "test:1", "test:2", "test:3"));
  EXPECT_THAT(destination.occurred_at(),
              ElementsAre(written[0].occurred_at, written[0].occurred_at, written[0].occurred_at,
                          written[1].occurred_at, written[2].occurred_at));
  std::vector<OutboxEntry> left = outbox.Read(10).value();
  ASSERT_THAT(left, SizeIs(1));
  EXPECT_EQ(left[0].record.request_id, "test:2");
  EXPECT_TRUE(left[0].failed);
  const std::string metrics = prometheus::TextSerializer().Serialize(registry.Collect());
  EXPECT_THAT(metrics, HasSubstr("policy_authz_audit_outbox_failed 1"));
  EXPECT_THAT(metrics, HasSubstr("policy_authz_audit_events_pending 0"));
  EXPECT_THAT(metrics, HasSubstr("policy_authz_audit_events_total{result=\"refused\"} 1"));
}

TEST(OutboxRelayTest, ItsThreadDeliversWhatIsAddedLater) {
  MemoryOutbox outbox;
  ScriptedDestination destination({});
  OutboxRelay relay(&outbox, &destination, Fast(), "region", nullptr);
  relay.Start();
  outbox.Add({Record(7)});
  for (int i = 0; i < 500 && !outbox.Read(1).value().empty(); ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  relay.Stop();
  EXPECT_THAT(outbox.Read(1).value(), IsEmpty());
  EXPECT_THAT(destination.delivered(), ElementsAre("test:7"));
}

}  // namespace
}  // namespace policy::ledger
