-- When a removed member's personal data was erased (OrgAdmin::EraseMember): their e-mail is
-- then '' for good, and the id stays reserved. A replica of the previous release refuses to
-- load an organisation holding an erased member (it requires every e-mail to be an address),
-- so erase only once every replica runs this release. The runtime role's grants on the table
-- cover the new column.
ALTER TABLE members ADD COLUMN erased_at timestamptz
  CHECK (erased_at IS NULL OR (removed_at IS NOT NULL AND email = ''));
