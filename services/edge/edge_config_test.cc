#include "services/edge/edge_config.h"

#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace policy::edge {
namespace {

using ::testing::HasSubstr;

absl::Status Parsed(EdgeConfig& config, const std::vector<std::string>& args,
                    const std::map<std::string, std::string>& environment = {}) {
  config::Parser parser("edge");
  config.Register(parser);
  if (absl::Status s = parser.Parse(args, environment); !s.ok()) return s;
  return config.Validate();
}

TEST(EdgeConfigTest, TheDenialBudgetIsOnByDefaultAndSetByFlagOrEnvironment) {
  EdgeConfig config;
  ASSERT_TRUE(Parsed(config, {}).ok()) << Parsed(config, {});
  EXPECT_EQ(config.denials_per_key_per_minute, 600);
  EXPECT_EQ(config.denial_burst, 100);

  config = EdgeConfig();
  ASSERT_TRUE(
      Parsed(config, {"--denials_per_key_per_minute=120"}, {{"POLICY_EDGE_DENIAL_BURST", "5"}})
          .ok());
  EXPECT_EQ(config.denials_per_key_per_minute, 120);
  EXPECT_EQ(config.denial_burst, 5);

  config = EdgeConfig();
  ASSERT_TRUE(Parsed(config, {"--denials_per_key_per_minute=0"}).ok());  // Off.
  EXPECT_EQ(config.denials_per_key_per_minute, 0);
}

TEST(EdgeConfigTest, BadDenialBudgetValuesAreRefusedNamingTheSetting) {
  struct Case {
    std::string flag;
    std::string message;
  };
  for (const Case& c : {
           Case{"--denials_per_key_per_minute=-1",
                "denials_per_key_per_minute must be between 0 (no limit) and 60000, not -1"},
           Case{"--denials_per_key_per_minute=60001",
                "denials_per_key_per_minute must be between 0 (no limit) and 60000"},
           Case{"--denial_burst=0", "denial_burst must be between 1 and 10000, not 0"},
           Case{"--denial_burst=10001", "denial_burst must be between 1 and 10000"},
           Case{"--denial_burst=lots", "denial_burst"},
       }) {
    EdgeConfig config;
    const absl::Status s = Parsed(config, {c.flag});
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.flag;
    EXPECT_THAT(s.message(), HasSubstr(c.message)) << c.flag;
  }
}

}  // namespace
}  // namespace policy::edge
