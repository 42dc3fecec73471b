#include "services/audit/memory_ledger_store.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace policy::audit {
namespace {

bool Matches(const EntryFilter& f, const Entry& e) {
  if (e.index < f.after_index) return false;
  if (f.action.has_value() && e.action != *f.action) return false;
  if (!f.actor_ref.empty() && e.actor.ref != f.actor_ref) return false;
  if (f.start.has_value() && e.time < *f.start) return false;
  if (f.end.has_value() && e.time >= *f.end) return false;
  return true;
}

}  // namespace

absl::StatusOr<std::vector<AppendOutcome>> MemoryLedgerStore::Append(
    std::vector<Entry> entries, std::vector<SubjectKey> new_keys) {
  const std::shared_ptr<const EntryAuthenticator> authenticator = this->authenticator();
  absl::MutexLock lock(&mu_);
  // Everything that refuses the batch is checked before anything changes.
  for (const SubjectKey& key : new_keys) {
    if (subject_keys_.contains(key.locator)) return SubjectKeyAdded();
    if (auto it = forgotten_.find(key.locator);
        it != forgotten_.end() &&
        (!key.forgotten_at.has_value() || *key.forgotten_at < it->second)) {
      return SubjectForgottenMeanwhile();
    }
  }
  for (const Entry& entry : entries) {
    if (destroyed_refs_.contains(entry.actor.ref) || destroyed_refs_.contains(entry.subject.ref)) {
      return SubjectKeyDestroyed();
    }
  }
  absl::flat_hash_set<std::string> named;  // The pseudonyms the appended entries name.
  std::vector<AppendOutcome> outcomes(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    Entry& entry = entries[i];
    Ledger& ledger = ledgers_[entry.ledger];
    if (!entry.request_id.empty()) {
      if (auto it = ledger.requests.find(entry.request_id); it != ledger.requests.end()) {
        const Entry& first = ledger.entries[it->second];
        if (SameRequest(first, entry)) {
          outcomes[i] = AppendOutcome{absl::OkStatus(), first, true};
        } else {
          outcomes[i].status = RequestIdUsed(entry.request_id, first.index);
        }
        continue;
      }
    }
    SealEntries(ledger.tree, absl::MakeSpan(&entry, 1), authenticator.get());
    if (!entry.request_id.empty()) ledger.requests[entry.request_id] = entry.index;
    named.insert(entry.actor.ref);
    if (!entry.subject.ref.empty()) named.insert(entry.subject.ref);
    ledger.entries.push_back(entry);
    outcomes[i] = AppendOutcome{absl::OkStatus(), std::move(entry), false};
  }
  for (SubjectKey& key : new_keys) {
    key.forgotten_at.reset();
    if (named.contains(key.ref)) subject_keys_.emplace(key.locator, std::move(key));
  }
  return outcomes;
}

absl::StatusOr<uint64_t> MemoryLedgerStore::Size(const LedgerRef& ledger) {
  absl::MutexLock lock(&mu_);
  auto it = ledgers_.find(ledger);
  return it == ledgers_.end() ? 0 : it->second.entries.size();
}

absl::StatusOr<std::vector<LedgerSize>> MemoryLedgerStore::ListLedgers() {
  absl::MutexLock lock(&mu_);
  std::vector<LedgerSize> out;
  for (const auto& [ref, ledger] : ledgers_) out.push_back(LedgerSize{ref, ledger.entries.size()});
  return out;
}

absl::StatusOr<std::vector<Entry>> MemoryLedgerStore::ReadRange(const LedgerRef& ledger,
                                                                uint64_t from, size_t limit) {
  absl::MutexLock lock(&mu_);
  std::vector<Entry> out;
  auto it = ledgers_.find(ledger);
  if (it == ledgers_.end()) return out;
  const std::deque<Entry>& entries = it->second.entries;
  if (from >= entries.size()) return out;
  const size_t n = std::min<uint64_t>(limit, entries.size() - from);
  out.assign(entries.begin() + from, entries.begin() + from + n);
  return out;
}

