"""/flexadmin language: the language of this server's public messages (results, status).

Members' private answers follow their own Discord language whatever is chosen here; ``auto``
goes back to the server's Discord language (Server Settings > Community > Server Primary
Language).
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from bot.core import Core
from bot.i18n import LANGUAGES, NATIVE_NAMES, translate
from bot.languages import AUTO, ServerLanguages
from cogs.errors import locale_of

#: The language choices: each language by its own name, then ``auto``.
CHOICES = [
    *(app_commands.Choice(name=NATIVE_NAMES[code], value=code) for code in LANGUAGES),
    app_commands.Choice(name="Server's Discord language", value=AUTO),
]


def language_command(core: Core) -> app_commands.Command[Any, ..., None]:
    """The ``language`` subcommand, for the /flexadmin group to add (it checks Manage Server)."""

    @app_commands.command(
        name="language", description="The language of Flexbot's public messages in this server."
    )
    @app_commands.describe(language="A language, or auto: the server's Discord language")
    @app_commands.choices(language=CHOICES)
    async def language(
        interaction: discord.Interaction, language: app_commands.Choice[str]
    ) -> None:
        assert interaction.guild_id is not None  # /flexadmin is guild_only
        chosen = await ServerLanguages(core.db).choose(
            interaction.user.id, interaction.guild_id, language.value
        )
        locale = locale_of(interaction)
        if chosen is None:
            text = translate(
                locale,
                "Public messages in this server now follow its Discord language ({language}).",
                language=str(interaction.guild_locale or "en-US"),
            )
        else:
            text = translate(
                locale,
                "Public messages in this server are now in {language}.",
                language=NATIVE_NAMES[chosen],
            )
        await interaction.response.send_message(text, ephemeral=True)

    return language
