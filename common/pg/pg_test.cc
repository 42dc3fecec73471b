#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock/clock.h"
#include "common/crypto/crypto.h"
#include "common/pg/migrations.h"
#include "common/pg/notification_feed.h"
#include "common/pg/pool.h"
#include "common/pg/statement.h"
#include "common/pg/storage_options.h"
#include "common/pg/test_database.h"
#include "common/testing/eventually.h"
#include "common/testing/loopback_listener.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pqxx/pqxx"

namespace policy::pg {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::Duration kWait = absl::Seconds(5);  // Upper bound for anything to happen.

using ::policy::testing::Eventually;

// Runs `sql` on a connection of its own, outside any Pool.
void Exec(const std::string& url, const std::string& sql) {
  pqxx::connection c(url);
  pqxx::nontransaction tx(c);
  tx.exec(sql);
}

// The first column of the first row of `sql` as a string ("" for no rows or NULL).
std::string Query(const std::string& url, const std::string& sql) {
  pqxx::connection c(url);
  pqxx::nontransaction tx(c);
  pqxx::result r = tx.exec(sql);
  if (r.empty() || r[0][0].is_null()) return "";
  return r[0][0].as<std::string>();
}

int64_t Count(const std::string& url, const std::string& from_where) {
  return std::stoll(Query(url, "SELECT count(*) FROM " + from_where));
}

// A URL nothing listens on.
constexpr char kClosedPortUrl[] = "postgresql://policy@127.0.0.1:1/policy";

class PgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_ = TestDatabase::Get();
    if (db_ == nullptr) GTEST_SKIP() << "POLICY_TEST_PG_URL is not set";
    url_ = db_->url();
  }

  const TestDatabase* db_ = nullptr;
  std::string url_;
};

// --- StatusFromException (no database needed) -------------------------------------------------

