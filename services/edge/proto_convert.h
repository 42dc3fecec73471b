#ifndef POLICY_SERVICES_EDGE_PROTO_CONVERT_H_
#define POLICY_SERVICES_EDGE_PROTO_CONVERT_H_

#include <string>
#include <vector>

#include "google/protobuf/repeated_ptr_field.h"
#include "policy/audit/v1/audit.pb.h"
#include "policy/authz/v1/authz.pb.h"
#include "policy/keys/v1/keys.pb.h"
#include "policy/region/v1/region.pb.h"
#include "services/edge/org_plan.h"

// What the edge derives from one service's message to put in another's, or in its answer.
namespace policy::edge {

// A ledger entry's id for callers: "<project>/<environment>/<index>" ("//<index>" in the
// organisation's ledger).
std::string AuditIdOf(const audit::v1::Entry& entry);

// The ledger environment of a key's environment ("production", ...; "" when unspecified).
std::string EnvironmentName(keys::v1::Environment environment);

// The projects a plan leaves, as UnservedModels reads them: a residency UNSPECIFIED is none
// required (kGlobal), one this edge does not know is nullopt, and a data class it does not
// know is the most sensitive (as the decision path takes it); UNSPECIFIED is internal.
std::vector<PlannedProject> PlannedProjects(
    const google::protobuf::RepeatedPtrField<authz::v1::Project>& projects);

// The registry's endpoints, as UnservedModels reads them (a residency this edge does not know
// is nullopt).
std::vector<ListedEndpoint> ListedEndpoints(
    const google::protobuf::RepeatedPtrField<region::v1::Endpoint>& endpoints);

}  // namespace policy::edge

#endif  // POLICY_SERVICES_EDGE_PROTO_CONVERT_H_
