#include "services/audit/postgres_ledger_store.h"

#include <algorithm>
#include <limits>
#include <map>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/pg/statement.h"
#include "common/pg/values.h"
#include "common/status/status.h"

namespace policy::audit {
namespace {

using pg::Micros;
using pg::Statement;

// The first key of the advisory locks serialising appends (the second is the ledger id):
// "AUDT". The migrations' locks use the one-bigint form, a separate key space.
constexpr int32_t kAppendLockNamespace = 0x41554454;
// The advisory lock that orders appends against the destruction of subject keys: appends take
// it shared, DeleteSubjectKey exclusively (migrations/006_subject_keys_with_entries.sql). Its
// namespace, "AUKY", is not the appends' one, whose second keys are ledger ids.
constexpr int32_t kSubjectKeysLockNamespace = 0x41554b59;
constexpr int32_t kSubjectKeysLock = 0;

constexpr size_t kMaxKeysPerStatement = 1000;

// At most this many subject keys are kept (about 200 bytes each); beyond, they start over.
constexpr size_t kMaxCachedSubjectKeys = 100'000;

// What FromRow reads, in this order, from `audit.entries e`.
// clang-format off
constexpr char kEntryColumns[] =
    "e.idx, " POLICY_PG_US("e.recorded_at") ", e.action, e.actor_ref, e.actor_sealed, "
    "e.model, e.tokens, e.latency_us, e.outcome, e.metadata, e.content_hash, e.request_id, "
    "e.subject_ref, e.subject_sealed, e.leaf_hash, e.completed, e.mac";
// clang-format on

// The entries of ledger $1 (`audit.entries e`) with a request id, found through the index
// entries_request (request_id, ledger_id). `x.ledger_id + 0` keeps the indexes led by
// ledger_id out of the plan: for a ledger that grew since the table was last analysed they
// look as cheap, and the planner would filter the ledger's every row.
constexpr char kRequestProbe[] = "e.ledger_id + 0 = $1 AND e.request_id <> ''";

// The number of entries of a ledger: its last index + 1, read backwards along the primary key
// (the ORDER BY keeps the planner on it however stale the statistics are).
uint64_t CountEntries(pqxx::work& tx, int64_t ledger_id) {
  pqxx::result rows = tx.exec_params(
      "SELECT idx FROM audit.entries WHERE ledger_id = $1 ORDER BY idx DESC LIMIT 1", ledger_id);
  return rows.empty() ? 0 : rows[0][0].as<uint64_t>() + 1;
}

int64_t ClampToInt64(uint64_t v) {
  return static_cast<int64_t>(std::min<uint64_t>(v, std::numeric_limits<int64_t>::max()));
}

// `t` rounded up to a whole microsecond, PostgreSQL's resolution. Entry times are whole
// microseconds, so `time >= t` and `time < t` hold exactly when they hold for the rounded
// bound (the binary parameter would truncate it, taking in or leaving out the entry at the
// microsecond below a finer bound).
absl::Time CeilMicros(absl::Time t) {
  const absl::Time floor = absl::FromUnixMicros(absl::ToUnixMicros(t));
  return floor < t ? floor + absl::Microseconds(1) : floor;
}

std::string Bytes(const pqxx::field& f) { return pqxx::binarystring(f).str(); }
std::string Text(const pqxx::field& f) { return std::string(f.c_str(), f.size()); }

absl::StatusOr<Hash> HashOf(const pqxx::field& f) {
  absl::StatusOr<Hash> hash = HashFromBytes(Bytes(f));
  if (!hash.ok()) {
    return absl::DataLossError(absl::StrCat("stored hash: ", hash.status().message()));
  }
  return hash;
}

absl::StatusOr<Outcome> OutcomeFromName(absl::string_view name) {
  for (Outcome o : {Outcome::kSuccess, Outcome::kError, Outcome::kBlocked}) {
    if (OutcomeName(o) == name) return o;
  }
  return absl::DataLossError(absl::StrCat("stored entry has unknown outcome '", name, "'"));
}

// An entry from kEntryColumns starting at column `first`.
absl::Status DecodeRow(const pqxx::row& row, int first, Entry& e) {
  e.time = absl::FromUnixMicros(row[first + 1].as<int64_t>());
  const std::string action = Text(row[first + 2]);
  std::optional<Action> parsed = ActionFromName(action);
  if (!parsed.has_value()) {
    return absl::DataLossError(absl::StrCat("stored entry has unknown action '", action, "'"));
  }
  e.action = *parsed;
  e.actor.ref = Bytes(row[first + 3]);
  e.actor.sealed = Bytes(row[first + 4]);
  e.model = Text(row[first + 5]);
  e.tokens = row[first + 6].as<int64_t>();
  e.latency = absl::Microseconds(row[first + 7].as<int64_t>());
  ASSIGN_OR_RETURN(e.outcome, OutcomeFromName(Text(row[first + 8])));
  ASSIGN_OR_RETURN(e.metadata, DecodeMetadata(Bytes(row[first + 9])));
  e.content_hash = Bytes(row[first + 10]);
  e.request_id = Text(row[first + 11]);
  e.subject.ref = Bytes(row[first + 12]);
  e.subject.sealed = Bytes(row[first + 13]);
  ASSIGN_OR_RETURN(e.leaf_hash, HashOf(row[first + 14]));
  ASSIGN_OR_RETURN(e.completed, DecodeHashes(Bytes(row[first + 15])));
  e.mac = Bytes(row[first + 16]);
  return absl::OkStatus();
}

// DATA_LOSS naming the entry when a stored field cannot be read back.
absl::StatusOr<Entry> FromRow(const pqxx::row& row, const LedgerRef& ledger, int first = 0) {
  Entry e;
  e.ledger = ledger;
  e.index = row[first].as<uint64_t>();
  if (absl::Status s = DecodeRow(row, first, e); !s.ok()) {
    return absl::DataLossError(absl::StrCat("entry ", e.index, " of ledger ", LedgerName(ledger),
                                            " is unreadable: ", s.message()));
  }
  return e;
}

absl::StatusOr<std::vector<Entry>> FromResult(const pqxx::result& result, const LedgerRef& ledger) {
  std::vector<Entry> entries;
  entries.reserve(result.size());
  for (const pqxx::row& row : result) {
    ASSIGN_OR_RETURN(Entry e, FromRow(row, ledger));
    entries.push_back(std::move(e));
  }
  return entries;
}

// The stored rows of ledger `ledger_id` from index `from` on, at most `limit`, in order.
pqxx::result SelectRange(pqxx::work& tx, int64_t ledger_id, uint64_t from, size_t limit) {
  return tx.exec_params(absl::StrCat("SELECT ", kEntryColumns,
                                     " FROM audit.entries e WHERE e.ledger_id = $1 "
                                     "AND e.idx >= $2 ORDER BY e.idx LIMIT $3"),
                        ledger_id, ClampToInt64(from), ClampToInt64(limit));
}

absl::StatusOr<Checkpoint> CheckpointFromRow(const pqxx::row& row, const LedgerRef& ledger) {
  Checkpoint c;
  c.ledger = ledger;
  c.tree_size = row[0].as<uint64_t>();
  ASSIGN_OR_RETURN(c.root, HashOf(row[1]));
  c.time = absl::FromUnixMicros(row[2].as<int64_t>());
  c.signature = Bytes(row[3]);
  c.key_id = Text(row[4]);
  return c;
}

SubjectKey SubjectKeyFromRow(const pqxx::row& row) {
  return SubjectKey{Bytes(row[0]), Bytes(row[1]), Bytes(row[2]), std::nullopt};
}

constexpr char kCheckpointColumns[] =
    "tree_size, root_hash, " POLICY_PG_US("signed_at") ", signature, key_id";

// The stored hashes of perfect subtrees of the ledger `ledger_id`, in one query;
// FAILED_PRECONDITION when a node's last leaf is not stored.
absl::StatusOr<absl::flat_hash_map<NodeId, Hash>> ReadNodeHashes(pqxx::work& tx, int64_t ledger_id,
                                                                 absl::Span<const NodeId> nodes) {
  absl::flat_hash_map<NodeId, Hash> out;
  if (nodes.empty()) return out;
  std::vector<std::string> leaves;
  leaves.reserve(nodes.size());
  for (const NodeId& node : nodes) {
    if (node.level < 0 || node.level > 62 ||
        node.index > (static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) >> node.level)) {
      return absl::FailedPreconditionError(
          absl::StrCat("node (", node.level, ", ", node.index, ") lies beyond the ledger"));
    }
    leaves.push_back(absl::StrCat(LastLeaf(node)));
  }
  pqxx::result rows = tx.exec_params(
      "SELECT idx, leaf_hash, completed FROM audit.entries WHERE ledger_id = $1 AND idx = ANY "
      "($2::bigint[])",
      ledger_id, absl::StrCat("{", absl::StrJoin(leaves, ","), "}"));
  absl::flat_hash_map<uint64_t, pqxx::result::size_type> by_index;
  for (pqxx::result::size_type i = 0; i < rows.size(); ++i) by_index[rows[i][0].as<uint64_t>()] = i;
  for (const NodeId& node : nodes) {
    auto it = by_index.find(LastLeaf(node));
    if (it == by_index.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("node (", node.level, ", ", node.index, ") lies beyond the ledger"));
    }
    const pqxx::row row = rows[it->second];
    if (node.level == 0) {
      ASSIGN_OR_RETURN(out[node], HashOf(row[1]));
      continue;
    }
    ASSIGN_OR_RETURN(std::vector<Hash> completed, DecodeHashes(Bytes(row[2])));
    if (static_cast<size_t>(node.level) > completed.size()) {
      return absl::DataLossError(absl::StrCat("entry ", LastLeaf(node), " holds ", completed.size(),
                                              " completed hashes, not ", node.level));
    }
    out[node] = completed[node.level - 1];
  }
  return out;
}

