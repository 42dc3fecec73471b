-- The audit ledgers: append-only Merkle logs (services/audit/merkle.h), one per project and
-- environment plus the organisation's (both empty).
CREATE TABLE ledgers (
  id          bigserial PRIMARY KEY,
  project     text NOT NULL CHECK (project ~ '^[a-z0-9_-]{0,64}$'),
  environment text NOT NULL
              CHECK (environment IN ('', 'production', 'staging', 'development', 'sandbox')),
  created_at  timestamptz NOT NULL DEFAULT now(),
  CHECK ((project = '') = (environment = '')),
  UNIQUE (project, environment)
);

-- One row per entry. Each row also holds the hashes of the tree nodes it completes: its leaf
-- hash and, in `completed`, the roots of the perfect subtrees it ends (level 1 upward, 32
-- bytes each), so that any node of the tree is one lookup. Empty byte strings stand for
-- "none" (no content hash, no request id, no subject).
CREATE TABLE entries (
  ledger_id      bigint NOT NULL REFERENCES ledgers (id),
  idx            bigint NOT NULL CHECK (idx >= 0),
  recorded_at    timestamptz NOT NULL,
  action         text NOT NULL,
  actor_ref      bytea NOT NULL,
  actor_sealed   bytea NOT NULL,
  model          text NOT NULL,
  tokens         bigint NOT NULL,
  latency_us     bigint NOT NULL,
  outcome        text NOT NULL,
  metadata       bytea NOT NULL,  -- EncodeMetadata
  content_hash   bytea NOT NULL,
  request_id     text NOT NULL,
  subject_ref    bytea NOT NULL,
  subject_sealed bytea NOT NULL,
  leaf_hash      bytea NOT NULL CHECK (length(leaf_hash) = 32),
  completed      bytea NOT NULL CHECK (length(completed) % 32 = 0),  -- EncodeHashes
  PRIMARY KEY (ledger_id, idx)
);

CREATE UNIQUE INDEX entries_request ON entries (ledger_id, request_id) WHERE request_id <> '';
CREATE INDEX entries_action ON entries (ledger_id, action, idx);
CREATE INDEX entries_time ON entries (ledger_id, recorded_at);
CREATE INDEX entries_actor ON entries (actor_ref);
CREATE INDEX entries_subject ON entries (subject_ref) WHERE subject_ref <> '';

-- Signed tree heads (checkpoint.h).
CREATE TABLE checkpoints (
  ledger_id bigint NOT NULL REFERENCES ledgers (id),
  tree_size bigint NOT NULL CHECK (tree_size >= 0),
  root_hash bytea NOT NULL CHECK (length(root_hash) = 32),
  signed_at timestamptz NOT NULL,
  signature bytea NOT NULL,
  key_id    text NOT NULL,
  PRIMARY KEY (ledger_id, tree_size)
);

-- Subjects' keys, wrapped under the master key, by locator and by the subject's pseudonym
-- (subjects.h). Destroying a row forgets the subject (crypto-shredding), so this table alone
-- allows DELETE.
CREATE TABLE subject_keys (
  locator     bytea PRIMARY KEY,
  ref         bytea NOT NULL,
  wrapped_key bytea NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX subject_keys_ref ON subject_keys (ref);

-- Tamper resistance. Nothing changes or removes a ledger row, not even the tables' owner
-- without first dropping or disabling these triggers; the service itself runs every
-- transaction as policy_audit_writer, which may only read and insert (see below).
CREATE FUNCTION refuse_ledger_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit ledger tables are append-only: % on %.% refused',
    TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER ledgers_append_only BEFORE UPDATE OR DELETE ON ledgers
  FOR EACH ROW EXECUTE FUNCTION refuse_ledger_change();
CREATE TRIGGER ledgers_no_truncate BEFORE TRUNCATE ON ledgers
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_ledger_change();
CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries
  FOR EACH ROW EXECUTE FUNCTION refuse_ledger_change();
CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON entries
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_ledger_change();
CREATE TRIGGER checkpoints_append_only BEFORE UPDATE OR DELETE ON checkpoints
  FOR EACH ROW EXECUTE FUNCTION refuse_ledger_change();
CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_ledger_change();

-- Privileges. The service switches to the NOLOGIN role policy_audit_writer at the start of
-- every transaction (SET LOCAL ROLE), so that even a compromised service cannot change what
-- it wrote. An administrator creates that role, since the service's login role normally may
-- not (CREATE ROLE policy_audit_writer NOLOGIN; GRANT policy_audit_writer TO <login role>);
-- tools/dev does so for development. When the role exists, it gets exactly what it needs.
REVOKE ALL ON ledgers, entries, checkpoints, subject_keys FROM PUBLIC;

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'policy_audit_writer') THEN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO policy_audit_writer', current_schema());
    GRANT SELECT, INSERT ON ledgers, entries, checkpoints TO policy_audit_writer;
    GRANT SELECT, INSERT, DELETE ON subject_keys TO policy_audit_writer;
    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO policy_audit_writer',
                   pg_get_serial_sequence(format('%I.ledgers', current_schema()), 'id'));
  END IF;
END;
$$;
