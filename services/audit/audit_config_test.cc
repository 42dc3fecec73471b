#include "services/audit/audit_config.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace policy::audit {
namespace {

using ::testing::HasSubstr;

AuditConfig Serving() {
  AuditConfig c;
  c.storage.database_url = "postgresql://audit@127.0.0.1:5432/policy";
  c.signing_key = std::string(64, 'a');
  c.subject_key = std::string(64, 'b');
  return c;
}

TEST(AuditConfigTest, ServingNeedsTheSigningKeyAndTheSubjectKey) {
  EXPECT_TRUE(Serving().Validate().ok());
  AuditConfig c = Serving();
  c.signing_key.clear();
  EXPECT_THAT(c.Validate().message(), HasSubstr("signing_key must be 64 hex digits"));
  c = Serving();
  c.subject_key = "short";
  EXPECT_THAT(c.Validate().message(), HasSubstr("subject_key must be at least 32 bytes"));
}

// The migration Job is given no secret but the database's.
TEST(AuditConfigTest, MigratingNeedsNeitherKey) {
  AuditConfig c = Serving();
  c.signing_key.clear();
  c.subject_key.clear();
  c.storage.migrate_only = true;
  EXPECT_TRUE(c.Validate().ok()) << c.Validate();
  // The rest is still checked.
  c.max_batch = 0;
  EXPECT_EQ(c.Validate().code(), absl::StatusCode::kInvalidArgument);
}

TEST(AuditConfigTest, PreviousPublicKeysAreHexKeysAndABadOneIsNamed) {
  AuditConfig c = Serving();
  c.previous_public_keys = std::string(64, 'c') + ", " + std::string(64, 'd');
  EXPECT_TRUE(c.Validate().ok()) << c.Validate();
  c.previous_public_keys = std::string(64, 'c') + "," + std::string(62, 'd');
  const absl::Status s = c.Validate();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("previous_public_keys (POLICY_AUDIT_PREVIOUS_PUBLIC_KEYS): "
                                     "entry 2 (\"" +
                                     std::string(62, 'd') + "\")"));
}

}  // namespace
}  // namespace policy::audit
