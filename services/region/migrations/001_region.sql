-- The endpoint registry (services/region/endpoint_store.h) and the circuit-breaker states
-- replicas share through it. Applied with search_path set to the service's schema.

-- One row per endpoint (services/region/endpoint.h). The store writes what it is given:
-- ValidateEndpoint runs before it, and the checks below only keep out rows no binary could
-- have meant (they fail the write as an internal error, not as invalid input).
-- Ids (and replica names) are COLLATE "C": listings are ordered by id byte by byte, as the
-- memory store orders them, whatever the database's default collation.
CREATE TABLE endpoints (
  id                  text COLLATE "C" PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_.-]{0,63}$'),
  region              text NOT NULL,
  provider            text NOT NULL CHECK (provider IN ('openai', 'azure')),
  base_url            text NOT NULL,
  deployment          text NOT NULL,  -- '' when none (OpenAI)
  residency           text NOT NULL CHECK (residency IN ('eu', 'us', 'apac', 'global')),
  zero_data_retention boolean NOT NULL,
  private_link        boolean NOT NULL,
  cached              boolean NOT NULL,
  models              text[] NOT NULL,  -- in the order given; one-dimensional, no NULLs
  priority            integer NOT NULL CHECK (priority BETWEEN 1 AND 1000),
  weight              integer NOT NULL CHECK (weight BETWEEN 0 AND 1000),
  enabled             boolean NOT NULL,
  -- Bookkeeping for operators, from the database's clock; not part of Endpoint.
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now()
);

-- The registry's version (EndpointStore::Version): one row, raised by a trigger in the same
-- transaction as every insert, update and delete of an endpoint row (and every TRUNCATE), so
-- that it grows with every change whoever makes it, never moves otherwise (breaker publishes
-- leave it alone), and reading it is one primary-key lookup. Writers of endpoints queue on
-- this row's lock, so versions are committed in order; a transaction that rolls back leaves
-- no trace in it.
CREATE TABLE registry (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  version   bigint NOT NULL CHECK (version >= 0)
);
INSERT INTO registry (version) VALUES (0);

-- SET search_path FROM CURRENT: the function resolves `registry` in the schema the migration
-- ran in, whatever the search_path of the session whose write fires it.
CREATE FUNCTION bump_registry_version() RETURNS trigger LANGUAGE plpgsql
  SET search_path FROM CURRENT AS $$
BEGIN
  UPDATE registry SET version = version + 1;
  RETURN NULL;
END;
$$;

CREATE TRIGGER endpoints_version AFTER INSERT OR UPDATE OR DELETE ON endpoints
  FOR EACH ROW EXECUTE FUNCTION bump_registry_version();
CREATE TRIGGER endpoints_version_truncate AFTER TRUNCATE ON endpoints
  FOR EACH STATEMENT EXECUTE FUNCTION bump_registry_version();

-- The latest breaker state each replica published for each endpoint (PublishedBreaker): one
-- row per (endpoint, replica), replaced by every publish. The rows go with their endpoint.
-- Times are kept to the microsecond.
CREATE TABLE breakers (
  endpoint_id  text COLLATE "C" NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
  replica      text COLLATE "C" NOT NULL,
  state        text NOT NULL CHECK (state IN ('closed', 'open', 'half_open')),
  opened_at    timestamptz,  -- NULL stands for absl::InfinitePast() (never opened, or closed)
  published_at timestamptz NOT NULL,
  PRIMARY KEY (endpoint_id, replica)
);

-- BreakersSince: the states published at or after a time.
CREATE INDEX breakers_published_at ON breakers (published_at);
