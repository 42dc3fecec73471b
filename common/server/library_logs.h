#ifndef POLICY_COMMON_SERVER_LIBRARY_LOGS_H_
#define POLICY_COMMON_SERVER_LIBRARY_LOGS_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace policy::server {

// Sends what Protobuf and gRPC log themselves through the process's structured log (one JSON
// object per line, common/log), with "source" ("protobuf" or "grpc") and "at" (their file and
// line), instead of their own plain-text lines on stderr. Callers can make these libraries
// log (a request whose string field is not UTF-8 makes Protobuf name the field), so each
// source writes at most `kLibraryLinesPerSecond` lines a second; the first line after a second
// that dropped some says how many ("dropped"). Process-wide; call once, before any thread.
void RouteLibraryLogs();

inline constexpr int kLibraryLinesPerSecond = 10;

// The budget of one source: at most kLibraryLinesPerSecond lines in each calendar second.
// Thread-safe.
class LineBudget {
 public:
  // Whether a line may be written at `now`; when it may, `dropped` is how many were refused
  // since the last line allowed.
  bool Take(absl::Time now, int64_t& dropped);

 private:
  absl::Mutex mu_;
  int64_t second_ ABSL_GUARDED_BY(mu_) = 0;
  int written_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace policy::server

#endif  // POLICY_COMMON_SERVER_LIBRARY_LOGS_H_
