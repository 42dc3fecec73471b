#include "services/edge/proto_convert.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/data_class/data_class_proto.h"
#include "common/residency/residency_proto.h"

namespace policy::edge {

std::string AuditIdOf(const audit::v1::Entry& entry) {
  return absl::StrCat(entry.ledger().project(), "/", entry.ledger().environment(), "/",
                      entry.index());
}

std::string EnvironmentName(keys::v1::Environment e) {
  // The enum's own names, ENVIRONMENT_PRODUCTION and so on, lower-cased without the prefix.
  if (e == keys::v1::ENVIRONMENT_UNSPECIFIED || !keys::v1::Environment_IsValid(e)) return "";
  return absl::AsciiStrToLower(absl::StripPrefix(keys::v1::Environment_Name(e), "ENVIRONMENT_"));
}

std::vector<PlannedProject> PlannedProjects(
    const google::protobuf::RepeatedPtrField<authz::v1::Project>& projects) {
  std::vector<PlannedProject> planned;
  for (const authz::v1::Project& project : projects) {
    const authz::v1::DataPolicy& policy = project.data_policy();
    absl::StatusOr<Residency> residency =
        ResidencyFromProto(policy.residency(), Residency::kGlobal, "residency");
    planned.push_back(PlannedProject{
        .id = project.id(),
        .archived = project.archived(),
        .residency = residency.ok() ? std::optional<Residency>(*residency) : std::nullopt,
        .data_class = DataClassFromProto(policy.data_class(), DataClass::kInternal, "data_class")
                          .value_or(DataClass::kPhi),
        .zero_data_retention = policy.zero_data_retention(),
        .allowed_models = {project.allowed_models().begin(), project.allowed_models().end()}});
  }
  return planned;
}

std::vector<ListedEndpoint> ListedEndpoints(
    const google::protobuf::RepeatedPtrField<region::v1::Endpoint>& endpoints) {
  std::vector<ListedEndpoint> listed;
  for (const region::v1::Endpoint& endpoint : endpoints) {
    absl::StatusOr<Residency> residency =
        ResidencyFromProto(endpoint.residency(), Residency::kGlobal, "residency");
    listed.push_back(ListedEndpoint{
        .enabled = endpoint.enabled(),
        .residency = residency.ok() ? std::optional<Residency>(*residency) : std::nullopt,
        .models = {endpoint.models().begin(), endpoint.models().end()},
        .promises = PromisesFromProto(endpoint.capabilities())});
  }
  return listed;
}

}  // namespace policy::edge
