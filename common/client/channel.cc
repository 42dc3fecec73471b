#include "common/client/channel.h"

#include <algorithm>
#include <chrono>

#include "grpcpp/create_channel.h"

namespace policy::client {

std::shared_ptr<grpc::Channel> OpenChannel(
    const std::string& address, const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
  grpc::ChannelArguments args;
  args.SetLoadBalancingPolicyName("round_robin");
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
