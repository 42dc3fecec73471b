// The gRPC surface in process: real server and channel on 127.0.0.1, memory store.
#include "services/keys/keys_service.h"

#include "common/clock/clock.h"
#include "common/server/server_runner.h"
#include "common/status/grpc_status.h"
#include "common/status/status.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "services/keys/keys_test_util.h"
#include "services/keys/memory_key_store.h"

namespace policy::keys {
namespace {

using ::testing::HasSubstr;

class KeysServiceTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    pepper_ = TestPepper();
    lifecycle_ = std::make_unique<KeyLifecycle>(&store_, pepper_.get(), &clock_, KeyPolicy{});
    verifier_ = std::make_unique<KeyVerifier>(pepper_.get(), &clock_, absl::Seconds(1));
    store_.Watch(verifier_.get());
    server::ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = "";
    runner_ = std::make_unique<server::ServerRunner>(options);
    service_ = std::make_unique<KeysService>(
        lifecycle_.get(), verifier_.get(), &pool_, &clock_, &runner_->metrics_registry(),
        KeysServiceOptions{.reveal_denial_reasons = GetParam()});
    runner_->AddService(service_.get(), v1::KeyService::service_full_name());
    ASSERT_TRUE(runner_->Start().ok());
    stub_ = v1::KeyService::NewStub(grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(runner_->grpc_port()), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    runner_->Shutdown();
    store_.StopWatching();
  }

  v1::CreateKeyRequest CreateRequest() {
    v1::CreateKeyRequest request;
    request.set_kind(v1::KEY_KIND_PROJECT);
    request.mutable_owner()->set_type(v1::PRINCIPAL_TYPE_MEMBER);
    request.mutable_owner()->set_id("alice");
    request.set_project("proj-dev");
    request.set_environment(v1::ENVIRONMENT_DEVELOPMENT);
    request.add_scopes("chat.completions");
    return request;
  }

  grpc::Status Create(const v1::CreateKeyRequest& request, v1::CreateKeyResponse* response) {
    grpc::ClientContext context;
    return stub_->CreateKey(&context, request, response);
  }

  grpc::Status Verify(const std::string& secret, v1::VerifyKeyResponse* response) {
    grpc::ClientContext context;
    v1::VerifyKeyRequest request;
    request.set_secret(secret);
    return stub_->VerifyKey(&context, request, response);
  }

