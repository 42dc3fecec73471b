#include "common/tls/tls_options.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/client/channel.h"
#include "common/server/server_runner.h"
#include "common/testing/eventually.h"
#include "common/testing/temp_dir.h"
#include "common/testing/test_pki.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "policy/diag/v1/diagnostics.grpc.pb.h"

namespace policy::tls {
namespace {

using ::policy::testing::KeyPair;
using ::policy::testing::TestCa;

class TlsTest : public ::testing::Test {
 protected:
  TlsTest()
      : ca_("policy-suite test CA"),
        other_ca_("another CA"),
        server_(ca_.Issue("keys", {"localhost"}, {"127.0.0.1"})),
        client_(ca_.Issue("edge", {}, {})),
        stranger_(other_ca_.Issue("edge", {}, {})) {}

  // Options naming files that hold `identity` (if any) and trusting `ca` (if any).
  TlsOptions Options(const std::string& prefix, const KeyPair* identity, const TestCa* ca) {
    TlsOptions options;
    if (identity != nullptr) {
      options.cert_file = files_.Write(prefix + ".crt", identity->certificate);
      options.key_file = files_.Write(prefix + ".key", identity->private_key);
    }
    if (ca != nullptr) options.ca_file = files_.Write(prefix + "-ca.crt", ca->certificate());
    return options;
  }

  // Starts a server with `tls` and a plaintext health port.
  void StartServer(TlsOptions tls) {
    ASSERT_TRUE(tls.Validate().ok()) << tls.Validate();
    server::ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = "";
    options.health_listen = "127.0.0.1:0";
    options.tls = std::move(tls);
    runner_ = std::make_unique<server::ServerRunner>(options);
    ASSERT_TRUE(runner_->Start().ok());
  }

  grpc::Status Ping(const std::string& host, const TlsOptions& tls) {
    auto stub = diag::v1::Diagnostics::NewStub(client::OpenChannel(
        absl::StrCat(host, ":", runner_->grpc_port()), ChannelCredentials(tls)));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    diag::v1::PingRequest request;
    diag::v1::PingResponse response;
    return stub->Ping(&context, request, &response);
  }

