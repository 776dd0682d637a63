-- Channel and role policy edited by /flexadmin (DESIGN §5). No rows = the defaults.

-- Channels where Flexbot answers; a guild without rows allows every channel.
CREATE TABLE allowed_channels (
    guild_id   INTEGER NOT NULL,
    channel_id INTEGER NOT NULL,
    set_by     INTEGER,
    set_at     REAL    NOT NULL,
    PRIMARY KEY (guild_id, channel_id)
);

-- A role members need to use Flexbot in a guild (NULL = none).
CREATE TABLE guild_policy (
    guild_id         INTEGER PRIMARY KEY,
    required_role_id INTEGER,
    set_by           INTEGER,
    set_at           REAL    NOT NULL
);

-- Highest safety tolerance and whether the checker may be switched off; channel_id 0 is the
-- guild's default, any other channel_id overrides it for that channel.
CREATE TABLE safety_policy (
    guild_id            INTEGER NOT NULL,
    channel_id          INTEGER NOT NULL DEFAULT 0,
    max_tolerance       TEXT    NOT NULL CHECK (max_tolerance IN ('1', '2', '3', '4', '5')),
    checker_off_allowed INTEGER NOT NULL DEFAULT 0,
    set_by              INTEGER,
    set_at              REAL    NOT NULL,
    PRIMARY KEY (guild_id, channel_id)
);

CREATE INDEX audit_by_guild ON audit (guild_id, created_at);
