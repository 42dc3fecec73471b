// The gRPC surface in process: real server and channel on 127.0.0.1, memory store.
#include "services/region/region_service.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock/clock.h"
#include "common/ledger/outbox.h"
#include "common/proto/well_known.h"
#include "common/server/server_runner.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "services/region/endpoint_change.h"
#include "services/region/memory_endpoint_store.h"
#include "services/region/proto_convert.h"

namespace policy::region {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::SizeIs;
using ::testing::UnorderedElementsAre;

class RegionServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server::ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = "";
    runner_ = std::make_unique<server::ServerRunner>(options);
    service_ = std::make_unique<RegionService>(&registry_, &store_, &sync_, &pool_, &clock_,
                                               absl::InfiniteDuration(), absl::Seconds(1));
    runner_->AddService(service_.get(), v1::RegionService::service_full_name());
    ASSERT_TRUE(runner_->Start().ok());
    stub_ = v1::RegionService::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(runner_->grpc_port()), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override { runner_->Shutdown(); }

  static v1::Endpoint Eu(const std::string& id) {
    v1::Endpoint e;
    e.set_id(id);
    e.set_region("westeurope");
    e.set_provider(v1::PROVIDER_AZURE);
    e.set_base_url("https://" + id + ".openai.azure.com");
    e.set_deployment("gpt-4o");
    e.set_residency(v1::RESIDENCY_EU);
    e.add_models("gpt-4o");
    e.set_enabled(true);
    return e;
  }

  grpc::Status Create(const v1::Endpoint& e, const std::string& actor) {
    v1::CreateEndpointRequest request;
    *request.mutable_endpoint() = e;
    request.set_actor(actor);
    v1::CreateEndpointResponse response;
    grpc::ClientContext context;
    return stub_->CreateEndpoint(&context, request, &response);
  }
  grpc::Status Update(const v1::Endpoint& e, const std::string& actor) {
    v1::UpdateEndpointRequest request;
    *request.mutable_endpoint() = e;
    request.set_actor(actor);
    v1::UpdateEndpointResponse response;
    grpc::ClientContext context;
    return stub_->UpdateEndpoint(&context, request, &response);
  }
  grpc::Status Delete(const std::string& id, const std::string& actor) {
    v1::DeleteEndpointRequest request;
    request.set_id(id);
    request.set_actor(actor);
    v1::DeleteEndpointResponse response;
    grpc::ClientContext context;
    return stub_->DeleteEndpoint(&context, request, &response);
  }
  std::vector<ledger::OutboxEntry> Outbox() { return store_.outbox().Read(100).value(); }

  FakeClock clock_;
  MemoryEndpointStore store_{&clock_};
  EndpointRegistry registry_{&clock_, BreakerOptions{}};
  RegistrySync sync_{&store_, &registry_, "test", &clock_};
  server::BlockingPool pool_{2, 16};
  std::unique_ptr<server::ServerRunner> runner_;
  std::unique_ptr<RegionService> service_;
  std::unique_ptr<v1::RegionService::Stub> stub_;
};

TEST_F(RegionServiceTest, AChangeWithoutAValidActorIsInvalidArgumentNamingItAndChangesNothing) {
  ASSERT_TRUE(Create(Eu("kept"), "alice").ok());
  const std::vector<ledger::OutboxEntry> before = Outbox();
  // (Text that is not UTF-8 does not get here: proto3 refuses it in a string field.)
  for (const std::string& actor :
       {std::string(), std::string(kMaxActorBytes + 1, 'a'), std::string("a\0b", 3)}) {
    SCOPED_TRACE(actor.size());
    for (const grpc::Status& s :
         {Create(Eu("new"), actor), Update(Eu("kept"), actor), Delete("kept", actor)}) {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
      EXPECT_THAT(s.error_message(), ::testing::StartsWith("actor: "));
    }
  }
  EXPECT_THAT(Create(Eu("new"), "").error_message(), HasSubstr("required"));
  EXPECT_EQ(Outbox(), before);
  const EndpointStore::Listing listing = store_.List().value();
  std::vector<std::string> ids;
  for (const Endpoint& e : listing.endpoints) ids.push_back(e.id);
  EXPECT_THAT(ids, ElementsAre("kept"));
}

