#include "services/edge/org_plan.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace policy::edge {
namespace {

bool Serves(const ListedEndpoint& endpoint, const std::string& model) {
  return std::find(endpoint.models.begin(), endpoint.models.end(), model) != endpoint.models.end();
}

}  // namespace

std::vector<std::string> UnservedModels(const std::vector<PlannedProject>& projects,
                                        const std::vector<ListedEndpoint>& endpoints) {
  std::vector<std::string> unserved;
  for (const PlannedProject& project : projects) {
    if (project.archived) continue;
    const bool anywhere = project.residency == Residency::kGlobal;
    const auto in_residency = [&](const ListedEndpoint& e) {
      return e.enabled && project.residency.has_value() &&
             (anywhere || e.residency == project.residency);
    };
    const auto takes_its_data = [&](const ListedEndpoint& e) {
      return MayReceive(project.data_class, e.promises) &&
             (!project.zero_data_retention || KeepsNothing(e.promises));
    };
    const std::string where =
        anywhere ? ""
                 : absl::StrCat(" of residency ", project.residency.has_value()
                                                      ? ResidencyName(*project.residency)
                                                      : "unknown");
    for (const std::string& model : project.allowed_models) {
      const auto serves = [&](const ListedEndpoint& e) {
        return in_residency(e) && Serves(e, model);
      };
      if (std::none_of(endpoints.begin(), endpoints.end(), serves)) {
        unserved.push_back(absl::StrCat("project '", project.id, "': no enabled endpoint", where,
                                        " serves model '", model,
                                        "' (its decisions would be denied NO_COMPLIANT_REGION)"));
      } else if (std::none_of(endpoints.begin(), endpoints.end(), [&](const ListedEndpoint& e) {
                   return serves(e) && takes_its_data(e);
                 })) {
        unserved.push_back(absl::StrCat(
            "project '", project.id, "': no enabled endpoint", where, " that may take its data (",
            DataClassName(project.data_class), project.zero_data_retention ? ", kept nowhere" : "",
            ") serves model '", model, "' (its decisions would be denied NO_COMPLIANT_REGION)"));
      }
    }
  }
  return unserved;
}

}  // namespace policy::edge
