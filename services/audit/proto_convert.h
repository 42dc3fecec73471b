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

// The page token for where an export of `subject` resumes, and its inverse
// (INVALID_ARGUMENT naming page_token for a token this service did not issue for `subject`).
std::string SubjectResumeToken(absl::string_view subject, const SubjectResume& resume);
absl::StatusOr<SubjectResume> SubjectResumeFromToken(absl::string_view token,
                                                     absl::string_view subject);

// The page token for where the query `spec` resumes and where it ends, bound to the query's
// ledger, action, actor and time range; and its inverse, which sets spec->after_index and
// spec->end_index (INVALID_ARGUMENT naming page_token for a token this service did not issue,
// or issued for another query).
std::string QueryPageToken(const QuerySpec& spec, uint64_t next_index, uint64_t end_index);
absl::Status ResumeQueryFromToken(absl::string_view token, QuerySpec* spec);

// One proto3-JSON line (no newline) and its inverse.
std::string ToJsonLine(const v1::Entry& entry);
absl::StatusOr<v1::Entry> EntryFromJsonLine(absl::string_view line);

}  // namespace policy::audit

#endif  // POLICY_SERVICES_AUDIT_PROTO_CONVERT_H_
