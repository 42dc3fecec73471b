#include "services/region/postgres_endpoint_store.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/pg/values.h"
#include "common/status/status.h"
#include "common/text/caller_text.h"
#include "services/region/endpoint_change.h"

namespace policy::region {
namespace {

using pg::FormatTextArray;
using pg::Micros;
using pg::OptionalTime;

// What EndpointFromRow reads, in this order, from region.endpoints.
constexpr char kEndpointColumns[] =
    "id, region, provider, base_url, deployment, residency, zero_data_retention, private_link, "
    "cached, models, priority, weight, enabled";

// What BreakerFromRow reads, in this order, from region.breakers.
// clang-format off
constexpr char kBreakerColumns[] =
    "endpoint_id, replica, state, " POLICY_PG_US("opened_at") ", " POLICY_PG_US("published_at")
    ", " POLICY_PG_US("closed_at");
// clang-format on

// A replica's latest state for an endpoint, replacing the one it published before.
// clang-format off
constexpr char kUpsertBreaker[] =
    "INSERT INTO region.breakers (endpoint_id, replica, state, opened_at, published_at, "
    "closed_at) "
    "VALUES ($1, $2, $3, " POLICY_PG_TS("$4") ", " POLICY_PG_TS("$5") ", " POLICY_PG_TS("$6") ") "
    "ON CONFLICT (endpoint_id, replica) DO UPDATE SET state = EXCLUDED.state, "
    "opened_at = EXCLUDED.opened_at, published_at = EXCLUDED.published_at, "
    "closed_at = EXCLUDED.closed_at";
// clang-format on

absl::Status Unreadable(absl::string_view what, absl::string_view id, absl::string_view problem) {
  return absl::DataLossError(
      absl::StrCat("stored ", what, " ", Quoted(id), " is unreadable: ", problem));
}

absl::StatusOr<Endpoint> EndpointFromRow(const pqxx::row& row) {
  Endpoint e;
  e.id = row[0].as<std::string>();
  e.region = row[1].as<std::string>();
  const std::string provider = row[2].as<std::string>();
  std::optional<Provider> parsed_provider = ParseProvider(provider);
  if (!parsed_provider.has_value()) {
    return Unreadable("endpoint", e.id, absl::StrCat("unknown provider ", Quoted(provider)));
  }
  e.provider = *parsed_provider;
  e.base_url = row[3].as<std::string>();
  e.deployment = row[4].as<std::string>();
  const std::string residency = row[5].as<std::string>();
  std::optional<Residency> parsed_residency = ParseResidency(residency);
  if (!parsed_residency.has_value()) {
    return Unreadable("endpoint", e.id, absl::StrCat("unknown residency ", Quoted(residency)));
  }
  e.residency = *parsed_residency;
  e.capabilities.zero_data_retention = row[6].as<bool>();
  e.capabilities.private_link = row[7].as<bool>();
  e.capabilities.cached = row[8].as<bool>();
  absl::StatusOr<std::vector<std::string>> models = pg::ParseTextArray(row[9]);
  if (!models.ok()) return Unreadable("endpoint", e.id, models.status().message());
  e.models = *std::move(models);
  e.priority = row[10].as<int32_t>();
  e.weight = row[11].as<int32_t>();
  e.enabled = row[12].as<bool>();
  return e;
}

std::optional<BreakerState> ParseBreakerState(absl::string_view name) {
  for (BreakerState s : {BreakerState::kClosed, BreakerState::kOpen, BreakerState::kHalfOpen}) {
    if (BreakerStateName(s) == name) return s;
  }
  return std::nullopt;
}

absl::StatusOr<PublishedBreaker> BreakerFromRow(const pqxx::row& row) {
  PublishedBreaker b;
  b.endpoint_id = row[0].as<std::string>();
  b.replica = row[1].as<std::string>();
  const std::string state = row[2].as<std::string>();
  std::optional<BreakerState> parsed = ParseBreakerState(state);
  if (!parsed.has_value()) {
    return Unreadable("breaker of endpoint", b.endpoint_id,
                      absl::StrCat("unknown state ", Quoted(state)));
  }
  b.state = *parsed;
  b.opened_at = OptionalTime(row[3]).value_or(absl::InfinitePast());
  b.published_at = absl::FromUnixMicros(row[4].as<int64_t>());
  b.closed_at = OptionalTime(row[5]).value_or(absl::InfinitePast());
  return b;
}

absl::Status NoEndpoint(absl::string_view id) {
  return absl::NotFoundError(absl::StrCat("no endpoint ", Quoted(id)));
}

}  // namespace

PostgresEndpointStore::PostgresEndpointStore(pg::Pool* pool)
    : pool_(pool), outbox_(pool, "region.ledger_outbox") {}

std::vector<pg::Privilege> PostgresEndpointStore::Privileges() {
  std::vector<pg::Privilege> privileges =
      ledger::PostgresOutbox::Privileges("region.ledger_outbox");
  // Writers lock the one row (FOR UPDATE); the endpoints' trigger bumps it.
  pg::AddTablePrivileges("region.registry", {"SELECT", "UPDATE"}, &privileges);
  for (const char* table : {"region.endpoints", "region.breakers"}) {
    pg::AddTablePrivileges(table, {"SELECT", "INSERT", "UPDATE", "DELETE"}, &privileges);
  }
  return privileges;
}

absl::Status PostgresEndpointStore::Transact(Snapshot snapshot,
                                             const std::function<absl::Status(pqxx::work&)>& body) {
  return pool_->Transact([&](pqxx::work& tx) -> absl::Status {
    // Every statement here is a small OLTP one. On a fresh table (or one that grew since it
    // was last analysed) the planner's estimates can be far off, and it would JIT-compile
    // statements that run in microseconds, at tens of milliseconds each.
    // SET TRANSACTION must come before the first query; SET LOCAL is not one.
    tx.exec(snapshot == Snapshot::kOne
                ? "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL jit = off"
                : "SET LOCAL jit = off");
    return body(tx);
  });
}

absl::StatusOr<EndpointStore::Listing> PostgresEndpointStore::List() {
  Listing listing;
  absl::Status status = Transact(Snapshot::kOne, [&](pqxx::work& tx) -> absl::Status {
    listing = Listing{};  // The body runs again when a pooled connection was dead.
    listing.version = tx.exec1("SELECT version FROM region.registry")[0].as<int64_t>();
    pqxx::result rows =
        tx.exec(absl::StrCat("SELECT ", kEndpointColumns, " FROM region.endpoints ORDER BY id"));
    listing.endpoints.reserve(rows.size());
    for (const pqxx::row& row : rows) {
      ASSIGN_OR_RETURN(Endpoint e, EndpointFromRow(row));
      listing.endpoints.push_back(std::move(e));
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return listing;
}

absl::StatusOr<int64_t> PostgresEndpointStore::Version() {
  int64_t version = 0;
  absl::Status status = Transact(Snapshot::kPerStatement, [&](pqxx::work& tx) {
    version = tx.exec1("SELECT version FROM region.registry")[0].as<int64_t>();
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return version;
}

absl::Status PostgresEndpointStore::Create(const Endpoint& e, const std::string& actor) {
  ASSIGN_OR_RETURN(ledger::LedgerRecord record, EndpointCreatedRecord(e, actor));
  return Transact(Snapshot::kPerStatement, [&](pqxx::work& tx) -> absl::Status {
    // Creations take turns on the registry's row, so that two cannot both take the last place.
    tx.exec("SELECT version FROM region.registry FOR UPDATE");
    // A retried creation finds the endpoint it made: the same one is no change.
    pqxx::result stored =
        tx.exec_params(absl::StrCat("SELECT ", kEndpointColumns,
                                    " FROM region.endpoints WHERE id = $1 FOR UPDATE"),
                       e.id);
    if (!stored.empty()) {
      ASSIGN_OR_RETURN(Endpoint before, EndpointFromRow(stored[0]));
      return CreationOverExisting(before, e);
    }
    const pqxx::row counted = tx.exec_params1(
        "SELECT count(*), count(*) FILTER (WHERE id = $1) FROM region.endpoints", e.id);
    if (counted[0].as<int64_t>() >= static_cast<int64_t>(kMaxEndpoints) &&
        counted[1].as<int64_t>() == 0) {
      return RegistryFull();
    }
    try {
      tx.exec_params(
          absl::StrCat("INSERT INTO region.endpoints (", kEndpointColumns,
                       ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text[], $11, $12, $13)"),
          e.id, e.region, std::string(ProviderName(e.provider)), e.base_url, e.deployment,
          std::string(ResidencyName(e.residency)), e.capabilities.zero_data_retention,
          e.capabilities.private_link, e.capabilities.cached, FormatTextArray(e.models), e.priority,
          e.weight, e.enabled);
    } catch (const pqxx::unique_violation&) {
      // The primary key is the only unique constraint. The transaction is aborted; the
      // status makes Transact roll it back.
      return absl::AlreadyExistsError(absl::StrCat("endpoint ", Quoted(e.id), " exists already"));
    }
    outbox_.Write(tx, {record});
    return absl::OkStatus();
  });
}

absl::Status PostgresEndpointStore::Update(const Endpoint& e, const std::string& actor,
                                           const Endpoint* expected) {
  return Transact(Snapshot::kPerStatement, [&](pqxx::work& tx) -> absl::Status {
    pqxx::result stored =
        tx.exec_params(absl::StrCat("SELECT ", kEndpointColumns,
                                    " FROM region.endpoints WHERE id = $1 FOR UPDATE"),
                       e.id);
    if (stored.empty()) return NoEndpoint(e.id);
    ASSIGN_OR_RETURN(Endpoint before, EndpointFromRow(stored[0]));
    if (before == e) return absl::OkStatus();
    RETURN_IF_ERROR(UpdateOverChanged(before, expected));
    ASSIGN_OR_RETURN(ledger::LedgerRecord record, EndpointUpdatedRecord(before, e, actor));
    pqxx::result rows = tx.exec_params(
        "UPDATE region.endpoints SET region = $2, provider = $3, base_url = $4, "
        "deployment = $5, residency = $6, zero_data_retention = $7, private_link = $8, "
        "cached = $9, models = $10::text[], priority = $11, weight = $12, enabled = $13, "
        "updated_at = now() WHERE id = $1",
        e.id, e.region, std::string(ProviderName(e.provider)), e.base_url, e.deployment,
        std::string(ResidencyName(e.residency)), e.capabilities.zero_data_retention,
        e.capabilities.private_link, e.capabilities.cached, FormatTextArray(e.models), e.priority,
        e.weight, e.enabled);
    if (rows.affected_rows() == 0) return NoEndpoint(e.id);
    outbox_.Write(tx, {record});
    return absl::OkStatus();
  });
}

absl::Status PostgresEndpointStore::Delete(const std::string& id, const std::string& actor) {
  ASSIGN_OR_RETURN(ledger::LedgerRecord record, EndpointDeletedRecord(id, actor));
  return Transact(Snapshot::kPerStatement, [&](pqxx::work& tx) -> absl::Status {
    // The endpoint's breakers go with it (ON DELETE CASCADE).
    pqxx::result rows = tx.exec_params("DELETE FROM region.endpoints WHERE id = $1", id);
    if (rows.affected_rows() == 0) return NoEndpoint(id);
    outbox_.Write(tx, {record});
    return absl::OkStatus();
  });
}

absl::StatusOr<absl::Time> PostgresEndpointStore::Now() {
  absl::Time now;
  // clock_timestamp(), not now(): the time the statement runs, not the transaction's start.
  absl::Status status = pool_->Autocommit([&](pqxx::nontransaction& tx) {
    now = absl::FromUnixMicros(
        tx.exec1("SELECT " POLICY_PG_US("clock_timestamp()"))[0].as<int64_t>());
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return now;
}

absl::Status PostgresEndpointStore::PublishBreaker(const PublishedBreaker& b) {
  RETURN_IF_ERROR(ValidatePublishedBreaker(b));
  auto nullable = [](absl::Time t) {
    return t == absl::InfinitePast() ? std::nullopt : std::make_optional(t);
  };
  return Transact(Snapshot::kPerStatement, [&](pqxx::work& tx) -> absl::Status {
    try {
      tx.exec_params(kUpsertBreaker, b.endpoint_id, b.replica,
                     std::string(BreakerStateName(b.state)), Micros(nullable(b.opened_at)),
                     Micros(b.published_at), Micros(nullable(b.closed_at)));
    } catch (const pqxx::foreign_key_violation&) {
      return NoEndpoint(b.endpoint_id);
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<PublishedBreaker>> PostgresEndpointStore::BreakersSince(
    absl::Time since) {
  std::vector<PublishedBreaker> breakers;
  // Nothing is published at the infinite future (PublishBreaker refuses it); the infinite
  // past bounds nothing (NULL).
  if (since == absl::InfiniteFuture()) return breakers;
  const std::optional<absl::Time> bound =
      since == absl::InfinitePast() ? std::nullopt : std::make_optional(since);
  absl::Status status = Transact(Snapshot::kPerStatement, [&](pqxx::work& tx) -> absl::Status {
    breakers.clear();
    pqxx::result rows = tx.exec_params(
        absl::StrCat("SELECT ", kBreakerColumns, " FROM region.breakers WHERE $1::bigint IS NULL ",
                     "OR published_at >= ", POLICY_PG_TS("$1"), " ORDER BY endpoint_id, replica"),
        Micros(bound));
    breakers.reserve(rows.size());
    for (const pqxx::row& row : rows) {
      ASSIGN_OR_RETURN(PublishedBreaker b, BreakerFromRow(row));
      breakers.push_back(std::move(b));
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return breakers;
}

absl::StatusOr<int64_t> PostgresEndpointStore::ForgetBreakersPublishedBefore(absl::Time cutoff) {
  if (cutoff == absl::InfinitePast()) return 0;
  const std::optional<absl::Time> bound =
      cutoff == absl::InfiniteFuture() ? std::nullopt : std::make_optional(cutoff);
  int64_t removed = 0;
  absl::Status status = Transact(Snapshot::kPerStatement, [&](pqxx::work& tx) -> absl::Status {
    removed = tx.exec_params(absl::StrCat("DELETE FROM region.breakers WHERE $1::bigint IS NULL "
                                          "OR published_at < ",
                                          POLICY_PG_TS("$1")),
                             Micros(bound))
                  .affected_rows();
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return removed;
}

}  // namespace policy::region
