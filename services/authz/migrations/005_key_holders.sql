-- Who may hold a project's keys and call with them: 'service_accounts' only, or 'members'
-- (those whose grants allow the call) and service accounts. Projects that existed before take
-- 'members', as they had, whatever their environment; the service writes the value of every
-- project it saves, and the default serves a replica of the previous release during a
-- rolling upgrade.
ALTER TABLE projects ADD COLUMN key_holders text NOT NULL DEFAULT 'members'
  CHECK (key_holders IN ('service_accounts', 'members'));
