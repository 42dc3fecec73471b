-- What names a removed member's removal in the ledger (the request id of its record,
-- "authz:member-removed:<removal_id>"): 32 random hex digits the service draws when it removes
-- the member, so that the record says nothing of who was removed. Members removed before keep
-- '' (their records are named by the digest of their id, and the service looks them up so);
-- so does a member a replica of the previous release removes during a rolling upgrade, which
-- the default serves. The runtime role's grants on the table cover the new column.
ALTER TABLE members ADD COLUMN removal_id text NOT NULL DEFAULT ''
  CHECK (removal_id ~ '^([0-9a-f]{32})?$');
