-- Every replica's verification cache trusts two things of keys.api_keys, the one keys table
-- it caches (requests and ledger_outbox are read only where they are used): it hears of every
-- change from the notification trigger on INSERT and UPDATE (migration 001), and a key only
-- moves forward, so that an older copy of a key arriving after a newer one can be ignored
-- (KeyVerifier::OnChanged). Migration 005 refuses DELETE and changes of key_id; this one
-- refuses the remaining ways around those two: TRUNCATE, which fires no row trigger, and an
-- UPDATE that moves a key backwards, which the caches would ignore until a restart.

-- TRUNCATE would empty the table while every replica's cache went on verifying the keys.
CREATE FUNCTION refuse_api_keys_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'keys.api_keys is never truncated: the replicas would go on verifying the removed keys from their caches; revoke keys instead (RevokeKey, RevokePrincipalKeys, or UPDATE keys.api_keys SET state = ''revoked'', revoked_at = now(), revocation_reason = ''...'' WHERE ...)'
    USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER api_keys_never_truncated BEFORE TRUNCATE ON api_keys
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_api_keys_truncate();

-- A key's state at `as_of`, as the service derives it (StateAt in services/keys/key.cc; keep in
-- step): a rotating key past the end of an overlap that ended before its expiry is revoked,
-- any other key past its expiry expired. PostgresKeyStore::List filters by it too.
CREATE FUNCTION api_key_state_at(k api_keys, as_of timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN k.state = 'revoked' THEN 'revoked'
              WHEN k.state = 'rotating' AND as_of >= k.overlap_ends_at
                   AND k.overlap_ends_at < k.expires_at THEN 'revoked'
              WHEN as_of >= k.expires_at THEN 'expired'
              ELSE k.state END;
$$;

-- How far along a state is: active, then rotating, then expired or revoked (an expired key
-- may still be revoked; a revoked one stays revoked).
CREATE FUNCTION api_key_state_rank(state text) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT CASE state WHEN 'active' THEN 0 WHEN 'rotating' THEN 1 WHEN 'expired' THEN 2
                    ELSE 3 END;
$$;

-- An UPDATE may move a key forward only, both in its stored state (active -> rotating ->
-- revoked) and in the state derived from it on the database's clock: revocation, expiry and
-- the end of a rotation overlap are final. The service's own changes (rotate, revoke, the
-- sweep) all move keys forward; an operator un-revoking a key, turning a rotating key active
-- again, or extending an expiry or overlap that has already passed is refused, with what to
-- do instead.
CREATE FUNCTION refuse_api_key_going_back() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  as_of timestamptz := clock_timestamp();
  was text := api_key_state_at(OLD, as_of);
  becomes text := api_key_state_at(NEW, as_of);
BEGIN
  IF api_key_state_rank(NEW.state) < api_key_state_rank(OLD.state) OR
     api_key_state_rank(becomes) < api_key_state_rank(was) THEN
    RAISE EXCEPTION 'keys.api_keys key % would go back from % to %: keys only move forward (active, rotating, then expired or revoked), and the replicas'' caches ignore a key going back; create a new key instead (CreateKey)',
      OLD.key_id, CASE WHEN OLD.state = was THEN was ELSE OLD.state || ' (' || was || ')' END,
      CASE WHEN NEW.state = becomes THEN becomes ELSE NEW.state || ' (' || becomes || ')' END
      USING ERRCODE = 'restrict_violation';
  END IF;
  RETURN NEW;
END;
$$;

CREATE TRIGGER api_keys_only_move_forward BEFORE UPDATE ON api_keys
  FOR EACH ROW EXECUTE FUNCTION refuse_api_key_going_back();
