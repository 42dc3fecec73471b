#include "services/edge/proto_convert.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace policy::edge {
namespace {

using ::testing::ElementsAre;

TEST(PlannedProjectsTest, ReadTheDataPolicyAsTheDecisionPathDoes) {
  google::protobuf::RepeatedPtrField<authz::v1::Project> projects;
  authz::v1::Project* unstated = projects.Add();
  unstated->set_id("unstated");
  unstated->add_allowed_models("gpt-4o");
  authz::v1::Project* eu = projects.Add();
  eu->set_id("eu");
  eu->set_archived(true);
  eu->mutable_data_policy()->set_residency(region::v1::RESIDENCY_EU);
  eu->mutable_data_policy()->set_data_class(pii::v1::DATA_CLASS_PII);
  eu->mutable_data_policy()->set_zero_data_retention(true);
  authz::v1::Project* future = projects.Add();
  future->set_id("future");
  future->mutable_data_policy()->set_residency(static_cast<region::v1::Residency>(99));
  future->mutable_data_policy()->set_data_class(static_cast<pii::v1::DataClass>(99));

  const std::vector<PlannedProject> planned = PlannedProjects(projects);
  ASSERT_EQ(planned.size(), 3u);
  EXPECT_EQ(planned[0].id, "unstated");
  EXPECT_EQ(planned[0].residency, Residency::kGlobal);  // None required.
  EXPECT_EQ(planned[0].data_class, DataClass::kInternal);
  EXPECT_FALSE(planned[0].archived);
  EXPECT_THAT(planned[0].allowed_models, ElementsAre("gpt-4o"));
  EXPECT_EQ(planned[1].residency, Residency::kEu);
  EXPECT_EQ(planned[1].data_class, DataClass::kPii);
  EXPECT_TRUE(planned[1].archived);
  EXPECT_TRUE(planned[1].zero_data_retention);
  EXPECT_EQ(planned[2].residency, std::nullopt);      // Unknown: served by no endpoint.
  EXPECT_EQ(planned[2].data_class, DataClass::kPhi);  // Unknown: the most sensitive.
}

TEST(ListedEndpointsTest, CarryResidencyModelsAndPromises) {
  google::protobuf::RepeatedPtrField<region::v1::Endpoint> endpoints;
  region::v1::Endpoint* eu = endpoints.Add();
  eu->set_enabled(true);
  eu->set_residency(region::v1::RESIDENCY_EU);
  eu->add_models("gpt-4o");
  eu->mutable_capabilities()->set_zero_data_retention(true);
  eu->mutable_capabilities()->set_private_link(true);
  region::v1::Endpoint* future = endpoints.Add();
  future->set_residency(static_cast<region::v1::Residency>(99));

  const std::vector<ListedEndpoint> listed = ListedEndpoints(endpoints);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_TRUE(listed[0].enabled);
  EXPECT_EQ(listed[0].residency, Residency::kEu);
  EXPECT_THAT(listed[0].models, ElementsAre("gpt-4o"));
  EXPECT_TRUE(KeepsNothing(listed[0].promises));
  EXPECT_TRUE(listed[0].promises.private_link);
  EXPECT_FALSE(listed[1].enabled);
  EXPECT_EQ(listed[1].residency, std::nullopt);
}

}  // namespace
}  // namespace policy::edge
