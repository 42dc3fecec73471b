-- take_buckets and adjust_bucket (002_rate_limits.sql) with `at_time` NULL meaning the
-- database's clock (clock_timestamp(), read once the bucket rows are locked), which is what
-- the services pass: every replica then refills and stamps buckets on one clock, whatever its
-- own says. With the database's clock, a stored updated_at later than it (written by a
-- replica whose clock ran ahead, through a release that passed its own time) counts as now:
-- no refill for the time in between, and the bucket is stamped now, so it refills again from
-- there instead of waiting for that future time. A non-NULL `at_time` behaves as before
-- (tests with injected time, and replicas of the release before during a rollout).
CREATE OR REPLACE FUNCTION take_buckets(take_keys text[], take_per_minute bigint[],
                                        take_units bigint[], take_want bigint[],
                                        at_time timestamptz)
RETURNS TABLE (granted bigint, level double precision)
LANGUAGE plpgsql AS $$
DECLARE
  n int := coalesce(cardinality(take_keys), 0);
  refill_to timestamptz;
  bucket_keys text[] := '{}';
  bucket_per_minute bigint[] := '{}';
  refilled double precision[] := '{}';
  levels double precision[];
  granted_units bigint[] := array_fill(0::bigint, ARRAY[n]);
  level_after double precision[] := array_fill(0::double precision, ARRAY[n]);
  all_hold boolean := true;
  bucket record;
  i int;
  j int;
BEGIN
  INSERT INTO authz.rate_buckets AS b (key, level, updated_at, per_minute)
  SELECT DISTINCT ON (t.k) t.k, t.pm, coalesce(at_time, clock_timestamp()), t.pm
  FROM unnest(take_keys, take_per_minute) AS t(k, pm)
  ORDER BY t.k
  ON CONFLICT (key) DO NOTHING;

  PERFORM 1 FROM authz.rate_buckets AS b
  WHERE b.key = ANY (take_keys) ORDER BY b.key FOR UPDATE;
  refill_to := coalesce(at_time, clock_timestamp());

  FOR bucket IN
    SELECT b.key, b.level,
           CASE WHEN at_time IS NULL THEN least(b.updated_at, refill_to) ELSE b.updated_at END
             AS updated_at
    FROM authz.rate_buckets AS b
    WHERE b.key = ANY (take_keys) ORDER BY b.key
  LOOP
    bucket_keys := bucket_keys || bucket.key;
    j := array_position(take_keys, bucket.key);
    bucket_per_minute := bucket_per_minute || take_per_minute[j];
    refilled := refilled || authz.refilled_level(bucket.level, bucket.updated_at,
                                                 take_per_minute[j], refill_to);
  END LOOP;

  levels := refilled;
  FOR i IN 1..n LOOP
    j := array_position(bucket_keys, take_keys[i]);
    IF levels[j] < take_units[i] THEN
      all_hold := false;
      EXIT;
    END IF;
    granted_units[i] := least(take_want[i], floor(levels[j])::bigint);
    levels[j] := levels[j] - granted_units[i];
    level_after[i] := levels[j];
  END LOOP;

  IF all_hold THEN
    UPDATE authz.rate_buckets AS b
    SET level = u.lvl,
        updated_at = CASE WHEN at_time IS NULL THEN refill_to
                          ELSE greatest(b.updated_at, refill_to) END,
        per_minute = u.pm
    FROM unnest(bucket_keys, levels, bucket_per_minute) AS u(k, lvl, pm)
    WHERE b.key = u.k;
  ELSE
    FOR i IN 1..n LOOP
      granted_units[i] := 0;
      level_after[i] := refilled[array_position(bucket_keys, take_keys[i])];
    END LOOP;
    -- Takes nothing, but a bucket stamped in the future is stamped now (with its level as
    -- of now), or it would never refill until then.
    IF at_time IS NULL THEN
      UPDATE authz.rate_buckets AS b
      SET level = u.lvl, updated_at = refill_to
      FROM unnest(bucket_keys, refilled) AS u(k, lvl)
      WHERE b.key = u.k AND b.updated_at > refill_to;
    END IF;
  END IF;

  RETURN QUERY
  SELECT r.g, r.l FROM unnest(granted_units, level_after) WITH ORDINALITY AS r(g, l, ord)
  ORDER BY r.ord;
END
$$;

CREATE OR REPLACE FUNCTION adjust_bucket(bucket_key text, bucket_per_minute bigint,
                                         delta bigint, at_time timestamptz)
RETURNS void
LANGUAGE sql AS $$
  INSERT INTO authz.rate_buckets AS b (key, level, updated_at, per_minute)
  VALUES (bucket_key,
          least(bucket_per_minute, greatest(-bucket_per_minute, bucket_per_minute + delta)),
          coalesce(at_time, clock_timestamp()), bucket_per_minute)
  ON CONFLICT (key) DO UPDATE
  SET level = greatest(-bucket_per_minute::double precision,
                       least(bucket_per_minute::double precision,
                             authz.refilled_level(
                                 b.level,
                                 CASE WHEN at_time IS NULL
                                      THEN least(b.updated_at, clock_timestamp())
                                      ELSE b.updated_at END,
                                 bucket_per_minute,
                                 coalesce(at_time, clock_timestamp())) + delta)),
      updated_at = CASE WHEN at_time IS NULL THEN clock_timestamp()
                        ELSE greatest(b.updated_at, at_time) END,
      per_minute = bucket_per_minute
$$;
