#include "common/pg/pool.h"

#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace policy::pg {

std::string ConnectionString(absl::string_view url, absl::Duration connect_timeout,
                             SessionTimeouts timeouts) {
  // libpq's `options`, percent-encoded: ours first, so that the URL's own come later and win.
  std::string options;
  for (const auto& [name, value] :
       {std::pair<const char*, absl::Duration>{"statement_timeout", timeouts.statement},
        {"lock_timeout", timeouts.lock}}) {
    if (value <= absl::ZeroDuration()) continue;
    absl::StrAppend(&options, options.empty() ? "" : "%20", "-c%20", name, "%3D",
                    std::max<int64_t>(1, absl::ToInt64Milliseconds(value)));
  }
  std::string base(url);
  if (!options.empty()) {
    const size_t query = base.find('?');
    if (query != std::string::npos) {
      std::vector<std::string> kept;
      for (absl::string_view param :
           absl::StrSplit(absl::string_view(base).substr(query + 1), '&', absl::SkipEmpty())) {
        if (absl::StartsWith(param, "options=")) {
          absl::StrAppend(&options, "%20", param.substr(strlen("options=")));
        } else {
          kept.emplace_back(param);
        }
      }
      base = absl::StrCat(base.substr(0, query), kept.empty() ? "" : "?", absl::StrJoin(kept, "&"));
    }
  }
  const int64_t seconds = std::max<int64_t>(1, absl::ToInt64Seconds(connect_timeout));
  return absl::StrCat(base, absl::StrContains(base, "?") ? "&" : "?", "connect_timeout=", seconds,
                      "&keepalives=1&keepalives_idle=5&keepalives_interval=2&keepalives_count=2",
                      "&application_name=policy-suite",
                      options.empty() ? "" : "&options=", options);
}

namespace {

// statement_timeout (query_canceled, also a cancel request's) or lock_timeout
// (lock_not_available): the statement failed, its connection did not.
bool IsTimeout(const std::string& sqlstate) { return sqlstate == "57014" || sqlstate == "55P03"; }

}  // namespace

absl::Status StatusFromException(const std::exception& e) {
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) {
    return absl::UnavailableError(absl::StrCat("database connection failed: ", e.what()));
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
    const std::string& state = sql->sqlstate();
    if (IsTimeout(state)) {
      return absl::UnavailableError(absl::StrCat("database statement timed out: ", e.what()));
    }
    // Class 57 (operator intervention, e.g. admin shutdown) and 08 (connection exception).
    if (absl::StartsWith(state, "57") || absl::StartsWith(state, "08")) {
      return absl::UnavailableError(absl::StrCat("database unavailable: ", e.what()));
    }
    // read_only_sql_transaction: the session is on a standby, or on a primary being demoted
    // or made read-only; a session opened later (after a failover) may be writable.
    if (state == "25006") {
      return absl::UnavailableError(absl::StrCat("database is read-only: ", e.what()));
    }
    return absl::InternalError(absl::StrCat("database error ", state, ": ", e.what()));
  }
  return absl::InternalError(absl::StrCat("database error: ", e.what()));
}

void RaiseCommitDurability(pqxx::connection& connection) {
  pqxx::nontransaction tx(connection);
  tx.exec(
      "SELECT set_config('synchronous_commit', 'on', false) "
      "WHERE current_setting('synchronous_commit') = 'off'");
}

Pool::Pool(PoolOptions options)
    : options_(std::move(options)),
      raise_commit_durability_(!absl::StrContains(options_.url, "synchronous_commit")),
      connection_string_(ConnectionString(options_.url, options_.connect_timeout,
                                          SessionTimeouts{.statement = options_.statement_timeout,
                                                          .lock = options_.lock_timeout})) {}

Pool::~Pool() = default;

absl::Status Pool::Closed() { return absl::UnavailableError("the database pool is closed"); }

absl::StatusOr<Pool::Lease> Pool::Acquire() {
  {
    absl::MutexLock lock(&mu_);
    auto available = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return closed_ || !idle_.empty() || open_ < options_.size;
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&available), options_.acquire_timeout)) {
      return absl::ResourceExhaustedError("all database connections are busy");
    }
    if (closed_) return Closed();
    if (!idle_.empty()) {
      Lease lease{std::move(idle_.back()), /*reused=*/true};
      idle_.pop_back();
      leased_.insert(lease.connection.get());
      return lease;
    }
    ++open_;  // Reserve the slot; connect outside the lock.
  }
  try {
    Lease lease{std::make_unique<pqxx::connection>(connection_string_), /*reused=*/false};
    if (raise_commit_durability_) RaiseCommitDurability(*lease.connection);
    absl::MutexLock lock(&mu_);
    if (closed_) {
      --open_;
      return Closed();
    }
    leased_.insert(lease.connection.get());
    return lease;
  } catch (const std::exception& e) {
    absl::MutexLock lock(&mu_);
    --open_;
    return absl::UnavailableError(absl::StrCat("cannot connect to the database: ", e.what()));
  }
}

void Pool::Release(std::unique_ptr<pqxx::connection> connection, bool healthy) {
  absl::MutexLock lock(&mu_);
  leased_.erase(connection.get());
  if (healthy && !closed_ && connection->is_open()) {
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
    bool timed_out = false;
    try {
      Tx transaction(*lease->connection);
      status = body(transaction);
      if (status.ok()) transaction.commit();
    } catch (const pqxx::broken_connection& e) {
      status = StatusFromException(e);
      broken = true;
    } catch (const pqxx::sql_error& e) {
      status = StatusFromException(e);
      timed_out = IsTimeout(e.sqlstate());
    } catch (const std::exception& e) {
      status = StatusFromException(e);
    }
    const bool reused = lease->reused;
    Release(std::move(lease->connection), !broken && (timed_out || !absl::IsUnavailable(status)));
    if (!(broken && reused && attempt == 0)) return status;
  }
}

absl::Status Pool::Transact(const std::function<absl::Status(pqxx::work&)>& body) {
  return Run<pqxx::work>(body);
}

absl::Status Pool::Autocommit(const std::function<absl::Status(pqxx::nontransaction&)>& body) {
  return Run<pqxx::nontransaction>(body);
}

void Pool::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
  // shutdown(2), not close(2): the descriptor stays the connection's until Release drops it,
  // and a thread blocked reading it wakes with end-of-file (broken_connection).
  for (pqxx::connection* c : leased_) {
    if (const int fd = c->sock(); fd >= 0) shutdown(fd, SHUT_RDWR);
  }
  open_ -= static_cast<int>(idle_.size());
  idle_.clear();
}

absl::Status Pool::Ping() {
  return Transact([](pqxx::work& tx) {
    tx.exec("SELECT 1");
    return absl::OkStatus();
  });
}

}  // namespace policy::pg
