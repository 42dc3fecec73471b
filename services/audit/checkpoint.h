#ifndef POLICY_SERVICES_AUDIT_CHECKPOINT_H_
#define POLICY_SERVICES_AUDIT_CHECKPOINT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/crypto/crypto.h"
#include "services/audit/entry.h"
#include "services/audit/merkle.h"

// Signed tree heads. The signed text (the note) is
//
//   policy-suite audit checkpoint v1
//   ledger <project> <environment>      (each "-" when empty)
//   size <tree size>
//   root <64 hex digits>
//   time <unix microseconds>
//
// each line ending in '\n', signed with Ed25519. A verifier rebuilds the note from the
// fields it was given and checks the signature against the public key it trusts, so nothing
// the server says about a checkpoint needs to be believed.
namespace policy::audit {

struct Checkpoint {
  LedgerRef ledger;
  uint64_t tree_size = 0;
  Hash root{};
  absl::Time time;        // Whole microseconds.
  std::string signature;  // 64 bytes.
  std::string key_id;     // KeyIdOf the signing key's public key.
  bool operator==(const Checkpoint&) const = default;
};

std::string CheckpointNote(const Checkpoint& checkpoint);

// The first 16 hex digits of SHA-256(public key).
std::string KeyIdOf(absl::string_view public_key);

// True when the checkpoint's signature is valid for its note under `public_key`.
bool VerifyCheckpoint(const Checkpoint& checkpoint, absl::string_view public_key);

// The Ed25519 public keys whose checkpoints a verifier accepts: the current signing key
// first, then the earlier ones a rotation retired (AuditConfig::previous_public_keys). A
// checkpoint names its signer by key id (Checkpoint::key_id), which the signature does not
// cover: the signer is the trusted key whose signature it carries, whatever id it names.
// Immutable, thread-safe.
class CheckpointKeys {
 public:
  // At least one key (REQUIRES), each 32 bytes; the first is the current one. Repeated keys
  // count once.
  explicit CheckpointKeys(std::vector<std::string> public_keys);

  // `list`: public keys as 64 hex digits each, separated by commas, blanks around each
  // ignored; empty: none. INVALID_ARGUMENT naming `setting` and the bad entry otherwise.
  static absl::StatusOr<std::vector<std::string>> ParseHexList(absl::string_view list,
                                                               absl::string_view setting);

  // The key id of the trusted key whose valid signature `checkpoint` carries. Otherwise
  // UNAUTHENTICATED, its message continuing "the checkpoint of size N ..." (it names the
  // key id the checkpoint names, and the trusted ones).
  absl::StatusOr<std::string> SignerOf(const Checkpoint& checkpoint) const;

  // The current key's id (the first key's).
  const std::string& current_key_id() const { return keys_.front().id; }
  // Whether `key_id` is a trusted key's.
  bool Has(absl::string_view key_id) const;
  // The trusted keys' ids, the current one first.
  std::vector<std::string> key_ids() const;
  // The key ids, the current one first, as "id (current), id, ...".
  std::string Describe() const;

 private:
  // What a problem with `checkpoint`, naming an unknown key, adds: that a trusted key is that
  // key's private seed given as a public key, if one is; else that keys are public keys.
  std::string SeedHint(const Checkpoint& checkpoint) const;

  struct Key {
    std::string id;
    std::string public_key;
  };
  std::vector<Key> keys_;
};

// Authenticates stored entries: HMAC-SHA-256 under the entry MAC key over the entry's ledger,
// index and leaf hash. The key is derived from the subject master key
// (SubjectCipher::EntryMacKey), which no signing-key rotation changes; entries of earlier
// releases carry MACs under a key derived from the checkpoint signing key
// (CheckpointSigner::DeriveKey(kLegacyEntryMacLabel)), which Check accepts as `legacy_key`. A row
// written by anyone but the audit service (a forged row, or one whose fields were changed and
// its hashes recomputed) carries no valid MAC, so the service refuses to sign a checkpoint over
// it and its Verify names it. Whoever holds only the public key cannot check MACs.
// Thread-safe.
inline constexpr absl::string_view kLegacyEntryMacLabel = "policy-suite audit entry mac v1";

class EntryAuthenticator {
 public:
  // `legacy_key` empty: MACs under `key` only.
  explicit EntryAuthenticator(absl::string_view key, absl::string_view legacy_key = {});

  // The 32-byte MAC of `entry`'s ledger, index and leaf hash under the key (the fields it
  // holds as stored: call after the index and leaf hash are set).
  std::string Mac(const Entry& entry) const;
  // Whether `entry.mac` is its MAC under the key or the legacy key; false for an empty one.
  bool Check(const Entry& entry) const;

 private:
  crypto::HmacSha256 mac_;
  std::unique_ptr<crypto::HmacSha256> legacy_mac_;  // Null without a legacy key.
};

class CheckpointSigner {
 public:
  // INVALID_ARGUMENT unless `seed` is a 32-byte Ed25519 private key seed.
  static absl::StatusOr<std::unique_ptr<CheckpointSigner>> Create(absl::string_view seed);
  ~CheckpointSigner();

  absl::StatusOr<Checkpoint> Sign(const LedgerRef& ledger, uint64_t tree_size, const Hash& root,
                                  absl::Time time) const;
  const std::string& public_key() const { return public_key_; }
  const std::string& key_id() const { return key_id_; }
  // A 32-byte key for another use of the signing key, separated by `label`:
  // HMAC-SHA-256(seed, label). (Entries of earlier releases carry MACs under
  // DeriveKey(kLegacyEntryMacLabel); EntryAuthenticator's legacy key.)
  std::string DeriveKey(absl::string_view label) const;

 private:
  CheckpointSigner(std::string seed, std::string public_key);
  std::string seed_;
  std::string public_key_;
  std::string key_id_;
};

}  // namespace policy::audit

#endif  // POLICY_SERVICES_AUDIT_CHECKPOINT_H_