// A creation retried after its answer was lost finds what it made: OK, nothing new recorded;
// another endpoint under the id is ALREADY_EXISTS naming the first field that differs.
TEST_F(RegionServiceTest, ARetriedCreationIsOkAndRecordedOnceAndOtherContentIsRefused) {
  ASSERT_TRUE(Create(Eu("retried"), "alice").ok());
  const std::vector<ledger::OutboxEntry> before = Outbox();
  ASSERT_THAT(before, SizeIs(1));
  const int64_t version = store_.Version().value();
  grpc::Status again = Create(Eu("retried"), "alice");
  EXPECT_TRUE(again.ok()) << again.error_message();
  v1::Endpoint other = Eu("retried");
  other.set_base_url("https://elsewhere.openai.azure.com");
  grpc::Status refused = Create(other, "alice");
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(refused.error_message(),
            "endpoint 'retried' exists already, with a different base_url");
  EXPECT_EQ(Outbox(), before);
  EXPECT_EQ(store_.Version().value(), version);
}

TEST_F(RegionServiceTest, EachChangeIsRecordedAsTheEdgeRecordedItByTheRequestsActor) {
  v1::Endpoint e = Eu("ep");
  ASSERT_TRUE(Create(e, "alice").ok());
  e.set_residency(v1::RESIDENCY_APAC);
  e.set_region("japaneast");
  e.set_enabled(false);
  ASSERT_TRUE(Update(e, "bob").ok());
  // The same update again changes nothing, and records nothing.
  ASSERT_TRUE(Update(e, "bob").ok());
  ASSERT_TRUE(Delete("ep", "carol").ok());
  // A change that fails is not recorded.
  EXPECT_EQ(Delete("ep", "carol").error_code(), grpc::StatusCode::NOT_FOUND);
  // An id no endpoint can have is the caller's mistake, named.
  const grpc::Status malformed = Delete("EP 1", "carol");
  EXPECT_EQ(malformed.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(malformed.error_message(),
            "id: 'EP 1' is not 1 to 64 of [a-z0-9_.-], starting with a letter or digit");

  const std::vector<ledger::OutboxEntry> entries = Outbox();
  ASSERT_THAT(entries, SizeIs(3));
  EXPECT_EQ(entries[0].record.actor, "alice");
  EXPECT_EQ(entries[1].record.actor, "bob");
  EXPECT_EQ(entries[2].record.actor, "carol");
  for (const ledger::OutboxEntry& entry : entries) {
    EXPECT_EQ(entry.record.action, "ENDPOINT_CHANGED");
    EXPECT_EQ(entry.record.project, "");
    EXPECT_EQ(entry.record.subject, "");
  }
  EXPECT_THAT(entries[0].record.metadata,
              UnorderedElementsAre(Pair("change", "created"), Pair("endpoint", "ep"),
                                   Pair("region", "westeurope"),
                                   Pair("residency", v1::Residency_Name(v1::RESIDENCY_EU)),
                                   Pair("enabled", "true")));
  EXPECT_THAT(entries[1].record.metadata,
              UnorderedElementsAre(
                  Pair("change", "updated"), Pair("endpoint", "ep"), Pair("region", "japaneast"),
                  Pair("residency", v1::Residency_Name(v1::RESIDENCY_APAC)),
                  Pair("enabled", "false"), Pair("fields", "region,residency,enabled")));
  EXPECT_THAT(entries[2].record.metadata,
              UnorderedElementsAre(Pair("change", "deleted"), Pair("endpoint", "ep")));
}

TEST_F(RegionServiceTest, ReportOutcomeTellsLateRepliesApartByRoutedAt) {
  ASSERT_TRUE(Create(Eu("ep"), "alice").ok());
  auto report = [&](bool success, std::optional<absl::Time> routed_at,
                    v1::ReportOutcomeResponse* response) {
    v1::ReportOutcomeRequest request;
    request.set_endpoint_id("ep");
    request.set_success(success);
    if (routed_at.has_value()) proto::SetTime(*routed_at, request.mutable_routed_at());
    grpc::ClientContext context;
    return stub_->ReportOutcome(&context, request, response);
  };
  const absl::Time before_outage = clock_.Now();
  clock_.Advance(absl::Seconds(1));
  v1::ReportOutcomeResponse response;
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(report(false, std::nullopt, &response).ok());
  EXPECT_EQ(response.breaker_state(), v1::BREAKER_STATE_OPEN);
  clock_.Advance(absl::Seconds(30));
  // A success of a request routed before the outage does not close the half-open breaker.
  ASSERT_TRUE(report(true, before_outage, &response).ok());
  EXPECT_EQ(response.breaker_state(), v1::BREAKER_STATE_HALF_OPEN);
  ASSERT_TRUE(report(true, clock_.Now(), &response).ok());
  EXPECT_EQ(response.breaker_state(), v1::BREAKER_STATE_CLOSED);
  // Nor do failures of requests caught in the outage re-open it.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(report(false, before_outage, &response).ok());
  EXPECT_EQ(response.breaker_state(), v1::BREAKER_STATE_CLOSED);
  // A malformed time is the caller's mistake, named.
  v1::ReportOutcomeRequest bad;
  bad.set_endpoint_id("ep");
  bad.mutable_routed_at()->set_nanos(-1);
  grpc::ClientContext context;
  const grpc::Status s = stub_->ReportOutcome(&context, bad, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("routed_at"));
}

// One tenant's failures alone do not open an endpoint another tenant uses; a second tenant's
// failure in the run does. Withheld trips are counted in the health report.
TEST_F(RegionServiceTest, ReportOutcomeCountsDistinctReporters) {
  ASSERT_TRUE(Create(Eu("ep"), "alice").ok());
  auto report = [&](bool success, const std::string& reporter) {
    v1::ReportOutcomeRequest request;
    request.set_endpoint_id("ep");
    request.set_success(success);
    request.set_reporter(reporter);
    v1::ReportOutcomeResponse response;
    grpc::ClientContext context;
    const grpc::Status s = stub_->ReportOutcome(&context, request, &response);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return response.breaker_state();
  };
  auto health = [&] {
    v1::GetHealthReportResponse response;
    grpc::ClientContext context;
    EXPECT_TRUE(stub_->GetHealthReport(&context, {}, &response).ok());
    return response.endpoints(0);
  };
  EXPECT_EQ(report(true, "support-eu"), v1::BREAKER_STATE_CLOSED);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(report(false, "billing-us"), v1::BREAKER_STATE_CLOSED);
  EXPECT_EQ(health().trips_withheld(), 3u);
  EXPECT_EQ(health().consecutive_failures(), 5);
  EXPECT_EQ(report(false, "support-eu"), v1::BREAKER_STATE_OPEN);
  EXPECT_EQ(health().trips_withheld(), 3u);

  // A reporter is at most 256 bytes; longer is the caller's mistake, named.
  v1::ReportOutcomeRequest request;
  request.set_endpoint_id("ep");
  request.set_reporter(std::string(kMaxReporterBytes + 1, 'r'));
  v1::ReportOutcomeResponse response;
  grpc::ClientContext context;
  const grpc::Status s = stub_->ReportOutcome(&context, request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), ::testing::StartsWith("reporter: "));
  EXPECT_EQ(registry_.Health().endpoints.at(0).failures, 6u);  // Not recorded.
  EXPECT_EQ(kMaxReporterBytes, 256u);
  request.set_reporter(std::string(kMaxReporterBytes, 'r'));
  grpc::ClientContext at_bound;
  EXPECT_TRUE(stub_->ReportOutcome(&at_bound, request, &response).ok());
}