// The committed tree of `size` entries of the ledger `ledger_id`, from its frontier's hashes.
absl::StatusOr<CompactTree> LoadTree(pqxx::work& tx, int64_t ledger_id, uint64_t size) {
  const std::vector<NodeId> nodes = FrontierNodes(size);
  absl::StatusOr<absl::flat_hash_map<NodeId, Hash>> hashes = ReadNodeHashes(tx, ledger_id, nodes);
  if (!hashes.ok()) {
    return absl::DataLossError(absl::StrCat("ledger ", ledger_id, " of size ", size,
                                            " lacks its frontier: ", hashes.status().message()));
  }
  std::vector<Hash> frontier;
  frontier.reserve(nodes.size());
  for (const NodeId& node : nodes) frontier.push_back(hashes->at(node));
  return CompactTree::FromFrontier(size, std::move(frontier));
}

// The columns of audit.entries after ledger_id, in table order, one array each.
std::vector<pg::BinaryArray> EntryArrays(absl::Span<const Entry> entries) {
  using T = pg::BinaryArray::Type;
  std::vector<pg::BinaryArray> c;
  for (T type : {T::kBigint, T::kTimestamptz, T::kText, T::kBytea, T::kBytea, T::kText, T::kBigint,
                 T::kBigint, T::kText, T::kBytea, T::kBytea, T::kText, T::kBytea, T::kBytea,
                 T::kBytea, T::kBytea, T::kBytea}) {
    c.emplace_back(type);
  }
  for (const Entry& e : entries) {
    c[0].AddInt(ClampToInt64(e.index));
    c[1].AddTime(e.time);
    c[2].Add(ActionName(e.action));
    c[3].Add(e.actor.ref);
    c[4].Add(e.actor.sealed);
    c[5].Add(e.model);
    c[6].AddInt(e.tokens);
    c[7].AddInt(absl::ToInt64Microseconds(e.latency));
    c[8].Add(OutcomeName(e.outcome));
    c[9].Add(EncodeMetadata(e.metadata));
    c[10].Add(e.content_hash);
    c[11].Add(e.request_id);
    c[12].Add(e.subject.ref);
    c[13].Add(e.subject.sealed);
    c[14].Add(AsBytes(e.leaf_hash));
    c[15].Add(EncodeHashes(e.completed));
    c[16].Add(e.mac);
  }
  return c;
}

// `arrays` as the statement's next parameters, separated by commas.
void AddArrays(Statement& s, const std::vector<pg::BinaryArray>& arrays) {
  const char* separator = "";
  for (const pg::BinaryArray& array : arrays) {
    s.Sql(separator).Array(array);
    separator = ", ";
  }
}

int32_t AppendLock(int64_t ledger_id);

// `keys` by pseudonym.
absl::flat_hash_map<std::string, SubjectKey> KeysByRef(const std::vector<SubjectKey>& keys) {
  absl::flat_hash_map<std::string, SubjectKey> out;
  for (const SubjectKey& key : keys) out.insert_or_assign(key.ref, key);
  return out;
}

// The keys of `pending` (by pseudonym) that `entries` name, as the four key arrays of
// append_entries (locators, pseudonyms, wrapped keys, forgettings seen: '-infinity' for
// none), taken out of `pending`: each key is stored with the first entries naming it.
std::vector<pg::BinaryArray> TakeNamedKeys(absl::Span<const Entry> entries,
                                           absl::flat_hash_map<std::string, SubjectKey>& pending) {
  std::vector<pg::BinaryArray> keys(3, pg::BinaryArray(pg::BinaryArray::Type::kBytea));
  keys.emplace_back(pg::BinaryArray::Type::kTimestamptz);
  if (pending.empty()) return keys;
  for (const Entry& e : entries) {
    for (const std::string* ref : {&e.actor.ref, &e.subject.ref}) {
      auto it = pending.find(*ref);
      if (it == pending.end()) continue;
      keys[0].Add(it->second.locator);
      keys[1].Add(it->second.ref);
      keys[2].Add(it->second.wrapped);
      const std::optional<absl::Time>& seen = it->second.forgotten_at;
      if (seen.has_value()) {
        keys[3].AddTime(*seen);
      } else {
        keys[3].AddInt(std::numeric_limits<int64_t>::min());  // -infinity
      }
      pending.erase(it);
    }
  }
  return keys;
}

