#include "common/pg/test_database.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <set>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/pg/pool.h"
#include "common/pg/privileges.h"
#include "pqxx/pqxx"

namespace policy::pg {
namespace {

// The process's own database is <base name>_main (url()).
constexpr char kMainSuffix[] = "main";

std::mutex created_mu;
std::vector<std::pair<std::string, std::string>>* created = nullptr;  // (admin url, name)

void DropCreated() {
  std::lock_guard<std::mutex> lock(created_mu);
  if (created == nullptr) return;
  for (const auto& [admin_url, name] : *created) {
    try {
      pqxx::connection c(ConnectionString(admin_url, absl::Seconds(2)));
      pqxx::nontransaction tx(c);
      tx.exec(absl::StrCat("DROP DATABASE IF EXISTS ", name, " WITH (FORCE)"));
    } catch (const std::exception&) {
      // The server may already be gone; the database is then left behind harmlessly.
    }
  }
}

std::string ProgramName() {
  std::ifstream in("/proc/self/comm");
  std::string name;
  std::getline(in, name);
  std::string clean;
  for (char c : name) clean += absl::ascii_isalnum(c) ? absl::ascii_tolower(c) : '_';
  return clean.empty() ? "test" : clean;
}

[[noreturn]] void Die(const std::string& why) {
  std::fprintf(stderr, "FATAL: %s\n", why.c_str());
  std::abort();
}

}  // namespace

std::string WithDatabase(const std::string& url, const std::string& database) {
  size_t scheme = url.find("://");
  size_t slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  size_t query = url.find('?');
  std::string base = url.substr(0, slash == std::string::npos ? query : slash);
  std::string rest = query == std::string::npos ? "" : url.substr(query);
  return absl::StrCat(base, "/", database, rest);
}

TestDatabase::TestDatabase(std::string admin_url, std::string base_name)
    : admin_url_(std::move(admin_url)), base_name_(std::move(base_name)) {
  url_ = CreateDatabase(kMainSuffix);
}

std::string TestDatabase::CreateDatabase(const std::string& suffix) const {
  std::string name = absl::StrCat(base_name_, "_", suffix);
  try {
    pqxx::connection c(ConnectionString(admin_url_, absl::Seconds(5)));
    pqxx::nontransaction tx(c);
    tx.exec(absl::StrCat("DROP DATABASE IF EXISTS ", name, " WITH (FORCE)"));
    tx.exec(absl::StrCat("CREATE DATABASE ", name));
  } catch (const std::exception& e) {
    Die(absl::StrCat("cannot create test database ", name, ": ", e.what()));
  }
  std::lock_guard<std::mutex> lock(created_mu);
  if (created == nullptr) {
    created = new std::vector<std::pair<std::string, std::string>>();
    std::atexit(DropCreated);
  }
  created->emplace_back(admin_url_, name);
  return WithDatabase(admin_url_, name);
}

const TestDatabase* TestDatabase::Get() {
  static const TestDatabase* const kDatabase = []() -> const TestDatabase* {
    const char* url = std::getenv("POLICY_TEST_PG_URL");
    const char* required = std::getenv("POLICY_TEST_REQUIRE_PG");
    const bool must = required != nullptr && std::string(required) == "1";
    if (url == nullptr || *url == '\0') {
      if (must) Die("POLICY_TEST_REQUIRE_PG=1 but POLICY_TEST_PG_URL is not set");
      return nullptr;
    }
    return new TestDatabase(url, absl::StrCat("t_", ProgramName(), "_", getpid()));
  }();
  return kDatabase;
}

absl::StatusOr<std::shared_ptr<Pool>> TestDatabase::Reset(absl::string_view schema,
                                                          const std::vector<Migration>& migrations,
                                                          const std::string& reset_sql) const {
  static std::mutex migrated_mu;
  static auto* const migrated = new std::set<std::string>();
  {
    std::lock_guard<std::mutex> lock(migrated_mu);
    if (!migrated->contains(std::string(schema))) {
      if (absl::Status s = ApplyMigrations(url_, schema, migrations); !s.ok()) return s;
      migrated->insert(std::string(schema));
    }
  }
  auto pool = std::make_shared<Pool>(PoolOptions{.url = url_, .size = 8});
  absl::Status reset = pool->Transact([&](pqxx::work& tx) {
    tx.exec(reset_sql);
    return absl::OkStatus();
  });
  if (!reset.ok()) return reset;
  return pool;
}

std::string TestDatabase::RuntimeUrl(absl::string_view schema) const {
  const std::string variable =
      absl::StrCat("POLICY_TEST_PG_", absl::AsciiStrToUpper(schema), "_RUNTIME_URL");
  const char* url = std::getenv(variable.c_str());
  if (url == nullptr || *url == '\0') {
    const char* required = std::getenv("POLICY_TEST_REQUIRE_PG");
    if (required != nullptr && std::string(required) == "1") {
      Die(absl::StrCat("POLICY_TEST_REQUIRE_PG=1 but ", variable,
                       " is not set (tools/dev test sets it to the URL of a member of ",
                       RuntimeRoleName(schema), ")"));
    }
    return "";
  }
  return WithDatabase(url, absl::StrCat(base_name_, "_", kMainSuffix));  // url_'s database.
}

absl::StatusOr<std::shared_ptr<Pool>> TestDatabase::ResetAsRuntime(
    absl::string_view schema, const std::vector<Migration>& migrations,
    const std::string& reset_sql) const {
  const std::string runtime = RuntimeUrl(schema);
  if (runtime.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("no runtime role URL for schema ", schema));
  }
  absl::StatusOr<std::shared_ptr<Pool>> owner = Reset(schema, migrations, reset_sql);
  if (!owner.ok()) return owner.status();
  return std::make_shared<Pool>(PoolOptions{.url = runtime, .size = 8});
}

}  // namespace policy::pg
