-- What makes a retried CreateInvitation answer the invitation its first call made, and what
-- the answer's fresh secret id replaces (docs/authz.md):
--   secret_digest:  the SHA-256 (lowercase hex) of the secret id that accepts the invitation
--                   now; '' while that is the first one, whose digest `id` stays.
--   request_digest: the digest (32 hex digits) of the request id it was created under; ''
--                   without one. Neither secret ids nor request ids are kept as they are.
--   created_by:     the member who created it; '' for invitations created before.
-- Invitations stored before keep '' throughout and work as they did: accepted with the
-- secret id `id` digests, never the answer to a retry. So do those a replica of the previous
-- release creates during a rolling upgrade, which the defaults serve; such a replica finds
-- invitations by `id` alone, so until it is replaced it still accepts the first secret id of
-- an invitation whose secret a retry replaced. The runtime role's grants on the table cover
-- the new columns.
ALTER TABLE invitations
  ADD COLUMN secret_digest text NOT NULL DEFAULT ''
    CHECK (secret_digest ~ '^([0-9a-f]{64})?$'),
  ADD COLUMN request_digest text NOT NULL DEFAULT ''
    CHECK (request_digest ~ '^([0-9a-f]{32})?$'),
  ADD COLUMN created_by text NOT NULL DEFAULT '';
-- One invitation per request id, whichever replica creates it.
CREATE UNIQUE INDEX invitations_request_digest ON invitations (request_digest)
  WHERE request_digest <> '';
