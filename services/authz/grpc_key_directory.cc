#include "services/authz/grpc_key_directory.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/client/channel.h"
#include "common/status/grpc_status.h"
#include "policy/keys/v1/keys.grpc.pb.h"

namespace policy::authz {
namespace {

class GrpcKeyDirectory final : public KeyDirectory {
 public:
  explicit GrpcKeyDirectory(std::shared_ptr<grpc::Channel> channel)
      : stub_(keys::v1::KeyService::NewStub(std::move(channel))) {}

  absl::StatusOr<std::vector<HeldKey>> KeysOf(absl::string_view member_id,
                                              absl::Time deadline) override;

 private:
  std::unique_ptr<keys::v1::KeyService::Stub> stub_;
};

absl::StatusOr<std::vector<HeldKey>> GrpcKeyDirectory::KeysOf(absl::string_view member_id,
                                                              absl::Time deadline) {
  keys::v1::ListKeysRequest request;
  request.mutable_owner()->set_type(keys::v1::PRINCIPAL_TYPE_MEMBER);
  request.mutable_owner()->set_id(std::string(member_id));
  request.set_page_size(500);
  std::vector<HeldKey> held;
  while (true) {
    grpc::ClientContext call;
    client::SetDeadline(call, deadline);
    keys::v1::ListKeysResponse response;
    if (grpc::Status s = stub_->ListKeys(&call, request, &response); !s.ok()) {
      // Whatever the keys service said, for this caller it is a dependency that failed.
      const absl::Status status = FromGrpcStatus(s);
      return absl::Status(status.code() == absl::StatusCode::kDeadlineExceeded
                              ? absl::StatusCode::kDeadlineExceeded
                              : absl::StatusCode::kUnavailable,
                          absl::StrCat("the keys service did not list the keys of ", member_id,
                                       ": ", status.message()));
    }
    for (const keys::v1::Key& key : response.keys()) {
      if (key.state() == keys::v1::KEY_STATE_ACTIVE ||
          key.state() == keys::v1::KEY_STATE_ROTATING) {
        held.push_back(HeldKey{key.key_id(), key.project()});
      }
    }
    if (response.next_page_token().empty()) return held;
    request.set_page_token(response.next_page_token());
  }
}

}  // namespace

std::unique_ptr<KeyDirectory> NewGrpcKeyDirectory(std::shared_ptr<grpc::Channel> channel) {
  return std::make_unique<GrpcKeyDirectory>(std::move(channel));
}

}  // namespace policy::authz
