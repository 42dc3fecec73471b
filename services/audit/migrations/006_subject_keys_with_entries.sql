-- A batch's new subject keys are stored by the statement that appends its entries, and appends
-- are ordered against the destruction of subject keys.
--
-- The overload of append_entries below takes the subject keys the batch's entries were sealed
-- with that the store did not hold (`p_key_locators`, `p_key_refs`, `p_key_wrapped`: one key
-- per position, distinct locators, each named by an entry) and inserts them with the entries,
-- all or nothing: a batch that fails or is refused leaves no key for someone it does not name.
-- A key whose locator is stored already (a concurrent batch added it) fails the statement with
-- a serialization failure (SQLSTATE 40001), nothing written: the caller looks the keys up
-- again and seals the batch again.
--
-- Every append takes the advisory lock (`p_keys_lock_namespace`, `p_keys_lock`) shared, for the
-- rest of its transaction, before it checks that the keys of `p_refs` still exist; whoever
-- destroys a subject key takes it exclusively first (PostgresLedgerStore::DeleteSubjectKey).
-- So a key is destroyed either before an append checks for it (the append answers
-- 'key destroyed', and the caller seals its entries under a fresh key) or after the append
-- committed: never while entries sealed with it are being stored.
--
-- append_entries of 004_entry_mac.sql (which the function below calls) and
-- get_or_add_subject_keys of 003_one_round_trip.sql stay callable, for replicas of earlier
-- releases during a rolling upgrade; called directly they take no keys' lock, so the ordering
-- holds once every replica runs this release.

-- The entries are appended by append_entries of 004_entry_mac.sql (as its owner: `p_role` '',
-- see 005_runtime_role.sql), under the keys' lock taken first; only when it answers 'appended'
-- are the keys inserted, in the same statement. Returns what that one returns.
CREATE FUNCTION append_entries(
    p_lock_namespace integer, p_lock integer, p_keys_lock_namespace integer, p_keys_lock integer,
    p_ledger bigint, p_size bigint, p_first_leaf bytea, p_retry boolean, p_request_ids text[],
    p_refs bytea[], p_key_locators bytea[], p_key_refs bytea[], p_key_wrapped bytea[],
    p_idx bigint[], p_recorded_at timestamptz[], p_action text[], p_actor_ref bytea[],
    p_actor_sealed bytea[], p_model text[], p_tokens bigint[], p_latency_us bigint[],
    p_outcome text[], p_metadata bytea[], p_content_hash bytea[], p_request_id text[],
    p_subject_ref bytea[], p_subject_sealed bytea[], p_leaf_hash bytea[], p_completed bytea[],
    p_mac bytea[])
  RETURNS text
  LANGUAGE plpgsql VOLATILE
  SET search_path FROM CURRENT SET enable_seqscan = off SET jit = off
AS $$
DECLARE
  result text;
  added bigint;
BEGIN
  PERFORM pg_advisory_xact_lock_shared(p_keys_lock_namespace, p_keys_lock);
  result := append_entries(''::text, p_lock_namespace, p_lock, p_ledger, p_size, p_first_leaf,
                           p_retry, p_request_ids, p_refs, p_idx, p_recorded_at, p_action,
                           p_actor_ref, p_actor_sealed, p_model, p_tokens, p_latency_us,
                           p_outcome, p_metadata, p_content_hash, p_request_id, p_subject_ref,
                           p_subject_sealed, p_leaf_hash, p_completed, p_mac);
  IF result = 'appended' AND cardinality(p_key_locators) > 0 THEN
    -- ON CONFLICT waits for a concurrent inserter of the same locator, then skips the row.
    INSERT INTO subject_keys (locator, ref, wrapped_key)
      SELECT * FROM unnest(p_key_locators, p_key_refs, p_key_wrapped)
      ON CONFLICT (locator) DO NOTHING;
    GET DIAGNOSTICS added = ROW_COUNT;
    IF added < cardinality(p_key_locators) THEN
      RAISE EXCEPTION 'a subject key of this batch was stored meanwhile by another batch'
        USING ERRCODE = 'serialization_failure',
              HINT = 'Look the subject keys up again and seal the entries again.';
    END IF;
  END IF;
  RETURN result;
END;
$$;

-- As 005_runtime_role.sql does for the other functions: it runs as its owner, with its
-- search_path pinned (pg_temp last), and only the writer and runtime roles may call it.
DO $$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
           WHERE p.pronamespace = current_schema()::regnamespace
             AND p.proname = 'append_entries' AND p.pronargs = 30
  LOOP
    EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = %I, pg_temp', f,
                   current_schema());
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'policy_audit_writer') THEN
      EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO policy_audit_writer', f);
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'policy_audit_runtime') THEN
      EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO policy_audit_runtime', f);
    END IF;
  END LOOP;
END;
$$;
