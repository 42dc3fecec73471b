// The admin API's ForgetSubject against scripted keys, authz and audit services over real gRPC:
// whom an erasure by e-mail address reaches, and what an authz of an earlier release (which
// neither filters members by address nor erases) leaves alone.
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "services/edge/admin_service.h"

namespace policy::edge {
namespace {

using ::testing::ElementsAre;

constexpr char kAdminKey[] = "psk_admin_olivia";

// An admin key of olivia's, whatever the secret.
class AdminKeys final : public keys::v1::KeyService::CallbackService {
 public:
  grpc::ServerUnaryReactor* VerifyKey(grpc::CallbackServerContext* context,
                                      const keys::v1::VerifyKeyRequest*,
                                      keys::v1::VerifyKeyResponse* response) override {
    response->mutable_key()->set_kind(keys::v1::KEY_KIND_ADMIN);
    response->mutable_key()->mutable_owner()->set_id("olivia");
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

// An organisation of three members, two with eve's address (one removed), as an authz of the
// earlier release answers: every check allowed, ListMembers without the e-mail filter, no
// EraseMember.
class EarlierAuthz final : public authz::v1::AuthzService::CallbackService {
 public:
  EarlierAuthz() {
    members_.push_back(Member("eve", "eve@acme.example", /*removed=*/true));
    members_.push_back(Member("eve-again", "Eve@acme.example", /*removed=*/false));
    members_.push_back(Member("mia", "mia@acme.example", /*removed=*/false));
  }

  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* context,
                                  const authz::v1::CheckRequest*,
                                  authz::v1::CheckResponse* response) override {
    response->set_verdict(authz::v1::VERDICT_ALLOW);
    return Done(context, grpc::Status::OK);
  }
  grpc::ServerUnaryReactor* GetMember(grpc::CallbackServerContext* context,
                                      const authz::v1::GetMemberRequest* request,
                                      authz::v1::Member* response) override {
    for (const authz::v1::Member& m : members_) {
      if (m.id() == request->id()) {
        *response = m;
        return Done(context, grpc::Status::OK);
      }
    }
    return Done(context, grpc::Status(grpc::StatusCode::NOT_FOUND, "no member"));
  }
  grpc::ServerUnaryReactor* ListMembers(grpc::CallbackServerContext* context,
                                        const authz::v1::ListMembersRequest*,
                                        authz::v1::ListMembersResponse* response) override {
    for (const authz::v1::Member& m : members_) *response->add_members() = m;
    return Done(context, grpc::Status::OK);
  }

 private:
  static authz::v1::Member Member(const std::string& id, const std::string& email, bool removed) {
    authz::v1::Member m;
    m.set_id(id);
    m.set_email(email);
    if (removed) m.mutable_removed_at()->set_seconds(1'700'000'000);
    return m;
  }
  static grpc::ServerUnaryReactor* Done(grpc::CallbackServerContext* context, grpc::Status s) {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(std::move(s));
    return reactor;
  }
  std::vector<authz::v1::Member> members_;
};

// Records whom it was asked to forget, under which request ids.
class RecordingAudit final : public audit::v1::AuditService::CallbackService {
 public:
  grpc::ServerUnaryReactor* ForgetSubject(grpc::CallbackServerContext* context,
                                          const audit::v1::ForgetSubjectRequest* request,
                                          audit::v1::ForgetSubjectResponse* response) override {
    absl::MutexLock lock(&mu_);
    forgotten_.push_back(request->subject());
    request_ids_.push_back(request->request_id());
    response->set_forgotten(true);
    response->mutable_entry()->set_index(forgotten_.size());
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  std::vector<std::string> forgotten() {
    absl::MutexLock lock(&mu_);
    return forgotten_;
  }
  std::vector<std::string> request_ids() {
    absl::MutexLock lock(&mu_);
    return request_ids_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> forgotten_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> request_ids_ ABSL_GUARDED_BY(mu_);
};

class AdminForgetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder downstream;
    int downstream_port = 0;
    downstream.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &downstream_port);
    downstream.RegisterService(&keys_);
    downstream.RegisterService(&authz_);
    downstream.RegisterService(&audit_);
    downstream_ = downstream.BuildAndStart();
    ASSERT_NE(downstream_, nullptr);
    std::shared_ptr<grpc::Channel> channel = grpc::CreateChannel(
        "127.0.0.1:" + std::to_string(downstream_port), grpc::InsecureChannelCredentials());
    const DownstreamChannels channels{channel, channel, channel, channel, channel};
    admin_ = std::make_unique<AdminService>(channels, &pool_, absl::Seconds(10));
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(admin_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::AdminService::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                                          grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    server_->Shutdown();
    downstream_->Shutdown();
  }

  grpc::Status Forget(const std::string& subject, audit::v1::ForgetSubjectResponse* response) {
    grpc::ClientContext context;
    context.AddMetadata("authorization", std::string("Bearer ") + kAdminKey);
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    audit::v1::ForgetSubjectRequest request;
    request.set_subject(subject);
    request.set_request_id("erase-1");
    return stub_->ForgetSubject(&context, request, response);
  }

  AdminKeys keys_;
  EarlierAuthz authz_;
  RecordingAudit audit_;
  std::unique_ptr<grpc::Server> downstream_;
  server::BlockingPool pool_{2, 16};
  std::unique_ptr<AdminService> admin_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::AdminService::Stub> stub_;
};

TEST_F(AdminForgetTest, AnAddressForgetsOnlyTheMembersWithItWhateverAuthzLists) {
  audit::v1::ForgetSubjectResponse response;
  grpc::Status s = Forget("eve@acme.example", &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  // authz listed mia too; she does not have the address.
  EXPECT_THAT(audit_.forgotten(), ElementsAre("eve@acme.example", "eve", "eve-again"));
  ASSERT_EQ(response.members_size(), 2);
  EXPECT_EQ(response.members(0).id(), "eve");
  EXPECT_EQ(response.members(1).id(), "eve-again");
  EXPECT_TRUE(response.members(0).forgotten());
  EXPECT_EQ(response.members(1).entry().index(), 3u);
  // This authz cannot erase: nobody is, and the erasure still answers.
  EXPECT_FALSE(response.members(0).erased());
  EXPECT_FALSE(response.members(1).erased());
  // Each member under a request id of its own, drawn from the caller's; none names them.
  const std::vector<std::string> ids = audit_.request_ids();
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[0], "erase-1");
  EXPECT_THAT(ids[1], ::testing::MatchesRegex("member:[0-9a-f]{32}"));
  EXPECT_THAT(ids[2], ::testing::MatchesRegex("member:[0-9a-f]{32}"));
  EXPECT_NE(ids[1], ids[2]);
}

TEST_F(AdminForgetTest, AMemberIdForgetsTheirAddressFirstAndNoOtherMember) {
  audit::v1::ForgetSubjectResponse response;
  grpc::Status s = Forget("eve", &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(audit_.forgotten(), ElementsAre("eve@acme.example", "eve"));
  EXPECT_TRUE(response.email_forgotten());
  EXPECT_EQ(response.members_size(), 0);
  EXPECT_FALSE(response.member_erased());
}

TEST_F(AdminForgetTest, ASubjectNoMemberHasIsForgottenAlone) {
  audit::v1::ForgetSubjectResponse response;
  grpc::Status s = Forget("nobody@acme.example", &response);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_THAT(audit_.forgotten(), ElementsAre("nobody@acme.example"));
  EXPECT_EQ(response.members_size(), 0);
}

}  // namespace
}  // namespace policy::edge
