#ifndef POLICY_SERVICES_EDGE_PROTO_CONVERT_H_
#define POLICY_SERVICES_EDGE_PROTO_CONVERT_H_

#include <string>

#include "policy/audit/v1/audit.pb.h"
#include "policy/keys/v1/keys.pb.h"

// What the edge derives from one service's message to put in another's, or in its answer.
namespace policy::edge {

// A ledger entry's id for callers: "<project>/<environment>/<index>" ("//<index>" in the
// organisation's ledger).
std::string AuditIdOf(const audit::v1::Entry& entry);

// The ledger environment of a key's environment ("production", ...; "" when unspecified).
std::string EnvironmentName(keys::v1::Environment environment);

}  // namespace policy::edge

#endif  // POLICY_SERVICES_EDGE_PROTO_CONVERT_H_
