#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/policyctl/cli.h"

namespace policy::policyctl {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

Invocation Invoked(std::vector<std::string> words, std::vector<std::string> flags) {
  return Invocation{std::move(words), std::move(flags)};
}

TEST(CommandUsageTest, AVerbsUsageIsItsOwnAndTheGlobalFlags) {
  const std::string keys_create = CommandUsage("keys", "create");
  EXPECT_THAT(keys_create, HasSubstr("usage: policyctl [global flags] keys create [flags]"));
  EXPECT_THAT(keys_create, HasSubstr("  keys create       --owner"));
  EXPECT_THAT(keys_create, Not(HasSubstr("keys rotate")));
  EXPECT_THAT(keys_create, HasSubstr("global flags (or POLICY_POLICYCTL_<NAME>)"));
  // A verb the usage does not name shows the command's every verb, and not the word typed.
  const std::string keys = CommandUsage("keys", "psk_proj_pasted");
  EXPECT_THAT(keys, HasSubstr("keys rotate"));
  EXPECT_THAT(keys, Not(HasSubstr("psk_proj_pasted")));
  // An unknown command shows the whole usage.
  EXPECT_EQ(CommandUsage("nonsense", ""), std::string(kUsageText));
}

TEST(CheckFlagsOfVerbTest, AFlagOrArgumentTheVerbDoesNotTakeIsAUsageError) {
  EXPECT_EQ(CheckFlagsOfVerb("keys", Invoked({"revoke", "key_x"}, {"--reason=leaked"})), kOk);
  EXPECT_EQ(CheckFlagsOfVerb("keys", Invoked({"revoke", "key_x"}, {"--request_id=r1"})), kUsage);
  EXPECT_EQ(CheckFlagsOfVerb("keys", Invoked({"list", "stray"}, {})), kUsage);
  EXPECT_EQ(CheckFlagsOfVerb("keys", Invoked({"unknown"}, {})), kUsage);
  // Global flags go with every verb; lists take --page_size.
  EXPECT_EQ(CheckFlagsOfVerb("keys", Invoked({"list"}, {"--output=json", "--page_size=10"})), kOk);
  // A command of one entry: its flags, whichever the usage lists.
  EXPECT_EQ(CheckFlagsOfVerb("decide", Invoked({}, {"--model=gpt-4o", "--api=embeddings"})), kOk);
  EXPECT_EQ(CheckFlagsOfVerb("decide", Invoked({}, {"--project=p"})), kUsage);
  EXPECT_EQ(CheckFlagsOfVerb("projects", Invoked({"update", "p"}, {"--data_class=phi"})), kOk);
  EXPECT_EQ(CheckFlagsOfVerb("projects", Invoked({"update", "p"}, {"--environment=x"})), kUsage);
}

}  // namespace
}  // namespace policy::policyctl
