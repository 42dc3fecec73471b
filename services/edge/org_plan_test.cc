#include "services/edge/org_plan.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace policy::edge {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

authz::v1::Project Project(const char* id, region::v1::Residency residency,
                           std::initializer_list<const char*> models) {
  authz::v1::Project project;
  project.set_id(id);
  project.mutable_data_policy()->set_residency(residency);
  for (const char* model : models) project.add_allowed_models(model);
  return project;
}

region::v1::Endpoint Endpoint(const char* id, region::v1::Residency residency,
                              std::initializer_list<const char*> models, bool enabled = true) {
  region::v1::Endpoint endpoint;
  endpoint.set_id(id);
  endpoint.set_residency(residency);
  for (const char* model : models) endpoint.add_models(model);
  endpoint.set_enabled(enabled);
  return endpoint;
}

region::v1::Endpoint WithPromises(region::v1::Endpoint endpoint, bool zdr, bool private_link,
                                  bool cached) {
  endpoint.mutable_capabilities()->set_zero_data_retention(zdr);
  endpoint.mutable_capabilities()->set_private_link(private_link);
  endpoint.mutable_capabilities()->set_cached(cached);
  return endpoint;
}

template <typename T>
google::protobuf::RepeatedPtrField<T> List(std::initializer_list<T> items) {
  google::protobuf::RepeatedPtrField<T> list;
  for (const T& item : items) *list.Add() = item;
  return list;
}

TEST(UnservedModelsTest, ModelsServedWithinTheProjectsResidencyPass) {
  const auto endpoints = List({Endpoint("westeurope", region::v1::RESIDENCY_EU, {"gpt-4o"}),
                               Endpoint("eastus", region::v1::RESIDENCY_US, {"o1", "gpt-4o"})});
  EXPECT_THAT(UnservedModels(List({Project("eu", region::v1::RESIDENCY_EU, {"gpt-4o"}),
                                   Project("us", region::v1::RESIDENCY_US, {"o1", "gpt-4o"}),
                                   Project("any", region::v1::RESIDENCY_GLOBAL, {"o1", "gpt-4o"}),
                                   Project("unstated", region::v1::RESIDENCY_UNSPECIFIED, {"o1"})}),
                             endpoints),
              IsEmpty());
}

TEST(UnservedModelsTest, NamesEachModelNoEnabledEndpointOfTheResidencyServes) {
  const auto endpoints =
      List({Endpoint("westeurope", region::v1::RESIDENCY_EU, {"gpt-4o"}),
            Endpoint("eastus", region::v1::RESIDENCY_US, {"o1"}),
            Endpoint("swedencentral", region::v1::RESIDENCY_EU, {"gpt-4.1"}, /*enabled=*/false)});
  EXPECT_THAT(
      UnservedModels(List({Project("eu", region::v1::RESIDENCY_EU, {"gpt-4o", "o1", "gpt-4.1"}),
                           Project("any", region::v1::RESIDENCY_GLOBAL, {"o1", "gpt-5"})}),
                     endpoints),
      ElementsAre(
          "project 'eu': no enabled endpoint of residency eu serves model 'o1' (its decisions "
          "would be denied NO_COMPLIANT_REGION)",
          "project 'eu': no enabled endpoint of residency eu serves model 'gpt-4.1' (its "
          "decisions would be denied NO_COMPLIANT_REGION)",
          "project 'any': no enabled endpoint serves model 'gpt-5' (its decisions would "
          "be denied NO_COMPLIANT_REGION)"));
}

TEST(UnservedModelsTest, EndpointsThatMayNotTakeTheProjectsDataDoNotCount) {
  const auto eu = region::v1::RESIDENCY_EU;
  const auto endpoints =
      List({WithPromises(Endpoint("public-cache", eu, {"gpt-4o"}), true, true, /*cached=*/true),
            WithPromises(Endpoint("no-link", eu, {"gpt-4o", "o1"}), true, false, false),
            WithPromises(Endpoint("keeps", eu, {"o1"}), /*zdr=*/false, true, false)});
  authz::v1::Project pii = Project("pii", eu, {"gpt-4o"});
  pii.mutable_data_policy()->set_data_class(pii::v1::DATA_CLASS_PII);
  authz::v1::Project internal = Project("internal", eu, {"gpt-4o", "o1"});
  authz::v1::Project kept_nowhere = Project("kept-nowhere", eu, {"gpt-4o", "o1"});
  kept_nowhere.mutable_data_policy()->set_zero_data_retention(true);
  authz::v1::Project open = Project("open", eu, {"gpt-4o"});
  open.mutable_data_policy()->set_data_class(pii::v1::DATA_CLASS_PUBLIC);
  EXPECT_THAT(UnservedModels(List({pii, internal, kept_nowhere, open}), endpoints),
              ElementsAre("project 'pii': no enabled endpoint of residency eu that may take its "
                          "data (pii) serves model 'gpt-4o' (its decisions would be denied "
                          "NO_COMPLIANT_REGION)"));
  // Without the endpoint that keeps nothing over no private link, the internal project keeps
  // o1 (an endpoint that keeps data, not cached) and the one keeping nothing has neither.
  const auto fewer = List({endpoints[0], endpoints[2]});
  EXPECT_THAT(UnservedModels(List({internal, kept_nowhere}), fewer),
              ElementsAre("project 'internal': no enabled endpoint of residency eu that may take "
                          "its data (internal) serves model 'gpt-4o' (its decisions would be "
                          "denied NO_COMPLIANT_REGION)",
                          "project 'kept-nowhere': no enabled endpoint of residency eu that may "
                          "take its data (internal, kept nowhere) serves model 'gpt-4o' (its "
                          "decisions would be denied NO_COMPLIANT_REGION)",
                          "project 'kept-nowhere': no enabled endpoint of residency eu that may "
                          "take its data (internal, kept nowhere) serves model 'o1' (its "
                          "decisions would be denied NO_COMPLIANT_REGION)"));
}

TEST(UnservedModelsTest, ArchivedProjectsAreNotJudged) {
  authz::v1::Project archived = Project("old", region::v1::RESIDENCY_EU, {"gpt-5"});
  archived.set_archived(true);
  EXPECT_THAT(UnservedModels(List({archived}), {}), IsEmpty());
}

}  // namespace
}  // namespace policy::edge
