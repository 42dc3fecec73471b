#ifndef POLICY_SERVICES_AUDIT_SUBJECTS_H_
#define POLICY_SERVICES_AUDIT_SUBJECTS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/crypto/crypto.h"
#include "services/audit/entry.h"
#include "services/audit/ledger_store.h"

// Pseudonyms for subject identifiers (members' e-mails, service account ids), so that a
// subject can be forgotten by destroying one key (crypto-shredding).
//
// Each subject has a random 32-byte key. The store finds it by the subject's locator,
// HMAC-SHA-256(master key, identifier), and keeps it wrapped (AES-256-GCM under the master
// key, the locator as associated data): neither the identifier nor the key is ever stored in
// plain text. An entry holds the pseudonym HMAC-SHA-256(subject key, identifier), the same for
// every entry of the subject while the key lives, and the identifier sealed under the subject
// key. Once the key is destroyed the pseudonym links the entries to each other but to no one,
// and the sealed identifier cannot be opened; the leaf hashes cover the stored forms, so the
// ledger still verifies.
namespace policy::audit {

class SubjectCipher {
 public:
  // INVALID_ARGUMENT unless `master_key` is 32 bytes.
  static absl::StatusOr<std::unique_ptr<SubjectCipher>> Create(absl::string_view master_key);

  std::string Locator(absl::string_view identifier) const;

  // HMAC-SHA-256 under the master key of a request id and a subject identifier, in hex, as
  // subject_forgotten records of earlier releases hold it (ledger.cc checks them; new records
  // do not carry it, as the master key's holder could test guesses of the subject).
  std::string RequestBinding(absl::string_view request_id, absl::string_view identifier) const;

  // The request id a subject_forgotten record keeps for a caller's `request_id`: "forget:" and
  // the first 32 hex digits of an HMAC-SHA-256 under the master key. The caller's id may name
  // the subject ("erase-carol"); the record, which outlives the subject's key, must not.
  std::string ForgetRequestId(absl::string_view request_id) const;

  // The 32-byte key of the entries' MACs (EntryAuthenticator): derived from the master key,
  // which outlives any rotation of the checkpoint signing key.
  std::string EntryMacKey() const;

  // A fresh key for the subject `identifier`, as stored (ledger_store.h).
  absl::StatusOr<SubjectKey> NewKey(absl::string_view identifier) const;
  // The key itself; DATA_LOSS when `key` was not made by this master key.
  absl::StatusOr<std::string> UnwrapKey(const SubjectKey& key) const;
  // The key of the subject `identifier` whose stored row `key` is: DATA_LOSS, naming the
  // row's locator (in hex; never the identifier), when it was not made by this master key
  // for this identifier, or its pseudonym (`key.ref`, which the wrapping does not cover) is
  // not the one the key and the identifier give: a row whose ref was changed must not lead
  // to another subject's entries.
  absl::StatusOr<std::string> UnwrapKeyOf(const SubjectKey& key,
                                          absl::string_view identifier) const;

  static std::string Pseudonym(absl::string_view subject_key, absl::string_view identifier);
  static absl::StatusOr<SealedSubject> Seal(absl::string_view subject_key,
                                            absl::string_view identifier);
  // The identifier, or DATA_LOSS when `sealed` is not `subject`'s under this key.
  static absl::StatusOr<std::string> Open(absl::string_view subject_key,
                                          const SealedSubject& subject);

 private:
  explicit SubjectCipher(absl::string_view master_key);
  crypto::HmacSha256 locator_mac_;
  std::string wrapping_key_;
  std::string entry_mac_key_;
};

}  // namespace policy::audit

#endif  // POLICY_SERVICES_AUDIT_SUBJECTS_H_
