// policyctl health: grpc.health.v1 of the edge or of any service.
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "common/client/channel.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tools/policyctl/cli.h"

namespace policy::policyctl {

// Asks each target's grpc.health.v1.Health/Check; kOk only when every one is SERVING.
int Health(const Invocation& in) {
  Global g;
  std::string service;
  if (int rc = ParseFlags(in, g,
                          [&](config::Parser& p) {
                            p.AddString("service", &service,
                                        "the service asked about (\"\" the whole server, "
                                        "\"liveness\")");
                          });
      rc != kOk) {
    return rc;
  }
  const std::vector<std::string> targets =
      in.words.empty() ? std::vector<std::string>{g.edge} : in.words;
  for (size_t i = 0; i < in.words.size(); ++i) {
    absl::Status s = client::CheckTarget(absl::StrCat("health: argument ", i + 1), in.words[i]);
    if (!s.ok()) return Usage(std::string(s.message()));
  }
  int rc = kOk;
  for (const std::string& target : targets) {
    auto stub = grpc::health::v1::Health::NewStub(Channel(g, target));
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    std::unique_ptr<grpc::ClientContext> context = Context(g, /*admin=*/false);
    const grpc::Status s = stub->Check(context.get(), request, &response);
    const std::string status =
        s.ok()
            ? grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status())
            : absl::StrCat("error: ",
                           absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())),
                           ": ", s.error_message());
    // Not serving, or not reached, for now: worth asking again (exit 4); anything else (an
    // unknown service name, a server without the health service) is not (exit 1).
    const bool serving =
        s.ok() && response.status() == grpc::health::v1::HealthCheckResponse::SERVING;
    const bool for_now =
        s.ok() ? response.status() == grpc::health::v1::HealthCheckResponse::NOT_SERVING
               : ExitCodeOf(s) == kTransient;
    // A failure that is not for now outranks one that is.
    if (!serving && rc != kFailed) rc = for_now ? kTransient : kFailed;
    if (g.json()) {
      // One object per line, its keys in this order.
      std::printf("{\"target\":%s,\"status\":%s,\"code\":%s}\n", JsonQuote(target).c_str(),
                  JsonQuote(status).c_str(),
                  JsonQuote(absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code())))
                      .c_str());
    } else {
      std::printf("%s\t%s\n", target.c_str(), status.c_str());
    }
  }
  return rc;
}

}  // namespace policy::policyctl
