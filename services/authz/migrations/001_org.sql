-- The organisation. Every change runs in one transaction that first locks the single `org`
-- row and ends by bumping its version; the version's trigger tells every replica to reload.
CREATE TABLE org (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  version   bigint NOT NULL
);
INSERT INTO org (version) VALUES (0);

CREATE TABLE projects (
  id                  text PRIMARY KEY,
  name                text NOT NULL,
  environment         text NOT NULL
                      CHECK (environment IN ('production', 'staging', 'development', 'sandbox')),
  archived            boolean NOT NULL,
  zero_data_retention boolean NOT NULL,
  retention_days      integer NOT NULL CHECK (retention_days >= 0),
  allowed_models      text[] NOT NULL,
  rpm_limit           bigint NOT NULL CHECK (rpm_limit >= 0),
  tpm_limit           bigint NOT NULL CHECK (tpm_limit >= 0),
  member_rpm_limit    bigint NOT NULL CHECK (member_rpm_limit >= 0),
  member_tpm_limit    bigint NOT NULL CHECK (member_tpm_limit >= 0)
);

CREATE TABLE members (
  id             text PRIMARY KEY,
  email          text NOT NULL,
  removed_at     timestamptz,
  provisioned_by text NOT NULL
);
CREATE UNIQUE INDEX members_active_email ON members (email) WHERE removed_at IS NULL;

-- A member's own grants; project is '' for organisation roles.
CREATE TABLE role_grants (
  member_id  text NOT NULL REFERENCES members (id),
  role       text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'reader')),
  project    text NOT NULL,
  expires_at timestamptz,
  PRIMARY KEY (member_id, role, project)
);

CREATE TABLE service_accounts (
  id                       text PRIMARY KEY,
  project                  text NOT NULL REFERENCES projects (id),
  environment              text NOT NULL
                           CHECK (environment IN ('production', 'staging', 'development',
                                                  'sandbox')),
  permissions              text[] NOT NULL,
  ip_allowlist             text[] NOT NULL,
  rpm_limit                bigint NOT NULL CHECK (rpm_limit >= 0),
  tpm_limit                bigint NOT NULL CHECK (tpm_limit >= 0),
  max_key_lifetime_seconds bigint NOT NULL CHECK (max_key_lifetime_seconds > 0),
  removed_at               timestamptz
);

CREATE TABLE invitations (
  id         text PRIMARY KEY,
  email      text NOT NULL,
  role       text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'reader')),
  projects   text[] NOT NULL,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  state      text NOT NULL CHECK (state IN ('pending', 'accepted', 'revoked')),
  closed_at  timestamptz
);

-- Identity-provider groups: grants are "role project" pairs, members e-mail addresses.
CREATE TABLE idp_groups (
  name    text PRIMARY KEY,
  grants  text[] NOT NULL,
  members text[] NOT NULL
);

CREATE FUNCTION notify_org_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('policy_authz_changed', NEW.version::text);
  RETURN NULL;
END;
$$;

CREATE TRIGGER org_notify AFTER UPDATE ON org
  FOR EACH ROW EXECUTE FUNCTION notify_org_change();
