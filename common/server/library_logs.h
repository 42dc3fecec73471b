#ifndef POLICY_COMMON_SERVER_LIBRARY_LOGS_H_
#define POLICY_COMMON_SERVER_LIBRARY_LOGS_H_

namespace policy::server {

// Sends what Protobuf and gRPC log themselves through the process's structured log (one JSON
// object per line, common/log), with "source" ("protobuf" or "grpc") and "at" (their file and
// line), instead of their own plain-text lines on stderr. Callers can make these libraries
// log (a request whose string field is not UTF-8 makes Protobuf name the field), so each
// source writes at most `kLibraryLinesPerSecond` lines a second; the first line after a second
// that dropped some says how many ("dropped"). Process-wide; call once, before any thread.
void RouteLibraryLogs();

inline constexpr int kLibraryLinesPerSecond = 10;

}  // namespace policy::server

#endif  // POLICY_COMMON_SERVER_LIBRARY_LOGS_H_
