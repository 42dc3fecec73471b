// Envoy's ext_authz Check against the scripted services, through a real gRPC server: what is
// asked of keys, and what is refused before the body is read.
#include "services/edge/ext_authz_service.h"

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/clock/clock.h"
#include "envoy/service/auth/v3/external_auth.grpc.pb.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "services/edge/denial_budget.h"
#include "services/edge/fake_downstream.h"

namespace policy::edge {
namespace {

namespace auth = envoy::service::auth::v3;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kBody[] =
    R"({"model": "gpt-4o", "messages": [{"role": "user", "content": "Mail jane@example.com"}]})";

class ExtAuthzServiceTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    fake_.async = GetParam();
    fake_.VerifyAsAlicesProjectKey();
    fake_.check_response.set_verdict(authz::v1::VERDICT_ALLOW);
    pii::v1::ChatMessage* redacted = fake_.redact_response.add_messages();
    redacted->set_role("user");
    redacted->set_content("Mail <EMAIL_ADDRESS_1>");
    fake_.route_response.set_decision(region::v1::DECISION_ROUTED);
    fake_.route_response.mutable_endpoint()->set_id("azure-westeurope");
    fake_.append_response.mutable_entry()->mutable_ledger()->set_project("support-eu");
    fake_.append_response.mutable_entry()->mutable_ledger()->set_environment("production");

    FlowOptions options;
    options.redaction = *MakeRedactionPolicy("placeholder", {});
    options.denial_budget = &budget_;
    service_ = std::make_unique<ExtAuthzService>(&fake_, std::move(options),
                                                 *TrustedProxies::Parse({"127.0.0.1/32"}),
                                                 absl::Seconds(10), &metrics_);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = auth::Authorization::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                             grpc::InsecureChannelCredentials()));
  }
  void TearDown() override { server_->Shutdown(); }

  static auth::CheckRequest Request(const std::string& body) {
    auth::CheckRequest check;
    auth::AttributeContext* a = check.mutable_attributes();
    a->mutable_source()->mutable_address()->mutable_socket_address()->set_address("10.20.1.7");
    auth::AttributeContext::HttpRequest* http = a->mutable_request()->mutable_http();
    http->set_method("POST");
    http->set_path("/v1/chat/completions");
    (*http->mutable_headers())["authorization"] = "Bearer psk_proj_abc";
    http->set_body(body);
    return check;
  }

  auth::CheckResponse Check(const auth::CheckRequest& request,
                            absl::Duration deadline = absl::Seconds(10)) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + deadline));
    auth::CheckResponse response;
    grpc::Status status = stub_->Check(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  int VerifyKeyCalls() {
    int n = 0;
    for (const std::string& call : fake_.calls()) n += call == "keys.VerifyKey";
    return n;
  }

  // Counts the metric `name` with label api="ext_authz"; 0 when absent.
  double Metric(const std::string& name) {
    for (const prometheus::MetricFamily& family : registry_.Collect()) {
      if (family.name != name) continue;
      for (const prometheus::ClientMetric& m : family.metric) {
        for (const prometheus::ClientMetric::Label& label : m.label) {
          if (label.name == "api" && label.value == "ext_authz") return m.counter.value;
        }
      }
    }
    return 0;
  }

  FakeDownstream fake_;
  FakeClock clock_;
  // 3 denials in a row, then one a minute.
  DenialBudget budget_{DenialBudgetOptions{.per_minute = 1, .burst = 3, .max_keys = 100}, &clock_};
  prometheus::Registry registry_;
  EdgeMetrics metrics_{registry_};
  std::unique_ptr<ExtAuthzService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<auth::Authorization::Stub> stub_;
};

TEST_P(ExtAuthzServiceTest, DenialBudgetRefusalsAreShownAtZeroBeforeTheFirst) {
  std::set<std::string> apis;
  for (const prometheus::MetricFamily& family : registry_.Collect()) {
    if (family.name != "policy_edge_denial_budget_refusals_total") continue;
    for (const prometheus::ClientMetric& m : family.metric) {
      EXPECT_EQ(m.counter.value, 0);
      for (const prometheus::ClientMetric::Label& label : m.label) apis.insert(label.value);
    }
  }
  EXPECT_EQ(apis, (std::set<std::string>{"decide", "ext_authz"}));
}