// The statement appending sealed `entries` of ledger `ledger_id` whose first entry is at index
// `size`, with `keys` (TakeNamedKeys), through the SECURITY DEFINER function append_entries of
// migrations/007_forgotten_subjects.sql (a runtime login role may not insert entries or
// keys itself), one array parameter per column. `refs`: the pseudonyms with keys the store
// handed out that the entries name.
Statement AppendStatement(int64_t ledger_id, uint64_t size, absl::Span<const Entry> entries,
                          const pg::BinaryArray& refs, const std::vector<pg::BinaryArray>& keys,
                          const std::vector<pg::BinaryArray>& columns, bool retry) {
  pg::BinaryArray request_ids(pg::BinaryArray::Type::kText);
  for (const Entry& e : entries) {
    if (!e.request_id.empty()) request_ids.Add(e.request_id);
  }
  Statement s("SELECT audit.append_entries(");
  s.Int(kAppendLockNamespace).Sql("::integer, ").Int(AppendLock(ledger_id)).Sql("::integer, ");
  s.Int(kSubjectKeysLockNamespace).Sql("::integer, ").Int(kSubjectKeysLock).Sql("::integer, ");
  s.Int(ledger_id).Sql(", ").Int(ClampToInt64(size)).Sql(", ");
  s.Bytes(AsBytes(entries[0].leaf_hash)).Sql(retry ? ", true, " : ", false, ");
  s.Array(request_ids).Sql(", ").Array(refs).Sql(", ");
  AddArrays(s, keys);
  s.Sql(", ");
  AddArrays(s, columns);
  s.Sql(")");
  return s;
}

// Inserts sealed entries of one ledger, the first at index `entries[0].index` (its size), and
// `keys`, in a transaction holding the subject keys' lock shared and the ledger's append lock
// that found none of their request ids and every subject key of `refs` (AppendStatement).
absl::Status InsertEntries(pqxx::work& tx, int64_t ledger_id, absl::Span<const Entry> entries,
                           const pg::BinaryArray& refs, const std::vector<pg::BinaryArray>& keys) {
  if (entries.empty()) return absl::OkStatus();
  const std::string result = Text(AppendStatement(ledger_id, entries[0].index, entries, refs, keys,
                                                  EntryArrays(entries), /*retry=*/false)
                                      .Exec(tx)[0][0]);
  if (result != "appended") {
    return absl::InternalError(
        absl::StrCat("append_entries answered '", result, "' under the ledger's lock"));
  }
  return absl::OkStatus();
}

int32_t AppendLock(int64_t ledger_id) {
  return static_cast<int32_t>(static_cast<uint32_t>(ledger_id));
}

absl::Status DifferentRequest(const Entry& entry, const Entry& first) {
  return RequestIdUsed(entry.request_id, first.index);
}

// Sorts entries[positions] of one ledger into outcomes (a request stored, per `stored`, or
// repeated within the batch) and `fresh` entries, sealed onto `tree`; returns the positions
// of the fresh ones, whose outcomes the caller sets once they are stored.
std::vector<size_t> SealFresh(const std::vector<Entry>& entries, absl::Span<const size_t> positions,
                              const absl::flat_hash_map<std::string, Entry>& stored,
                              CompactTree& tree, const EntryAuthenticator* authenticator,
                              std::vector<Entry>& fresh, std::vector<AppendOutcome>& outcomes) {
  std::vector<size_t> fresh_positions;
  absl::flat_hash_map<absl::string_view, size_t> first_in_batch;  // request id -> fresh
  std::vector<std::pair<size_t, size_t>> repeats;                 // (position, index into fresh)
  fresh.clear();
  fresh.reserve(positions.size());
  fresh_positions.reserve(positions.size());
  for (size_t p : positions) {
    const Entry& entry = entries[p];
    if (!entry.request_id.empty()) {
      if (auto it = stored.find(entry.request_id); it != stored.end()) {
        outcomes[p] = SameRequest(it->second, entry)
                          ? AppendOutcome{absl::OkStatus(), it->second, true}
                          : AppendOutcome{DifferentRequest(entry, it->second), Entry{}, false};
        continue;
      }
      auto [it, inserted] = first_in_batch.emplace(entry.request_id, fresh.size());
      if (!inserted) {
        repeats.emplace_back(p, it->second);
        continue;
      }
    }
    fresh.push_back(entry);  // A copy: `entries` must survive a retry.
    fresh_positions.push_back(p);
  }
  SealEntries(tree, absl::MakeSpan(fresh), authenticator);
  for (const auto& [p, f] : repeats) {
    outcomes[p] = SameRequest(fresh[f], entries[p])
                      ? AppendOutcome{absl::OkStatus(), fresh[f], true}
                      : AppendOutcome{DifferentRequest(entries[p], fresh[f]), Entry{}, false};
  }
  return fresh_positions;
}

// `name` as an SQL identifier: as it is when that is unambiguous, quoted otherwise.
std::string Identifier(pqxx::work& tx, const std::string& name) {
  bool plain = !name.empty() && !absl::ascii_isdigit(name[0]);
  for (char c : name) {
    plain = plain && (absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_');
  }
  return plain ? name : tx.quote_name(name);
}

std::string RoleSql(pqxx::work& tx, const std::string& role, const std::string& user) {
  const std::string r = Identifier(tx, role);
  return absl::StrCat("CREATE ROLE ", r, " NOLOGIN; GRANT ", r, " TO ", Identifier(tx, user), ";");
}

std::string GrantsSql(pqxx::work& tx, const std::string& role) {
  const std::string r = Identifier(tx, role);
  return absl::StrCat("GRANT USAGE ON SCHEMA audit TO ", r,
                      "; GRANT SELECT, INSERT ON audit.ledgers, audit.entries, audit.checkpoints "
                      "TO ",
                      r, "; GRANT SELECT, INSERT, DELETE ON audit.subject_keys TO ", r,
                      "; GRANT USAGE ON SEQUENCE audit.ledgers_id_seq TO ", r, ";");
}

}  // namespace

PostgresLedgerStore::PostgresLedgerStore(pg::Pool* pool, std::string role)
    : pool_(pool), role_(std::move(role)) {}

