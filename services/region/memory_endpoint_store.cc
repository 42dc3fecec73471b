#include "services/region/memory_endpoint_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status/status.h"
#include "common/text/caller_text.h"
#include "services/region/endpoint_change.h"

namespace policy::region {

absl::StatusOr<EndpointStore::Listing> MemoryEndpointStore::List() {
  absl::MutexLock lock(&mu_);
  Listing listing;
  listing.version = version_;
  for (const auto& [id, e] : endpoints_) listing.endpoints.push_back(e);
  return listing;
}

absl::StatusOr<int64_t> MemoryEndpointStore::Version() {
  absl::MutexLock lock(&mu_);
  return version_;
}

absl::Status MemoryEndpointStore::Create(const Endpoint& endpoint, const std::string& actor) {
  ASSIGN_OR_RETURN(ledger::LedgerRecord record, EndpointCreatedRecord(endpoint, actor));
  absl::MutexLock lock(&mu_);
  if (endpoints_.size() >= kMaxEndpoints && !endpoints_.contains(endpoint.id)) {
    return RegistryFull();
  }
  if (auto it = endpoints_.find(endpoint.id); it != endpoints_.end()) {
    return CreationOverExisting(it->second, endpoint);
  }
  endpoints_.emplace(endpoint.id, endpoint);
  ++version_;
  outbox_.Add({std::move(record)});
  return absl::OkStatus();
}

absl::Status MemoryEndpointStore::Update(const Endpoint& endpoint, const std::string& actor,
                                         const Endpoint* expected) {
  absl::MutexLock lock(&mu_);
  auto it = endpoints_.find(endpoint.id);
  if (it == endpoints_.end()) {
    return absl::NotFoundError(absl::StrCat("no endpoint ", Quoted(endpoint.id)));
  }
  if (it->second == endpoint) return absl::OkStatus();
  RETURN_IF_ERROR(UpdateOverChanged(it->second, expected));
  ASSIGN_OR_RETURN(ledger::LedgerRecord record, EndpointUpdatedRecord(it->second, endpoint, actor));
  it->second = endpoint;
  ++version_;
  outbox_.Add({std::move(record)});
  return absl::OkStatus();
}

absl::Status MemoryEndpointStore::Delete(const std::string& id, const std::string& actor) {
  ASSIGN_OR_RETURN(ledger::LedgerRecord record, EndpointDeletedRecord(id, actor));
  absl::MutexLock lock(&mu_);
  if (endpoints_.erase(id) == 0)
    return absl::NotFoundError(absl::StrCat("no endpoint ", Quoted(id)));
  for (auto it = breakers_.begin(); it != breakers_.end();) {
    it = it->first.first == id ? breakers_.erase(it) : std::next(it);
  }
  ++version_;
  outbox_.Add({std::move(record)});
  return absl::OkStatus();
}

absl::Status MemoryEndpointStore::PublishBreaker(const PublishedBreaker& breaker) {
  RETURN_IF_ERROR(ValidatePublishedBreaker(breaker));
  absl::MutexLock lock(&mu_);
  if (!endpoints_.contains(breaker.endpoint_id)) {
    return absl::NotFoundError(absl::StrCat("no endpoint ", Quoted(breaker.endpoint_id)));
  }
  breakers_[{breaker.endpoint_id, breaker.replica}] = breaker;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<PublishedBreaker>> MemoryEndpointStore::BreakersSince(absl::Time since) {
  absl::MutexLock lock(&mu_);
  std::vector<PublishedBreaker> out;
  for (const auto& [key, b] : breakers_) {
    if (b.published_at >= since) out.push_back(b);
  }
  return out;
}

absl::StatusOr<int64_t> MemoryEndpointStore::ForgetBreakersPublishedBefore(absl::Time cutoff) {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(std::erase_if(
      breakers_, [&](const auto& entry) { return entry.second.published_at < cutoff; }));
}

}  // namespace policy::region
