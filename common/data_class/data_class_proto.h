#ifndef POLICY_COMMON_DATA_CLASS_DATA_CLASS_PROTO_H_
#define POLICY_COMMON_DATA_CLASS_DATA_CLASS_PROTO_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/data_class/data_class.h"
#include "policy/pii/v1/pii.pb.h"
#include "policy/region/v1/region.pb.h"

// policy.pii.v1.DataClass <-> DataClass, and an endpoint's policy.region.v1.Capabilities as
// EndpointPromises, for the translation layers that carry them.
namespace policy {

// The class `c` names; INVALID_ARGUMENT "<field>: unknown value N" for a value outside the
// enum. DATA_CLASS_UNSPECIFIED is `unspecified`: what "not given" means depends on the field.
absl::StatusOr<DataClass> DataClassFromProto(pii::v1::DataClass c, DataClass unspecified,
                                             absl::string_view field);
pii::v1::DataClass DataClassToProto(DataClass c);
// "pii" for DATA_CLASS_PII, `unspecified`'s name for DATA_CLASS_UNSPECIFIED, "unknown" for a
// value outside the enum.
absl::string_view DataClassProtoName(pii::v1::DataClass c, DataClass unspecified);

// What an endpoint's capabilities promise of the data sent to it.
EndpointPromises PromisesFromProto(const region::v1::Capabilities& capabilities);

}  // namespace policy

#endif  // POLICY_COMMON_DATA_CLASS_DATA_CLASS_PROTO_H_