TEST_P(ExtAuthzServiceTest, AnAllowedCheckAsksKeysOnce) {
  auth::CheckResponse r = Check(Request(kBody));
  EXPECT_EQ(r.status().code(), grpc::StatusCode::OK) << r.status().message();
  EXPECT_TRUE(r.has_ok_response());
  EXPECT_EQ(VerifyKeyCalls(), 1);
  EXPECT_EQ(fake_.verify_request.secret(), "psk_proj_abc");
  // What follows the verification runs on keys' answer as it does after the flow's own.
  EXPECT_EQ(fake_.check_request.project(), "support-eu");
  EXPECT_EQ(fake_.check_request.principal().id(), "alice@example.com");
  EXPECT_EQ(fake_.redact_request.project_id(), "support-eu");
  EXPECT_EQ(fake_.append_request.entry().project(), "support-eu");
  EXPECT_EQ(fake_.append_request.entry().metadata().at("key_id"), "key-1");
  EXPECT_EQ(fake_.append_request.entry().action(), audit::v1::ACTION_DECISION_ALLOW);
}

TEST_P(ExtAuthzServiceTest, TheKeysOwnChecksStillRunOnTheVerifiedKey) {
  // A key keys verifies but that may not make model calls: denied by the flow, recorded, and
  // keys still asked once.
  fake_.verify_response.mutable_key()->set_kind(keys::v1::KEY_KIND_ADMIN);
  auth::CheckResponse r = Check(Request(kBody));
  EXPECT_EQ(r.denied_response().status().code(), envoy::type::v3::Forbidden);
  EXPECT_THAT(r.denied_response().body(), HasSubstr("KEY_SCOPE"));
  EXPECT_THAT(fake_.calls(), ElementsAre("keys.VerifyKey", "audit.Append"));

  fake_.verify_response.mutable_key()->set_kind(keys::v1::KEY_KIND_PROJECT);
  fake_.verify_response.mutable_key()->clear_scopes();
  r = Check(Request(kBody));
  EXPECT_THAT(r.denied_response().body(), HasSubstr("KEY_SCOPE"));
  EXPECT_EQ(VerifyKeyCalls(), 2);  // One per check.
}

TEST_P(ExtAuthzServiceTest, AnUnknownOrRevokedKeyIs401BeforeTheBodyIsRead) {
  for (grpc::StatusCode code : {grpc::StatusCode::UNAUTHENTICATED, grpc::StatusCode::NOT_FOUND,
                                grpc::StatusCode::FAILED_PRECONDITION}) {
    fake_.verify_status = grpc::Status(code, "key revoked");
    // A body that reading would refuse with 400: the 401 shows it was never read.
    auth::CheckResponse r = Check(Request("not json"));
    EXPECT_EQ(r.status().code(), grpc::StatusCode::UNAUTHENTICATED) << code;
    EXPECT_EQ(r.denied_response().status().code(), envoy::type::v3::Unauthorized) << code;
  }
  EXPECT_THAT(fake_.calls(), ElementsAre("keys.VerifyKey", "keys.VerifyKey", "keys.VerifyKey"));
}

