-- Keys are never deleted, and a key never changes its id: every replica's verification cache
-- learns of changes from the notification trigger on INSERT and UPDATE, so a row deleted (or
-- renamed) by hand would keep verifying, from memory, on every running replica. Refuse both,
-- naming what to do instead. (The service itself never deletes a key; the runtime role holds
-- no DELETE on api_keys.)
CREATE FUNCTION refuse_api_key_removal() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'keys.api_keys rows are never deleted and keep their key_id (key %): revoke the key instead (RevokeKey, or UPDATE keys.api_keys SET state = ''revoked'', revoked_at = now(), revocation_reason = ''...'' WHERE key_id = ...)', OLD.key_id
    USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER api_keys_never_deleted BEFORE DELETE ON api_keys
  FOR EACH ROW EXECUTE FUNCTION refuse_api_key_removal();

CREATE TRIGGER api_keys_keep_their_id BEFORE UPDATE OF key_id ON api_keys
  FOR EACH ROW WHEN (OLD.key_id IS DISTINCT FROM NEW.key_id)
  EXECUTE FUNCTION refuse_api_key_removal();
