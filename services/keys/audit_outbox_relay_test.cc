// The outbox relay and the audit ledger client against a scripted AuditService on 127.0.0.1:
// the entries they send, in which order, and what becomes of the outbox when the audit
// service is down, refuses an entry, or the relay restarts.
#include "services/keys/audit_outbox_relay.h"

#include <atomic>
#include <deque>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/server/server_runner.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "policy/audit/v1/audit.grpc.pb.h"
#include "services/keys/audit_entry_convert.h"
#include "services/keys/audit_ledger_client.h"
#include "services/keys/memory_key_store.h"

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

KeyEvent Event(KeyEvent::Type type, const std::string& key_id) {
  return KeyEvent{.type = type,
                  .key_id = key_id,
                  .kind = KeyKind::kProject,
                  .owner = Principal{PrincipalType::kMember, "alice@example.com"},
                  .project = "proj-a",
                  .environment = Environment::kProduction,
                  .at = absl::FromUnixSeconds(1700000000),
                  .related_key_id = "",
                  .reason = ""};
}

std::vector<std::string> RequestIds(const std::vector<av1::AppendRequest>& requests) {
  std::vector<std::string> ids;
  for (const av1::AppendRequest& r : requests) ids.push_back(r.entry().request_id());
  return ids;
}

TEST(AuditEntryOfTest, NamesTheKeyTheOwnerAndTheLedger) {
  KeyEvent rotated = Event(KeyEvent::Type::kRotated, "key_A");
  rotated.related_key_id = "key_B";
  const av1::EntryInput entry = AuditEntryOf(rotated).entry();
  EXPECT_EQ(entry.action(), av1::ACTION_KEY_ROTATED);
  EXPECT_EQ(entry.project(), "proj-a");
  EXPECT_EQ(entry.environment(), "production");
  EXPECT_EQ(entry.subject(), "alice@example.com");
  EXPECT_EQ(entry.request_id(), "keys:key_rotated:key_A");
  EXPECT_THAT(entry.metadata(),
              UnorderedElementsAre(Pair("key_id", "key_A"), Pair("kind", "project"),
                                   Pair("owner_type", "member"), Pair("related_key_id", "key_B"),
                                   Pair("at", "2023-11-14T22:13:20+00:00")));

  KeyEvent admin = Event(KeyEvent::Type::kOverlapEnded, "key_C");
  admin.kind = KeyKind::kAdmin;
  admin.project = "";
  admin.reason = "rotation overlap ended";
  const av1::EntryInput org = AuditEntryOf(admin).entry();
  EXPECT_EQ(org.action(), av1::ACTION_KEY_OVERLAP_ENDED);
  EXPECT_EQ(org.project(), "");
  EXPECT_EQ(org.environment(), "");  // The organisation's ledger.
  EXPECT_EQ(org.metadata().at("reason"), "rotation overlap ended");
  EXPECT_EQ(org.request_id(), "keys:key_auto_revoked:key_C");
}

// A MemoryKeyStore whose next `lose_records` drains lose what the handler answered after it
// answered (as when the process dies between Append and the outbox delete): the events stay.
class ForgetfulStore : public MemoryKeyStore {
 public:
  absl::StatusOr<OutboxDrain> DrainOutbox(int limit, const OutboxHandler& handle) override {
    if (lose_records == 0) return MemoryKeyStore::DrainOutbox(limit, handle);
    --lose_records;
    return MemoryKeyStore::DrainOutbox(limit, [&](const OutboxEvent& entry) {
      handle(entry);
      return Delivery{Delivery::Result::kRetry, "crashed"};
    });
  }
  std::atomic<int> lose_records{0};
};

class AuditOutboxRelayTest : public ::testing::Test {
 protected:
  void SetUp() override { StartAudit(); }
  void TearDown() override { runner_->Shutdown(); }

