#include "common/data_class/data_class_proto.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace policy {

absl::StatusOr<DataClass> DataClassFromProto(pii::v1::DataClass c, DataClass unspecified,
                                             absl::string_view field) {
  switch (c) {
    case pii::v1::DATA_CLASS_UNSPECIFIED:
      return unspecified;
    case pii::v1::DATA_CLASS_PUBLIC:
      return DataClass::kPublic;
    case pii::v1::DATA_CLASS_INTERNAL:
      return DataClass::kInternal;
    case pii::v1::DATA_CLASS_PII:
      return DataClass::kPii;
    case pii::v1::DATA_CLASS_PHI:
      return DataClass::kPhi;
    default:
      return absl::InvalidArgumentError(absl::StrCat(field, ": unknown value ", c));
  }
}

pii::v1::DataClass DataClassToProto(DataClass c) {
  switch (c) {
    case DataClass::kPublic:
      return pii::v1::DATA_CLASS_PUBLIC;
    case DataClass::kInternal:
      return pii::v1::DATA_CLASS_INTERNAL;
    case DataClass::kPii:
      return pii::v1::DATA_CLASS_PII;
    case DataClass::kPhi:
      return pii::v1::DATA_CLASS_PHI;
  }
  return pii::v1::DATA_CLASS_UNSPECIFIED;
}

absl::string_view DataClassProtoName(pii::v1::DataClass c, DataClass unspecified) {
  absl::StatusOr<DataClass> data_class = DataClassFromProto(c, unspecified, "data_class");
  return data_class.ok() ? DataClassName(*data_class) : "unknown";
}

EndpointPromises PromisesFromProto(const region::v1::Capabilities& capabilities) {
  return {.zero_data_retention = capabilities.zero_data_retention(),
          .private_link = capabilities.private_link(),
          .cached = capabilities.cached()};
}

}  // namespace policy
