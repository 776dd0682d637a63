-- Issue 13, several processes on one database. The same columns and tables on both backends
-- (migrations/0007_shared_queue.sql); SQLite runs one process, so it keeps the columns empty
-- but carries them, which lets `flexbot migrate-db` copy a deployment column for column.
--
--   owner        the process (settings.worker_name) running the job; NULL while it waits
--   lease_until  when that process's claim runs out unless its heartbeat renews it; another
--                process takes the job over after it (resuming the stored fal request)
--   max_running  the member's running cap when the job was admitted (NULL: none), so every
--                process's scheduler sees the same cap
ALTER TABLE jobs ADD COLUMN owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_until DOUBLE PRECISION;
ALTER TABLE jobs ADD COLUMN max_running BIGINT;
-- The unclaimed jobs of each member, oldest first: what a claim ranks (bench/shared_queue.py:
-- an index-only scan, where an index without the owner condition left a sort of every row).
CREATE INDEX jobs_unclaimed ON jobs (guild_id, user_id, id) INCLUDE (created_at, max_running)
    WHERE state = 'queued' AND owner IS NULL;
-- The jobs holding a fal slot: counted by every claim, scanned by takeovers.
CREATE INDEX jobs_holding ON jobs (user_id, lease_until)
    WHERE owner IS NOT NULL AND state IN ('queued', 'submitting', 'unsure', 'running', 'fetched');

-- The shared queue's round-robin: when each member (in a guild) last had a job started.
CREATE TABLE turns (
    guild_id  BIGINT  NOT NULL,
    user_id   BIGINT  NOT NULL,
    picked_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

-- Image bytes kept in the database, for a deployment whose processes share no disk
-- (PostgreSQL). SQLite deployments keep their blobs as files and leave this empty.
CREATE TABLE blob_data (
    sha256 TEXT PRIMARY KEY,
    data   BYTEA NOT NULL
);
