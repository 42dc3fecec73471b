#include "common/pg/migrations.h"

#include <algorithm>
#include <map>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/crypto/crypto.h"
#include "common/log/log.h"
#include "common/pg/pool.h"
#include "common/pg/privileges.h"
#include "pqxx/pqxx"

namespace policy::pg {
namespace {

// SQLSTATE lock_not_available: a statement waited lock_timeout for a lock.
constexpr char kLockNotAvailable[] = "55P03";

std::string Checksum(const Migration& m) { return absl::BytesToHexString(crypto::Sha256(m.sql)); }

bool ValidSchemaName(absl::string_view schema) {
  if (schema.empty() || schema.size() > 63) return false;
  for (char c : schema) {
    if (!((c >= 'a' && c <= 'z') || c == '_')) return false;
  }
  return true;
}

struct AppliedMigration {
  std::string name;
  std::string checksum;
};

// version -> what the database has applied; empty when nothing is.
std::map<int, AppliedMigration> Applied(pqxx::connection& c, absl::string_view schema) {
  std::map<int, AppliedMigration> applied;
  pqxx::nontransaction tx(c);
  // From the catalogs, which every role may read: information_schema.tables would hide the
  // table from a role without privileges on it, which would then seem to have nothing applied.
  pqxx::result exists = tx.exec_params(
      "SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
      "ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = 'schema_migrations'",
      std::string(schema));
  if (exists.empty()) return applied;
  for (const auto& row : tx.exec(absl::StrCat("SELECT version, name, checksum FROM ", schema,
                                              ".schema_migrations ORDER BY version"))) {
    applied[row[0].as<int>()] = {row[1].as<std::string>(), row[2].as<std::string>()};
  }
  return applied;
}

// OK when every migration of this binary that the database has applied was applied with
// the same SQL. Migrations newer than this binary's (a newer release migrated the schema,
// and this one runs during a rollout or after a rollback) are accepted with a warning naming
// them, provided every migration this binary knows was applied before them: releases keep
// their migrations working for the release before (expand, then contract a release later).
absl::Status Compare(const std::map<int, AppliedMigration>& applied,
                     const std::vector<Migration>& migrations, absl::string_view schema) {
  const int known = static_cast<int>(migrations.size());
  std::vector<std::string> newer;
  for (const auto& [version, row] : applied) {
    if (version > known) {
      newer.push_back(absl::StrCat(version, " (", row.name, ")"));
      continue;
    }
    const Migration& m = migrations[version - 1];
    if (Checksum(m) != row.checksum) {
      return absl::FailedPreconditionError(absl::StrCat(
          "schema ", schema, " migration ", version, " (", m.name,
          ") was applied with different SQL; migrations must never be edited once released"));
    }
  }
  if (newer.empty()) return absl::OkStatus();
  for (const Migration& m : migrations) {
    if (!applied.contains(m.version)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "schema ", schema, " has migrations newer than this binary's (",
          absl::StrJoin(newer, ", "), ") but not its migration ", m.version, " (", m.name, ")"));
    }
  }
  LogWarning(
      "schema has migrations this binary does not know; running on it as the release "
      "before the one that applied them",
      {{"schema", schema}, {"unknown_migrations", absl::StrJoin(newer, ", ")}});
  return absl::OkStatus();
}

// This binary's migrations that `applied` lacks, in order.
std::vector<const Migration*> Pending(const std::map<int, AppliedMigration>& applied,
                                      const std::vector<Migration>& migrations) {
  std::vector<const Migration*> pending;
  for (const Migration& m : migrations) {
    if (!applied.contains(m.version)) pending.push_back(&m);
  }
  return pending;
}

// A login role that may not read <schema>.schema_migrations, or may not apply a pending
// migration: a runtime role (policy_<schema>_runtime) starting before the owner migrated, or
// a role with no grants at all.
absl::Status NotPermitted(absl::string_view schema, const pqxx::insufficient_privilege& e) {
  return absl::FailedPreconditionError(
      absl::StrCat("the database login role may not check or apply the migrations of schema ",
                   schema, " (", absl::StripAsciiWhitespace(e.what()),
                   "): apply them as the schema's owner (--migrate_only with the owner's URL), and "
                   "run the service as the owner or as a member of ",
                   RuntimeRoleName(schema)));
}

