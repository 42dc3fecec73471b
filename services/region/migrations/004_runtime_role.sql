-- A login role for the region service that can change the registry only as the service does.
-- Applied with search_path set to the service's schema.
--
-- The tables belong to the role that applies the migrations (the owner; `--migrate_only` with
-- the owner's URL). The service may instead log in as a role that is a member of the NOLOGIN
-- group role policy_region_runtime and of nothing else here (not of the owner). That role
-- holds what the service's statements need (PostgresEndpointStore::Privileges, which the
-- service checks at start-up) and nothing more: it reads and writes endpoints and breaker
-- states, locks and bumps the registry's version (the endpoints' trigger runs as the writer),
-- drains the ledger outbox, and reads schema_migrations to check that the migrations are
-- applied. It cannot create, alter, drop, truncate or re-own anything, nor write
-- schema_migrations. The outbox's identity column draws its numbers without a grant.
--
-- policy_region_runtime is created here when the migrating role may create roles; otherwise
-- an administrator creates it (CREATE ROLE policy_region_runtime NOLOGIN) before this
-- migration runs, and in either case grants it to the service's login role (GRANT
-- policy_region_runtime TO <login role>). Created after this migration ran, the role holds
-- none of the grants below: the service refuses to start, naming what is missing and the
-- GRANT statements to run. A service that logs in as the owner keeps working and does not get
-- this protection.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'policy_region_runtime') AND
     (SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    CREATE ROLE policy_region_runtime NOLOGIN;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'policy_region_runtime') THEN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO policy_region_runtime', current_schema());
    GRANT SELECT ON schema_migrations TO policy_region_runtime;
    GRANT SELECT, UPDATE ON registry TO policy_region_runtime;
    GRANT SELECT, INSERT, UPDATE, DELETE ON endpoints, breakers, ledger_outbox
      TO policy_region_runtime;
  END IF;
END;
$$;
