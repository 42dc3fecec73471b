#include "common/residency/residency_proto.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace policy {

absl::StatusOr<Residency> ResidencyFromProto(region::v1::Residency r, Residency unspecified,
                                             absl::string_view field) {
  switch (r) {
    case region::v1::RESIDENCY_UNSPECIFIED:
      return unspecified;
    case region::v1::RESIDENCY_EU:
      return Residency::kEu;
    case region::v1::RESIDENCY_US:
      return Residency::kUs;
    case region::v1::RESIDENCY_APAC:
      return Residency::kApac;
    case region::v1::RESIDENCY_GLOBAL:
      return Residency::kGlobal;
    default:
      return absl::InvalidArgumentError(absl::StrCat(field, ": unknown value ", r));
  }
}

absl::string_view ResidencyProtoName(region::v1::Residency r) {
  absl::StatusOr<Residency> residency = ResidencyFromProto(r, Residency::kGlobal, "residency");
  return residency.ok() ? ResidencyName(*residency) : "unknown";
}

region::v1::Residency ResidencyToProto(Residency r) {
  switch (r) {
    case Residency::kEu:
      return region::v1::RESIDENCY_EU;
    case Residency::kUs:
      return region::v1::RESIDENCY_US;
    case Residency::kApac:
      return region::v1::RESIDENCY_APAC;
    case Residency::kGlobal:
      return region::v1::RESIDENCY_GLOBAL;
  }
  return region::v1::RESIDENCY_UNSPECIFIED;
}

}  // namespace policy
