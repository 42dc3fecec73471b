-- The token buckets every replica's RateLimiter shares (rate_limiter.h). A bucket holds
-- `level` units as of `updated_at` and refills at per_minute / 60 units per second up to
-- per_minute; the level may be negative (debt), down to -per_minute.
CREATE TABLE rate_buckets (
  key        text PRIMARY KEY,
  level      double precision NOT NULL,
  updated_at timestamptz NOT NULL,
  per_minute bigint NOT NULL CHECK (per_minute >= 0)
);

-- The level of a bucket at `at_time`: the stored level clamped to [-per_minute, per_minute]
-- (the limit may have changed), plus the refill since `updated_at` (none when `at_time` is
-- earlier), capped at per_minute. The same arithmetic as MemoryBucketStore, in doubles over
-- whole microseconds.
CREATE FUNCTION refilled_level(level double precision, updated_at timestamptz,
                               per_minute bigint, at_time timestamptz)
RETURNS double precision
LANGUAGE sql IMMUTABLE AS $$
  SELECT least(per_minute::double precision,
               greatest(-per_minute::double precision, level)
                 + per_minute::double precision
                   * greatest(0, (extract(epoch FROM at_time - updated_at) * 1000000)::bigint)
                   / 60000000::double precision)
$$;

-- BucketStore::TakeAll in one statement. Creates missing buckets full, locks the buckets in
-- key order (concurrent callers never deadlock), refills them to `at_time`, then takes in
-- input order, all or nothing: when every bucket holds its units, takes least(want, level)
-- whole units from each; otherwise takes nothing and leaves the rows as they were.
-- One row per input element, in input order: the units granted (0 for all when any bucket
-- falls short) and the bucket's level after the take.
CREATE FUNCTION take_buckets(take_keys text[], take_per_minute bigint[], take_units bigint[],
                             take_want bigint[], at_time timestamptz)
RETURNS TABLE (granted bigint, level double precision)
LANGUAGE plpgsql AS $$
DECLARE
  n int := coalesce(cardinality(take_keys), 0);
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
  SELECT DISTINCT ON (t.k) t.k, t.pm, at_time, t.pm
  FROM unnest(take_keys, take_per_minute) AS t(k, pm)
  ORDER BY t.k
  ON CONFLICT (key) DO NOTHING;

  FOR bucket IN
    SELECT b.key, b.level, b.updated_at FROM authz.rate_buckets AS b
    WHERE b.key = ANY (take_keys) ORDER BY b.key FOR UPDATE
  LOOP
    bucket_keys := bucket_keys || bucket.key;
    j := array_position(take_keys, bucket.key);
    bucket_per_minute := bucket_per_minute || take_per_minute[j];
    refilled := refilled || authz.refilled_level(bucket.level, bucket.updated_at,
                                                 take_per_minute[j], at_time);
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
    SET level = t.lvl, updated_at = greatest(b.updated_at, at_time), per_minute = t.pm
    FROM unnest(bucket_keys, levels, bucket_per_minute) AS t(k, lvl, pm)
    WHERE b.key = t.k;
  ELSE
    FOR i IN 1..n LOOP
      granted_units[i] := 0;
      level_after[i] := refilled[array_position(bucket_keys, take_keys[i])];
    END LOOP;
  END IF;

  RETURN QUERY
  SELECT t.g, t.l FROM unnest(granted_units, level_after) WITH ORDINALITY AS t(g, l, ord)
  ORDER BY t.ord;
END
$$;

-- BucketStore::Adjust: refills bucket `bucket_key` to `at_time` (creating it full), then adds
-- `delta`, keeping the level within [-per_minute, per_minute].
CREATE FUNCTION adjust_bucket(bucket_key text, bucket_per_minute bigint, delta bigint,
                              at_time timestamptz)
RETURNS void
LANGUAGE sql AS $$
  INSERT INTO authz.rate_buckets AS b (key, level, updated_at, per_minute)
  VALUES (bucket_key,
          least(bucket_per_minute, greatest(-bucket_per_minute, bucket_per_minute + delta)),
          at_time, bucket_per_minute)
  ON CONFLICT (key) DO UPDATE
  SET level = greatest(-bucket_per_minute::double precision,
                       least(bucket_per_minute::double precision,
                             authz.refilled_level(b.level, b.updated_at, bucket_per_minute,
                                                  at_time) + delta)),
      updated_at = greatest(b.updated_at, at_time),
      per_minute = bucket_per_minute
$$;
