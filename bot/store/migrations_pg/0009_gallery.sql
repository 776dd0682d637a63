-- Issue 15, the web gallery: the same tables and columns as ../migrations/0009_gallery.sql (see
-- there for what each holds), in PostgreSQL's types.
CREATE TABLE gallery_removed (
    job_id     BIGINT  PRIMARY KEY,
    removed_by BIGINT,
    removed_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE gallery_public (
    guild_id BIGINT  PRIMARY KEY,
    set_by   BIGINT,
    set_at   DOUBLE PRECISION NOT NULL
);

CREATE TABLE gallery_thumbs (
    sha256     TEXT    PRIMARY KEY,
    data       BYTEA   NOT NULL,
    width      BIGINT  NOT NULL,
    height     BIGINT  NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE gallery_names (
    guild_id   BIGINT  NOT NULL,
    user_id    BIGINT  NOT NULL,
    name       TEXT    NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

ALTER TABLE user_prefs ADD COLUMN gallery_opt_out BIGINT NOT NULL DEFAULT 0;

CREATE INDEX jobs_by_parent ON jobs (parent_job_id);
