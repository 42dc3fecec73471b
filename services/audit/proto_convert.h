#ifndef POLICY_SERVICES_AUDIT_PROTO_CONVERT_H_
#define POLICY_SERVICES_AUDIT_PROTO_CONVERT_H_

#include <optional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "policy/audit/v1/audit.pb.h"
#include "services/audit/checkpoint.h"
#include "services/audit/entry.h"
#include "services/audit/ledger.h"
#include "services/audit/ledger_store.h"
#include "services/audit/verifier.h"

// policy.audit.v1 <-> the audit domain. Shared by the service and tools/audit_verify.
namespace policy::audit {

// INVALID_ARGUMENT naming the field for an unknown action or outcome, a bad latency.
absl::StatusOr<EntryInput> FromProto(const v1::EntryInput& in);
LedgerRef FromProto(const v1::LedgerRef& in);
void ToProto(const LedgerRef& ledger, v1::LedgerRef* out);
void ToProto(const RevealedEntry& entry, v1::Entry* out);
void ToProto(const Checkpoint& checkpoint, v1::Checkpoint* out);
void ToProto(const IntegrityReport& report, v1::IntegrityReport* out);

// The stored entry (every field the leaf hash covers, and the stored hashes) of a v1::Entry,
// as the verifier reads exports; DATA_LOSS naming the field for malformed values.
absl::StatusOr<Entry> EntryFromProto(const v1::Entry& in);
absl::StatusOr<Checkpoint> CheckpointFromProto(const v1::Checkpoint& in);

// A page token for where a subject's export resumes, and its inverse (none for a token this
// service did not issue). A token without the export's end (issued before it was kept)
// resumes with none.
std::string SubjectResumeToken(const SubjectResume& resume);
std::optional<SubjectResume> SubjectResumeFromToken(absl::string_view token);

// A page token for where a query resumes and where it ends ("<next>.<end>"), and its
// inverse (none for a token this service did not issue). A token of the next index alone
// (issued before the end was kept) resumes with no end.
std::string QueryPageToken(uint64_t next_index, uint64_t end_index);
std::optional<std::pair<uint64_t, std::optional<uint64_t>>> QueryPageFromToken(
    absl::string_view token);

// One proto3-JSON line (no newline) and its inverse.
std::string ToJsonLine(const v1::Entry& entry);
absl::StatusOr<v1::Entry> EntryFromJsonLine(absl::string_view line);

}  // namespace policy::audit

#endif  // POLICY_SERVICES_AUDIT_PROTO_CONVERT_H_
