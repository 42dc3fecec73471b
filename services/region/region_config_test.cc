#include "services/region/region_config.h"

#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace policy::region {
namespace {

using ::testing::HasSubstr;

absl::Status Parsed(RegionConfig& config, const std::vector<std::string>& args,
                    const std::map<std::string, std::string>& environment = {}) {
  config::Parser parser("region");
  config.Register(parser);
  std::vector<std::string> all = {"--store=memory"};  // No database to name.
  all.insert(all.end(), args.begin(), args.end());
  if (absl::Status s = parser.Parse(all, environment); !s.ok()) return s;
  return config.Validate();
}

TEST(RegionConfigTest, BreakerMinReportersIsTwoByDefaultAndSetByFlagOrEnvironment) {
  RegionConfig config;
  ASSERT_TRUE(Parsed(config, {}).ok()) << Parsed(config, {});
  EXPECT_EQ(config.breaker().min_reporters, 2);

  for (int q : {1, kBreakerMaxReporters}) {
    config = RegionConfig();
    ASSERT_TRUE(Parsed(config, {"--breaker_min_reporters=" + std::to_string(q)}).ok()) << q;
    EXPECT_EQ(config.breaker().min_reporters, q);
  }
  config = RegionConfig();
  ASSERT_TRUE(Parsed(config, {}, {{"POLICY_REGION_BREAKER_MIN_REPORTERS", "3"}}).ok());
  EXPECT_EQ(config.breaker().min_reporters, 3);
}

TEST(RegionConfigTest, BreakerMinReportersOutOfRangeIsRefusedNamingIt) {
  for (const char* value : {"0", "-1", "9", "100", "two"}) {
    RegionConfig config;
    const absl::Status s = Parsed(config, {std::string("--breaker_min_reporters=") + value});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << value;
    EXPECT_THAT(s.message(), HasSubstr("breaker_min_reporters")) << value;
  }
  RegionConfig config;
  EXPECT_THAT(Parsed(config, {"--breaker_min_reporters=9"}).message(),
              HasSubstr("breaker_min_reporters must be between 1 and 8, not 9"));
}

TEST(RegionConfigTest, MaxStalenessIsASettingButNotWatchHeartbeat) {
  // The registry is re-read every sync_interval: no notification feed for a heartbeat to
  // prove current.
  RegionConfig config;
  ASSERT_TRUE(Parsed(config, {"--max_staleness=3s"}).ok());
  EXPECT_EQ(config.storage.max_staleness, absl::Seconds(3));
  config = RegionConfig();
  EXPECT_THAT(Parsed(config, {"--watch_heartbeat=100ms"}).message(),
              HasSubstr("unknown flag --watch_heartbeat"));
}

}  // namespace
}  // namespace policy::region
