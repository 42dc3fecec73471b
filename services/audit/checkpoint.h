#ifndef POLICY_SERVICES_AUDIT_CHECKPOINT_H_
#define POLICY_SERVICES_AUDIT_CHECKPOINT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
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

class CheckpointSigner {
 public:
  // INVALID_ARGUMENT unless `seed` is a 32-byte Ed25519 private key seed.
  static absl::StatusOr<std::unique_ptr<CheckpointSigner>> Create(absl::string_view seed);
  ~CheckpointSigner();

  absl::StatusOr<Checkpoint> Sign(const LedgerRef& ledger, uint64_t tree_size, const Hash& root,
                                  absl::Time time) const;
  const std::string& public_key() const { return public_key_; }
  const std::string& key_id() const { return key_id_; }

 private:
  CheckpointSigner(std::string seed, std::string public_key);
  std::string seed_;
  std::string public_key_;
  std::string key_id_;
};

}  // namespace policy::audit

#endif  // POLICY_SERVICES_AUDIT_CHECKPOINT_H_
