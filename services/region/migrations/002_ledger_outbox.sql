-- The outbox of the registry's changes on their way to the audit ledger
-- (common/ledger/postgres_outbox.h): each endpoint change writes its record here in the
-- change's own transaction; the relay of any replica (one at a time) delivers the records in
-- `seq` order and deletes each one audit took. A record audit refused for good stays, with
-- failed = true and its error, for an operator (UPDATE ... SET failed = false sends it again).
-- Applied with search_path set to the service's schema.
CREATE TABLE ledger_outbox (
  seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  action      text NOT NULL,
  actor       text NOT NULL,
  project     text NOT NULL,
  environment text NOT NULL,
  subject     text NOT NULL,
  request_id  text NOT NULL,
  metadata    text NOT NULL,  -- EncodeMetadata
  created_at  timestamptz NOT NULL DEFAULT now(),
  attempts    integer NOT NULL DEFAULT 0,
  last_error  text NOT NULL DEFAULT '',
  failed      boolean NOT NULL DEFAULT false
);
CREATE INDEX ledger_outbox_pending ON ledger_outbox (seq) WHERE NOT failed;
