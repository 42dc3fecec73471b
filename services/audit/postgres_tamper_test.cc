// AuditLedger::Verify, reading through a PostgresLedgerStore, against ledgers whose rows were
// changed behind the service's back with plain SQL by the tables' owner (an administrator, or
// whoever holds the owner's credentials). Every change must make the report invalid and name
// the exact index the verifier can attribute it to (verifier.h).
//
// Bypassing the append-only triggers. The owner (the login role of the test database's URL)
// is not a superuser, so `SET session_replication_role = replica` is refused ("permission
// denied to set parameter"). As the tables' owner it may `ALTER TABLE ... DISABLE TRIGGER
// USER`, which is transactional: the tampering transaction turns the triggers off, changes
// rows and turns them on again before it commits, so nobody else ever sees them off. That the
// writer role can do none of this, triggers or not, is checked by
// LedgerStoreConformanceTest.LedgerTablesAreAppendOnly.
//
// Each test has a database of its own: SignCheckpoints signs every ledger of the store that
// grew since its newest checkpoint, so in a shared database it would sign, or fail on, the
// ledgers other tests tampered with. Within a test, each ledger is named after the test.
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/clock/clock.h"
#include "common/crypto/crypto.h"
#include "common/pg/migrations.h"
#include "common/pg/pool.h"
#include "common/pg/test_database.h"
#include "common/pg/values.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pqxx/pqxx"
#include "services/audit/audit_migrations.h"
#include "services/audit/checkpoint.h"
#include "services/audit/entry.h"
#include "services/audit/ledger.h"
#include "services/audit/ledger_store.h"
#include "services/audit/merkle.h"
#include "services/audit/postgres_ledger_store.h"
#include "services/audit/subjects.h"
#include "services/audit/verifier.h"

namespace policy::audit {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Every ledger: kSize entries, checkpoints signed at kFirstCheckpoint and kLastCheckpoint
// entries, the entries from kLastCheckpoint on covered by no checkpoint.
constexpr uint64_t kFirstCheckpoint = 16;
constexpr uint64_t kLastCheckpoint = 32;
constexpr uint64_t kSize = 40;

// A row index moved out of the way while rows are renumbered: the primary key (ledger_id, idx)
// is checked row by row, so `SET idx = idx + 1` over several rows would collide with itself.
constexpr int64_t kAside = 1'000'000;

pqxx::binarystring Bin(const std::string& bytes) { return pqxx::binarystring(bytes); }

Hash Sha256Hash(const std::string& data) { return HashFromBytes(crypto::Sha256(data)).value(); }

// Inserts `e` as a row of the ledger `ledger_id`, its hashes and MAC as given.
void InsertRow(pqxx::work& tx, int64_t ledger_id, const Entry& e) {
  const pqxx::result r = tx.exec_params(
      "INSERT INTO audit.entries (ledger_id, idx, recorded_at, action, actor_ref, actor_sealed, "
      "model, tokens, latency_us, outcome, metadata, content_hash, request_id, subject_ref, "
      "subject_sealed, leaf_hash, completed, mac) VALUES ($1, $2, " POLICY_PG_TS(
          "$3") ", $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
      ledger_id, static_cast<int64_t>(e.index), absl::ToUnixMicros(e.time),
      std::string(ActionName(e.action)), Bin(e.actor.ref), Bin(e.actor.sealed), e.model, e.tokens,
      absl::ToInt64Microseconds(e.latency), std::string(OutcomeName(e.outcome)),
      Bin(EncodeMetadata(e.metadata)), Bin(e.content_hash), e.request_id, Bin(e.subject.ref),
      Bin(e.subject.sealed), Bin(std::string(AsBytes(e.leaf_hash))), Bin(EncodeHashes(e.completed)),
      Bin(e.mac));
  EXPECT_EQ(r.affected_rows(), 1u) << "entry " << e.index;
}

// Runs `sql`, whose $1 is the ledger's id, and expects it to change `rows` rows.
void Exec(pqxx::work& tx, int64_t ledger_id, const std::string& sql, size_t rows) {
  EXPECT_EQ(tx.exec_params(sql, ledger_id).affected_rows(), rows) << sql;
}

// Moves the rows from index `from` on by `by` (positive: later).
void Renumber(pqxx::work& tx, int64_t ledger_id, uint64_t from, int64_t by) {
  const size_t rows = kSize - from;
  Exec(tx, ledger_id,
       absl::StrCat("UPDATE audit.entries SET idx = idx + ", kAside,
                    " WHERE ledger_id = $1 AND idx >= ", from),
       rows);
  Exec(tx, ledger_id,
       absl::StrCat("UPDATE audit.entries SET idx = idx - ", kAside - by,
                    " WHERE ledger_id = $1 AND idx >= ", kAside),
       rows);
}

class PostgresTamperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const pg::TestDatabase* db = pg::TestDatabase::Get();
    if (db == nullptr) GTEST_SKIP() << "POLICY_TEST_PG_URL is not set";
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : name) c = absl::ascii_isalnum(c) ? absl::ascii_tolower(c) : '_';
    url_ = db->CreateDatabase(name.substr(0, 30));
    const absl::Status migrated = pg::ApplyMigrations(url_, "audit", Migrations());
    ASSERT_TRUE(migrated.ok()) << migrated;
    pool_ = std::make_unique<pg::Pool>(pg::PoolOptions{.url = url_, .size = 4});
    const absl::Status role = PostgresLedgerStore::CheckRole(pool_.get(), kWriterRole);
    ASSERT_TRUE(role.ok()) << role;
    store_ = std::make_unique<PostgresLedgerStore>(pool_.get(), kWriterRole);
    signer_ = CheckpointSigner::Create(std::string(32, '\x11')).value();
    subjects_ = SubjectCipher::Create(std::string(32, '\x22')).value();
    audit_ = std::make_unique<AuditLedger>(store_.get(), subjects_.get(), signer_.get(), &clock_);
    for (char& c : name) c = c == '_' ? '-' : c;
    name_ = name.substr(0, 40);
  }

  LedgerRef Ledger(const std::string& suffix) {
    return LedgerRef{absl::StrCat(name_, "-", suffix), "staging"};
  }

  // The n-th entry of every ledger: varied actions, actors, subjects, models, outcomes and
  // optional fields.
  EntryInput Input(const LedgerRef& ledger, int n) {
    static constexpr Action kActions[] = {Action::kApiCall,         Action::kDecisionAllow,
                                          Action::kDecisionDeny,    Action::kKeyCreated,
                                          Action::kPolicyViolation, Action::kModelChanged};
    static constexpr const char* kActors[] = {"alice@example.com", "bob@example.com",
                                              "svc-batch-7"};
    EntryInput in;
    in.action = kActions[n % 6];
    in.actor = kActors[n % 3];
    in.ledger = ledger;
    in.model = n % 4 == 0 ? "gpt-4.1" : "claude-sonnet";
    in.tokens = 100 * n + 7;
    in.latency = absl::Microseconds(1500 + 37 * n);
    in.outcome =
        n % 5 == 0 ? Outcome::kBlocked : (n % 7 == 0 ? Outcome::kError : Outcome::kSuccess);
    in.metadata = {{"route", "/v1/chat"}, {"n", absl::StrCat(n)}};
    if (n % 2 == 0) in.content_hash = crypto::Sha256(absl::StrCat("prompt ", n));
    if (n % 3 != 2) in.request_id = absl::StrCat("req-", n);
    if (n % 4 == 1) in.subject = "carol@example.com";
    return in;
  }

  // Appends kSize entries to each ledger as the writer role, in step, signing checkpoints when
  // they hold kFirstCheckpoint and kLastCheckpoint entries.
  // A copy of `ledger`'s last row at index kSize + 5, as the tables' owner: the ledger's size
  // counts to it, and the frontier of that size lies in the gap.
  void LeaveAGap(const LedgerRef& ledger) {
    AsOwner(ledger, [&](pqxx::work& tx, int64_t id) {
      Exec(tx, id,
           absl::StrCat("INSERT INTO audit.entries SELECT ledger_id, ", kSize + 5,
                        ", recorded_at, action, actor_ref, actor_sealed, model, tokens, "
                        "latency_us, outcome, metadata, content_hash, '', subject_ref, "
                        "subject_sealed, leaf_hash, completed FROM audit.entries "
                        "WHERE ledger_id = $1 AND idx = ",
                        kSize - 1),
           1);
    });
  }

  void Build(const std::vector<LedgerRef>& ledgers) {
    auto append = [&](uint64_t from, uint64_t to) {
      for (const LedgerRef& ledger : ledgers) {
        for (uint64_t n = from; n < to; ++n) {
          absl::StatusOr<AppendOutcome> out = audit_->Append(Input(ledger, static_cast<int>(n)));
          ASSERT_TRUE(out.ok()) << out.status();
          ASSERT_FALSE(out->duplicate);
          ASSERT_EQ(out->entry.index, n);
          appended_[ledger].push_back(out->entry);
          clock_.Advance(absl::Milliseconds(250 + 13 * n));
        }
      }
    };
    append(0, kFirstCheckpoint);
    if (HasFatalFailure()) return;
    EXPECT_EQ(audit_->SignCheckpoints().value(), static_cast<int>(ledgers.size()));
    append(kFirstCheckpoint, kLastCheckpoint);
    if (HasFatalFailure()) return;
    EXPECT_EQ(audit_->SignCheckpoints().value(), static_cast<int>(ledgers.size()));
    append(kLastCheckpoint, kSize);
  }

  std::vector<Entry> ReadAll(const LedgerRef& ledger) {
    return store_->ReadRange(ledger, 0, 1000).value();
  }

  // value() throws when Verify fails, which fails the test with the status.
  IntegrityReport Verify(const LedgerRef& ledger) { return audit_->Verify(ledger).value(); }

  // Runs `tamper` in one transaction, on a connection of its own, as the database's owner, with
  // the user triggers of audit.entries off for that transaction only; then checks they are on.
  void AsOwner(const LedgerRef& ledger,
               const std::function<void(pqxx::work&, int64_t ledger_id)>& tamper) {
    {
      pqxx::connection c(pg::ConnectionString(url_, absl::Seconds(5)));
      pqxx::work tx(c);
      const int64_t id =
          tx.exec_params1("SELECT id FROM audit.ledgers WHERE project = $1 AND environment = $2",
                          ledger.project, ledger.environment)[0]
              .as<int64_t>();
      tx.exec("ALTER TABLE audit.entries DISABLE TRIGGER USER");
      tamper(tx, id);
      tx.exec("ALTER TABLE audit.entries ENABLE TRIGGER USER");
      tx.commit();
    }
    pqxx::connection c(pg::ConnectionString(url_, absl::Seconds(5)));
    pqxx::work tx(c);
    EXPECT_EQ(tx.exec1("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'audit.entries'::regclass "
                       "AND NOT tgisinternal AND tgenabled = 'O'")[0]
                  .as<int>(),
              2);
  }

  // Deletes the ledger's checkpoints larger than `size`, as the tables' owner.
  void DeleteCheckpointsAbove(const LedgerRef& ledger, uint64_t size) {
    pqxx::connection c(pg::ConnectionString(url_, absl::Seconds(5)));
    pqxx::work tx(c);
    tx.exec("ALTER TABLE audit.checkpoints DISABLE TRIGGER USER");
    tx.exec_params(
        "DELETE FROM audit.checkpoints WHERE tree_size > $2 AND ledger_id = (SELECT id FROM "
        "audit.ledgers WHERE project = $1)",
        ledger.project, static_cast<int64_t>(size));
    tx.exec("ALTER TABLE audit.checkpoints ENABLE TRIGGER USER");
    tx.commit();
  }

  // Replaces the rows from index `from` on by `entries[from...]`.
  void ReplaceFrom(const LedgerRef& ledger, uint64_t from, const std::vector<Entry>& entries) {
    AsOwner(ledger, [&](pqxx::work& tx, int64_t id) {
      Exec(tx, id, absl::StrCat("DELETE FROM audit.entries WHERE ledger_id = $1 AND idx >= ", from),
           kSize - from);
      for (size_t i = from; i < entries.size(); ++i) InsertRow(tx, id, entries[i]);
    });
  }

  FakeClock clock_;
  std::string url_;
  std::string name_;
  std::unique_ptr<pg::Pool> pool_;
  std::unique_ptr<PostgresLedgerStore> store_;
  std::unique_ptr<CheckpointSigner> signer_;
  std::unique_ptr<SubjectCipher> subjects_;
  std::unique_ptr<AuditLedger> audit_;
  std::map<LedgerRef, std::vector<Entry>> appended_;  // As Append returned them.
};

