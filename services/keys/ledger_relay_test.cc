// The keys stores' outbox through ledger::OutboxRelay and ledger::AuditLedgerClient to a
// scripted AuditService on 127.0.0.1, as main.cc wires them: the entries a key's changes
// become, in which order, and what becomes of the outbox when the audit service is down,
// refuses an entry, or the process restarts. Over the memory store always and PostgreSQL
// whenever a test database is configured. (The outbox and the relay on their own are
// common/ledger/outbox_test.cc's.)
#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/clock/clock.h"
#include "common/ledger/audit_ledger_client.h"
#include "common/ledger/outbox_relay.h"
#include "common/pg/test_database.h"
#include "common/server/server_runner.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "policy/audit/v1/audit.grpc.pb.h"
#include "services/keys/keys_migrations.h"
#include "services/keys/keys_test_util.h"
#include "services/keys/memory_key_store.h"
#include "services/keys/postgres_key_store.h"

namespace policy::keys {
namespace {

namespace av1 = audit::v1;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

// Answers Append with the scripted statuses first, OK afterwards; records every request, and
// like the real ledger records each request id once (a repeat is answered `duplicate`).
class ScriptedAudit final : public av1::AuditService::Service {
 public:
  grpc::Status Append(grpc::ServerContext*, const av1::AppendRequest* request,
                      av1::AppendResponse* response) override {
    absl::MutexLock lock(&mu_);
    requests_.push_back(*request);
    if (!script_.empty()) {
      grpc::Status status = script_.front();
      script_.pop_front();
      return status;
    }
    response->mutable_entry()->set_request_id(request->entry().request_id());
    response->set_duplicate(!recorded_.insert(request->entry().request_id()).second);
    return grpc::Status::OK;
  }
  void Script(std::vector<grpc::Status> statuses) {
    absl::MutexLock lock(&mu_);
    script_.assign(statuses.begin(), statuses.end());
  }
  std::vector<av1::AppendRequest> requests() const {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  std::set<std::string> recorded() const {
    absl::MutexLock lock(&mu_);
    return recorded_;
  }

 private:
  mutable absl::Mutex mu_;
  std::deque<grpc::Status> script_;
  std::vector<av1::AppendRequest> requests_;
  std::set<std::string> recorded_;
};

std::vector<std::string> RequestIds(const std::vector<av1::AppendRequest>& requests) {
  std::vector<std::string> ids;
  for (const av1::AppendRequest& r : requests) ids.push_back(r.entry().request_id());
  return ids;
}

// A store's outbox whose next `lose_records` drains lose what the handler answered after it
// answered (as when the process dies between Append and the outbox delete): the records stay.
class ForgetfulOutbox : public ledger::Outbox {
 public:
  explicit ForgetfulOutbox(ledger::Outbox* outbox) : outbox_(outbox) {}
  absl::StatusOr<ledger::OutboxDrain> Drain(int limit,
                                            const ledger::OutboxHandler& handle) override {
    if (lose_records == 0) return outbox_->Drain(limit, handle);
    --lose_records;
    return outbox_->Drain(limit, [&](const ledger::OutboxEntry& entry) {
      handle(entry);
      return ledger::Delivery{ledger::Delivery::Result::kRetry, "crashed"};
    });
  }
  absl::StatusOr<std::vector<ledger::OutboxEntry>> Read(int limit) override {
    return outbox_->Read(limit);
  }
  std::atomic<int> lose_records{0};

