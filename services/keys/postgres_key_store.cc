#include "services/keys/postgres_key_store.h"

#include <functional>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/pg/values.h"
#include "common/status/status.h"

namespace policy::keys {
namespace {

using pg::Micros;
using pg::OptionalTime;

constexpr char kColumns[] =
    "key_id, kind, owner_type, owner_id, project, environment, scopes, "
    "encode(secret_hash, 'hex'), redacted, state, " POLICY_PG_US("created_at") ", " POLICY_PG_US(
        "expires_at") ", " POLICY_PG_US("overlap_ends_at") ", rotated_from, rotated_to, " POLICY_PG_US("revoked_at") ", revocation_reason";

// StateAt(key, $1) in SQL, from a statement reading keys.api_keys (migration 006).
constexpr char kStateAt[] = "keys.api_key_state_at(api_keys, " POLICY_PG_TS("$1") ")";

absl::StatusOr<KeyRecord> FromRow(const pqxx::row& row) {
  KeyRecord key;
  key.key_id = row[0].as<std::string>();
  ASSIGN_OR_RETURN(key.kind, ParseKind(row[1].as<std::string>()));
  ASSIGN_OR_RETURN(key.owner.type, ParsePrincipalType(row[2].as<std::string>()));
  key.owner.id = row[3].as<std::string>();
  key.project = row[4].as<std::string>();
  ASSIGN_OR_RETURN(key.environment, ParseEnvironment(row[5].as<std::string>()));
  key.scopes = absl::StrSplit(row[6].as<std::string>(), ' ', absl::SkipEmpty());
  key.secret_hash = absl::HexStringToBytes(row[7].as<std::string>());
  key.redacted = row[8].as<std::string>();
  ASSIGN_OR_RETURN(key.state, ParseState(row[9].as<std::string>()));
  key.created_at = absl::FromUnixMicros(row[10].as<int64_t>());
  key.expires_at = absl::FromUnixMicros(row[11].as<int64_t>());
  key.overlap_ends_at = OptionalTime(row[12]);
  key.rotated_from = row[13].as<std::string>();
  key.rotated_to = row[14].as<std::string>();
  key.revoked_at = OptionalTime(row[15]);
  key.revocation_reason = row[16].as<std::string>();
  return key;
}

absl::StatusOr<std::vector<KeyRecord>> FromResult(const pqxx::result& result) {
  std::vector<KeyRecord> keys;
  keys.reserve(result.size());
  for (const pqxx::row& row : result) {
    ASSIGN_OR_RETURN(KeyRecord key, FromRow(row));
    keys.push_back(std::move(key));
  }
  return keys;
}

template <typename Transaction>
void InsertKey(Transaction& tx, const KeyRecord& key) {
  tx.exec_params(
      "INSERT INTO keys.api_keys (key_id, kind, owner_type, owner_id, project, environment, "
      "scopes, secret_hash, redacted, state, created_at, expires_at, overlap_ends_at, "
      "rotated_from, rotated_to, revoked_at, revocation_reason) VALUES ($1, $2, $3, $4, $5, $6, "
      "$7, decode($8, 'hex'), $9, $10, " POLICY_PG_TS("$11") ", " POLICY_PG_TS("$12") ", "
      "CASE WHEN $13 THEN " POLICY_PG_TS("$14") " END, $15, $16, "
      "CASE WHEN $17 THEN " POLICY_PG_TS("$18") " END, $19)",
      key.key_id, std::string(KindName(key.kind)), std::string(PrincipalTypeName(key.owner.type)),
      key.owner.id, key.project, std::string(EnvironmentName(key.environment)),
      absl::StrJoin(key.scopes, " "), absl::BytesToHexString(key.secret_hash), key.redacted,
      std::string(StateName(key.state)), Micros(key.created_at), Micros(key.expires_at),
      key.overlap_ends_at.has_value(), Micros(key.overlap_ends_at.value_or(absl::UnixEpoch())),
      key.rotated_from, key.rotated_to, key.revoked_at.has_value(),
      Micros(key.revoked_at.value_or(absl::UnixEpoch())), key.revocation_reason);
}

// Changes to one owner's keys that must not interleave (a revocation of everything the owner
// holds, a rotation, an insert) take this transaction-scoped lock on the owner first, so a
// revocation's UPDATE starts after a concurrent rotation's successor has committed, and sees it.
// Selected from rows with columns owner_type and owner_id.
constexpr char kLockOwnerOf[] =
    "SELECT pg_advisory_xact_lock(hashtextextended('keys.owner/' || owner_type || '/' || "
    "owner_id, 0)) FROM ";

void LockOwner(pqxx::work& tx, const Principal& owner) {
  tx.exec_params(absl::StrCat(kLockOwnerOf, "(VALUES ($1, $2)) AS owner(owner_type, owner_id)"),
                 std::string(PrincipalTypeName(owner.type)), owner.id);
}

void InsertRequest(pqxx::work& tx, const IdempotencyRecord& r) {
  tx.exec_params(
      "INSERT INTO keys.requests (request_id, operation, fingerprint, key_ids, sealed_secret, "
      "created_at) VALUES ($1, $2, decode($3, 'hex'), $4, decode($5, 'hex'), " POLICY_PG_TS(
          "$6") ")",
      r.request_id, r.operation, absl::BytesToHexString(r.fingerprint),
      absl::StrJoin(r.key_ids, " "), absl::BytesToHexString(r.sealed_secret), Micros(r.created_at));
}

// The records of `events`, with their times as the database keeps them (to the microsecond),
// so that a record says what a later read of the key says.
std::vector<ledger::LedgerRecord> RecordsOf(std::vector<KeyEvent> events) {
  std::vector<ledger::LedgerRecord> records;
  records.reserve(events.size());
  for (KeyEvent& event : events) {
    event.at = absl::FromUnixMicros(Micros(event.at));
    records.push_back(LedgerRecordOf(event));
  }
  return records;
}

std::vector<ledger::LedgerRecord> RecordsOf(
    const std::vector<KeyRecord>& keys, const std::function<KeyEvent(const KeyRecord&)>& event_of) {
  std::vector<KeyEvent> events;
  events.reserve(keys.size());
  for (const KeyRecord& key : keys) events.push_back(event_of(key));
  return RecordsOf(std::move(events));
}

// pqxx reports a violated unique constraint as an exception; Transact maps it to
// ALREADY_EXISTS, which is what the interface promises for a duplicate key or request id.

}  // namespace

PostgresKeyStore::PostgresKeyStore(pg::Pool* pool, Clock* clock, absl::Duration watch_heartbeat,
                                   absl::Duration max_clock_skew)
    : pool_(pool),
      clock_(clock),
      watch_heartbeat_(watch_heartbeat),
      max_clock_skew_(max_clock_skew),
      outbox_(pool, "keys.ledger_outbox") {}

std::vector<pg::Privilege> PostgresKeyStore::Privileges() {
  std::vector<pg::Privilege> privileges = ledger::PostgresOutbox::Privileges("keys.ledger_outbox");
  pg::AddTablePrivileges("keys.api_keys", {"SELECT", "INSERT", "UPDATE"}, &privileges);
  pg::AddTablePrivileges("keys.requests", {"SELECT", "INSERT", "DELETE"}, &privileges);
  return privileges;
}

PostgresKeyStore::~PostgresKeyStore() { StopWatching(); }

absl::Status PostgresKeyStore::Insert(const KeyRecord& key,
                                      const std::optional<IdempotencyRecord>& request,
                                      absl::string_view actor) {
  absl::Status status = pool_->Transact([&](pqxx::work& tx) {
    LockOwner(tx, key.owner);
    if (request.has_value()) InsertRequest(tx, *request);
    InsertKey(tx, key);
    outbox_.Write(tx, RecordsOf({CreatedEvent(key, actor)}));
    return absl::OkStatus();
  });
  if (status.ok()) NotifyLocal({key});
  return status;
}

absl::StatusOr<KeyRecord> PostgresKeyStore::Rotate(const std::string& old_key_id,
                                                   absl::Time overlap_ends_at,
                                                   const KeyRecord& successor,
                                                   const std::optional<IdempotencyRecord>& request,
                                                   absl::string_view actor) {
  KeyRecord updated;
  absl::Status status = pool_->Transact([&](pqxx::work& tx) -> absl::Status {
    // The stored owner's lock (an owner never changes), before the old key's row lock.
    tx.exec_params(absl::StrCat(kLockOwnerOf, "keys.api_keys WHERE key_id = $1"), old_key_id);
    pqxx::result rows = tx.exec_params(
        absl::StrCat(
            "UPDATE keys.api_keys SET state = 'rotating', overlap_ends_at = ", POLICY_PG_TS("$2"),
            ", rotated_to = $3 WHERE key_id = $1 AND state = 'active' "
            "RETURNING ",
            kColumns),
        old_key_id, Micros(overlap_ends_at), successor.key_id);
    if (rows.empty()) {
      pqxx::result current =
          tx.exec_params("SELECT state FROM keys.api_keys WHERE key_id = $1", old_key_id);
      if (current.empty()) return absl::NotFoundError(absl::StrCat("no key ", old_key_id));
      return absl::FailedPreconditionError(absl::StrCat("key ", old_key_id, " is ",
                                                        current[0][0].as<std::string>(),
                                                        "; only active keys rotate"));
    }
    ASSIGN_OR_RETURN(updated, FromRow(rows[0]));
    if (request.has_value()) InsertRequest(tx, *request);
    InsertKey(tx, successor);
    outbox_.Write(tx, RecordsOf({RotatedEvent(updated, successor.created_at, actor),
                                 CreatedEvent(successor, actor)}));
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  NotifyLocal({updated, successor});
  return updated;
}

absl::StatusOr<std::pair<KeyRecord, bool>> PostgresKeyStore::Revoke(const std::string& key_id,
                                                                    const std::string& reason,
                                                                    absl::Time at,
                                                                    absl::string_view actor) {
  std::pair<KeyRecord, bool> result;
  absl::Status status = pool_->Transact([&](pqxx::work& tx) -> absl::Status {
    pqxx::result rows = tx.exec_params(
        absl::StrCat(
            "UPDATE keys.api_keys SET state = 'revoked', revoked_at = ", POLICY_PG_TS("$2"),
            ", revocation_reason = $3 WHERE key_id = $1 AND state <> 'revoked' "
            "RETURNING ",
            kColumns),
        key_id, Micros(at), reason);
    result.second = !rows.empty();
    if (rows.empty()) {
      rows = tx.exec_params(
          absl::StrCat("SELECT ", kColumns, " FROM keys.api_keys WHERE key_id = $1"), key_id);
      if (rows.empty()) return absl::NotFoundError(absl::StrCat("no key ", key_id));
    }
    ASSIGN_OR_RETURN(result.first, FromRow(rows[0]));
    if (result.second) outbox_.Write(tx, RecordsOf({RevokedEvent(result.first, actor)}));
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  if (result.second) NotifyLocal({result.first});
  return result;
}

absl::StatusOr<std::vector<KeyRecord>> PostgresKeyStore::RevokeOwnedBy(
    const Principal& owner, const std::string& reason, absl::Time at,
    const std::optional<IdempotencyRecord>& request, absl::string_view actor) {
  std::vector<KeyRecord> revoked;
  absl::Status status = pool_->Transact([&](pqxx::work& tx) -> absl::Status {
    LockOwner(tx, owner);
    pqxx::result rows = tx.exec_params(
        absl::StrCat(
            "UPDATE keys.api_keys SET state = 'revoked', revoked_at = ", POLICY_PG_TS("$3"),
            ", revocation_reason = $4 WHERE owner_type = $1 AND owner_id = $2 AND "
            "state <> 'revoked' RETURNING ",
            kColumns),
        std::string(PrincipalTypeName(owner.type)), owner.id, Micros(at), reason);
    ASSIGN_OR_RETURN(revoked, FromResult(rows));
    if (request.has_value()) {
      IdempotencyRecord record = *request;
      for (const KeyRecord& key : revoked) record.key_ids.push_back(key.key_id);
      InsertRequest(tx, record);
    }
    outbox_.Write(
        tx, RecordsOf(revoked, [&](const KeyRecord& key) { return RevokedEvent(key, actor); }));
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  NotifyLocal(revoked);
  return revoked;
}

absl::StatusOr<std::vector<KeyRecord>> PostgresKeyStore::RevokeEndedOverlaps() {
  std::vector<KeyRecord> revoked;
  absl::Status status = pool_->Transact([&](pqxx::work& tx) -> absl::Status {
    pqxx::result rows = tx.exec_params(
        absl::StrCat(
            "UPDATE keys.api_keys SET state = 'revoked', revoked_at = overlap_ends_at, "
            "revocation_reason = $1 WHERE state = 'rotating' AND overlap_ends_at < expires_at "
            "AND overlap_ends_at <= now() RETURNING ",
            kColumns),
        std::string(kReasonOverlapEnded));
    ASSIGN_OR_RETURN(revoked, FromResult(rows));
    outbox_.Write(tx, RecordsOf(revoked, &OverlapEndedEvent));
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  NotifyLocal(revoked);
  return revoked;
}

absl::StatusOr<KeyRecord> PostgresKeyStore::Get(const std::string& key_id) {
  KeyRecord key;
  absl::Status status = pool_->Transact([&](pqxx::work& tx) -> absl::Status {
    pqxx::result rows = tx.exec_params(
        absl::StrCat("SELECT ", kColumns, " FROM keys.api_keys WHERE key_id = $1"), key_id);
    if (rows.empty()) return absl::NotFoundError(absl::StrCat("no key ", key_id));
    ASSIGN_OR_RETURN(key, FromRow(rows[0]));
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return key;
}

absl::StatusOr<KeyPage> PostgresKeyStore::List(const KeyFilter& filter, int limit,
                                               const std::optional<ListCursor>& after) {
  KeyPage page;
  absl::Status status = pool_->Transact([&](pqxx::work& tx) -> absl::Status {
    pqxx::result rows = tx.exec_params(
        absl::StrCat(
            "SELECT ", kColumns, " FROM keys.api_keys WHERE ",
            "($2 = '' OR (owner_type = $2 AND owner_id = $3)) AND ($4 = '' OR project = $5) ",
            "AND ($6 = '' OR kind = $6) AND ($7 = '' OR (", kStateAt, ") = $7) ",
            "AND (NOT $8 OR (created_at, key_id) < (", POLICY_PG_TS("$9"), ", $10)) ",
            "ORDER BY created_at DESC, key_id DESC LIMIT $11"),
        Micros(filter.now),
        filter.owner.has_value() ? std::string(PrincipalTypeName(filter.owner->type)) : "",
        filter.owner.has_value() ? filter.owner->id : "", filter.project.has_value() ? "set" : "",
        filter.project.value_or(""),
        filter.kind.has_value() ? std::string(KindName(*filter.kind)) : "",
        filter.state.has_value() ? std::string(StateName(*filter.state)) : "", after.has_value(),
        after.has_value() ? Micros(after->created_at) : int64_t{0},
        after.has_value() ? after->key_id : "", limit + 1);
    ASSIGN_OR_RETURN(page.keys, FromResult(rows));
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  if (static_cast<int>(page.keys.size()) > limit) {
    page.keys.resize(limit);
    page.next = ListCursor{page.keys.back().created_at, page.keys.back().key_id};
  }
  return page;
}

absl::StatusOr<std::optional<IdempotencyRecord>> PostgresKeyStore::GetRequest(
    const std::string& request_id) {
  std::optional<IdempotencyRecord> record;
  absl::Status status = pool_->Transact([&](pqxx::work& tx) -> absl::Status {
    pqxx::result rows = tx.exec_params(
        "SELECT request_id, operation, encode(fingerprint, 'hex'), key_ids, "
        "encode(sealed_secret, 'hex'), " POLICY_PG_US(
            "created_at") " FROM keys.requests WHERE request_id = $1",
        request_id);
    if (rows.empty()) return absl::OkStatus();
    const pqxx::row& row = rows[0];
    record = IdempotencyRecord{row[0].as<std::string>(),
                               row[1].as<std::string>(),
                               absl::HexStringToBytes(row[2].as<std::string>()),
                               absl::StrSplit(row[3].as<std::string>(), ' ', absl::SkipEmpty()),
                               absl::HexStringToBytes(row[4].as<std::string>()),
                               absl::FromUnixMicros(row[5].as<int64_t>())};
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return record;
}

absl::StatusOr<int> PostgresKeyStore::ForgetRequestsBefore(absl::Time before) {
  int deleted = 0;
  absl::Status status = pool_->Transact([&](pqxx::work& tx) {
    pqxx::result rows = tx.exec_params(
        "DELETE FROM keys.requests WHERE created_at < " POLICY_PG_TS("$1"), Micros(before));
    deleted = static_cast<int>(rows.affected_rows());
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return deleted;
}

void PostgresKeyStore::NotifyLocal(std::vector<KeyRecord> keys) {
  absl::MutexLock lock(&observer_mu_);
  if (observer_ != nullptr && !keys.empty()) observer_->OnChanged(std::move(keys));
}

void PostgresKeyStore::Watch(KeyStoreObserver* observer) {
  StopWatching();
  {
    absl::MutexLock lock(&observer_mu_);
    observer_ = observer;
  }
  pg::NotificationFeed::Callbacks callbacks;
  callbacks.resync = [observer](pqxx::connection& c) -> absl::Status {
    pqxx::nontransaction tx(c);
    ASSIGN_OR_RETURN(std::vector<KeyRecord> keys,
                     FromResult(tx.exec(absl::StrCat("SELECT ", kColumns, " FROM keys.api_keys"))));
    observer->OnReset(std::move(keys));
    return absl::OkStatus();
  };
  callbacks.changed = [observer](pqxx::connection& c,
                                 const std::vector<std::string>& ids) -> absl::Status {
    pqxx::nontransaction tx(c);
    ASSIGN_OR_RETURN(
        std::vector<KeyRecord> keys,
        FromResult(tx.exec_params(absl::StrCat("SELECT ", kColumns,
                                               " FROM keys.api_keys WHERE key_id = ANY "
                                               "(string_to_array($1, ' '))"),
                                  absl::StrJoin(ids, " "))));
    observer->OnChanged(std::move(keys));
    return absl::OkStatus();
  };
  callbacks.in_sync = [observer](absl::Time as_of) { observer->OnInSync(as_of); };
  feed_ = std::make_unique<pg::NotificationFeed>(pool_->options().url, "policy_keys_changed",
                                                 std::move(callbacks), clock_, watch_heartbeat_,
                                                 max_clock_skew_);
  feed_->Start();
}

void PostgresKeyStore::StopWatching() {
  {
    absl::MutexLock lock(&observer_mu_);
    observer_ = nullptr;
  }
  if (feed_ != nullptr) {
    feed_->Stop();
    feed_.reset();
  }
}

}  // namespace policy::keys
