#ifndef POLICY_SERVICES_EDGE_EXT_AUTHZ_CONVERT_H_
#define POLICY_SERVICES_EDGE_EXT_AUTHZ_CONVERT_H_

#include <string>

#include "absl/status/status.h"
#include "envoy/service/auth/v3/external_auth.pb.h"
#include "grpcpp/support/status.h"
#include "policy/edge/v1/edge.pb.h"

// Envoy's ext_authz check as a Decide, and a decision as Envoy's answer.
namespace policy::edge {

// The API key of an HTTP request Envoy forwards: "authorization: Bearer <key>", else
// "x-api-key", else Azure's "api-key"; empty when it carries none. Reads the headers only
// (`headers`, or `header_map` when Envoy sends that instead), never the body.
std::string ApiKeyFromCheck(const envoy::service::auth::v3::CheckRequest& check);

// Reads from an HTTP request Envoy forwards (the filter needs with_request_body):
//  - the API key: "authorization: Bearer <key>", or "x-api-key", or "api-key";
//  - the source IP: the downstream peer's socket address;
//  - the model API: POST to OpenAI's "/v1/<api>" or Azure's "/openai/deployments/<name>/<api>"
//    or "/openai/v1/<api>", <api> chat/completions, completions, embeddings, moderations,
//    images/generations or audio/speech, exactly;
//  - the OpenAI-style JSON body, nested at most 32 deep and of at most 100,000 values:
//    "model" (on Azure's deployment paths the deployment's name, which the body may leave out
//    and may not contradict), "messages" (role, and
//    content as a string or as text parts), "max_completion_tokens" or "max_tokens" (default
//    256); every other string in the body (and the keys of objects nested in it) becomes one
//    more message, role "body", so that what Envoy forwards unchanged is checked for personal data
//    throughout;
//  - "x-policy-residency": eu, us, apac or global (absent: none required);
//  - the whole body: a body Envoy cut short ("x-envoy-auth-partial-body: true") is refused.
// Headers come from `headers`, or from `header_map` when Envoy sends that instead.
// Each check is a call of its own, charged and recorded as such: the decision's request id is
// the edge's, never the client's "x-request-id" (which a client may repeat at will).
// The estimated tokens are the completion's limit plus a quarter of the prompt's bytes.
// INVALID_ARGUMENT naming what is wrong with the body or a header. `body_read` (optional) says
// whether the body was read (the method, path and headers passed, and there is one): what
// refusing it cost is the caller's doing.
absl::Status DecideRequestFromCheck(const envoy::service::auth::v3::CheckRequest& check,
                                    v1::DecideRequest* decide, bool* body_read = nullptr);

// Envoy's answer to a check whose Decide ended with `status` (and `decision` when OK):
// ALLOW: OK with the decision's headers and the endpoint to add upstream (overwriting any the
// client sent) and the client's credentials removed (authorization, x-api-key, api-key); DENY: 429
// with retry-after for rate limits, 403 otherwise, with a JSON body naming the reason and the audit
// id; a key that does not verify: 401; the caller's bad input: 400; a caller refused as it calls
// (its stated address from a peer that is not a trusted proxy): 403; a conflict with what is
// recorded: 409; a key refused at the door (RESOURCE_EXHAUSTED: too many of its requests denied,
// see FlowOptions::denial_budget): 429 with retry-after from the status's RetryInfo and a JSON body
// naming its ErrorInfo reason. Any other status is the check failing: it is returned, to end the
// RPC with, and `check` is left empty.
grpc::Status ToCheckResponse(const grpc::Status& status, const v1::DecideResponse& decision,
                             envoy::service::auth::v3::CheckResponse* check);

}  // namespace policy::edge

#endif  // POLICY_SERVICES_EDGE_EXT_AUTHZ_CONVERT_H_
