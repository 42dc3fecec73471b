-- Entries carry a MAC (EntryAuthenticator in services/audit/checkpoint.h): HMAC-SHA-256,
-- under a key derived from the checkpoint signing key, of the entry's ledger, index and leaf
-- hash. Only the audit service holds that key, so a row anyone else writes (a forged entry, or
-- one whose fields were changed and hashes recomputed) carries no valid MAC: the service
-- refuses to sign a checkpoint over it, and its VerifyLedger names it. Entries stored before
-- this migration have none (empty); they are accepted only before a ledger's first entry
-- with one (services/audit/README.md, "What the ledger guarantees").
ALTER TABLE entries ADD COLUMN mac bytea NOT NULL DEFAULT '';

-- append_entries (003_one_round_trip.sql) writes the MAC too: the same function with one
-- array more, `p_mac`. The version without it is dropped, so that a replica of an earlier
-- release cannot append entries without a MAC in one statement.
DROP FUNCTION append_entries(text, integer, integer, bigint, bigint, bytea, boolean, text[],
                             bytea[], bigint[], timestamptz[], text[], bytea[], bytea[], text[],
                             bigint[], bigint[], text[], bytea[], bytea[], text[], bytea[],
                             bytea[], bytea[], bytea[]);

-- As in 003_one_round_trip.sql, plus `p_mac`.
CREATE FUNCTION append_entries(
    p_role text, p_lock_namespace integer, p_lock integer, p_ledger bigint, p_size bigint,
    p_first_leaf bytea, p_retry boolean, p_request_ids text[], p_refs bytea[],
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
                       subject_ref, subject_sealed, leaf_hash, completed, mac)
    SELECT p_ledger, u.*
    FROM unnest(p_idx, p_recorded_at, p_action, p_actor_ref, p_actor_sealed, p_model, p_tokens,
                p_latency_us, p_outcome, p_metadata, p_content_hash, p_request_id,
                p_subject_ref, p_subject_sealed, p_leaf_hash, p_completed, p_mac) AS u;
  RETURN 'appended';
END;
$$;
