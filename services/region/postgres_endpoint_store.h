#ifndef POLICY_SERVICES_REGION_POSTGRES_ENDPOINT_STORE_H_
#define POLICY_SERVICES_REGION_POSTGRES_ENDPOINT_STORE_H_

#include <functional>
#include <string>
#include <vector>

#include "common/ledger/postgres_outbox.h"
#include "common/pg/pool.h"
#include "common/pg/privileges.h"
#include "services/region/endpoint_store.h"

namespace policy::region {

// EndpointStore in PostgreSQL (schema `region`, see migrations/), shared by every replica
// that uses the same database. Thread-safe (each call is one transaction on `pool`).
//
// The version is a row that a trigger raises with every change to an endpoint, in the
// change's transaction; List reads the endpoints and the version from one snapshot.
//
// The outbox is the table region.ledger_outbox (migrations/002_ledger_outbox.sql), written in
// the change's transaction after the change's own statement, by then holding the version
// row's lock until the commit: records are numbered in the order the changes commit, across
// every replica.
//
// Times (PublishedBreaker::opened_at, published_at) are kept to the microsecond, truncated
// toward the past (exactly between the years 1685 and 2255: POLICY_PG_TS multiplies in
// double precision), and so is the bound of BreakersSince (which may therefore also return
// states published less than a microsecond before it). opened_at == absl::InfinitePast() is
// stored as NULL; PublishBreaker refuses (INVALID_ARGUMENT) an infinite published_at and an
// opened_at in the infinite future, and finite times outside PostgreSQL's timestamptz range
// (4713 BC to 294276 AD) fail with INTERNAL. BreakersSince(absl::InfinitePast()) returns
// every state; ForgetBreakersPublishedBefore(absl::InfinitePast()) removes none, and its
// cutoff is truncated as BreakersSince's bound is.
//
// Errors, besides those of EndpointStore: UNAVAILABLE when the database cannot be reached
// (nothing happened), UNKNOWN when a commit's outcome is unknown, RESOURCE_EXHAUSTED when
// every pooled connection stays busy (pg::Pool::Transact), DATA_LOSS when a stored row
// cannot be read back, INTERNAL for anything else the database refuses (say, an endpoint
// that ValidateEndpoint would have refused).
class PostgresEndpointStore : public EndpointStore {
 public:
  // `pool` must outlive the store.
  explicit PostgresEndpointStore(pg::Pool* pool);

  // What the store's statements need of schema `region`, which migration 004 grants
  // policy_region_runtime (pg::CheckPrivileges checks the login role at start-up). An
  // endpoint's write also bumps region.registry through its trigger, which runs as the writer.
  static std::vector<pg::Privilege> Privileges();

  absl::StatusOr<Listing> List() override;
  absl::StatusOr<int64_t> Version() override;
  absl::Status Create(const Endpoint& endpoint, const std::string& actor) override;
  using EndpointStore::Update;
  absl::Status Update(const Endpoint& endpoint, const std::string& actor,
                      const Endpoint* expected) override;
  absl::Status Delete(const std::string& id, const std::string& actor) override;
  ledger::Outbox& outbox() override { return outbox_; }
  // The server's clock_timestamp(), to the microsecond, in one statement outside any
  // transaction (one round trip).
  absl::StatusOr<absl::Time> Now() override;
  absl::Status PublishBreaker(const PublishedBreaker& breaker) override;
  absl::StatusOr<std::vector<PublishedBreaker>> BreakersSince(absl::Time since) override;
  absl::StatusOr<int64_t> ForgetBreakersPublishedBefore(absl::Time cutoff) override;

 private:
  enum class Snapshot {
    kPerStatement,  // READ COMMITTED, read-write.
    kOne,           // REPEATABLE READ, read-only: every statement sees the same data.
  };
  // Runs `body` in one transaction on pool_, with JIT compilation off.
  absl::Status Transact(Snapshot snapshot, const std::function<absl::Status(pqxx::work&)>& body);

  pg::Pool* const pool_;
  ledger::PostgresOutbox outbox_;
};

}  // namespace policy::region

#endif  // POLICY_SERVICES_REGION_POSTGRES_ENDPOINT_STORE_H_
