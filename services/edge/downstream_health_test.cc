// The edge's readiness as its dependencies' health checks make it: DependencyVerdict alone,
// and DownstreamHealth against a real server whose readiness the test turns off and on.
#include "services/edge/downstream_health.h"

#include <atomic>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "common/server/server_runner.h"
#include "common/testing/eventually.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace policy::edge {
namespace {

using ::policy::testing::Eventually;

TEST(DependencyVerdictTest, DownOnlyAfterFailuresInARowAndUpAgainAtOnce) {
  DependencyVerdict verdict(3);
  EXPECT_FALSE(verdict.up());  // Never answered yet.
  EXPECT_FALSE(verdict.Observe(false));
  EXPECT_TRUE(verdict.Observe(true));
  EXPECT_TRUE(verdict.Observe(false));  // One slow answer...
  EXPECT_TRUE(verdict.Observe(false));  // ...or two...
  EXPECT_TRUE(verdict.Observe(true));   // ...and the count starts over.
  EXPECT_TRUE(verdict.Observe(false));
  EXPECT_TRUE(verdict.Observe(false));
  EXPECT_FALSE(verdict.Observe(false));  // The third in a row: down.
  EXPECT_FALSE(verdict.Observe(false));
  EXPECT_TRUE(verdict.Observe(true));
  DependencyVerdict strict(1);
  EXPECT_TRUE(strict.Observe(true));
  EXPECT_FALSE(strict.Observe(false));
}

TEST(DependencyVerdictTest, JudgedOnceItAnsweredOrMissedEnoughInARow) {
  // A service not reached yet at start is not judged down (nor logged so) before `failures`.
  DependencyVerdict starting(3);
  EXPECT_FALSE(starting.judged());
  starting.Observe(false);
  starting.Observe(false);
  EXPECT_FALSE(starting.judged());
  starting.Observe(false);
  EXPECT_TRUE(starting.judged());
  DependencyVerdict answered(3);
  answered.Observe(true);
  EXPECT_TRUE(answered.judged());
  answered.Observe(false);
  EXPECT_TRUE(answered.judged());  // Still up, by the checks.
}

class DownstreamHealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server::ServerOptions options;
    options.listen = "127.0.0.1:0";
    options.metrics_listen = "";
    options.health_interval = absl::Milliseconds(5);
    runner_ = std::make_unique<server::ServerRunner>(options);
    runner_->SetReadinessProbe([this] { return serving_.load(); });
    ASSERT_TRUE(runner_->Start().ok());
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(runner_->grpc_port()),
                                       grpc::InsecureChannelCredentials());
    // One server stands for all five services.
    channels_ = {channel, channel, channel, channel, channel};
  }
  void TearDown() override { runner_->Shutdown(); }

  // Whether `health` stays ready for all of `period` while the server is NOT_SERVING.
  bool StaysReadyThroughAnOutageOf(DownstreamHealth& health, absl::Duration period) {
    serving_ = false;
    bool ready_throughout = true;
    const absl::Time end = absl::Now() + period;
    while (absl::Now() < end) {
      ready_throughout = ready_throughout && health.ready();
      absl::SleepFor(absl::Milliseconds(2));
    }
    serving_ = true;
    return ready_throughout;
  }

  std::atomic<bool> serving_{true};
  std::unique_ptr<server::ServerRunner> runner_;
  DownstreamChannels channels_;
};

TEST_F(DownstreamHealthTest, ABriefOutageDoesNotMakeTheEdgeUnready) {
  // 100 failures in a row at 20 ms a check: an outage of 200 ms is ten of them.
  DownstreamHealth health(channels_, nullptr, absl::Milliseconds(20), {}, 100);
  ASSERT_TRUE(Eventually([&] { return health.ready(); }));
  EXPECT_TRUE(StaysReadyThroughAnOutageOf(health, absl::Milliseconds(200)));
}

TEST_F(DownstreamHealthTest, ALastingOutageDoes) {
  DownstreamHealth health(channels_, nullptr, absl::Milliseconds(20), {}, 3);
  ASSERT_TRUE(Eventually([&] { return health.ready(); }));
  serving_ = false;
  EXPECT_TRUE(Eventually([&] { return !health.ready(); }));
  serving_ = true;
  EXPECT_TRUE(Eventually([&] { return health.ready(); }));
}

}  // namespace
}  // namespace policy::edge
