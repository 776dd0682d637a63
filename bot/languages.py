"""Which language a server's public messages use: its admins' choice, else its Discord locale.

Private answers follow the member's own Discord locale; results and status messages are read
by everyone in the channel, so they follow the server (``/flexadmin language``). The choice is
stored per server (``guild_language``) and recorded in the audit log like every admin change.
"""

from __future__ import annotations

import time

from bot.i18n import LANGUAGES, language_of
from bot.store import audit
from bot.store import language as language_repo
from bot.store.db import Database

#: The /flexadmin language choice that goes back to the server's Discord locale.
AUTO = "auto"


class ServerLanguages:
    """Read and set a server's language for public messages."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def chosen(self, guild_id: int) -> str | None:
        """The language the server's admins chose, or None."""
        return await language_repo.language_of(self.db, guild_id)

    async def locale_for(self, guild_id: int | None, guild_locale: str | None) -> str:
        """The language of public messages in this server: the admins' choice, else the
        server's Discord locale (``guild_locale``), else English."""
        if guild_id is not None:
            chosen = await self.chosen(guild_id)
            if chosen is not None:
                return chosen
        return language_of(guild_locale)

    async def choose(self, actor_id: int, guild_id: int, language: str) -> str | None:
        """Set (or with ``auto`` clear) the server's language; returns the stored choice."""
        if language != AUTO and language not in LANGUAGES:
            raise ValueError(f"unknown language {language!r}; one of {', '.join(LANGUAGES)}")
        async with self.db.transaction() as tx:
            if language == AUTO:
                await language_repo.clear_language(tx, guild_id)
            else:
                await language_repo.set_language(tx, guild_id, language, actor_id, time.time())
            await audit.record(tx, guild_id, actor_id, "language", {"language": language})
        return None if language == AUTO else language
