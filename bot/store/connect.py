"""Open the database the settings name: SQLite (the default) or a shared PostgreSQL server."""

from __future__ import annotations

from bot.settings import Settings
from bot.store.db import Database
from bot.store.postgres import PostgresDatabase


async def open_database(settings: Settings) -> Database:
    """Connect, migrate and return the database; the caller closes it."""
    if settings.postgres:
        assert settings.database_url is not None
        return await PostgresDatabase.connect(settings.database_url)
    return await Database.open(settings.database_path)
