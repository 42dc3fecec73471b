#include "services/audit/audit_config.h"

#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/config/config.h"
#include "common/crypto/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/audit/checkpoint.h"

namespace policy::audit {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

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
                                     "entry 2 (62 characters, not shown)"));
  // What was given is not repeated: it may be a secret pasted into the wrong place.
  EXPECT_THAT(s.message(), Not(HasSubstr(std::string(62, 'd'))));
}

// The signing key's own seed among the previous keys is a secret in a setting that is logged.
TEST(AuditConfigTest, TheSigningSeedAmongThePreviousKeysIsRefused) {
  AuditConfig c = Serving();
  c.previous_public_keys = std::string(64, 'c') + "," + std::string(64, 'A');
  const absl::Status s = c.Validate();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("entry 2 is signing_key itself, the private seed, not a "
                                     "public key"));
  EXPECT_THAT(s.message(), Not(HasSubstr(std::string(64, 'a'))));
  // Its public key is what a rotation lists (and the service ignores).
  c.previous_public_keys = absl::BytesToHexString(
      crypto::Ed25519PublicKey(absl::HexStringToBytes(c.signing_key)).value());
  EXPECT_TRUE(c.Validate().ok()) << c.Validate();
}

// The configuration log line names the previous keys by key id, never the keys.
TEST(AuditConfigTest, ThePreviousKeysAreShownByKeyIdOnly) {
  const std::string first(64, 'c'), second = std::string(63, '0') + "1";
  AuditConfig c;
  config::Parser parser("audit");
  c.Register(parser);
  ASSERT_TRUE(parser
                  .Parse({"--previous_public_keys=" + first + "," + second},
                         {{"POLICY_AUDIT_SIGNING_KEY", std::string(64, 'a')}})
                  .ok());
  ASSERT_EQ(c.previous_public_keys, first + "," + second);
  const std::string described = parser.Describe();
  EXPECT_THAT(described, HasSubstr(absl::StrCat("previous_public_keys=key ids ",
                                                KeyIdOf(absl::HexStringToBytes(first)), ",",
                                                KeyIdOf(absl::HexStringToBytes(second)), "\n")));
  EXPECT_THAT(described, Not(HasSubstr(first)));
  EXPECT_THAT(described, Not(HasSubstr(second)));
  EXPECT_THAT(described, Not(HasSubstr(std::string(64, 'a'))));
  // Something else given there (a seed with a typo, say) is not shown either.
  c.previous_public_keys = "0x" + first;
  EXPECT_THAT(parser.Describe(), HasSubstr("previous_public_keys=<not shown: "));
  EXPECT_THAT(parser.Describe(), Not(HasSubstr(first)));
  EXPECT_THAT(parser.Usage(), Not(HasSubstr(first)));
}

}  // namespace
}  // namespace policy::audit
