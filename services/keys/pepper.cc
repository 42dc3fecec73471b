#include "services/keys/pepper.h"

#include "absl/status/status.h"

namespace policy::keys {

absl::StatusOr<std::unique_ptr<Pepper>> Pepper::Create(absl::string_view pepper) {
  if (pepper.size() < 32) {
    return absl::InvalidArgumentError(
        "pepper must be at least 32 bytes (try: openssl rand -hex 32)");
  }
  crypto::HmacSha256 root(pepper);
  auto hasher = std::make_unique<crypto::HmacSha256>(root.Mac("policy-suite/keys/secret-hash/v1"));
  std::string seal_key = root.Mac("policy-suite/keys/replay-seal/v1");
  return std::unique_ptr<Pepper>(new Pepper(std::move(hasher), std::move(seal_key)));
}

}  // namespace policy::keys