absl::Status MemoryLedgerStore::ForEachEntry(const LedgerRef& ledger, uint64_t from,
                                             const std::function<bool(const Entry&)>& visit) {
  constexpr size_t kChunk = 4096;
  std::vector<const Entry*> chunk;
  for (;;) {
    chunk.clear();
    {
      absl::MutexLock lock(&mu_);
      auto it = ledgers_.find(ledger);
      if (it == ledgers_.end()) return absl::OkStatus();
      const std::deque<Entry>& entries = it->second.entries;
      for (uint64_t i = from; i < entries.size() && chunk.size() < kChunk; ++i) {
        chunk.push_back(&entries[i]);
      }
    }
    // Stored entries never change, and appends do not move them.
    for (const Entry* e : chunk) {
      if (!visit(*e)) return absl::OkStatus();
    }
    if (chunk.size() < kChunk) return absl::OkStatus();
    from += chunk.size();
  }
}

absl::StatusOr<Entry> MemoryLedgerStore::FindRequest(const LedgerRef& ledger,
                                                     const std::string& request_id) {
  absl::MutexLock lock(&mu_);
  auto it = ledgers_.find(ledger);
  if (it != ledgers_.end()) {
    if (auto r = it->second.requests.find(request_id); r != it->second.requests.end()) {
      return it->second.entries[r->second];
    }
  }
  return absl::NotFoundError(
      absl::StrCat("no entry with request_id ", request_id, " in ledger ", LedgerName(ledger)));
}

absl::StatusOr<std::vector<Entry>> MemoryLedgerStore::Query(const EntryFilter& filter) {
  absl::MutexLock lock(&mu_);
  std::vector<Entry> out;
  auto it = ledgers_.find(filter.ledger);
  if (it == ledgers_.end()) return out;
  for (const Entry& e : it->second.entries) {
    if (out.size() >= filter.limit) break;
    if (Matches(filter, e)) out.push_back(e);
  }
  return out;
}

absl::StatusOr<std::vector<Entry>> MemoryLedgerStore::EntriesOfSubject(
    const std::string& ref, const std::optional<SubjectCursor>& after, size_t limit) {
  absl::MutexLock lock(&mu_);
  std::vector<Entry> out;
  for (const auto& [r, ledger] : ledgers_) {
    for (const Entry& e : ledger.entries) {
      if (e.actor.ref != ref && e.subject.ref != ref) continue;
      if (after.has_value() && !SubjectOrder(*after, CursorOf(e))) continue;
      out.push_back(e);
    }
  }
  std::sort(out.begin(), out.end(),
            [](const Entry& a, const Entry& b) { return SubjectOrder(CursorOf(a), CursorOf(b)); });
  if (out.size() > limit) out.resize(limit);
  return out;
}

absl::StatusOr<absl::flat_hash_map<NodeId, Hash>> MemoryLedgerStore::NodeHashes(
    const LedgerRef& ledger, absl::Span<const NodeId> nodes) {
  absl::MutexLock lock(&mu_);
  absl::flat_hash_map<NodeId, Hash> out;
  auto it = ledgers_.find(ledger);
  for (const NodeId& node : nodes) {
    const uint64_t last = LastLeaf(node);
    if (it == ledgers_.end() || last >= it->second.entries.size()) {
      return absl::FailedPreconditionError(
          absl::StrCat("node (", node.level, ", ", node.index, ") lies beyond the ledger"));
    }
    const Entry& e = it->second.entries[last];
    out[node] = node.level == 0 ? e.leaf_hash : e.completed[node.level - 1];
  }
  return out;
}

absl::Status MemoryLedgerStore::AddCheckpoint(const Checkpoint& checkpoint) {
  absl::MutexLock lock(&mu_);
  ledgers_[checkpoint.ledger].checkpoints.emplace(checkpoint.tree_size, checkpoint);
  return absl::OkStatus();
}

