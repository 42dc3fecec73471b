-- When each published breaker last closed, so that the other replicas close theirs if they
-- last opened before that (CircuitBreaker::Adopt). NULL stands for absl::InfinitePast() (never
-- closed, or published by a replica that did not say). Applied with search_path set to the
-- service's schema.
ALTER TABLE breakers ADD COLUMN IF NOT EXISTS closed_at timestamptz;
