#include "services/edge/org_plan.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace policy::edge {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

PlannedProject Project(const char* id, Residency residency,
                       std::initializer_list<const char*> models) {
  return PlannedProject{
      .id = id, .residency = residency, .allowed_models = {models.begin(), models.end()}};
}

ListedEndpoint Endpoint(Residency residency, std::initializer_list<const char*> models,
                        bool enabled = true) {
  ListedEndpoint endpoint;
  endpoint.enabled = enabled;
  endpoint.residency = residency;
  endpoint.models = {models.begin(), models.end()};
  return endpoint;
}

ListedEndpoint WithPromises(ListedEndpoint endpoint, bool zdr, bool private_link, bool cached) {
  endpoint.promises = {.zero_data_retention = zdr, .private_link = private_link, .cached = cached};
  return endpoint;
}

TEST(UnservedModelsTest, ModelsServedWithinTheProjectsResidencyPass) {
  const std::vector<ListedEndpoint> endpoints = {Endpoint(Residency::kEu, {"gpt-4o"}),
                                                 Endpoint(Residency::kUs, {"o1", "gpt-4o"})};
  EXPECT_THAT(UnservedModels({Project("eu", Residency::kEu, {"gpt-4o"}),
                              Project("us", Residency::kUs, {"o1", "gpt-4o"}),
                              Project("any", Residency::kGlobal, {"o1", "gpt-4o"})},
                             endpoints),
              IsEmpty());
}

TEST(UnservedModelsTest, NamesEachModelNoEnabledEndpointOfTheResidencyServes) {
  const std::vector<ListedEndpoint> endpoints = {
      Endpoint(Residency::kEu, {"gpt-4o"}), Endpoint(Residency::kUs, {"o1"}),
      Endpoint(Residency::kEu, {"gpt-4.1"}, /*enabled=*/false)};
  EXPECT_THAT(
      UnservedModels({Project("eu", Residency::kEu, {"gpt-4o", "o1", "gpt-4.1"}),
                      Project("any", Residency::kGlobal, {"o1", "gpt-5"})},
                     endpoints),
      ElementsAre(
          "project 'eu': no enabled endpoint of residency eu serves model 'o1' (its decisions "
          "would be denied NO_COMPLIANT_REGION)",
          "project 'eu': no enabled endpoint of residency eu serves model 'gpt-4.1' (its "
          "decisions would be denied NO_COMPLIANT_REGION)",
          "project 'any': no enabled endpoint serves model 'gpt-5' (its decisions would "
          "be denied NO_COMPLIANT_REGION)"));
}

TEST(UnservedModelsTest, AResidencyThisEdgeDoesNotKnowIsServedByNoEndpoint) {
  PlannedProject unknown = Project("future", Residency::kEu, {"gpt-4o"});
  unknown.residency = std::nullopt;
  ListedEndpoint unknown_endpoint = Endpoint(Residency::kEu, {"gpt-4o"});
  unknown_endpoint.residency = std::nullopt;
  EXPECT_THAT(UnservedModels({unknown}, {Endpoint(Residency::kEu, {"gpt-4o"}), unknown_endpoint}),
              ElementsAre("project 'future': no enabled endpoint of residency unknown serves "
                          "model 'gpt-4o' (its decisions would be denied NO_COMPLIANT_REGION)"));
  // An endpoint of an unknown residency serves no project bound to one.
  EXPECT_THAT(UnservedModels({Project("eu", Residency::kEu, {"gpt-4o"})}, {unknown_endpoint}),
              ElementsAre("project 'eu': no enabled endpoint of residency eu serves model "
                          "'gpt-4o' (its decisions would be denied NO_COMPLIANT_REGION)"));
}

TEST(UnservedModelsTest, EndpointsThatMayNotTakeTheProjectsDataDoNotCount) {
  const Residency eu = Residency::kEu;
  const std::vector<ListedEndpoint> endpoints = {
      WithPromises(Endpoint(eu, {"gpt-4o"}), true, true, /*cached=*/true),
      WithPromises(Endpoint(eu, {"gpt-4o", "o1"}), true, /*private_link=*/false, false),
      WithPromises(Endpoint(eu, {"o1"}), /*zdr=*/false, true, false)};
  PlannedProject pii = Project("pii", eu, {"gpt-4o"});
  pii.data_class = DataClass::kPii;
  const PlannedProject internal = Project("internal", eu, {"gpt-4o", "o1"});
  PlannedProject kept_nowhere = Project("kept-nowhere", eu, {"gpt-4o", "o1"});
  kept_nowhere.zero_data_retention = true;
  PlannedProject open = Project("open", eu, {"gpt-4o"});
  open.data_class = DataClass::kPublic;
  EXPECT_THAT(UnservedModels({pii, internal, kept_nowhere, open}, endpoints),
              ElementsAre("project 'pii': no enabled endpoint of residency eu that may take its "
                          "data (pii) serves model 'gpt-4o' (its decisions would be denied "
                          "NO_COMPLIANT_REGION)"));
  // Without the endpoint that keeps nothing over no private link, the internal project keeps
  // o1 (an endpoint that keeps data, not cached) and the one keeping nothing has neither.
  EXPECT_THAT(UnservedModels({internal, kept_nowhere}, {endpoints[0], endpoints[2]}),
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
  PlannedProject archived = Project("old", Residency::kEu, {"gpt-5"});
  archived.archived = true;
  EXPECT_THAT(UnservedModels({archived}, {}), IsEmpty());
}

}  // namespace
}  // namespace policy::edge
