#include "services/keys/memory_key_store.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace policy::keys {

bool MatchesFilter(const KeyRecord& key, const KeyFilter& filter) {
  if (filter.owner.has_value() && key.owner != *filter.owner) return false;
  if (filter.project.has_value() && key.project != *filter.project) return false;
  if (filter.kind.has_value() && key.kind != *filter.kind) return false;
  if (filter.state.has_value() && StateAt(key, filter.now) != *filter.state) return false;
  return true;
}

absl::Status MemoryKeyStore::CheckRequestFree(const std::optional<IdempotencyRecord>& request) {
  if (request.has_value() && requests_.contains(request->request_id)) {
    return absl::AlreadyExistsError(
        absl::StrCat("request id ", request->request_id, " exists already"));
  }
  return absl::OkStatus();
}

void MemoryKeyStore::Notify(std::vector<KeyRecord> changed) {
  if (observer_ != nullptr && !changed.empty()) observer_->OnChanged(std::move(changed));
}

void MemoryKeyStore::Record(const std::vector<KeyEvent>& events) {
  std::vector<ledger::LedgerRecord> records;
  records.reserve(events.size());
  for (const KeyEvent& event : events) records.push_back(LedgerRecordOf(event));
  outbox_.Add(std::move(records));
}

absl::Status MemoryKeyStore::Insert(const KeyRecord& key,
                                    const std::optional<IdempotencyRecord>& request,
                                    absl::string_view actor) {
  absl::MutexLock lock(&mu_);
  if (keys_.contains(key.key_id)) {
    return absl::AlreadyExistsError(absl::StrCat("key ", key.key_id, " exists already"));
  }
  if (absl::Status s = CheckRequestFree(request); !s.ok()) return s;
  keys_[key.key_id] = key;
  if (request.has_value()) requests_[request->request_id] = *request;
  Record({CreatedEvent(key, actor)});
  Notify({key});
  return absl::OkStatus();
}

absl::StatusOr<KeyRecord> MemoryKeyStore::Rotate(const std::string& old_key_id,
                                                 absl::Time overlap_ends_at,
                                                 const KeyRecord& successor,
                                                 const std::optional<IdempotencyRecord>& request,
                                                 absl::string_view actor) {
  absl::MutexLock lock(&mu_);
  auto it = keys_.find(old_key_id);
  if (it == keys_.end()) return absl::NotFoundError(absl::StrCat("no key ", old_key_id));
  if (it->second.state != KeyState::kActive) {
    return absl::FailedPreconditionError(absl::StrCat(
        "key ", old_key_id, " is ", StateName(it->second.state), "; only active keys rotate"));
  }
  if (keys_.contains(successor.key_id)) {
    return absl::AlreadyExistsError(absl::StrCat("key ", successor.key_id, " exists already"));
  }
  if (absl::Status s = CheckRequestFree(request); !s.ok()) return s;
  KeyRecord& old = it->second;
  old.state = KeyState::kRotating;
  old.overlap_ends_at = overlap_ends_at;
  old.rotated_to = successor.key_id;
  keys_[successor.key_id] = successor;
  if (request.has_value()) requests_[request->request_id] = *request;
  KeyRecord updated = old;
  Record({RotatedEvent(updated, successor.created_at, actor), CreatedEvent(successor, actor)});
  Notify({updated, successor});
  return updated;
}

absl::StatusOr<std::pair<KeyRecord, bool>> MemoryKeyStore::Revoke(const std::string& key_id,
                                                                  const std::string& reason,
                                                                  absl::Time at,
                                                                  absl::string_view actor) {
  absl::MutexLock lock(&mu_);
  auto it = keys_.find(key_id);
  if (it == keys_.end()) return absl::NotFoundError(absl::StrCat("no key ", key_id));
  KeyRecord& key = it->second;
  if (key.state == KeyState::kRevoked) return std::make_pair(key, false);
  key.state = KeyState::kRevoked;
  key.revoked_at = at;
  key.revocation_reason = reason;
  Record({RevokedEvent(key, actor)});
  Notify({key});
  return std::make_pair(key, true);
}

