-- An invitation's id is a bearer credential (it accepts the invitation), so the table keeps
-- only its SHA-256, in lowercase hex, under which the service finds it. Invitations stored
-- with their plain id are rewritten to their digest and can still be accepted with that id.
-- From here on a replica of an earlier release, which writes plain ids, cannot create
-- invitations: the check refuses them.
UPDATE invitations SET id = encode(sha256(convert_to(id, 'UTF8')), 'hex')
  WHERE id !~ '^[0-9a-f]{64}$';
ALTER TABLE invitations ADD CONSTRAINT invitations_id_is_a_digest
  CHECK (id ~ '^[0-9a-f]{64}$');
