"""Command names and descriptions in the members' languages, from the same catalogues as replies.

discord.py asks the tree's :class:`~discord.app_commands.Translator` for every command, group,
option and choice string when it builds the registration payload; what comes back becomes
``name_localizations`` / ``description_localizations``. Names are looked up under the ``name``
context (choices under ``choice``) so ``queue`` the command never collides with a sentence;
descriptions are plain msgids. English is the commands' own text, so it is never asked for.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from bot.i18n import DISCORD_LOCALES, catalogues

log = logging.getLogger(__name__)

Location = app_commands.TranslationContextLocation
#: Which catalogue context each kind of command string is looked up in.
CONTEXTS: dict[Location, str | None] = {
    Location.command_name: "name",
    Location.group_name: "name",
    Location.parameter_name: "name",
    Location.choice_name: "choice",
    Location.command_description: None,
    Location.group_description: None,
    Location.parameter_description: None,
}


class FlexTranslator(app_commands.Translator):
    """Looks command strings up in the shipped ``.po`` catalogues (``bot.i18n``)."""

    async def load(self) -> None:
        # Read every catalogue now, so a broken one stops the start instead of a registration.
        shipped = catalogues()
        log.info("message catalogues loaded: %s", ", ".join(sorted(shipped.messages)))

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        language = DISCORD_LOCALES.get(locale.value)
        if language is None or context.location not in CONTEXTS:
            return None
        return catalogues().lookup(language, string.message, CONTEXTS[context.location])