absl::Status CheckArgs(absl::string_view schema, const std::vector<Migration>& migrations) {
  if (!ValidSchemaName(schema)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid schema name '", schema, "'"));
  }
  for (size_t i = 0; i < migrations.size(); ++i) {
    if (migrations[i].version != static_cast<int>(i + 1)) {
      return absl::InvalidArgumentError("migrations must be numbered 1, 2, 3, ...");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ApplyMigrations(const std::string& url, absl::string_view schema,
                             const std::vector<Migration>& migrations,
                             const MigrationLockWait& lock_wait) {
  if (absl::Status s = CheckArgs(schema, migrations); !s.ok()) return s;
  try {
    pqxx::connection c(ConnectionString(url, absl::Seconds(5)));
    // Reads first: on a schema already up to date nothing below runs, so a runtime role with
    // no privilege to create anything starts as well as the owner.
    std::map<int, AppliedMigration> applied = Applied(c, schema);
    if (absl::Status s = Compare(applied, migrations, schema); !s.ok()) return s;
    if (Pending(applied, migrations).empty()) return absl::OkStatus();

    const std::string lock_key = absl::StrCat("policy-suite migrations ", schema);
    {
      pqxx::nontransaction tx(c);
      tx.exec_params("SELECT pg_advisory_lock(hashtext($1))", lock_key);
      tx.exec(absl::StrCat("CREATE SCHEMA IF NOT EXISTS ", schema));
      tx.exec(absl::StrCat("CREATE TABLE IF NOT EXISTS ", schema,
                           ".schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
                           "checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT "
                           "now())"));
    }
    // Again under the lock: another replica may have applied some meanwhile.
    applied = Applied(c, schema);
    if (absl::Status s = Compare(applied, migrations, schema); !s.ok()) return s;
    for (const Migration* m : Pending(applied, migrations)) {
      for (int attempt = 1;; ++attempt) {
        try {
          pqxx::work tx(c);
          tx.exec(absl::StrCat(
              "SET LOCAL lock_timeout = ",
              std::max<int64_t>(1, absl::ToInt64Milliseconds(lock_wait.lock_timeout))));
          tx.exec(absl::StrCat("SET LOCAL search_path TO ", schema));
          tx.exec(m->sql);
          tx.exec_params(absl::StrCat("INSERT INTO ", schema,
                                      ".schema_migrations (version, name, checksum) "
                                      "VALUES ($1, $2, $3)"),
                         m->version, std::string(m->name), Checksum(*m));
          tx.commit();
          break;
        } catch (const pqxx::sql_error& e) {
          if (e.sqlstate() != kLockNotAvailable) throw;
          const std::string version = absl::StrCat(m->version);
          const std::string tries = absl::StrCat(attempt);
          if (attempt >= lock_wait.attempts) {
            LogError(
                "migration gave up waiting for a lock",
                {{"schema", schema}, {"version", version}, {"name", m->name}, {"attempts", tries}});
            return absl::UnavailableError(absl::StrCat(
                "migration ", m->version, " (", m->name, ") of schema ", schema, " waited ",
                absl::FormatDuration(lock_wait.lock_timeout), " for a lock ", attempt,
                " times: a transaction holds a table it changes; retry when it ended"));
          }
          LogWarning(
              "migration waited too long for a lock; rolled back to let queries through, "
              "and tried again",
              {{"schema", schema}, {"version", version}, {"name", m->name}, {"attempt", tries}});
          absl::SleepFor(lock_wait.retry_delay);
        }
      }
      LogInfo("applied migration",
              {{"schema", schema}, {"version", absl::StrCat(m->version)}, {"name", m->name}});
    }
    pqxx::nontransaction tx(c);
    tx.exec_params("SELECT pg_advisory_unlock(hashtext($1))", lock_key);
  } catch (const pqxx::insufficient_privilege& e) {
    return NotPermitted(schema, e);
  } catch (const std::exception& e) {
    return StatusFromException(e);
  }
  return absl::OkStatus();
}

absl::Status CheckMigrations(const std::string& url, absl::string_view schema,
                             const std::vector<Migration>& migrations) {
  if (absl::Status s = CheckArgs(schema, migrations); !s.ok()) return s;
  try {
    pqxx::connection c(ConnectionString(url, absl::Seconds(5)));
    std::map<int, AppliedMigration> applied = Applied(c, schema);
    if (absl::Status s = Compare(applied, migrations, schema); !s.ok()) return s;
    if (const size_t pending = Pending(applied, migrations).size(); pending > 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("schema ", schema, " has ", migrations.size() - pending, " of ",
                       migrations.size(), " migrations applied; run with --migrate_only first"));
    }
  } catch (const pqxx::insufficient_privilege& e) {
    return NotPermitted(schema, e);
  } catch (const std::exception& e) {
    return StatusFromException(e);
  }
  return absl::OkStatus();
}

}  // namespace policy::pg