TEST_F(PostgresTamperTest, AnUntamperedLedgerVerifies) {
  const LedgerRef ledger = Ledger("intact");
  Build({ledger});
  const std::vector<Entry>& appended = appended_[ledger];
  ASSERT_EQ(appended.size(), kSize);
  EXPECT_EQ(ReadAll(ledger), appended);
  std::vector<Hash> leaves;
  for (const Entry& e : appended) leaves.push_back(EntryLeafHash(e));
  // The checkpoints sign the roots of what was appended.
  const std::vector<Checkpoint> checkpoints = store_->ListCheckpoints(ledger).value();
  ASSERT_EQ(checkpoints.size(), 2u);
  EXPECT_EQ(checkpoints[0].tree_size, kFirstCheckpoint);
  EXPECT_EQ(checkpoints[0].root, RootOf(absl::MakeConstSpan(leaves).first(kFirstCheckpoint)));
  EXPECT_EQ(checkpoints[1].tree_size, kLastCheckpoint);
  EXPECT_EQ(checkpoints[1].root, RootOf(absl::MakeConstSpan(leaves).first(kLastCheckpoint)));

  const IntegrityReport r = Verify(ledger);
  EXPECT_TRUE(r.valid) << r.problem;
  EXPECT_EQ(r.entries_checked, kSize);
  EXPECT_EQ(r.checkpoints_checked, 2u);
  EXPECT_EQ(r.root, RootOf(leaves));
}

// Not tampering: a subject forgotten through another replica. The store here still holds
// the subject's destroyed key; the next append sealed with it is refused inside the store and
// sealed again with a new key, so that the entry names the subject and the ledger verifies.
TEST_F(PostgresTamperTest, AnAppendAfterAnotherReplicaForgotItsActorUsesANewKey) {
  const LedgerRef ledger = Ledger("forgotten");
  PostgresLedgerStore other_store(pool_.get(), kWriterRole);
  AuditLedger other(&other_store, subjects_.get(), signer_.get(), &clock_);
  EntryInput in = Input(ledger, 0);
  in.actor = "erin@example.com";
  in.request_id = "";
  const Entry before = audit_->Append(in).value().entry;
  ASSERT_TRUE(other.Forget("erin@example.com", "dpo@example.com", "erase-erin").value().forgotten);
  const Entry after = audit_->Append(in).value().entry;
  EXPECT_NE(after.actor.ref, before.actor.ref);  // Another key, hence another pseudonym.
  const std::vector<RevealedEntry> named =
      audit_->ExportSubject("erin@example.com", "dpo", std::nullopt, kMaxPageSize).value().entries;
  ASSERT_EQ(named.size(), 1u);
  EXPECT_EQ(named[0].entry.index, after.index);
  EXPECT_EQ(named[0].actor, "erin@example.com");
  const IntegrityReport r = Verify(ledger);
  EXPECT_TRUE(r.valid) << r.problem;
}

