-- A login role for the authz service that can change the organisation and the rate limits
-- only as the service does.
--
-- The tables belong to the role that applies the migrations (the owner; `--migrate_only` with
-- the owner's URL). The service may instead log in as a role that is a member of the NOLOGIN
-- group role policy_authz_runtime and of nothing else here (not of the owner). That role holds
-- what the service's statements need (PostgresOrgStore::Privileges and
-- PostgresBucketStore::Privileges, which the service checks at start-up) and nothing more: it
-- reads and writes the organisation's rows but never deletes a project, member or service
-- account, takes from and adjusts the rate-limit buckets through take_buckets and
-- adjust_bucket (which run as their caller), records and forgets usage reports, drains the
-- ledger outbox, and reads schema_migrations to check that the migrations are applied. It
-- cannot create, alter, drop, truncate or re-own anything, nor write schema_migrations. The
-- notification trigger and the advisory locks need no grant; the outbox's identity column
-- draws its numbers without one.
--
-- policy_authz_runtime is created here when the migrating role may create roles; otherwise an
-- administrator creates it (CREATE ROLE policy_authz_runtime NOLOGIN) before this migration
-- runs, and in either case grants it to the service's login role (GRANT policy_authz_runtime
-- TO <login role>). Created after this migration ran, the role holds none of the grants
-- below: the service refuses to start, naming what is missing and the GRANT statements to
-- run. A service that logs in as the owner keeps working and does not get this protection.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'policy_authz_runtime') AND
     (SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    CREATE ROLE policy_authz_runtime NOLOGIN;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'policy_authz_runtime') THEN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO policy_authz_runtime', current_schema());
    GRANT SELECT ON schema_migrations TO policy_authz_runtime;
    GRANT SELECT, UPDATE ON org TO policy_authz_runtime;
    GRANT SELECT, INSERT, UPDATE ON projects, members, service_accounts TO policy_authz_runtime;
    GRANT SELECT, INSERT, DELETE ON role_grants TO policy_authz_runtime;
    GRANT SELECT, INSERT, UPDATE, DELETE ON invitations, idp_groups TO policy_authz_runtime;
    GRANT SELECT, INSERT, UPDATE ON rate_buckets TO policy_authz_runtime;
    GRANT SELECT, INSERT, DELETE ON usage_reports TO policy_authz_runtime;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ledger_outbox TO policy_authz_runtime;
    GRANT EXECUTE ON FUNCTION
        take_buckets(text[], bigint[], bigint[], bigint[], timestamptz),
        adjust_bucket(text, bigint, bigint, timestamptz),
        refilled_level(double precision, timestamptz, bigint, timestamptz)
      TO policy_authz_runtime;
  END IF;
END;
$$;
