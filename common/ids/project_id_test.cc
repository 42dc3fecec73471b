#include "common/ids/project_id.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace policy::ids {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ProjectIdTest, AcceptsLowercaseLettersDigitsDashAndUnderscore) {
  for (const char* id : {"a", "support-eu", "proj_prod", "0", "p-1_x", "playground"}) {
    EXPECT_TRUE(IsProjectId(id)) << id;
    EXPECT_TRUE(ValidateProjectId(id, "project").ok()) << id;
  }
  EXPECT_TRUE(IsProjectId(std::string(kMaxProjectIdBytes, 'a')));
}

TEST(ProjectIdTest, RefusesWhatAuditCannotKeepALedgerFor) {
  for (const std::string& id :
       std::vector<std::string>{"ML.Platform", "Probe-1", "a b", "a/b", "a:b", "a@b", "a+b",
                                "caf\xc3\xa9", std::string("a\0b", 3)}) {
    EXPECT_FALSE(IsProjectId(id)) << id;
    absl::Status s = ValidateProjectId(id, "project.id");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << id;
    EXPECT_THAT(s.message(), HasSubstr("project.id: "));
  }
}

TEST(ProjectIdTest, NamesEmptyAndTooLongWithoutQuotingTheValue) {
  EXPECT_EQ(ValidateProjectId("", "project").message(), "project: required");
  const std::string huge(1 << 20, 'a');
  absl::Status s = ValidateProjectId(huge, "project");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "project: longer than 64 bytes");
  EXPECT_FALSE(IsProjectId(std::string(kMaxProjectIdBytes + 1, 'a')));
  EXPECT_THAT(ValidateProjectId("Secret.Name", "project").message(), Not(HasSubstr("Secret")));
}

}  // namespace
}  // namespace policy::ids