  void StartAudit() {
    server::ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = "";
    runner_ = std::make_unique<server::ServerRunner>(options);
    runner_->AddService(&audit_, av1::AuditService::service_full_name());
    ASSERT_TRUE(runner_->Start().ok());
    target_ = "127.0.0.1:" + std::to_string(runner_->grpc_port());
  }

  std::unique_ptr<AuditLedgerClient> NewClient(const std::string& target) {
    return std::make_unique<AuditLedgerClient>(
        grpc::CreateChannel(target, grpc::InsecureChannelCredentials()), absl::Seconds(2));
  }

  std::unique_ptr<AuditOutboxRelay> NewRelay(KeyEventDestination* destination,
                                             prometheus::Registry* registry = nullptr) {
    return std::make_unique<AuditOutboxRelay>(
        &store_, destination,
        AuditOutboxRelayOptions{.batch = 2,
                                .poll_interval = absl::Milliseconds(10),
                                .min_backoff = absl::Milliseconds(5),
                                .max_backoff = absl::Milliseconds(20)},
        registry != nullptr ? registry : &registry_);
  }

  // A created key: one key_created event in the outbox.
  std::string CreateKey(int i) {
    KeyRecord key;
    key.key_id = absl::StrCat("key_", std::string(16 - absl::StrCat(i).size(), '0'), i, "x");
    key.owner = {PrincipalType::kMember, "alice@example.com"};
    key.project = "proj-a";
    key.secret_hash = std::string(32, 'h');
    key.created_at = absl::FromUnixSeconds(1700000000);
    key.expires_at = key.created_at + absl::Hours(24);
    EXPECT_TRUE(store_.Insert(key, std::nullopt).ok());
    return key.key_id;
  }

  std::vector<OutboxEvent> Outbox() { return *store_.ReadOutbox(1000); }

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

  ForgetfulStore store_;
  ScriptedAudit audit_;
  std::unique_ptr<server::ServerRunner> runner_;
  std::string target_;
  prometheus::Registry registry_;
};

TEST_F(AuditOutboxRelayTest, SendsEventsInOrderAndRetriesUntilAccepted) {
  audit_.Script({grpc::Status(grpc::StatusCode::UNAVAILABLE, "starting"),
                 grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "slow")});
  const std::string key = CreateKey(1);
  ASSERT_TRUE(store_.Revoke(key, "lost", absl::FromUnixSeconds(1700000100)).ok());
  auto client = NewClient(target_);
  auto relay = NewRelay(client.get());
  relay->Start();
  ASSERT_TRUE(relay->Flush(absl::Seconds(10)));
  EXPECT_THAT(Outbox(), IsEmpty());
  // The creation three times (two failures), then the revocation: never reordered.
  EXPECT_THAT(RequestIds(audit_.requests()),
              ElementsAre("keys:key_created:" + key, "keys:key_created:" + key,
                          "keys:key_created:" + key, "keys:key_revoked:" + key));
  EXPECT_EQ(Metric("policy_keys_audit_events_total", "recorded"), 2);
  EXPECT_EQ(Metric("policy_keys_audit_events_pending"), 0);
}

TEST_F(AuditOutboxRelayTest, ARefusedEventStaysInTheOutboxMarkedFailedAndIsNotRetried) {
  audit_.Script({grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "request id reused")});
  const std::string first = CreateKey(1), second = CreateKey(2);
  auto client = NewClient(target_);
  auto relay = NewRelay(client.get());
  ASSERT_TRUE(relay->Flush(absl::Seconds(10)));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(relay->DrainOnce().ok());
  EXPECT_THAT(RequestIds(audit_.requests()),
              ElementsAre("keys:key_created:" + first, "keys:key_created:" + second));
  const std::vector<OutboxEvent> left = Outbox();
  ASSERT_THAT(left, SizeIs(1));
  EXPECT_EQ(left[0].event.key_id, first);
  EXPECT_TRUE(left[0].failed);
  EXPECT_EQ(left[0].attempts, 1);
  EXPECT_THAT(left[0].last_error, HasSubstr("request id reused"));
  EXPECT_EQ(Metric("policy_keys_audit_events_total", "refused"), 1);
  EXPECT_EQ(Metric("policy_keys_audit_outbox_failed"), 1);
  EXPECT_EQ(Metric("policy_keys_audit_events_pending"), 0);
}

