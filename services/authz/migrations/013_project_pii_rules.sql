-- A project's own rules for what pii finds in its prompts (its data policy's pii rules), each
-- 'ENTITY_TYPE=treatment' (US_SSN=block), ordered by entity type. A replica of the previous
-- release neither reads nor applies them, and keeps the column as it is when it updates a
-- project. The runtime role's grants on the table cover the new column.
ALTER TABLE projects ADD COLUMN pii_rules text[] NOT NULL DEFAULT '{}';
