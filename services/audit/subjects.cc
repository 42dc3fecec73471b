#include "services/audit/subjects.h"

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status/status.h"

namespace policy::audit {
namespace {

constexpr absl::string_view kLocatorLabel = "policy-suite/audit/subject-locator/v1:";
constexpr absl::string_view kRequestBindingLabel = "policy-suite/audit/request-binding/v1:";
constexpr absl::string_view kForgetRequestLabel = "policy-suite/audit/forget-request/v1:";
constexpr absl::string_view kWrapLabel = "policy-suite/audit/subject-key-wrap/v1";
// Neither this nor kWrapLabel begins with another label: no locator or binding equals them.
constexpr absl::string_view kEntryMacKeyLabel = "policy-suite/audit/entry-mac/v1";

}  // namespace

absl::StatusOr<std::unique_ptr<SubjectCipher>> SubjectCipher::Create(absl::string_view master_key) {
  if (master_key.size() != 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("the subject master key must be 32 bytes, not ", master_key.size()));
  }
  return std::unique_ptr<SubjectCipher>(new SubjectCipher(master_key));
}

SubjectCipher::SubjectCipher(absl::string_view master_key)
    : locator_mac_(master_key),
      wrapping_key_(crypto::HmacSha256(master_key).Mac(kWrapLabel)),
      entry_mac_key_(crypto::HmacSha256(master_key).Mac(kEntryMacKeyLabel)) {}

std::string SubjectCipher::EntryMacKey() const { return entry_mac_key_; }

std::string SubjectCipher::Locator(absl::string_view identifier) const {
  return locator_mac_.Mac(absl::StrCat(kLocatorLabel, identifier));
}

std::string SubjectCipher::RequestBinding(absl::string_view request_id,
                                          absl::string_view identifier) const {
  return absl::BytesToHexString(locator_mac_.Mac(
      absl::StrCat(kRequestBindingLabel, request_id.size(), ":", request_id, ":", identifier)));
}

std::string SubjectCipher::ForgetRequestId(absl::string_view request_id) const {
  return absl::StrCat(
      "forget:",
      absl::BytesToHexString(locator_mac_.Mac(absl::StrCat(kForgetRequestLabel, request_id)))
          .substr(0, 32));
}

absl::StatusOr<SubjectKey> SubjectCipher::NewKey(absl::string_view identifier) const {
  ASSIGN_OR_RETURN(std::string key, crypto::RandomBytes(32));
  SubjectKey stored{.locator = Locator(identifier),
                    .ref = Pseudonym(key, identifier),
                    .wrapped = "",
                    .forgotten_at = std::nullopt};
  ASSIGN_OR_RETURN(stored.wrapped, crypto::AeadSeal(wrapping_key_, key, stored.locator));
  return stored;
}

absl::StatusOr<std::string> SubjectCipher::UnwrapKey(const SubjectKey& key) const {
  return crypto::AeadOpen(wrapping_key_, key.wrapped, key.locator);
}

absl::StatusOr<std::string> SubjectCipher::UnwrapKeyOf(const SubjectKey& key,
                                                       absl::string_view identifier) const {
  const std::string locator = Locator(identifier);
  absl::StatusOr<std::string> subject_key = UnwrapKey(key);
  if (!crypto::ConstantTimeEquals(key.locator, locator) || !subject_key.ok() ||
      !crypto::ConstantTimeEquals(Pseudonym(*subject_key, identifier), key.ref)) {
    return absl::DataLossError(absl::StrCat(
        "the stored key of the subject with locator ", absl::BytesToHexString(key.locator),
        " does not belong to its pseudonym (audit.subject_keys was altered); "
        "refusing to read entries by it"));
  }
  return subject_key;
}

std::string SubjectCipher::Pseudonym(absl::string_view subject_key, absl::string_view identifier) {
  return crypto::HmacSha256(subject_key).Mac(identifier);
}

absl::StatusOr<SealedSubject> SubjectCipher::Seal(absl::string_view subject_key,
                                                  absl::string_view identifier) {
  SealedSubject subject;
  subject.ref = Pseudonym(subject_key, identifier);
  ASSIGN_OR_RETURN(subject.sealed, crypto::AeadSeal(subject_key, identifier, subject.ref));
  return subject;
}

absl::StatusOr<std::string> SubjectCipher::Open(absl::string_view subject_key,
                                                const SealedSubject& subject) {
  ASSIGN_OR_RETURN(std::string identifier,
                   crypto::AeadOpen(subject_key, subject.sealed, subject.ref));
  if (!crypto::ConstantTimeEquals(Pseudonym(subject_key, identifier), subject.ref)) {
    return absl::DataLossError("sealed identifier does not match its pseudonym");
  }
  return identifier;
}

}  // namespace policy::audit
