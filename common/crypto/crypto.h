#ifndef POLICY_COMMON_CRYPTO_CRYPTO_H_
#define POLICY_COMMON_CRYPTO_CRYPTO_H_

#include <array>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

// OpenSSL primitives behind small value-typed functions. Byte strings are std::string.
namespace policy::crypto {

inline constexpr size_t kSha256Size = 32;

// `n` bytes from OpenSSL's CSPRNG; INTERNAL if it cannot be seeded.
absl::StatusOr<std::string> RandomBytes(size_t n);

std::string Sha256(absl::string_view data);

// Equality whose running time depends only on the lengths, never on the contents.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

// HMAC-SHA-256 under one key, with the key schedule computed once. Thread-safe; Mac() costs
// two SHA-256 compressions of the padded key less than a one-shot HMAC.
class HmacSha256 {
 public:
  explicit HmacSha256(absl::string_view key);
  ~HmacSha256();
  HmacSha256(const HmacSha256&) = delete;
  HmacSha256& operator=(const HmacSha256&) = delete;

  // The 32-byte tag of `message`.
  std::string Mac(absl::string_view message) const;
  // The same, without a heap allocation (for hot paths).
  std::array<char, kSha256Size> MacDigest(absl::string_view message) const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// AES-256-GCM with a random 96-bit nonce. Sealed form: nonce || ciphertext || 16-byte tag.
// `key` must be 32 bytes. Open fails with DATA_LOSS when the tag does not match.
absl::StatusOr<std::string> AeadSeal(absl::string_view key, absl::string_view plaintext,
                                     absl::string_view associated_data);
absl::StatusOr<std::string> AeadOpen(absl::string_view key, absl::string_view sealed,
                                     absl::string_view associated_data);

// Ed25519 (RFC 8032, pure, no context) with raw keys: a 32-byte private key seed, a 32-byte
// public key and 64-byte signatures. Signing is deterministic.
inline constexpr size_t kEd25519SeedSize = 32;
inline constexpr size_t kEd25519PublicKeySize = 32;
inline constexpr size_t kEd25519SignatureSize = 64;
// The public key of a 32-byte private key seed; INVALID_ARGUMENT for a seed of another length.
absl::StatusOr<std::string> Ed25519PublicKey(absl::string_view seed);
// The 64-byte signature of `message` under `seed`; INVALID_ARGUMENT for a seed of another
// length.
absl::StatusOr<std::string> Ed25519Sign(absl::string_view seed, absl::string_view message);
// Whether `signature` is a valid signature of `message` under `public_key`: false for keys or
// signatures of the wrong length or that are not valid encodings, never an error or a crash.
bool Ed25519Verify(absl::string_view public_key, absl::string_view message,
                   absl::string_view signature);

}  // namespace policy::crypto

#endif  // POLICY_COMMON_CRYPTO_CRYPTO_H_