TEST(StatusFromExceptionTest, MapsDriverErrors) {
  EXPECT_EQ(StatusFromException(pqxx::broken_connection("gone")).code(),
            absl::StatusCode::kUnavailable);
  // Not UNAVAILABLE, which would tell a caller that nothing happened.
  EXPECT_EQ(StatusFromException(pqxx::in_doubt_error("maybe")).code(), absl::StatusCode::kUnknown);
  absl::Status duplicate =
      StatusFromException(pqxx::unique_violation("duplicate key value", "INSERT", "23505"));
  EXPECT_EQ(duplicate.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(duplicate.message(), HasSubstr("duplicate key value"));
  EXPECT_EQ(StatusFromException(pqxx::serialization_failure("retry")).code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(StatusFromException(pqxx::deadlock_detected("deadlock")).code(),
            absl::StatusCode::kAborted);
  EXPECT_EQ(StatusFromException(pqxx::sql_error("admin shutdown", "", "57P01")).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(StatusFromException(pqxx::sql_error("connection failure", "", "08006")).code(),
            absl::StatusCode::kUnavailable);
  absl::Status read_only = StatusFromException(
      pqxx::sql_error("cannot execute INSERT in a read-only transaction", "INSERT", "25006"));
  EXPECT_EQ(read_only.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(read_only.message(), HasSubstr("read-only"));
  absl::Status missing =
      StatusFromException(pqxx::sql_error("relation \"x\" does not exist", "SELECT", "42P01"));
  EXPECT_EQ(missing.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(missing.message(), HasSubstr("42P01"));
  EXPECT_THAT(missing.message(), HasSubstr("relation \"x\" does not exist"));
  absl::Status other = StatusFromException(std::runtime_error("boom"));
  EXPECT_EQ(other.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(other.message(), HasSubstr("boom"));
}

TEST(ConnectionStringTest, AddsTimeoutAndKeepalives) {
  std::string plain = ConnectionString("postgresql://u@h/db", absl::Seconds(3));
  EXPECT_THAT(plain, HasSubstr("postgresql://u@h/db?connect_timeout=3&"));
  EXPECT_THAT(plain, HasSubstr("keepalives=1"));
  std::string query = ConnectionString("postgresql://u@h/db?sslmode=disable", absl::Seconds(3));
  EXPECT_THAT(query, HasSubstr("postgresql://u@h/db?sslmode=disable&connect_timeout=3&"));
  // libpq takes whole seconds, at least one.
  EXPECT_THAT(ConnectionString("postgresql://u@h/db", absl::Milliseconds(250)),
              HasSubstr("connect_timeout=1&"));
}

TEST(ConnectionStringTest, SessionTimeoutsGoInTheOptionsBeforeTheUrlsOwn) {
  const SessionTimeouts timeouts{.statement = absl::Seconds(30), .lock = absl::Milliseconds(1500)};
  EXPECT_THAT(ConnectionString("postgresql://u@h/db", absl::Seconds(3), timeouts),
              HasSubstr("&options=-c%20statement_timeout%3D30000%20-c%20lock_timeout%3D1500"));
  // The URL's own options come after ours (the last setting of a name wins) and only once.
  const std::string merged =
      ConnectionString("postgresql://u@h/db?options=-c%20statement_timeout%3D0&sslmode=disable",
                       absl::Seconds(3), timeouts);
  EXPECT_THAT(merged, HasSubstr("postgresql://u@h/db?sslmode=disable&connect_timeout=3&"));
  EXPECT_THAT(merged, HasSubstr("&options=-c%20statement_timeout%3D30000%20-c%20lock_timeout%"
                                "3D1500%20-c%20statement_timeout%3D0"));
  EXPECT_EQ(merged.find("options="), merged.rfind("options="));
  // None by default.
  EXPECT_THAT(ConnectionString("postgresql://u@h/db", absl::Seconds(3)),
              Not(HasSubstr("options=")));
}

TEST(CheckDatabaseUrlTest, ABadUrlIsRefusedWithoutQuotingIt) {
  EXPECT_TRUE(CheckDatabaseUrl("postgresql://policy@db.internal:5432/policy?sslmode=require").ok());
  EXPECT_TRUE(CheckDatabaseUrl("postgresql://policy%40server:p%25w@db/policy").ok());
  // A raw '%' in the password: libpq's own message quotes the password.
  for (const std::string url : {"postgresql://policy:Sup3r%zzSecret@db/policy",
                                "postgresql://policy:Sup3rSecret@db/policy?Sup3rSecret=1"}) {
    absl::Status s = CheckDatabaseUrl(url);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << url;
    EXPECT_THAT(s.message(), HasSubstr("database_url is not a valid PostgreSQL URL ("));
    EXPECT_THAT(s.message(), Not(HasSubstr("Sup3r"))) << s;
  }
}

TEST(CheckDatabaseUrlTest, ASettingLibpqChecksOnlyWhenConnectingIsCheckedAtStart) {
  EXPECT_TRUE(CheckDatabaseUrl("postgresql://db/policy?sslmode=verify-full").ok());
  for (const std::string url :
       {"postgresql://db/policy?sslmode=requir", "postgresql://db/policy?gssencmode=yes",
        "postgresql://db/policy?target_session_attrs=writable"}) {
    absl::Status s = CheckDatabaseUrl(url);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << url;
    EXPECT_THAT(s.message(), HasSubstr(" must be one of ")) << s;
  }
}

TEST(RetryWhileUnavailableTest, RetriesUntilTheDatabaseAnswers) {
  int calls = 0;
  absl::Status s = RetryWhileUnavailable(
      [&] {
        return ++calls < 3 ? absl::UnavailableError("database connection failed")
                           : absl::OkStatus();
      },
      absl::Seconds(10), absl::Milliseconds(1));
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(calls, 3);
}

TEST(RetryWhileUnavailableTest, AnyOtherErrorEndsAtOnce) {
  int calls = 0;
  absl::Status s = RetryWhileUnavailable(
      [&] {
        ++calls;
        return absl::FailedPreconditionError("schema keys has migration 2 changed");
      },
      absl::Seconds(10), absl::Milliseconds(1));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(calls, 1);
}

TEST(PrepareSchemaTest, GivesUpOnAnUnreachableDatabaseAfterTheStartWaitNamingIt) {
  StorageOptions options;
  options.database_url = "postgresql://policy@127.0.0.1:1/policy";
  options.database_start_wait = absl::Milliseconds(1500);
  const absl::Time start = absl::Now();
  absl::StatusOr<bool> done = PrepareSchema(options, "start_wait", {});
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(done.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(done.status().message(), HasSubstr("database connection failed"));
  EXPECT_THAT(done.status().message(), HasSubstr("database_start_wait=1.5s"));
  EXPECT_GE(took, absl::Milliseconds(1500));
  EXPECT_LT(took, absl::Seconds(10));
}

// --- Pool ----------------------------------------------------------------------------------

TEST_F(PgTest, PingSucceeds) {
  Pool pool({.url = url_});
  EXPECT_TRUE(pool.Ping().ok());
}

// A database (or server, or role) committing asynchronously would acknowledge commits that a
// crash of the server takes back: the pool's sessions commit durably all the same, unless the
// URL's own options say otherwise.
TEST_F(PgTest, PooledSessionsCommitDurablyWhateverTheDatabasesDefault) {
  const std::string url = db_->CreateDatabase("async_commit");
  const std::string name = Query(url, "SELECT current_database()");
  Exec(db_->admin_url(), "ALTER DATABASE \"" + name + "\" SET synchronous_commit = off");
  ASSERT_EQ(Query(url, "SHOW synchronous_commit"), "off");
  auto setting = [](Pool& pool) {
    std::string value;
    absl::Status status = pool.Transact([&](pqxx::work& tx) {
      value = tx.exec1("SHOW synchronous_commit")[0].as<std::string>();
      return absl::OkStatus();
    });
    EXPECT_TRUE(status.ok()) << status;
    return value;
  };
  Pool pool({.url = url});
  EXPECT_EQ(setting(pool), "on");
  Exec(db_->admin_url(), "ALTER DATABASE \"" + name + "\" SET synchronous_commit = remote_apply");
  Pool stronger({.url = url});
  EXPECT_EQ(setting(stronger), "remote_apply");  // A stronger one is kept.
  Pool chosen({.url = url + (absl::StrContains(url, "?") ? "&" : "?") +
                      "options=-c%20synchronous_commit%3Doff"});
  EXPECT_EQ(setting(chosen), "off");  // The URL's own choice.
}

TEST_F(PgTest, TransactCommitsOnOk) {
  Exec(url_, "DROP TABLE IF EXISTS pool_commit; CREATE TABLE pool_commit (id int PRIMARY KEY)");
  Pool pool({.url = url_});
  absl::Status status = pool.Transact([](pqxx::work& tx) {
    tx.exec("INSERT INTO pool_commit VALUES (1), (2)");
    return absl::OkStatus();
  });
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(Count(url_, "pool_commit"), 2);
}

TEST_F(PgTest, TransactRollsBackOnErrorStatus) {
  Exec(url_, "DROP TABLE IF EXISTS pool_rollback; CREATE TABLE pool_rollback (id int PRIMARY KEY)");
  Pool pool({.url = url_});
  bool ran = false;
  absl::Status status = pool.Transact([&](pqxx::work& tx) {
    tx.exec("INSERT INTO pool_rollback VALUES (1)");
    ran = true;
    return absl::FailedPreconditionError("changed my mind");
  });
  EXPECT_TRUE(ran);
  EXPECT_EQ(status, absl::FailedPreconditionError("changed my mind"));  // Returned unchanged.
  EXPECT_EQ(Count(url_, "pool_rollback"), 0);

  // The connection is still good for the next transaction.
  ASSERT_TRUE(pool.Transact([](pqxx::work& tx) {
                    tx.exec("INSERT INTO pool_rollback VALUES (2)");
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_EQ(Query(url_, "SELECT string_agg(id::text, ',') FROM pool_rollback"), "2");
}

TEST_F(PgTest, AutocommitCommitsEachStatementByItself) {
  Exec(url_, "DROP TABLE IF EXISTS pool_autocommit; CREATE TABLE pool_autocommit (id int)");
  Pool pool({.url = url_});
  absl::Status status = pool.Autocommit([](pqxx::nontransaction& tx) {
    tx.exec("INSERT INTO pool_autocommit VALUES (1)");
    tx.exec("INSERT INTO pool_no_such_table VALUES (2)");
    return absl::OkStatus();
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("pool_no_such_table"));
  // Unlike in Transact, the statement before the failing one stays committed.
  EXPECT_EQ(Count(url_, "pool_autocommit"), 1);
  EXPECT_TRUE(pool.Autocommit([](pqxx::nontransaction& tx) {
                    tx.exec("INSERT INTO pool_autocommit VALUES (3)");
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_EQ(Query(url_, "SELECT string_agg(id::text, ',' ORDER BY id) FROM pool_autocommit"),
            "1,3");
}

TEST_F(PgTest, SqlErrorBecomesStatusWithoutException) {
  Exec(url_,
       "DROP TABLE IF EXISTS pool_sql_error; CREATE TABLE pool_sql_error (id int PRIMARY KEY)");
  Pool pool({.url = url_});
  absl::Status status;
  EXPECT_NO_THROW(status = pool.Transact([](pqxx::work& tx) {
    tx.exec("INSERT INTO pool_sql_error VALUES (1)");
    tx.exec("SELECT * FROM pool_no_such_table");
    return absl::OkStatus();
  }));
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("pool_no_such_table"));
  EXPECT_EQ(Count(url_, "pool_sql_error"), 0);  // The earlier insert rolled back.
  EXPECT_TRUE(pool.Ping().ok());
}

TEST_F(PgTest, NonDriverExceptionBecomesStatus) {
  Pool pool({.url = url_});
  absl::Status status;
  EXPECT_NO_THROW(status = pool.Transact([](pqxx::work&) -> absl::Status {
    throw std::runtime_error("handler blew up");
  }));
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(status.message(), HasSubstr("handler blew up"));
  EXPECT_TRUE(pool.Ping().ok());
}

TEST_F(PgTest, UniqueViolationIsAlreadyExists) {
  Exec(url_, "DROP TABLE IF EXISTS pool_unique; CREATE TABLE pool_unique (id int PRIMARY KEY)");
  Pool pool({.url = url_});
  auto insert = [](pqxx::work& tx) {
    tx.exec("INSERT INTO pool_unique VALUES (7)");
    return absl::OkStatus();
  };
  ASSERT_TRUE(pool.Transact(insert).ok());
  absl::Status status = pool.Transact(insert);
  EXPECT_EQ(status.code(), absl::StatusCode::kAlreadyExists) << status;
  EXPECT_EQ(Count(url_, "pool_unique"), 1);
}

TEST_F(PgTest, UnreachableServerIsUnavailableQuickly) {
  Pool pool({.url = kClosedPortUrl, .size = 2, .connect_timeout = absl::Seconds(1)});
  const absl::Time start = absl::Now();
  bool ran = false;
  absl::Status status = pool.Transact([&](pqxx::work&) {
    ran = true;
    return absl::OkStatus();
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_FALSE(ran);
  EXPECT_EQ(pool.Ping().code(), absl::StatusCode::kUnavailable);
  // Failed connects give their slots back: more attempts than the pool's size still fail
  // with UNAVAILABLE, never RESOURCE_EXHAUSTED.
  EXPECT_EQ(pool.Ping().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

TEST_F(PgTest, BusyPoolIsResourceExhaustedAfterAcquireTimeout) {
  Pool pool({.url = url_, .size = 1, .acquire_timeout = absl::Milliseconds(100)});
  absl::Notification holding;
  absl::Notification release;
  absl::Status holder_status;
  std::thread holder([&] {
    holder_status = pool.Transact([&](pqxx::work& tx) {
      tx.exec("SELECT 1");
      holding.Notify();
      release.WaitForNotificationWithTimeout(kWait);
      return absl::OkStatus();
    });
  });
  ASSERT_TRUE(holding.WaitForNotificationWithTimeout(kWait));

  absl::Status waiter_status;
  absl::Duration waited;
  bool ran = false;
  std::thread waiter([&] {
    const absl::Time start = absl::Now();
    waiter_status = pool.Transact([&](pqxx::work&) {
      ran = true;
      return absl::OkStatus();
    });
    waited = absl::Now() - start;
  });
  waiter.join();
  EXPECT_EQ(waiter_status.code(), absl::StatusCode::kResourceExhausted) << waiter_status;
  EXPECT_FALSE(ran);
  EXPECT_GE(waited, absl::Milliseconds(90));
  EXPECT_LT(waited, absl::Seconds(2));

  release.Notify();
  holder.join();
  EXPECT_TRUE(holder_status.ok()) << holder_status;
  EXPECT_TRUE(pool.Ping().ok());  // The connection came back.
}

// Holds an ACCESS EXCLUSIVE lock on `table` (as a migration or VACUUM FULL does) until
// destroyed.
class TableLock {
 public:
  TableLock(const std::string& url, const std::string& table)
      : connection_(ConnectionString(url, absl::Seconds(5))), tx_(connection_) {
    tx_.exec("LOCK TABLE " + table + " IN ACCESS EXCLUSIVE MODE");
  }

 private:
  pqxx::connection connection_;
  pqxx::work tx_;
};

TEST_F(PgTest, AStatementWaitingForALockFailsAfterTheLockTimeoutAndKeepsItsConnection) {
  Query(url_, "CREATE TABLE pool_locked (id int)");
  Pool pool({.url = url_, .size = 1, .lock_timeout = absl::Milliseconds(300)});
  std::string pid;
  auto read = [&] {
    return pool.Transact([&](pqxx::work& tx) {
      pid = tx.exec("SELECT pg_backend_pid()")[0][0].as<std::string>();
      tx.exec("SELECT count(*) FROM pool_locked");
      return absl::OkStatus();
    });
  };
  ASSERT_TRUE(read().ok());
  const std::string first_pid = pid;
  {
    TableLock lock(url_, "pool_locked");
    const absl::Time start = absl::Now();
    absl::Status status = read();
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
    EXPECT_THAT(status.message(), HasSubstr("timed out"));
    EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  }
  EXPECT_TRUE(read().ok());
  EXPECT_EQ(pid, first_pid);  // The connection was kept.
}

TEST_F(PgTest, AStatementRunningLongerThanTheStatementTimeoutFails) {
  Pool pool({.url = url_, .size = 1, .statement_timeout = absl::Milliseconds(200)});
  absl::Status status = pool.Autocommit([](pqxx::nontransaction& tx) {
    tx.exec("SELECT pg_sleep(5)");
    return absl::OkStatus();
  });
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_TRUE(pool.Ping().ok());
}

TEST_F(PgTest, CloseWakesAStatementBlockedOnTheDatabaseAndRefusesNewOnes) {
  Query(url_, "CREATE TABLE pool_closed (id int)");
  Pool pool({.url = url_, .size = 2, .lock_timeout = absl::ZeroDuration()});
  TableLock lock(url_, "pool_closed");
  absl::Notification done;
  absl::Status blocked_status;
  std::thread blocked([&] {
    blocked_status = pool.Transact([](pqxx::work& tx) {
      tx.exec("SELECT count(*) FROM pool_closed");
      return absl::OkStatus();
    });
    done.Notify();
  });
  ASSERT_TRUE(Eventually([&] {
    return Count(url_,
                 "pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE "
                 "'%pool_closed%'") == 1;
  }));
  EXPECT_FALSE(done.HasBeenNotified());
  pool.Close();
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(2)));
  blocked.join();
  EXPECT_EQ(blocked_status.code(), absl::StatusCode::kUnavailable) << blocked_status;
  EXPECT_EQ(pool.Ping().code(), absl::StatusCode::kUnavailable);
  pool.Close();  // Again: nothing more happens.
}

TEST_F(PgTest, PoolRecoversWhenItsConnectionIsKilled) {
  Pool pool({.url = url_, .size = 1});
  std::string pid;
  ASSERT_TRUE(pool.Transact([&](pqxx::work& tx) {
                    pid = tx.exec("SELECT pg_backend_pid()")[0][0].as<std::string>();
                    return absl::OkStatus();
                  })
                  .ok());
  // The idle pooled connection dies (as when the server restarts).
  EXPECT_EQ(Query(url_, "SELECT pg_terminate_backend(" + pid + ")"), "t");
  ASSERT_TRUE(Eventually([&] { return Count(url_, "pg_stat_activity WHERE pid = " + pid) == 0; }));

  std::string new_pid;
  absl::Status status = pool.Transact([&](pqxx::work& tx) {
    new_pid = tx.exec("SELECT pg_backend_pid()")[0][0].as<std::string>();
    return absl::OkStatus();
  });
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_NE(new_pid, pid);
  EXPECT_TRUE(pool.Ping().ok());
}

// As after a failover: the sessions the pool holds reach a server that turned read-only,
// while new sessions reach a writable one.
TEST_F(PgTest, AWriteOnAReadOnlyServerIsUnavailableAndItsConnectionIsDropped) {
  const std::string url = db_->CreateDatabase("read_only");
  const std::string name = Query(url, "SELECT current_database()");
  Exec(url, "CREATE TABLE t (id integer)");
  Exec(db_->admin_url(), "ALTER DATABASE " + name + " SET default_transaction_read_only = on");
  Pool pool({.url = url, .size = 2});
  auto insert = [&](std::string* pid) {
    return pool.Transact([&](pqxx::work& tx) {
      *pid = tx.exec("SELECT pg_backend_pid()")[0][0].as<std::string>();
      tx.exec("INSERT INTO t VALUES (1)");
      return absl::OkStatus();
    });
  };
  std::string read_only_pid;
  absl::Status status = insert(&read_only_pid);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr("read-only"));

  Exec(db_->admin_url(), "ALTER DATABASE " + name + " RESET default_transaction_read_only");
  std::string pid;
  status = insert(&pid);
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_NE(pid, read_only_pid);  // Not the read-only session again.
  EXPECT_EQ(Count(url, "t"), 1);
}

TEST_F(PgTest, PreparedStatementsRunWithEachRunsValuesAndSurviveANewConnection) {
  Pool pool({.url = url_, .size = 1});
  auto sum = [&](int64_t a, int64_t b) -> absl::StatusOr<int64_t> {
    int64_t result = 0;
    absl::Status status = pool.Autocommit([&](pqxx::nontransaction& tx) {
      Statement s("SELECT ");
      s.Int(a).Sql(" + ").Int(b);
      result = s.ExecPrepared(tx)[0][0].as<int64_t>();
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    return result;
  };
  EXPECT_EQ(sum(2, 3).value_or(-1), 5);
  EXPECT_EQ(sum(40, 2).value_or(-1), 42);
  std::string pid;
  int64_t prepared = 0;
  ASSERT_TRUE(pool.Transact([&](pqxx::work& tx) {
                    pid = tx.exec("SELECT pg_backend_pid()")[0][0].as<std::string>();
                    prepared = tx.exec(
                                     "SELECT count(*) FROM pg_prepared_statements "
                                     "WHERE statement LIKE 'SELECT $1::bigint + $2::bigint'")[0][0]
                                   .as<int64_t>();
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_EQ(prepared, 1);  // Both runs used the one statement.
  EXPECT_EQ(Query(url_, "SELECT pg_terminate_backend(" + pid + ")"), "t");
  ASSERT_TRUE(Eventually([&] { return Count(url_, "pg_stat_activity WHERE pid = " + pid) == 0; }));
  EXPECT_EQ(sum(7, 8).value_or(-1), 15);  // Prepared again on the new connection.
}

// --- Migrations ------------------------------------------------------------------------------

std::vector<Migration> TestMigrations() {
  return {
      {1, "create_items", "CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL)"},
      {2, "index_items", "CREATE INDEX items_name ON items (name)"},
      {3, "seed_items", "INSERT INTO items VALUES (1, 'one')"},
  };
}

std::string Hex(const std::string& bytes) { return absl::BytesToHexString(bytes); }

class MigrationsTest : public PgTest {
 protected:
  // Every test starts without the mig_test_* schemas (they survive --gtest_repeat otherwise).
  void SetUp() override {
    PgTest::SetUp();
    if (IsSkipped()) return;
    Exec(url_, R"sql(
      DO $$
      DECLARE s text;
      BEGIN
        FOR s IN SELECT nspname FROM pg_namespace WHERE nspname LIKE 'mig\_test\_%' LOOP
          EXECUTE 'DROP SCHEMA ' || quote_ident(s) || ' CASCADE';
        END LOOP;
      END $$)sql");
  }

  bool SchemaExists(const std::string& schema) {
    return Count(url_, "information_schema.schemata WHERE schema_name = '" + schema + "'") == 1;
  }
  bool TableExists(const std::string& schema, const std::string& table) {
    return Count(url_, "information_schema.tables WHERE table_schema = '" + schema +
                           "' AND table_name = '" + table + "'") == 1;
  }
  // "version:name:checksum:applied_at" per row, in version order.
  std::string AppliedRows(const std::string& schema) {
    return Query(url_,
                 "SELECT string_agg(version || ':' || name || ':' || checksum || ':' || "
                 "applied_at::text, ',' ORDER BY version) FROM " +
                     schema + ".schema_migrations");
  }
};

TEST_F(MigrationsTest, AppliesIntoTheSchema) {
  const std::vector<Migration> migrations = TestMigrations();
  absl::Status status = ApplyMigrations(url_, "mig_test_apply", migrations);
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_TRUE(SchemaExists("mig_test_apply"));
  EXPECT_TRUE(TableExists("mig_test_apply", "schema_migrations"));
  EXPECT_TRUE(TableExists("mig_test_apply", "items"));
  EXPECT_FALSE(TableExists("public", "items"));  // Unqualified names land in the schema.
  EXPECT_EQ(Query(url_, "SELECT name FROM mig_test_apply.items WHERE id = 1"), "one");
  EXPECT_EQ(Count(url_,
                  "pg_indexes WHERE schemaname = 'mig_test_apply' AND indexname = "
                  "'items_name'"),
            1);
  EXPECT_EQ(Query(url_,
                  "SELECT string_agg(version || ':' || name, ',' ORDER BY version) FROM "
                  "mig_test_apply.schema_migrations"),
            "1:create_items,2:index_items,3:seed_items");
  EXPECT_EQ(Query(url_, "SELECT checksum FROM mig_test_apply.schema_migrations WHERE version = 2"),
            Hex(crypto::Sha256(migrations[1].sql)));
}

TEST_F(MigrationsTest, SecondRunChangesNothing) {
  ASSERT_TRUE(ApplyMigrations(url_, "mig_test_again", TestMigrations()).ok());
  const std::string before = AppliedRows("mig_test_again");
  ASSERT_FALSE(before.empty());

  absl::Status status = ApplyMigrations(url_, "mig_test_again", TestMigrations());
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(AppliedRows("mig_test_again"), before);
  EXPECT_EQ(Count(url_, "mig_test_again.items"), 1);  // The seed did not run twice.
}

TEST_F(MigrationsTest, AppliesOnlyNewMigrations) {
  std::vector<Migration> all = TestMigrations();
  std::vector<Migration> first_two(all.begin(), all.begin() + 2);
  ASSERT_TRUE(ApplyMigrations(url_, "mig_test_incremental", first_two).ok());
  EXPECT_EQ(Count(url_, "mig_test_incremental.schema_migrations"), 2);
  EXPECT_EQ(Count(url_, "mig_test_incremental.items"), 0);
  const std::string first_rows = AppliedRows("mig_test_incremental");

  ASSERT_TRUE(ApplyMigrations(url_, "mig_test_incremental", all).ok());
  EXPECT_EQ(Count(url_, "mig_test_incremental.schema_migrations"), 3);
  EXPECT_EQ(Count(url_, "mig_test_incremental.items"), 1);
  EXPECT_THAT(AppliedRows("mig_test_incremental"), ::testing::StartsWith(first_rows + ","));
}

TEST_F(MigrationsTest, ConcurrentRunsApplyEachMigrationOnce) {
  constexpr int kThreads = 4;
  std::vector<absl::Status> results(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back(
        [&, i] { results[i] = ApplyMigrations(url_, "mig_test_concurrent", TestMigrations()); });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) EXPECT_TRUE(results[i].ok()) << i << ": " << results[i];
  EXPECT_EQ(Query(url_,
                  "SELECT string_agg(version::text, ',' ORDER BY version) FROM "
                  "mig_test_concurrent.schema_migrations"),
            "1,2,3");
  EXPECT_EQ(Count(url_, "mig_test_concurrent.items"), 1);  // The seed ran once.
}

// A runtime role may read and write the tables but create nothing: starting with
// apply_migrations on a schema already migrated must need no more.
TEST_F(MigrationsTest, AnUpToDateSchemaNeedsNoPrivilegeToCreate) {
  const std::string url = db_->CreateDatabase("no_create");
  ASSERT_TRUE(ApplyMigrations(url, "mig_test_runtime", TestMigrations()).ok());
  const std::string name = Query(url, "SELECT current_database()");
  Exec(url, "REVOKE CREATE ON DATABASE " + name + " FROM CURRENT_USER, PUBLIC");
  Exec(url, "REVOKE CREATE ON SCHEMA mig_test_runtime FROM CURRENT_USER, PUBLIC");
  ASSERT_EQ(Query(url, "SELECT has_database_privilege(current_database(), 'CREATE')"), "f");

  absl::Status status = ApplyMigrations(url, "mig_test_runtime", TestMigrations());
  EXPECT_TRUE(status.ok()) << status;
  // A pending migration still needs them, and says so.
  std::vector<Migration> more = TestMigrations();
  more.push_back({4, "more_items", "CREATE TABLE more_items (id integer)"});
  status = ApplyMigrations(url, "mig_test_runtime", more);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("permission denied"));
}

TEST_F(MigrationsTest, EditedMigrationIsFailedPrecondition) {
  ASSERT_TRUE(ApplyMigrations(url_, "mig_test_edited", TestMigrations()).ok());
  const std::string before = AppliedRows("mig_test_edited");

  std::vector<Migration> edited = TestMigrations();
  edited[1].sql = "CREATE INDEX items_name ON items (name, id)";
  absl::Status status = ApplyMigrations(url_, "mig_test_edited", edited);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(), HasSubstr("index_items"));
  EXPECT_EQ(CheckMigrations(url_, "mig_test_edited", edited).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(AppliedRows("mig_test_edited"), before);
}

// The previous release during a rollout, or after a rollback.
TEST_F(MigrationsTest, DatabaseAheadOfBinaryIsAcceptedWhenTheBinarysMigrationsMatch) {
  ASSERT_TRUE(ApplyMigrations(url_, "mig_test_ahead", TestMigrations()).ok());
  const std::string before = AppliedRows("mig_test_ahead");
  std::vector<Migration> older = TestMigrations();
  older.pop_back();
  absl::Status status = ApplyMigrations(url_, "mig_test_ahead", older);
  EXPECT_TRUE(status.ok()) << status;
  status = CheckMigrations(url_, "mig_test_ahead", older);
  EXPECT_TRUE(status.ok()) << status;
  EXPECT_EQ(AppliedRows("mig_test_ahead"), before);

  // Not when one of its own was edited.
  older[1].sql = "CREATE INDEX items_name ON items (name, id)";
  status = ApplyMigrations(url_, "mig_test_ahead", older);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(), HasSubstr("index_items"));
  EXPECT_EQ(CheckMigrations(url_, "mig_test_ahead", older).code(),
            absl::StatusCode::kFailedPrecondition);

  // Nor when one of its own is missing under the newer ones.
  Exec(url_, "DELETE FROM mig_test_ahead.schema_migrations WHERE version = 2");
  std::vector<Migration> first_two = TestMigrations();
  first_two.pop_back();
  status = ApplyMigrations(url_, "mig_test_ahead", first_two);
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(), HasSubstr("3 (seed_items)"));
  EXPECT_EQ(CheckMigrations(url_, "mig_test_ahead", first_two).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(MigrationsTest, FailingMigrationRollsBackAlone) {
  std::vector<Migration> migrations = TestMigrations();
  migrations[1].sql = "CREATE TABLE half_done (id integer); SELECT * FROM no_such_table";
  absl::Status status = ApplyMigrations(url_, "mig_test_failing", migrations);
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("no_such_table"));
  // Migration 1 committed with its row; migration 2 left nothing behind; 3 never ran.
  EXPECT_TRUE(TableExists("mig_test_failing", "items"));
  EXPECT_FALSE(TableExists("mig_test_failing", "half_done"));
  EXPECT_EQ(Query(url_,
                  "SELECT string_agg(version::text, ',') FROM "
                  "mig_test_failing.schema_migrations"),
            "1");
  EXPECT_EQ(Count(url_, "mig_test_failing.items"), 0);

  // The lock was released with the connection: a fixed binary gets through.
  absl::Status fixed = ApplyMigrations(url_, "mig_test_failing", TestMigrations());
  EXPECT_TRUE(fixed.ok()) << fixed;
  EXPECT_EQ(Count(url_, "mig_test_failing.schema_migrations"), 3);
}

// A migration that must wait for a transaction using its table waits at most lock_timeout at a
// time, so queries on the table are not held behind it meanwhile, and gets through once the
// transaction ends; one that never gets the lock gives up.
TEST_F(MigrationsTest, AMigrationWaitingForALockLetsQueriesThroughAndTriesAgain) {
  std::vector<Migration> migrations = TestMigrations();
  ASSERT_TRUE(ApplyMigrations(url_, "mig_test_lock", migrations).ok());
  migrations.push_back({4, "alter_items", "ALTER TABLE items ADD COLUMN extra text"});
  const MigrationLockWait quick{.lock_timeout = absl::Milliseconds(100),
                                .attempts = 3,
                                .retry_delay = absl::Milliseconds(10)};

  pqxx::connection holder(url_);
  auto holding = std::make_unique<pqxx::work>(holder);
  holding->exec("SELECT * FROM mig_test_lock.items");  // Holds the table until it ends.
  absl::Status status = ApplyMigrations(url_, "mig_test_lock", migrations, quick);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr("migration 4 (alter_items) of schema mig_test_lock"));
  EXPECT_EQ(Count(url_, "mig_test_lock.schema_migrations"), 3);

  // Tried again for as long as it takes, while a reader keeps reading.
  absl::Status applied;
  std::thread migrate([&] {
    applied = ApplyMigrations(url_, "mig_test_lock", migrations,
                              {.lock_timeout = absl::Milliseconds(100),
                               .attempts = 1000,
                               .retry_delay = absl::Milliseconds(10)});
  });
  try {
    pqxx::connection reader(url_);
    for (int i = 0; i < 5; ++i) {
      pqxx::work read(reader);
      // Far longer than a lock_timeout, far shorter than the holder's transaction.
      read.exec("SET LOCAL statement_timeout = 2000");
      EXPECT_EQ(read.exec1("SELECT count(*) FROM mig_test_lock.items")[0].as<int>(), 1) << i;
      read.commit();
      absl::SleepFor(absl::Milliseconds(100));
    }
  } catch (const std::exception& e) {
    ADD_FAILURE() << "a reader was held behind the migration: " << e.what();
  }
  holding->commit();
  migrate.join();
  EXPECT_TRUE(applied.ok()) << applied;
  EXPECT_EQ(Count(url_, "mig_test_lock.schema_migrations"), 4);
}

TEST_F(MigrationsTest, CheckReportsMissingMigrationsAndChangesNothing) {
  absl::Status status = CheckMigrations(url_, "mig_test_check", TestMigrations());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_FALSE(SchemaExists("mig_test_check"));

  std::vector<Migration> first_two = TestMigrations();
  first_two.pop_back();
  ASSERT_TRUE(ApplyMigrations(url_, "mig_test_check", first_two).ok());
  status = CheckMigrations(url_, "mig_test_check", TestMigrations());
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_THAT(status.message(), HasSubstr("2 of 3"));
  EXPECT_EQ(Count(url_, "mig_test_check.schema_migrations"), 2);

  ASSERT_TRUE(ApplyMigrations(url_, "mig_test_check", TestMigrations()).ok());
  status = CheckMigrations(url_, "mig_test_check", TestMigrations());
  EXPECT_TRUE(status.ok()) << status;
}

TEST_F(MigrationsTest, RejectsBadArguments) {
  for (const char* schema : {"", "mig;drop", "mig-test", "mig test", "mig\"x"}) {
    SCOPED_TRACE(schema);
    EXPECT_EQ(ApplyMigrations(url_, schema, TestMigrations()).code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(CheckMigrations(url_, schema, TestMigrations()).code(),
              absl::StatusCode::kInvalidArgument);
  }
  std::vector<Migration> gap = TestMigrations();
  gap[2].version = 4;
  EXPECT_EQ(ApplyMigrations(url_, "mig_test_gap", gap).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(SchemaExists("mig_test_gap"));
}

TEST_F(MigrationsTest, UnreachableServerIsUnavailable) {
  EXPECT_EQ(ApplyMigrations(kClosedPortUrl, "mig_test_down", TestMigrations()).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(CheckMigrations(kClosedPortUrl, "mig_test_down", TestMigrations()).code(),
            absl::StatusCode::kUnavailable);
}

// --- NotificationFeed ------------------------------------------------------------------------

// What the feed told its consumer, recorded from the feed's thread.
class Recorder {
 public:
  NotificationFeed::Callbacks Callbacks() {
    return {
        .resync =
            [this](pqxx::connection& c) {
              absl::MutexLock lock(&mu_);
              ++resyncs_;
              backend_pid_ = c.backendpid();
              if (unlisten_in_resync_) {
                pqxx::nontransaction tx(c);
                tx.exec("UNLISTEN *");
              }
              return absl::OkStatus();
            },
        .changed =
            [this](pqxx::connection&, const std::vector<std::string>& payloads) {
              absl::MutexLock lock(&mu_);
              payloads_.insert(payloads_.end(), payloads.begin(), payloads.end());
              batches_.push_back(payloads);
              if (fail_next_changed_) {
                fail_next_changed_ = false;
                return absl::InternalError("consumer failed");
              }
              return absl::OkStatus();
            },
        .in_sync =
            [this](absl::Time as_of) {
              absl::MutexLock lock(&mu_);
              in_sync_.push_back({as_of, payloads_.size()});
            },
    };
  }

  int resyncs() {
    absl::MutexLock lock(&mu_);
    return resyncs_;
  }
  int backend_pid() {
    absl::MutexLock lock(&mu_);
    return backend_pid_;
  }
  std::vector<std::string> payloads() {
    absl::MutexLock lock(&mu_);
    return payloads_;
  }
  std::vector<std::vector<std::string>> batches() {
    absl::MutexLock lock(&mu_);
    return batches_;
  }
  size_t in_sync_count() {
    absl::MutexLock lock(&mu_);
    return in_sync_.size();
  }
  // (as_of, how many payloads had been delivered when in_sync was called)
  std::vector<std::pair<absl::Time, size_t>> in_sync() {
    absl::MutexLock lock(&mu_);
    return in_sync_;
  }
  bool Received(const std::string& payload) {
    absl::MutexLock lock(&mu_);
    return std::find(payloads_.begin(), payloads_.end(), payload) != payloads_.end();
  }
  void FailNextChanged() {
    absl::MutexLock lock(&mu_);
    fail_next_changed_ = true;
  }
  // Each resync ends its session's LISTEN, as when statements reach another server session.
  void UnlistenInResync() {
    absl::MutexLock lock(&mu_);
    unlisten_in_resync_ = true;
  }

 private:
  absl::Mutex mu_;
  int resyncs_ ABSL_GUARDED_BY(mu_) = 0;
  int backend_pid_ ABSL_GUARDED_BY(mu_) = 0;
  bool fail_next_changed_ ABSL_GUARDED_BY(mu_) = false;
  bool unlisten_in_resync_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::string> payloads_ ABSL_GUARDED_BY(mu_);
  std::vector<std::vector<std::string>> batches_ ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<absl::Time, size_t>> in_sync_ ABSL_GUARDED_BY(mu_);
};

class NotificationFeedTest : public PgTest {
 protected:
  void Notify(const std::string& channel, const std::string& payload) {
    Exec(url_, "SELECT pg_notify('" + channel + "', '" + payload + "')");
  }

  Recorder recorder_;
};

TEST_F(NotificationFeedTest, ResyncsOnStartAndDeliversNotifications) {
  NotificationFeed feed(url_, "feed_chan_a", recorder_.Callbacks(), Clock::Real(),
                        absl::Milliseconds(50));
  feed.Start();
  ASSERT_TRUE(Eventually([&] { return recorder_.resyncs() == 1; }));
  ASSERT_TRUE(Eventually([&] { return recorder_.in_sync_count() >= 1; }));

  Notify("feed_chan_a", "key-1");
  Notify("other_chan", "not-for-us");
  ASSERT_TRUE(Eventually([&] { return recorder_.Received("key-1"); }));
  Notify("feed_chan_a", "key-2");
  ASSERT_TRUE(Eventually([&] { return recorder_.Received("key-2"); }));
  feed.Stop();

  EXPECT_EQ(recorder_.payloads(), (std::vector<std::string>{"key-1", "key-2"}));
  EXPECT_EQ(recorder_.resyncs(), 1);
}

TEST_F(NotificationFeedTest, BatchesAreSortedAndDeduplicated) {
  NotificationFeed feed(url_, "feed_chan_b", recorder_.Callbacks(), Clock::Real(),
                        absl::Milliseconds(50));
  feed.Start();
  ASSERT_TRUE(Eventually([&] { return recorder_.resyncs() == 1; }));
  // Several transactions' notifications, sent back to back on one connection, usually reach
  // the feed in one batch; whatever the batching, no batch repeats a payload.
  {
    pqxx::connection c(url_);
    pqxx::nontransaction tx(c);
    for (const char* payload : {"k3", "k1", "k3", "k2", "k1"}) {
      tx.exec(absl::StrCat("SELECT pg_notify('feed_chan_b', '", payload, "')"));
    }
  }
  ASSERT_TRUE(Eventually([&] {
    return recorder_.Received("k1") && recorder_.Received("k2") && recorder_.Received("k3");
  }));
  feed.Stop();
  for (const std::vector<std::string>& batch : recorder_.batches()) {
    EXPECT_TRUE(std::is_sorted(batch.begin(), batch.end()));
    EXPECT_EQ(std::adjacent_find(batch.begin(), batch.end()), batch.end());
  }
}

TEST_F(NotificationFeedTest, InSyncHeartbeatsWithIncreasingTimes) {
  NotificationFeed feed(url_, "feed_chan_c", recorder_.Callbacks(), Clock::Real(),
                        absl::Milliseconds(50));
  const absl::Time start = absl::Now();
  feed.Start();
  ASSERT_TRUE(Eventually([&] { return recorder_.in_sync_count() >= 5; }));
  feed.Stop();
  const absl::Time stop = absl::Now();

  std::vector<std::pair<absl::Time, size_t>> in_sync = recorder_.in_sync();
  ASSERT_GE(in_sync.size(), 5u);
  for (size_t i = 0; i < in_sync.size(); ++i) {
    EXPECT_GE(in_sync[i].first, start);
    EXPECT_LE(in_sync[i].first, stop);
    if (i > 0) {
      EXPECT_GT(in_sync[i].first, in_sync[i - 1].first) << i;
    }
  }
  // "At least every heartbeat": allow generous scheduling slack, but not whole seconds.
  for (size_t i = 1; i < in_sync.size(); ++i) {
    EXPECT_LT(in_sync[i].first - in_sync[i - 1].first, absl::Seconds(1)) << i;
  }
}

TEST_F(NotificationFeedTest, InSyncCoversEveryEarlierCommit) {
  NotificationFeed feed(url_, "feed_chan_d", recorder_.Callbacks(), Clock::Real(),
                        absl::Milliseconds(50));
  feed.Start();
  ASSERT_TRUE(Eventually([&] { return recorder_.resyncs() == 1; }));
  Notify("feed_chan_d", "committed");
  const absl::Time committed = absl::Now();
  ASSERT_TRUE(Eventually([&] {
    std::vector<std::pair<absl::Time, size_t>> in_sync = recorder_.in_sync();
    return !in_sync.empty() && in_sync.back().first > committed;
  }));
  feed.Stop();
  // The first in_sync whose as_of is after the commit came after the payload's delivery.
  for (const auto& [as_of, delivered] : recorder_.in_sync()) {
    if (as_of <= committed) continue;
    EXPECT_EQ(delivered, 1u);
    break;
  }
}

TEST(CheckClockSkewTest, AllowsTheRoundTripAndTheBoundEitherWay) {
  const absl::Time sent = absl::FromUnixSeconds(1'800'000'000);
  const absl::Time received = sent + absl::Milliseconds(30);
  const absl::Duration bound = absl::Seconds(1);
  EXPECT_TRUE(CheckClockSkew(sent, received, sent + absl::Milliseconds(10), bound).ok());
  EXPECT_TRUE(CheckClockSkew(sent, received, sent - bound, bound).ok());
  EXPECT_TRUE(CheckClockSkew(sent, received, received + bound, bound).ok());
  absl::Status behind = CheckClockSkew(sent, received, sent - absl::Seconds(5), bound);
  EXPECT_EQ(behind.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(behind.message(), ::testing::HasSubstr("-5s"));
  EXPECT_EQ(CheckClockSkew(sent, received, received + absl::Seconds(2), bound).code(),
            absl::StatusCode::kFailedPrecondition);
}

// A consumer judging expiry by a clock minutes off would honour expired keys (or refuse
// valid ones) for minutes: it must turn stale instead, and recover once the clocks agree. The
// skew is set before the feed starts (a change while a heartbeat is in flight would put its
// two readings on both sides of the database's time).
void ExpectNoHeartbeatWhileSkewed(absl::Duration skew, const std::string& url,
                                  const std::string& channel, Recorder& recorder) {
  SkewedClock clock(Clock::Real(), skew);
  NotificationFeed feed(url, channel, recorder.Callbacks(), &clock, absl::Milliseconds(50),
                        absl::Seconds(1));
  feed.Start();
  ASSERT_TRUE(Eventually([&] { return recorder.resyncs() == 1; }));
  Exec(url, "SELECT pg_notify('" + channel + "', 'still-delivered')");
  ASSERT_TRUE(Eventually([&] { return recorder.Received("still-delivered"); }));
  absl::SleepFor(absl::Milliseconds(300));  // Six heartbeats.
  EXPECT_EQ(recorder.in_sync_count(), 0u);
  clock.set_skew(absl::ZeroDuration());
  ASSERT_TRUE(Eventually([&] { return recorder.in_sync_count() >= 2; }));
  feed.Stop();
  EXPECT_EQ(recorder.resyncs(), 1);  // The session was kept throughout.
}

TEST_F(NotificationFeedTest, NoHeartbeatWhileTheHostsClockIsBehindTheDatabases) {
  ExpectNoHeartbeatWhileSkewed(absl::Minutes(-5), url_, "feed_chan_behind", recorder_);
}

TEST_F(NotificationFeedTest, NoHeartbeatWhileTheHostsClockIsAheadOfTheDatabases) {
  ExpectNoHeartbeatWhileSkewed(absl::Minutes(5), url_, "feed_chan_ahead", recorder_);
}

TEST_F(NotificationFeedTest, FailingCallbackResyncs) {
  NotificationFeed feed(url_, "feed_chan_e", recorder_.Callbacks(), Clock::Real(),
                        absl::Milliseconds(50));
  feed.Start();
  ASSERT_TRUE(Eventually([&] { return recorder_.resyncs() == 1; }));
  recorder_.FailNextChanged();
  Notify("feed_chan_e", "boom");
  ASSERT_TRUE(Eventually([&] { return recorder_.resyncs() == 2; }));
  // Listening again after the new connection's resync.
  Notify("feed_chan_e", "after");
  EXPECT_TRUE(Eventually([&] { return recorder_.Received("after"); }));
  feed.Stop();
}

TEST_F(NotificationFeedTest, ReconnectsAndResyncsWhenItsConnectionIsKilled) {
  NotificationFeed feed(url_, "feed_chan_f", recorder_.Callbacks(), Clock::Real(),
                        absl::Milliseconds(50));
  feed.Start();
  ASSERT_TRUE(Eventually([&] { return recorder_.resyncs() == 1; }));
  const int pid = recorder_.backend_pid();
  ASSERT_GT(pid, 0);
  EXPECT_EQ(Query(url_, absl::StrCat("SELECT pg_terminate_backend(", pid, ")")), "t");
  ASSERT_TRUE(Eventually([&] { return recorder_.resyncs() == 2; }));
  EXPECT_NE(recorder_.backend_pid(), pid);
  const size_t seen = recorder_.in_sync_count();
  EXPECT_TRUE(Eventually([&] { return recorder_.in_sync_count() > seen; }));
  Notify("feed_chan_f", "after-reconnect");
  EXPECT_TRUE(Eventually([&] { return recorder_.Received("after-reconnect"); }));
  feed.Stop();
}

TEST_F(NotificationFeedTest, AHeartbeatFromASessionThatDoesNotListenNeverCallsInSync) {
  recorder_.UnlistenInResync();
  NotificationFeed feed(url_, "feed_chan_j", recorder_.Callbacks(), Clock::Real(),
                        absl::Milliseconds(50));
  feed.Start();
  ASSERT_TRUE(Eventually([&] { return recorder_.resyncs() >= 2; }));  // It starts over.
  feed.Stop();
  EXPECT_EQ(recorder_.in_sync_count(), 0u);
}

TEST(CheckListenerSessionTest, OnlyTheListeningSessionProvesTheFeedFresh) {
  EXPECT_TRUE(CheckListenerSession("chan", 41, {.backend_pid = 41, .listening = true}).ok());
  // Behind a pooler in transaction mode: another server session answered.
  absl::Status other = CheckListenerSession("chan", 41, {.backend_pid = 42, .listening = false});
  EXPECT_EQ(other.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(other.message(), HasSubstr("LISTEN needs a direct or session-pooled connection"));
  EXPECT_THAT(other.message(), HasSubstr("backend 41"));
  EXPECT_THAT(other.message(), HasSubstr("backend 42"));
  // Another session that happens to listen on the channel too is still another session.
  EXPECT_EQ(CheckListenerSession("chan", 41, {.backend_pid = 42, .listening = true}).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CheckListenerSession("chan", 41, {.backend_pid = 41, .listening = false}).code(),
            absl::StatusCode::kFailedPrecondition);
}

// A TCP listener that accepts connections and closes them at once: a "database" that never
// answers. Counts the connection attempts.
class DeadServer {
 public:
  DeadServer() {
    if (listener_.port() == 0) return;
    thread_ = std::thread([this] {
      while (!stop_) {
        pollfd p{listener_.fd(), POLLIN, 0};
        if (poll(&p, 1, 10) <= 0) continue;
        int client = accept(listener_.fd(), nullptr, nullptr);
        if (client >= 0) {
          close(client);
          ++accepted_;
        }
      }
    });
  }
  ~DeadServer() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int port() const { return listener_.port(); }
  int accepted() const { return accepted_; }

 private:
  policy::testing::LoopbackListener listener_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

TEST_F(NotificationFeedTest, UnreachableServerNeverCallsInSync) {
  DeadServer dead;
  ASSERT_GT(dead.port(), 0);
  NotificationFeed feed(absl::StrCat("postgresql://policy@127.0.0.1:", dead.port(), "/policy"),
                        "feed_chan_g", recorder_.Callbacks(), Clock::Real(),
                        absl::Milliseconds(50));
  feed.Start();
  // Several connection attempts (libpq may make two per attempt), so the feed has retried.
  ASSERT_TRUE(Eventually([&] { return dead.accepted() >= 4; }));
  feed.Stop();
  EXPECT_EQ(recorder_.resyncs(), 0);
  EXPECT_EQ(recorder_.in_sync_count(), 0u);
  EXPECT_TRUE(recorder_.payloads().empty());
}

TEST_F(NotificationFeedTest, StopWithoutStartAndTwice) {
  NotificationFeed feed(url_, "feed_chan_i", recorder_.Callbacks(), Clock::Real(),
                        absl::Milliseconds(50));
  feed.Stop();
  feed.Stop();
  EXPECT_EQ(recorder_.resyncs(), 0);
}

}  // namespace
}  // namespace policy::pg