absl::StatusOr<std::string> PostgresLedgerStore::TransactionRole(pg::Pool* pool) {
  std::string role = kWriterRole;
  RETURN_IF_ERROR(pool->Transact([&](pqxx::work& tx) -> absl::Status {
    const bool runtime = tx.exec_params1(
                               "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) "
                               "AND pg_has_role(current_user, $1, 'USAGE') "
                               "AND NOT (EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $2) "
                               "         AND pg_has_role(current_user, $2, 'MEMBER'))",
                               std::string(kRuntimeRole), std::string(kWriterRole))[0]
                             .as<bool>();
    if (runtime) role.clear();
    return absl::OkStatus();
  }));
  return role;
}

absl::Status PostgresLedgerStore::CheckRole(pg::Pool* pool, const std::string& role) {
  if (role.empty()) return absl::OkStatus();
  return pool->Transact([&](pqxx::work& tx) -> absl::Status {
    pqxx::row found = tx.exec_params1(
        "SELECT current_user, EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1), "
        "to_regclass('audit.entries') IS NOT NULL",
        role);
    const std::string user = found[0].as<std::string>();
    const bool exists = found[1].as<bool>();
    const bool migrated = found[2].as<bool>();
    const std::string intro =
        absl::StrCat("the audit service runs its transactions as the role ", role, ", ");
    if (!exists) {
      return absl::FailedPreconditionError(absl::StrCat(
          intro, "which does not exist; an administrator must run: ", RoleSql(tx, role, user),
          migrated ? absl::StrCat(" ", GrantsSql(tx, role)) : ""));
    }
    // The migration grants the role its privileges only when it existed by then.
    const bool granted =
        !migrated || tx.exec_params1(
                           "SELECT has_schema_privilege($1, 'audit', 'USAGE') "
                           "AND has_table_privilege($1, 'audit.ledgers', 'SELECT') "
                           "AND has_table_privilege($1, 'audit.ledgers', 'INSERT') "
                           "AND has_table_privilege($1, 'audit.entries', 'SELECT') "
                           "AND has_table_privilege($1, 'audit.entries', 'INSERT') "
                           "AND has_table_privilege($1, 'audit.checkpoints', 'SELECT') "
                           "AND has_table_privilege($1, 'audit.checkpoints', 'INSERT') "
                           "AND has_table_privilege($1, 'audit.subject_keys', 'SELECT') "
                           "AND has_table_privilege($1, 'audit.subject_keys', 'INSERT') "
                           "AND has_table_privilege($1, 'audit.subject_keys', 'DELETE') "
                           "AND has_sequence_privilege($1, 'audit.ledgers_id_seq', 'USAGE')",
                           role)[0]
                         .as<bool>();
    const std::string grants = granted ? "" : absl::StrCat(" ", GrantsSql(tx, role));
    try {
      tx.exec(absl::StrCat("SET LOCAL ROLE ", tx.quote_name(role)));
    } catch (const pqxx::sql_error& e) {
      return absl::FailedPreconditionError(
          absl::StrCat(intro, "but ", user, " cannot switch to it (", e.what(),
                       "); an administrator must run: GRANT ", Identifier(tx, role), " TO ",
                       Identifier(tx, user), ";", grants));
    }
    if (!granted) {
      return absl::FailedPreconditionError(
          absl::StrCat(intro,
                       "which lacks its privileges on schema audit (the role was created "
                       "after the migration ran); an administrator must run:",
                       grants));
    }
    return absl::OkStatus();
  });
}

absl::Status PostgresLedgerStore::Transact(const std::function<absl::Status(pqxx::work&)>& body) {
  return pool_->Transact([&](pqxx::work& tx) -> absl::Status {
    // Every statement of this store is meant to walk an index. While a table's statistics lag
    // behind its growth (or before it was first analysed) the planner may prefer reading the
    // whole table, which would make each append a scan of everything stored, and its inflated
    // estimates would have each statement JIT-compiled (tens of milliseconds) first.
    std::string setup = "SET LOCAL enable_seqscan = off; SET LOCAL jit = off";
    if (!role_.empty()) absl::StrAppend(&setup, "; SET LOCAL ROLE ", tx.quote_name(role_));
    tx.exec(setup);
    return body(tx);
  });
}

std::optional<int64_t> PostgresLedgerStore::FindLedgerId(pqxx::work& tx, const LedgerRef& ledger) {
  {
    absl::MutexLock lock(&mu_);
    if (auto it = ledgers_.find(ledger); it != ledgers_.end()) return it->second.id;
  }
  pqxx::result rows =
      tx.exec_params("SELECT id FROM audit.ledgers WHERE project = $1 AND environment = $2",
                     ledger.project, ledger.environment);
  if (rows.empty()) return std::nullopt;
  const int64_t id = rows[0][0].as<int64_t>();
  // Rows this transaction sees but did not write are committed, and ledgers never change.
  CacheLedger(ledger, id, nullptr);
  return id;
}

int64_t PostgresLedgerStore::EnsureLedgerId(pqxx::work& tx, const LedgerRef& ledger) {
  {
    absl::MutexLock lock(&mu_);
    if (auto it = ledgers_.find(ledger); it != ledgers_.end()) return it->second.id;
  }
  const std::string find = "SELECT id FROM audit.ledgers WHERE project = $1 AND environment = $2";
  pqxx::result rows = tx.exec_params(find, ledger.project, ledger.environment);
  if (!rows.empty()) return rows[0][0].as<int64_t>();
  rows = tx.exec_params(
      "INSERT INTO audit.ledgers (project, environment) VALUES ($1, $2) "
      "ON CONFLICT (project, environment) DO NOTHING RETURNING id",
      ledger.project, ledger.environment);
  if (!rows.empty()) return rows[0][0].as<int64_t>();
  // Another transaction inserted it meanwhile and committed (ON CONFLICT waited for it).
  return tx.exec_params1(find, ledger.project, ledger.environment)[0].as<int64_t>();
}

std::optional<CompactTree> PostgresLedgerStore::CachedTree(const LedgerRef& ledger, uint64_t size) {
  absl::MutexLock lock(&mu_);
  auto it = ledgers_.find(ledger);
  if (it == ledgers_.end() || !it->second.tree.has_value() || it->second.tree->size() != size) {
    return std::nullopt;
  }
  return it->second.tree;
}

void PostgresLedgerStore::CacheLedger(const LedgerRef& ledger, int64_t id,
                                      const CompactTree* tree) {
  absl::MutexLock lock(&mu_);
  CachedLedger& cached = ledgers_[ledger];
  cached.id = id;
  // Commits may be noticed out of order; a larger tree is always the newer one.
  if (tree != nullptr && (!cached.tree.has_value() || cached.tree->size() < tree->size())) {
    cached.tree = *tree;
  }
}

absl::Mutex& PostgresLedgerStore::LedgerMutex(const LedgerRef& ledger) {
  absl::MutexLock lock(&mu_);
  return ledger_mutexes_[ledger];
}