TEST_F(PostgresTamperTest, AnEditedColumnIsFoundAtItsIndex) {
  struct Edit {
    std::string column;
    uint64_t index;
    std::string set;      // The SET clause; $1 is the ledger's id.
    std::string problem;  // What the report says after "entry <index>: ".
  };
  const std::vector<Edit> edits = {
      {"tokens", 7, "tokens = tokens + 1", "its fields do not match its leaf hash"},
      {"latency", 3, "latency_us = latency_us - 1", "its fields do not match its leaf hash"},
      {"model", 12, "model = 'gpt-forged'", "its fields do not match its leaf hash"},
      // A valid encoding: entry 19's.
      {"metadata", 18,
       "metadata = (SELECT metadata FROM audit.entries WHERE ledger_id = $1 AND idx = 19)",
       "its fields do not match its leaf hash"},
      {"time", 25, "recorded_at = recorded_at + interval '1 microsecond'",
       "its fields do not match its leaf hash"},
      {"requestid", 21, "request_id = 'req-forged'", "its fields do not match its leaf hash"},
      // Entry 31's actor (bob), pseudonym and sealed identifier both.
      {"actor", 30,
       "actor_ref = (SELECT actor_ref FROM audit.entries WHERE ledger_id = $1 AND idx = 31), "
       "actor_sealed = (SELECT actor_sealed FROM audit.entries WHERE ledger_id = $1 AND idx = 31)",
       "its fields do not match its leaf hash"},
      // After the last checkpoint: caught by the leaf hash alone.
      {"outcome", 33, "outcome = CASE outcome WHEN 'success' THEN 'error' ELSE 'success' END",
       "its fields do not match its leaf hash"},
      {"action", 34, "action = 'key_revoked'", "its fields do not match its leaf hash"},
      {"subject", 37, "subject_ref = '', subject_sealed = ''",
       "its fields do not match its leaf hash"},
      {"content", 38, "content_hash = sha256(content_hash)",
       "its fields do not match its leaf hash"},
      // The stored hashes themselves.
      {"leafhash", 20, "leaf_hash = sha256(leaf_hash)", "its fields do not match its leaf hash"},
      // Entry 23 completes the subtrees of levels 1 to 3: rotate their hashes.
      {"completed", 23, "completed = substring(completed from 33) || substring(completed for 32)",
       "its stored subtree hashes differ from the recomputed ones"},
      // Entry 24 completes none: give it one.
      {"extra-completed", 24, "completed = completed || sha256(leaf_hash)",
       "its stored subtree hashes differ from the recomputed ones"},
  };
  std::vector<LedgerRef> ledgers;
  for (const Edit& edit : edits) ledgers.push_back(Ledger(edit.column));
  Build(ledgers);
  for (size_t i = 0; i < edits.size(); ++i) {
    const Edit& edit = edits[i];
    SCOPED_TRACE(edit.column);
    AsOwner(ledgers[i], [&](pqxx::work& tx, int64_t id) {
      Exec(tx, id,
           absl::StrCat("UPDATE audit.entries SET ", edit.set,
                        " WHERE ledger_id = $1 AND idx = ", edit.index),
           1);
    });
    const IntegrityReport r = Verify(ledgers[i]);
    EXPECT_FALSE(r.valid);
    EXPECT_EQ(r.first_bad_index, edit.index);
    EXPECT_EQ(r.problem, absl::StrCat("entry ", edit.index, ": ", edit.problem));
    EXPECT_EQ(r.entries_checked, edit.index);  // Everything before it was accepted.
  }
}

TEST_F(PostgresTamperTest, AnEditWithRecomputedHashesIsFound) {
  const LedgerRef odd = Ledger("odd");
  const LedgerRef even = Ledger("even");
  const LedgerRef all = Ledger("all");
  Build({odd, even, all});
  // The forger edits tokens and stores the leaf hash of the edited fields.
  auto edit_with_leaf_hash = [&](const LedgerRef& ledger, uint64_t index) {
    Entry e = ReadAll(ledger).at(index);
    e.tokens = 1;
    e.leaf_hash = EntryLeafHash(e);
    AsOwner(ledger, [&](pqxx::work& tx, int64_t id) {
      EXPECT_EQ(
          tx.exec_params("UPDATE audit.entries SET tokens = 1, leaf_hash = $3 "
                         "WHERE ledger_id = $1 AND idx = $2",
                         id, static_cast<int64_t>(index), Bin(std::string(AsBytes(e.leaf_hash))))
              .affected_rows(),
          1u);
    });
  };

  // Entry 23 stores the subtrees it completes (levels 1 to 3), which cover its old leaf.
  edit_with_leaf_hash(odd, 23);
  IntegrityReport r = Verify(odd);
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 23u);
  EXPECT_EQ(r.problem, "entry 23: its stored subtree hashes differ from the recomputed ones");

  // Entry 22 completes no subtree, so no stored hash covers its old leaf; its MAC does, which
  // only the audit service can recompute.
  edit_with_leaf_hash(even, 22);
  r = Verify(even);
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 22u);
  EXPECT_EQ(r.problem,
            "entry 22: its MAC is not the audit service's: the service did not write it as it "
            "stands");
  EXPECT_EQ(r.entries_checked, 22u);

  // With every stored hash from entry 20 on recomputed (by a forger without the MAC key), entry
  // 20 carries no MAC after entries that do.
  std::vector<Entry> entries = ReadAll(all);
  entries[20].tokens = 1;
  CompactTree tree;
  SealEntries(tree, absl::MakeSpan(entries));
  ReplaceFrom(all, 20, entries);
  r = Verify(all);
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 20u);
  EXPECT_EQ(
      r.problem,
      "entry 20 carries no MAC, but an entry before it does: the audit service did not write it");
  EXPECT_EQ(r.checkpoints_checked, 1u);
}

TEST_F(PostgresTamperTest, ADeletedRowIsFoundAtItsIndex) {
  const std::vector<uint64_t> deleted = {0, 9, kFirstCheckpoint, 35};
  std::vector<LedgerRef> ledgers;
  for (uint64_t index : deleted) ledgers.push_back(Ledger(absl::StrCat("row", index)));
  Build(ledgers);
  for (size_t i = 0; i < deleted.size(); ++i) {
    const uint64_t k = deleted[i];
    SCOPED_TRACE(k);
    AsOwner(ledgers[i], [&](pqxx::work& tx, int64_t id) {
      Exec(tx, id, absl::StrCat("DELETE FROM audit.entries WHERE ledger_id = $1 AND idx = ", k), 1);
    });
    const IntegrityReport r = Verify(ledgers[i]);
    EXPECT_FALSE(r.valid);
    EXPECT_EQ(r.first_bad_index, k);
    EXPECT_EQ(r.problem, absl::StrCat("entry ", k, " is missing (the next one is ", k + 1, ")"));
    EXPECT_EQ(r.entries_checked, k);
  }
}

