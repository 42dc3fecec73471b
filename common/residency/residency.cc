#include "common/residency/residency.h"

namespace policy {

absl::string_view ResidencyName(Residency r) {
  switch (r) {
    case Residency::kEu:
      return "eu";
    case Residency::kUs:
      return "us";
    case Residency::kApac:
      return "apac";
    case Residency::kGlobal:
      return "global";
  }
  return "unknown";
}

std::optional<Residency> ParseResidency(absl::string_view name) {
  for (Residency r : {Residency::kEu, Residency::kUs, Residency::kApac, Residency::kGlobal}) {
    if (ResidencyName(r) == name) return r;
  }
  return std::nullopt;
}

}  // namespace policy
