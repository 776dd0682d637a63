-- flexbot: foreign-keys-off
-- Issue 12, every dollar fal bills is in the ledger. The state CHECK gains 'unsure': the submit's
-- answer was lost (a read timeout, a dropped connection, a 5xx, a crash inside the submit
-- window), so fal may be running and billing the job; it is looked up in fal's request list
-- before anything is sent again (bot/engine/reconcile.py). SQLite cannot change a CHECK in
-- place, so the table is rebuilt the documented way (sqlite.org/lang_altertable.html, "other
-- kinds of table schema changes"): foreign keys off around this file (the marker line above,
-- bot/store/db.py), copy, drop, rename, indexes again, then a foreign key check before commit.
--
-- New columns:
--   fal_input           the exact JSON arguments sent to fal (seed included), written with the
--                       'submitting' state before the POST: how the job is recognised in the list
--   submit_window_start when the (last) POST began
--   submit_window_end   when its answer was found lost (or the restart that found it unsent)
--   fal_request_hint    x-fal-request-id of a lost answer, when a header gave one
--   fal_seconds         how long fal reported the job queued or running (the job timeout)
--   fal_seen_at         when fal last reported it queued or running (adds to fal_seconds)
CREATE TABLE jobs_new (
    id              INTEGER PRIMARY KEY,
    state           TEXT    NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'submitting', 'unsure', 'running', 'fetched',
                                     'delivered', 'undeliverable', 'cancelled', 'failed')),
    user_id         INTEGER NOT NULL,
    guild_id        INTEGER,
    channel_id      INTEGER,
    origin          TEXT    NOT NULL,
    parent_job_id   INTEGER REFERENCES jobs(id),
    endpoint        TEXT    NOT NULL,
    params          TEXT    NOT NULL,
    input_hashes    TEXT    NOT NULL,
    seed            INTEGER,
    estimate_micros INTEGER NOT NULL CHECK (estimate_micros >= 0),
    cost_micros     INTEGER CHECK (cost_micros >= 0),
    held_micros     INTEGER NOT NULL DEFAULT 0 CHECK (held_micros >= 0),
    charged_micros  INTEGER NOT NULL DEFAULT 0 CHECK (charged_micros >= 0),
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    fal_request_id  TEXT,
    submit_attempts INTEGER NOT NULL DEFAULT 0,
    output_hash     TEXT,
    output_width    INTEGER,
    output_height   INTEGER,
    failure_reason  TEXT,
    status_message_id INTEGER,
    result_message_id INTEGER,
    source_message_id INTEGER,
    role_ids        TEXT    NOT NULL DEFAULT '[]',
    created_at      REAL    NOT NULL,
    started_at      REAL,
    finished_at     REAL,
    updated_at      REAL    NOT NULL,
    channel_nsfw    INTEGER NOT NULL DEFAULT 1 CHECK (channel_nsfw IN (0, 1)),
    source_author_id INTEGER,
    fal_input       TEXT,
    submit_window_start REAL,
    submit_window_end   REAL,
    fal_request_hint    TEXT,
    fal_seconds     REAL    NOT NULL DEFAULT 0 CHECK (fal_seconds >= 0),
    fal_seen_at     REAL
);
INSERT INTO jobs_new (id, state, user_id, guild_id, channel_id, origin, parent_job_id, endpoint,
    params, input_hashes, seed, estimate_micros, cost_micros, held_micros, charged_micros,
    cancel_requested, fal_request_id, submit_attempts, output_hash, output_width, output_height,
    failure_reason, status_message_id, result_message_id, source_message_id, role_ids,
    created_at, started_at, finished_at, updated_at, channel_nsfw, source_author_id)
SELECT id, state, user_id, guild_id, channel_id, origin, parent_job_id, endpoint,
    params, input_hashes, seed, estimate_micros, cost_micros, held_micros, charged_micros,
    cancel_requested, fal_request_id, submit_attempts, output_hash, output_width, output_height,
    failure_reason, status_message_id, result_message_id, source_message_id, role_ids,
    created_at, started_at, finished_at, updated_at, channel_nsfw, source_author_id
FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;
CREATE INDEX jobs_by_state ON jobs (state, id);
CREATE INDEX jobs_by_user ON jobs (user_id, created_at);
CREATE INDEX jobs_by_guild ON jobs (guild_id, created_at);
CREATE INDEX jobs_by_time ON jobs (created_at);
CREATE INDEX jobs_by_result_message ON jobs (result_message_id);
-- A request fal runs belongs to one job at most (adopting a found request checks it too).
CREATE INDEX jobs_by_fal_request ON jobs (fal_request_id);
