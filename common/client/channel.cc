#include "common/client/channel.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
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

absl::Status CheckTarget(absl::string_view setting, absl::string_view target) {
  for (absl::string_view scheme : {"dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:"}) {
    if (absl::StartsWith(target, scheme) && target.size() > scheme.size()) {
      return absl::OkStatus();
    }
  }
  const size_t colon = target.rfind(':');
  absl::string_view host = colon == absl::string_view::npos ? "" : target.substr(0, colon);
  int port = 0;
  const bool bracketed = absl::StartsWith(host, "[") && absl::EndsWith(host, "]");
  if (host.empty() || (!bracketed && absl::StrContains(host, ':')) ||
      absl::StrContains(host, '/') || !absl::SimpleAtoi(target.substr(colon + 1), &port) ||
      port < 1 || port > 65535 || !absl::ascii_isdigit(target.back())) {
    return absl::InvalidArgumentError(absl::StrCat(
        setting, ": '", target,
        "' is not host:port (a port from 1 to 65535; [address]:port "
        "for IPv6) nor a gRPC target with its scheme (dns:///host:port, ipv4:, ipv6:, unix:)"));
  }
  return absl::OkStatus();
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
