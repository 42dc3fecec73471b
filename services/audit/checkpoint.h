#ifndef POLICY_SERVICES_AUDIT_CHECKPOINT_H_
#define POLICY_SERVICES_AUDIT_CHECKPOINT_H_

#include <cstdint>
#include <memory>
#include <string>

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

// Authenticates stored entries: HMAC-SHA-256 under a key derived from the checkpoint
// signing key (CheckpointSigner::DeriveKey(kEntryMacLabel)) over the entry's ledger, index
// and leaf hash. A row written by anyone but the audit service (a forged row, or one whose
// fields were changed and its hashes recomputed) carries no valid MAC, so the service refuses
// to sign a checkpoint over it and its Verify names it. Whoever holds only the public key
// cannot check MACs. Thread-safe.
inline constexpr absl::string_view kEntryMacLabel = "policy-suite audit entry mac v1";

class EntryAuthenticator {
 public:
  explicit EntryAuthenticator(absl::string_view key) : mac_(key) {}

  // The 32-byte MAC of `entry`'s ledger, index and leaf hash (the fields it holds as
  // stored: call after the index and leaf hash are set).
  std::string Mac(const Entry& entry) const;
  // Whether `entry.mac` is Mac(entry); false for an empty one.
  bool Check(const Entry& entry) const;

 private:
  crypto::HmacSha256 mac_;
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
  // HMAC-SHA-256(seed, label).
  std::string DeriveKey(absl::string_view label) const;

 private:
  CheckpointSigner(std::string seed, std::string public_key);
  std::string seed_;
  std::string public_key_;
  std::string key_id_;
};

}  // namespace policy::audit

#endif  // POLICY_SERVICES_AUDIT_CHECKPOINT_H_
