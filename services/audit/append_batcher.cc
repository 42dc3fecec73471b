#include "services/audit/append_batcher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace policy::audit {

AppendBatcher::AppendBatcher(AuditLedger* ledger, size_t max_batch, size_t max_queue, int writers)
    : ledger_(ledger), max_batch_(max_batch), max_queue_(max_queue) {
  for (int i = 0; i < std::max(writers, 1); ++i) writers_.emplace_back([this] { Run(); });
}

AppendBatcher::~AppendBatcher() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& writer : writers_) writer.join();
}

void AppendBatcher::Submit(EntryInput input, Done done, absl::Time deadline) {
  {
    absl::MutexLock lock(&mu_);
    if (queue_.size() < max_queue_ && !stopping_) {
      queue_.push_back(Pending{std::move(input), std::move(done), deadline});
      return;
    }
  }
  done(absl::ResourceExhaustedError(
      absl::StrCat("the audit service has ", max_queue_, " appends waiting; retry later")));
}

void AppendBatcher::Run() {
  std::vector<Pending> batch, expired;
  std::vector<EntryInput> inputs;
  for (;;) {
    batch.clear();
    expired.clear();
    inputs.clear();
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](AppendBatcher* b)
               ABSL_EXCLUSIVE_LOCKS_REQUIRED(b->mu_) { return b->stopping_ || !b->queue_.empty(); },
          this));
      if (queue_.empty()) return;  // Stopping, and nothing is left.
      const absl::Time now = absl::Now();
      while (!queue_.empty() && batch.size() < max_batch_) {
        (queue_.front().deadline <= now ? expired : batch).push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    for (Pending& p : expired) {
      p.done(absl::DeadlineExceededError(
          "the caller's deadline passed before the entry was written; nothing was recorded"));
    }
    if (batch.empty()) continue;
    inputs.reserve(batch.size());
    for (Pending& p : batch) inputs.push_back(std::move(p.input));
    absl::StatusOr<std::vector<AppendOutcome>> outcomes = ledger_->AppendBatch(inputs);
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!outcomes.ok()) {
        batch[i].done(outcomes.status());
      } else if (!(*outcomes)[i].status.ok()) {
        batch[i].done((*outcomes)[i].status);
      } else {
        batch[i].done(std::move((*outcomes)[i]));
      }
    }
  }
}

}  // namespace policy::audit
