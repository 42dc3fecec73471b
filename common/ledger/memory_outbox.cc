#include "common/ledger/memory_outbox.h"

#include <algorithm>
#include <utility>

namespace policy::ledger {

void MemoryOutbox::Add(std::vector<LedgerRecord> records) {
  const absl::Time now = absl::FromUnixMicros(absl::ToUnixMicros(absl::Now()));
  absl::MutexLock lock(&mu_);
  for (LedgerRecord& record : records) {
    OutboxEntry entry;
    entry.sequence = next_sequence_++;
    entry.record = std::move(record);
    entry.occurred_at = now;
    entries_.push_back(std::move(entry));
  }
}

int MemoryOutbox::EraseFromFailed(absl::FunctionRef<bool(absl::string_view)> erased) {
  absl::MutexLock lock(&mu_);
  int changed = 0;
  for (OutboxEntry& e : entries_) {
    if (!e.failed) continue;
    const bool actor = !e.record.actor.empty() && erased(e.record.actor);
    const bool subject = !e.record.subject.empty() && erased(e.record.subject);
    if (!actor && !subject) continue;
    if (actor) e.record.actor.clear();
    if (subject) e.record.subject.clear();
    e.last_error = ErasedNote(e.last_error, actor, subject);
    ++changed;
  }
  return changed;
}

void MemoryOutbox::Count(OutboxDrain& drain) {
  drain.failed = std::count_if(entries_.begin(), entries_.end(),
                               [](const OutboxEntry& e) { return e.failed; });
  drain.pending = static_cast<int64_t>(entries_.size()) - drain.failed;
}

absl::StatusOr<OutboxDrain> MemoryOutbox::Drain(int limit, const OutboxHandler& handle) {
  OutboxDrain drain;
  if (!drain_mu_.TryLock()) {
    drain.busy = true;
    absl::MutexLock lock(&mu_);
    Count(drain);
    return drain;
  }
  std::vector<OutboxEntry> batch;
  {
    absl::MutexLock lock(&mu_);
    for (const OutboxEntry& e : entries_) {
      if (static_cast<int>(batch.size()) >= limit) break;
      if (!e.failed) batch.push_back(e);
    }
  }
  // Only this drain removes or changes entries, so each one handed out is still there.
  for (const OutboxEntry& entry : batch) {
    const Delivery delivery = handle(entry);
    absl::MutexLock lock(&mu_);
    auto it = std::find_if(entries_.begin(), entries_.end(),
                           [&](const OutboxEntry& e) { return e.sequence == entry.sequence; });
    if (delivery.result == Delivery::Result::kRecorded ||
        delivery.result == Delivery::Result::kDuplicate) {
      entries_.erase(it);
      ++drain.delivered;
      continue;
    }
    ++it->attempts;
    it->last_error = delivery.error;
    if (delivery.result == Delivery::Result::kRefused) {
      it->failed = true;
      ++drain.refused;
      continue;
    }
    drain.retry = true;
    break;
  }
  {
    absl::MutexLock lock(&mu_);
    Count(drain);
  }
  drain_mu_.Unlock();
  return drain;
}

absl::StatusOr<std::vector<OutboxEntry>> MemoryOutbox::Read(int limit) {
  absl::MutexLock lock(&mu_);
  const size_t n = std::min(entries_.size(), static_cast<size_t>(std::max(limit, 0)));
  return std::vector<OutboxEntry>(entries_.begin(), entries_.begin() + n);
}

}  // namespace policy::ledger
