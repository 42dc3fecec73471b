#ifndef POLICY_SERVICES_KEYS_PEPPER_H_
#define POLICY_SERVICES_KEYS_PEPPER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/crypto/crypto.h"

namespace policy::keys {

// The keys derived from the server-side pepper, a secret that lives in configuration and
// never in the database: without it a stolen table yields neither secrets nor a way to test
// guesses against them. Thread-safe.
class Pepper {
 public:
  // INVALID_ARGUMENT unless `pepper` has at least 32 bytes.
  static absl::StatusOr<std::unique_ptr<Pepper>> Create(absl::string_view pepper);

  // What the store keeps of a secret's random part: HMAC-SHA-256 under the derived hashing
  // key.
  std::string HashSecret(absl::string_view secret) const { return hasher_->Mac(secret); }
  std::array<char, crypto::kSha256Size> HashSecretDigest(absl::string_view secret) const {
    return hasher_->MacDigest(secret);
  }

  // 32-byte AES-256-GCM key for sealing secrets kept for idempotent replay.
  const std::string& seal_key() const { return seal_key_; }

 private:
  Pepper(std::unique_ptr<crypto::HmacSha256> hasher, std::string seal_key)
      : hasher_(std::move(hasher)), seal_key_(std::move(seal_key)) {}
  std::unique_ptr<crypto::HmacSha256> hasher_;
  std::string seal_key_;
};

}  // namespace policy::keys

#endif  // POLICY_SERVICES_KEYS_PEPPER_H_
