-- Jobs are the queue; every state change is a compare-and-set UPDATE on `state`.
CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY,
    state           TEXT    NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'submitting', 'running', 'fetched',
                                     'delivered', 'undeliverable', 'cancelled', 'failed')),
    user_id         INTEGER NOT NULL,
    guild_id        INTEGER,
    channel_id      INTEGER,
    origin          TEXT    NOT NULL,          -- command | button | rerun | remix | context | cli
    parent_job_id   INTEGER REFERENCES jobs(id),
    endpoint        TEXT    NOT NULL,          -- fal app id, so a rerun months later is exact
    params          TEXT    NOT NULL,          -- EditParams as JSON
    input_hashes    TEXT    NOT NULL,          -- JSON list of sha256 in reference order
    seed            INTEGER,                   -- requested seed, then the seed fal used
    estimate_micros INTEGER NOT NULL CHECK (estimate_micros >= 0),
    cost_micros     INTEGER CHECK (cost_micros >= 0),   -- actual price once fetched
    held_micros     INTEGER NOT NULL DEFAULT 0 CHECK (held_micros >= 0),     -- reserve - release
    charged_micros  INTEGER NOT NULL DEFAULT 0 CHECK (charged_micros >= 0),  -- charge - refund
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    fal_request_id  TEXT,
    submit_attempts INTEGER NOT NULL DEFAULT 0,
    output_hash     TEXT,
    output_width    INTEGER,
    output_height   INTEGER,
    failure_reason  TEXT,
    status_message_id INTEGER,
    result_message_id INTEGER,
    source_message_id INTEGER,                 -- the message a context-menu edit came from
    role_ids        TEXT    NOT NULL DEFAULT '[]',
    created_at      REAL    NOT NULL,
    started_at      REAL,
    finished_at     REAL,
    updated_at      REAL    NOT NULL
);
CREATE INDEX jobs_by_state ON jobs (state, id);
CREATE INDEX jobs_by_user ON jobs (user_id, created_at);
CREATE INDEX jobs_by_guild ON jobs (guild_id, created_at);
CREATE INDEX jobs_by_time ON jobs (created_at);

-- Content-addressed images on disk; the row outlives the file (retention), the hash stays.
CREATE TABLE blobs (
    sha256       TEXT    PRIMARY KEY,
    size         INTEGER NOT NULL,
    width        INTEGER,
    height       INTEGER,
    content_type TEXT    NOT NULL,
    created_at   REAL    NOT NULL,
    deleted_at   REAL,
    fal_url      TEXT,                         -- fal storage URL of this blob, reused for reruns
    fal_url_at   REAL
);

-- Money. Per job: reserve - release = what is still held (0 once the job ended);
-- charge - refund = what the job finally cost.
CREATE TABLE ledger (
    id            INTEGER PRIMARY KEY,
    job_id        INTEGER NOT NULL REFERENCES jobs(id),
    kind          TEXT    NOT NULL CHECK (kind IN ('reserve', 'release', 'charge', 'refund')),
    amount_micros INTEGER NOT NULL CHECK (amount_micros >= 0),
    user_id       INTEGER NOT NULL,
    guild_id      INTEGER,
    created_at    REAL    NOT NULL
);
CREATE INDEX ledger_by_job ON ledger (job_id);
CREATE INDEX ledger_by_user ON ledger (user_id, created_at);
CREATE INDEX ledger_by_guild ON ledger (guild_id, created_at);
