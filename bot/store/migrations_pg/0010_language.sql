-- Issue 14: the same schema as ../migrations/0010_language.sql (see the comments there).

CREATE TABLE guild_language (
    guild_id   BIGINT  PRIMARY KEY,
    language   TEXT    NOT NULL CHECK (language IN ('en', 'de', 'fr', 'es', 'pt_BR', 'ja')),
    set_by     BIGINT,
    set_at     DOUBLE PRECISION NOT NULL
);
