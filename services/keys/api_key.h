#ifndef POLICY_SERVICES_KEYS_API_KEY_H_
#define POLICY_SERVICES_KEYS_API_KEY_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/keys/key.h"

// The text form of a key's secret:
//
//   psk_proj_ 2bX9...(17)  Qm4a...(43)  Zp01k9(6)
//   prefix    key id       secret       checksum
//
// - prefix: names the kind (psk_proj_, psk_svc_, psk_admin_), so a leaked key is
//   recognisable and scanners can find it;
// - key id: 96 random bits in 17 base62 characters; the stable id is "key_" + these;
// - secret: 256 random bits from OpenSSL's CSPRNG in 43 base62 characters;
// - checksum: CRC-32C of everything before it, in 6 base62 characters, so typos and garbage
//   are rejected without a lookup.
// Base62 keeps the whole key one double-click-selectable word.
namespace policy::keys {

inline constexpr size_t kKeyIdChars = 17;
inline constexpr size_t kSecretChars = 43;
inline constexpr size_t kChecksumChars = 6;
// Longer input is refused before it is even looked at.
inline constexpr size_t kMaxSecretBytes = 256;

absl::string_view PrefixOf(KeyKind kind);

// A well-formed secret's parts, as views into the parsed text (which must outlive them).
struct ParsedSecret {
  KeyKind kind;
  absl::string_view id_part;      // The 17 key id characters.
  absl::string_view random_part;  // The 43 secret characters.

  std::string key_id() const;  // "key_" + id_part
};

// Checks the text form. INVALID_ARGUMENT naming the problem: empty, longer than
// kMaxSecretBytes, not UTF-8, unknown prefix, wrong length or alphabet, checksum mismatch.
absl::StatusOr<ParsedSecret> ParseSecret(absl::string_view text);

struct NewSecret {
  std::string key_id;
  std::string secret;
};

// A fresh key id and secret of `kind`; INTERNAL if the CSPRNG fails. What the store keeps
// is a keyed hash of ParseSecret(secret)->random_part: 43 characters fit one SHA-256 block, so
// the HMAC costs two compressions on the verification path.
absl::StatusOr<NewSecret> GenerateSecret(KeyKind kind);

// The prefix, an ellipsis and the last four characters: "psk_proj_...k9Qa".
std::string RedactSecret(absl::string_view secret);

// `text` with everything that looks like a secret (a key prefix and the base62 run after it;
// a base62 run of 32 or more characters without one) redacted as RedactSecret does, so that free
// text a caller supplies (a revocation reason: "leaked: psk_proj_...") never carries key material
// into the database, the ledger or logs.
std::string RedactSecretsIn(absl::string_view text);

}  // namespace policy::keys

#endif  // POLICY_SERVICES_KEYS_API_KEY_H_
