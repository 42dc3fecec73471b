#ifndef POLICY_COMMON_LEDGER_POSTGRES_OUTBOX_H_
#define POLICY_COMMON_LEDGER_POSTGRES_OUTBOX_H_

#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"
#include "common/ledger/outbox.h"
#include "common/pg/pool.h"
#include "common/pg/privileges.h"
#include "pqxx/pqxx"

namespace policy::ledger {

// An outbox in a PostgreSQL table that a service's migrations create as:
//
//   CREATE TABLE ledger_outbox (
//     seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
//     action      text NOT NULL,
//     actor       text NOT NULL,
//     project     text NOT NULL,
//     environment text NOT NULL,
//     subject     text NOT NULL,
//     request_id  text NOT NULL,
//     metadata    text NOT NULL,  -- EncodeMetadata
//     created_at  timestamptz NOT NULL DEFAULT now(),
//     attempts    integer NOT NULL DEFAULT 0,
//     last_error  text NOT NULL DEFAULT '',
//     failed      boolean NOT NULL DEFAULT false
//   );
//   CREATE INDEX ledger_outbox_pending ON ledger_outbox (seq) WHERE NOT failed;
//
// A store writes a change's records with Write in the change's own transaction. A drain
// holds one pooled connection and a transaction-scoped advisory lock named after the table
// while it hands entries out. A row that does not decode
// (edited by hand) is marked failed with the error, as a refused record is, and the drain goes on.
class PostgresOutbox : public Outbox {
 public:
  // `table` is schema-qualified ("authz.ledger_outbox"); `pool` must outlive the outbox.
  PostgresOutbox(pg::Pool* pool, std::string table);

  // What the outbox's statements need of `table` (a store using one lists them with its own;
  // the identity column draws its numbers without a privilege on its sequence).
  static std::vector<pg::Privilege> Privileges(const std::string& table);

  // Inserts `records`, in order, in `tx`.
  void Write(pqxx::work& tx, const std::vector<LedgerRecord>& records) const;

  // In `tx`: empties the actor and subject of every row marked failed for which `erased`
  // holds, and notes it in the row's last_error (a row a drain marks failed after `tx` keeps
  // what it holds). Waits for no drain. The number of rows changed.
  int EraseFromFailed(pqxx::work& tx, absl::FunctionRef<bool(absl::string_view)> erased) const;

  absl::StatusOr<OutboxDrain> Drain(int limit, const OutboxHandler& handle) override;
  absl::StatusOr<std::vector<OutboxEntry>> Read(int limit) override;

 private:
  pg::Pool* const pool_;
  const std::string table_;
};

}  // namespace policy::ledger

#endif  // POLICY_COMMON_LEDGER_POSTGRES_OUTBOX_H_
