#include "common/server/blocking_pool.h"

#include <chrono>

namespace policy::server {

BlockingPool::BlockingPool(int threads, int max_queued, std::string full)
    : max_queued_(max_queued),
      full_(full.empty() ? "server is overloaded: too many requests waiting; retry later"
                         : std::move(full)) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
}

BlockingPool::~BlockingPool() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : threads_) t.join();
}

grpc::ServerUnaryReactor* BlockingPool::Run(grpc::CallbackServerContext* context,
                                            std::function<grpc::Status()> work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  RunFor(context, reactor, std::move(work));
  return reactor;
}

void BlockingPool::RunFor(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor,
                          std::function<grpc::Status()> work) {
  auto task = [context, reactor, work = std::move(work)] {
    if (context->IsCancelled()) {
      reactor->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled by the caller"));
      return;
    }
    if (context->deadline() < std::chrono::system_clock::now()) {
      reactor->Finish(
          grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "deadline passed while queued"));
      return;
    }
    reactor->Finish(work());
  };
  {
    absl::MutexLock lock(&mu_);
    if (queue_.size() < max_queued_ && !stopping_) {
      queue_.push_back(std::move(task));
      return;
    }
  }
  reactor->Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, full_));
}

void BlockingPool::Loop() {
  while (true) {
    std::function<void()> task;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !queue_.empty(); };
      mu_.Await(absl::Condition(&ready));
      if (queue_.empty()) return;
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

}  // namespace policy::server
