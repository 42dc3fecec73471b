#include "common/pg/pool.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace policy::pg {

std::string ConnectionString(absl::string_view url, absl::Duration connect_timeout) {
  const int64_t seconds = std::max<int64_t>(1, absl::ToInt64Seconds(connect_timeout));
  return absl::StrCat(url, absl::StrContains(url, "?") ? "&" : "?", "connect_timeout=", seconds,
                      "&keepalives=1&keepalives_idle=5&keepalives_interval=2&keepalives_count=2",
                      "&application_name=policy-suite");
}

absl::Status StatusFromException(const std::exception& e) {
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) {
    return absl::UnavailableError(absl::StrCat("database connection lost: ", e.what()));
  }
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr) {
    // Not UNAVAILABLE, which promises that nothing happened.
    return absl::UnknownError(absl::StrCat("database commit outcome unknown: ", e.what()));
  }
  if (dynamic_cast<const pqxx::unique_violation*>(&e) != nullptr) {
    return absl::AlreadyExistsError(e.what());
  }
  if (dynamic_cast<const pqxx::serialization_failure*>(&e) != nullptr ||
      dynamic_cast<const pqxx::deadlock_detected*>(&e) != nullptr) {
    return absl::AbortedError(e.what());
  }
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e); sql != nullptr) {
    // Class 57 (operator intervention, e.g. admin shutdown) and 08 (connection exception).
    const std::string& state = sql->sqlstate();
    if (absl::StartsWith(state, "57") || absl::StartsWith(state, "08")) {
      return absl::UnavailableError(absl::StrCat("database unavailable: ", e.what()));
    }
    return absl::InternalError(absl::StrCat("database error ", state, ": ", e.what()));
  }
  return absl::InternalError(absl::StrCat("database error: ", e.what()));
}

Pool::Pool(PoolOptions options)
    : options_(std::move(options)),
      connection_string_(ConnectionString(options_.url, options_.connect_timeout)) {}

Pool::~Pool() = default;

absl::StatusOr<Pool::Lease> Pool::Acquire() {
  {
    absl::MutexLock lock(&mu_);
    auto available = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !idle_.empty() || open_ < options_.size;
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&available), options_.acquire_timeout)) {
      return absl::ResourceExhaustedError("all database connections are busy");
    }
    if (!idle_.empty()) {
      Lease lease{std::move(idle_.back()), /*reused=*/true};
      idle_.pop_back();
      return lease;
    }
    ++open_;  // Reserve the slot; connect outside the lock.
  }
  try {
    return Lease{std::make_unique<pqxx::connection>(connection_string_), /*reused=*/false};
  } catch (const std::exception& e) {
    absl::MutexLock lock(&mu_);
    --open_;
    return absl::UnavailableError(absl::StrCat("cannot connect to the database: ", e.what()));
  }
}

void Pool::Release(std::unique_ptr<pqxx::connection> connection, bool healthy) {
  absl::MutexLock lock(&mu_);
  if (healthy && connection->is_open()) {
    idle_.push_back(std::move(connection));
    return;
  }
  --open_;
  // One dead connection usually means the server went away (restart, failover): the idle
  // ones are dead too, so drop them rather than fail a request on each.
  open_ -= static_cast<int>(idle_.size());
  idle_.clear();
}

template <typename Tx>
absl::Status Pool::Run(const std::function<absl::Status(Tx&)>& body) {
  // A pooled connection may have died while idle (say, the server restarted); such a failure
  // happens before anything commits, so the body runs once more, on a fresh connection since
  // Release dropped every idle one.
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<Lease> lease = Acquire();
    if (!lease.ok()) return lease.status();
    absl::Status status;
    bool broken = false;
    try {
      Tx transaction(*lease->connection);
      status = body(transaction);
      if (status.ok()) transaction.commit();
    } catch (const pqxx::broken_connection& e) {
      status = StatusFromException(e);
      broken = true;
    } catch (const std::exception& e) {
      status = StatusFromException(e);
    }
    const bool reused = lease->reused;
    Release(std::move(lease->connection), !broken && !absl::IsUnavailable(status));
    if (!(broken && reused && attempt == 0)) return status;
  }
}

absl::Status Pool::Transact(const std::function<absl::Status(pqxx::work&)>& body) {
  return Run<pqxx::work>(body);
}

absl::Status Pool::Autocommit(const std::function<absl::Status(pqxx::nontransaction&)>& body) {
  return Run<pqxx::nontransaction>(body);
}

absl::Status Pool::Ping() {
  return Transact([](pqxx::work& tx) {
    tx.exec("SELECT 1");
    return absl::OkStatus();
  });
}

}  // namespace policy::pg
