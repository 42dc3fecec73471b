#ifndef POLICY_COMMON_LEDGER_LEDGER_RECORD_H_
#define POLICY_COMMON_LEDGER_LEDGER_RECORD_H_

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace policy::ledger {

// One change a service made, on its way to the audit ledger: the fields of audit's
// EntryInput, without wire types. Never carries a secret.
struct LedgerRecord {
  // audit.v1.Action's name without its "ACTION_" prefix: "MEMBER_ADDED", "KEY_CREATED".
  std::string action;
  std::string actor;
  std::string project;      // Empty: the organisation's ledger.
  std::string environment;  // With a project: "production", "staging", ...
  std::string subject;
  // Names the change, so that delivering it twice records it once.
  std::string request_id;
  std::map<std::string, std::string> metadata;
  bool operator==(const LedgerRecord&) const = default;
};

// The first 32 hex digits of the SHA-256 of `text`: how records and request ids name what must
// not appear as it is (an invitation's id accepts it) or has any length and alphabet.
std::string ShortDigest(absl::string_view text);

// A fresh request id for a record: `prefix` and 128 random bits in hex. A store draws it
// when it writes the record, so the id stays the record's however often it is delivered.
absl::StatusOr<std::string> NewRequestId(absl::string_view prefix);

// The request id of the record of an entity's removal: "<service>:<kind>-removed:" and
// `removal`, the name the removal keeps for good (so that the record is one entry however often
// it is written, and a caller that orchestrates a removal across services can write the same
// record itself, to learn its entry at once). `removal` must reveal nothing the record does not
// show already: for a person, 128 random bits (NewRequestId("")) drawn when they are removed and
// kept with them, never a digest of their id, which anyone could test a guessed id against
// after the ledger forgot them.
std::string RemovalRequestId(absl::string_view service, absl::string_view kind,
                             absl::string_view removal);

// The metadata as one text (each key and value C-escaped, a tab between them, a line each),
// and back; for stores that keep a record in columns.
std::string EncodeMetadata(const std::map<std::string, std::string>& metadata);
absl::StatusOr<std::map<std::string, std::string>> DecodeMetadata(absl::string_view text);

}  // namespace policy::ledger

#endif  // POLICY_COMMON_LEDGER_LEDGER_RECORD_H_
