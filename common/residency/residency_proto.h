#ifndef POLICY_COMMON_RESIDENCY_RESIDENCY_PROTO_H_
#define POLICY_COMMON_RESIDENCY_RESIDENCY_PROTO_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/residency/residency.h"
#include "policy/region/v1/region.pb.h"

// policy.region.v1.Residency <-> Residency, for the translation layers that carry it.
namespace policy {

// The residency `r` names; INVALID_ARGUMENT "<field>: unknown value N" for a value outside the
// enum. RESIDENCY_UNSPECIFIED is `unspecified`: what "not given" means depends on the field.
absl::StatusOr<Residency> ResidencyFromProto(region::v1::Residency r, Residency unspecified,
                                             absl::string_view field);
region::v1::Residency ResidencyToProto(Residency r);
// "eu", "us", "apac" or "global" (UNSPECIFIED too: nothing required); "unknown" outside the
// enum.
absl::string_view ResidencyProtoName(region::v1::Residency r);

}  // namespace policy

#endif  // POLICY_COMMON_RESIDENCY_RESIDENCY_PROTO_H_
