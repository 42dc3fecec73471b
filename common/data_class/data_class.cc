#include "common/data_class/data_class.h"

namespace policy {

absl::string_view DataClassName(DataClass c) {
  switch (c) {
    case DataClass::kPublic:
      return "public";
    case DataClass::kInternal:
      return "internal";
    case DataClass::kPii:
      return "pii";
    case DataClass::kPhi:
      return "phi";
  }
  return "unknown";
}

std::optional<DataClass> ParseDataClass(absl::string_view name) {
  for (DataClass c : {DataClass::kPublic, DataClass::kInternal, DataClass::kPii, DataClass::kPhi}) {
    if (DataClassName(c) == name) return c;
  }
  return std::nullopt;
}

bool MayReceive(DataClass c, const EndpointPromises& p) {
  switch (c) {
    case DataClass::kPhi:
    case DataClass::kPii:
      return p.zero_data_retention && p.private_link && !p.cached;
    case DataClass::kInternal:
      return !p.cached;
    case DataClass::kPublic:
      return true;
  }
  return false;
}

}  // namespace policy
