#ifndef POLICY_SERVICES_AUTHZ_PROTO_CONVERT_H_
#define POLICY_SERVICES_AUTHZ_PROTO_CONVERT_H_

#include <optional>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "policy/authz/v1/authz.pb.h"
#include "services/authz/authorizer.h"
#include "services/authz/org_admin.h"
#include "services/authz/org_state.h"

// The one place where policy.authz.v1 messages meet the domain types. Requests are checked
// here for what the wire allows but the domain does not (unknown roles, environments,
// malformed CIDRs and addresses): INVALID_ARGUMENT naming the field.
namespace policy::authz {

namespace pb = ::policy::authz::v1;

absl::StatusOr<AuthorizeRequest> FromProto(const pb::CheckRequest& request);
absl::StatusOr<CheckRequest> PrincipalFromProto(const pb::Principal& principal,
                                                absl::string_view project);
void ToProto(const Authorization& authorization, pb::CheckResponse* out);

absl::StatusOr<Project> FromProto(const pb::Project& project);
absl::StatusOr<std::vector<RoleGrant>> GrantsFromProto(
    const google::protobuf::RepeatedPtrField<pb::RoleGrant>& grants, absl::string_view field);
absl::StatusOr<Member> FromProto(const pb::Member& member);
// kIgnored for an update, which keeps the stored project and environment.
enum class EnvironmentField { kRequired, kIgnored };
absl::StatusOr<ServiceAccount> FromProto(const pb::ServiceAccount& account,
                                         EnvironmentField environment);

void ToProto(const Project& project, pb::Project* out);
// `state` supplies the member's group grants. With `only_project`, only the grants in that
// project and the organisation's roles are shown, own and group grants alike: what a caller
// who may read that project but not the whole organisation may see.
void ToProto(const Member& member, const OrgState& state, pb::Member* out,
             std::optional<absl::string_view> only_project = std::nullopt);
void ToProto(const ServiceAccount& account, pb::ServiceAccount* out);
void ToProto(const Invitation& invitation, absl::Time now, pb::Invitation* out);
void ToProto(const OrgPlan& plan, google::protobuf::RepeatedPtrField<pb::EntityChange>* out);
// The seed's policy document for `account` in `project`.
void PolicyDocument(const ServiceAccount& account, const Project& project,
                    pb::ServiceAccountPolicy* out);

}  // namespace policy::authz

#endif  // POLICY_SERVICES_AUTHZ_PROTO_CONVERT_H_
