#include "common/client/channel.h"

#include <algorithm>
#include <chrono>

#include "grpcpp/create_channel.h"

namespace policy::client {

std::shared_ptr<grpc::Channel> OpenChannel(
    const std::string& address, const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
  grpc::ChannelArguments args;
  // Round robin over the addresses whose grpc.health.v1 "" answers SERVING (Health.Watch on
  // each connection): a replica that is not ready (its database gone, shutting down) gets no
  // calls while the others serve. A server without the health service counts as serving.
  args.SetServiceConfigJSON(
      R"({"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}})");
  args.SetMaxReceiveMessageSize(kMaxAnswerBytes);
  return grpc::CreateCustomChannel(address, credentials, args);
}

absl::Time DownstreamDeadline(const grpc::ServerContextBase& context, absl::Duration limit) {
  const std::chrono::system_clock::time_point deadline = context.deadline();
  const absl::Time latest = absl::Now() + limit;
  if (deadline == std::chrono::system_clock::time_point::max()) return latest;
  return std::min(absl::FromChrono(deadline), latest);
}

void SetDeadline(grpc::ClientContext& call, absl::Time deadline) {
  call.set_deadline(absl::ToChronoTime(deadline));
}

}  // namespace policy::client
