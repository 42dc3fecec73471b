#ifndef POLICY_SERVICES_EDGE_ORG_PLAN_H_
#define POLICY_SERVICES_EDGE_ORG_PLAN_H_

#include <optional>
#include <string>
#include <vector>

#include "common/data_class/data_class.h"
#include "common/residency/residency.h"

// What the edge adds to authz's plan of an organisation file from what the other services
// know. Plain types: the admin service converts the wire messages.
namespace policy::edge {

// A project as the plan leaves it, with what its decisions need of an endpoint.
struct PlannedProject {
  std::string id;
  bool archived = false;  // Makes no decisions: not judged.
  // Where its data must stay; kGlobal: anywhere. nullopt: a residency this edge does not
  // know, which no endpoint satisfies.
  std::optional<Residency> residency = Residency::kGlobal;
  DataClass data_class = DataClass::kInternal;
  bool zero_data_retention = false;
  std::vector<std::string> allowed_models;
};

// An endpoint as the registry lists it.
struct ListedEndpoint {
  bool enabled = false;
  // Where it keeps and processes data; kGlobal: no promise. nullopt: a residency this edge
  // does not know, which serves no project bound to one.
  std::optional<Residency> residency = Residency::kGlobal;
  std::vector<std::string> models;
  EndpointPromises promises;
};

// The models that `projects` allow (those not archived) and that no enabled endpoint of the
// project's residency serves, or none that may take the project's data (its data class and zero
// data retention, as region routes them), in the projects' and their lists' order, as plan
// warnings: "project 'support': no enabled endpoint of residency eu serves model 'gpt-5' (its
// decisions would be denied NO_COMPLIANT_REGION)", "... no enabled endpoint of residency eu that
// may take its data (pii) serves ...". A prompt in which pii finds personal data may need more than
// its project's class.
std::vector<std::string> UnservedModels(const std::vector<PlannedProject>& projects,
                                        const std::vector<ListedEndpoint>& endpoints);

}  // namespace policy::edge

#endif  // POLICY_SERVICES_EDGE_ORG_PLAN_H_
