-- Where a project's calls must be processed (its data policy's residency): 'global' for
-- anywhere. A replica of the previous release neither reads nor enforces it, and keeps the
-- column as it is when it updates a project. The runtime role's grants on the table cover
-- the new column.
ALTER TABLE projects ADD COLUMN residency text NOT NULL DEFAULT 'global'
  CHECK (residency IN ('eu', 'us', 'apac', 'global'));
