#include "common/pg/migrations.h"

#include <map>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/crypto/crypto.h"
#include "common/log/log.h"
#include "common/pg/pool.h"
#include "pqxx/pqxx"

namespace policy::pg {
namespace {

std::string Checksum(const Migration& m) { return absl::BytesToHexString(crypto::Sha256(m.sql)); }

bool ValidSchemaName(absl::string_view schema) {
  if (schema.empty() || schema.size() > 63) return false;
  for (char c : schema) {
    if (!((c >= 'a' && c <= 'z') || c == '_')) return false;
  }
  return true;
}

// version -> checksum of what the database has applied; empty when nothing is.
std::map<int, std::string> Applied(pqxx::connection& c, absl::string_view schema) {
  std::map<int, std::string> applied;
  pqxx::nontransaction tx(c);
  pqxx::result exists = tx.exec_params(
      "SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = "
      "'schema_migrations'",
      std::string(schema));
  if (exists.empty()) return applied;
  for (const auto& row : tx.exec(absl::StrCat("SELECT version, checksum FROM ", schema,
                                              ".schema_migrations ORDER BY version"))) {
    applied[row[0].as<int>()] = row[1].as<std::string>();
  }
  return applied;
}

absl::Status Compare(const std::map<int, std::string>& applied,
                     const std::vector<Migration>& migrations, absl::string_view schema) {
  for (const auto& [version, checksum] : applied) {
    if (version > static_cast<int>(migrations.size())) {
      return absl::FailedPreconditionError(
          absl::StrCat("schema ", schema, " has migration ", version,
                       " which this binary does not know; deploy a newer binary"));
    }
    const Migration& m = migrations[version - 1];
    if (Checksum(m) != checksum) {
      return absl::FailedPreconditionError(absl::StrCat(
          "schema ", schema, " migration ", version, " (", m.name,
          ") was applied with different SQL; migrations must never be edited once released"));
    }
  }
  return absl::OkStatus();
}

// This binary's migrations that `applied` lacks, in order.
std::vector<const Migration*> Pending(const std::map<int, std::string>& applied,
                                      const std::vector<Migration>& migrations) {
  std::vector<const Migration*> pending;
  for (const Migration& m : migrations) {
    if (!applied.contains(m.version)) pending.push_back(&m);
  }
  return pending;
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
                             const std::vector<Migration>& migrations) {
  if (absl::Status s = CheckArgs(schema, migrations); !s.ok()) return s;
  try {
    pqxx::connection c(ConnectionString(url, absl::Seconds(5)));
    // Reads first: on a schema already up to date nothing below runs, so a runtime role with
    // no privilege to create anything starts as well as the owner.
    std::map<int, std::string> applied = Applied(c, schema);
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
      pqxx::work tx(c);
      tx.exec(absl::StrCat("SET LOCAL search_path TO ", schema));
      tx.exec(m->sql);
      tx.exec_params(absl::StrCat("INSERT INTO ", schema,
                                  ".schema_migrations (version, name, checksum) "
                                  "VALUES ($1, $2, $3)"),
                     m->version, std::string(m->name), Checksum(*m));
      tx.commit();
      LogInfo("applied migration",
              {{"schema", schema}, {"version", absl::StrCat(m->version)}, {"name", m->name}});
    }
    pqxx::nontransaction tx(c);
    tx.exec_params("SELECT pg_advisory_unlock(hashtext($1))", lock_key);
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
    std::map<int, std::string> applied = Applied(c, schema);
    if (absl::Status s = Compare(applied, migrations, schema); !s.ok()) return s;
    if (applied.size() != migrations.size()) {
      return absl::FailedPreconditionError(
          absl::StrCat("schema ", schema, " has ", applied.size(), " of ", migrations.size(),
                       " migrations applied; run with --migrate_only first"));
    }
  } catch (const std::exception& e) {
    return StatusFromException(e);
  }
  return absl::OkStatus();
}

}  // namespace policy::pg
