-- Key lifecycle events on their way to the audit ledger move from keys' own typed outbox
-- (audit_outbox) to the outbox every service shares (common/ledger/postgres_outbox.h): each
-- change to api_keys writes the ledger records of its events here in the same transaction;
-- the relay (one replica at a time, under an advisory lock) appends them to the audit service
-- in `seq` order and deletes each one audit acknowledged. A record audit refused for good
-- stays here with failed = true and its error, for an operator to inspect (and, once fixed,
-- to resend with `UPDATE keys.ledger_outbox SET failed = false WHERE seq = ...`).
CREATE TABLE ledger_outbox (
  seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  action      text NOT NULL,
  actor       text NOT NULL,
  project     text NOT NULL,
  environment text NOT NULL,
  subject     text NOT NULL,
  request_id  text NOT NULL,
  metadata    text NOT NULL,  -- ledger::EncodeMetadata
  created_at  timestamptz NOT NULL DEFAULT now(),
  attempts    integer NOT NULL DEFAULT 0,
  last_error  text NOT NULL DEFAULT '',
  failed      boolean NOT NULL DEFAULT false
);

CREATE INDEX ledger_outbox_pending ON ledger_outbox (seq) WHERE NOT failed;

-- absl::CEscape of a text's UTF-8 bytes, as ledger::EncodeMetadata escapes a value: \n \r \t
-- \" \' \\ by name, other bytes outside printable ASCII as three octal digits.
CREATE FUNCTION ledger_outbox_cescape(value text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
  bytes bytea := convert_to(value, 'UTF8');
  escaped text := '';
  b integer;
BEGIN
  FOR i IN 0 .. length(bytes) - 1 LOOP
    b := get_byte(bytes, i);
    escaped := escaped || CASE
      WHEN b = 10 THEN '\n'
      WHEN b = 13 THEN '\r'
      WHEN b = 9 THEN '\t'
      WHEN b = 34 THEN '\"'
      WHEN b = 39 THEN '\'''
      WHEN b = 92 THEN '\\'
      WHEN b >= 32 AND b < 127 THEN chr(b)
      ELSE '\' || (b >> 6)::text || ((b >> 3) & 7)::text || (b & 7)::text
    END;
  END LOOP;
  RETURN escaped;
END;
$$;

-- An event of keys' typed outbox as the record keys' LedgerRecordOf makes of it (in
-- services/keys/key_events.cc), written to ledger_outbox with its attempts and error; its
-- sequence number too when `keep_seq`. `at` is absl's RFC3339_full in UTC: seconds with the
-- fraction's trailing zeros trimmed (none when whole), then "+00:00". Metadata lines are
-- sorted by key.
CREATE FUNCTION ledger_outbox_move(e audit_outbox, keep_seq boolean) RETURNS void
LANGUAGE sql SET search_path FROM CURRENT AS $$
  INSERT INTO ledger_outbox (seq, action, actor, project, environment, subject, request_id,
                             metadata, created_at, attempts, last_error, failed)
  OVERRIDING SYSTEM VALUE
  SELECT CASE WHEN keep_seq THEN e.seq
              ELSE nextval(pg_get_serial_sequence('ledger_outbox', 'seq')) END,
         CASE e.event
           WHEN 'key_created' THEN 'KEY_CREATED'
           WHEN 'key_rotated' THEN 'KEY_ROTATED'
           WHEN 'key_revoked' THEN 'KEY_REVOKED'
           WHEN 'key_auto_revoked' THEN 'KEY_OVERLAP_ENDED'
         END,
         'keys-service',
         e.project,
         CASE WHEN e.project <> '' THEN e.environment ELSE '' END,
         e.owner_id,
         'keys:' || e.event || ':' || e.key_id,
         'at' || E'\t' || ledger_outbox_cescape(
             to_char(e."at" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
             || CASE WHEN rtrim(to_char(e."at" AT TIME ZONE 'UTC', 'US'), '0') = '' THEN ''
                     ELSE '.' || rtrim(to_char(e."at" AT TIME ZONE 'UTC', 'US'), '0') END
             || '+00:00') || E'\n'
         || 'key_id' || E'\t' || ledger_outbox_cescape(e.key_id) || E'\n'
         || 'kind' || E'\t' || ledger_outbox_cescape(e.kind) || E'\n'
         || 'owner_type' || E'\t' || ledger_outbox_cescape(e.owner_type) || E'\n'
         || CASE WHEN e.reason <> ''
                 THEN 'reason' || E'\t' || ledger_outbox_cescape(e.reason) || E'\n'
                 ELSE '' END
         || CASE WHEN e.related_key_id <> ''
                 THEN 'related_key_id' || E'\t' || ledger_outbox_cescape(e.related_key_id)
                      || E'\n'
                 ELSE '' END,
         e.created_at,
         e.attempts,
         e.last_error,
         e.failed;
$$;

-- The events still waiting move over, keeping their sequence numbers; no replica of the
-- previous release writes one meanwhile (the lock), so none is left behind.
LOCK TABLE audit_outbox IN EXCLUSIVE MODE;
SELECT ledger_outbox_move(e, true) FROM audit_outbox e ORDER BY e.seq;
DELETE FROM audit_outbox;

-- New records are numbered after the moved ones.
SELECT setval(pg_get_serial_sequence('ledger_outbox', 'seq'),
              COALESCE((SELECT max(seq) FROM ledger_outbox), 0) + 1, false);

-- Replicas of the previous release keep working during a rolling upgrade: what they write to
-- audit_outbox, in their change's transaction, moves to ledger_outbox in that transaction.
-- A later release drops the trigger, the functions and the table.
CREATE FUNCTION ledger_outbox_move_new() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  PERFORM ledger_outbox_move(NEW, false);
  DELETE FROM audit_outbox WHERE seq = NEW.seq;
  RETURN NULL;
END;
$$;
CREATE TRIGGER audit_outbox_moves_to_ledger_outbox AFTER INSERT ON audit_outbox
  FOR EACH ROW EXECUTE FUNCTION ledger_outbox_move_new();
