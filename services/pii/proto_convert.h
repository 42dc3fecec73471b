#ifndef POLICY_SERVICES_PII_PROTO_CONVERT_H_
#define POLICY_SERVICES_PII_PROTO_CONVERT_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/data_class/data_class_proto.h"
#include "policy/pii/v1/pii.pb.h"
#include "services/pii/anonymizer.h"
#include "services/pii/detector.h"
#include "services/pii/pii_engine.h"

// The one place where policy.pii.v1 messages meet the engine's types. Unknown enum values and
// repeated entries are refused here with INVALID_ARGUMENT naming the field; whether an entity
// type exists is the engine's check.
namespace policy::pii {

namespace pb = ::policy::pii::v1;

absl::StatusOr<ScanOptions> FromProto(const pb::ScanOptions& options);
// The policy and project of a Redact or RedactDocument request; a refusal carries
// kReasonPolicyInvalid.
absl::StatusOr<RedactionParams> FromProto(const pb::RedactionPolicy& policy,
                                          absl::string_view project_id);
// INVALID_ARGUMENT naming the entry for a malformed mapping.
absl::StatusOr<PlaceholderMapping> FromProto(
    const google::protobuf::RepeatedPtrField<pb::PlaceholderEntry>& mapping);

pb::Action ToProto(Action action);
pb::Operator ToProto(Operator op);
void ToProto(const Finding& finding, uint32_t message_index, pb::Finding* out);
void ToProto(const ContentReport& report, pb::ContentReport* out);
void ToProto(const PlaceholderMapping& mapping,
             google::protobuf::RepeatedPtrField<pb::PlaceholderEntry>* out);
// What Redaction::found[text][i] became: its span in the output and what was done.
void ToProto(const Finding& found, const AppliedFinding& applied, uint32_t message_index,
             pb::Finding* out);

}  // namespace policy::pii

#endif  // POLICY_SERVICES_PII_PROTO_CONVERT_H_
