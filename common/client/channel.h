#ifndef POLICY_COMMON_CLIENT_CHANNEL_H_
#define POLICY_COMMON_CLIENT_CHANNEL_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/server_context.h"

// How one service of the suite calls another: channels created once and shared, and every
// call carrying the deadline of the request being served.
namespace policy::client {

// The largest answer a channel accepts. The suite's services answer within the limits on what
// they were asked, but not within gRPC's default 4 MiB: a 1 MiB prompt of short e-mail
// addresses, redacted with placeholders and returned with its findings and mapping, is larger.
inline constexpr int kMaxAnswerBytes = 64 << 20;

// A channel to the service at `address` ("host:port") with `credentials`: the process's
// tls::ChannelCredentials, made once and shared by its channels (each makes a watcher of the
// certificate files). Create one channel per peer per process and share it: it multiplexes
// every call and reconnects by itself. Calls are spread round robin over the addresses the name
// resolves to (a Kubernetes headless Service's pods; re-resolved when a connection ends) whose
// grpc.health.v1 readiness ("") is SERVING.
std::shared_ptr<grpc::Channel> OpenChannel(
    const std::string& address, const std::shared_ptr<grpc::ChannelCredentials>& credentials);

// OK when `target` is one OpenChannel can dial: "host:port" with a port from 1 to 65535
// ("[v6 address]:port" for IPv6), or a gRPC target naming its scheme ("dns:///host:port",
// "ipv4:...", "ipv6:...", "unix:..."); INVALID_ARGUMENT naming `setting` otherwise.
absl::Status CheckTarget(absl::string_view setting, absl::string_view target);

// The deadline of a downstream call made while serving `context`: the caller's deadline, but
// no later than now + `limit` (also when the caller set none).
absl::Time DownstreamDeadline(const grpc::ServerContextBase& context, absl::Duration limit);

// Sets `deadline` on a client call.
void SetDeadline(grpc::ClientContext& call, absl::Time deadline);

}  // namespace policy::client

#endif  // POLICY_COMMON_CLIENT_CHANNEL_H_