  FakeClock clock_;
  MemoryKeyStore store_{&clock_};
  std::unique_ptr<Pepper> pepper_;
  std::unique_ptr<KeyLifecycle> lifecycle_;
  std::unique_ptr<KeyVerifier> verifier_;
  server::BlockingPool pool_{2, 16};
  std::unique_ptr<server::ServerRunner> runner_;
  std::unique_ptr<KeysService> service_;
  std::unique_ptr<v1::KeyService::Stub> stub_;
};

TEST_P(KeysServiceTest, CreateThenVerify) {
  v1::CreateKeyResponse created;
  ASSERT_TRUE(Create(CreateRequest(), &created).ok());
  EXPECT_TRUE(created.secret().starts_with("psk_proj_"));
  EXPECT_EQ(created.key().state(), v1::KEY_STATE_ACTIVE);
  EXPECT_EQ(created.key().create_time().seconds(), absl::ToUnixSeconds(clock_.Now()));
  v1::VerifyKeyResponse verified;
  grpc::Status status = Verify(created.secret(), &verified);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(verified.key().key_id(), created.key().key_id());
  EXPECT_EQ(verified.key().owner().id(), "alice");
  EXPECT_EQ(verified.key().scopes(0), "chat.completions");
}

TEST_P(KeysServiceTest, DenialReasonsOnlyForTrustedCallers) {
  v1::CreateKeyResponse created;
  ASSERT_TRUE(Create(CreateRequest(), &created).ok());
  grpc::ClientContext context;
  v1::RevokeKeyRequest revoke;
  revoke.set_key_id(created.key().key_id());
  v1::RevokeKeyResponse revoked;
  ASSERT_TRUE(stub_->RevokeKey(&context, revoke, &revoked).ok());
  EXPECT_TRUE(revoked.changed());

  v1::VerifyKeyResponse response;
  grpc::Status status = Verify(created.secret(), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(status.error_message(), "API key is not valid");
  std::optional<std::string> reason = ReasonOf(FromGrpcStatus(status));
  if (GetParam()) {
    EXPECT_EQ(reason, "KEY_REVOKED");
  } else {
    EXPECT_EQ(reason, std::nullopt);
    EXPECT_TRUE(status.error_details().empty());
  }
}

TEST_P(KeysServiceTest, BadRequestsNameTheField) {
  v1::CreateKeyRequest request = CreateRequest();
  request.set_kind(v1::KEY_KIND_UNSPECIFIED);
  v1::CreateKeyResponse response;
  grpc::Status status = Create(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("kind"));

  request = CreateRequest();
  request.set_environment(static_cast<v1::Environment>(42));
  status = Create(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("environment"));

  request = CreateRequest();
  request.mutable_expire_time()->set_seconds(absl::ToUnixSeconds(clock_.Now()) - 10);
  status = Create(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("expire_time"));

  request = CreateRequest();
  request.mutable_ttl()->set_seconds(1);
  request.mutable_ttl()->set_nanos(-5);
  status = Create(request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("ttl"));

  // A lifetime under a second, however the wire spells it, names the field and the minimum.
  for (int32_t nanos : {1, 999'999'999}) {
    request = CreateRequest();
    request.mutable_ttl()->set_nanos(nanos);
    status = Create(request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << nanos;
    EXPECT_EQ(status.error_message(), "ttl must be at least 1s") << nanos;
  }

  v1::VerifyKeyResponse verified;
  status = Verify(std::string(1000, 'x'), &verified);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("longer than 256"));

  grpc::ClientContext context;
  v1::GetKeyRequest get;
  get.set_key_id("key_00000000000000000");
  v1::GetKeyResponse got;
  EXPECT_EQ(stub_->GetKey(&context, get, &got).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_P(KeysServiceTest, RotateAndReportsOverTheWire) {
  v1::CreateKeyRequest request = CreateRequest();
  request.mutable_ttl()->set_seconds(3 * 24 * 3600);
  v1::CreateKeyResponse created;
  ASSERT_TRUE(Create(request, &created).ok());

  grpc::ClientContext rotate_context;
  v1::RotateKeyRequest rotate;
  rotate.set_key_id(created.key().key_id());
  rotate.mutable_overlap()->set_seconds(3600);
  v1::RotateKeyResponse rotated;
  ASSERT_TRUE(stub_->RotateKey(&rotate_context, rotate, &rotated).ok());
  EXPECT_EQ(rotated.old_key().state(), v1::KEY_STATE_ROTATING);
  EXPECT_EQ(rotated.old_key().overlap_end_time().seconds(),
            absl::ToUnixSeconds(clock_.Now()) + 3600);
  EXPECT_EQ(rotated.new_key().rotated_from(), created.key().key_id());
  v1::VerifyKeyResponse verified;
  EXPECT_TRUE(Verify(created.secret(), &verified).ok());
  EXPECT_TRUE(Verify(rotated.secret(), &verified).ok());

  grpc::ClientContext report_context;
  v1::GetRotationReportResponse report;
  ASSERT_TRUE(stub_->GetRotationReport(&report_context, {}, &report).ok());
  ASSERT_EQ(report.entries_size(), 1);  // The successor, expiring in 3 days.
  EXPECT_EQ(report.entries(0).key().key_id(), rotated.new_key().key_id());
  EXPECT_EQ(report.entries(0).urgency(), v1::URGENCY_WARNING);
  EXPECT_EQ(report.entries(0).days_remaining(), 3);

  grpc::ClientContext inventory_context;
  v1::GetInventoryReportResponse inventory;
  ASSERT_TRUE(stub_->GetInventoryReport(&inventory_context, {}, &inventory).ok());
  EXPECT_EQ(inventory.entries_size(), 2);
  EXPECT_EQ(inventory.counts_by_state().at("KEY_STATE_ROTATING"), 1);
  EXPECT_EQ(inventory.counts_by_state().at("KEY_STATE_ACTIVE"), 1);
}

INSTANTIATE_TEST_SUITE_P(Trust, KeysServiceTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "trusted" : "untrusted"; });

}  // namespace
}  // namespace policy::keys
