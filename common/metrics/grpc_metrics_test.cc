#include "common/metrics/grpc_metrics.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"

namespace policy::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string Exposition(prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(registry.Collect());
}

TEST(GrpcClientMetricsTest, CountsEachCallByMethodAndCodeAndTimesIt) {
  prometheus::Registry registry;
  GrpcClientMetrics metrics(registry);
  GrpcMethodMetrics::Method* verify = metrics.ForMethod("/pkg.Keys/Verify", "unary");
  EXPECT_EQ(metrics.ForMethod("/pkg.Keys/Verify", "unary"), verify);  // One per method.

  metrics.Start(verify).Done(grpc::StatusCode::OK);
  metrics.Start(verify).Done(grpc::StatusCode::OK);
  const GrpcClientMetrics::Call failed = metrics.Start(verify);
  failed.Done(grpc::StatusCode::UNAVAILABLE);

  const std::string text = Exposition(registry);
  const std::string labels = "grpc_method=\"Verify\",grpc_service=\"pkg.Keys\",grpc_type=\"unary\"";
  EXPECT_THAT(text, HasSubstr("grpc_client_started_total{" + labels + "} 3"));
  EXPECT_THAT(text, HasSubstr("grpc_client_msg_sent_total{" + labels + "} 3"));
  EXPECT_THAT(text, HasSubstr("grpc_client_msg_received_total{" + labels + "} 2"));
  EXPECT_THAT(text, HasSubstr("grpc_client_handled_total{grpc_code=\"OK\"," + labels + "} 2"));
  EXPECT_THAT(text,
              HasSubstr("grpc_client_handled_total{grpc_code=\"Unavailable\"," + labels + "} 1"));
  EXPECT_THAT(text, HasSubstr("grpc_client_handling_seconds_count{" + labels + "} 3"));
  EXPECT_THAT(text, Not(HasSubstr("grpc_server_")));
}

TEST(GrpcServerMetricsTest, NamesItsFamiliesForTheServerSide) {
  prometheus::Registry registry;
  GrpcServerMetrics metrics(registry);
  GrpcMethodMetrics::Handled(metrics.ForMethod("/policy.diag.v1.Diagnostics/Ping", "unary"),
                             grpc::StatusCode::NOT_FOUND, 0.001);
  const std::string text = Exposition(registry);
  EXPECT_THAT(text, HasSubstr("grpc_server_handled_total{grpc_code=\"NotFound\","));
  EXPECT_THAT(text, HasSubstr("# HELP grpc_server_started_total Total number of RPCs started on "
                              "the server."));
  EXPECT_THAT(text, Not(HasSubstr("grpc_client_")));
}

TEST(GrpcServerMetricsTest, MethodsTheBinaryDoesNotKnowShareOneUnknownSeries) {
  prometheus::Registry registry;
  GrpcServerMetrics metrics(registry);
  GrpcMethodMetrics::Method* unknown = metrics.ForMethod("/made.Up/Path1", "unary");
  for (int i = 2; i <= 50; ++i) {
    const std::string path = absl::StrCat("/made.Up/Path", i);
    EXPECT_EQ(metrics.ForMethod(path.c_str(), "unary"), unknown);
  }
  EXPECT_EQ(metrics.ForMethod("no-slash", "unary"), unknown);
  EXPECT_EQ(metrics.ForMethod(nullptr, "unary"), unknown);
  GrpcMethodMetrics::Method* ping = metrics.ForMethod("/policy.diag.v1.Diagnostics/Ping", "unary");
  GrpcMethodMetrics::Method* health = metrics.ForMethod("/grpc.health.v1.Health/Check", "unary");
  EXPECT_NE(ping, unknown);
  EXPECT_NE(health, unknown);
  // An unknown method of a known service is unknown too.
  EXPECT_EQ(metrics.ForMethod("/policy.diag.v1.Diagnostics/Pong", "unary"), unknown);
  GrpcMethodMetrics::Handled(unknown, grpc::StatusCode::UNIMPLEMENTED, 0.001);
  GrpcMethodMetrics::Handled(ping, grpc::StatusCode::OK, 0.001);

  const std::string text = Exposition(registry);
  EXPECT_THAT(text, HasSubstr("grpc_server_handled_total{grpc_code=\"Unimplemented\","
                              "grpc_method=\"unknown\",grpc_service=\"unknown\""));
  EXPECT_THAT(text, HasSubstr("grpc_method=\"Ping\",grpc_service=\"policy.diag.v1.Diagnostics\""));
  EXPECT_THAT(text, Not(HasSubstr("made.Up")));
  EXPECT_THAT(text, Not(HasSubstr("Path")));
}

TEST(GrpcClientMetricsTest, NamesEveryMethodItCalls) {
  prometheus::Registry registry;
  GrpcClientMetrics metrics(registry);
  EXPECT_NE(metrics.ForMethod("/pkg.Keys/Verify", "unary"),
            metrics.ForMethod("/pkg.Keys/Rotate", "unary"));
}

}  // namespace
}  // namespace policy::metrics
