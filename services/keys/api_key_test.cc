#include "services/keys/api_key.h"

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace policy::keys {
namespace {

using ::testing::HasSubstr;

TEST(ApiKeyTest, GeneratedSecretsParseBackToTheirKindAndId) {
  for (KeyKind kind : {KeyKind::kProject, KeyKind::kServiceAccount, KeyKind::kAdmin}) {
    absl::StatusOr<NewSecret> secret = GenerateSecret(kind);
    ASSERT_TRUE(secret.ok()) << secret.status();
    EXPECT_TRUE(absl::StartsWith(secret->secret, PrefixOf(kind)));
    EXPECT_EQ(secret->secret.size(),
              PrefixOf(kind).size() + kKeyIdChars + kSecretChars + kChecksumChars);
    absl::StatusOr<ParsedSecret> parsed = ParseSecret(secret->secret);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->kind, kind);
    EXPECT_EQ(parsed->key_id(), secret->key_id);
    EXPECT_EQ(secret->key_id.size(), 4 + kKeyIdChars);
  }
}

TEST(ApiKeyTest, SecretsAndIdsAreUnique) {
  std::set<std::string> secrets, ids;
  for (int i = 0; i < 2000; ++i) {
    absl::StatusOr<NewSecret> secret = GenerateSecret(KeyKind::kProject);
    ASSERT_TRUE(secret.ok());
    secrets.insert(secret->secret);
    ids.insert(secret->key_id);
  }
  EXPECT_EQ(secrets.size(), 2000u);
  EXPECT_EQ(ids.size(), 2000u);
}

TEST(ApiKeyTest, SecretPartCarriesAtLeast256Bits) {
  // 43 base62 characters hold log2(62^43) = 256.03 bits; the generator fills them from 32
  // random bytes, so every position must vary across keys.
  std::vector<std::set<char>> seen(kSecretChars);
  for (int i = 0; i < 300; ++i) {
    std::string secret = GenerateSecret(KeyKind::kProject)->secret;
    std::string part =
        secret.substr(PrefixOf(KeyKind::kProject).size() + kKeyIdChars, kSecretChars);
    for (size_t j = 1; j < kSecretChars; ++j) seen[j].insert(part[j]);
  }
  for (size_t j = 1; j < kSecretChars; ++j) EXPECT_GT(seen[j].size(), 20u) << "position " << j;
}

TEST(ApiKeyTest, RejectsMalformedInputNamingTheProblem) {
  std::string good = GenerateSecret(KeyKind::kProject)->secret;
  struct Case {
    std::string text;
    std::string message;
  } cases[] = {
      {"", "empty"},
      {std::string(300, 'a'), "longer than 256"},
      {"psk_proj_\xff\xfe", "UTF-8"},
      {std::string("psk_proj_") + "\xc0\xaf", "UTF-8"},  // Overlong encoding.
      {"sk-proj-abcdef", "unknown prefix"},
      {absl::StrCat("psk_admin_", good.substr(9)), "checksum"},  // Prefix swapped.
      {good.substr(0, good.size() - 1), "wrong length"},
      {good + "x", "wrong length"},
      {absl::StrCat(good.substr(0, 20), "!", good.substr(21)), "invalid characters"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<ParsedSecret> parsed = ParseSecret(c.text);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << c.text;
    EXPECT_THAT(parsed.status().message(), HasSubstr(c.message)) << c.text;
  }
}

TEST(ApiKeyTest, ChecksumCatchesEverySingleCharacterTypo) {
  std::string good = GenerateSecret(KeyKind::kServiceAccount)->secret;
  const size_t start = PrefixOf(KeyKind::kServiceAccount).size();
  for (size_t i = start; i < good.size(); ++i) {
    std::string typo = good;
    typo[i] = typo[i] == 'a' ? 'b' : 'a';
    EXPECT_FALSE(ParseSecret(typo).ok()) << "typo at " << i;
  }
  // Two neighbours swapped.
  for (size_t i = start; i + 1 < good.size(); ++i) {
    if (good[i] == good[i + 1]) continue;
    std::string swapped = good;
    std::swap(swapped[i], swapped[i + 1]);
    EXPECT_FALSE(ParseSecret(swapped).ok()) << "swap at " << i;
  }
}

TEST(ApiKeyTest, ChecksumIsCrc32cOfThePrefixIdAndSecret) {
  // Computed independently: CRC-32C("psk_proj_" + 60 x '0') = 0x4dd6bfd7 = "1QNVIt" in six
  // base62 digits.
  const std::string body = "psk_proj_" + std::string(kKeyIdChars + kSecretChars, '0');
  const std::string secret = body + "1QNVIt";
  absl::StatusOr<ParsedSecret> parsed = ParseSecret(secret);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->key_id(), "key_" + std::string(kKeyIdChars, '0'));
  EXPECT_EQ(parsed->random_part, std::string(kSecretChars, '0'));
  EXPECT_FALSE(ParseSecret(body + "1QNVIu").ok());
}

TEST(ApiKeyTest, RedactionKeepsPrefixAndLastFour) {
  std::string secret = GenerateSecret(KeyKind::kAdmin)->secret;
  std::string redacted = RedactSecret(secret);
  EXPECT_EQ(redacted, absl::StrCat("psk_admin_...", secret.substr(secret.size() - 4)));
  EXPECT_EQ(RedactSecret("garbage"), "...");
}

TEST(ApiKeyTest, RedactsEverySecretInFreeText) {
  absl::StatusOr<NewSecret> a = GenerateSecret(KeyKind::kProject);
  absl::StatusOr<NewSecret> b = GenerateSecret(KeyKind::kAdmin);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(RedactSecretsIn(absl::StrCat("leaked ", a->secret, ", ", b->secret, ".")),
            absl::StrCat("leaked ", RedactSecret(a->secret), ", ", RedactSecret(b->secret), "."));
  EXPECT_EQ(RedactSecretsIn("truncated psk_svc_ab and psk_proj_"),
            "truncated psk_svc_... and psk_proj_...");
  EXPECT_EQ(RedactSecretsIn("nothing to hide"), "nothing to hide");
  // Pasted without the prefix, or only the secret part.
  const std::string bare = a->secret.substr(PrefixOf(KeyKind::kProject).size());
  const std::string middle(ParseSecret(a->secret)->random_part);
  EXPECT_EQ(RedactSecretsIn(absl::StrCat("saw ", bare, " in a log")),
            absl::StrCat("saw ...", bare.substr(bare.size() - 4), " in a log"));
  EXPECT_EQ(RedactSecretsIn(absl::StrCat("(", middle, ")")),
            absl::StrCat("(...", middle.substr(middle.size() - 4), ")"));
  EXPECT_EQ(RedactSecretsIn("ticket INC-2024-0042 by alice@example.com"),
            "ticket INC-2024-0042 by alice@example.com");
  EXPECT_EQ(RedactSecretsIn(""), "");
}

}  // namespace
}  // namespace policy::keys