TEST_F(RegionServiceTest, ReportOutcomeRefusesAStatusThatIsNoHttpStatusNamingIt) {
  ASSERT_TRUE(Create(Eu("ep"), "alice").ok());
  for (int status : {-1, 600, 1 << 30}) {
    v1::ReportOutcomeRequest request;
    request.set_endpoint_id("ep");
    request.set_status(status);
    v1::ReportOutcomeResponse response;
    grpc::ClientContext context;
    const grpc::Status s = stub_->ReportOutcome(&context, request, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status;
    EXPECT_THAT(s.error_message(), HasSubstr("status: "));
  }
  EXPECT_EQ(registry_.Health().endpoints.at(0).failures, 0u);  // Nothing was recorded.
}

TEST_F(RegionServiceTest, RouteRequestIdAndEndpointIdAreCheckedAndNamed) {
  ASSERT_TRUE(Create(Eu("ep"), "alice").ok());
  v1::RouteRequest request;
  request.set_residency(v1::RESIDENCY_EU);
  request.set_model("gpt-4o");
  request.set_preference(v1::PREFERENCE_WEIGHTED);
  request.set_request_id(std::string(128, 'r'));
  v1::RouteResponse response;
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->Route(&context, request, &response).ok());
    EXPECT_EQ(response.endpoint().id(), "ep");
  }
  request.set_request_id(std::string(129, 'r'));
  {
    grpc::ClientContext context;
    const grpc::Status s = stub_->Route(&context, request, &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), ::testing::StartsWith("request_id: "));
  }
  // A retry naming where its first attempt went: there, or blocked.
  request.set_request_id("r");
  request.set_endpoint_id("gone");
  {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->Route(&context, request, &response).ok());
    EXPECT_EQ(response.decision(), v1::DECISION_BLOCKED);
    EXPECT_THAT(response.reason(), HasSubstr("'gone', where the request was first routed"));
  }
  request.set_endpoint_id(std::string(65, 'e'));
  grpc::ClientContext context;
  const grpc::Status s = stub_->Route(&context, request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), ::testing::StartsWith("endpoint_id: "));
}

