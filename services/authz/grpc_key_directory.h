#ifndef POLICY_SERVICES_AUTHZ_GRPC_KEY_DIRECTORY_H_
#define POLICY_SERVICES_AUTHZ_GRPC_KEY_DIRECTORY_H_

#include <memory>
#include <vector>

#include "grpcpp/channel.h"
#include "policy/keys/v1/keys.grpc.pb.h"
#include "services/authz/key_directory.h"

namespace policy::authz {

// KeyDirectory over keys.v1 ListKeys (every page, within the one deadline). Thread-safe.
class GrpcKeyDirectory : public KeyDirectory {
 public:
  explicit GrpcKeyDirectory(std::shared_ptr<grpc::Channel> channel);

  absl::StatusOr<std::vector<HeldKey>> KeysOf(absl::string_view member_id,
                                              absl::Time deadline) override;

 private:
  std::unique_ptr<keys::v1::KeyService::Stub> stub_;
};

}  // namespace policy::authz

#endif  // POLICY_SERVICES_AUTHZ_GRPC_KEY_DIRECTORY_H_
