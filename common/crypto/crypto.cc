#include "common/crypto/crypto.h"

// HmacSha256 copies precomputed SHA-256 states, which only the low-level SHA256_CTX API can
// do without the EVP layer's per-call overhead (about half the cost of a short HMAC).
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <cstring>

#include "absl/base/internal/raw_logging.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace policy::crypto {
namespace {

constexpr size_t kBlockSize = 64;  // SHA-256's block size.
constexpr size_t kNonceSize = 12;
constexpr size_t kTagSize = 16;

const EVP_MD* Sha256Md() {
  static EVP_MD* const kMd = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return kMd;
}

const EVP_CIPHER* Aes256Gcm() {
  static EVP_CIPHER* const kCipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return kCipher;
}

struct CipherCtxDeleter {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxDeleter>;

const unsigned char* Bytes(absl::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

void Check(int ok, const char* what) {
  if (ok != 1) ABSL_RAW_LOG(FATAL, "OpenSSL failed: %s", what);
}

}  // namespace

absl::StatusOr<std::string> RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    return absl::InternalError("OpenSSL RAND_bytes failed");
  }
  return out;
}

std::string Sha256(absl::string_view data) {
  std::string out(kSha256Size, '\0');
  unsigned int size = 0;
  Check(EVP_Digest(data.data(), data.size(), reinterpret_cast<unsigned char*>(out.data()), &size,
                   Sha256Md(), nullptr),
        "EVP_Digest");
  return out;
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

struct HmacSha256::State {
  SHA256_CTX inner;  // After absorbing key ^ ipad.
  SHA256_CTX outer;  // After absorbing key ^ opad.
};

HmacSha256::HmacSha256(absl::string_view key) : state_(std::make_unique<State>()) {
  unsigned char block[kBlockSize] = {};
  if (key.size() > kBlockSize) {
    std::string digest = Sha256(key);
    std::memcpy(block, digest.data(), digest.size());
  } else {
    std::memcpy(block, key.data(), key.size());
  }
  unsigned char ipad[kBlockSize], opad[kBlockSize];
  for (size_t i = 0; i < kBlockSize; ++i) {
    ipad[i] = block[i] ^ 0x36;
    opad[i] = block[i] ^ 0x5c;
  }
  Check(SHA256_Init(&state_->inner), "SHA256_Init");
  Check(SHA256_Update(&state_->inner, ipad, kBlockSize), "SHA256_Update");
  Check(SHA256_Init(&state_->outer), "SHA256_Init");
  Check(SHA256_Update(&state_->outer, opad, kBlockSize), "SHA256_Update");
  OPENSSL_cleanse(block, sizeof(block));
  OPENSSL_cleanse(ipad, sizeof(ipad));
  OPENSSL_cleanse(opad, sizeof(opad));
}

HmacSha256::~HmacSha256() { OPENSSL_cleanse(state_.get(), sizeof(State)); }

std::array<char, kSha256Size> HmacSha256::MacDigest(absl::string_view message) const {
  unsigned char inner_digest[kSha256Size];
  SHA256_CTX ctx = state_->inner;
  SHA256_Update(&ctx, message.data(), message.size());
  SHA256_Final(inner_digest, &ctx);
  std::array<char, kSha256Size> out;
  ctx = state_->outer;
  SHA256_Update(&ctx, inner_digest, sizeof(inner_digest));
  SHA256_Final(reinterpret_cast<unsigned char*>(out.data()), &ctx);
  return out;
}

std::string HmacSha256::Mac(absl::string_view message) const {
  std::array<char, kSha256Size> digest = MacDigest(message);
  return std::string(digest.data(), digest.size());
}

absl::StatusOr<std::string> AeadSeal(absl::string_view key, absl::string_view plaintext,
                                     absl::string_view associated_data) {
  if (key.size() != 32) return absl::InvalidArgumentError("AES-256-GCM key must be 32 bytes");
  absl::StatusOr<std::string> nonce = RandomBytes(kNonceSize);
  if (!nonce.ok()) return nonce.status();
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  std::string out = *nonce;
  out.resize(kNonceSize + plaintext.size() + kTagSize);
  auto* body = reinterpret_cast<unsigned char*>(out.data()) + kNonceSize;
  int len = 0;
  if (EVP_EncryptInit_ex(ctx.get(), Aes256Gcm(), nullptr, Bytes(key), Bytes(*nonce)) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, Bytes(associated_data),
                        static_cast<int>(associated_data.size())) != 1 ||
      EVP_EncryptUpdate(ctx.get(), body, &len, Bytes(plaintext),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), body + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagSize, body + plaintext.size()) !=
          1) {
    return absl::InternalError("AES-256-GCM encryption failed");
  }
  return out;
}

