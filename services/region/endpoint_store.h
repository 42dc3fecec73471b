#ifndef POLICY_SERVICES_REGION_ENDPOINT_STORE_H_
#define POLICY_SERVICES_REGION_ENDPOINT_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/ledger/outbox.h"
#include "services/region/circuit_breaker.h"
#include "services/region/endpoint.h"

namespace policy::region {

// A breaker state one replica published for an endpoint, for the others to adopt.
struct PublishedBreaker {
  std::string endpoint_id;
  std::string replica;  // Who published it.
  BreakerState state = BreakerState::kClosed;
  absl::Time opened_at = absl::InfinitePast();  // When not closed.
  absl::Time published_at;
  // When it last closed (BreakerSnapshot::closed_at), in any state; absl::InfinitePast() when
  // it never has, or its replica did not say.
  absl::Time closed_at = absl::InfinitePast();
  bool operator==(const PublishedBreaker&) const = default;
};

// OK, or INVALID_ARGUMENT unless `breaker.published_at` is finite and its opened_at and
// closed_at are finite or the infinite past (what a store can keep).
absl::Status ValidatePublishedBreaker(const PublishedBreaker& breaker);

// The endpoint registry, stored, and the breaker states replicas share through it.
// Implementations are thread-safe; each method is atomic. UNAVAILABLE when the backing
// database cannot be reached (nothing happened).
//
// The outbox (ledger/outbox.h): Create, Update and Delete each write their change's record
// for the audit ledger (endpoint_change.h: EndpointCreatedRecord, EndpointUpdatedRecord,
// EndpointDeletedRecord, by `actor`) to outbox() in the same step as the change, so that a
// change that returned OK has its record and one that failed (ALREADY_EXISTS, NOT_FOUND, an
// error) has none. Records of changes are numbered in the order the changes were made. The
// store writes the records; a relay (ledger/outbox_relay.h) delivers them.
class EndpointStore {
 public:
  virtual ~EndpointStore() = default;

  // Every endpoint, ordered by id, and the registry's version (see Version()).
  struct Listing {
    std::vector<Endpoint> endpoints;
    int64_t version = 0;
  };
  virtual absl::StatusOr<Listing> List() = 0;
  // Grows with every change (create, update, delete) made by any replica; replicas compare it
  // to know when to list again.
  virtual absl::StatusOr<int64_t> Version() = 0;

  // Each change is made by `actor`, which is valid (ValidateActor); the store does not check.
  // INTERNAL when the record's request id cannot be drawn (nothing happened).
  //
  // An endpoint equal to the stored one of its id is no change (a retried creation): OK, and
  // nothing is written or recorded. ALREADY_EXISTS naming the first differing field when the
  // id is taken by another, RESOURCE_EXHAUSTED when the registry holds kMaxEndpoints endpoints
  // (nothing written either way). The endpoint is valid (ValidateEndpoint); the store does not
  // check.
  virtual absl::Status Create(const Endpoint& endpoint, const std::string& actor) = 0;
  // Replaces the endpoint of the same id; NOT_FOUND when there is none. An endpoint equal to
  // the stored one is no change: OK, and nothing is written or recorded. With `expected`
  // (what the caller read before changing it), a stored endpoint that differs from both it
  // and `endpoint` is FAILED_PRECONDITION naming the first differing field
  // (UpdateOverChanged), and nothing is written or recorded.
  virtual absl::Status Update(const Endpoint& endpoint, const std::string& actor,
                              const Endpoint* expected) = 0;
  // Update with no expectation.
  absl::Status Update(const Endpoint& endpoint, const std::string& actor) {
    return Update(endpoint, actor, nullptr);
  }
  // NOT_FOUND when there is none. Its published breaker states go with it.
  virtual absl::Status Delete(const std::string& id, const std::string& actor) = 0;

  // The records of the changes above, waiting for the audit ledger.
  virtual ledger::Outbox& outbox() = 0;

  // The store's clock, read now: the one clock every replica sharing the store can read, and
  // so the one their published breaker times are on (RegistrySync converts between it and each
  // replica's own clock). One round trip where the store is remote; the time may be read at
  // any moment during the call.
  virtual absl::StatusOr<absl::Time> Now() = 0;

  // Breaker times are on the store's clock (Now()), as RegistrySync publishes them; the store
  // keeps and compares them as given.
  //
  // Records `breaker` as its replica's latest state for its endpoint (one row per endpoint
  // and replica, replaced). NOT_FOUND when the endpoint does not exist; INVALID_ARGUMENT
  // (nothing written) when ValidatePublishedBreaker refuses it.
  virtual absl::Status PublishBreaker(const PublishedBreaker& breaker) = 0;
  // The states published at or after `since`, by any replica, for existing endpoints.
  virtual absl::StatusOr<std::vector<PublishedBreaker>> BreakersSince(absl::Time since) = 0;
  // Removes the states published before `cutoff`, by any replica; returns how many.
  virtual absl::StatusOr<int64_t> ForgetBreakersPublishedBefore(absl::Time cutoff) = 0;
};

}  // namespace policy::region

#endif  // POLICY_SERVICES_REGION_ENDPOINT_STORE_H_