TEST_F(AuditOutboxRelayTest, EventsWaitInTheOutboxWhileAuditIsDownAndSurviveARelayRestart) {
  // Nothing listens at this address: the events wait, however many there are.
  runner_->Shutdown();
  std::vector<std::string> keys;
  for (int i = 0; i < 5; ++i) keys.push_back(CreateKey(i));
  {
    auto client = NewClient(target_);
    auto relay = NewRelay(client.get());
    relay->Start();
    EXPECT_FALSE(relay->Flush(absl::Milliseconds(200)));
    EXPECT_EQ(Metric("policy_keys_audit_events_pending"), 5);
    // Stopping returns promptly although the audit service never answered ...
    const absl::Time start = absl::Now();
    relay.reset();
    EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  }
  // ... and leaves every event in the outbox, with the attempts counted.
  ASSERT_THAT(Outbox(), SizeIs(5));
  EXPECT_GE(Outbox()[0].attempts, 1);
  EXPECT_FALSE(Outbox()[0].failed);

  // The next relay (a restarted process) delivers them, each once, in order.
  StartAudit();
  prometheus::Registry registry;
  auto client = NewClient(target_);
  auto relay = NewRelay(client.get(), &registry);
  relay->Start();
  ASSERT_TRUE(relay->Flush(absl::Seconds(10)));
  std::vector<std::string> expected;
  for (const std::string& key : keys) expected.push_back("keys:key_created:" + key);
  EXPECT_THAT(RequestIds(audit_.requests()), ElementsAreArray(expected));
  EXPECT_THAT(Outbox(), IsEmpty());
}

TEST_F(AuditOutboxRelayTest, AnEventDeliveredButNotDeletedIsRecordedOnce) {
  const std::string key = CreateKey(1);
  store_.lose_records = 1;  // Appended, then the process "dies" before the delete.
  auto client = NewClient(target_);
  auto relay = NewRelay(client.get());
  ASSERT_TRUE(relay->Flush(absl::Seconds(10)));
  EXPECT_THAT(RequestIds(audit_.requests()),
              ElementsAre("keys:key_created:" + key, "keys:key_created:" + key));
  EXPECT_THAT(audit_.recorded(), SizeIs(1));
  EXPECT_EQ(Metric("policy_keys_audit_events_total", "duplicate"), 1);
  EXPECT_THAT(Outbox(), IsEmpty());
}

TEST_F(AuditOutboxRelayTest, TwoRelaysOnOneStoreSendEachEventOnceInOrder) {
  auto client_a = NewClient(target_), client_b = NewClient(target_);
  prometheus::Registry registry_b;
  auto a = NewRelay(client_a.get()), b = NewRelay(client_b.get(), &registry_b);
  a->Start();
  b->Start();
  std::vector<std::string> expected;
  for (int i = 0; i < 20; ++i) expected.push_back("keys:key_created:" + CreateKey(i));
  ASSERT_TRUE(a->Flush(absl::Seconds(10)));
  a->Stop();
  b->Stop();
  EXPECT_THAT(RequestIds(audit_.requests()), ElementsAreArray(expected));
}

TEST_F(AuditOutboxRelayTest, WithoutAnAuditTargetEventsDrainToTheLog) {
  CreateKey(1);
  LogKeyEventDestination log;
  auto relay = NewRelay(&log);
  ASSERT_TRUE(relay->Flush(absl::Seconds(10)));
  EXPECT_THAT(Outbox(), IsEmpty());
  EXPECT_THAT(audit_.requests(), IsEmpty());
}

}  // namespace
}  // namespace policy::keys
