-- Per-guild/role/user overrides of the settings' limits, edited by /flexadmin.
-- scope 'global' uses guild_id 0; 'guild' uses target_id 0.
CREATE TABLE limits (
    scope     TEXT    NOT NULL CHECK (scope IN ('global', 'guild', 'role', 'user')),
    guild_id  INTEGER NOT NULL DEFAULT 0,
    target_id INTEGER NOT NULL DEFAULT 0,
    name      TEXT    NOT NULL,
    value     INTEGER,                          -- NULL = unlimited
    set_by    INTEGER,
    set_at    REAL    NOT NULL,
    PRIMARY KEY (scope, guild_id, target_id, name)
);

-- Extra allowance granted by admins; negative rows revoke. Counts in the month it was granted.
CREATE TABLE credits (
    id            INTEGER PRIMARY KEY,
    guild_id      INTEGER NOT NULL,
    user_id       INTEGER NOT NULL,
    amount_micros INTEGER NOT NULL,
    granted_by    INTEGER,
    reason        TEXT,
    created_at    REAL    NOT NULL
);
CREATE INDEX credits_by_user ON credits (guild_id, user_id, created_at);

-- guild_id 0 = blocked everywhere / paused globally.
CREATE TABLE blocks (
    guild_id   INTEGER NOT NULL,
    user_id    INTEGER NOT NULL,
    blocked_by INTEGER,
    reason     TEXT,
    created_at REAL    NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);
CREATE TABLE pauses (
    guild_id   INTEGER PRIMARY KEY,
    paused_by  INTEGER,
    reason     TEXT,
    created_at REAL    NOT NULL
);

CREATE TABLE user_prefs (
    user_id       INTEGER PRIMARY KEY,
    remix_opt_out INTEGER NOT NULL DEFAULT 0
);

-- Every admin change, with who made it.
CREATE TABLE audit (
    id         INTEGER PRIMARY KEY,
    guild_id   INTEGER,
    actor_id   INTEGER,
    action     TEXT    NOT NULL,
    detail     TEXT    NOT NULL,
    created_at REAL    NOT NULL
);
