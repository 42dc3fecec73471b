#ifndef POLICY_SERVICES_EDGE_ORG_PLAN_H_
#define POLICY_SERVICES_EDGE_ORG_PLAN_H_

#include <string>
#include <vector>

#include "google/protobuf/repeated_ptr_field.h"
#include "policy/authz/v1/authz.pb.h"
#include "policy/region/v1/region.pb.h"

// What the edge adds to authz's plan of an organisation file from what the other services
// know.
namespace policy::edge {

// The models that `projects` allow (those not archived) and that no enabled endpoint of the
// project's residency serves, or none that may take the project's data (its data class and
// zero data retention, as region routes them), in the projects' and their lists' order, as
// plan warnings: "project 'support': no enabled endpoint of residency eu serves model 'gpt-5'
// (its decisions would be denied NO_COMPLIANT_REGION)", "... no enabled endpoint of residency
// eu that may take its data (pii) serves ...". A prompt in which pii finds personal data may
// need more than its project's class.
std::vector<std::string> UnservedModels(
    const google::protobuf::RepeatedPtrField<authz::v1::Project>& projects,
    const google::protobuf::RepeatedPtrField<region::v1::Endpoint>& endpoints);

}  // namespace policy::edge

#endif  // POLICY_SERVICES_EDGE_ORG_PLAN_H_
