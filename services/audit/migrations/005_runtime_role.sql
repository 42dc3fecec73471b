-- A service login role that cannot rewrite what it recorded.
--
-- The tables belong to the role that applies the migrations (the owner; `--migrate_only`
-- with the owner's URL). The service may instead log in as a role that is a member of the
-- NOLOGIN group role policy_audit_runtime and of nothing else here (not of the owner, not of
-- policy_audit_writer). That role may read the ledger tables, create ledgers (empty), destroy
-- subject keys (forgetting a subject: audit.subject_keys rows, checked by the compliance
-- summary) and call the functions below; it has no INSERT, UPDATE or DELETE on entries or
-- checkpoints and no UPDATE on subject keys. Entries, checkpoints and new subject keys are
-- written by the SECURITY DEFINER functions append_entries, add_checkpoint and
-- get_or_add_subject_keys, which run as their owner and do only what their code says; their
-- search_path is pinned (pg_temp last) so that a caller's temporary tables cannot stand in
-- for the ledger's. They run as themselves: their `p_role` must be '' (a SECURITY DEFINER
-- function may not SET ROLE).
--
-- policy_audit_runtime is created here when the migrating role may create roles; otherwise
-- an administrator creates it (CREATE ROLE policy_audit_runtime NOLOGIN) before this
-- migration runs, and in either case grants it to the service's login role (GRANT
-- policy_audit_runtime TO <login role>). A service that logs in as the owner itself (a
-- single-user set-up applying its own migrations at start) keeps working, switching to
-- policy_audit_writer for its own statements, and does not get this protection.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'policy_audit_runtime') AND
     (SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    CREATE ROLE policy_audit_runtime NOLOGIN;
  END IF;
END;
$$;

-- Stores a signed checkpoint; one of the same ledger and size already stored is kept.
CREATE FUNCTION add_checkpoint(p_ledger bigint, p_tree_size bigint, p_root_hash bytea,
                               p_signed_at timestamptz, p_signature bytea, p_key_id text)
  RETURNS void
  LANGUAGE sql VOLATILE SECURITY DEFINER
AS $$
  INSERT INTO checkpoints (ledger_id, tree_size, root_hash, signed_at, signature, key_id)
    VALUES (p_ledger, p_tree_size, p_root_hash, p_signed_at, p_signature, p_key_id)
    ON CONFLICT (ledger_id, tree_size) DO NOTHING;
$$;

DO $$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
           WHERE p.pronamespace = current_schema()::regnamespace
             AND p.proname IN ('append_entries', 'get_or_add_subject_keys', 'add_checkpoint')
  LOOP
    EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp', f,
                   current_schema());
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'policy_audit_writer') THEN
      EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO policy_audit_writer', f);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'policy_audit_runtime') THEN
      EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO policy_audit_runtime', f);
    END IF;
  END LOOP;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'policy_audit_runtime') THEN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO policy_audit_runtime', current_schema());
    GRANT SELECT ON ledgers, entries, checkpoints, subject_keys TO policy_audit_runtime;
    -- So that the service can check, without applying them, that the migrations are applied.
    GRANT SELECT ON schema_migrations TO policy_audit_runtime;
    GRANT INSERT ON ledgers TO policy_audit_runtime;
    GRANT DELETE ON subject_keys TO policy_audit_runtime;
    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO policy_audit_runtime',
                   pg_get_serial_sequence(format('%I.ledgers', current_schema()), 'id'));
  END IF;
END;
$$;
