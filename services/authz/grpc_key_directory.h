#ifndef POLICY_SERVICES_AUTHZ_GRPC_KEY_DIRECTORY_H_
#define POLICY_SERVICES_AUTHZ_GRPC_KEY_DIRECTORY_H_

#include <memory>

#include "grpcpp/channel.h"
#include "services/authz/key_directory.h"

namespace policy::authz {

// KeyDirectory over keys.v1 ListKeys (every page, within the one deadline). Thread-safe. The
// wire types stay in the .cc.
std::unique_ptr<KeyDirectory> NewGrpcKeyDirectory(std::shared_ptr<grpc::Channel> channel);

}  // namespace policy::authz

#endif  // POLICY_SERVICES_AUTHZ_GRPC_KEY_DIRECTORY_H_
