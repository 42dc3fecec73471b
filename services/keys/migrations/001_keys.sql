-- API keys and admin keys. The secret is never stored: secret_hash is HMAC-SHA-256 of the
-- secret's random part under a key derived from the server's pepper, which is not in the
-- database.
CREATE TABLE api_keys (
  key_id            text PRIMARY KEY,
  kind              text NOT NULL CHECK (kind IN ('project', 'service_account', 'admin')),
  owner_type        text NOT NULL CHECK (owner_type IN ('member', 'service_account')),
  owner_id          text NOT NULL,
  project           text NOT NULL,
  environment       text NOT NULL
                    CHECK (environment IN ('production', 'staging', 'development', 'sandbox')),
  scopes            text NOT NULL,  -- space-separated; scopes never contain spaces
  secret_hash       bytea NOT NULL CHECK (length(secret_hash) = 32),
  redacted          text NOT NULL,
  state             text NOT NULL CHECK (state IN ('active', 'rotating', 'revoked')),
  created_at        timestamptz NOT NULL,
  expires_at        timestamptz NOT NULL,
  overlap_ends_at   timestamptz,
  rotated_from      text NOT NULL DEFAULT '',
  rotated_to        text NOT NULL DEFAULT '',
  revoked_at        timestamptz,
  revocation_reason text NOT NULL DEFAULT '',
  CHECK ((state = 'rotating') = (overlap_ends_at IS NOT NULL) OR state = 'revoked'),
  CHECK ((state = 'revoked') = (revoked_at IS NOT NULL))
);

CREATE INDEX api_keys_owner ON api_keys (owner_type, owner_id) WHERE state <> 'revoked';
CREATE INDEX api_keys_listing ON api_keys (created_at DESC, key_id DESC);
CREATE INDEX api_keys_project ON api_keys (project, created_at DESC, key_id DESC);
CREATE INDEX api_keys_overlaps ON api_keys (overlap_ends_at) WHERE state = 'rotating';

-- Requests with a client-chosen id, so that a retry returns the first result. The secret of
-- a created key is kept only sealed (AES-256-GCM under a key derived from the pepper) and
-- only for the idempotency window; the sweeper deletes older rows.
CREATE TABLE requests (
  request_id    text PRIMARY KEY,
  operation     text NOT NULL,
  fingerprint   bytea NOT NULL,
  key_ids       text NOT NULL,  -- space-separated key ids
  sealed_secret bytea NOT NULL,
  created_at    timestamptz NOT NULL
);

CREATE INDEX requests_created_at ON requests (created_at);

-- Every change to a key reaches every replica's cache through this channel.
CREATE FUNCTION notify_api_key_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('policy_keys_changed', NEW.key_id);
  RETURN NULL;
END;
$$;

CREATE TRIGGER api_keys_notify AFTER INSERT OR UPDATE ON api_keys
  FOR EACH ROW EXECUTE FUNCTION notify_api_key_change();