TEST_F(RegionServiceTest, AnUpdateOverAChangeMadeSinceItWasReadIsRefused) {
  ASSERT_TRUE(Create(Eu("ep"), "alice").ok());
  v1::Endpoint read = Eu("ep");
  read.set_priority(1);  // As ListEndpoints shows it.
  v1::Endpoint private_only = read;
  private_only.mutable_capabilities()->set_zero_data_retention(true);
  auto update = [&](const v1::Endpoint& e, const v1::Endpoint& expected) {
    v1::UpdateEndpointRequest request;
    *request.mutable_endpoint() = e;
    *request.mutable_expected() = expected;
    request.set_actor("bob");
    v1::UpdateEndpointResponse response;
    grpc::ClientContext context;
    return stub_->UpdateEndpoint(&context, request, &response);
  };
  ASSERT_TRUE(update(private_only, read).ok());
  v1::Endpoint reprioritised = read;
  reprioritised.set_priority(5);
  grpc::Status s = update(reprioritised, read);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("capabilities.zero_data_retention"));
  EXPECT_TRUE(store_.List()->endpoints.at(0).capabilities.zero_data_retention);
  // What was read must be an endpoint of the same id.
  v1::Endpoint other = read;
  other.set_id("other");
  s = update(reprioritised, other);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), ::testing::StartsWith("expected.id: "));
  other = read;
  other.set_base_url("http://plain");
  s = update(reprioritised, other);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), ::testing::StartsWith("expected: endpoint.base_url"));
}

TEST(LedgerResidencyNameTest, IsTheProtoValueName) {
  for (Residency r : {Residency::kEu, Residency::kUs, Residency::kApac, Residency::kGlobal}) {
    Endpoint e;
    e.residency = r;
    v1::Endpoint proto;
    ToProto(e, &proto);
    EXPECT_EQ(LedgerResidencyName(r), v1::Residency_Name(proto.residency()));
  }
}

}  // namespace
}  // namespace policy::region
