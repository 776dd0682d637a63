-- Folded into 0001_initial.sql: PostgreSQL support began at schema version 6, so this
-- backend has nothing to change here. It keeps the number so both backends name the same
-- schema with the same version (see ../migrations/0002_limits.sql).
SELECT 1;
