-- When subjects were forgotten, so that a forgetting also covers the records of changes made
-- before it that another service's outbox delivers after it (AuditLedger::Append).
--
-- A row holds a subject's locator (SubjectCipher::Locator: a keyed digest of their identifier,
-- never the identifier) and the time they were last forgotten. It outlives the subject's key
-- by the audit service's --forgotten_retention only (PurgeForgotten), for whoever holds the
-- master key can test a guessed identifier against it.
CREATE TABLE forgotten_subjects (
  locator      bytea PRIMARY KEY,
  forgotten_at timestamptz NOT NULL
);

CREATE INDEX forgotten_subjects_at ON forgotten_subjects (forgotten_at);

-- The overload of append_entries below adds `p_key_forgotten` to that of
-- 006_subject_keys_with_entries.sql: for each new key, in the position of its locator, when its
-- subject was last forgotten as the batch found it ('-infinity': never). It appends through
-- that one (which takes the keys' lock shared first); when that one answers 'appended' and a
-- new key's subject has a later forgetting, the statement fails with a serialization failure
-- (SQLSTATE 40001), nothing written: the caller looks the forgettings up again and seals the
-- batch again. A retry that finds its batch 'appended before' is answered as such, whatever
-- was forgotten since. A forgetting is recorded under the keys' lock held exclusively, before
-- the subject's key is destroyed: so a new key either is refused here or was stored before the
-- forgetting, whose destruction of the key then removes it.
CREATE FUNCTION append_entries(
    p_lock_namespace integer, p_lock integer, p_keys_lock_namespace integer, p_keys_lock integer,
    p_ledger bigint, p_size bigint, p_first_leaf bytea, p_retry boolean, p_request_ids text[],
    p_refs bytea[], p_key_locators bytea[], p_key_refs bytea[], p_key_wrapped bytea[],
    p_key_forgotten timestamptz[],
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
BEGIN
  result := append_entries(p_lock_namespace, p_lock, p_keys_lock_namespace, p_keys_lock,
                           p_ledger, p_size, p_first_leaf, p_retry, p_request_ids, p_refs,
                           p_key_locators, p_key_refs, p_key_wrapped, p_idx, p_recorded_at,
                           p_action, p_actor_ref, p_actor_sealed, p_model, p_tokens,
                           p_latency_us, p_outcome, p_metadata, p_content_hash, p_request_id,
                           p_subject_ref, p_subject_sealed, p_leaf_hash, p_completed, p_mac);
  IF result = 'appended' AND cardinality(p_key_locators) > 0 AND
     EXISTS (SELECT 1 FROM unnest(p_key_locators, p_key_forgotten) AS k (locator, seen)
             JOIN forgotten_subjects f USING (locator) WHERE f.forgotten_at > k.seen) THEN
    RAISE EXCEPTION 'a subject this batch makes a key for was forgotten meanwhile'
      USING ERRCODE = 'serialization_failure',
            HINT = 'Look the forgettings up again and seal the entries again.';
  END IF;
  RETURN result;
END;
$$;

-- As 006_subject_keys_with_entries.sql does for its overload; and the forgettings are the
-- service's to record, read and purge.
DO $$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
           WHERE p.pronamespace = current_schema()::regnamespace
             AND p.proname = 'append_entries' AND p.pronargs = 31
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
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'policy_audit_writer') THEN
    GRANT SELECT, INSERT, UPDATE, DELETE ON forgotten_subjects TO policy_audit_writer;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'policy_audit_runtime') THEN
    GRANT SELECT, INSERT, UPDATE, DELETE ON forgotten_subjects TO policy_audit_runtime;
  END IF;
END;
$$;