absl::StatusOr<std::string> AeadOpen(absl::string_view key, absl::string_view sealed,
                                     absl::string_view associated_data) {
  if (key.size() != 32) return absl::InvalidArgumentError("AES-256-GCM key must be 32 bytes");
  if (sealed.size() < kNonceSize + kTagSize) return absl::DataLossError("sealed data too short");
  const size_t body_size = sealed.size() - kNonceSize - kTagSize;
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  std::string out(body_size, '\0');
  std::string tag(sealed.substr(kNonceSize + body_size));
  int len = 0;
  auto* plain = reinterpret_cast<unsigned char*>(out.data());
  if (EVP_DecryptInit_ex(ctx.get(), Aes256Gcm(), nullptr, Bytes(key), Bytes(sealed)) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, Bytes(associated_data),
                        static_cast<int>(associated_data.size())) != 1 ||
      EVP_DecryptUpdate(ctx.get(), plain, &len, Bytes(sealed) + kNonceSize,
                        static_cast<int>(body_size)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, tag.data()) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), plain + len, &len) != 1) {
    return absl::DataLossError("sealed data failed authentication");
  }
  return out;
}

namespace {

struct PkeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

absl::StatusOr<Pkey> Ed25519PrivateKey(absl::string_view seed) {
  if (seed.size() != kEd25519SeedSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("an Ed25519 private key seed is 32 bytes, not ", seed.size()));
  }
  Pkey key(EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(seed.data()), seed.size()));
  if (key == nullptr) return absl::InternalError("EVP_PKEY_new_raw_private_key failed");
  return key;
}

}  // namespace

absl::StatusOr<std::string> Ed25519PublicKey(absl::string_view seed) {
  absl::StatusOr<Pkey> key = Ed25519PrivateKey(seed);
  if (!key.ok()) return key.status();
  std::string out(kEd25519PublicKeySize, '\0');
  size_t size = out.size();
  if (EVP_PKEY_get_raw_public_key(key->get(), reinterpret_cast<unsigned char*>(out.data()),
                                  &size) != 1 ||
      size != kEd25519PublicKeySize) {
    return absl::InternalError("EVP_PKEY_get_raw_public_key failed");
  }
  return out;
}

absl::StatusOr<std::string> Ed25519Sign(absl::string_view seed, absl::string_view message) {
  absl::StatusOr<Pkey> key = Ed25519PrivateKey(seed);
  if (!key.ok()) return key.status();
  MdCtx ctx(EVP_MD_CTX_new());
  std::string signature(kEd25519SignatureSize, '\0');
  size_t size = signature.size();
  if (ctx == nullptr || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key->get()) != 1 ||
      EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &size,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1 ||
      size != kEd25519SignatureSize) {
    return absl::InternalError("Ed25519 signing failed");
  }
  return signature;
}

bool Ed25519Verify(absl::string_view public_key, absl::string_view message,
                   absl::string_view signature) {
  if (public_key.size() != kEd25519PublicKeySize || signature.size() != kEd25519SignatureSize) {
    return false;
  }
  Pkey key(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                       reinterpret_cast<const unsigned char*>(public_key.data()),
                                       public_key.size()));
  MdCtx ctx(EVP_MD_CTX_new());
  if (key == nullptr || ctx == nullptr ||
      EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1) {
    return false;
  }
  return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                          signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                          message.size()) == 1;
}

}  // namespace policy::crypto
