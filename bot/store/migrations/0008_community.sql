-- Issue 14 (communities own their bot): prompt filters per server, fal's safety-checker flag on
-- each job, and per-channel defaults with the choice of how a flagged output is shown.

-- 1 when fal's safety checker flagged the output (``has_nsfw_concepts``): the result is never
-- shown openly outside an age-restricted channel. Older jobs were never flagged by us: 0.
ALTER TABLE jobs ADD COLUMN nsfw_flagged INTEGER NOT NULL DEFAULT 0 CHECK (nsfw_flagged IN (0, 1));

-- A server's blocked words/phrases (kind 'word', matched on normalised text at word boundaries)
-- and patterns (kind 'pattern', RE2 syntax, linear time). ``term`` is stored as the admin typed
-- it (trimmed); matching normalises both sides (bot/prompt_filter.py).
CREATE TABLE prompt_filters (
    id         INTEGER PRIMARY KEY,
    guild_id   INTEGER NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('word', 'pattern')),
    term       TEXT    NOT NULL,
    added_by   INTEGER,
    added_at   REAL    NOT NULL,
    UNIQUE (guild_id, kind, term)
);

-- One channel's defaults (NULL: the bot's default) and how a flagged output is shown there
-- ('hide': no image; 'spoiler': the image as a spoiler, honoured in age-restricted channels only).
CREATE TABLE channel_settings (
    guild_id        INTEGER NOT NULL,
    channel_id      INTEGER NOT NULL,
    default_steps    INTEGER,
    default_guidance REAL,
    default_size     TEXT,
    default_format   TEXT CHECK (default_format IN ('jpeg', 'png')),
    default_safety   TEXT CHECK (default_safety IN ('1', '2', '3', '4', '5')),
    flagged_output   TEXT NOT NULL DEFAULT 'hide' CHECK (flagged_output IN ('hide', 'spoiler')),
    set_by          INTEGER,
    set_at          REAL    NOT NULL,
    PRIMARY KEY (guild_id, channel_id)
);