  testing::TempDir files_;
  TestCa ca_;
  TestCa other_ca_;
  KeyPair server_;
  KeyPair client_;
  KeyPair stranger_;
  std::unique_ptr<server::ServerRunner> runner_;
};

TEST_F(TlsTest, ClientWithCertificateFromTheCaIsServed) {
  TlsOptions server = Options("server", &server_, &ca_);
  server.require_client_cert = true;
  StartServer(server);
  EXPECT_TRUE(Ping("127.0.0.1", Options("client", &client_, &ca_)).ok());
  EXPECT_TRUE(Ping("localhost", Options("client", &client_, &ca_)).ok());
}

TEST_F(TlsTest, ClientWithoutCertificateIsRefused) {
  TlsOptions server = Options("server", &server_, &ca_);
  server.require_client_cert = true;
  StartServer(server);
  const grpc::Status status = Ping("127.0.0.1", Options("client", nullptr, &ca_));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
}

TEST_F(TlsTest, ClientCertificateFromAnotherCaIsRefused) {
  TlsOptions server = Options("server", &server_, &ca_);
  server.require_client_cert = true;
  StartServer(server);
  const grpc::Status status = Ping("127.0.0.1", Options("client", &stranger_, &ca_));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
}

TEST_F(TlsTest, PlaintextClientIsRefused) {
  StartServer(Options("server", &server_, &ca_));
  EXPECT_EQ(Ping("127.0.0.1", TlsOptions{}).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, WithoutRequiredClientCertificatesAClientWithNoneIsServed) {
  StartServer(Options("server", &server_, &ca_));
  EXPECT_TRUE(Ping("127.0.0.1", Options("client", nullptr, &ca_)).ok());
}

TEST_F(TlsTest, ServerFromAnotherCaIsRefusedByTheClient) {
  StartServer(Options("server", &server_, &ca_));
  EXPECT_EQ(Ping("127.0.0.1", Options("client", &client_, &other_ca_)).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, ServerCertificateMustNameTheHostDialled) {
  const KeyPair elsewhere = ca_.Issue("audit", {"audit.policy.svc"}, {});
  StartServer(Options("server", &elsewhere, &ca_));
  EXPECT_EQ(Ping("127.0.0.1", Options("client", &client_, &ca_)).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, OnlyAllowedClientsMayCall) {
  TlsOptions server = Options("server", &server_, &ca_);
  server.require_client_cert = true;
  server.allowed_clients = {"edge.policy.svc", "spiffe://policy/authz"};
  StartServer(server);
  const KeyPair edge = ca_.Issue("edge", {"edge.policy.svc"}, {});
  const KeyPair pii = ca_.Issue("pii", {"pii.policy.svc"}, {});
  EXPECT_TRUE(Ping("127.0.0.1", Options("edge", &edge, &ca_)).ok());
  const grpc::Status refused = Ping("127.0.0.1", Options("pii", &pii, &ca_));
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_NE(refused.error_message().find("pii.policy.svc"), std::string::npos)
      << refused.error_message();
  // A common name that equals an allowed name is enough; the health port stays open.
  const KeyPair named = ca_.Issue("edge.policy.svc", {}, {});
  EXPECT_TRUE(Ping("127.0.0.1", Options("named", &named, &ca_)).ok());
}

TEST(ClientAllowedTest, MatchesNamesExactlyOrByOneWildcardEnd) {
  EXPECT_TRUE(ClientAllowed({}, {}));
  EXPECT_TRUE(ClientAllowed({"edge.svc"}, {"x", "edge.svc"}));
  EXPECT_FALSE(ClientAllowed({"edge.svc"}, {"edge.svc.evil"}));
  EXPECT_FALSE(ClientAllowed({"edge.svc"}, {}));
  EXPECT_TRUE(ClientAllowed({"*.policy.svc"}, {"keys.policy.svc"}));
  EXPECT_FALSE(ClientAllowed({"*.policy.svc"}, {"keys.other.svc"}));
  EXPECT_TRUE(ClientAllowed({"spiffe://policy/*"}, {"spiffe://policy/edge"}));
  EXPECT_FALSE(ClientAllowed({"spiffe://policy/*"}, {"spiffe://other/edge"}));
}

TEST_F(TlsTest, HealthPortIsPlaintextAndServesOnlyHealth) {
  TlsOptions server = Options("server", &server_, &ca_);
  server.require_client_cert = true;
  StartServer(server);
  auto channel = client::OpenChannel(absl::StrCat("127.0.0.1:", runner_->health_port()),
                                     grpc::InsecureChannelCredentials());
  auto health = grpc::health::v1::Health::NewStub(channel);
  for (const std::string service : {"", "liveness"}) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    ASSERT_TRUE(health->Check(&context, request, &response).ok()) << service;
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING) << service;
  }
  auto diagnostics = diag::v1::Diagnostics::NewStub(channel);
  grpc::ClientContext context;
  diag::v1::PingResponse response;
  EXPECT_EQ(diagnostics->Ping(&context, {}, &response).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(TlsTest, RotatedServerCertificateIsServedWithoutRestart) {
  TlsOptions server = Options("server", &server_, &ca_);
  server.require_client_cert = true;
  server.reload_interval = absl::Seconds(1);
  StartServer(server);
  const TlsOptions trusts_other_ca = Options("client-other", &client_, &other_ca_);
  ASSERT_EQ(Ping("127.0.0.1", trusts_other_ca).error_code(), grpc::StatusCode::UNAVAILABLE);
  const KeyPair rotated = other_ca_.Issue("keys", {"localhost"}, {"127.0.0.1"});
  files_.Write("server.key", rotated.private_key);
  files_.Write("server.crt", rotated.certificate);
  EXPECT_TRUE(testing::Eventually([&] { return Ping("127.0.0.1", trusts_other_ca).ok(); },
                                  absl::Seconds(10)));
}

TEST_F(TlsTest, BadFilesInPlaceOfGoodOnesLeaveTheLastGoodOnesServing) {
  TlsOptions server = Options("server", &server_, &ca_);
  server.reload_interval = absl::Seconds(1);
  StartServer(server);
  const TlsOptions client = Options("client", nullptr, &ca_);
  // A fresh connection each time: a handshake with what the server serves now.
  auto fresh_ping = [&](const TlsOptions& tls) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    auto stub = diag::v1::Diagnostics::NewStub(grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", runner_->grpc_port()), ChannelCredentials(tls), args));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    diag::v1::PingResponse response;
    return stub->Ping(&context, diag::v1::PingRequest(), &response);
  };
  ASSERT_TRUE(fresh_ping(client).ok());
  std::optional<FilesState> state = StagedFilesState(server);
  ASSERT_TRUE(state.has_value());
  EXPECT_TRUE(state->valid);
  EXPECT_GT(state->certificate_not_after, absl::Now() + absl::Hours(12));

  // A failed rotation: junk, then a certificate that is not the key's.
  for (const std::string& bad : {std::string("not a certificate"),
                                 ca_.Issue("keys", {"localhost"}, {"127.0.0.1"}).certificate}) {
    files_.Write("server.crt", bad);
    ASSERT_TRUE(
        testing::Eventually([&] { return !StagedFilesState(server)->valid; }, absl::Seconds(10)));
    EXPECT_THAT(StagedFilesState(server)->problem,
                ::testing::AnyOf(::testing::HasSubstr("holds no PEM certificate"),
                                 ::testing::HasSubstr("does not belong to the certificate")));
    absl::SleepFor(absl::Milliseconds(1500));  // gRPC's watcher has looked again.
    EXPECT_TRUE(fresh_ping(client).ok()) << "the last good certificate serves";
  }
  // The good files put back: valid again (they are the ones in service).
  files_.Write("server.crt", server_.certificate);
  EXPECT_TRUE(
      testing::Eventually([&] { return StagedFilesState(server)->valid; }, absl::Seconds(10)));
  EXPECT_EQ(StagedFilesState(server)->problem, "");
  // The rotation done right goes into service.
  const KeyPair rotated = other_ca_.Issue("keys", {"localhost"}, {"127.0.0.1"});
  files_.Write("server.key", rotated.private_key);
  files_.Write("server.crt", rotated.certificate);
  const TlsOptions trusts_other_ca = Options("client-other", nullptr, &other_ca_);
  EXPECT_TRUE(
      testing::Eventually([&] { return fresh_ping(trusts_other_ca).ok(); }, absl::Seconds(10)));
  EXPECT_TRUE(StagedFilesState(server)->valid);
  EXPECT_EQ(StagedFilesState(server)->problem, "");
}

TEST_F(TlsTest, ValidateNamesTheProblem) {
  TlsOptions options = Options("server", &server_, &ca_);
  EXPECT_TRUE(options.Validate().ok()) << options.Validate();

  TlsOptions mismatched = options;
  mismatched.key_file = Options("other", &client_, nullptr).key_file;
  EXPECT_EQ(mismatched.Validate().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(mismatched.Validate().message().find("does not belong"), std::string::npos)
      << mismatched.Validate();

  TlsOptions missing_ca = options;
  missing_ca.ca_file = "/nonexistent/ca.crt";
  EXPECT_NE(missing_ca.Validate().message().find("tls_ca_file"), std::string::npos);

  TlsOptions not_pem = options;
  not_pem.cert_file = files_.Write("garbage.crt", "not a certificate");
  EXPECT_NE(not_pem.Validate().message().find("no PEM certificate"), std::string::npos);

  TlsOptions cert_alone = options;
  cert_alone.key_file.clear();
  EXPECT_EQ(cert_alone.Validate().code(), absl::StatusCode::kInvalidArgument);

  TlsOptions require_without_ca = options;
  require_without_ca.ca_file.clear();
  require_without_ca.require_client_cert = true;
  EXPECT_EQ(require_without_ca.Validate().code(), absl::StatusCode::kInvalidArgument);

  TlsOptions allowed_without_require = options;
  allowed_without_require.allowed_clients = {"edge.svc"};
  EXPECT_EQ(allowed_without_require.Validate().code(), absl::StatusCode::kInvalidArgument);
  TlsOptions bad_name = options;
  bad_name.require_client_cert = true;
  for (const std::string name : {"a\"b", "a*b", ""}) {
    bad_name.allowed_clients = {name};
    EXPECT_NE(bad_name.Validate().message().find("tls_allowed_clients"), std::string::npos) << name;
  }
  bad_name.allowed_clients = {"*.policy.svc", "spiffe://policy/*"};
  EXPECT_TRUE(bad_name.Validate().ok()) << bad_name.Validate();

  EXPECT_TRUE(TlsOptions{}.Validate().ok());
}

TEST(TlsRegisterTest, AClientRegistersOnlyTheSettingsOfItsCalls) {
  TlsOptions options;
  config::Parser parser("policyctl");
  options.RegisterClient(parser);
  const std::string usage = parser.Usage();
  for (const char* client : {"--tls_cert_file", "--tls_key_file", "--tls_ca_file"}) {
    EXPECT_NE(usage.find(client), std::string::npos) << client;
  }
  for (const char* server :
       {"tls_require_client_cert", "tls_allowed_clients", "tls_reload_interval", "serve TLS"}) {
    EXPECT_EQ(usage.find(server), std::string::npos) << server;
  }
  for (const char* flag :
       {"--tls_require_client_cert", "--tls_allowed_clients=a", "--tls_reload_interval=5s"}) {
    EXPECT_EQ(parser.Parse({flag}, {}).code(), absl::StatusCode::kInvalidArgument) << flag;
  }
  ASSERT_TRUE(parser.Parse({"--tls_ca_file=/ca.pem"}, {}).ok());
  EXPECT_EQ(options.ca_file, "/ca.pem");
  EXPECT_TRUE(options.calls_use_tls());
}

}  // namespace
}  // namespace policy::tls
