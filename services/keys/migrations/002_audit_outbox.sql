-- Key lifecycle events on their way to the audit ledger (the transactional outbox). Each
-- change to api_keys writes its events here in the same transaction, so an acknowledged
-- change always has its events; the relay (one replica at a time, under an advisory lock)
-- appends them to the audit service in `seq` order and deletes each one audit acknowledged.
-- An event audit refused for good stays here with failed = true and its error, for an
-- operator to inspect (and, once fixed, to resend with `UPDATE ... SET failed = false`).
CREATE TABLE audit_outbox (
  seq            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event          text NOT NULL
                 CHECK (event IN ('key_created', 'key_rotated', 'key_revoked', 'key_auto_revoked')),
  key_id         text NOT NULL,
  kind           text NOT NULL CHECK (kind IN ('project', 'service_account', 'admin')),
  owner_type     text NOT NULL CHECK (owner_type IN ('member', 'service_account')),
  owner_id       text NOT NULL,
  project        text NOT NULL,
  environment    text NOT NULL
                 CHECK (environment IN ('production', 'staging', 'development', 'sandbox')),
  at             timestamptz NOT NULL,
  related_key_id text NOT NULL DEFAULT '',
  reason         text NOT NULL DEFAULT '',
  created_at     timestamptz NOT NULL DEFAULT now(),
  attempts       integer NOT NULL DEFAULT 0,
  last_error     text NOT NULL DEFAULT '',
  failed         boolean NOT NULL DEFAULT false
);

CREATE INDEX audit_outbox_pending ON audit_outbox (seq) WHERE NOT failed;
