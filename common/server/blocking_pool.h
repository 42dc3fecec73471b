#ifndef POLICY_COMMON_SERVER_BLOCKING_POOL_H_
#define POLICY_COMMON_SERVER_BLOCKING_POOL_H_

#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"

namespace policy::server {

// The suite's server pattern: handlers run on gRPC's callback threads. A handler whose work
// is pure in-memory (a cache lookup, a scan) finishes its reactor inline; a handler that
// waits (PostgreSQL, another service) hands the work to a BlockingPool so the callback
// threads stay free for the fast path.
//
// A bounded queue protects the process: when it is full, calls fail at once with
// RESOURCE_EXHAUSTED. Work whose deadline passed or whose caller cancelled while queued is
// not started. Thread-safe.
// Finishes a call whose handler did its work inline, at once, with `status`.
inline grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context,
                                           grpc::Status status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(std::move(status));
  return reactor;
}

class BlockingPool {
 public:
  // `full`: the RESOURCE_EXHAUSTED message of a call refused for a full queue (by default
  // "server is overloaded: too many requests waiting; retry later").
  BlockingPool(int threads, int max_queued, std::string full = "");
  ~BlockingPool();  // Runs the queued work, then joins.
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;

  // Returns a reactor that finishes with `work`'s status once a pool thread has run it.
  grpc::ServerUnaryReactor* Run(grpc::CallbackServerContext* context,
                                std::function<grpc::Status()> work);
  // Run for a call whose handler has already returned `reactor` (its DefaultReactor), say
  // after an asynchronous step of its own: finishes it as Run does. Any thread.
  void RunFor(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor,
              std::function<grpc::Status()> work);

 private:
  void Loop();

  const size_t max_queued_;
  const std::string full_;
  absl::Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace policy::server

#endif  // POLICY_COMMON_SERVER_BLOCKING_POOL_H_
