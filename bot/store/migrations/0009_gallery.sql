-- Issue 15, the web gallery (bot/gallery/, bot/store/gallery.py). The same tables and columns on
-- both backends (migrations_pg/0009_gallery.sql). No foreign keys to jobs: these rows only ever
-- hide or decorate a job, and a later rebuild of the jobs table need not carry them along.

-- Results their requester or a moderator deleted in Discord (the result's Delete button): never
-- shown in the gallery again.
CREATE TABLE gallery_removed (
    job_id     INTEGER PRIMARY KEY,
    removed_by INTEGER,
    removed_at REAL    NOT NULL
);

-- Servers whose admins made the gallery public (/flexadmin gallery public on); no row = private
-- (signed links only).
CREATE TABLE gallery_public (
    guild_id INTEGER PRIMARY KEY,
    set_by   INTEGER,
    set_at   REAL    NOT NULL
);

-- WebP thumbnails, made once per original (keyed by the original's sha256) and kept here so
-- every process sharing a PostgreSQL database serves the same cached bytes.
CREATE TABLE gallery_thumbs (
    sha256     TEXT    PRIMARY KEY,
    data       BLOB    NOT NULL,
    width      INTEGER NOT NULL,
    height     INTEGER NOT NULL,
    created_at REAL    NOT NULL
);

-- Members' display names as Discord last showed them to the bot (the core knows only ids);
-- user_id 0 holds the server's own name.
CREATE TABLE gallery_names (
    guild_id   INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    updated_at REAL    NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

-- /optout gallery: none of the member's results appear in any server's gallery.
ALTER TABLE user_prefs ADD COLUMN gallery_opt_out INTEGER NOT NULL DEFAULT 0;

-- The family tree walks parent -> children; "most remixed" counts children.
CREATE INDEX jobs_by_parent ON jobs (parent_job_id);
