#include "common/ledger/postgres_outbox.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/pg/values.h"
#include "common/status/status.h"

namespace policy::ledger {
namespace {

constexpr char kColumns[] =
    "seq, action, actor, project, environment, subject, request_id, metadata, attempts, "
    "last_error, failed, " POLICY_PG_US("created_at");

absl::StatusOr<OutboxEntry> EntryFromRow(const pqxx::row& row) {
  OutboxEntry entry;
  entry.sequence = row[0].as<int64_t>();
  LedgerRecord& r = entry.record;
  r.action = row[1].as<std::string>();
  r.actor = row[2].as<std::string>();
  r.project = row[3].as<std::string>();
  r.environment = row[4].as<std::string>();
  r.subject = row[5].as<std::string>();
  r.request_id = row[6].as<std::string>();
  ASSIGN_OR_RETURN(r.metadata, DecodeMetadata(row[7].as<std::string>()));
  entry.attempts = row[8].as<int>();
  entry.last_error = row[9].as<std::string>();
  entry.failed = row[10].as<bool>();
  entry.occurred_at = absl::FromUnixMicros(row[11].as<int64_t>());
  return entry;
}

}  // namespace

PostgresOutbox::PostgresOutbox(pg::Pool* pool, std::string table)
    : pool_(pool), table_(std::move(table)) {}

std::vector<pg::Privilege> PostgresOutbox::Privileges(const std::string& table) {
  std::vector<pg::Privilege> privileges;
  pg::AddTablePrivileges(table, {"SELECT", "INSERT", "UPDATE", "DELETE"}, &privileges);
  return privileges;
}

void PostgresOutbox::Write(pqxx::work& tx, const std::vector<LedgerRecord>& records) const {
  for (const LedgerRecord& r : records) {
    tx.exec_params(absl::StrCat("INSERT INTO ", table_,
                                " (action, actor, project, environment, subject, request_id, "
                                "metadata) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
                   r.action, r.actor, r.project, r.environment, r.subject, r.request_id,
                   EncodeMetadata(r.metadata));
  }
}

int PostgresOutbox::EraseFromFailed(pqxx::work& tx,
                                    absl::FunctionRef<bool(absl::string_view)> erased) const {
  const pqxx::result rows = tx.exec(
      absl::StrCat("SELECT seq, actor, subject, last_error FROM ", table_, " WHERE failed"));
  int changed = 0;
  for (const pqxx::row& row : rows) {
    const std::string actor = row[1].as<std::string>();
    const std::string subject = row[2].as<std::string>();
    const bool erase_actor = !actor.empty() && erased(actor);
    const bool erase_subject = !subject.empty() && erased(subject);
    if (!erase_actor && !erase_subject) continue;
    tx.exec_params(absl::StrCat("UPDATE ", table_,
                                " SET actor = $2, subject = $3, last_error = $4 WHERE seq = $1"),
                   row[0].as<int64_t>(), erase_actor ? "" : actor, erase_subject ? "" : subject,
                   ErasedNote(row[3].as<std::string>(), erase_actor, erase_subject));
    ++changed;
  }
  return changed;
}

absl::StatusOr<OutboxDrain> PostgresOutbox::Drain(int limit, const OutboxHandler& handle) {
  OutboxDrain drain;
  absl::Status status = pool_->Transact([&](pqxx::work& tx) -> absl::Status {
    drain = OutboxDrain{};
    drain.busy =
        !tx.exec_params("SELECT pg_try_advisory_xact_lock(hashtext($1)::bigint)", table_)[0][0]
             .as<bool>();
    if (!drain.busy) {
      pqxx::result rows = tx.exec_params(absl::StrCat("SELECT ", kColumns, " FROM ", table_,
                                                      " WHERE NOT failed ORDER BY seq LIMIT $1"),
                                         limit);
      for (const pqxx::row& row : rows) {
        absl::StatusOr<OutboxEntry> decoded = EntryFromRow(row);
        if (!decoded.ok()) {  // Damaged (edited by hand): set aside, not blocking the rest.
          tx.exec_params(absl::StrCat("UPDATE ", table_,
                                      " SET attempts = attempts + 1, last_error = $2, "
                                      "failed = true WHERE seq = $1"),
                         row[0].as<int64_t>(), decoded.status().ToString());
          ++drain.refused;
          continue;
        }
        const OutboxEntry& entry = *decoded;
        const Delivery delivery = handle(entry);
        switch (delivery.result) {
          case Delivery::Result::kRecorded:
          case Delivery::Result::kDuplicate:
            tx.exec_params(absl::StrCat("DELETE FROM ", table_, " WHERE seq = $1"), entry.sequence);
            ++drain.delivered;
            continue;
          case Delivery::Result::kRefused:
            ++drain.refused;
            break;
          case Delivery::Result::kRetry:
            drain.retry = true;
            break;
        }
        tx.exec_params(absl::StrCat("UPDATE ", table_,
                                    " SET attempts = attempts + 1, last_error = $2, "
                                    "failed = $3 WHERE seq = $1"),
                       entry.sequence, delivery.error,
                       delivery.result == Delivery::Result::kRefused);
        if (drain.retry) break;
      }
    }
    const pqxx::row counts =
        tx.exec(absl::StrCat("SELECT count(*) FILTER (WHERE NOT failed), "
                             "count(*) FILTER (WHERE failed) FROM ",
                             table_))[0];
    drain.pending = counts[0].as<int64_t>();
    drain.failed = counts[1].as<int64_t>();
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return drain;
}

absl::StatusOr<std::vector<OutboxEntry>> PostgresOutbox::Read(int limit) {
  std::vector<OutboxEntry> entries;
  absl::Status status = pool_->Transact([&](pqxx::work& tx) -> absl::Status {
    entries.clear();
    pqxx::result rows = tx.exec_params(
        absl::StrCat("SELECT ", kColumns, " FROM ", table_, " ORDER BY seq LIMIT $1"), limit);
    for (const pqxx::row& row : rows) {
      ASSIGN_OR_RETURN(OutboxEntry entry, EntryFromRow(row));
      entries.push_back(std::move(entry));
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return entries;
}

}  // namespace policy::ledger
