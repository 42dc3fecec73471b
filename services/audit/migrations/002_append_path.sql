-- The append path, measured (services/audit/append_benchmark.cc).
--
-- Request ids are looked up by request id first. An index led by ledger_id competes with
-- every other index led by it, and for a ledger that grew since the table was last analysed
-- the planner may pick one of those and filter the whole ledger row by row; led by
-- request_id (and queried with ledger_id hidden from the other indexes), the probe is always
-- one descent of this index.
DROP INDEX entries_request;
CREATE UNIQUE INDEX entries_request ON entries (request_id, ledger_id) WHERE request_id <> '';

-- The foreign key ran a referential check per inserted entry, a third of the cost of an
-- append. Ledger rows are never updated or deleted (their trigger refuses it), and the service
-- inserts an entry only under a ledger id it read from or inserted into audit.ledgers.
ALTER TABLE entries DROP CONSTRAINT entries_ledger_id_fkey;
