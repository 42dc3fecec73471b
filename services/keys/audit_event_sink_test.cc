// The audit sink against a scripted AuditService on 127.0.0.1: the entries it sends, and
// what it does when the audit service is down or refuses an entry.
#include "services/keys/audit_event_sink.h"

#include <deque>
#include <memory>
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

namespace policy::keys {
namespace {

namespace av1 = audit::v1;
using ::testing::ElementsAre;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

// Answers Append with the scripted statuses first, OK afterwards; records every request.
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

 private:
  mutable absl::Mutex mu_;
  std::deque<grpc::Status> script_;
  std::vector<av1::AppendRequest> requests_;
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

class AuditEventSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server::ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = "";
    runner_ = std::make_unique<server::ServerRunner>(options);
    runner_->AddService(&audit_, av1::AuditService::service_full_name());
    ASSERT_TRUE(runner_->Start().ok());
    target_ = "127.0.0.1:" + std::to_string(runner_->grpc_port());
  }
  void TearDown() override { runner_->Shutdown(); }

  std::unique_ptr<AuditEventSink> NewSink(const std::string& target) {
    return std::make_unique<AuditEventSink>(
        grpc::CreateChannel(target, grpc::InsecureChannelCredentials()),
        AuditEventSinkOptions{.max_pending = 3,
                              .call_timeout = absl::Seconds(2),
                              .min_backoff = absl::Milliseconds(5),
                              .max_backoff = absl::Milliseconds(20)},
        &registry_);
  }

  ScriptedAudit audit_;
  std::unique_ptr<server::ServerRunner> runner_;
  std::string target_;
  prometheus::Registry registry_;
};

TEST_F(AuditEventSinkTest, SendsEventsInOrderAndRetriesUntilAccepted) {
  audit_.Script({grpc::Status(grpc::StatusCode::UNAVAILABLE, "starting"),
                 grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "slow")});
  auto sink = NewSink(target_);
  sink->Publish(Event(KeyEvent::Type::kCreated, "key_1"));
  sink->Publish(Event(KeyEvent::Type::kRevoked, "key_1"));
  ASSERT_TRUE(sink->Flush(absl::Seconds(10)));
  EXPECT_EQ(sink->pending(), 0u);
  // key_1's creation three times (two failures), then its revocation: never reordered.
  EXPECT_THAT(RequestIds(audit_.requests()),
              ElementsAre("keys:key_created:key_1", "keys:key_created:key_1",
                          "keys:key_created:key_1", "keys:key_revoked:key_1"));
}

TEST_F(AuditEventSinkTest, ARefusedEventIsNotRetried) {
  audit_.Script({grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "request id reused")});
  auto sink = NewSink(target_);
  sink->Publish(Event(KeyEvent::Type::kCreated, "key_1"));
  sink->Publish(Event(KeyEvent::Type::kCreated, "key_2"));
  ASSERT_TRUE(sink->Flush(absl::Seconds(10)));
  EXPECT_THAT(RequestIds(audit_.requests()),
              ElementsAre("keys:key_created:key_1", "keys:key_created:key_2"));
}

TEST_F(AuditEventSinkTest, EventsWaitWhileTheAuditServiceIsUnreachableAndDropBeyondTheLimit) {
  // Nothing listens at this address; the sink keeps the events, up to max_pending (3).
  runner_->Shutdown();
  {
    auto sink = NewSink(target_);
    for (int i = 0; i < 5; ++i) sink->Publish(Event(KeyEvent::Type::kCreated, absl::StrCat(i)));
    EXPECT_FALSE(sink->Flush(absl::Milliseconds(200)));
    EXPECT_EQ(sink->pending(), 3u);
    // Destroying the sink returns promptly, although the audit service never answered.
    const absl::Time start = absl::Now();
    sink.reset();
    EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  }
  bool dropped_counted = false;
  for (const auto& family : registry_.Collect()) {
    if (family.name != "policy_keys_audit_events_total") continue;
    for (const auto& metric : family.metric) {
      if (metric.label.size() == 1 && metric.label[0].value == "dropped") {
        EXPECT_EQ(metric.counter.value, 2);
        dropped_counted = true;
      }
    }
  }
  EXPECT_TRUE(dropped_counted);
}

}  // namespace
}  // namespace policy::keys
