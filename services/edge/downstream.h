#ifndef POLICY_SERVICES_EDGE_DOWNSTREAM_H_
#define POLICY_SERVICES_EDGE_DOWNSTREAM_H_

#include <functional>
#include <memory>
#include <string>

#include "common/metrics/grpc_metrics.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/status.h"
#include "policy/audit/v1/audit.pb.h"
#include "policy/authz/v1/authz.pb.h"
#include "policy/keys/v1/keys.pb.h"
#include "policy/pii/v1/pii.pb.h"
#include "policy/region/v1/region.pb.h"

// The calls the edge makes to the other five services. The edge is the suite's translation
// layer, so it speaks their wire types; this interface lets the decision flow run against
// fakes in tests and against the real services over gRPC.
namespace policy::edge {

// Each method starts one call the way gRPC's callback stubs do: the caller keeps `context`,
// `request` and `response` alive until `done` has run, exactly once, on any thread; the
// context carries the deadline. Implementations are thread-safe.
class Downstream {
 public:
  using Done = std::function<void(grpc::Status)>;
  virtual ~Downstream() = default;

  virtual void VerifyKey(grpc::ClientContext* context, const keys::v1::VerifyKeyRequest* request,
                         keys::v1::VerifyKeyResponse* response, Done done) = 0;
  virtual void Check(grpc::ClientContext* context, const authz::v1::CheckRequest* request,
                     authz::v1::CheckResponse* response, Done done) = 0;
  virtual void ReportUsage(grpc::ClientContext* context,
                           const authz::v1::ReportUsageRequest* request,
                           authz::v1::ReportUsageResponse* response, Done done) = 0;
  virtual void Redact(grpc::ClientContext* context, const pii::v1::RedactRequest* request,
                      pii::v1::RedactResponse* response, Done done) = 0;
  virtual void Route(grpc::ClientContext* context, const region::v1::RouteRequest* request,
                     region::v1::RouteResponse* response, Done done) = 0;
  virtual void ReportOutcome(grpc::ClientContext* context,
                             const region::v1::ReportOutcomeRequest* request,
                             region::v1::ReportOutcomeResponse* response, Done done) = 0;
  virtual void Append(grpc::ClientContext* context, const audit::v1::AppendRequest* request,
                      audit::v1::AppendResponse* response, Done done) = 0;
  virtual void GetEntry(grpc::ClientContext* context, const audit::v1::GetEntryRequest* request,
                        audit::v1::GetEntryResponse* response, Done done) = 0;
};

// Where the five services listen ("host:port").
struct DownstreamTargets {
  std::string keys;
  std::string authz;
  std::string pii;
  std::string region;
  std::string audit;
};

// One channel per service, opened once and shared by every call of the process.
struct DownstreamChannels {
  // `credentials`: the process's tls::ChannelCredentials, shared by the five channels.
  static DownstreamChannels Open(const DownstreamTargets& targets,
                                 const std::shared_ptr<grpc::ChannelCredentials>& credentials);
  std::shared_ptr<grpc::Channel> keys, authz, pii, region, audit;
};

// The real services over gRPC; each call's latency goes to `metrics`.
std::unique_ptr<Downstream> NewGrpcDownstream(const DownstreamChannels& channels,
                                              metrics::GrpcClientMetrics* metrics);

}  // namespace policy::edge

#endif  // POLICY_SERVICES_EDGE_DOWNSTREAM_H_
