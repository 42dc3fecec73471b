#include "services/edge/org_plan.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/data_class/data_class.h"
#include "common/data_class/data_class_proto.h"
#include "common/residency/residency_proto.h"

namespace policy::edge {
namespace {

bool Serves(const region::v1::Endpoint& endpoint, const std::string& model) {
  return std::find(endpoint.models().begin(), endpoint.models().end(), model) !=
         endpoint.models().end();
}

}  // namespace

std::vector<std::string> UnservedModels(
    const google::protobuf::RepeatedPtrField<authz::v1::Project>& projects,
    const google::protobuf::RepeatedPtrField<region::v1::Endpoint>& endpoints) {
  std::vector<std::string> unserved;
  for (const authz::v1::Project& project : projects) {
    if (project.archived()) continue;
    const authz::v1::DataPolicy& policy = project.data_policy();
    const region::v1::Residency residency = policy.residency();
    const bool anywhere =
        residency == region::v1::RESIDENCY_UNSPECIFIED || residency == region::v1::RESIDENCY_GLOBAL;
    // An unknown class as the decision path takes it: the most sensitive.
    const DataClass data_class =
        DataClassFromProto(policy.data_class(), DataClass::kInternal, "data_class")
            .value_or(DataClass::kPhi);
    const auto in_residency = [&](const region::v1::Endpoint& e) {
      return e.enabled() && (anywhere || e.residency() == residency);
    };
    const auto takes_its_data = [&](const region::v1::Endpoint& e) {
      const EndpointPromises promises = PromisesFromProto(e.capabilities());
      return MayReceive(data_class, promises) &&
             (!policy.zero_data_retention() || KeepsNothing(promises));
    };
    const std::string where =
        anywhere ? "" : absl::StrCat(" of residency ", ResidencyProtoName(residency));
    for (const std::string& model : project.allowed_models()) {
      const auto serves = [&](const region::v1::Endpoint& e) {
        return in_residency(e) && Serves(e, model);
      };
      if (std::none_of(endpoints.begin(), endpoints.end(), serves)) {
        unserved.push_back(absl::StrCat("project '", project.id(), "': no enabled endpoint", where,
                                        " serves model '", model,
                                        "' (its decisions would be denied NO_COMPLIANT_REGION)"));
      } else if (std::none_of(endpoints.begin(), endpoints.end(),
                              [&](const region::v1::Endpoint& e) {
                                return serves(e) && takes_its_data(e);
                              })) {
        unserved.push_back(absl::StrCat(
            "project '", project.id(), "': no enabled endpoint", where, " that may take its data (",
            DataClassName(data_class), policy.zero_data_retention() ? ", kept nowhere" : "",
            ") serves model '", model, "' (its decisions would be denied NO_COMPLIANT_REGION)"));
      }
    }
  }
  return unserved;
}

}  // namespace policy::edge
