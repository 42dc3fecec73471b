// BackgroundCheck on a fake clock, with a check that can be made to hang or fail.
#include "common/server/background_check.h"

#include <atomic>
#include <functional>
#include <memory>
#include <thread>

#include "absl/synchronization/notification.h"
#include "common/testing/eventually.h"
#include "gtest/gtest.h"

namespace policy::server {
namespace {

using ::policy::testing::Eventually;
using ::policy::testing::ReturnsPromptly;

class BackgroundCheckTest : public ::testing::Test {
 protected:
  absl::Status Check() {
    calls_++;
    if (hang_) {
      if (!hanging_.HasBeenNotified()) hanging_.Notify();
      release_.WaitForNotification();
    }
    return fail_ ? absl::UnavailableError("database connection lost") : absl::OkStatus();
  }

  FakeClock clock_;
  std::atomic<int> calls_{0};
  std::atomic<bool> hang_{false}, fail_{false};
  absl::Notification hanging_, release_;
  BackgroundCheck check_{[this] { return Check(); }, &clock_, absl::Milliseconds(5),
                         absl::Seconds(5)};
};

TEST_F(BackgroundCheckTest, ReadyNeverWaitsForAHungCheckAndLapsesAfterTheBound) {
  EXPECT_FALSE(check_.Ready());  // Before the first check.
  check_.Start();
  EXPECT_TRUE(check_.Ready());
  hang_ = true;
  ASSERT_TRUE(hanging_.WaitForNotificationWithTimeout(absl::Seconds(5)));
  bool ready = false;
  EXPECT_TRUE(ReturnsPromptly([&] { ready = check_.Ready(); }));
  EXPECT_TRUE(ready);  // The last successful check began less than 5 s ago.
  clock_.Advance(absl::Seconds(6));
  EXPECT_TRUE(ReturnsPromptly([&] { ready = check_.Ready(); }));
  EXPECT_FALSE(ready);
  hang_ = false;
  release_.Notify();
  EXPECT_TRUE(Eventually([&] { return check_.Ready(); }));
  check_.Stop();
}

TEST_F(BackgroundCheckTest, AFailedCheckTurnsReadinessOffUntilOneSucceeds) {
  check_.Start();
  EXPECT_TRUE(check_.Ready());
  fail_ = true;
  EXPECT_TRUE(Eventually([&] { return !check_.Ready(); }));
  fail_ = false;
  EXPECT_TRUE(Eventually([&] { return check_.Ready(); }));
  check_.Stop();
  const int calls = calls_.load();
  absl::SleepFor(absl::Milliseconds(30));
  EXPECT_EQ(calls_.load(), calls);  // Stopped.
  check_.Stop();                    // Again: nothing happens.
}

}  // namespace
}  // namespace policy::server
