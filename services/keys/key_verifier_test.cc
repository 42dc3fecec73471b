#include "services/keys/key_verifier.h"

#include <cstring>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/clock/clock.h"
#include "common/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/keys/api_key.h"
#include "services/keys/key_lifecycle.h"
#include "services/keys/keys_test_util.h"
#include "services/keys/memory_key_store.h"

namespace policy::keys {
namespace {

class KeyVerifierTest : public ::testing::Test {
 protected:
  KeyVerifierTest()
      : pepper_(TestPepper()),
        lifecycle_(&store_, pepper_.get(), &clock_, KeyPolicy{}),
        verifier_(pepper_.get(), &clock_, absl::Seconds(1)) {
    store_.Watch(&verifier_);
  }
  ~KeyVerifierTest() override { store_.StopWatching(); }

  IssuedKey Create(absl::Duration ttl = absl::Hours(24)) {
    CreateKeyParams params;
    params.kind = KeyKind::kProject;
    params.owner = {PrincipalType::kMember, "alice"};
    params.project = "proj-dev";
    params.scopes = {"chat.completions"};
    params.ttl = ttl;
    absl::StatusOr<IssuedKey> issued = lifecycle_.Create(params);
    EXPECT_TRUE(issued.ok()) << issued.status();
    return *issued;
  }

  std::optional<std::string> FailureReason(const std::string& secret) {
    absl::StatusOr<VerifiedKey> verified = verifier_.Verify(secret);
    if (verified.ok()) return std::nullopt;
    return ReasonOf(verified.status()).value_or("none");
  }

