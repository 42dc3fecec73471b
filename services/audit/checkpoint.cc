#include "services/audit/checkpoint.h"

#include <array>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/crypto.h"
#include "common/status/status.h"

namespace policy::audit {
namespace {

absl::string_view OrDash(const std::string& s) {
  return s.empty() ? absl::string_view("-") : absl::string_view(s);
}

}  // namespace

std::string CheckpointNote(const Checkpoint& c) {
  return absl::StrCat("policy-suite audit checkpoint v1\nledger ", OrDash(c.ledger.project), " ",
                      OrDash(c.ledger.environment), "\nsize ", c.tree_size, "\nroot ",
                      absl::BytesToHexString(AsBytes(c.root)), "\ntime ",
                      absl::ToUnixMicros(c.time), "\n");
}

std::string KeyIdOf(absl::string_view public_key) {
  return absl::BytesToHexString(crypto::Sha256(public_key)).substr(0, 16);
}

bool VerifyCheckpoint(const Checkpoint& checkpoint, absl::string_view public_key) {
  return crypto::Ed25519Verify(public_key, CheckpointNote(checkpoint), checkpoint.signature);
}

namespace {

void AppendLengthPrefixed(std::string& out, absl::string_view bytes) {
  const uint32_t n = static_cast<uint32_t>(bytes.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(n >> shift));
  out.append(bytes.data(), bytes.size());
}

}  // namespace

std::string EntryAuthenticator::Mac(const Entry& entry) const {
  std::string message;
  message.reserve(64 + entry.ledger.project.size() + entry.ledger.environment.size());
  AppendLengthPrefixed(message, entry.ledger.project);
  AppendLengthPrefixed(message, entry.ledger.environment);
  for (int shift = 56; shift >= 0; shift -= 8) {
    message.push_back(static_cast<char>(entry.index >> shift));
  }
  message.append(entry.leaf_hash.data(), entry.leaf_hash.size());
  const std::array<char, crypto::kSha256Size> tag = mac_.MacDigest(message);
  return std::string(tag.data(), tag.size());
}

bool EntryAuthenticator::Check(const Entry& entry) const {
  return entry.mac.size() == crypto::kSha256Size &&
         crypto::ConstantTimeEquals(entry.mac, Mac(entry));
}

std::string CheckpointSigner::DeriveKey(absl::string_view label) const {
  return crypto::HmacSha256(seed_).Mac(label);
}

absl::StatusOr<std::unique_ptr<CheckpointSigner>> CheckpointSigner::Create(absl::string_view seed) {
  ASSIGN_OR_RETURN(std::string public_key, crypto::Ed25519PublicKey(seed));
  return std::unique_ptr<CheckpointSigner>(
      new CheckpointSigner(std::string(seed), std::move(public_key)));
}

CheckpointSigner::CheckpointSigner(std::string seed, std::string public_key)
    : seed_(std::move(seed)), public_key_(std::move(public_key)), key_id_(KeyIdOf(public_key_)) {}

CheckpointSigner::~CheckpointSigner() {
  // The seed is a secret: do not leave it in freed memory.
  std::fill(seed_.begin(), seed_.end(), '\0');
}

absl::StatusOr<Checkpoint> CheckpointSigner::Sign(const LedgerRef& ledger, uint64_t tree_size,
                                                  const Hash& root, absl::Time time) const {
  Checkpoint c{.ledger = ledger,
               .tree_size = tree_size,
               .root = root,
               .time = absl::FromUnixMicros(absl::ToUnixMicros(time)),
               .signature = "",
               .key_id = key_id_};
  ASSIGN_OR_RETURN(c.signature, crypto::Ed25519Sign(seed_, CheckpointNote(c)));
  return c;
}

}  // namespace policy::audit
