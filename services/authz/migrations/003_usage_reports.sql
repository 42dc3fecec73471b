-- Usage reports already applied to the buckets (BucketStore::AdjustOnce): a retried report
-- finds its id here and changes nothing. Rows older than the retention (rate_limiter.h,
-- kReportRetention) are deleted a few at a time by later reports.
CREATE TABLE usage_reports (
  id          text PRIMARY KEY,
  fingerprint text NOT NULL,
  reported_at timestamptz NOT NULL
);
CREATE INDEX usage_reports_reported_at ON usage_reports (reported_at);