std::optional<absl::StatusOr<std::vector<AppendOutcome>>> PostgresLedgerStore::AppendInOneStatement(
    const std::vector<Entry>& entries, const std::vector<SubjectKey>& new_keys) {
  if (entries.empty()) return std::nullopt;
  const LedgerRef& ledger = entries[0].ledger;
  for (const Entry& e : entries) {
    if (!(e.ledger == ledger)) return std::nullopt;
  }
  absl::MutexLock serial(&LedgerMutex(ledger));
  int64_t id = 0;
  std::optional<CompactTree> tree;
  {
    absl::MutexLock lock(&mu_);
    auto it = ledgers_.find(ledger);
    if (it == ledgers_.end() || !it->second.tree.has_value()) return std::nullopt;
    id = it->second.id;
    tree = it->second.tree;
  }
  const uint64_t size = tree->size();
  std::vector<size_t> positions(entries.size());
  for (size_t i = 0; i < positions.size(); ++i) positions[i] = i;
  std::vector<AppendOutcome> outcomes(entries.size());
  std::vector<Entry> fresh;
  const std::vector<size_t> fresh_positions =
      SealFresh(entries, positions, /*stored=*/{}, *tree, authenticator().get(), fresh, outcomes);

  pg::BinaryArray refs(pg::BinaryArray::Type::kBytea);
  for (const std::string& ref : KeyedRefs(fresh)) refs.Add(ref);
  absl::flat_hash_map<std::string, SubjectKey> pending = KeysByRef(new_keys);
  const std::vector<pg::BinaryArray> keys = TakeNamedKeys(fresh, pending);
  const std::vector<pg::BinaryArray> columns = EntryArrays(fresh);
  std::string result;
  bool retry = false;
  absl::Status status = pool_->Autocommit([&](pqxx::nontransaction& tx) {
    Statement s = AppendStatement(id, size, fresh, refs, keys, columns, retry);
    retry = true;  // Should this run's connection break, the next run asks what it did.
    result = Text(s.ExecPrepared(tx)[0][0]);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  if (result == "key destroyed") return KeyDestroyed();
  if (result != "appended" && result != "appended before") return std::nullopt;
  CacheLedger(ledger, id, &*tree);
  HoldStoredKeys(new_keys, pending);
  for (size_t i = 0; i < fresh.size(); ++i) {
    outcomes[fresh_positions[i]] = AppendOutcome{absl::OkStatus(), std::move(fresh[i]), false};
  }
  return outcomes;
}

absl::StatusOr<std::vector<AppendOutcome>> PostgresLedgerStore::Append(
    std::vector<Entry> entries, std::vector<SubjectKey> new_keys) {
  if (auto appended = AppendInOneStatement(entries, new_keys); appended.has_value()) {
    return *std::move(appended);
  }
  // Ledgers in a fixed order, so that replicas appending to several never deadlock.
  std::map<LedgerRef, std::vector<size_t>> by_ledger;
  for (size_t i = 0; i < entries.size(); ++i) by_ledger[entries[i].ledger].push_back(i);

  struct Appended {
    const LedgerRef* ledger;
    int64_t id;
    CompactTree tree;
  };
  std::vector<Appended> appended;
  std::vector<AppendOutcome> outcomes;
  absl::flat_hash_map<std::string, SubjectKey> pending;  // New keys not yet inserted, by ref.
  pg::BinaryArray refs(pg::BinaryArray::Type::kBytea);
  const std::vector<std::string> keyed_refs = KeyedRefs(entries);
  for (const std::string& ref : keyed_refs) refs.Add(ref);
  bool key_destroyed = false;
  const std::shared_ptr<const EntryAuthenticator> authenticator = this->authenticator();
  absl::Status status = Transact([&](pqxx::work& tx) -> absl::Status {
    // The body runs again when a pooled connection turns out dead: start afresh.
    appended.clear();
    outcomes.assign(entries.size(), AppendOutcome{});
    pending = KeysByRef(new_keys);
    // Held until the commit: no subject key is destroyed from the check below on
    // (migrations/006_subject_keys_with_entries.sql).
    tx.exec_params("SELECT pg_advisory_xact_lock_shared($1::integer, $2::integer)",
                   kSubjectKeysLockNamespace, kSubjectKeysLock);
    if (!keyed_refs.empty()) {
      Statement check("SELECT count(*) FROM audit.subject_keys WHERE ref = ANY (");
      key_destroyed = check.Array(refs).Sql(")").Exec(tx)[0][0].as<size_t>() < keyed_refs.size();
      if (key_destroyed) return absl::AbortedError("subject key destroyed");
    }
    for (const auto& [ledger, positions] : by_ledger) {
      const int64_t id = EnsureLedgerId(tx, ledger);
      tx.exec_params("SELECT pg_advisory_xact_lock($1::integer, $2::integer)", kAppendLockNamespace,
                     AppendLock(id));

      // Holding the lock, this transaction's next statements see every earlier append.
      absl::flat_hash_set<std::string> request_ids;
      for (size_t p : positions) {
        if (!entries[p].request_id.empty()) request_ids.insert(entries[p].request_id);
      }
      absl::flat_hash_map<std::string, Entry> stored;
      if (!request_ids.empty()) {
        // One probe of the unique index entries_request per id, whatever the statistics
        // say (kRequestProbe).
        pqxx::result rows = tx.exec_params(
            absl::StrCat("SELECT ", kEntryColumns,
                         " FROM unnest($2::text[]) AS r (request_id) CROSS JOIN LATERAL "
                         "(SELECT * FROM audit.entries e WHERE ",
                         kRequestProbe, " AND e.request_id = r.request_id LIMIT 1) e"),
            id,
            pg::FormatTextArray(std::vector<std::string>(request_ids.begin(), request_ids.end())));
        for (const pqxx::row& row : rows) {
          ASSIGN_OR_RETURN(Entry e, FromRow(row, ledger));
          std::string request_id = e.request_id;
          stored.emplace(std::move(request_id), std::move(e));
        }
      }
      const uint64_t size = CountEntries(tx, id);
      std::optional<CompactTree> tree = CachedTree(ledger, size);
      if (!tree.has_value()) {
        ASSIGN_OR_RETURN(tree, LoadTree(tx, id, size));
      }
      std::vector<Entry> fresh;
      const std::vector<size_t> fresh_positions =
          SealFresh(entries, positions, stored, *tree, authenticator.get(), fresh, outcomes);
      RETURN_IF_ERROR(InsertEntries(tx, id, fresh, refs, TakeNamedKeys(fresh, pending)));
      for (size_t i = 0; i < fresh.size(); ++i) {
        outcomes[fresh_positions[i]] = AppendOutcome{absl::OkStatus(), std::move(fresh[i]), false};
      }
      appended.push_back(Appended{&ledger, id, *std::move(tree)});
    }
    return absl::OkStatus();
  });
  if (key_destroyed) return KeyDestroyed();
  if (!status.ok()) return status;
  // Committed: the trees are now the ledgers' own.
  for (const Appended& a : appended) CacheLedger(*a.ledger, a.id, &a.tree);
  HoldStoredKeys(new_keys, pending);
  return outcomes;
}

absl::StatusOr<uint64_t> PostgresLedgerStore::Size(const LedgerRef& ledger) {
  uint64_t size = 0;
  RETURN_IF_ERROR(Transact([&](pqxx::work& tx) -> absl::Status {
    std::optional<int64_t> id = FindLedgerId(tx, ledger);
    if (!id.has_value()) return absl::OkStatus();
    size = CountEntries(tx, *id);
    return absl::OkStatus();
  }));
  return size;
}

absl::StatusOr<std::vector<LedgerSize>> PostgresLedgerStore::ListLedgers() {
  std::vector<LedgerSize> out;
  RETURN_IF_ERROR(Transact([&](pqxx::work& tx) -> absl::Status {
    out.clear();
    pqxx::result rows = tx.exec(
        "SELECT l.project, l.environment, (SELECT coalesce(max(e.idx) + 1, 0) FROM audit.entries "
        "e WHERE e.ledger_id = l.id) FROM audit.ledgers l "
        "ORDER BY l.project COLLATE \"C\", l.environment COLLATE \"C\"");
    for (const pqxx::row& row : rows) {
      out.push_back(LedgerSize{LedgerRef{Text(row[0]), Text(row[1])}, row[2].as<uint64_t>()});
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<Entry>> PostgresLedgerStore::ReadRange(const LedgerRef& ledger,
                                                                  uint64_t from, size_t limit) {
  std::vector<Entry> out;
  RETURN_IF_ERROR(Transact([&](pqxx::work& tx) -> absl::Status {
    std::optional<int64_t> id = FindLedgerId(tx, ledger);
    if (!id.has_value()) return absl::OkStatus();
    ASSIGN_OR_RETURN(out, FromResult(SelectRange(tx, *id, from, limit), ledger));
    return absl::OkStatus();
  }));
  return out;
}

absl::Status PostgresLedgerStore::ForEachEntry(const LedgerRef& ledger, uint64_t from,
                                               const std::function<bool(const Entry&)>& visit) {
  constexpr size_t kChunk = 5000;
  for (;;) {
    pqxx::result rows;
    bool found = true;
    RETURN_IF_ERROR(Transact([&](pqxx::work& tx) -> absl::Status {
      std::optional<int64_t> id = FindLedgerId(tx, ledger);
      found = id.has_value();
      if (!found) return absl::OkStatus();
      rows = SelectRange(tx, *id, from, kChunk);
      return absl::OkStatus();
    }));
    if (!found) return absl::OkStatus();
    for (const pqxx::row& row : rows) {
      ASSIGN_OR_RETURN(Entry e, FromRow(row, ledger));
      if (!visit(e)) return absl::OkStatus();
      from = e.index + 1;
    }
    if (static_cast<size_t>(rows.size()) < kChunk) return absl::OkStatus();
  }
}

absl::StatusOr<Entry> PostgresLedgerStore::FindRequest(const LedgerRef& ledger,
                                                       const std::string& request_id) {
  Entry entry;
  RETURN_IF_ERROR(Transact([&](pqxx::work& tx) -> absl::Status {
    std::optional<int64_t> id = FindLedgerId(tx, ledger);
    if (id.has_value() && !request_id.empty()) {
      pqxx::result rows =
          tx.exec_params(absl::StrCat("SELECT ", kEntryColumns, " FROM audit.entries e WHERE ",
                                      kRequestProbe, " AND e.request_id = $2"),
                         *id, request_id);
      if (!rows.empty()) {
        ASSIGN_OR_RETURN(entry, FromRow(rows[0], ledger));
        return absl::OkStatus();
      }
    }
    return absl::NotFoundError(
        absl::StrCat("no entry with request_id ", request_id, " in ledger ", LedgerName(ledger)));
  }));
  return entry;
}

absl::StatusOr<std::vector<Entry>> PostgresLedgerStore::Query(const EntryFilter& filter) {
  std::vector<Entry> out;
  RETURN_IF_ERROR(Transact([&](pqxx::work& tx) -> absl::Status {
    std::optional<int64_t> id = FindLedgerId(tx, filter.ledger);
    if (!id.has_value()) return absl::OkStatus();
    Statement s(
        absl::StrCat("SELECT ", kEntryColumns, " FROM audit.entries e WHERE e.ledger_id = "));
    s.Int(*id).Sql(" AND e.idx >= ").Int(ClampToInt64(filter.after_index));
    if (filter.action.has_value()) s.Sql(" AND e.action = ").Text(ActionName(*filter.action));
    if (!filter.actor_ref.empty()) s.Sql(" AND e.actor_ref = ").Bytes(filter.actor_ref);
    if (filter.start.has_value()) {
      s.Sql(" AND e.recorded_at >= ").Time(CeilMicros(*filter.start));
    }
    if (filter.end.has_value()) s.Sql(" AND e.recorded_at < ").Time(CeilMicros(*filter.end));
    s.Sql(" ORDER BY e.idx LIMIT ").Int(ClampToInt64(filter.limit));
    ASSIGN_OR_RETURN(out, FromResult(s.Exec(tx), filter.ledger));
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<Entry>> PostgresLedgerStore::EntriesOfSubject(
    const std::string& ref, const std::optional<SubjectCursor>& after, size_t limit) {
  std::vector<Entry> out;
  RETURN_IF_ERROR(Transact([&](pqxx::work& tx) -> absl::Status {
    out.clear();
    Statement s(absl::StrCat(
        "SELECT l.project, l.environment, ", kEntryColumns,
        " FROM audit.entries e JOIN audit.ledgers l ON l.id = e.ledger_id WHERE (e.actor_ref = "));
    // SubjectOrder: time, then ledger (bytewise), then index.
    s.Bytes(ref).Sql(" OR e.subject_ref = ").Again(1);
    if (after.has_value()) {
      s.Sql(
           ") AND (e.recorded_at, l.project COLLATE \"C\", l.environment COLLATE \"C\", e.idx) > (")
          .Time(after->time)
          .Sql(", ")
          .Text(after->ledger.project)
          .Sql(" COLLATE \"C\", ")
          .Text(after->ledger.environment)
          .Sql(" COLLATE \"C\", ")
          .Int(static_cast<int64_t>(after->index));
    }
    s.Sql(
        ") ORDER BY e.recorded_at, l.project COLLATE \"C\", l.environment COLLATE \"C\", e.idx "
        "LIMIT ");
    s.Int(ClampToInt64(limit));
    pqxx::result rows = s.Exec(tx);
    out.reserve(rows.size());
    for (const pqxx::row& row : rows) {
      ASSIGN_OR_RETURN(Entry e, FromRow(row, LedgerRef{Text(row[0]), Text(row[1])}, 2));
      out.push_back(std::move(e));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<absl::flat_hash_map<NodeId, Hash>> PostgresLedgerStore::NodeHashes(
    const LedgerRef& ledger, absl::Span<const NodeId> nodes) {
  absl::flat_hash_map<NodeId, Hash> out;
  if (nodes.empty()) return out;
  RETURN_IF_ERROR(Transact([&](pqxx::work& tx) -> absl::Status {
    std::optional<int64_t> id = FindLedgerId(tx, ledger);
    if (!id.has_value()) {
      return absl::FailedPreconditionError(
          absl::StrCat("node (", nodes[0].level, ", ", nodes[0].index, ") lies beyond the ledger"));
    }
    ASSIGN_OR_RETURN(out, ReadNodeHashes(tx, *id, nodes));
    return absl::OkStatus();
  }));
  return out;
}

absl::Status PostgresLedgerStore::AddCheckpoint(const Checkpoint& checkpoint) {
  int64_t id = 0;
  RETURN_IF_ERROR(Transact([&](pqxx::work& tx) -> absl::Status {
    id = EnsureLedgerId(tx, checkpoint.ledger);
    // Through the SECURITY DEFINER function: a runtime login role may not insert checkpoints.
    Statement s("SELECT audit.add_checkpoint(");
    s.Int(id).Sql(",").Int(ClampToInt64(checkpoint.tree_size));
    s.Sql(",").Bytes(AsBytes(checkpoint.root)).Sql(",").Time(checkpoint.time);
    s.Sql(",").Bytes(checkpoint.signature).Sql(",").Text(checkpoint.key_id);
    s.Sql(")");
    s.Exec(tx);
    return absl::OkStatus();
  }));
  CacheLedger(checkpoint.ledger, id, nullptr);
  return absl::OkStatus();
}

absl::StatusOr<Checkpoint> PostgresLedgerStore::GetCheckpoint(const LedgerRef& ledger,
                                                              uint64_t tree_size) {
  Checkpoint checkpoint;
  RETURN_IF_ERROR(Transact([&](pqxx::work& tx) -> absl::Status {
    std::optional<int64_t> id = FindLedgerId(tx, ledger);
    if (id.has_value()) {
      pqxx::result rows =
          tree_size == 0
              ? tx.exec_params(absl::StrCat("SELECT ", kCheckpointColumns,
                                            " FROM audit.checkpoints WHERE ledger_id = $1 "
                                            "ORDER BY tree_size DESC LIMIT 1"),
                               *id)
              : tx.exec_params(absl::StrCat("SELECT ", kCheckpointColumns,
                                            " FROM audit.checkpoints WHERE ledger_id = $1 "
                                            "AND tree_size = $2"),
                               *id, ClampToInt64(tree_size));
      if (!rows.empty()) {
        ASSIGN_OR_RETURN(checkpoint, CheckpointFromRow(rows[0], ledger));
        return absl::OkStatus();
      }
    }
    return absl::NotFoundError(
        tree_size == 0
            ? absl::StrCat("ledger ", LedgerName(ledger), " has no signed checkpoint yet")
            : absl::StrCat("ledger ", LedgerName(ledger), " has no checkpoint of size ",
                           tree_size));
  }));
  return checkpoint;
}

absl::StatusOr<std::vector<Checkpoint>> PostgresLedgerStore::ListCheckpoints(
    const LedgerRef& ledger) {
  std::vector<Checkpoint> out;
  RETURN_IF_ERROR(Transact([&](pqxx::work& tx) -> absl::Status {
    out.clear();
    std::optional<int64_t> id = FindLedgerId(tx, ledger);
    if (!id.has_value()) return absl::OkStatus();
    pqxx::result rows = tx.exec_params(absl::StrCat("SELECT ", kCheckpointColumns,
                                                    " FROM audit.checkpoints WHERE ledger_id = "
                                                    "$1 ORDER BY tree_size"),
                                       *id);
    for (const pqxx::row& row : rows) {
      ASSIGN_OR_RETURN(Checkpoint c, CheckpointFromRow(row, ledger));
      out.push_back(std::move(c));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<Checkpoint>> PostgresLedgerStore::ListCheckpointsAfter(
    const LedgerRef& ledger, std::optional<uint64_t> after_size, size_t limit) {
  std::vector<Checkpoint> out;
  // Sizes past the largest a bigint holds have no checkpoint.
  if (limit == 0 ||
      after_size.value_or(0) >= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return out;
  }
  RETURN_IF_ERROR(Transact([&](pqxx::work& tx) -> absl::Status {
    out.clear();
    std::optional<int64_t> id = FindLedgerId(tx, ledger);
    if (!id.has_value()) return absl::OkStatus();
    pqxx::result rows = tx.exec_params(
        absl::StrCat("SELECT ", kCheckpointColumns,
                     " FROM audit.checkpoints WHERE ledger_id = $1 AND tree_size > $2 "
                     "ORDER BY tree_size LIMIT $3"),
        *id, after_size.has_value() ? ClampToInt64(*after_size) : int64_t{-1}, ClampToInt64(limit));
    for (const pqxx::row& row : rows) {
      ASSIGN_OR_RETURN(Checkpoint c, CheckpointFromRow(row, ledger));
      out.push_back(std::move(c));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<absl::flat_hash_map<std::string, SubjectKey>> PostgresLedgerStore::FindSubjectKeys(
    const std::vector<std::string>& locators) {
  absl::flat_hash_map<std::string, SubjectKey> found;  // by locator
  {
    absl::MutexLock lock(&mu_);
    for (const std::string& locator : locators) {
      auto it = subject_keys_.find(locator);
      if (it == subject_keys_.end()) break;
      found.insert_or_assign(locator, it->second);
    }
    if (found.size() == locators.size()) return found;  // Append checks they still exist.
  }
  pg::BinaryArray wanted(pg::BinaryArray::Type::kBytea);
  for (const std::string& locator : locators) wanted.Add(locator);
  Statement s("SELECT locator, ref, wrapped_key FROM audit.subject_keys WHERE locator = ANY (");
  s.Array(wanted).Sql(")");
  RETURN_IF_ERROR(Transact([&](pqxx::work& tx) -> absl::Status {
    found.clear();
    for (const pqxx::row& row : s.Exec(tx)) {
      SubjectKey key = SubjectKeyFromRow(row);
      std::string locator = key.locator;
      found.insert_or_assign(std::move(locator), std::move(key));
    }
    return absl::OkStatus();
  }));
  HoldSubjectKeys(found);
  return found;
}

void PostgresLedgerStore::HoldSubjectKeys(absl::flat_hash_map<std::string, SubjectKey> keys) {
  absl::MutexLock lock(&mu_);
  if (subject_keys_.size() + keys.size() > kMaxCachedSubjectKeys) subject_keys_.clear();
  // A pseudonym is forgotten only a generation later: a batch sealed with its key a moment
  // before is still checked.
  if (subject_refs_.size() + keys.size() > kMaxCachedSubjectKeys) {
    older_subject_refs_ = std::move(subject_refs_);
    subject_refs_.clear();
  }
  for (auto& [locator, key] : keys) {
    subject_refs_.insert(key.ref);
    subject_keys_.insert_or_assign(locator, std::move(key));
  }
}

std::vector<std::string> PostgresLedgerStore::KeyedRefs(absl::Span<const Entry> entries) {
  absl::flat_hash_set<std::string> refs;
  absl::MutexLock lock(&mu_);
  for (const Entry& e : entries) {
    for (const std::string* ref : {&e.actor.ref, &e.subject.ref}) {
      if (!ref->empty() && (subject_refs_.contains(*ref) || older_subject_refs_.contains(*ref))) {
        refs.insert(*ref);
      }
    }
  }
  return std::vector<std::string>(refs.begin(), refs.end());
}

void PostgresLedgerStore::HoldStoredKeys(
    const std::vector<SubjectKey>& new_keys,
    const absl::flat_hash_map<std::string, SubjectKey>& not_stored) {
  absl::flat_hash_map<std::string, SubjectKey> stored;
  for (const SubjectKey& key : new_keys) {
    if (not_stored.contains(key.ref)) continue;
    SubjectKey held = key;
    held.forgotten_at.reset();
    stored.insert_or_assign(held.locator, std::move(held));
  }
  if (!stored.empty()) HoldSubjectKeys(std::move(stored));
}

absl::Status PostgresLedgerStore::KeyDestroyed() {
  absl::MutexLock lock(&mu_);
  subject_keys_.clear();  // Looked up again; their pseudonyms are still checked.
  return SubjectKeyDestroyed();
}

absl::StatusOr<SubjectKey> PostgresLedgerStore::GetSubjectKey(const std::string& locator) {
  SubjectKey key;
  RETURN_IF_ERROR(Transact([&](pqxx::work& tx) -> absl::Status {
    pqxx::result rows =
        Statement("SELECT locator, ref, wrapped_key FROM audit.subject_keys WHERE locator = ")
            .Bytes(locator)
            .Exec(tx);
    if (rows.empty()) return absl::NotFoundError("no key for this subject");
    key = SubjectKeyFromRow(rows[0]);
    return absl::OkStatus();
  }));
  return key;
}

absl::StatusOr<absl::flat_hash_map<std::string, SubjectKey>> PostgresLedgerStore::SubjectKeysByRef(
    const std::vector<std::string>& refs) {
  absl::flat_hash_map<std::string, SubjectKey> out;
  if (refs.empty()) return out;
  RETURN_IF_ERROR(Transact([&](pqxx::work& tx) -> absl::Status {
    out.clear();
    for (size_t start = 0; start < refs.size(); start += kMaxKeysPerStatement) {
      Statement select("SELECT locator, ref, wrapped_key FROM audit.subject_keys WHERE ref IN (");
      for (size_t i = start; i < std::min(refs.size(), start + kMaxKeysPerStatement); ++i) {
        select.Sql(i == start ? "" : ",").Bytes(refs[i]);
      }
      select.Sql(")");
      for (const pqxx::row& row : select.Exec(tx)) {
        SubjectKey key = SubjectKeyFromRow(row);
        std::string ref = key.ref;
        out[std::move(ref)] = std::move(key);
      }
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::Status PostgresLedgerStore::RecordForgotten(const std::string& locator, absl::Time at) {
  return Transact([&](pqxx::work& tx) -> absl::Status {
    // As DeleteSubjectKey: the appends storing keys in progress commit first, those after see
    // the forgetting (migrations/007_forgotten_subjects.sql).
    tx.exec_params("SELECT pg_advisory_xact_lock($1::integer, $2::integer)",
                   kSubjectKeysLockNamespace, kSubjectKeysLock);
    Statement("INSERT INTO audit.forgotten_subjects (locator, forgotten_at) VALUES (")
        .Bytes(locator)
        .Sql(", ")
        .Time(at)
        .Sql(
            ") ON CONFLICT (locator) DO UPDATE SET forgotten_at = "
            "greatest(forgotten_subjects.forgotten_at, excluded.forgotten_at)")
        .Exec(tx);
    return absl::OkStatus();
  });
}

absl::StatusOr<absl::flat_hash_map<std::string, absl::Time>> PostgresLedgerStore::FindForgotten(
    const std::vector<std::string>& locators) {
  absl::flat_hash_map<std::string, absl::Time> out;
  if (locators.empty()) return out;
  pg::BinaryArray wanted(pg::BinaryArray::Type::kBytea);
  for (const std::string& locator : locators) wanted.Add(locator);
  RETURN_IF_ERROR(Transact([&](pqxx::work& tx) -> absl::Status {
    out.clear();
    pqxx::result rows = Statement("SELECT locator, " POLICY_PG_US(
                                      "forgotten_at") " FROM audit.forgotten_subjects "
                                                      "WHERE locator = ANY (")
                            .Array(wanted)
                            .Sql(")")
                            .Exec(tx);
    for (const pqxx::row& row : rows) {
      out.emplace(Bytes(row[0]), absl::FromUnixMicros(row[1].as<int64_t>()));
    }
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<int64_t> PostgresLedgerStore::PurgeForgotten(absl::Time before) {
  int64_t purged = 0;
  RETURN_IF_ERROR(Transact([&](pqxx::work& tx) -> absl::Status {
    purged = Statement("DELETE FROM audit.forgotten_subjects WHERE forgotten_at < ")
                 .Time(before)
                 .Exec(tx)
                 .affected_rows();
    return absl::OkStatus();
  }));
  return purged;
}

absl::StatusOr<bool> PostgresLedgerStore::DeleteSubjectKey(const std::string& locator) {
  {
    absl::MutexLock lock(&mu_);
    // Its pseudonym stays: an append sealed with the key is still checked, and refused.
    subject_keys_.erase(locator);
  }
  bool deleted = false;
  RETURN_IF_ERROR(Transact([&](pqxx::work& tx) -> absl::Status {
    // Waits for the appends in progress, and holds back those after, until the commit
    // (migrations/006_subject_keys_with_entries.sql).
    tx.exec_params("SELECT pg_advisory_xact_lock($1::integer, $2::integer)",
                   kSubjectKeysLockNamespace, kSubjectKeysLock);
    deleted = Statement("DELETE FROM audit.subject_keys WHERE locator = ")
                  .Bytes(locator)
                  .Exec(tx)
                  .affected_rows() > 0;
    return absl::OkStatus();
  }));
  return deleted;
}

}  // namespace policy::audit
