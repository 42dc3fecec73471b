#include "services/edge/org_plan.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/residency/residency_proto.h"

namespace policy::edge {

std::vector<std::string> UnservedModels(
    const google::protobuf::RepeatedPtrField<authz::v1::Project>& projects,
    const google::protobuf::RepeatedPtrField<region::v1::Endpoint>& endpoints) {
  std::vector<std::string> unserved;
  for (const authz::v1::Project& project : projects) {
    if (project.archived()) continue;
    const region::v1::Residency residency = project.data_policy().residency();
    const bool anywhere =
        residency == region::v1::RESIDENCY_UNSPECIFIED || residency == region::v1::RESIDENCY_GLOBAL;
    for (const std::string& model : project.allowed_models()) {
      const bool served =
          std::any_of(endpoints.begin(), endpoints.end(), [&](const region::v1::Endpoint& e) {
            return e.enabled() && (anywhere || e.residency() == residency) &&
                   std::find(e.models().begin(), e.models().end(), model) != e.models().end();
          });
      if (served) continue;
      unserved.push_back(absl::StrCat(
          "project '", project.id(), "': no enabled endpoint",
          anywhere ? "" : absl::StrCat(" of residency ", ResidencyProtoName(residency)),
          " serves model '", model, "' (its decisions would be denied NO_COMPLIANT_REGION)"));
    }
  }
  return unserved;
}

}  // namespace policy::edge
