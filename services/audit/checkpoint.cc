#include "services/audit/checkpoint.h"

#include <algorithm>
#include <array>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
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

CheckpointKeys::CheckpointKeys(std::vector<std::string> public_keys) {
  for (std::string& key : public_keys) {
    std::string id = KeyIdOf(key);
    if (std::any_of(keys_.begin(), keys_.end(), [&](const Key& k) { return k.id == id; })) {
      continue;
    }
    keys_.push_back(Key{std::move(id), std::move(key)});
  }
}

absl::StatusOr<std::vector<std::string>> CheckpointKeys::ParseHexList(absl::string_view list,
                                                                      absl::string_view setting) {
  std::vector<std::string> keys;
  if (absl::StripAsciiWhitespace(list).empty()) return keys;
  int position = 0;
  for (absl::string_view entry : absl::StrSplit(list, ',')) {
    ++position;
    entry = absl::StripAsciiWhitespace(entry);
    const bool hex = entry.size() == 64 && std::all_of(entry.begin(), entry.end(), [](char c) {
                       return absl::ascii_isxdigit(static_cast<unsigned char>(c));
                     });
    if (!hex) {
      // The entry is not shown: it may be a secret pasted into the wrong place.
      return absl::InvalidArgumentError(absl::StrCat(
          setting, ": entry ", position, " (", entry.size(),
          " characters, not shown) is not an Ed25519 public key of 64 hex digits; give the "
          "public keys (not private seeds) as 64 hex digits each, separated by commas"));
    }
    keys.push_back(absl::HexStringToBytes(entry));
  }
  return keys;
}

absl::StatusOr<std::string> CheckpointKeys::SignerOf(const Checkpoint& checkpoint) const {
  // The key the checkpoint names first: one signature check for a sound checkpoint.
  auto named = std::find_if(keys_.begin(), keys_.end(),
                            [&](const Key& k) { return k.id == checkpoint.key_id; });
  if (named != keys_.end() && VerifyCheckpoint(checkpoint, named->public_key)) return named->id;
  for (auto k = keys_.begin(); k != keys_.end(); ++k) {
    if (k != named && VerifyCheckpoint(checkpoint, k->public_key)) return k->id;
  }
  const std::string size = absl::StrCat("the checkpoint of size ", checkpoint.tree_size);
  if (checkpoint.key_id.empty()) {
    return absl::UnauthenticatedError(absl::StrCat(
        size, " names no signing key and does not carry a valid signature of a trusted key (",
        Describe(), ")"));
  }
  if (named == keys_.end()) {
    return absl::UnauthenticatedError(absl::StrCat(
        size, " does not carry a valid signature of a trusted key: it names signing key ",
        checkpoint.key_id, ", an unknown key (trusted: ", Describe(), ")", SeedHint(checkpoint)));
  }
  return absl::UnauthenticatedError(
      absl::StrCat(size, " does not carry a valid signature of key ", checkpoint.key_id,
                   ", the trusted key it names, nor of another trusted key (", Describe(), ")"));
}

std::string CheckpointKeys::SeedHint(const Checkpoint& checkpoint) const {
  for (const Key& k : keys_) {
    absl::StatusOr<std::string> derived = crypto::Ed25519PublicKey(k.public_key);
    if (derived.ok() && KeyIdOf(*derived) == checkpoint.key_id) {
      return absl::StrCat("; trusted key ", k.id, " is the private seed of key ", checkpoint.key_id,
                          ", not its public key: give its public key instead (the public_key "
                          "the audit service logs at start-up as \"checkpoint signing key\"), "
                          "and treat that seed as exposed");
    }
  }
  return "; the trusted keys (previous_public_keys, --public_key) are Ed25519 public keys of 64 "
         "hex digits, not private seeds: an audit service logs its key's public_key at start-up "
         "(\"checkpoint signing key\"), and the chart README shows how to derive one from a seed";
}

bool CheckpointKeys::Has(absl::string_view key_id) const {
  return std::any_of(keys_.begin(), keys_.end(), [&](const Key& k) { return k.id == key_id; });
}

std::vector<std::string> CheckpointKeys::key_ids() const {
  std::vector<std::string> ids;
  for (const Key& k : keys_) ids.push_back(k.id);
  return ids;
}

std::string CheckpointKeys::Describe() const {
  std::string out;
  for (const Key& k : keys_) {
    absl::StrAppend(&out, out.empty() ? "" : ", ", k.id, &k == &keys_.front() ? " (current)" : "");
  }
  return out;
}

namespace {

void AppendLengthPrefixed(std::string& out, absl::string_view bytes) {
  const uint32_t n = static_cast<uint32_t>(bytes.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(n >> shift));
  out.append(bytes.data(), bytes.size());
}

}  // namespace

EntryAuthenticator::EntryAuthenticator(absl::string_view key, absl::string_view legacy_key)
    : mac_(key),
      legacy_mac_(legacy_key.empty() ? nullptr : std::make_unique<crypto::HmacSha256>(legacy_key)) {
}

namespace {

// What EntryAuthenticator MACs: the entry's ledger, index and leaf hash.
std::string MacMessage(const Entry& entry) {
  std::string message;
  message.reserve(64 + entry.ledger.project.size() + entry.ledger.environment.size());
  AppendLengthPrefixed(message, entry.ledger.project);
  AppendLengthPrefixed(message, entry.ledger.environment);
  for (int shift = 56; shift >= 0; shift -= 8) {
    message.push_back(static_cast<char>(entry.index >> shift));
  }
  message.append(entry.leaf_hash.data(), entry.leaf_hash.size());
  return message;
}

bool TagIs(const crypto::HmacSha256& mac, absl::string_view message, absl::string_view tag) {
  const std::array<char, crypto::kSha256Size> expected = mac.MacDigest(message);
  return crypto::ConstantTimeEquals(tag, absl::string_view(expected.data(), expected.size()));
}

}  // namespace

std::string EntryAuthenticator::Mac(const Entry& entry) const {
  const std::array<char, crypto::kSha256Size> tag = mac_.MacDigest(MacMessage(entry));
  return std::string(tag.data(), tag.size());
}

bool EntryAuthenticator::Check(const Entry& entry) const {
  if (entry.mac.size() != crypto::kSha256Size) return false;
  const std::string message = MacMessage(entry);
  return TagIs(mac_, message, entry.mac) ||
         (legacy_mac_ != nullptr && TagIs(*legacy_mac_, message, entry.mac));
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