  FakeClock clock_;
  MemoryKeyStore store_{&clock_};
  std::unique_ptr<Pepper> pepper_;
  KeyLifecycle lifecycle_;
  KeyVerifier verifier_;
};

TEST_F(KeyVerifierTest, VerifiesAFreshKey) {
  IssuedKey issued = Create();
  absl::StatusOr<VerifiedKey> verified = verifier_.Verify(issued.secret);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(verified->key->key_id, issued.key.key_id);
  EXPECT_EQ(verified->key->owner.id, "alice");
  EXPECT_EQ(verified->state, KeyState::kActive);
}

TEST_F(KeyVerifierTest, CountsActiveKeysExpiringWithinAWindow) {
  Create(absl::Hours(24 * 3));
  Create(absl::Hours(24 * 30));
  IssuedKey revoked = Create(absl::Hours(24));
  ASSERT_TRUE(lifecycle_.Revoke(revoked.key.key_id, "").ok());
  Create(absl::Hours(1));  // Expired by the time it is counted.
  clock_.Advance(absl::Hours(2));
  EXPECT_EQ(verifier_.CountExpiringWithin(absl::Hours(24 * 7)), 1);
  EXPECT_EQ(verifier_.CountExpiringWithin(absl::Hours(24 * 31)), 2);
  EXPECT_EQ(verifier_.CountExpiringWithin(absl::Hours(1)), 0);
}

TEST_F(KeyVerifierTest, FailuresAreIndistinguishableButCarryTheReason) {
  IssuedKey revoked = Create();
  ASSERT_TRUE(lifecycle_.Revoke(revoked.key.key_id, "").ok());
  IssuedKey expiring = Create(absl::Hours(1));
  clock_.Advance(absl::Hours(2));

  std::string unknown = GenerateSecret(KeyKind::kProject)->secret;

  struct Case {
    std::string secret;
    std::string reason;
  } cases[] = {
      {revoked.secret, "KEY_REVOKED"}, {expiring.secret, "KEY_EXPIRED"}, {unknown, "UNKNOWN_KEY"}};
  for (const Case& c : cases) {
    absl::StatusOr<VerifiedKey> verified = verifier_.Verify(c.secret);
    ASSERT_FALSE(verified.ok());
    EXPECT_EQ(verified.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(verified.status().message(), "API key is not valid");
    EXPECT_EQ(ReasonOf(verified.status()), c.reason);
  }
}

TEST_F(KeyVerifierTest, SecretMismatchForAKnownId) {
  IssuedKey issued = Create();
  // The same key id with another secret: the stored hash is of a different secret.
  KeyRecord record = issued.key;
  record.secret_hash = pepper_->HashSecret("something else");
  verifier_.OnReset({record});
  EXPECT_EQ(FailureReason(issued.secret), "SECRET_MISMATCH");
}

// CRC-32C as the secret's checksum uses it, in six base62 characters: what anyone relabelling
// a secret would compute.
std::string ChecksumOf(absl::string_view body) {
  uint32_t crc = 0xffffffffu;
  for (unsigned char c : body) {
    crc ^= c;
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
  }
  crc = ~crc;
  static constexpr absl::string_view kAlphabet =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string out(kChecksumChars, '0');
  for (size_t position = kChecksumChars; position-- > 0;) {
    out[position] = kAlphabet[crc % 62];
    crc /= 62;
  }
  return out;
}

TEST_F(KeyVerifierTest, ASecretRelabelledAsAnotherKindIsNotValid) {
  IssuedKey issued = Create();
  ASSERT_TRUE(absl::StartsWith(issued.secret, "psk_proj_"));
  ASSERT_EQ(
      ChecksumOf(absl::string_view(issued.secret).substr(0, issued.secret.size() - kChecksumChars)),
      issued.secret.substr(issued.secret.size() - kChecksumChars));
  const std::string rest = issued.secret.substr(strlen("psk_proj_"));
  const std::string body = rest.substr(0, rest.size() - kChecksumChars);
  for (KeyKind kind : {KeyKind::kAdmin, KeyKind::kServiceAccount}) {
    const std::string relabelled = absl::StrCat(PrefixOf(kind), body);
    const std::string forged = relabelled + ChecksumOf(relabelled);
    ASSERT_TRUE(ParseSecret(forged).ok()) << forged;
    absl::StatusOr<VerifiedKey> verified = verifier_.Verify(forged);
    ASSERT_FALSE(verified.ok()) << KindName(kind);
    EXPECT_EQ(verified.status().code(), absl::StatusCode::kUnauthenticated);
    EXPECT_EQ(verified.status().message(), "API key is not valid");
    EXPECT_EQ(ReasonOf(verified.status()), "KEY_KIND_MISMATCH");
  }
  EXPECT_TRUE(verifier_.Verify(issued.secret).ok());
}

TEST_F(KeyVerifierTest, MalformedInputIsInvalidArgumentBeforeAnyLookup) {
  absl::StatusOr<VerifiedKey> verified = verifier_.Verify("psk_proj_nope");
  EXPECT_EQ(verified.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReasonOf(verified.status()), "MALFORMED_KEY");
}

TEST_F(KeyVerifierTest, RotationOverlapThenOldKeyStops) {
  IssuedKey old_key = Create(absl::Hours(24 * 30));
  absl::StatusOr<RotatedKey> rotated =
      lifecycle_.Rotate({"", old_key.key.key_id, absl::Hours(24), std::nullopt});
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  EXPECT_EQ(verifier_.Verify(old_key.secret)->state, KeyState::kRotating);
  EXPECT_EQ(verifier_.Verify(rotated->new_key.secret)->state, KeyState::kActive);
  clock_.Advance(absl::Hours(24) - absl::Seconds(1));
  EXPECT_TRUE(verifier_.Verify(old_key.secret).ok());
  clock_.Advance(absl::Seconds(1));
  // The overlap ended: the old key stops at once, even before a sweep rewrites it.
  EXPECT_EQ(FailureReason(old_key.secret), "KEY_REVOKED");
  EXPECT_TRUE(verifier_.Verify(rotated->new_key.secret).ok());
}

TEST_F(KeyVerifierTest, AnExpiredKeyVerifiesWithinAGraceARevokedOneNever) {
  const absl::Duration grace = kUsageReportGrace;
  IssuedKey expiring = Create(absl::Hours(1));
  IssuedKey expired_then_revoked = Create(absl::Hours(1));
  IssuedKey rotated_out = Create(absl::Hours(24 * 30));
  ASSERT_TRUE(lifecycle_.Rotate({"", rotated_out.key.key_id, absl::Hours(1), std::nullopt}).ok());
  IssuedKey revoked = Create(absl::Hours(24 * 30));
  ASSERT_TRUE(lifecycle_.Revoke(revoked.key.key_id, "leaked").ok());
  clock_.Advance(absl::Hours(1) + absl::Minutes(1));
  ASSERT_TRUE(lifecycle_.Revoke(expired_then_revoked.key.key_id, "leaked").ok());

  absl::StatusOr<VerifiedKey> expired = verifier_.Verify(expiring.secret, grace);
  ASSERT_TRUE(expired.ok()) << expired.status();
  EXPECT_EQ(expired->state, KeyState::kExpired);
  EXPECT_EQ(FailureReason(expiring.secret), "KEY_EXPIRED");  // Without the grace.
  // Revoked, by hand or by its rotation's end (before and after the sweep): never.
  for (const IssuedKey* key : {&revoked, &expired_then_revoked, &rotated_out}) {
    EXPECT_EQ(ReasonOf(verifier_.Verify(key->secret, grace).status()), "KEY_REVOKED");
  }
  ASSERT_TRUE(lifecycle_.Sweep().ok());
  EXPECT_EQ(ReasonOf(verifier_.Verify(rotated_out.secret, grace).status()), "KEY_REVOKED");
  // The grace runs from the expiry.
  clock_.Advance(grace - absl::Minutes(2));
  EXPECT_TRUE(verifier_.Verify(expiring.secret, grace).ok());
  clock_.Advance(absl::Minutes(1));
  EXPECT_EQ(ReasonOf(verifier_.Verify(expiring.secret, grace).status()), "KEY_EXPIRED");
}

TEST_F(KeyVerifierTest, StaleCacheFailsClosed) {
  KeyVerifier verifier(pepper_.get(), &clock_, absl::Seconds(1));
  IssuedKey issued = Create();
  // Nothing loaded yet: not in sync.
  EXPECT_FALSE(verifier.InSync());
  EXPECT_EQ(verifier.Staleness(), absl::InfiniteDuration());
  EXPECT_EQ(verifier.Verify(issued.secret).status().code(), absl::StatusCode::kUnavailable);
  verifier.OnReset({issued.key});
  verifier.OnInSync(clock_.Now());
  EXPECT_TRUE(verifier.Verify(issued.secret).ok());
  clock_.Advance(absl::Milliseconds(1000));
  EXPECT_TRUE(verifier.Verify(issued.secret).ok());
  clock_.Advance(absl::Milliseconds(1));
  EXPECT_FALSE(verifier.InSync());
  EXPECT_EQ(verifier.Staleness(), absl::Milliseconds(1001));
  absl::StatusOr<VerifiedKey> stale = verifier.Verify(issued.secret);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ReasonOf(stale.status()), "KEY_CACHE_STALE");
  verifier.OnInSync(clock_.Now());  // The database is back.
  EXPECT_TRUE(verifier.Verify(issued.secret).ok());
}

TEST_F(KeyVerifierTest, AClockSteppedBackProvesNothingAndFailsClosedUntilTheNextProof) {
  // The last proof was taken at T; the host's clock then steps back an hour (NTP, a VM
  // restore). The proof says nothing about "now": were the lag counted as zero, the replica
  // would verify from memory for an hour without a single heartbeat from the database.
  KeyVerifier verifier(pepper_.get(), &clock_, absl::Seconds(1));
  IssuedKey issued = Create();
  verifier.OnReset({issued.key});
  verifier.OnInSync(clock_.Now());
  ASSERT_TRUE(verifier.Verify(issued.secret).ok());
  clock_.Advance(absl::Hours(-1));
  EXPECT_FALSE(verifier.InSync());
  EXPECT_EQ(verifier.Verify(issued.secret).status().code(), absl::StatusCode::kUnavailable);
  clock_.Advance(absl::Minutes(30));  // Still before the last proof: still nothing proven.
  EXPECT_EQ(verifier.Verify(issued.secret).status().code(), absl::StatusCode::kUnavailable);
  verifier.OnInSync(clock_.Now());  // The feed's next heartbeat, on the stepped-back clock.
  EXPECT_TRUE(verifier.Verify(issued.secret).ok());
  clock_.Advance(absl::Seconds(2));
  EXPECT_EQ(verifier.Verify(issued.secret).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(KeyVerifierTest, AResyncSnapshotOlderThanALocalChangeDoesNotUndoIt) {
  IssuedKey revoked = Create();
  KeyRecord before = *store_.Get(revoked.key.key_id);           // Read by a "resync" ...
  ASSERT_TRUE(lifecycle_.Revoke(revoked.key.key_id, "").ok());  // ... racing a revocation.
  IssuedKey created = Create();  // And a key created after the snapshot was read.
  verifier_.OnReset({before});
  EXPECT_EQ(FailureReason(revoked.secret), "KEY_REVOKED");
  EXPECT_TRUE(verifier_.Verify(created.secret).ok());
}

TEST_F(KeyVerifierTest, OlderCopiesNeverUndoARevocation) {
  IssuedKey issued = Create();
  KeyRecord active = issued.key;
  ASSERT_TRUE(lifecycle_.Revoke(active.key_id, "").ok());
  EXPECT_EQ(FailureReason(issued.secret), "KEY_REVOKED");
  verifier_.OnChanged({active});  // A late notification carrying the pre-revocation row.
  EXPECT_EQ(FailureReason(issued.secret), "KEY_REVOKED");
}

}  // namespace
}  // namespace policy::keys
