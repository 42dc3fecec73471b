#include "services/edge/conventions.h"

#include <string>

#include "gtest/gtest.h"
#include "services/edge/proto_convert.h"

namespace policy::edge {
namespace {

TEST(ConventionsTest, RequestIdsAreShortAndFromASafeAlphabet) {
  EXPECT_TRUE(CheckRequestId("edge-1:a_b.c", "request_id").ok());
  EXPECT_TRUE(CheckRequestId("", "request_id").ok());
  const absl::Status spaced = CheckRequestId("a b", "request_id");
  EXPECT_EQ(spaced.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(spaced.message().find("request_id"), std::string::npos) << spaced;
  EXPECT_TRUE(CheckRequestId(std::string(8, 'a'), "id", 8).ok());
  EXPECT_EQ(CheckRequestId(std::string(9, 'a'), "id", 8).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ConventionsTest, RolesAreShortWords) {
  EXPECT_TRUE(CheckRole("assistant", "role").ok());
  EXPECT_TRUE(CheckRole("tool_result-2", "role").ok());
  EXPECT_EQ(CheckRole("", "role").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckRole(std::string(65, 'a'), "role").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckRole("us er", "m[0].role").message(),
            "m[0].role: only letters, digits, _ and - are allowed");
}

TEST(ConventionsTest, TheSuitesKeysAreRecognisedInIdentifiers) {
  EXPECT_TRUE(CheckNoSecret("req-42", "request_id").ok());
  EXPECT_TRUE(CheckNoSecret("psk-notes", "request_id").ok());
  for (const char* value : {"psk_proj_abc", "x.PSK_SVC_abc", "Psk_Admin_1"}) {
    EXPECT_EQ(CheckNoSecret(value, "model").code(), absl::StatusCode::kInvalidArgument) << value;
  }
}

TEST(ConventionsTest, BearerTokensInAnyCaseWithBlanksTrimmed) {
  EXPECT_EQ(BearerToken("Bearer psk_abc"), "psk_abc");
  EXPECT_EQ(BearerToken("  bEaReR   psk_abc  "), "psk_abc");
  EXPECT_EQ(BearerToken("Basic dXNlcjpwYXNz"), "");
  EXPECT_EQ(BearerToken("psk_abc"), "");
}

TEST(ConventionsTest, RetryAfterIsWholeSecondsRoundedUpAtLeastOne) {
  EXPECT_EQ(RetryAfterSeconds(absl::Seconds(4)), 4);
  EXPECT_EQ(RetryAfterSeconds(absl::Milliseconds(4200)), 5);
  EXPECT_EQ(RetryAfterSeconds(absl::Milliseconds(1)), 1);
  EXPECT_EQ(RetryAfterSeconds(absl::ZeroDuration()), 1);
}

TEST(ProtoConvertTest, AuditIdsNameTheLedgerAndTheIndex) {
  audit::v1::Entry entry;
  entry.mutable_ledger()->set_project("support-eu");
  entry.mutable_ledger()->set_environment("production");
  entry.set_index(27);
  EXPECT_EQ(AuditIdOf(entry), "support-eu/production/27");
  entry.clear_ledger();  // The organisation's own ledger.
  EXPECT_EQ(AuditIdOf(entry), "//27");
}

TEST(ProtoConvertTest, EnvironmentNamesAreTheEnumsLowerCased) {
  EXPECT_EQ(EnvironmentName(keys::v1::ENVIRONMENT_PRODUCTION), "production");
  EXPECT_EQ(EnvironmentName(keys::v1::ENVIRONMENT_UNSPECIFIED), "");
  EXPECT_EQ(EnvironmentName(static_cast<keys::v1::Environment>(999)), "");
}

}  // namespace
}  // namespace policy::edge
