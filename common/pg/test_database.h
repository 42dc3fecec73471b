#ifndef POLICY_COMMON_PG_TEST_DATABASE_H_
#define POLICY_COMMON_PG_TEST_DATABASE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/pg/migrations.h"
#include "common/pg/pool.h"

namespace policy::pg {

// A database of one test process's own, on the server named by POLICY_TEST_PG_URL, created
// on first use and dropped at exit, so test binaries running in parallel never share tables.
//
// Returns nullptr when POLICY_TEST_PG_URL is unset (tests then skip), unless
// POLICY_TEST_REQUIRE_PG=1, in which case an unset or unreachable server aborts the process:
// CI must never pass by skipping the PostgreSQL tests.
class TestDatabase {
 public:
  static const TestDatabase* Get();

  // URL of the process's own database.
  const std::string& url() const { return url_; }
  // URL of the server's maintenance database (for CREATE DATABASE and the like).
  const std::string& admin_url() const { return admin_url_; }

  // A further fresh database on the same server, dropped at exit.
  std::string CreateDatabase(const std::string& suffix) const;

  // A pool on url() with `schema` brought up to `migrations` (applied once per process) and
  // `reset_sql` run (say, a TRUNCATE of the schema's tables), so that a test starts empty.
  absl::StatusOr<std::shared_ptr<Pool>> Reset(absl::string_view schema,
                                              const std::vector<Migration>& migrations,
                                              const std::string& reset_sql) const;

  // URL of the login role that `schema`'s service runs as in production, a member of
  // policy_<schema>_runtime only (tools/dev creates policy_keys, policy_authz, policy_region
  // and policy_audit), on url()'s database, from POLICY_TEST_PG_<SCHEMA>_RUNTIME_URL. Empty
  // when that is unset (tests then skip), unless POLICY_TEST_REQUIRE_PG=1, in which case an
  // unset one aborts the process: CI must never pass by skipping the runtime roles' tests.
  std::string RuntimeUrl(absl::string_view schema) const;

  // As Reset, but the pool logs in as RuntimeUrl(schema): the migrations and `reset_sql` run
  // as the owner, the store under test as the runtime role. FAILED_PRECONDITION when
  // RuntimeUrl(schema) is empty.
  absl::StatusOr<std::shared_ptr<Pool>> ResetAsRuntime(absl::string_view schema,
                                                       const std::vector<Migration>& migrations,
                                                       const std::string& reset_sql) const;

 private:
  TestDatabase(std::string admin_url, std::string base_name);
  std::string admin_url_;
  std::string base_name_;
  std::string url_;
};

// `url` with its database name replaced by `database`.
std::string WithDatabase(const std::string& url, const std::string& database);

}  // namespace policy::pg

#endif  // POLICY_COMMON_PG_TEST_DATABASE_H_
