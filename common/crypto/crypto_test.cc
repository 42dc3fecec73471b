#include "common/crypto/crypto.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace policy::crypto {
namespace {

std::string Hex(absl::string_view bytes) { return absl::BytesToHexString(bytes); }

// A fixed, valid AES-256 key.
std::string TestKey(char fill = 'K') { return std::string(32, fill); }

// --- Sha256 --------------------------------------------------------------------------------

TEST(Sha256Test, FipsVectors) {
  // FIPS 180-2 appendix B.1 and B.2.
  EXPECT_EQ(Hex(Sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Hex(Sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Hex(Sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256("abc").size(), kSha256Size);
}

// --- HmacSha256 ----------------------------------------------------------------------------

struct HmacVector {
  const char* name;
  std::string key;
  std::string data;
  const char* mac_hex;
};

std::vector<HmacVector> Rfc4231Vectors() {
  return {
      {"case 1", std::string(20, '\x0b'), "Hi There",
       "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
      {"case 2", "Jefe", "what do ya want for nothing?",
       "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
      {"case 3", std::string(20, '\xaa'), std::string(50, '\xdd'),
       "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
      // Keys longer than SHA-256's 64-byte block are hashed first.
      {"case 6", std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First",
       "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
      {"case 7", std::string(131, '\xaa'),
       "This is a test using a larger than block-size key and a larger than block-size data. The "
       "key needs to be hashed before being used by the HMAC algorithm.",
       "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
      // Block-size edges (reference values from Python's hmac module).
      {"64-byte key", std::string(64, 'k'), "block",
       "1b7ee2f78bbad5f9d29e0b4e5f639ae046d13e1763f1ebc7a439089c128f294a"},
      {"65-byte key", std::string(65, 'k'), "block",
       "205da1093ea96b1859b451191f3a71c6c93ec675f0872d8018cedab033bc8986"},
      {"empty key and message", "", "",
       "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"},
  };
}

TEST(HmacSha256Test, MatchesRfc4231Vectors) {
  for (const HmacVector& v : Rfc4231Vectors()) {
    SCOPED_TRACE(v.name);
    HmacSha256 hmac(v.key);
    std::string mac = hmac.Mac(v.data);
    EXPECT_EQ(mac.size(), kSha256Size);
    EXPECT_EQ(Hex(mac), v.mac_hex);
  }
}

TEST(HmacSha256Test, ReusableForManyMessages) {
  HmacSha256 hmac("Jefe");
  const std::string first = hmac.Mac("what do ya want for nothing?");
  EXPECT_NE(hmac.Mac("something else"), first);
  // The precomputed key schedule is not consumed by a Mac call.
  EXPECT_EQ(hmac.Mac("what do ya want for nothing?"), first);
  EXPECT_EQ(Hex(first), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(HmacSha256Test, DifferentKeysGiveDifferentMacs) {
  HmacSha256 a("key-a");
  HmacSha256 b("key-b");
  EXPECT_NE(a.Mac("message"), b.Mac("message"));
}

TEST(HmacSha256Test, ConcurrentUseGivesTheSameResults) {
  const std::vector<HmacVector> vectors = Rfc4231Vectors();
  std::vector<std::unique_ptr<HmacSha256>> macs;
  for (const HmacVector& v : vectors) macs.push_back(std::make_unique<HmacSha256>(v.key));

  constexpr int kThreads = 4;
  constexpr int kRounds = 500;
  std::vector<int> failures(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < kRounds; ++round) {
        // Each thread walks the vectors in a different order so the shared states interleave.
        const size_t i = (round + t) % vectors.size();
        if (Hex(macs[i]->Mac(vectors[i].data)) != vectors[i].mac_hex) ++failures[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], 0) << "thread " << t;
}

// --- ConstantTimeEquals ----------------------------------------------------------------------

TEST(ConstantTimeEqualsTest, Equal) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("same-tag", "same-tag"));
  EXPECT_TRUE(ConstantTimeEquals(std::string("a\0b", 3), std::string("a\0b", 3)));
}

TEST(ConstantTimeEqualsTest, DifferentContent) {
  EXPECT_FALSE(ConstantTimeEquals("same-tag", "same-taG"));
  EXPECT_FALSE(ConstantTimeEquals("Xame-tag", "same-tag"));
  EXPECT_FALSE(ConstantTimeEquals(std::string("a\0b", 3), std::string("a\0c", 3)));
}

TEST(ConstantTimeEqualsTest, DifferentLength) {
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
  EXPECT_FALSE(ConstantTimeEquals("abcd", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("", "a"));
}

// --- RandomBytes ---------------------------------------------------------------------------

TEST(RandomBytesTest, SizeAndFreshness) {
  absl::StatusOr<std::string> a = RandomBytes(32);
  absl::StatusOr<std::string> b = RandomBytes(32);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->size(), 32u);
  EXPECT_EQ(b->size(), 32u);
  EXPECT_NE(*a, *b);
  EXPECT_NE(*a, std::string(32, '\0'));

  absl::StatusOr<std::string> odd = RandomBytes(7);
  ASSERT_TRUE(odd.ok());
  EXPECT_EQ(odd->size(), 7u);
  absl::StatusOr<std::string> none = RandomBytes(0);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

// --- AeadSeal / AeadOpen -------------------------------------------------------------------

TEST(AeadTest, RoundTrip) {
  const std::string key = TestKey();
  const std::string plaintext = "the signing key material";
  absl::StatusOr<std::string> sealed = AeadSeal(key, plaintext, "keys/k1");
  ASSERT_TRUE(sealed.ok()) << sealed.status();
  // nonce (12) || ciphertext || tag (16)
  EXPECT_EQ(sealed->size(), 12 + plaintext.size() + 16);
  EXPECT_EQ(sealed->find(plaintext), std::string::npos);

  absl::StatusOr<std::string> opened = AeadOpen(key, *sealed, "keys/k1");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(*opened, plaintext);
}

TEST(AeadTest, RoundTripEmptyAndBinary) {
  const std::string key = TestKey();
  for (const std::string& plaintext :
       {std::string(), std::string("\0\1\2\xff", 4), std::string(1000, 'x')}) {
    absl::StatusOr<std::string> sealed = AeadSeal(key, plaintext, "");
    ASSERT_TRUE(sealed.ok()) << sealed.status();
    absl::StatusOr<std::string> opened = AeadOpen(key, *sealed, "");
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_EQ(*opened, plaintext);
  }
}

TEST(AeadTest, SealingTwiceUsesFreshNonces) {
  const std::string key = TestKey();
  absl::StatusOr<std::string> a = AeadSeal(key, "same", "ad");
  absl::StatusOr<std::string> b = AeadSeal(key, "same", "ad");
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  EXPECT_NE(a->substr(0, 12), b->substr(0, 12));
  EXPECT_NE(*a, *b);
}

TEST(AeadTest, TamperingWithAnyByteIsDataLoss) {
  const std::string key = TestKey();
  absl::StatusOr<std::string> sealed = AeadSeal(key, "secret payload", "ad");
  ASSERT_TRUE(sealed.ok());
  for (size_t i = 0; i < sealed->size(); ++i) {
    std::string tampered = *sealed;
    tampered[i] = static_cast<char>(tampered[i] ^ 0x01);
    absl::StatusOr<std::string> opened = AeadOpen(key, tampered, "ad");
    EXPECT_EQ(opened.status().code(), absl::StatusCode::kDataLoss) << "byte " << i;
  }
}

TEST(AeadTest, TruncatedOrExtendedIsDataLoss) {
  const std::string key = TestKey();
  absl::StatusOr<std::string> sealed = AeadSeal(key, "secret payload", "ad");
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(AeadOpen(key, sealed->substr(0, sealed->size() - 1), "ad").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(AeadOpen(key, *sealed + "x", "ad").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(AeadOpen(key, sealed->substr(0, 27), "ad").status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(AeadOpen(key, "", "ad").status().code(), absl::StatusCode::kDataLoss);
}

TEST(AeadTest, DifferentAssociatedDataIsDataLoss) {
  const std::string key = TestKey();
  absl::StatusOr<std::string> sealed = AeadSeal(key, "secret payload", "keys/k1");
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(AeadOpen(key, *sealed, "keys/k2").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(AeadOpen(key, *sealed, "").status().code(), absl::StatusCode::kDataLoss);
}

TEST(AeadTest, WrongKeyIsDataLoss) {
  absl::StatusOr<std::string> sealed = AeadSeal(TestKey('A'), "secret payload", "ad");
  ASSERT_TRUE(sealed.ok());
  EXPECT_EQ(AeadOpen(TestKey('B'), *sealed, "ad").status().code(), absl::StatusCode::kDataLoss);
}

TEST(AeadTest, KeyMustBe32Bytes) {
  for (size_t size : {0u, 16u, 31u, 33u, 64u}) {
    SCOPED_TRACE(size);
    const std::string key(size, 'K');
    EXPECT_EQ(AeadSeal(key, "p", "ad").status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(AeadOpen(key, std::string(40, '\0'), "ad").status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

// --- Ed25519 ---------------------------------------------------------------------------------

struct Ed25519Vector {
  const char* name;
  const char* seed;
  const char* public_key;
  const char* message;
  const char* signature;
};

// RFC 8032 section 7.1, TEST 1 and TEST 2.
std::vector<Ed25519Vector> Rfc8032Vectors() {
  return {
      {"TEST 1", "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
       "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
       "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
       "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
      {"TEST 2", "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
       "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
       "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
       "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
  };
}

TEST(Ed25519Test, Rfc8032Vectors) {
  for (const Ed25519Vector& v : Rfc8032Vectors()) {
    SCOPED_TRACE(v.name);
    const std::string seed = absl::HexStringToBytes(v.seed);
    const std::string public_key = absl::HexStringToBytes(v.public_key);
    const std::string message = absl::HexStringToBytes(v.message);
    const std::string signature = absl::HexStringToBytes(v.signature);
    ASSERT_EQ(seed.size(), kEd25519SeedSize);
    ASSERT_EQ(public_key.size(), kEd25519PublicKeySize);
    ASSERT_EQ(signature.size(), kEd25519SignatureSize);

    absl::StatusOr<std::string> derived = Ed25519PublicKey(seed);
    ASSERT_TRUE(derived.ok()) << derived.status();
    EXPECT_EQ(Hex(*derived), v.public_key);
    absl::StatusOr<std::string> signed_message = Ed25519Sign(seed, message);
    ASSERT_TRUE(signed_message.ok()) << signed_message.status();
    EXPECT_EQ(Hex(*signed_message), v.signature);
    EXPECT_TRUE(Ed25519Verify(public_key, message, signature));
  }
  // An empty message given as a null view signs like "".
  const Ed25519Vector empty = Rfc8032Vectors()[0];
  EXPECT_EQ(Hex(Ed25519Sign(absl::HexStringToBytes(empty.seed), absl::string_view()).value()),
            empty.signature);
  EXPECT_TRUE(Ed25519Verify(absl::HexStringToBytes(empty.public_key), absl::string_view(),
                            absl::HexStringToBytes(empty.signature)));
}

TEST(Ed25519Test, AnyFlippedBitFailsVerification) {
  for (const Ed25519Vector& v : Rfc8032Vectors()) {
    SCOPED_TRACE(v.name);
    const std::string public_key = absl::HexStringToBytes(v.public_key);
    const std::string message = absl::HexStringToBytes(v.message);
    const std::string signature = absl::HexStringToBytes(v.signature);
    for (size_t bit = 0; bit < 8 * signature.size(); ++bit) {
      std::string bad = signature;
      bad[bit / 8] ^= static_cast<char>(1 << (bit % 8));
      EXPECT_FALSE(Ed25519Verify(public_key, message, bad)) << "signature bit " << bit;
    }
    for (size_t bit = 0; bit < 8 * public_key.size(); ++bit) {
      std::string bad = public_key;
      bad[bit / 8] ^= static_cast<char>(1 << (bit % 8));
      EXPECT_FALSE(Ed25519Verify(bad, message, signature)) << "public key bit " << bit;
    }
    for (size_t bit = 0; bit < 8 * message.size(); ++bit) {
      std::string bad = message;
      bad[bit / 8] ^= static_cast<char>(1 << (bit % 8));
      EXPECT_FALSE(Ed25519Verify(public_key, bad, signature)) << "message bit " << bit;
    }
    EXPECT_FALSE(Ed25519Verify(public_key, message + "x", signature));
  }
}

TEST(Ed25519Test, SignsAndVerifiesUnderAnySeed) {
  const std::string seed = RandomBytes(kEd25519SeedSize).value();
  const std::string public_key = Ed25519PublicKey(seed).value();
  const std::string message(1000, 'm');
  const std::string signature = Ed25519Sign(seed, message).value();
  EXPECT_EQ(signature.size(), kEd25519SignatureSize);
  EXPECT_EQ(Ed25519Sign(seed, message).value(), signature);  // Deterministic.
  EXPECT_TRUE(Ed25519Verify(public_key, message, signature));
  const std::string other_key = Ed25519PublicKey(RandomBytes(kEd25519SeedSize).value()).value();
  EXPECT_FALSE(Ed25519Verify(other_key, message, signature));
}

TEST(Ed25519Test, WrongLengthsAndMalformedKeys) {
  for (size_t length : {0, 1, 31, 33, 64}) {
    const std::string seed(length, 's');
    EXPECT_EQ(Ed25519PublicKey(seed).status().code(), absl::StatusCode::kInvalidArgument) << length;
    EXPECT_EQ(Ed25519Sign(seed, "m").status().code(), absl::StatusCode::kInvalidArgument) << length;
  }
  const Ed25519Vector v = Rfc8032Vectors()[1];
  const std::string public_key = absl::HexStringToBytes(v.public_key);
  const std::string message = absl::HexStringToBytes(v.message);
  const std::string signature = absl::HexStringToBytes(v.signature);
  for (size_t length : {0, 31, 33, 64}) {
    EXPECT_FALSE(Ed25519Verify(std::string(length, 'k'), message, signature)) << length;
  }
  EXPECT_FALSE(Ed25519Verify(public_key.substr(0, 31), message, signature));
  EXPECT_FALSE(Ed25519Verify(public_key + std::string(1, '\0'), message, signature));
  for (size_t length : {0, 32, 63, 65, 128}) {
    EXPECT_FALSE(Ed25519Verify(public_key, message, std::string(length, 'g'))) << length;
  }
  EXPECT_FALSE(Ed25519Verify(public_key, message, signature + std::string(1, '\0')));
  // 32 bytes that do not decode to a curve point (y = 2^255 - 1 is not below p), an all-zero
  // key, and an all-zero or all-ones signature: rejected, not a crash.
  EXPECT_FALSE(Ed25519Verify(std::string(31, '\xff') + "\x7f", message, signature));
  EXPECT_FALSE(Ed25519Verify(std::string(32, '\0'), message, signature));
  EXPECT_FALSE(Ed25519Verify(public_key, message, std::string(64, '\0')));
  EXPECT_FALSE(Ed25519Verify(public_key, message, std::string(64, '\xff')));
}

}  // namespace
}  // namespace policy::crypto