absl::StatusOr<std::vector<KeyRecord>> MemoryKeyStore::RevokeOwnedBy(
    const Principal& owner, const std::string& reason, absl::Time at,
    const std::optional<IdempotencyRecord>& request, absl::string_view actor) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckRequestFree(request); !s.ok()) return s;
  std::vector<KeyRecord> revoked;
  for (auto& [id, key] : keys_) {
    if (key.owner != owner || key.state == KeyState::kRevoked) continue;
    key.state = KeyState::kRevoked;
    key.revoked_at = at;
    key.revocation_reason = reason;
    revoked.push_back(key);
  }
  if (request.has_value()) {
    IdempotencyRecord record = *request;
    for (const KeyRecord& key : revoked) record.key_ids.push_back(key.key_id);
    requests_[record.request_id] = record;
  }
  std::vector<KeyEvent> events;
  for (const KeyRecord& key : revoked) events.push_back(RevokedEvent(key, actor));
  Record(events);
  Notify(revoked);
  return revoked;
}

absl::StatusOr<std::vector<KeyRecord>> MemoryKeyStore::RevokeEndedOverlaps() {
  const absl::Time at = clock_->Now();
  absl::MutexLock lock(&mu_);
  std::vector<KeyRecord> revoked;
  for (auto& [id, key] : keys_) {
    if (key.state != KeyState::kRotating || !key.overlap_ends_at.has_value() ||
        *key.overlap_ends_at > at || *key.overlap_ends_at >= key.expires_at) {
      continue;
    }
    key.state = KeyState::kRevoked;
    key.revoked_at = *key.overlap_ends_at;
    key.revocation_reason = std::string(kReasonOverlapEnded);
    revoked.push_back(key);
  }
  std::vector<KeyEvent> events;
  for (const KeyRecord& key : revoked) events.push_back(OverlapEndedEvent(key));
  Record(events);
  Notify(revoked);
  return revoked;
}

absl::StatusOr<KeyRecord> MemoryKeyStore::Get(const std::string& key_id) {
  absl::MutexLock lock(&mu_);
  auto it = keys_.find(key_id);
  if (it == keys_.end()) return absl::NotFoundError(absl::StrCat("no key ", key_id));
  return it->second;
}

absl::StatusOr<KeyPage> MemoryKeyStore::List(const KeyFilter& filter, int limit,
                                             const std::optional<ListCursor>& after) {
  absl::MutexLock lock(&mu_);
  std::vector<const KeyRecord*> matches;
  for (const auto& [id, key] : keys_) {
    if (!MatchesFilter(key, filter)) continue;
    if (after.has_value() &&
        !(key.created_at < after->created_at ||
          (key.created_at == after->created_at && key.key_id < after->key_id))) {
      continue;
    }
    matches.push_back(&key);
  }
  std::sort(matches.begin(), matches.end(), [](const KeyRecord* a, const KeyRecord* b) {
    return a->created_at != b->created_at ? a->created_at > b->created_at : a->key_id > b->key_id;
  });
  KeyPage page;
  for (const KeyRecord* key : matches) {
    if (static_cast<int>(page.keys.size()) == limit) {
      const KeyRecord& last = page.keys.back();
      page.next = ListCursor{last.created_at, last.key_id};
      break;
    }
    page.keys.push_back(*key);
  }
  return page;
}

absl::StatusOr<std::optional<IdempotencyRecord>> MemoryKeyStore::GetRequest(
    const std::string& request_id) {
  absl::MutexLock lock(&mu_);
  auto it = requests_.find(request_id);
  if (it == requests_.end()) return std::optional<IdempotencyRecord>();
  return std::optional<IdempotencyRecord>(it->second);
}

absl::StatusOr<int> MemoryKeyStore::ForgetRequestsBefore(absl::Time before) {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(std::erase_if(
      requests_, [before](const auto& entry) { return entry.second.created_at < before; }));
}

void MemoryKeyStore::Watch(KeyStoreObserver* observer) {
  absl::MutexLock lock(&mu_);
  observer_ = observer;
  std::vector<KeyRecord> all;
  for (const auto& [id, key] : keys_) all.push_back(key);
  observer_->OnReset(std::move(all));
  observer_->OnInSync(absl::InfiniteFuture());
}

void MemoryKeyStore::StopWatching() {
  absl::MutexLock lock(&mu_);
  observer_ = nullptr;
}

}  // namespace policy::keys