TEST_P(ExtAuthzServiceTest, AKeyWithTooManyDenialsIs429BeforeTheBodyIsRead) {
  fake_.check_response.set_verdict(authz::v1::VERDICT_DENY);
  fake_.check_response.set_reason("MODEL_NOT_ALLOWED");
  for (int i = 0; i < 3; ++i) {
    auth::CheckResponse r = Check(Request(kBody));
    EXPECT_EQ(r.denied_response().status().code(), envoy::type::v3::Forbidden);
    EXPECT_THAT(r.denied_response().body(), HasSubstr("MODEL_NOT_ALLOWED"));
  }
  const size_t calls = fake_.calls().size();

  // A body that reading would refuse with 400: the 429 shows it was never read.
  auth::CheckResponse r = Check(Request("not json"));
  EXPECT_EQ(r.status().code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(r.denied_response().status().code(), envoy::type::v3::TooManyRequests);
  EXPECT_THAT(r.denied_response().body(), HasSubstr("\"code\":\"TOO_MANY_DENIALS\""));
  EXPECT_THAT(r.denied_response().body(),
              HasSubstr("too many denied requests for this key; retry after 60 s"));
  std::string retry_after;
  for (const auto& h : r.denied_response().headers()) {
    if (h.header().key() == "retry-after") retry_after = h.header().value();
  }
  EXPECT_EQ(retry_after, "60");
  // Keys alone was asked: nothing reserved, nothing recorded.
  std::vector<std::string> after = fake_.calls();
  ASSERT_EQ(after.size(), calls + 1);
  EXPECT_EQ(after.back(), "keys.VerifyKey");
  // Counted as a refusal, not as a decision.
  EXPECT_EQ(Metric("policy_edge_denial_budget_refusals_total"), 1);
}

// A key whose bodies cannot be decided on is charged as for a DENY, and refused at the door
// once its budget is spent; a request refused before its body is read (a path of no model
// call, no body) is not charged.
TEST_P(ExtAuthzServiceTest, RequestsThatCannotBeDecidedOnSpendTheKeysDenialBudget) {
  auth::CheckRequest listing = Request("");
  listing.mutable_attributes()->mutable_request()->mutable_http()->set_method("GET");
  listing.mutable_attributes()->mutable_request()->mutable_http()->set_path("/v1/models");
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(Check(listing).denied_response().status().code(), envoy::type::v3::BadRequest);
    EXPECT_EQ(Check(Request("")).denied_response().status().code(), envoy::type::v3::BadRequest);
  }
  for (int i = 0; i < 3; ++i) {
    auth::CheckResponse r = Check(Request("not json"));
    EXPECT_EQ(r.denied_response().status().code(), envoy::type::v3::BadRequest);
  }
  auth::CheckResponse r = Check(Request(kBody));
  EXPECT_EQ(r.denied_response().status().code(), envoy::type::v3::TooManyRequests);
  EXPECT_THAT(r.denied_response().body(), HasSubstr("TOO_MANY_DENIALS"));
  // Only keys was asked: nothing was decided or recorded.
  for (const std::string& call : fake_.calls()) EXPECT_EQ(call, "keys.VerifyKey");
}

// The key's scopes must grant the API the path calls; authz decides on that API.
TEST_P(ExtAuthzServiceTest, ThePathsApiIsCheckedAgainstTheKeysScopes) {
  auth::CheckRequest embeddings = Request(R"({"model": "text-embedding-3-small", "input": "hi"})");
  embeddings.mutable_attributes()->mutable_request()->mutable_http()->set_path("/v1/embeddings");
  auth::CheckResponse r = Check(embeddings);
  EXPECT_EQ(r.denied_response().status().code(), envoy::type::v3::Forbidden);
  EXPECT_THAT(r.denied_response().body(), HasSubstr("the key does not grant embeddings"));
  fake_.verify_response.mutable_key()->add_scopes("embeddings");
  r = Check(embeddings);
  EXPECT_TRUE(r.has_ok_response()) << r.denied_response().body();
  EXPECT_EQ(fake_.check_request.action(), "embeddings");
  EXPECT_EQ(fake_.append_request.entry().metadata().at("api"), "embeddings");
}

// Every call the edge makes for a check carries the caller's deadline, or the edge's own limit
// (10 s here) when the caller's is later.
TEST_P(ExtAuthzServiceTest, EveryDownstreamCallCarriesTheCallersDeadline) {
  for (const absl::Duration callers : {absl::Seconds(3), absl::Seconds(60)}) {
    const absl::Time expected = absl::Now() + std::min(callers, absl::Seconds(10));
    auth::CheckResponse r = Check(Request(kBody), callers);
    ASSERT_TRUE(r.has_ok_response()) << callers;
    const auto deadlines = fake_.deadlines();
    EXPECT_EQ(deadlines.size(), 5u);  // keys, authz, pii, region, audit.
    for (const auto& [call, deadline] : deadlines) {
      // Within the time the check took and gRPC's rounding of the timeout it sends.
      EXPECT_LT(absl::AbsDuration(absl::FromChrono(deadline) - expected), absl::Milliseconds(500))
          << call << " " << callers;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(InlineAndFromOtherThreads, ExtAuthzServiceTest, ::testing::Bool());

}  // namespace
}  // namespace policy::edge
