-- A login role for the keys service that can change keys only as the service does.
--
-- The tables belong to the role that applies the migrations (the owner; `--migrate_only` with
-- the owner's URL). The service may instead log in as a role that is a member of the NOLOGIN
-- group role policy_keys_runtime and of nothing else here (not of the owner). That role holds
-- what the service's statements need (PostgresKeyStore::Privileges, which the service checks
-- at start-up) and nothing more: it reads, creates and updates keys but never deletes one,
-- records and forgets idempotent requests, drains the ledger outbox, and reads
-- schema_migrations to check that the migrations are applied. It cannot create, alter, drop,
-- truncate or re-own anything, nor write schema_migrations, nor touch audit_outbox (left to
-- the release before migration 003, which logged in as the owner). The notification trigger
-- and the advisory locks need no grant; the outbox's identity column draws its numbers
-- without one.
--
-- policy_keys_runtime is created here when the migrating role may create roles; otherwise an
-- administrator creates it (CREATE ROLE policy_keys_runtime NOLOGIN) before this migration
-- runs, and in either case grants it to the service's login role (GRANT policy_keys_runtime
-- TO <login role>). Created after this migration ran, the role holds none of the grants
-- below: the service refuses to start, naming what is missing and the GRANT statements to
-- run. A service that logs in as the owner keeps working and does not get this protection.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'policy_keys_runtime') AND
     (SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    CREATE ROLE policy_keys_runtime NOLOGIN;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'policy_keys_runtime') THEN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO policy_keys_runtime', current_schema());
    GRANT SELECT ON schema_migrations TO policy_keys_runtime;
    GRANT SELECT, INSERT, UPDATE ON api_keys TO policy_keys_runtime;
    GRANT SELECT, INSERT, DELETE ON requests TO policy_keys_runtime;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ledger_outbox TO policy_keys_runtime;
  END IF;
END;
$$;