absl::StatusOr<Checkpoint> MemoryLedgerStore::GetCheckpoint(const LedgerRef& ledger,
                                                            uint64_t tree_size) {
  absl::MutexLock lock(&mu_);
  auto it = ledgers_.find(ledger);
  if (it != ledgers_.end() && !it->second.checkpoints.empty()) {
    const auto& checkpoints = it->second.checkpoints;
    if (tree_size == 0) return checkpoints.rbegin()->second;
    if (auto c = checkpoints.find(tree_size); c != checkpoints.end()) return c->second;
  }
  return absl::NotFoundError(
      tree_size == 0
          ? absl::StrCat("ledger ", LedgerName(ledger), " has no signed checkpoint yet")
          : absl::StrCat("ledger ", LedgerName(ledger), " has no checkpoint of size ", tree_size));
}

absl::StatusOr<std::vector<Checkpoint>> MemoryLedgerStore::ListCheckpoints(
    const LedgerRef& ledger) {
  absl::MutexLock lock(&mu_);
  std::vector<Checkpoint> out;
  auto it = ledgers_.find(ledger);
  if (it == ledgers_.end()) return out;
  for (const auto& [size, c] : it->second.checkpoints) out.push_back(c);
  return out;
}

absl::StatusOr<std::vector<Checkpoint>> MemoryLedgerStore::ListCheckpointsAfter(
    const LedgerRef& ledger, std::optional<uint64_t> after_size, size_t limit) {
  absl::MutexLock lock(&mu_);
  std::vector<Checkpoint> out;
  auto it = ledgers_.find(ledger);
  if (it == ledgers_.end()) return out;
  const auto& checkpoints = it->second.checkpoints;
  for (auto c = after_size.has_value() ? checkpoints.upper_bound(*after_size) : checkpoints.begin();
       c != checkpoints.end() && out.size() < limit; ++c) {
    out.push_back(c->second);
  }
  return out;
}

absl::StatusOr<absl::flat_hash_map<std::string, SubjectKey>> MemoryLedgerStore::FindSubjectKeys(
    const std::vector<std::string>& locators) {
  absl::MutexLock lock(&mu_);
  absl::flat_hash_map<std::string, SubjectKey> out;
  for (const std::string& locator : locators) {
    if (auto it = subject_keys_.find(locator); it != subject_keys_.end()) out[locator] = it->second;
  }
  return out;
}

absl::StatusOr<SubjectKey> MemoryLedgerStore::GetSubjectKey(const std::string& locator) {
  absl::MutexLock lock(&mu_);
  auto it = subject_keys_.find(locator);
  if (it == subject_keys_.end()) return absl::NotFoundError("no key for this subject");
  return it->second;
}

absl::StatusOr<absl::flat_hash_map<std::string, SubjectKey>> MemoryLedgerStore::SubjectKeysByRef(
    const std::vector<std::string>& refs) {
  absl::MutexLock lock(&mu_);
  absl::flat_hash_map<std::string, SubjectKey> out;
  for (const auto& [locator, key] : subject_keys_) {
    if (std::find(refs.begin(), refs.end(), key.ref) != refs.end()) out[key.ref] = key;
  }
  return out;
}

absl::StatusOr<bool> MemoryLedgerStore::DeleteSubjectKey(const std::string& locator) {
  absl::MutexLock lock(&mu_);
  auto it = subject_keys_.find(locator);
  if (it == subject_keys_.end()) return false;
  destroyed_refs_.insert(it->second.ref);
  subject_keys_.erase(it);
  return true;
}

absl::Status MemoryLedgerStore::RecordForgotten(const std::string& locator, absl::Time at) {
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = forgotten_.try_emplace(locator, at);
  if (!inserted) it->second = std::max(it->second, at);
  return absl::OkStatus();
}

absl::StatusOr<absl::flat_hash_map<std::string, absl::Time>> MemoryLedgerStore::FindForgotten(
    const std::vector<std::string>& locators) {
  absl::MutexLock lock(&mu_);
  absl::flat_hash_map<std::string, absl::Time> out;
  for (const std::string& locator : locators) {
    if (auto it = forgotten_.find(locator); it != forgotten_.end()) out.insert(*it);
  }
  return out;
}

absl::StatusOr<int64_t> MemoryLedgerStore::PurgeForgotten(absl::Time before) {
  absl::MutexLock lock(&mu_);
  return absl::erase_if(forgotten_, [&](const auto& f) { return f.second < before; });
}

}  // namespace policy::audit
