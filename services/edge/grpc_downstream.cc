#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/client/channel.h"
#include "common/metrics/grpc_metrics.h"
#include "policy/audit/v1/audit.grpc.pb.h"
#include "policy/authz/v1/authz.grpc.pb.h"
#include "policy/keys/v1/keys.grpc.pb.h"
#include "policy/pii/v1/pii.grpc.pb.h"
#include "policy/region/v1/region.grpc.pb.h"
#include "services/edge/downstream.h"

namespace policy::edge {
namespace {

// Each call's latency as the edge sees it goes to grpc_client_handling_seconds.
class GrpcDownstream final : public Downstream {
 public:
  GrpcDownstream(const DownstreamChannels& c, metrics::GrpcClientMetrics* metrics)
      : keys_(keys::v1::KeyService::NewStub(c.keys)),
        authz_(authz::v1::AuthzService::NewStub(c.authz)),
        pii_(pii::v1::PiiService::NewStub(c.pii)),
        region_(region::v1::RegionService::NewStub(c.region)),
        audit_(audit::v1::AuditService::NewStub(c.audit)),
        metrics_(metrics),
        verify_key_(Track(keys::v1::KeyService::service_full_name(), "VerifyKey")),
        check_(Track(authz::v1::AuthzService::service_full_name(), "Check")),
        report_usage_(Track(authz::v1::AuthzService::service_full_name(), "ReportUsage")),
        redact_(Track(pii::v1::PiiService::service_full_name(), "Redact")),
        route_(Track(region::v1::RegionService::service_full_name(), "Route")),
        report_outcome_(Track(region::v1::RegionService::service_full_name(), "ReportOutcome")),
        append_(Track(audit::v1::AuditService::service_full_name(), "Append")),
        get_entry_(Track(audit::v1::AuditService::service_full_name(), "GetEntry")) {}

  void VerifyKey(grpc::ClientContext* context, const keys::v1::VerifyKeyRequest* request,
                 keys::v1::VerifyKeyResponse* response, Done done) override {
    keys_->async()->VerifyKey(context, request, response, Timed(verify_key_, std::move(done)));
  }
  void Check(grpc::ClientContext* context, const authz::v1::CheckRequest* request,
             authz::v1::CheckResponse* response, Done done) override {
    authz_->async()->Check(context, request, response, Timed(check_, std::move(done)));
  }
  void ReportUsage(grpc::ClientContext* context, const authz::v1::ReportUsageRequest* request,
                   authz::v1::ReportUsageResponse* response, Done done) override {
    authz_->async()->ReportUsage(context, request, response, Timed(report_usage_, std::move(done)));
  }
  void Redact(grpc::ClientContext* context, const pii::v1::RedactRequest* request,
              pii::v1::RedactResponse* response, Done done) override {
    pii_->async()->Redact(context, request, response, Timed(redact_, std::move(done)));
  }
  void Route(grpc::ClientContext* context, const region::v1::RouteRequest* request,
             region::v1::RouteResponse* response, Done done) override {
    region_->async()->Route(context, request, response, Timed(route_, std::move(done)));
  }
  void ReportOutcome(grpc::ClientContext* context, const region::v1::ReportOutcomeRequest* request,
                     region::v1::ReportOutcomeResponse* response, Done done) override {
    region_->async()->ReportOutcome(context, request, response,
                                    Timed(report_outcome_, std::move(done)));
  }
  void Append(grpc::ClientContext* context, const audit::v1::AppendRequest* request,
              audit::v1::AppendResponse* response, Done done) override {
    audit_->async()->Append(context, request, response, Timed(append_, std::move(done)));
  }
  void GetEntry(grpc::ClientContext* context, const audit::v1::GetEntryRequest* request,
                audit::v1::GetEntryResponse* response, Done done) override {
    audit_->async()->GetEntry(context, request, response, Timed(get_entry_, std::move(done)));
  }

 private:
  metrics::GrpcMethodMetrics::Method* Track(const char* service, absl::string_view method) {
    return metrics_->ForMethod(absl::StrCat("/", service, "/", method).c_str(), "unary");
  }
  Done Timed(metrics::GrpcMethodMetrics::Method* method, Done done) {
    return [call = metrics_->Start(method), done = std::move(done)](grpc::Status status) {
      call.Done(status.error_code());
      done(std::move(status));
    };
  }

  std::unique_ptr<keys::v1::KeyService::Stub> keys_;
  std::unique_ptr<authz::v1::AuthzService::Stub> authz_;
  std::unique_ptr<pii::v1::PiiService::Stub> pii_;
  std::unique_ptr<region::v1::RegionService::Stub> region_;
  std::unique_ptr<audit::v1::AuditService::Stub> audit_;
  metrics::GrpcClientMetrics* const metrics_;
  metrics::GrpcMethodMetrics::Method* const verify_key_;
  metrics::GrpcMethodMetrics::Method* const check_;
  metrics::GrpcMethodMetrics::Method* const report_usage_;
  metrics::GrpcMethodMetrics::Method* const redact_;
  metrics::GrpcMethodMetrics::Method* const route_;
  metrics::GrpcMethodMetrics::Method* const report_outcome_;
  metrics::GrpcMethodMetrics::Method* const append_;
  metrics::GrpcMethodMetrics::Method* const get_entry_;
};

}  // namespace

DownstreamChannels DownstreamChannels::Open(
    const DownstreamTargets& t, const std::shared_ptr<grpc::ChannelCredentials>& credentials) {
  return DownstreamChannels{.keys = client::OpenChannel(t.keys, credentials),
                            .authz = client::OpenChannel(t.authz, credentials),
                            .pii = client::OpenChannel(t.pii, credentials),
                            .region = client::OpenChannel(t.region, credentials),
                            .audit = client::OpenChannel(t.audit, credentials)};
}

std::unique_ptr<Downstream> NewGrpcDownstream(const DownstreamChannels& channels,
                                              metrics::GrpcClientMetrics* metrics) {
  return std::make_unique<GrpcDownstream>(channels, metrics);
}

}  // namespace policy::edge
