-- How sensitive a project's prompts are before pii looks at them (its data policy's data
-- class): what pii finds may raise a prompt's class, never lower it. A replica of the previous
-- release neither reads nor applies it, and keeps the column as it is when it updates a
-- project. The runtime role's grants on the table cover the new column.
ALTER TABLE projects ADD COLUMN data_class text NOT NULL DEFAULT 'internal'
  CHECK (data_class IN ('public', 'internal', 'pii', 'phi'));
