-- Records of organisation changes on their way to the audit ledger (the transactional
-- outbox, common/ledger/postgres_outbox.h): each change writes its records here in its own
-- transaction, so an acknowledged change always has them; the relay (one replica at a time)
-- appends them to the audit service in `seq` order and deletes each one audit acknowledged.
-- A record audit refused for good stays with failed = true and its error, for an operator
-- to inspect (and, once fixed, to resend with `UPDATE ... SET failed = false`).
CREATE TABLE ledger_outbox (
  seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  action      text NOT NULL,
  actor       text NOT NULL,
  project     text NOT NULL,
  environment text NOT NULL,
  subject     text NOT NULL,
  request_id  text NOT NULL,
  metadata    text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  attempts    integer NOT NULL DEFAULT 0,
  last_error  text NOT NULL DEFAULT '',
  failed      boolean NOT NULL DEFAULT false
);

CREATE INDEX ledger_outbox_pending ON ledger_outbox (seq) WHERE NOT failed;
