#include "services/keys/key_verifier.h"

#include "absl/status/status.h"
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

bool KeyVerifier::InSyncLocked(absl::Time now) const {
  return loaded_ && now - in_sync_as_of_ <= max_staleness_;
}

absl::StatusOr<VerifiedKey> KeyVerifier::Verify(absl::string_view secret) const {
  absl::StatusOr<ParsedSecret> parsed = ParseSecret(secret);
  if (!parsed.ok()) return WithReason(parsed.status(), kReasonMalformed);
  const std::string hash = pepper_->HashSecret(secret);
  const absl::Time now = clock_->Now();
  std::shared_ptr<const KeyRecord> key;
  {
    absl::ReaderMutexLock lock(&mu_);
    if (!InSyncLocked(now)) {
      return WithReason(absl::UnavailableError("key cache is stale (database unreachable); "
                                               "refusing to verify until it is current"),
                        kReasonStale);
    }
    auto it = keys_.find(parsed->key_id);
    if (it != keys_.end()) key = it->second;
  }
  const bool matches = crypto::ConstantTimeEquals(key ? key->secret_hash : dummy_hash_, hash);
  if (key == nullptr) return NotValid(kReasonUnknown);
  if (!matches) return NotValid(kReasonSecretMismatch);
  const KeyState state = StateAt(*key, now);
  if (state == KeyState::kRevoked) return NotValid(kReasonRevoked);
  if (state == KeyState::kExpired) return NotValid(kReasonExpired);
  return VerifiedKey{std::move(key), state};
}

bool KeyVerifier::InSync() const {
  const absl::Time now = clock_->Now();
  absl::ReaderMutexLock lock(&mu_);
  return InSyncLocked(now);
}

size_t KeyVerifier::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return keys_.size();
}

void KeyVerifier::OnReset(std::vector<KeyRecord> keys) {
  absl::flat_hash_map<std::string, std::shared_ptr<const KeyRecord>> fresh;
  fresh.reserve(keys.size());
  for (KeyRecord& key : keys) {
    std::string id = key.key_id;
    fresh.emplace(std::move(id), std::make_shared<const KeyRecord>(std::move(key)));
  }
  absl::MutexLock lock(&mu_);
  keys_.swap(fresh);
  loaded_ = true;
}

void KeyVerifier::OnChanged(std::vector<KeyRecord> keys) {
  absl::MutexLock lock(&mu_);
  for (KeyRecord& key : keys) {
    auto& slot = keys_[key.key_id];
    if (slot != nullptr && Rank(slot->state) > Rank(key.state)) continue;
    slot = std::make_shared<const KeyRecord>(std::move(key));
  }
}

void KeyVerifier::OnInSync(absl::Time as_of) {
  absl::MutexLock lock(&mu_);
  if (as_of > in_sync_as_of_) in_sync_as_of_ = as_of;
}

}  // namespace policy::keys
