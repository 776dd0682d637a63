-- Issue 14 (Flexbot in the members' language): a server's choice of language for its public
-- messages (results, status), set with /flexadmin language. No row: the server's Discord locale.
-- ``language`` is a shipped catalogue's Babel id (bot/i18n.py LANGUAGES).
CREATE TABLE guild_language (
    guild_id   INTEGER PRIMARY KEY,
    language   TEXT    NOT NULL CHECK (language IN ('en', 'de', 'fr', 'es', 'pt_BR', 'ja')),
    set_by     INTEGER,
    set_at     REAL    NOT NULL
);
