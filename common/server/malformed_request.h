#ifndef POLICY_COMMON_SERVER_MALFORMED_REQUEST_H_
#define POLICY_COMMON_SERVER_MALFORMED_REQUEST_H_

#include <memory>

#include "grpcpp/support/server_interceptor.h"

namespace policy::server {

// A server interceptor that answers a request gRPC could not parse as the method's request
// message (bytes that are not that message, or a proto3 `string` field holding invalid UTF-8)
// with INVALID_ARGUMENT naming the message expected:
//   "request is not a valid policy.keys.v1.GetKeyRequest: malformed protobuf, or a string
//    field that is not UTF-8"
// where gRPC itself answers UNIMPLEMENTED with no message (callback API) or INTERNAL (sync
// API). Unary and server-streaming methods, whose one request gRPC parses before the handler
// runs; in a client or bidirectional stream gRPC reports a message it cannot parse to the
// handler as the end of the stream, which an interceptor cannot tell apart. Must come first
// among the server's interceptors, so that the others see the status it sets.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MalformedRequestInterceptorFactory();

}  // namespace policy::server

#endif  // POLICY_COMMON_SERVER_MALFORMED_REQUEST_H_
