#ifndef POLICY_SERVICES_REGION_MEMORY_ENDPOINT_STORE_H_
#define POLICY_SERVICES_REGION_MEMORY_ENDPOINT_STORE_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/clock/clock.h"
#include "common/ledger/memory_outbox.h"
#include "services/region/endpoint_store.h"

namespace policy::region {

// The registry in one process's memory: for tests and --store=memory. Its outbox lives and
// dies with it; each change adds its record while it holds the registry's lock. Its clock
// (Now()) is the one it is given: tests give replicas sharing the store clocks that differ from
// it.
class MemoryEndpointStore : public EndpointStore {
 public:
  // `clock` must outlive the store.
  explicit MemoryEndpointStore(Clock* clock = Clock::Real()) : clock_(clock) {}

  absl::StatusOr<Listing> List() override;
  absl::StatusOr<int64_t> Version() override;
  absl::Status Create(const Endpoint& endpoint, const std::string& actor) override;
  using EndpointStore::Update;
  absl::Status Update(const Endpoint& endpoint, const std::string& actor,
                      const Endpoint* expected) override;
  absl::Status Delete(const std::string& id, const std::string& actor) override;
  ledger::Outbox& outbox() override { return outbox_; }
  absl::StatusOr<absl::Time> Now() override { return clock_->Now(); }
  absl::Status PublishBreaker(const PublishedBreaker& breaker) override;
  absl::StatusOr<std::vector<PublishedBreaker>> BreakersSince(absl::Time since) override;
  absl::StatusOr<int64_t> ForgetBreakersPublishedBefore(absl::Time cutoff) override;

 private:
  Clock* const clock_;
  absl::Mutex mu_;
  std::map<std::string, Endpoint> endpoints_ ABSL_GUARDED_BY(mu_);
  int64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  // By (endpoint id, replica).
  std::map<std::pair<std::string, std::string>, PublishedBreaker> breakers_ ABSL_GUARDED_BY(mu_);
  // Written under mu_ (then under its own lock), so records are in the changes' order.
  ledger::MemoryOutbox outbox_;
};

}  // namespace policy::region

#endif  // POLICY_SERVICES_REGION_MEMORY_ENDPOINT_STORE_H_