TEST_F(PostgresTamperTest, SwappedRowsAreFoundAtTheFirstOfThem) {
  const LedgerRef indexes = Ledger("indexes");
  const LedgerRef contents = Ledger("contents");
  Build({indexes, contents});

  // Rows 12 and 31 exchange their idx values (through kAside: the primary key is checked row
  // by row). The leaf hash covers the index, so row 12 now holds a leaf hash of index 31.
  AsOwner(indexes, [&](pqxx::work& tx, int64_t id) {
    Exec(tx, id,
         absl::StrCat("UPDATE audit.entries SET idx = ", kAside,
                      " WHERE ledger_id = $1 AND idx = 12"),
         1);
    Exec(tx, id, "UPDATE audit.entries SET idx = 12 WHERE ledger_id = $1 AND idx = 31", 1);
    Exec(tx, id,
         absl::StrCat("UPDATE audit.entries SET idx = 31 WHERE ledger_id = $1 AND idx = ", kAside),
         1);
  });
  IntegrityReport r = Verify(indexes);
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 12u);
  EXPECT_EQ(r.problem, "entry 12: its fields do not match its leaf hash");
  const std::vector<Entry> swapped = ReadAll(indexes);
  ASSERT_EQ(swapped.size(), kSize);
  EXPECT_EQ(swapped[12].leaf_hash, appended_[indexes][31].leaf_hash);
  EXPECT_EQ(swapped[31].leaf_hash, appended_[indexes][12].leaf_hash);

  // Rows 35 and 38, after the last checkpoint, exchange every column but their index, hashes
  // included (UPDATE ... FROM reads the rows as they were before the statement; neither row has
  // a request id, whose unique index is checked row by row too).
  AsOwner(contents, [&](pqxx::work& tx, int64_t id) {
    Exec(tx, id,
         "UPDATE audit.entries a SET recorded_at = b.recorded_at, action = b.action, "
         "actor_ref = b.actor_ref, actor_sealed = b.actor_sealed, model = b.model, "
         "tokens = b.tokens, latency_us = b.latency_us, outcome = b.outcome, "
         "metadata = b.metadata, content_hash = b.content_hash, request_id = b.request_id, "
         "subject_ref = b.subject_ref, subject_sealed = b.subject_sealed, "
         "leaf_hash = b.leaf_hash, completed = b.completed FROM audit.entries b "
         "WHERE a.ledger_id = $1 AND b.ledger_id = $1 "
         "AND ((a.idx = 35 AND b.idx = 38) OR (a.idx = 38 AND b.idx = 35))",
         2);
  });
  r = Verify(contents);
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 35u);
  EXPECT_EQ(r.problem, "entry 35: its fields do not match its leaf hash");
  EXPECT_EQ(ReadAll(contents)[35].tokens, appended_[contents][38].tokens);
}

TEST_F(PostgresTamperTest, AnInsertedRowIsFound) {
  const LedgerRef copied = Ledger("copied");
  const LedgerRef sealed = Ledger("sealed");
  const LedgerRef resealed = Ledger("resealed");
  const LedgerRef appended = Ledger("appended");
  Build({copied, sealed, resealed, appended});

  // A copy of row 5 with other tokens and its leaf hash as it was, inserted at 6; the rows
  // from 6 on move one on.
  {
    Entry forged = ReadAll(copied).at(5);
    forged.index = 6;
    forged.tokens = 0;
    forged.request_id = "forged";
    AsOwner(copied, [&](pqxx::work& tx, int64_t id) {
      Renumber(tx, id, 6, 1);
      InsertRow(tx, id, forged);
    });
    const IntegrityReport r = Verify(copied);
    EXPECT_FALSE(r.valid);
    EXPECT_EQ(r.first_bad_index, 6u);
    EXPECT_EQ(r.problem, "entry 6: its fields do not match its leaf hash");
  }

  // A row built to look right at 11: its leaf hash is its own, and its subtree hashes are
  // computed from the stored leaf hashes of 0 to 10. Every stored hash agrees with it (the
  // first disagreement would be the renumbered row 12, whose leaf hash covers its old index
  // 11), but its forger could not give it a MAC.
  {
    const std::vector<Entry> stored = ReadAll(sealed);
    CompactTree tree;
    for (uint64_t i = 0; i < 11; ++i) tree.Append(stored[i].leaf_hash);
    std::vector<Entry> forged = {stored[11]};
    forged[0].tokens = 0;
    forged[0].model = "gpt-forged";
    forged[0].request_id = "forged";
    SealEntries(tree, absl::MakeSpan(forged));
    ASSERT_EQ(forged[0].index, 11u);
    ASSERT_EQ(forged[0].completed.size(), 2u);  // {10, 11} and {8 ... 11}.
    AsOwner(sealed, [&](pqxx::work& tx, int64_t id) {
      Renumber(tx, id, 11, 1);
      InsertRow(tx, id, forged[0]);
    });
    const IntegrityReport r = Verify(sealed);
    EXPECT_FALSE(r.valid);
    EXPECT_EQ(r.first_bad_index, 11u);
    EXPECT_EQ(
        r.problem,
        "entry 11 carries no MAC, but an entry before it does: the audit service did not write it");
    EXPECT_EQ(r.entries_checked, 11u);
  }

  // Inserted at 20 with every stored hash from there on recomputed: the forged row (and every
  // row after it, its MAC dropped) carries no MAC.
  {
    std::vector<Entry> entries = ReadAll(resealed);
    Entry forged = entries[20];
    forged.tokens = 0;
    forged.request_id = "forged";
    entries.insert(entries.begin() + 20, forged);
    CompactTree tree;
    SealEntries(tree, absl::MakeSpan(entries));
    ReplaceFrom(resealed, 20, entries);
    ASSERT_EQ(store_->Size(resealed).value(), kSize + 1);
    const IntegrityReport r = Verify(resealed);
    EXPECT_FALSE(r.valid);
    EXPECT_EQ(r.first_bad_index, 20u);
    EXPECT_EQ(
        r.problem,
        "entry 20 carries no MAC, but an entry before it does: the audit service did not write it");
    EXPECT_EQ(r.checkpoints_checked, 1u);
  }

  // A copy of the last row appended at 40 with a made-up leaf hash.
  {
    AsOwner(appended, [&](pqxx::work& tx, int64_t id) {
      Exec(tx, id,
           "INSERT INTO audit.entries SELECT ledger_id, 40, recorded_at, action, actor_ref, "
           "actor_sealed, model, 1, latency_us, outcome, metadata, content_hash, '', subject_ref, "
           "subject_sealed, sha256('forged'), '' FROM audit.entries WHERE ledger_id = $1 "
           "AND idx = 39",
           1);
    });
    const IntegrityReport r = Verify(appended);
    EXPECT_FALSE(r.valid);
    EXPECT_EQ(r.first_bad_index, kSize);
    EXPECT_EQ(r.problem, "entry 40: its fields do not match its leaf hash");
    EXPECT_EQ(ReadAll(appended).back().leaf_hash, Sha256Hash("forged"));
  }
}