 private:
  ledger::Outbox* const outbox_;
};

// Opens a store; for PostgreSQL, each call opens another on the same database (a replica, or
// the same process restarted), for memory there is only the one.
using StoreFactory = std::function<std::unique_ptr<KeyStore>()>;
struct Backend {
  std::unique_ptr<KeyStore> store;
  StoreFactory reopen;  // nullptr for memory.
  std::shared_ptr<void> keep_alive;
};

Backend MakeMemory(Clock* clock) {
  return Backend{std::make_unique<MemoryKeyStore>(clock), nullptr, {}};
}

Backend MakePostgres(Clock* clock) {
  std::shared_ptr<pg::Pool> pool =
      pg::TestDatabase::Get()->Reset("keys", Migrations(), kResetKeysSql).value();
  StoreFactory open = [pool, clock]() -> std::unique_ptr<KeyStore> {
    return std::make_unique<PostgresKeyStore>(pool.get(), clock, absl::Milliseconds(50));
  };
  return Backend{open(), open, pool};
}

class KeysLedgerRelayTest
    : public ::testing::TestWithParam<std::pair<std::string, std::function<Backend(Clock*)>>> {
 protected:
  void SetUp() override {
    if (GetParam().first == "postgres" && pg::TestDatabase::Get() == nullptr) {
      GTEST_SKIP() << "POLICY_TEST_PG_URL is not set";
    }
    backend_ = GetParam().second(&clock_);
    outbox_ = std::make_unique<ForgetfulOutbox>(&backend_.store->outbox());
    StartAudit();
  }
  void TearDown() override {
    if (runner_ != nullptr) runner_->Shutdown();
  }

  void StartAudit() {
    server::ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = "";
    runner_ = std::make_unique<server::ServerRunner>(options);
    runner_->AddService(&audit_, av1::AuditService::service_full_name());
    ASSERT_TRUE(runner_->Start().ok());
    target_ = "127.0.0.1:" + std::to_string(runner_->grpc_port());
  }

  // The process restarts: PostgreSQL keeps the outbox for the new store; memory keeps the same
  // store (only the relay restarts).
  void RestartStore() {
    if (!backend_.reopen) return;
    outbox_.reset();
    backend_.store.reset();
    backend_.store = backend_.reopen();
    outbox_ = std::make_unique<ForgetfulOutbox>(&backend_.store->outbox());
  }

  KeyStore& store() { return *backend_.store; }

  std::unique_ptr<ledger::AuditLedgerClient> NewClient() {
    return std::make_unique<ledger::AuditLedgerClient>(
        grpc::CreateChannel(target_, grpc::InsecureChannelCredentials()), absl::Seconds(2));
  }

  std::unique_ptr<ledger::OutboxRelay> NewRelay(ledger::LedgerDestination* destination,
                                                prometheus::Registry* registry = nullptr,
                                                ledger::Outbox* outbox = nullptr) {
    return std::make_unique<ledger::OutboxRelay>(
        outbox != nullptr ? outbox : outbox_.get(), destination,
        ledger::OutboxRelayOptions{.batch = 2,
                                   .poll_interval = absl::Milliseconds(10),
                                   .min_backoff = absl::Milliseconds(5),
                                   .max_backoff = absl::Milliseconds(20)},
        "keys", registry != nullptr ? registry : &registry_);
  }

  static KeyRecord NewKey(int i) {
    KeyRecord key;
    key.key_id = absl::StrCat("key_", std::string(16 - absl::StrCat(i).size(), '0'), i, "x");
    key.owner = {PrincipalType::kMember, "alice@example.com"};
    key.project = "proj-a";
    key.environment = Environment::kProduction;
    key.secret_hash = std::string(32, 'h');
    key.redacted = "psk_proj_...abcd";
    key.created_at = absl::FromUnixSeconds(1700000000);
    key.expires_at = key.created_at + absl::Hours(24);
    return key;
  }

  // A created key: one KEY_CREATED record in the outbox.
  std::string CreateKey(int i) {
    const KeyRecord key = NewKey(i);
    EXPECT_TRUE(store().Insert(key, std::nullopt, "").ok());
    return key.key_id;
  }

  std::vector<ledger::OutboxEntry> Outbox() { return *store().outbox().Read(1000); }

  double Metric(const std::string& name, const std::string& result = "") {
    for (const auto& family : registry_.Collect()) {
      if (family.name != name) continue;
      for (const auto& metric : family.metric) {
        if (!result.empty() && (metric.label.size() != 1 || metric.label[0].value != result)) {
          continue;
        }
        return family.type == prometheus::MetricType::Counter ? metric.counter.value
                                                              : metric.gauge.value;
      }
    }
    return -1;
  }

  FakeClock clock_;
  Backend backend_;
  std::unique_ptr<ForgetfulOutbox> outbox_;
  ScriptedAudit audit_;
  std::unique_ptr<server::ServerRunner> runner_;
  std::string target_;
  prometheus::Registry registry_;
};

TEST_P(KeysLedgerRelayTest, EveryChangeReachesTheLedgerInOrderRetriedUntilAccepted) {
  audit_.Script({grpc::Status(grpc::StatusCode::UNAVAILABLE, "starting"),
                 grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "slow")});
  const std::string key = CreateKey(1);
  KeyRecord successor = NewKey(2);
  successor.rotated_from = key;
  const absl::Time overlap_end = successor.created_at + absl::Hours(1);
  ASSERT_TRUE(store().Rotate(key, overlap_end, successor, std::nullopt, "").ok());
  ASSERT_TRUE(store().Revoke(successor.key_id, "lost", overlap_end, "").ok());
  ASSERT_THAT(*store().RevokeEndedOverlaps(), SizeIs(1));
  auto client = NewClient();
  auto relay = NewRelay(client.get());
  relay->Start();
  ASSERT_TRUE(relay->Flush(absl::Seconds(10)));
  EXPECT_THAT(Outbox(), IsEmpty());
  // The creation three times (two failures), then the rest: never reordered.
  const std::vector<av1::AppendRequest> requests = audit_.requests();
  EXPECT_THAT(
      RequestIds(requests),
      ElementsAre("keys:key_created:" + key, "keys:key_created:" + key, "keys:key_created:" + key,
                  "keys:key_rotated:" + key, "keys:key_created:" + successor.key_id,
                  "keys:key_revoked:" + successor.key_id, "keys:key_auto_revoked:" + key));
  // Every key action is one the ledger knows.
  std::vector<av1::Action> actions;
  for (const av1::AppendRequest& r : requests) actions.push_back(r.entry().action());
  EXPECT_THAT(actions,
              ElementsAre(av1::ACTION_KEY_CREATED, av1::ACTION_KEY_CREATED, av1::ACTION_KEY_CREATED,
                          av1::ACTION_KEY_ROTATED, av1::ACTION_KEY_CREATED, av1::ACTION_KEY_REVOKED,
                          av1::ACTION_KEY_OVERLAP_ENDED));
  // The rotation's entry, field by field, as the ledger receives it.
  const av1::EntryInput& rotation = requests[3].entry();
  EXPECT_EQ(rotation.actor(), "keys-service");
  EXPECT_EQ(rotation.project(), "proj-a");
  EXPECT_EQ(rotation.environment(), "production");
  EXPECT_EQ(rotation.outcome(), av1::OUTCOME_SUCCESS);
  EXPECT_EQ(rotation.subject(), "alice@example.com");
  EXPECT_THAT(
      rotation.metadata(),
      UnorderedElementsAre(Pair("key_id", key), Pair("kind", "project"),
                           Pair("owner_type", "member"), Pair("related_key_id", successor.key_id),
                           Pair("at", "2023-11-14T22:13:20+00:00")));
  EXPECT_EQ(requests[5].entry().metadata().at("reason"), "lost");
  EXPECT_EQ(Metric("policy_keys_audit_events_total", "recorded"), 5);
  EXPECT_EQ(Metric("policy_keys_audit_events_pending"), 0);
}

TEST_P(KeysLedgerRelayTest, ARefusedRecordStaysInTheOutboxMarkedFailedAndIsNotRetried) {
  audit_.Script({grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "request id reused")});
  const std::string first = CreateKey(1), second = CreateKey(2);
  auto client = NewClient();
  auto relay = NewRelay(client.get());
  ASSERT_TRUE(relay->Flush(absl::Seconds(10)));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(relay->DrainOnce().ok());
  EXPECT_THAT(RequestIds(audit_.requests()),
              ElementsAre("keys:key_created:" + first, "keys:key_created:" + second));
  const std::vector<ledger::OutboxEntry> left = Outbox();
  ASSERT_THAT(left, SizeIs(1));
  EXPECT_EQ(left[0].record.request_id, "keys:key_created:" + first);
  EXPECT_TRUE(left[0].failed);
  EXPECT_EQ(left[0].attempts, 1);
  EXPECT_THAT(left[0].last_error, HasSubstr("request id reused"));
  EXPECT_EQ(Metric("policy_keys_audit_events_total", "refused"), 1);
  EXPECT_EQ(Metric("policy_keys_audit_outbox_failed"), 1);
  EXPECT_EQ(Metric("policy_keys_audit_events_pending"), 0);
}

TEST_P(KeysLedgerRelayTest, RecordsWaitInTheOutboxWhileAuditIsDownAndSurviveARestart) {
  // Nothing listens at this address: the records wait, however many there are.
  runner_->Shutdown();
  const absl::Time before = absl::Now() - absl::Milliseconds(1);
  std::vector<std::string> keys;
  for (int i = 0; i < 5; ++i) keys.push_back(CreateKey(i));
  const absl::Time written = absl::Now() + absl::Milliseconds(1);
  {
    auto client = NewClient();
    auto relay = NewRelay(client.get());
    relay->Start();
    EXPECT_FALSE(relay->Flush(absl::Milliseconds(200)));
    EXPECT_EQ(Metric("policy_keys_audit_events_pending"), 5);
    // Stopping returns promptly although the audit service never answered ...
    const absl::Time start = absl::Now();
    relay.reset();
    EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  }
  // ... and leaves every record in the outbox, with the attempts counted.
  ASSERT_THAT(Outbox(), SizeIs(5));
  EXPECT_GE(Outbox()[0].attempts, 1);
  EXPECT_FALSE(Outbox()[0].failed);

  // The next process (a new store on the same database) delivers them, each once, in order.
  RestartStore();
  ASSERT_THAT(Outbox(), SizeIs(5));
  StartAudit();
  prometheus::Registry registry;
  auto client = NewClient();
  auto relay = NewRelay(client.get(), &registry);
  relay->Start();
  ASSERT_TRUE(relay->Flush(absl::Seconds(10)));
  std::vector<std::string> expected;
  for (const std::string& key : keys) expected.push_back("keys:key_created:" + key);
  EXPECT_THAT(RequestIds(audit_.requests()), ElementsAreArray(expected));
  EXPECT_THAT(Outbox(), IsEmpty());
  // Each says when its change was made, not when it was delivered: the ledger does not name a
  // person forgotten in between (audit.proto, Append).
  for (const av1::AppendRequest& r : audit_.requests()) {
    ASSERT_TRUE(r.entry().has_occurred_at()) << r.entry().request_id();
    const absl::Time occurred = absl::FromUnixSeconds(r.entry().occurred_at().seconds()) +
                                absl::Nanoseconds(r.entry().occurred_at().nanos());
    EXPECT_GE(occurred, before);
    EXPECT_LE(occurred, written);
  }
}

TEST_P(KeysLedgerRelayTest, ARecordDeliveredButNotDeletedIsRecordedOnce) {
  const std::string key = CreateKey(1);
  outbox_->lose_records = 1;  // Appended, then the process "dies" before the delete.
  auto client = NewClient();
  auto relay = NewRelay(client.get());
  ASSERT_TRUE(relay->Flush(absl::Seconds(10)));
  EXPECT_THAT(RequestIds(audit_.requests()),
              ElementsAre("keys:key_created:" + key, "keys:key_created:" + key));
  EXPECT_THAT(audit_.recorded(), SizeIs(1));
  EXPECT_EQ(Metric("policy_keys_audit_events_total", "duplicate"), 1);
  EXPECT_THAT(Outbox(), IsEmpty());
}

TEST_P(KeysLedgerRelayTest, TwoReplicasSendEachRecordOnceInOrder) {
  std::unique_ptr<KeyStore> replica = backend_.reopen ? backend_.reopen() : nullptr;
  ledger::Outbox* other = replica != nullptr ? &replica->outbox() : outbox_.get();
  auto client_a = NewClient(), client_b = NewClient();
  prometheus::Registry registry_b;
  auto a = NewRelay(client_a.get()), b = NewRelay(client_b.get(), &registry_b, other);
  a->Start();
  b->Start();
  std::vector<std::string> expected;
  for (int i = 0; i < 20; ++i) expected.push_back("keys:key_created:" + CreateKey(i));
  ASSERT_TRUE(a->Flush(absl::Seconds(10)));
  a->Stop();
  b->Stop();
  EXPECT_THAT(RequestIds(audit_.requests()), ElementsAreArray(expected));
}

TEST_P(KeysLedgerRelayTest, WithoutAnAuditTargetRecordsDrainToTheLog) {
  CreateKey(1);
  ledger::LogLedgerDestination log;
  auto relay = NewRelay(&log);
  ASSERT_TRUE(relay->Flush(absl::Seconds(10)));
  EXPECT_THAT(Outbox(), IsEmpty());
  EXPECT_THAT(audit_.requests(), IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(
    Stores, KeysLedgerRelayTest,
    ::testing::Values(
        std::make_pair(std::string("memory"), std::function<Backend(Clock*)>(MakeMemory)),
        std::make_pair(std::string("postgres"), std::function<Backend(Clock*)>(MakePostgres))),
    [](const auto& info) { return info.param.first; });

}  // namespace
}  // namespace policy::keys
