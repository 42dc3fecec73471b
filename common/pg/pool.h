#ifndef POLICY_COMMON_PG_POOL_H_
#define POLICY_COMMON_PG_POOL_H_

#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "pqxx/pqxx"

namespace policy::pg {

struct PoolOptions {
  // libpq URL, e.g. postgresql://user:password@127.0.0.1:5432/db.
  std::string url;
  // Connections kept open at most; also the number of concurrent transactions.
  int size = 8;
  // How long Transact waits for a free connection before RESOURCE_EXHAUSTED.
  absl::Duration acquire_timeout = absl::Seconds(2);
  // libpq connect_timeout (whole seconds, at least 1).
  absl::Duration connect_timeout = absl::Seconds(2);
  // PostgreSQL's statement_timeout and lock_timeout for the pool's sessions: a statement that
  // runs, or waits for a lock, longer than this fails with UNAVAILABLE (its connection stays
  // in the pool), so that a statement stuck behind a migration's or VACUUM FULL's lock frees
  // its connection and its thread. Zero: no bound. Every statement the services run through a
  // pool is short (reads come in chunks); migrations and LISTEN connections do not use a pool.
  absl::Duration statement_timeout = absl::Seconds(30);
  absl::Duration lock_timeout = absl::Seconds(10);
};

// Makes `connection`'s commits durable once acknowledged: a session whose synchronous_commit
// is off (the server's, database's or role's default) has it set to on, so that COMMIT
// returns only once the transaction's WAL is flushed; a server that crashes then (an
// immediate shutdown, a killed postmaster, a lost host) cannot take back a commit the service
// has acknowledged. Any other setting (local, remote_write, on, remote_apply) stays.
void RaiseCommitDurability(pqxx::connection& connection);

// Session settings sent in a connection's startup options; zero leaves one unset.
struct SessionTimeouts {
  absl::Duration statement = absl::ZeroDuration();
  absl::Duration lock = absl::ZeroDuration();
};

// A libpq connection string for `url` with the connect timeout and TCP keepalives set, so a
// vanished server is noticed in seconds rather than minutes, and `timeouts` as `-c` settings
// of libpq's `options`, before any the URL's own `options` holds (those take precedence).
std::string ConnectionString(absl::string_view url, absl::Duration connect_timeout,
                             SessionTimeouts timeouts = {});

// Turns a libpqxx exception into a status: lost connections, SQLSTATE classes 08 (connection
// exception) and 57 (operator intervention: admin shutdown, statement or lock timeout) and
// 25006 (a write on a read-only server) are UNAVAILABLE (nothing was committed), a commit
// whose outcome is unknown UNKNOWN, unique violations ALREADY_EXISTS, serialization failures
// ABORTED, the rest INTERNAL. The message
// keeps the driver's text; the gRPC translation hides INTERNAL messages from callers.
absl::Status StatusFromException(const std::exception& e);

// A bounded pool of connections to one database. Connections open lazily; when one breaks or
// fails with UNAVAILABLE (other than a statement or lock timeout; say, it reached a server
// that turned read-only), it and every idle one are dropped, so the pool recovers by itself
// when the server comes back or a failover promotes another.
// Thread-safe.
class Pool {
 public:
  explicit Pool(PoolOptions options);
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Runs `body` in one READ COMMITTED transaction and commits when it returns OK; rolls back
  // otherwise and returns its status. No exception escapes: libpqxx errors become statuses
  // (StatusFromException). UNAVAILABLE when no connection can be made; RESOURCE_EXHAUSTED
  // when every connection stays busy for acquire_timeout.
  absl::Status Transact(const std::function<absl::Status(pqxx::work&)>& body);

  // Runs `body` without a transaction block: each statement commits by itself, so one
  // statement costs one round trip. A statement whose connection broke may or may not have
  // committed, and the body runs once more (as Transact's) when a pooled connection turns out
  // dead, so every statement of `body` must be safe to repeat. Errors as Transact's.
  absl::Status Autocommit(const std::function<absl::Status(pqxx::nontransaction&)>& body);

  // OK when a connection can run `SELECT 1`.
  absl::Status Ping();

  // For shutdown: from now on Transact, Autocommit and Ping fail at once with UNAVAILABLE,
  // and the statements in progress fail at once too (their sockets are shut under them), so
  // that threads blocked on the database return. Never waits for the server. Idempotent.
  void Close();

  const PoolOptions& options() const { return options_; }

 private:
  struct Lease {
    std::unique_ptr<pqxx::connection> connection;
    bool reused;  // Came from the idle list rather than a fresh connect.
  };
  template <typename Tx>
  absl::Status Run(const std::function<absl::Status(Tx&)>& body);
  absl::StatusOr<Lease> Acquire();
  static absl::Status Closed();
  void Release(std::unique_ptr<pqxx::connection> connection, bool healthy);

  const PoolOptions options_;
  // Unless the URL itself sets synchronous_commit (its options win, as with the timeouts).
  const bool raise_commit_durability_;
  const std::string connection_string_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_ ABSL_GUARDED_BY(mu_);
  // The leased connections, alive while listed (Release unlists them first).
  absl::flat_hash_set<pqxx::connection*> leased_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace policy::pg

#endif  // POLICY_COMMON_PG_POOL_H_