TEST_F(PostgresTamperTest, ATruncatedTailIsFoundWhereItWasCut) {
  // Cut below the last checkpoint, just below it, and below the first one.
  const std::vector<uint64_t> cuts = {29, kLastCheckpoint - 1, 10};
  std::vector<LedgerRef> ledgers;
  for (uint64_t cut : cuts) ledgers.push_back(Ledger(absl::StrCat("at", cut)));
  Build(ledgers);
  for (size_t i = 0; i < cuts.size(); ++i) {
    const uint64_t cut = cuts[i];
    SCOPED_TRACE(cut);
    AsOwner(ledgers[i], [&](pqxx::work& tx, int64_t id) {
      Exec(tx, id, absl::StrCat("DELETE FROM audit.entries WHERE ledger_id = $1 AND idx >= ", cut),
           kSize - cut);
    });
    ASSERT_EQ(store_->Size(ledgers[i]).value(), cut);
    // A process that remembers no head (just started) goes by the stored checkpoints.
    AuditLedger fresh(store_.get(), subjects_.get(), signer_.get(), &clock_);
    IntegrityReport r = fresh.Verify(ledgers[i]).value();
    EXPECT_FALSE(r.valid);
    EXPECT_EQ(r.first_bad_index, cut);
    const uint64_t missed = cut < kFirstCheckpoint ? kFirstCheckpoint : kLastCheckpoint;
    EXPECT_EQ(r.problem,
              absl::StrCat("the ledger has ", cut, " entries, but a checkpoint of size ", missed,
                           " was signed: entries from index ", cut, " on are missing"));
    EXPECT_EQ(r.entries_checked, cut);
    EXPECT_EQ(r.checkpoints_checked, cut < kFirstCheckpoint ? 0u : 1u);
    // The one that signed them names the head it remembers when that is what is missing.
    r = Verify(ledgers[i]);
    EXPECT_FALSE(r.valid);
    EXPECT_EQ(r.first_bad_index, cut);
    if (cut >= kFirstCheckpoint) {
      EXPECT_EQ(r.problem,
                absl::StrCat("the ledger has ", cut,
                             " entries, but the head this audit process signed or saw signed "
                             "(root ",
                             absl::BytesToHexString(AsBytes(
                                 store_->GetCheckpoint(ledgers[i], kLastCheckpoint).value().root)),
                             ") has size 32: entries from index ", cut, " on are missing"));
    }
  }
}

// A ledger whose rows were damaged cannot be signed; the ledgers after it still are, and the
// failure names it.
TEST_F(PostgresTamperTest, ADamagedLedgerDoesNotStopTheOthersCheckpoints) {
  const LedgerRef damaged = Ledger("a-damaged");
  const LedgerRef intact = Ledger("b-intact");
  Build({damaged, intact});
  LeaveAGap(damaged);
  std::vector<LedgerOverview> overview;
  const absl::StatusOr<int> signed_count = audit_->SignCheckpoints(&overview);
  ASSERT_FALSE(signed_count.ok());
  EXPECT_THAT(signed_count.status().message(), HasSubstr(LedgerName(damaged)));
  EXPECT_THAT(signed_count.status().message(), Not(HasSubstr(LedgerName(intact))));
  EXPECT_EQ(store_->GetCheckpoint(intact, 0).value().tree_size, kSize);
  EXPECT_EQ(store_->GetCheckpoint(damaged, 0).value().tree_size, kLastCheckpoint);
  // The overview still shows both, as they now stand.
  ASSERT_EQ(overview.size(), 2u);
  EXPECT_EQ(overview[0].ledger, damaged);
  EXPECT_EQ(overview[0].size, kSize + 6);
  EXPECT_EQ(overview[0].latest_checkpoint->tree_size, kLastCheckpoint);
  EXPECT_EQ(overview[1].ledger, intact);
  EXPECT_EQ(overview[1].latest_checkpoint->tree_size, kSize);
}

// Appends batched with a damaged ledger's go through: the failure is its entries' alone.
TEST_F(PostgresTamperTest, ADamagedLedgerFailsOnlyItsOwnAppends) {
  const LedgerRef damaged = Ledger("a-damaged");
  const LedgerRef intact = Ledger("b-intact");
  Build({damaged, intact});
  LeaveAGap(damaged);
  // A replica that has not seen either ledger yet: it reads their trees from the rows.
  AuditLedger fresh(store_.get(), subjects_.get(), signer_.get(), &clock_);
  const std::vector<EntryInput> batch = {Input(damaged, 100), Input(intact, 100),
                                         Input(intact, 101)};
  absl::StatusOr<std::vector<AppendOutcome>> outcomes = fresh.AppendBatch(batch);
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  ASSERT_EQ(outcomes->size(), 3u);
  EXPECT_FALSE((*outcomes)[0].status.ok());
  for (size_t i : {1, 2}) {
    ASSERT_TRUE((*outcomes)[i].status.ok()) << (*outcomes)[i].status;
    EXPECT_EQ((*outcomes)[i].entry.ledger, intact);
    EXPECT_EQ((*outcomes)[i].entry.index, kSize + i - 1);
  }
}

// A column changed to something no entry can hold: the store cannot read the row back, and
// Verify names it rather than vouching for the ledger.
TEST_F(PostgresTamperTest, AnUnreadableRowFailsVerification) {
  const LedgerRef action = Ledger("action");
  const LedgerRef metadata = Ledger("metadata");
  Build({action, metadata});
  AsOwner(action, [&](pqxx::work& tx, int64_t id) {
    Exec(tx, id,
         "UPDATE audit.entries SET action = 'forged_action' WHERE ledger_id = $1 AND idx = 14", 1);
  });
  AsOwner(metadata, [&](pqxx::work& tx, int64_t id) {
    Exec(tx, id,
         "UPDATE audit.entries SET metadata = '\\x00'::bytea WHERE ledger_id = $1 AND idx = 14", 1);
  });
  for (const auto& [ledger, message] : {std::make_pair(action, "unknown action 'forged_action'"),
                                        std::make_pair(metadata, "malformed metadata")}) {
    SCOPED_TRACE(ledger.project);
    absl::StatusOr<IntegrityReport> r = audit_->Verify(ledger);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_FALSE(r->valid);
    EXPECT_EQ(r->first_bad_index, 14u);
    EXPECT_EQ(r->entries_checked, 14u);
    EXPECT_THAT(r->problem, HasSubstr("entry 14 of ledger"));
    EXPECT_THAT(r->problem, HasSubstr(message));
  }
}

// A checkpoint row of tree size 0, which the service never signs, inserted by the tables'
// owner: verification reads it (it is no checkpoint of the service's) and the ledger is
// INVALID.
TEST_F(PostgresTamperTest, AForgedCheckpointOfSizeZeroIsFound) {
  const LedgerRef ledger = Ledger("forged-size-0");
  Build({ledger});
  ASSERT_TRUE(audit_->Verify(ledger).value().valid);
  {
    pqxx::connection c(pg::ConnectionString(url_, absl::Seconds(5)));
    pqxx::work tx(c);
    tx.exec_params(
        "INSERT INTO audit.checkpoints (ledger_id, tree_size, root_hash, signed_at, signature, "
        "key_id) SELECT ledger_id, 0, root_hash, signed_at, signature, key_id FROM "
        "audit.checkpoints WHERE tree_size = $2 AND ledger_id = (SELECT id FROM audit.ledgers "
        "WHERE project = $1)",
        ledger.project, static_cast<int64_t>(kFirstCheckpoint));
    tx.commit();
  }
  const IntegrityReport r = audit_->Verify(ledger).value();
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 0u);
  EXPECT_THAT(r.problem, HasSubstr("size 0"));
}

// The reviewer's attacks on the signer: each leaves rows and checkpoints that agree with each
// other, so only what the service keeps outside the rows (the entries' MACs, the head it
// remembers) tells them apart. The service refuses to sign, and its Verify is INVALID.

