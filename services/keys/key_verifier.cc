#include "services/keys/key_verifier.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "common/crypto/crypto.h"
#include "common/status/status.h"
#include "services/keys/api_key.h"

namespace policy::keys {
namespace {

int Rank(KeyState state) {
  switch (state) {
    case KeyState::kActive:
      return 0;
    case KeyState::kRotating:
      return 1;
    default:
      return 2;
  }
}

absl::Status NotValid(absl::string_view reason) {
  return WithReason(absl::UnauthenticatedError("API key is not valid"), reason);
}

}  // namespace

KeyVerifier::KeyVerifier(const Pepper* pepper, Clock* clock, absl::Duration max_staleness)
    : pepper_(pepper),
      clock_(clock),
      max_staleness_(max_staleness),
      dummy_hash_(pepper->HashSecret("policy-suite/keys/unknown")) {}

bool KeyVerifier::ToIdChars(absl::string_view id_part, IdChars* out) {
  if (id_part.size() != out->size()) return false;
  std::memcpy(out->data(), id_part.data(), out->size());
  return true;
}

size_t KeyVerifier::ShardOf(const IdChars& id) const {
  // Ids are random base62: their last character spreads them evenly.
  return static_cast<unsigned char>(id.back()) % kShards;
}

void KeyVerifier::Merge(KeyRecord key, absl::flat_hash_map<IdChars, CachedKey>& map) {
  IdChars id;
  if (!absl::StartsWith(key.key_id, "key_") ||
      !ToIdChars(absl::string_view(key.key_id).substr(4), &id) ||
      key.secret_hash.size() != std::tuple_size_v<decltype(CachedKey::secret_hash)>) {
    return;
  }
  CachedKey& slot = map[id];
  if (slot.record != nullptr && Rank(slot.record->state) > Rank(key.state)) return;
  std::memcpy(slot.secret_hash.data(), key.secret_hash.data(), slot.secret_hash.size());
  slot.record = std::make_shared<const KeyRecord>(std::move(key));
}

bool KeyVerifier::InSyncAt(absl::Time now) const {
  return loaded_.load(std::memory_order_acquire) && in_sync_.Within(now, max_staleness_);
}

absl::StatusOr<VerifiedKey> KeyVerifier::Verify(absl::string_view secret,
                                                absl::Duration expired_grace) const {
  absl::StatusOr<ParsedSecret> parsed = ParseSecret(secret);
  if (!parsed.ok()) return WithReason(parsed.status(), kReasonMalformed);
  const absl::Time now = clock_->Now();
  if (!InSyncAt(now)) {
    return WithReason(absl::UnavailableError("key cache is stale (not proven in sync with the "
                                             "database within max_staleness); refusing to "
                                             "verify until it is current"),
                      kReasonStale);
  }
  const std::array<char, crypto::kSha256Size> digest =
      pepper_->HashSecretDigest(parsed->random_part);
  const absl::string_view hash(digest.data(), digest.size());
  IdChars id;
  ToIdChars(parsed->id_part, &id);
  std::shared_ptr<const KeyRecord> key;
  bool matches = false;
  {
    const Shard& shard = shards_[ShardOf(id)];
    absl::ReaderMutexLock lock(&shard.mu);
    auto it = shard.keys.find(id);
    if (it != shard.keys.end()) {
      key = it->second.record;
      matches = crypto::ConstantTimeEquals(
          absl::string_view(it->second.secret_hash.data(), it->second.secret_hash.size()), hash);
    } else {
      matches = crypto::ConstantTimeEquals(dummy_hash_, hash);
    }
  }
  if (key == nullptr) return NotValid(kReasonUnknown);
  if (!matches) return NotValid(kReasonSecretMismatch);
  if (key->kind != parsed->kind) return NotValid(kReasonKindMismatch);
  const KeyState state = StateAt(*key, now);
  if (state == KeyState::kExpired && now - key->expires_at < expired_grace) {
    return VerifiedKey{std::move(key), state};
  }
  if (state == KeyState::kRevoked) return NotValid(kReasonRevoked);
  if (state == KeyState::kExpired) return NotValid(kReasonExpired);
  return VerifiedKey{std::move(key), state};
}

bool KeyVerifier::InSync() const { return InSyncAt(clock_->Now()); }

absl::Duration KeyVerifier::Staleness() const {
  if (!loaded_.load(std::memory_order_acquire)) return absl::InfiniteDuration();
  return in_sync_.Lag(clock_->Now());
}

int64_t KeyVerifier::CountExpiringWithin(absl::Duration window) const {
  const absl::Time now = clock_->Now();
  int64_t count = 0;
  for (const Shard& shard : shards_) {
    absl::ReaderMutexLock lock(&shard.mu);
    for (const auto& [id, cached] : shard.keys) {
      const KeyRecord& key = *cached.record;
      if (StateAt(key, now) == KeyState::kActive && key.expires_at - now <= window) ++count;
    }
  }
  return count;
}

size_t KeyVerifier::size() const {
  size_t total = 0;
  for (const Shard& shard : shards_) {
    absl::ReaderMutexLock lock(&shard.mu);
    total += shard.keys.size();
  }
  return total;
}

void KeyVerifier::OnReset(std::vector<KeyRecord> keys) {
  ShardMaps fresh;
  for (KeyRecord& key : keys) {
    IdChars id;
    if (key.key_id.size() < 4 || !ToIdChars(absl::string_view(key.key_id).substr(4), &id)) {
      continue;
    }
    Merge(std::move(key), fresh[ShardOf(id)]);
  }
  for (size_t i = 0; i < kShards; ++i) {
    absl::MutexLock lock(&shards_[i].mu);
    // A change this process made while the snapshot was read is newer than the snapshot:
    // keys never disappear and only move forward, so keep whichever copy is further along.
    for (auto& [id, cached] : shards_[i].keys) {
      auto it = fresh[i].find(id);
      if (it == fresh[i].end() || Rank(it->second.record->state) < Rank(cached.record->state)) {
        fresh[i][id] = std::move(cached);
      }
    }
    shards_[i].keys.swap(fresh[i]);
  }
  loaded_.store(true, std::memory_order_release);
}

void KeyVerifier::OnChanged(std::vector<KeyRecord> keys) {
  for (KeyRecord& key : keys) {
    IdChars id;
    if (key.key_id.size() < 4 || !ToIdChars(absl::string_view(key.key_id).substr(4), &id)) {
      continue;
    }
    Shard& shard = shards_[ShardOf(id)];
    absl::MutexLock lock(&shard.mu);
    Merge(std::move(key), shard.keys);
  }
}

void KeyVerifier::OnInSync(absl::Time as_of) { in_sync_.Advance(as_of); }

}  // namespace policy::keys
