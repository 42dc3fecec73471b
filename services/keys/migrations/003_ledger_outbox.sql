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

-- The events still waiting, each as the record keys' LedgerRecordOf makes of it (in
-- services/keys/key_events.cc), keeping their sequence numbers, attempts and errors. `at` is
-- absl's RFC3339_full in UTC: seconds with the fraction's trailing zeros trimmed (none when
-- whole), then "+00:00". Metadata lines are sorted by key.
INSERT INTO ledger_outbox (seq, action, actor, project, environment, subject, request_id,
                           metadata, created_at, attempts, last_error, failed)
OVERRIDING SYSTEM VALUE
SELECT seq,
       CASE event
         WHEN 'key_created' THEN 'KEY_CREATED'
         WHEN 'key_rotated' THEN 'KEY_ROTATED'
         WHEN 'key_revoked' THEN 'KEY_REVOKED'
         WHEN 'key_auto_revoked' THEN 'KEY_OVERLAP_ENDED'
       END,
       'keys-service',
       project,
       CASE WHEN project <> '' THEN environment ELSE '' END,
       owner_id,
       'keys:' || event || ':' || key_id,
       'at' || E'\t' || ledger_outbox_cescape(
           to_char("at" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
           || CASE WHEN rtrim(to_char("at" AT TIME ZONE 'UTC', 'US'), '0') = '' THEN ''
                   ELSE '.' || rtrim(to_char("at" AT TIME ZONE 'UTC', 'US'), '0') END
           || '+00:00') || E'\n'
       || 'key_id' || E'\t' || ledger_outbox_cescape(key_id) || E'\n'
       || 'kind' || E'\t' || ledger_outbox_cescape(kind) || E'\n'
       || 'owner_type' || E'\t' || ledger_outbox_cescape(owner_type) || E'\n'
       || CASE WHEN reason <> '' THEN 'reason' || E'\t' || ledger_outbox_cescape(reason) || E'\n'
               ELSE '' END
       || CASE WHEN related_key_id <> ''
               THEN 'related_key_id' || E'\t' || ledger_outbox_cescape(related_key_id) || E'\n'
               ELSE '' END,
       created_at,
       attempts,
       last_error,
       failed
FROM audit_outbox
ORDER BY seq;

-- New records are numbered after the copied ones.
SELECT setval(pg_get_serial_sequence('ledger_outbox', 'seq'),
              COALESCE((SELECT max(seq) FROM ledger_outbox), 0) + 1, false);

DROP FUNCTION ledger_outbox_cescape(text);
DROP TABLE audit_outbox;