// A tail row inserted by the writer role itself (no trigger touched), its hashes computed
// as the service would: no MAC.
TEST_F(PostgresTamperTest, AForgedTailRowIsNotSigned) {
  const LedgerRef ledger = Ledger("forged-tail");
  Build({ledger});
  std::vector<Entry> entries = ReadAll(ledger);
  CompactTree tree;
  for (const Entry& e : entries) tree.Append(e.leaf_hash);
  std::vector<Entry> forged = {entries[3]};
  forged[0].action = Action::kMemberRoleChanged;
  forged[0].request_id = "forged-w";
  forged[0].time = entries.back().time + absl::Seconds(5);
  SealEntries(tree, absl::MakeSpan(forged));
  ASSERT_EQ(forged[0].index, kSize);
  {
    pqxx::connection c(pg::ConnectionString(url_, absl::Seconds(5)));
    pqxx::work tx(c);
    tx.exec(absl::StrCat("SET LOCAL ROLE ", kWriterRole));
    const int64_t id =
        tx.exec_params1("SELECT id FROM audit.ledgers WHERE project = $1", ledger.project)[0]
            .as<int64_t>();
    InsertRow(tx, id, forged[0]);
    tx.commit();
  }
  for (AuditLedger* audit : {audit_.get()}) {
    const absl::StatusOr<int> signed_count = audit->SignCheckpoints();
    EXPECT_EQ(signed_count.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(signed_count.status().message(),
                HasSubstr("entry 40 carries no MAC, but an entry before it does"));
  }
  // Neither does a process that just started and remembers nothing.
  AuditLedger fresh(store_.get(), subjects_.get(), signer_.get(), &clock_);
  EXPECT_EQ(fresh.SignCheckpoints().status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(store_->GetCheckpoint(ledger, 0).value().tree_size, kLastCheckpoint);
  const IntegrityReport r = fresh.Verify(ledger).value();
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, kSize);
  // A forged MAC is refused too.
  AsOwner(ledger, [&](pqxx::work& tx, int64_t id) {
    Exec(tx, id,
         absl::StrCat("UPDATE audit.entries SET mac = sha256(leaf_hash) WHERE ledger_id = $1 "
                      "AND idx = ",
                      kSize),
         1);
  });
  EXPECT_THAT(fresh.SignCheckpoints().status().message(),
              HasSubstr("entry 40: its MAC is not the audit service's"));
  EXPECT_THAT(fresh.Verify(ledger).value().problem,
              HasSubstr("entry 40: its MAC is not the audit service's"));
}

// Someone holding a retired signing key R (still among the previous keys) and the writer role
// appends rows with MACs under the key releases before rotation derived from R, and signs a
// checkpoint of R over them, past the current key's checkpoints.
TEST_F(PostgresTamperTest, ACheckpointOfARetiredKeyPastTheCurrentKeysVouchesForNothing) {
  const LedgerRef ledger = Ledger("retired-key");
  Build({ledger});
  auto retired = CheckpointSigner::Create(std::string(32, '\x33')).value();
  const EntryAuthenticator retired_macs(retired->DeriveKey(kLegacyEntryMacLabel));
  std::vector<Entry> entries = ReadAll(ledger);
  CompactTree tree;
  for (const Entry& e : entries) tree.Append(e.leaf_hash);
  std::vector<Entry> forged = {entries[3], entries[4]};
  for (size_t i = 0; i < forged.size(); ++i) {
    forged[i].request_id = absl::StrCat("forged-", i);
    forged[i].time = entries.back().time + absl::Seconds(5);
  }
  SealEntries(tree, absl::MakeSpan(forged), &retired_macs);
  {
    pqxx::connection c(pg::ConnectionString(url_, absl::Seconds(5)));
    pqxx::work tx(c);
    tx.exec(absl::StrCat("SET LOCAL ROLE ", kWriterRole));
    const int64_t id =
        tx.exec_params1("SELECT id FROM audit.ledgers WHERE project = $1", ledger.project)[0]
            .as<int64_t>();
    for (const Entry& e : forged) InsertRow(tx, id, e);
    tx.commit();
  }
  ASSERT_TRUE(
      store_->AddCheckpoint(retired->Sign(ledger, kSize + 2, tree.Root(), clock_.Now()).value())
          .ok());
  // A process that trusts R (it signed this deployment's ledgers before the rotation).
  AuditLedger fresh(store_.get(), subjects_.get(), signer_.get(), &clock_, {retired->public_key()});
  const IntegrityReport r = fresh.Verify(ledger).value();
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, kLastCheckpoint);
  EXPECT_THAT(r.problem, HasSubstr(absl::StrCat("the checkpoint of size ", kSize + 2,
                                                " was signed by earlier key ", retired->key_id())));
  // The signer does not go on from R's checkpoint: it checks the entries since its own.
  ASSERT_TRUE(fresh.Append(Input(ledger, 50)).ok());
  const absl::StatusOr<int> signed_count = fresh.SignCheckpoints();
  EXPECT_EQ(signed_count.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(signed_count.status().message(),
              HasSubstr(absl::StrCat("entry ", kSize, ": its MAC is not the audit service's")));
  EXPECT_EQ(store_->GetCheckpoint(ledger, 0).value().tree_size, kSize + 2);
  EXPECT_EQ(fresh.ProveInclusion(ledger, kSize, "", 0).status().code(),
            absl::StatusCode::kDataLoss);
}

// An entry edited, every hash from it on recomputed, and the checkpoints covering it deleted.
TEST_F(PostgresTamperTest, AnEditRehashedWithItsCheckpointsDeletedIsNotSigned) {
  const LedgerRef ledger = Ledger("rehashed");
  Build({ledger});
  std::vector<Entry> entries = ReadAll(ledger);
  entries[20].tokens = 1;
  CompactTree tree;
  SealEntries(tree, absl::MakeSpan(entries));
  ReplaceFrom(ledger, 20, entries);
  DeleteCheckpointsAbove(ledger, kFirstCheckpoint);
  // This process remembers the checkpoint of size 32.
  absl::StatusOr<int> signed_count = audit_->SignCheckpoints();
  EXPECT_EQ(signed_count.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(signed_count.status().message(),
              HasSubstr("its newest stored checkpoint has size 16, less than the head this "
                        "audit process signed or saw signed (size 32"));
  IntegrityReport r = Verify(ledger);
  EXPECT_FALSE(r.valid);
  // One that remembers nothing: the rows carry no MAC.
  AuditLedger fresh(store_.get(), subjects_.get(), signer_.get(), &clock_);
  signed_count = fresh.SignCheckpoints();
  EXPECT_EQ(signed_count.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(signed_count.status().message(), HasSubstr("entry 20 carries no MAC"));
  r = fresh.Verify(ledger).value();
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 20u);
  EXPECT_EQ(store_->GetCheckpoint(ledger, 0).value().tree_size, kFirstCheckpoint);
}

// The tail deleted together with the checkpoints covering it: every row left agrees with
// every checkpoint left.
TEST_F(PostgresTamperTest, ATruncationWithItsCheckpointsDeletedIsNotSigned) {
  const LedgerRef ledger = Ledger("truncated");
  Build({ledger});
  ASSERT_EQ(audit_->SignCheckpoints().value(), 1);  // Signs 40.
  AsOwner(ledger, [&](pqxx::work& tx, int64_t id) {
    Exec(tx, id, "DELETE FROM audit.entries WHERE ledger_id = $1 AND idx >= 20", kSize - 20);
  });
  DeleteCheckpointsAbove(ledger, kFirstCheckpoint);
  ASSERT_EQ(store_->Size(ledger).value(), 20u);
  std::vector<LedgerOverview> overview;
  const absl::StatusOr<int> signed_count = audit_->SignCheckpoints(&overview);
  EXPECT_EQ(signed_count.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(signed_count.status().message(),
              HasSubstr("it holds 20 entries, fewer than the head this audit process signed or "
                        "saw signed (size 40"));
  ASSERT_EQ(overview.size(), 1u);
  EXPECT_EQ(overview[0].size, 20u);
  EXPECT_THAT(overview[0].refused, HasSubstr("entries were removed"));
  EXPECT_EQ(store_->GetCheckpoint(ledger, 0).value().tree_size, kFirstCheckpoint);
  const IntegrityReport r = Verify(ledger);
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 20u);
  EXPECT_THAT(r.problem, HasSubstr("the head this audit process signed or saw signed"));
  EXPECT_THAT(r.problem, HasSubstr("has size 40: entries from index 20 on are missing"));
}

// A process that only verified the ledger (another replica signed it) remembers it too.
TEST_F(PostgresTamperTest, AHeadSeenByVerifyIsRemembered) {
  const LedgerRef ledger = Ledger("seen");
  Build({ledger});
  AuditLedger other(store_.get(), subjects_.get(), signer_.get(), &clock_);
  ASSERT_TRUE(other.Verify(ledger).value().valid);  // Sees the checkpoint of size 32.
  AsOwner(ledger, [&](pqxx::work& tx, int64_t id) {
    Exec(tx, id, "DELETE FROM audit.entries WHERE ledger_id = $1 AND idx >= 20", kSize - 20);
  });
  DeleteCheckpointsAbove(ledger, kFirstCheckpoint);
  const IntegrityReport r = other.Verify(ledger).value();
  EXPECT_FALSE(r.valid);
  EXPECT_THAT(r.problem, HasSubstr("has size 32: entries from index 20 on are missing"));
  EXPECT_EQ(other.SignCheckpoints().status().code(), absl::StatusCode::kDataLoss);
}

// Entries, checkpoints and the ledger's row all deleted: the ledger is gone from the store's
// list, but not from the signer's memory.
TEST_F(PostgresTamperTest, ADeletedLedgerIsMissed) {
  const LedgerRef ledger = Ledger("deleted");
  Build({ledger});
  ASSERT_EQ(audit_->SignCheckpoints().value(), 1);
  AsOwner(ledger, [&](pqxx::work& tx, int64_t id) {
    Exec(tx, id, "DELETE FROM audit.entries WHERE ledger_id = $1", kSize);
  });
  DeleteCheckpointsAbove(ledger, 0);
  {
    pqxx::connection c(pg::ConnectionString(url_, absl::Seconds(5)));
    pqxx::work tx(c);
    tx.exec("ALTER TABLE audit.ledgers DISABLE TRIGGER USER");
    EXPECT_EQ(tx.exec_params("DELETE FROM audit.ledgers WHERE project = $1", ledger.project)
                  .affected_rows(),
              1u);
    tx.exec("ALTER TABLE audit.ledgers ENABLE TRIGGER USER");
    tx.commit();
  }
  std::vector<LedgerOverview> overview;
  const absl::StatusOr<int> signed_count = audit_->SignCheckpoints(&overview);
  EXPECT_EQ(signed_count.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(signed_count.status().message(), HasSubstr(LedgerName(ledger)));
  ASSERT_EQ(overview.size(), 1u);
  EXPECT_EQ(overview[0].ledger, ledger);
  EXPECT_EQ(overview[0].size, 0u);  // policy_audit_ledger_entries drops to 0.
  EXPECT_THAT(overview[0].refused, HasSubstr("it holds 0 entries, fewer than the head"));
  const IntegrityReport r = Verify(ledger);
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 0u);
  EXPECT_THAT(r.problem, HasSubstr("the ledger has 0 entries, but the head this audit process"));
}

// Entries stored before entries carried MACs (migration 004) are accepted before the first
// entry with one, and only there.
TEST_F(PostgresTamperTest, EntriesWithoutAMacAreAcceptedOnlyBeforeTheFirstWithOne) {
  const LedgerRef ledger = Ledger("legacy");
  // As a release before 004 wrote them: no MAC (a store nothing authenticates).
  PostgresLedgerStore legacy_store(pool_.get(), kWriterRole);
  for (int n = 0; n < 10; ++n) {
    Entry e;
    e.ledger = ledger;
    e.time = clock_.Now() + absl::Seconds(n);
    e.actor.ref = std::string(32, 'a');
    e.actor.sealed = "sealed";
    e.tokens = n;
    ASSERT_TRUE(legacy_store.Append({e}, {}).ok());
  }
  ASSERT_TRUE(ReadAll(ledger).back().mac.empty());
  AuditLedger upgraded(store_.get(), subjects_.get(), signer_.get(), &clock_);
  ASSERT_EQ(upgraded.SignCheckpoints().value(), 1);  // The unsigned legacy tail too.
  for (int n = 0; n < 5; ++n) ASSERT_TRUE(upgraded.Append(Input(ledger, n)).ok());
  ASSERT_FALSE(ReadAll(ledger).back().mac.empty());
  ASSERT_EQ(upgraded.SignCheckpoints().value(), 1);
  IntegrityReport r = upgraded.Verify(ledger).value();
  EXPECT_TRUE(r.valid) << r.problem;
  EXPECT_EQ(r.unauthenticated_entries, 10u);
  // After that, an entry without a MAC is a forgery.
  Entry late;
  late.ledger = ledger;
  late.time = clock_.Now() + absl::Hours(1);
  late.actor.ref = std::string(32, 'a');
  ASSERT_TRUE(PostgresLedgerStore(pool_.get(), kWriterRole).Append({late}, {}).ok());
  EXPECT_THAT(upgraded.SignCheckpoints().status().message(),
              HasSubstr("entry 15 carries no MAC, but an entry before it does"));
  r = upgraded.Verify(ledger).value();
  EXPECT_FALSE(r.valid);
  EXPECT_EQ(r.first_bad_index, 15u);
}

// GetInclusionProof never vouches for what does not check: an entry whose fields do not give
// its leaf hash, or stored hashes that do not fold to the checkpoint's root.
TEST_F(PostgresTamperTest, AnInclusionProofOfAChangedEntryIsRefused) {
  const LedgerRef fields = Ledger("fields");
  const LedgerRef hashes = Ledger("hashes");
  Build({fields, hashes});
  ASSERT_TRUE(audit_->ProveInclusion(fields, 2, "", 0).ok());
  AsOwner(fields, [&](pqxx::work& tx, int64_t id) {
    Exec(tx, id, "UPDATE audit.entries SET tokens = tokens + 1 WHERE ledger_id = $1 AND idx = 2",
         1);
  });
  absl::StatusOr<InclusionProof> proof = audit_->ProveInclusion(fields, 2, "", 0);
  EXPECT_EQ(proof.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(proof.status().message(), HasSubstr("its fields do not match its leaf hash"));
  // Entry 3 stores the subtree {0 ... 3}, part of entry 5's proof.
  AsOwner(hashes, [&](pqxx::work& tx, int64_t id) {
    Exec(tx, id,
         "UPDATE audit.entries SET completed = substring(completed for 32) || sha256(completed) "
         "WHERE ledger_id = $1 AND idx = 3",
         1);
  });
  proof = audit_->ProveInclusion(hashes, 5, "", 0);
  EXPECT_EQ(proof.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(proof.status().message(), HasSubstr("the stored hashes do not prove it"));
}

// A subject key row moved to another subject's pseudonym (audit.subject_keys.ref is not
// covered by the key's wrapping): reading a subject's entries by it is refused with
// DATA_LOSS naming the row's locator, never the identifier, so a subject access request
// never returns another person's entries. A row deleted without a subject_forgotten record
// shows in the compliance summary.
TEST_F(PostgresTamperTest, ASubjectKeyRowMovedToAnotherPseudonymIsRefused) {
  const LedgerRef ledger = Ledger("subjects");
  for (int n = 0; n < 6; ++n) {
    EntryInput in;
    in.action = Action::kApiCall;
    in.actor = n % 2 == 0 ? "alice0@example.com" : "carol0@example.com";
    in.ledger = ledger;
    in.model = "gpt-4.1";
    in.request_id = absl::StrCat("subjects-", n);
    ASSERT_TRUE(audit_->Append(in).ok());
  }
  const std::string alice = subjects_->Locator("alice0@example.com");
  const std::string carol = subjects_->Locator("carol0@example.com");
  absl::StatusOr<SubjectPage> before =
      audit_->ExportSubject("alice0@example.com", "dpo@example.com", std::nullopt, 100);
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(before->entries.size(), 3u);
  absl::StatusOr<ComplianceSummary> sound =
      audit_->Summarize(ledger, std::nullopt, std::nullopt, "dpo@example.com");
  ASSERT_TRUE(sound.ok()) << sound.status();
  EXPECT_EQ(sound->unaccounted_subjects, 0u);
  {
    pqxx::connection c(pg::ConnectionString(url_, absl::Seconds(5)));
    pqxx::work tx(c);
    EXPECT_EQ(tx.exec_params("UPDATE audit.subject_keys SET ref = (SELECT ref FROM "
                             "audit.subject_keys WHERE locator = $2) WHERE locator = $1",
                             Bin(alice), Bin(carol))
                  .affected_rows(),
              1u);
    tx.commit();
  }
  absl::StatusOr<SubjectPage> page =
      audit_->ExportSubject("alice0@example.com", "dpo@example.com", std::nullopt, 100);
  EXPECT_EQ(page.status().code(), absl::StatusCode::kDataLoss) << page.status();
  EXPECT_THAT(page.status().message(), HasSubstr(absl::BytesToHexString(alice)));
  EXPECT_THAT(page.status().message(), Not(HasSubstr("alice0")));
  QuerySpec spec;
  spec.ledger = ledger;
  spec.actor = "alice0@example.com";
  EXPECT_EQ(audit_->Query(spec, "dpo@example.com").status().code(), absl::StatusCode::kDataLoss);
  // Carol's own row is untouched: her export still works and holds only her entries (their
  // identifiers may not open while another row claims her pseudonym; never as alice's).
  absl::StatusOr<SubjectPage> theirs =
      audit_->ExportSubject("carol0@example.com", "dpo@example.com", std::nullopt, 100);
  ASSERT_TRUE(theirs.ok()) << theirs.status();
  ASSERT_EQ(theirs->entries.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(theirs->entries[i].entry.request_id, absl::StrCat("subjects-", 2 * i + 1));
    EXPECT_NE(theirs->entries[i].actor, "alice0@example.com");
  }

  // Forgotten through the service: accounted for. Deleted behind its back: not.
  ASSERT_TRUE(audit_->Forget("carol0@example.com", "dpo@example.com", "forget-carol").ok());
  {
    pqxx::connection c(pg::ConnectionString(url_, absl::Seconds(5)));
    pqxx::work tx(c);
    EXPECT_EQ(tx.exec_params("DELETE FROM audit.subject_keys WHERE locator = $1", Bin(alice))
                  .affected_rows(),
              1u);
    tx.commit();
  }
  absl::StatusOr<ComplianceSummary> summary =
      audit_->Summarize(ledger, std::nullopt, std::nullopt, "dpo@example.com");
  ASSERT_TRUE(summary.ok()) << summary.status();
  EXPECT_EQ(summary->unaccounted_subjects, 1u);
}

// The audit service logged in as a member of policy_audit_runtime only
// (POLICY_TEST_PG_AUDIT_RUNTIME_URL; tools/dev creates such a role; 005_runtime_role.sql):
// it appends, signs, exports and forgets through the store, but cannot change, delete or
// insert ledger rows itself, nor become policy_audit_writer.
TEST_F(PostgresTamperTest, TheRuntimeLoginRoleCannotRewriteTheLedger) {
  const std::string runtime = pg::TestDatabase::Get()->RuntimeUrl("audit");
  if (runtime.empty()) GTEST_SKIP() << "POLICY_TEST_PG_AUDIT_RUNTIME_URL is not set";
  std::string database;
  {
    pqxx::connection c(pg::ConnectionString(url_, absl::Seconds(5)));
    pqxx::work tx(c);
    database = tx.exec1("SELECT current_database()")[0].as<std::string>();
  }
  const std::string url = pg::WithDatabase(runtime, database);
  pg::Pool pool(pg::PoolOptions{.url = url, .size = 2});
  absl::StatusOr<std::string> role = PostgresLedgerStore::TransactionRole(&pool);
  ASSERT_TRUE(role.ok()) << role.status();
  EXPECT_EQ(*role, "");
  ASSERT_TRUE(PostgresLedgerStore::CheckRole(&pool, *role).ok());
  PostgresLedgerStore store(&pool, *role);
  AuditLedger audit(&store, subjects_.get(), signer_.get(), &clock_);
  const LedgerRef ledger = Ledger("runtime");
  for (int n = 0; n < 4; ++n) {
    absl::StatusOr<AppendOutcome> out = audit.Append(Input(ledger, n));
    ASSERT_TRUE(out.ok()) << out.status();
  }
  absl::StatusOr<int> signed_count = audit.SignCheckpoints();
  ASSERT_TRUE(signed_count.ok()) << signed_count.status();
  EXPECT_EQ(*signed_count, 1);
  ASSERT_TRUE(audit.ExportSubject("carol@example.com", "dpo@example.com", std::nullopt, 10).ok());
  ASSERT_TRUE(audit.Forget("carol@example.com", "dpo@example.com", "forget-carol-rt").ok());
  const IntegrityReport report = audit.Verify(ledger).value();
  EXPECT_TRUE(report.valid) << report.problem;
  EXPECT_EQ(report.entries_checked, 4u);

  for (const std::string sql : {
           "UPDATE audit.entries SET model = 'forged'",
           "DELETE FROM audit.entries",
           "INSERT INTO audit.entries SELECT * FROM audit.entries LIMIT 1",
           "UPDATE audit.checkpoints SET key_id = 'deadbeefdeadbeef'",
           "DELETE FROM audit.checkpoints",
           "INSERT INTO audit.checkpoints SELECT * FROM audit.checkpoints LIMIT 1",
           "UPDATE audit.subject_keys SET ref = ref",
           "ALTER TABLE audit.entries DISABLE TRIGGER USER",
           "SET ROLE policy_audit_writer",
       }) {
    SCOPED_TRACE(sql);
    pqxx::connection c(pg::ConnectionString(url, absl::Seconds(5)));
    pqxx::work tx(c);
    EXPECT_ANY_THROW(tx.exec(sql));
  }
}

}  // namespace
}  // namespace policy::audit
