// One suite, every EndpointStore: the memory store always, PostgreSQL whenever a test
// database is configured (always in CI: POLICY_TEST_REQUIRE_PG=1 makes a missing one fatal).
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/ledger/outbox.h"
#include "common/pg/pool.h"
#include "common/pg/runtime_role_testing.h"
#include "common/pg/test_database.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/region/memory_endpoint_store.h"
#include "services/region/postgres_endpoint_store.h"
#include "services/region/region_migrations.h"

namespace policy::region {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;
using ::testing::SizeIs;

constexpr char kActor[] = "alice@example.com";

// A store under test; `replica` gives a second store on the same data when the backend has
// replicas (nullptr otherwise); `sql` runs statements on the backend's database, when it has
// one (nullptr otherwise).
struct Backend {
  std::unique_ptr<EndpointStore> store;
  std::function<std::unique_ptr<EndpointStore>()> replica;
  std::vector<std::shared_ptr<void>> keep_alive;
  std::function<absl::Status(const std::string&)> sql;
};

using BackendFactory = std::function<Backend()>;

Backend MakeMemory() {
  return Backend{std::make_unique<MemoryEndpointStore>(), nullptr, {}, nullptr};
}

constexpr char kResetSql[] =
    "TRUNCATE region.breakers, region.endpoints, region.ledger_outbox; "
    "UPDATE region.registry SET version = 0";

// Stores on `pool`; `sql` runs on `owner`, as the owner of the tables.
Backend PostgresBackend(std::shared_ptr<pg::Pool> pool, std::shared_ptr<pg::Pool> owner) {
  Backend backend;
  backend.store = std::make_unique<PostgresEndpointStore>(pool.get());
  backend.replica = [pool] { return std::make_unique<PostgresEndpointStore>(pool.get()); };
  backend.keep_alive.push_back(pool);
  backend.keep_alive.push_back(owner);
  backend.sql = [owner](const std::string& sql) {
    return owner->Transact([&](pqxx::work& tx) {
      tx.exec(sql);
      return absl::OkStatus();
    });
  };
  return backend;
}

Backend MakePostgres() {
  // value() throws on failure, which fails the test with the status.
  std::shared_ptr<pg::Pool> pool =
      pg::TestDatabase::Get()->Reset("region", Migrations(), kResetSql).value();
  return PostgresBackend(pool, pool);
}

// The store logged in as the service's runtime role (migration 004), as tools/dev and the
// chart's production example run it.
Backend MakePostgresRuntime() {
  const pg::TestDatabase* db = pg::TestDatabase::Get();
  return PostgresBackend(db->ResetAsRuntime("region", Migrations(), kResetSql).value(),
                         std::make_shared<pg::Pool>(pg::PoolOptions{.url = db->url(), .size = 2}));
}

// An Azure endpoint with every capability, models out of order and non-default numbers.
Endpoint Azure(const std::string& id) {
  Endpoint e;
  e.id = id;
  e.region = "westeurope";
  e.provider = Provider::kAzure;
  e.base_url = absl::StrCat("https://", id, ".openai.azure.com:8443/v1");
  e.deployment = "gpt4o-prod";
  e.residency = Residency::kEu;
  e.capabilities = {.zero_data_retention = true, .private_link = true, .cached = true};
  e.models = {"gpt-4o-mini", "gpt-4o", "Meta-Llama-3.1:70b"};
  e.priority = 7;
  e.weight = 250;
  e.enabled = true;
  return e;
}

// An OpenAI endpoint: no deployment, no capability, disabled, never chosen by weight.
Endpoint OpenAi(const std::string& id) {
  Endpoint e;
  e.id = id;
  e.region = "us-east-1";
  e.provider = Provider::kOpenAi;
  e.base_url = "https://api.openai.com";
  e.deployment = "";
  e.residency = Residency::kUs;
  e.capabilities = {};
  e.models = {"o3"};
  e.priority = kMaxPriority;
  e.weight = 0;
  e.enabled = false;
  return e;
}

// The record of a change the ledger has always held (the metadata the edge wrote before region
// recorded its own changes), but for its request id, which the store draws.
// Every field but the id: what an update from Azure(id) to OpenAi(id) changes.
constexpr char kAzureToOpenAiFields[] =
    "region,provider,base_url,deployment,residency,capabilities.zero_data_retention,"
    "capabilities.private_link,capabilities.cached,models,priority,weight,enabled";

ledger::LedgerRecord Expected(const std::string& change, const Endpoint& e,
                              const std::string& actor = kActor,
                              const std::string& fields = kAzureToOpenAiFields) {
  ledger::LedgerRecord r{.action = "ENDPOINT_CHANGED",
                         .actor = actor,
                         .project = "",
                         .environment = "",
                         .subject = "",
                         .request_id = "",
                         .metadata = {{"change", change}, {"endpoint", e.id}}};
  if (change != "deleted") {
    r.metadata["region"] = e.region;
    const std::map<Residency, std::string> names = {{Residency::kEu, "RESIDENCY_EU"},
                                                    {Residency::kUs, "RESIDENCY_US"},
                                                    {Residency::kApac, "RESIDENCY_APAC"},
                                                    {Residency::kGlobal, "RESIDENCY_GLOBAL"}};
    r.metadata["residency"] = names.at(e.residency);
    r.metadata["enabled"] = e.enabled ? "true" : "false";
  }
  if (change == "updated") r.metadata["fields"] = fields;
  return r;
}

// The entries' records without their request ids, and their request ids.
std::vector<ledger::LedgerRecord> WithoutIds(const std::vector<ledger::OutboxEntry>& entries) {
  std::vector<ledger::LedgerRecord> records;
  for (const ledger::OutboxEntry& e : entries) {
    records.push_back(e.record);
    records.back().request_id.clear();
  }
  return records;
}
std::vector<std::string> RequestIds(const std::vector<ledger::OutboxEntry>& entries) {
  std::vector<std::string> ids;
  for (const ledger::OutboxEntry& e : entries) ids.push_back(e.record.request_id);
  return ids;
}

ledger::Delivery Answer(ledger::Delivery::Result result) { return ledger::Delivery{result, ""}; }

std::vector<std::string> Ids(const EndpointStore::Listing& listing) {
  std::vector<std::string> ids;
  for (const Endpoint& e : listing.endpoints) ids.push_back(e.id);
  return ids;
}

class EndpointStoreConformanceTest
    : public ::testing::TestWithParam<std::pair<std::string, BackendFactory>> {
 protected:
  void SetUp() override {
    if (absl::StartsWith(GetParam().first, "postgres") && pg::TestDatabase::Get() == nullptr) {
      GTEST_SKIP() << "POLICY_TEST_PG_URL is not set";
    }
    if (GetParam().first == "postgres_runtime" &&
        pg::TestDatabase::Get()->RuntimeUrl("region").empty()) {
      GTEST_SKIP() << "POLICY_TEST_PG_REGION_RUNTIME_URL is not set";
    }
    backend_ = GetParam().second();
    store_ = backend_.store.get();
  }

  // The store's listing; fails the test (and returns an empty one) when it cannot list.
  EndpointStore::Listing MustList(EndpointStore* store = nullptr) {
    absl::StatusOr<EndpointStore::Listing> listing = (store ? store : store_)->List();
    EXPECT_TRUE(listing.ok()) << listing.status();
    return listing.ok() ? *std::move(listing) : EndpointStore::Listing{};
  }
  int64_t MustVersion(EndpointStore* store = nullptr) {
    absl::StatusOr<int64_t> version = (store ? store : store_)->Version();
    EXPECT_TRUE(version.ok()) << version.status();
    return version.value_or(-1);
  }
  std::vector<PublishedBreaker> MustBreakersSince(absl::Time since,
                                                  EndpointStore* store = nullptr) {
    absl::StatusOr<std::vector<PublishedBreaker>> breakers =
        (store ? store : store_)->BreakersSince(since);
    EXPECT_TRUE(breakers.ok()) << breakers.status();
    return breakers.ok() ? *std::move(breakers) : std::vector<PublishedBreaker>{};
  }

  // Every record in the store's outbox, in sequence order.
  std::vector<ledger::OutboxEntry> MustReadOutbox(EndpointStore* store = nullptr) {
    absl::StatusOr<std::vector<ledger::OutboxEntry>> entries =
        (store ? store : store_)->outbox().Read(1000);
    EXPECT_TRUE(entries.ok()) << entries.status();
    return entries.ok() ? *std::move(entries) : std::vector<ledger::OutboxEntry>{};
  }

  // Microsecond-exact, as every backend keeps times.
  const absl::Time t0_ = absl::FromUnixMicros(1'800'000'000'123'457);
  Backend backend_;
  EndpointStore* store_ = nullptr;
};

TEST_P(EndpointStoreConformanceTest, TestEndpointsAreValid) {
  EXPECT_TRUE(ValidateEndpoint(Azure("eu-1")).ok()) << ValidateEndpoint(Azure("eu-1"));
  EXPECT_TRUE(ValidateEndpoint(OpenAi("us-1")).ok()) << ValidateEndpoint(OpenAi("us-1"));
}

TEST_P(EndpointStoreConformanceTest, StartsEmpty) {
  EndpointStore::Listing listing = MustList();
  EXPECT_THAT(listing.endpoints, IsEmpty());
  EXPECT_EQ(listing.version, MustVersion());
  EXPECT_THAT(MustBreakersSince(absl::InfinitePast()), IsEmpty());
}

TEST_P(EndpointStoreConformanceTest, CreateThenListRoundTripsEveryFieldOrderedById) {
  const Endpoint azure = Azure("eu.west_1");
  const Endpoint openai = OpenAi("0-openai");
  ASSERT_TRUE(store_->Create(azure, kActor).ok());
  ASSERT_TRUE(store_->Create(openai, kActor).ok());
  EndpointStore::Listing listing = MustList();
  EXPECT_THAT(listing.endpoints, ElementsAre(openai, azure));
  EXPECT_EQ(listing.version, MustVersion());
}

TEST_P(EndpointStoreConformanceTest, ListOrdersIdsByteByByte) {
  // Byte order, not a natural language's (which would skip the punctuation).
  for (const char* id : {"ab", "a_b", "a0", "a.b", "a-c"}) {
    ASSERT_TRUE(store_->Create(Azure(id), kActor).ok()) << id;
  }
  EXPECT_THAT(Ids(MustList()), ElementsAre("a-c", "a.b", "a0", "a_b", "ab"));
  for (const char* id : {"ab", "a_b", "a0", "a.b", "a-c"}) {
    ASSERT_TRUE(store_->PublishBreaker({"a0", id, BreakerState::kOpen, t0_, t0_}).ok());
  }
  std::vector<std::string> replicas;
  for (const PublishedBreaker& b : MustBreakersSince(absl::InfinitePast())) {
    replicas.push_back(b.replica);
  }
  EXPECT_THAT(replicas, ElementsAre("a-c", "a.b", "a0", "a_b", "ab"));
}

TEST_P(EndpointStoreConformanceTest, VersionGrowsWithEveryChangeAndOnlyThen) {
  const int64_t v0 = MustVersion();
  ASSERT_TRUE(store_->Create(Azure("a"), kActor).ok());
  const int64_t v1 = MustVersion();
  EXPECT_GT(v1, v0);
  EXPECT_EQ(MustList().version, v1);

  // Reads and breaker publishes leave it alone.
  MustList();
  MustBreakersSince(absl::InfinitePast());
  ASSERT_TRUE(store_->PublishBreaker({"a", "replica-1", BreakerState::kOpen, t0_, t0_}).ok());
  ASSERT_TRUE(store_
                  ->PublishBreaker({"a", "replica-1", BreakerState::kClosed, absl::InfinitePast(),
                                    t0_ + absl::Seconds(1)})
                  .ok());
  EXPECT_EQ(MustVersion(), v1);

  Endpoint updated = Azure("a");
  updated.weight = 1;
  ASSERT_TRUE(store_->Update(updated, kActor).ok());
  const int64_t v2 = MustVersion();
  EXPECT_GT(v2, v1);
  // An update that changes no field is no change.
  ASSERT_TRUE(store_->Update(updated, kActor).ok());
  const int64_t v3 = MustVersion();
  EXPECT_EQ(v3, v2);
  ASSERT_TRUE(store_->Delete("a", kActor).ok());
  const int64_t v4 = MustVersion();
  EXPECT_GT(v4, v3);
  EXPECT_EQ(MustList().version, v4);
}

TEST_P(EndpointStoreConformanceTest, DuplicateCreateIsAlreadyExistsAndChangesNothing) {
  const Endpoint first = Azure("dup");
  ASSERT_TRUE(store_->Create(first, kActor).ok());
  const int64_t version = MustVersion();

  Endpoint second = OpenAi("dup");
  absl::Status status = store_->Create(second, kActor);
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
  EXPECT_EQ(status.message(), "endpoint 'dup' exists already, with a different region");
  EndpointStore::Listing listing = MustList();
  EXPECT_THAT(listing.endpoints, ElementsAre(first));
  EXPECT_EQ(listing.version, version);

  // The first field that differs is named, in the proto's order.
  Endpoint heavier = first;
  heavier.weight = first.weight + 1;
  heavier.enabled = !first.enabled;
  status = store_->Create(heavier, kActor);
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
  EXPECT_EQ(status.message(), "endpoint 'dup' exists already, with a different weight");
  EXPECT_THAT(MustList().endpoints, ElementsAre(first));
  EXPECT_THAT(MustReadOutbox(), SizeIs(1));
}

TEST_P(EndpointStoreConformanceTest, RetriedCreateOfTheSameEndpointIsOkAndRecordedOnce) {
  const Endpoint first = Azure("retried");
  ASSERT_TRUE(store_->Create(first, kActor).ok());
  const int64_t version = MustVersion();

  // Its answer lost, the caller sends the same creation again (another actor: the same change).
  absl::Status status = store_->Create(first, "bob");
  EXPECT_TRUE(status.ok()) << status;
  EndpointStore::Listing listing = MustList();
  EXPECT_THAT(listing.endpoints, ElementsAre(first));
  EXPECT_EQ(listing.version, version);
  EXPECT_THAT(WithoutIds(MustReadOutbox()), ElementsAre(Expected("created", first)));
}

TEST_P(EndpointStoreConformanceTest, UpdateAndDeleteOfAMissingIdAreNotFound) {
  ASSERT_TRUE(store_->Create(Azure("present"), kActor).ok());
  const int64_t version = MustVersion();

  absl::Status updated = store_->Update(Azure("absent"), kActor);
  EXPECT_EQ(updated.code(), absl::StatusCode::kNotFound) << updated;
  EXPECT_EQ(updated.message(), "no endpoint 'absent'");
  absl::Status deleted = store_->Delete("absent", kActor);
  EXPECT_EQ(deleted.code(), absl::StatusCode::kNotFound) << deleted;
  EXPECT_EQ(deleted.message(), "no endpoint 'absent'");

  EndpointStore::Listing listing = MustList();
  EXPECT_THAT(Ids(listing), ElementsAre("present"));
  EXPECT_EQ(listing.version, version);
}

TEST_P(EndpointStoreConformanceTest, UpdateReplacesEveryField) {
  const Endpoint other = Azure("other");
  ASSERT_TRUE(store_->Create(Azure("ep"), kActor).ok());
  ASSERT_TRUE(store_->Create(other, kActor).ok());

  // Every field but the id differs from Azure("ep").
  Endpoint replacement = OpenAi("ep");
  replacement.residency = Residency::kApac;
  replacement.region = "ap-southeast-1";
  replacement.models = {"gpt-4.1", "gpt-4.1-nano"};
  replacement.priority = 1;
  ASSERT_TRUE(ValidateEndpoint(replacement).ok());
  ASSERT_TRUE(store_->Update(replacement, kActor).ok());
  EXPECT_THAT(MustList().endpoints, ElementsAre(replacement, other));

  // And back, from no capability to every one.
  ASSERT_TRUE(store_->Update(Azure("ep"), kActor).ok());
  EXPECT_THAT(MustList().endpoints, ElementsAre(Azure("ep"), other));
}

TEST_P(EndpointStoreConformanceTest, DeleteRemovesTheEndpointAndItsPublishedBreakers) {
  const Endpoint kept = Azure("kept");
  ASSERT_TRUE(store_->Create(Azure("gone"), kActor).ok());
  ASSERT_TRUE(store_->Create(kept, kActor).ok());
  const PublishedBreaker kept_breaker{"kept", "r1", BreakerState::kOpen, t0_, t0_};
  ASSERT_TRUE(store_->PublishBreaker({"gone", "r1", BreakerState::kOpen, t0_, t0_}).ok());
  ASSERT_TRUE(store_->PublishBreaker({"gone", "r2", BreakerState::kHalfOpen, t0_, t0_}).ok());
  ASSERT_TRUE(store_->PublishBreaker(kept_breaker).ok());

  ASSERT_TRUE(store_->Delete("gone", kActor).ok());
  EXPECT_THAT(MustList().endpoints, ElementsAre(kept));
  EXPECT_THAT(MustBreakersSince(absl::InfinitePast()), ElementsAre(kept_breaker));

  // An endpoint created again under the id starts with no breaker state.
  ASSERT_TRUE(store_->Create(Azure("gone"), kActor).ok());
  EXPECT_THAT(MustBreakersSince(absl::InfinitePast()), ElementsAre(kept_breaker));
  EXPECT_TRUE(store_->Delete("gone", kActor).ok());
  EXPECT_EQ(store_->Delete("gone", kActor).code(), absl::StatusCode::kNotFound);
}

TEST_P(EndpointStoreConformanceTest, PublishBreakerUpsertsPerEndpointAndReplica) {
  ASSERT_TRUE(store_->Create(Azure("a"), kActor).ok());
  ASSERT_TRUE(store_->Create(Azure("b"), kActor).ok());
  const PublishedBreaker a1{"a", "r1", BreakerState::kOpen, t0_, t0_};
  const PublishedBreaker a2{
      "a", "r2", BreakerState::kClosed, absl::InfinitePast(), t0_, t0_ - absl::Seconds(1)};
  const PublishedBreaker b1{"b", "r1", BreakerState::kHalfOpen, t0_ - absl::Seconds(30), t0_};
  // Published out of order; listed by (endpoint, replica).
  ASSERT_TRUE(store_->PublishBreaker(b1).ok());
  ASSERT_TRUE(store_->PublishBreaker(a2).ok());
  ASSERT_TRUE(store_->PublishBreaker(a1).ok());
  EXPECT_THAT(MustBreakersSince(absl::InfinitePast()), ElementsAre(a1, a2, b1));

  // The replica's next state replaces its row, and only its row.
  const PublishedBreaker a1_closed{"a",
                                   "r1",
                                   BreakerState::kClosed,
                                   absl::InfinitePast(),
                                   t0_ + absl::Seconds(31),
                                   t0_ + absl::Seconds(30)};
  ASSERT_TRUE(store_->PublishBreaker(a1_closed).ok());
  EXPECT_THAT(MustBreakersSince(absl::InfinitePast()), ElementsAre(a1_closed, a2, b1));
  const PublishedBreaker a2_open{"a", "r2", BreakerState::kOpen, t0_ + absl::Seconds(32),
                                 t0_ + absl::Seconds(32)};
  ASSERT_TRUE(store_->PublishBreaker(a2_open).ok());
  EXPECT_THAT(MustBreakersSince(absl::InfinitePast()), ElementsAre(a1_closed, a2_open, b1));
}

TEST_P(EndpointStoreConformanceTest, BreakerTimesRoundTripToTheMicrosecond) {
  ASSERT_TRUE(store_->Create(Azure("a"), kActor).ok());
  const PublishedBreaker open{"a", "r1", BreakerState::kOpen, t0_ - absl::Microseconds(1),
                              t0_ + absl::Microseconds(1)};
  // Before the Unix epoch, and before PostgreSQL's (2000-01-01).
  const PublishedBreaker early{"a", "r2", BreakerState::kHalfOpen,
                               absl::FromUnixMicros(-123'456'789), absl::FromUnixMicros(1)};
  const PublishedBreaker closed{
      "a", "r3", BreakerState::kClosed, absl::InfinitePast(), t0_, t0_ - absl::Microseconds(3)};
  const PublishedBreaker reopened{"a", "r4", BreakerState::kOpen,
                                  t0_, t0_,  absl::FromUnixMicros(-987'654'321)};
  for (const PublishedBreaker& b : {open, early, closed, reopened}) {
    ASSERT_TRUE(store_->PublishBreaker(b).ok());
  }
  std::vector<PublishedBreaker> got = MustBreakersSince(absl::InfinitePast());
  ASSERT_THAT(got, ElementsAre(open, early, closed, reopened));
  EXPECT_EQ(absl::ToUnixMicros(got[0].published_at), 1'800'000'000'123'458);
  EXPECT_EQ(got[0].closed_at, absl::InfinitePast());
  EXPECT_EQ(got[2].opened_at, absl::InfinitePast());
  EXPECT_EQ(absl::ToUnixMicros(got[2].closed_at), 1'800'000'000'123'454);
}

TEST_P(EndpointStoreConformanceTest, BreakerTimesThatCannotBeStoredAreInvalidArgument) {
  ASSERT_TRUE(store_->Create(Azure("a"), kActor).ok());
  const absl::Time past = absl::InfinitePast(), future = absl::InfiniteFuture();
  for (const PublishedBreaker& b :
       {PublishedBreaker{"a", "r1", BreakerState::kOpen, t0_, past},
        PublishedBreaker{"a", "r1", BreakerState::kOpen, t0_, future},
        PublishedBreaker{"a", "r1", BreakerState::kOpen, future, t0_},
        PublishedBreaker{"a", "r1", BreakerState::kClosed, past, t0_, future}}) {
    const absl::Status status = store_->PublishBreaker(b);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(status.message(), HasSubstr("published_at must be finite"));
  }
  EXPECT_THAT(MustBreakersSince(absl::InfinitePast()), IsEmpty());
}

TEST_P(EndpointStoreConformanceTest, BreakersSinceFiltersByPublicationTime) {
  ASSERT_TRUE(store_->Create(Azure("a"), kActor).ok());
  ASSERT_TRUE(store_->Create(Azure("b"), kActor).ok());
  const PublishedBreaker before{"a", "r1", BreakerState::kOpen, t0_, t0_ - absl::Microseconds(1)};
  const PublishedBreaker at{"b", "r1", BreakerState::kOpen, t0_, t0_};
  const PublishedBreaker after{"a", "r2", BreakerState::kOpen, t0_, t0_ + absl::Seconds(1)};
  for (const PublishedBreaker& b : {before, at, after}) {
    ASSERT_TRUE(store_->PublishBreaker(b).ok());
  }
  EXPECT_THAT(MustBreakersSince(t0_), ElementsAre(after, at));  // Inclusive.
  EXPECT_THAT(MustBreakersSince(t0_ + absl::Microseconds(1)), ElementsAre(after));
  EXPECT_THAT(MustBreakersSince(t0_ + absl::Seconds(1)), ElementsAre(after));
  EXPECT_THAT(MustBreakersSince(t0_ + absl::Seconds(1) + absl::Microseconds(1)), IsEmpty());
  EXPECT_THAT(MustBreakersSince(absl::InfiniteFuture()), IsEmpty());
  EXPECT_THAT(MustBreakersSince(t0_ - absl::Hours(24)), ElementsAre(before, after, at));
  EXPECT_THAT(MustBreakersSince(absl::InfinitePast()), ElementsAre(before, after, at));
}

TEST_P(EndpointStoreConformanceTest, ForgetBreakersPublishedBeforeRemovesOnlyOlderStates) {
  ASSERT_TRUE(store_->Create(Azure("a"), kActor).ok());
  ASSERT_TRUE(store_->Create(Azure("b"), kActor).ok());
  const PublishedBreaker before{"a", "r1", BreakerState::kOpen, t0_, t0_ - absl::Microseconds(1)};
  const PublishedBreaker at{"b", "r1", BreakerState::kOpen, t0_, t0_};
  const PublishedBreaker after{"a", "r2", BreakerState::kClosed, absl::InfinitePast(),
                               t0_ + absl::Seconds(1)};
  for (const PublishedBreaker& b : {before, at, after}) {
    ASSERT_TRUE(store_->PublishBreaker(b).ok());
  }
  EXPECT_EQ(store_->ForgetBreakersPublishedBefore(absl::InfinitePast()).value_or(-1), 0);
  EXPECT_EQ(store_->ForgetBreakersPublishedBefore(t0_).value_or(-1), 1);
  EXPECT_THAT(MustBreakersSince(absl::InfinitePast()), ElementsAre(after, at));
  EXPECT_EQ(store_->ForgetBreakersPublishedBefore(t0_).value_or(-1), 0);
  // A replica publishing again after its state was forgotten gets its row back.
  ASSERT_TRUE(store_->PublishBreaker(before).ok());
  EXPECT_THAT(MustBreakersSince(absl::InfinitePast()), ElementsAre(before, after, at));
  EXPECT_EQ(store_->ForgetBreakersPublishedBefore(absl::InfiniteFuture()).value_or(-1), 3);
  EXPECT_THAT(MustBreakersSince(absl::InfinitePast()), IsEmpty());
}

// The store's clock: the memory store's is the real clock here, PostgreSQL's the server's,
// the same for every store on the database.
TEST_P(EndpointStoreConformanceTest, NowReadsTheStoresClock) {
  absl::StatusOr<absl::Time> first = store_->Now();
  ASSERT_TRUE(first.ok()) << first.status();
  if (backend_.replica) {
    std::unique_ptr<EndpointStore> replica = backend_.replica();
    absl::StatusOr<absl::Time> between = replica->Now();
    ASSERT_TRUE(between.ok()) << between.status();
    EXPECT_LE(*first, *between);
    first = between;
  }
  absl::StatusOr<absl::Time> second = store_->Now();
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_LE(*first, *second);
  EXPECT_LT(*second - *first, absl::Minutes(1));
}

TEST_P(EndpointStoreConformanceTest, PublishingForAnUnknownEndpointIsNotFound) {
  ASSERT_TRUE(store_->Create(Azure("a"), kActor).ok());
  const int64_t version = MustVersion();
  absl::Status status = store_->PublishBreaker({"nowhere", "r1", BreakerState::kOpen, t0_, t0_});
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
  EXPECT_EQ(status.message(), "no endpoint 'nowhere'");
  EXPECT_THAT(MustBreakersSince(absl::InfinitePast()), IsEmpty());
  EXPECT_EQ(MustVersion(), version);
}

TEST_P(EndpointStoreConformanceTest, ConcurrentCreatesOfOneIdExactlyOneWins) {
  const int64_t version = MustVersion();
  std::atomic<int> created{0}, refused{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      Endpoint e = Azure("contended");
      e.weight = i;
      absl::Status s = store_->Create(e, kActor);
      if (s.ok()) ++created;
      if (s.code() == absl::StatusCode::kAlreadyExists) ++refused;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(created.load(), 1);
  EXPECT_EQ(refused.load(), 7);
  EXPECT_THAT(Ids(MustList()), ElementsAre("contended"));
  EXPECT_GT(MustVersion(), version);
}

TEST_P(EndpointStoreConformanceTest, ConcurrentChangesEachRaiseTheVersion) {
  const int64_t version = MustVersion();
  constexpr int kThreads = 8;
  std::vector<std::thread> threads;
  std::atomic<int> failed{0};
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      const std::string id = absl::StrCat("ep-", i);
      if (!store_->Create(Azure(id), kActor).ok()) ++failed;
      if (!store_->Update(OpenAi(id), kActor).ok()) ++failed;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GE(MustVersion(), version + 2 * kThreads);
  EXPECT_EQ(MustList().endpoints.size(), static_cast<size_t>(kThreads));
}

TEST_P(EndpointStoreConformanceTest, TwoStoresOverOneDatabaseSeeEachOthersChanges) {
  if (!backend_.replica) GTEST_SKIP() << "an in-process store has no replicas";
  std::unique_ptr<EndpointStore> replica = backend_.replica();

  ASSERT_TRUE(store_->Create(Azure("a"), kActor).ok());
  EXPECT_EQ(MustVersion(replica.get()), MustVersion());
  EXPECT_THAT(MustList(replica.get()).endpoints, ElementsAre(Azure("a")));

  // Each sees the other's ids as taken, and the other's updates.
  EXPECT_EQ(replica->Create(OpenAi("a"), kActor).code(), absl::StatusCode::kAlreadyExists);
  const int64_t before_update = MustVersion();
  ASSERT_TRUE(replica->Update(OpenAi("a"), kActor).ok());
  EXPECT_GT(MustVersion(), before_update);
  EndpointStore::Listing listing = MustList();
  EXPECT_THAT(listing.endpoints, ElementsAre(OpenAi("a")));
  EXPECT_EQ(listing.version, MustVersion(replica.get()));

  // Breaker states published by one reach the other.
  const PublishedBreaker breaker{"a", "replica-2", BreakerState::kOpen, t0_, t0_};
  ASSERT_TRUE(replica->PublishBreaker(breaker).ok());
  EXPECT_THAT(MustBreakersSince(t0_), ElementsAre(breaker));

  ASSERT_TRUE(store_->Delete("a", kActor).ok());
  EXPECT_EQ(replica->Update(OpenAi("a"), kActor).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(replica->PublishBreaker(breaker).code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(MustBreakersSince(absl::InfinitePast(), replica.get()), IsEmpty());
  EXPECT_EQ(MustVersion(replica.get()), MustVersion());
}

TEST_P(EndpointStoreConformanceTest, EachChangeWritesItsRecordInTheOrderOfTheChanges) {
  EXPECT_THAT(MustReadOutbox(), IsEmpty());
  const Endpoint azure = Azure("a");
  Endpoint apac = OpenAi("a");  // Disabled.
  apac.residency = Residency::kApac;
  ASSERT_TRUE(store_->Create(azure, kActor).ok());
  ASSERT_TRUE(store_->Create(OpenAi("b"), kActor).ok());
  ASSERT_TRUE(store_->Update(apac, "bob").ok());
  ASSERT_TRUE(store_->Delete("a", kActor).ok());
  // Breaker publishes are no change of the registry.
  ASSERT_TRUE(store_->PublishBreaker({"b", "r1", BreakerState::kOpen, t0_, t0_}).ok());

  const std::vector<ledger::OutboxEntry> entries = MustReadOutbox();
  EXPECT_THAT(WithoutIds(entries),
              ElementsAre(Expected("created", azure), Expected("created", OpenAi("b")),
                          Expected("updated", apac, "bob"), Expected("deleted", azure)));
  ASSERT_THAT(entries, SizeIs(4));
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i > 0) {
      EXPECT_GT(entries[i].sequence, entries[i - 1].sequence);
    }
    EXPECT_THAT(entries[i].record.request_id, MatchesRegex("region:endpoint:[0-9a-f]{32}"));
    EXPECT_EQ(entries[i].attempts, 0);
    EXPECT_FALSE(entries[i].failed);
  }
  // One request id per change, never another for the same record.
  const std::vector<std::string> ids = RequestIds(entries);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());
  EXPECT_EQ(MustReadOutbox(), entries);
}

TEST_P(EndpointStoreConformanceTest, AChangeThatFailsWritesNoRecord) {
  ASSERT_TRUE(store_->Create(Azure("present"), kActor).ok());
  const std::vector<ledger::OutboxEntry> before = MustReadOutbox();
  ASSERT_THAT(before, SizeIs(1));

  EXPECT_EQ(store_->Create(OpenAi("present"), kActor).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store_->Update(Azure("absent"), kActor).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Delete("absent", kActor).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->PublishBreaker({"absent", "r1", BreakerState::kOpen, t0_, t0_}).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(MustReadOutbox(), before);

  // Deleting what another delete removed already: one record, for the delete that did it.
  ASSERT_TRUE(store_->Delete("present", kActor).ok());
  EXPECT_EQ(store_->Delete("present", kActor).code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(WithoutIds(MustReadOutbox()), ElementsAre(Expected("created", Azure("present")),
                                                        Expected("deleted", Azure("present"))));
}

TEST_P(EndpointStoreConformanceTest, RecordsWaitInTheOutboxUntilTakenWithTheirRequestIds) {
  ASSERT_TRUE(store_->Create(Azure("a"), kActor).ok());
  ASSERT_TRUE(store_->Update(OpenAi("a"), kActor).ok());
  const std::vector<ledger::OutboxEntry> written = MustReadOutbox();
  ASSERT_THAT(written, SizeIs(2));

  // Not taken: the first stays, as it was but for the attempt, and nothing overtakes it.
  std::vector<std::string> handed;
  absl::StatusOr<ledger::OutboxDrain> drain =
      store_->outbox().Drain(10, [&](const ledger::OutboxEntry& e) {
        handed.push_back(e.record.request_id);
        return Answer(ledger::Delivery::Result::kRetry);
      });
  ASSERT_TRUE(drain.ok()) << drain.status();
  EXPECT_EQ(drain->pending, 2);
  EXPECT_THAT(handed, ElementsAre(written[0].record.request_id));
  std::vector<ledger::OutboxEntry> left = MustReadOutbox();
  EXPECT_EQ(RequestIds(left), RequestIds(written));
  EXPECT_EQ(WithoutIds(left), WithoutIds(written));
  ASSERT_THAT(left, SizeIs(2));
  EXPECT_EQ(left[0].attempts, 1);

  // Taken: gone, in order, under the same request ids.
  handed.clear();
  drain = store_->outbox().Drain(10, [&](const ledger::OutboxEntry& e) {
    handed.push_back(e.record.request_id);
    return Answer(ledger::Delivery::Result::kRecorded);
  });
  ASSERT_TRUE(drain.ok()) << drain.status();
  EXPECT_EQ(drain->delivered, 2);
  EXPECT_EQ(handed, RequestIds(written));
  EXPECT_THAT(MustReadOutbox(), IsEmpty());
  // The endpoint is as the changes left it.
  EXPECT_THAT(MustList().endpoints, ElementsAre(OpenAi("a")));
}

TEST_P(EndpointStoreConformanceTest, ConcurrentChangesEachWriteOneRecordInTheirOrder) {
  constexpr int kThreads = 8;
  std::vector<std::thread> threads;
  std::atomic<int> failed{0}, contended{0};
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      const std::string id = absl::StrCat("ep-", i);
      if (!store_->Create(Azure(id), absl::StrCat("actor-", i)).ok()) ++failed;
      if (!store_->Update(OpenAi(id), absl::StrCat("actor-", i)).ok()) ++failed;
      if (!store_->Delete(id, absl::StrCat("actor-", i)).ok()) ++failed;
      Endpoint mine = Azure("contended");  // Each its own, so that one alone is created.
      mine.weight = i;
      if (store_->Create(mine, absl::StrCat("actor-", i)).ok()) ++contended;
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_EQ(failed.load(), 0);
  ASSERT_EQ(contended.load(), 1);

  const std::vector<ledger::OutboxEntry> entries = MustReadOutbox();
  ASSERT_THAT(entries, SizeIs(3 * kThreads + 1));
  // Each endpoint's records in the order of its changes, by the actor who made them.
  std::map<std::string, std::vector<std::string>> changes;
  for (const ledger::OutboxEntry& e : entries) {
    const std::string& id = e.record.metadata.at("endpoint");
    changes[id].push_back(e.record.metadata.at("change"));
    if (id != "contended") {
      EXPECT_EQ(e.record.actor, absl::StrCat("actor-", id.substr(3)));
    }
  }
  for (int i = 0; i < kThreads; ++i) {
    EXPECT_THAT(changes[absl::StrCat("ep-", i)], ElementsAre("created", "updated", "deleted"));
  }
  EXPECT_THAT(changes["contended"], ElementsAre("created"));
  const std::vector<std::string> ids = RequestIds(entries);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());
}

// A read-modify-write names what it read: an update over a change made meanwhile (another
// admin turning zero data retention off, say) is refused rather than silently undoing it.
TEST_P(EndpointStoreConformanceTest, AnUpdateExpectingWhatIsNoLongerStoredChangesNothing) {
  const Endpoint read = Azure("a");
  ASSERT_TRUE(store_->Create(read, kActor).ok());
  Endpoint retaining = read;
  retaining.capabilities.zero_data_retention = false;
  ASSERT_TRUE(store_->Update(retaining, "alice", &read).ok());  // What was read is stored.
  const int64_t version = MustVersion();
  const std::vector<ledger::OutboxEntry> before = MustReadOutbox();

  Endpoint reprioritised = read;  // Made from the stale read: zero data retention again.
  reprioritised.priority = 8;
  const absl::Status stale = store_->Update(reprioritised, "bob", &read);
  EXPECT_EQ(stale.code(), absl::StatusCode::kFailedPrecondition) << stale;
  EXPECT_THAT(stale.message(), HasSubstr("capabilities.zero_data_retention"));
  EXPECT_THAT(MustList().endpoints, ElementsAre(retaining));
  EXPECT_EQ(MustVersion(), version);
  EXPECT_EQ(MustReadOutbox(), before);

  // A retry of an update that was made finds it made, whatever it expected.
  EXPECT_TRUE(store_->Update(retaining, "alice", &read).ok());
  EXPECT_EQ(MustVersion(), version);
  // An endpoint that is gone is NOT_FOUND, as without an expectation.
  EXPECT_EQ(store_->Update(Azure("b"), "bob", &read).code(), absl::StatusCode::kNotFound);
}

TEST_P(EndpointStoreConformanceTest, AnUpdateThatChangesNothingWritesAndRecordsNothing) {
  Endpoint e = Azure("a");
  ASSERT_TRUE(store_->Create(e, kActor).ok());
  const int64_t version = MustVersion();
  ASSERT_TRUE(store_->Update(e, "bob").ok());
  EXPECT_EQ(MustVersion(), version);
  EXPECT_THAT(WithoutIds(MustReadOutbox()), ElementsAre(Expected("created", e)));

  // Models in another order are another list; the record names only what changed.
  e.priority = 8;
  e.models = {"gpt-4o", "gpt-4o-mini", "Meta-Llama-3.1:70b"};
  ASSERT_TRUE(store_->Update(e, "bob").ok());
  EXPECT_GT(MustVersion(), version);
  EXPECT_THAT(WithoutIds(MustReadOutbox()),
              ElementsAre(Expected("created", Azure("a")),
                          Expected("updated", e, "bob", "models,priority")));
  EXPECT_THAT(MustList().endpoints, ElementsAre(e));
  // An update of nothing is still NOT_FOUND.
  EXPECT_EQ(store_->Update(Azure("b"), "bob").code(), absl::StatusCode::kNotFound);
}

// Every replica reloads the registry whole (ValidateRegistry): it never holds more than it
// can reload.
TEST_P(EndpointStoreConformanceTest, AFullRegistryTakesNoMoreEndpoints) {
  if (backend_.sql) {
    ASSERT_TRUE(backend_
                    .sql(absl::StrCat(
                        "INSERT INTO region.endpoints (id, region, provider, base_url, "
                        "deployment, residency, zero_data_retention, private_link, cached, "
                        "models, priority, weight, enabled) SELECT 'bulk-' || n, 'westeurope', "
                        "'openai', 'https://api.openai.com', '', 'eu', false, false, false, "
                        "ARRAY['gpt-4o'], 1, 100, true FROM generate_series(1, ",
                        kMaxEndpoints, ") AS n"))
                    .ok());
  } else {
    for (size_t n = 1; n <= kMaxEndpoints; ++n) {
      ASSERT_TRUE(store_->Create(OpenAi(absl::StrCat("bulk-", n)), kActor).ok()) << n;
    }
  }
  const int64_t version = MustVersion();
  const absl::Status full = store_->Create(Azure("one-more"), kActor);
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  EXPECT_THAT(std::string(full.message()), HasSubstr("10000"));
  EXPECT_EQ(MustVersion(), version);
  EXPECT_TRUE(ValidateRegistry(MustList().endpoints).ok());
  // A taken id is still ALREADY_EXISTS; a place freed takes one.
  EXPECT_EQ(store_->Create(Azure("bulk-7"), kActor).code(), absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(store_->Delete("bulk-7", kActor).ok());
  EXPECT_TRUE(store_->Create(Azure("one-more"), kActor).ok());
}

TEST_P(EndpointStoreConformanceTest, ReplicasShareOneOutboxInTheOrderOfTheirChanges) {
  if (!backend_.replica) GTEST_SKIP() << "an in-process store has no replicas";
  std::unique_ptr<EndpointStore> replica = backend_.replica();
  ASSERT_TRUE(store_->Create(Azure("a"), kActor).ok());
  ASSERT_TRUE(replica->Update(OpenAi("a"), "bob").ok());
  ASSERT_TRUE(store_->Delete("a", kActor).ok());
  const std::vector<ledger::OutboxEntry> entries = MustReadOutbox();
  EXPECT_THAT(WithoutIds(entries),
              ElementsAre(Expected("created", Azure("a")), Expected("updated", OpenAi("a"), "bob"),
                          Expected("deleted", Azure("a"))));
  EXPECT_EQ(MustReadOutbox(replica.get()), entries);
}

// The record goes with its change: when it cannot be written, the change is not made.
TEST_P(EndpointStoreConformanceTest, AChangeWhoseRecordCannotBeWrittenIsNotMade) {
  if (!backend_.sql) GTEST_SKIP() << "an in-memory outbox always takes a record";
  ASSERT_TRUE(store_->Create(Azure("a"), kActor).ok());
  const int64_t version = MustVersion();
  const std::vector<ledger::OutboxEntry> before = MustReadOutbox();
  // The outbox refuses the records of one actor.
  ASSERT_TRUE(backend_
                  .sql("ALTER TABLE region.ledger_outbox ADD CONSTRAINT test_refused "
                       "CHECK (actor <> 'refused')")
                  .ok());
  absl::Cleanup restore = [&] {
    EXPECT_TRUE(backend_.sql("ALTER TABLE region.ledger_outbox DROP CONSTRAINT test_refused").ok());
  };
  EXPECT_EQ(store_->Create(Azure("b"), "refused").code(), absl::StatusCode::kInternal);
  EXPECT_EQ(store_->Update(OpenAi("a"), "refused").code(), absl::StatusCode::kInternal);
  EXPECT_EQ(store_->Delete("a", "refused").code(), absl::StatusCode::kInternal);
  EXPECT_THAT(MustList().endpoints, ElementsAre(Azure("a")));
  EXPECT_EQ(MustVersion(), version);
  EXPECT_EQ(MustReadOutbox(), before);
}

INSTANTIATE_TEST_SUITE_P(
    Stores, EndpointStoreConformanceTest,
    ::testing::Values(std::make_pair(std::string("memory"), BackendFactory(MakeMemory)),
                      std::make_pair(std::string("postgres"), BackendFactory(MakePostgres)),
                      std::make_pair(std::string("postgres_runtime"),
                                     BackendFactory(MakePostgresRuntime))),
    [](const auto& info) { return info.param.first; });

// Migration 004 grants policy_region_runtime what PostgresEndpointStore's statements need and
// no more: the runtime login role passes the start-up checks and cannot change the schema.
TEST(RegionRuntimeRoleTest, HoldsWhatTheStoreNeedsAndNothingMore) {
  const pg::TestDatabase* db = pg::TestDatabase::Get();
  if (db == nullptr) GTEST_SKIP() << "POLICY_TEST_PG_URL is not set";
  const std::string runtime = db->RuntimeUrl("region");
  if (runtime.empty()) GTEST_SKIP() << "POLICY_TEST_PG_REGION_RUNTIME_URL is not set";
  ASSERT_TRUE(db->Reset("region", Migrations(), kResetSql).ok());
  pg::ExpectLeastPrivilegedRuntimeRole(*db, runtime, "region", Migrations(),
                                       PostgresEndpointStore::Privileges());
}

// Not part of the conformance suite: needs no server.
TEST(PostgresEndpointStoreTest, AnUnreachableDatabaseIsUnavailable) {
  // Nothing listens on port 1; the connection is refused at once.
  pg::Pool pool(pg::PoolOptions{.url = "postgresql://nobody@127.0.0.1:1/none", .size = 1});
  PostgresEndpointStore store(&pool);
  const absl::Time t = absl::FromUnixSeconds(1'800'000'000);
  EXPECT_EQ(store.List().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.Version().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.Create(Azure("a"), kActor).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.Update(Azure("a"), kActor).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.Delete("a", kActor).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.PublishBreaker({"a", "r1", BreakerState::kOpen, t, t}).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.BreakersSince(t).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.Now().status().code(), absl::StatusCode::kUnavailable);
}

// Times PostgreSQL cannot store are refused before anything is sent (the memory store
// keeps them).
TEST(PostgresEndpointStoreTest, InfiniteBreakerTimesAreInvalid) {
  pg::Pool pool(pg::PoolOptions{.url = "postgresql://nobody@127.0.0.1:1/none", .size = 1});
  PostgresEndpointStore store(&pool);
  const absl::Time t = absl::FromUnixSeconds(1'800'000'000);
  EXPECT_EQ(
      store.PublishBreaker({"a", "r1", BreakerState::kOpen, t, absl::InfiniteFuture()}).code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store.PublishBreaker({"a", "r1", BreakerState::kOpen, t, absl::InfinitePast()}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      store.PublishBreaker({"a", "r1", BreakerState::kOpen, absl::InfiniteFuture(), t}).code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store
                .PublishBreaker({"a", "r1", BreakerState::kClosed, absl::InfinitePast(), t,
                                 absl::InfiniteFuture()})
                .code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace policy::region
