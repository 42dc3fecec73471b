-- The two writes of an append, each one statement the service sends outside a transaction
-- block: one round trip each (PostgresLedgerStore). Both run as `p_role` when it is not
-- empty (SET LOCAL ROLE, undone when the statement ends) and plan as the store's
-- transactions do (index walks only, no JIT).

-- Appends sealed entries to ledger `p_ledger`, provided the ledger holds exactly `p_size`
-- entries (the size they were sealed against), none of `p_request_ids` was recorded in it,
-- and the subject keys of the pseudonyms `p_refs` (distinct) all still exist.
-- Returns what happened:
--   'appended'         the entries are stored;
--   'appended before'  `p_retry` (the statement runs again, its first run's connection having
--                      broken) and the entry at `p_size` has leaf hash `p_first_leaf`: the
--                      first run committed them;
--   'moved'            the ledger grew through someone else; nothing was written;
--   'request used'     a request id is in the ledger already; nothing was written;
--   'key destroyed'    a subject was forgotten since the entries were sealed; nothing was
--                      written.
-- Appends to one ledger are serialised by the advisory lock (`p_lock_namespace`, `p_lock`);
-- holding it, each later statement here (a fresh snapshot each) sees every earlier append.
CREATE FUNCTION append_entries(
    p_role text, p_lock_namespace integer, p_lock integer, p_ledger bigint, p_size bigint,
    p_first_leaf bytea, p_retry boolean, p_request_ids text[], p_refs bytea[],
    p_idx bigint[], p_recorded_at timestamptz[], p_action text[], p_actor_ref bytea[],
    p_actor_sealed bytea[], p_model text[], p_tokens bigint[], p_latency_us bigint[],
    p_outcome text[], p_metadata bytea[], p_content_hash bytea[], p_request_id text[],
    p_subject_ref bytea[], p_subject_sealed bytea[], p_leaf_hash bytea[], p_completed bytea[])
  RETURNS text
  LANGUAGE plpgsql VOLATILE
  SET search_path FROM CURRENT SET enable_seqscan = off SET jit = off
AS $$
DECLARE
  stored bigint;
BEGIN
  IF p_role <> '' THEN
    EXECUTE format('SET LOCAL ROLE %I', p_role);
  END IF;
  PERFORM pg_advisory_xact_lock(p_lock_namespace, p_lock);
  SELECT e.idx + 1 INTO stored FROM entries e WHERE e.ledger_id = p_ledger
    ORDER BY e.idx DESC LIMIT 1;
  stored := coalesce(stored, 0);
  IF stored <> p_size THEN
    IF p_retry AND stored > p_size AND EXISTS (SELECT 1 FROM entries e WHERE e.ledger_id = p_ledger
                                   AND e.idx = p_size AND e.leaf_hash = p_first_leaf) THEN
      RETURN 'appended before';
    END IF;
    RETURN 'moved';
  END IF;
  -- One probe of the index entries_request per id (`e.ledger_id + 0`: see
  -- 002_append_path.sql; the LIMIT keeps the plan a loop over the ids).
  IF EXISTS (SELECT 1 FROM unnest(p_request_ids) AS r (request_id) CROSS JOIN LATERAL
               (SELECT 1 FROM entries e WHERE e.ledger_id + 0 = p_ledger
                AND e.request_id <> '' AND e.request_id = r.request_id LIMIT 1) AS e) THEN
    RETURN 'request used';
  END IF;
  IF (SELECT count(*) FROM subject_keys k WHERE k.ref = ANY (p_refs)) < cardinality(p_refs) THEN
    RETURN 'key destroyed';
  END IF;
  INSERT INTO entries (ledger_id, idx, recorded_at, action, actor_ref, actor_sealed, model,
                       tokens, latency_us, outcome, metadata, content_hash, request_id,
                       subject_ref, subject_sealed, leaf_hash, completed)
    SELECT p_ledger, u.*
    FROM unnest(p_idx, p_recorded_at, p_action, p_actor_ref, p_actor_sealed, p_model, p_tokens,
                p_latency_us, p_outcome, p_metadata, p_content_hash, p_request_id,
                p_subject_ref, p_subject_sealed, p_leaf_hash, p_completed) AS u;
  RETURN 'appended';
END;
$$;

-- The keys of the subjects with locators `p_locators` (distinct, in a fixed order so that
-- concurrent callers wait for each other rather than deadlock), storing each missing one as
-- given in the same position of `p_refs` and `p_wrapped`. Usually every key exists: one
-- index read, nothing written.
CREATE FUNCTION get_or_add_subject_keys(p_role text, p_locators bytea[], p_refs bytea[],
                                        p_wrapped bytea[])
  RETURNS TABLE (locator bytea, ref bytea, wrapped_key bytea)
  LANGUAGE plpgsql VOLATILE
  SET search_path FROM CURRENT SET enable_seqscan = off SET jit = off
AS $$
#variable_conflict use_column
BEGIN
  IF p_role <> '' THEN
    EXECUTE format('SET LOCAL ROLE %I', p_role);
  END IF;
  IF (SELECT count(*) FROM subject_keys k WHERE k.locator = ANY (p_locators))
     < cardinality(p_locators) THEN
    INSERT INTO subject_keys (locator, ref, wrapped_key)
      SELECT * FROM unnest(p_locators, p_refs, p_wrapped)
      ON CONFLICT (locator) DO NOTHING;
  END IF;
  -- A new statement: it sees the keys of concurrent callers that ON CONFLICT waited for.
  RETURN QUERY SELECT k.locator, k.ref, k.wrapped_key FROM subject_keys k
    WHERE k.locator = ANY (p_locators);
END;
$$;
