"""Facts about an interaction that every feature needs: the core, who asks, where, and the gates.

One ``requester_of`` and one ``is_moderator`` for the whole Discord layer, so /usage shows the
limits /edit applies and a moderator means the same thing on every path.
"""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from bot import params
from bot.core import Core
from bot.errors import UserError
from bot.languages import ServerLanguages
from bot.model import Requester, SafetyTolerance
from bot.permissions import missing_for_posting

#: fal's safety levels as slash-command choices: "1" strictest .. "5" most permissive.
SAFETY_CHOICES = [app_commands.Choice(name=t.value, value=t.value) for t in SafetyTolerance]
#: fal's output sizes (``auto`` and the presets) as slash-command choices.
SIZE_CHOICES = [app_commands.Choice(name=s, value=s) for s in params.SIZE_CHOICES]


async def server_locale(core: Core, guild_id: int | None, guild_locale: object) -> str:
    """The language of public messages (results, status) in this server: its admins' choice
    (``/flexadmin language``), else its Discord locale (``interaction.guild_locale``,
    ``guild.preferred_locale``), else English. Pass it to ``bot.i18n.translate``."""
    discord_locale = str(guild_locale) if guild_locale is not None else None
    return await ServerLanguages(core.db).locale_for(guild_id, discord_locale)


def core_of(client: discord.Client) -> Core:
    """The core the bot was built with (``FlexBot.core``)."""
    core = getattr(client, "core", None)
    if not isinstance(core, Core):
        raise RuntimeError("this client was not built with a Flexbot core")
    return core


def channel_is_nsfw(interaction: discord.Interaction[Any]) -> bool:
    is_nsfw = getattr(interaction.channel, "is_nsfw", None)
    return bool(is_nsfw()) if callable(is_nsfw) else False


def is_moderator(interaction: discord.Interaction[Any]) -> bool:
    """Manage Messages in this channel of this server (from the interaction payload)."""
    return interaction.guild_id is not None and interaction.permissions.manage_messages


def requester_of(interaction: discord.Interaction[Any]) -> Requester:
    """Who is asking, where, with which roles (for budgets and policy; @everyone is no role),
    whether the channel is age-restricted and whether they moderate it (for visibility)."""
    user = interaction.user
    roles = (
        tuple(r.id for r in user.roles if not r.is_default())
        if isinstance(user, discord.Member)
        else ()
    )
    return Requester(
        user.id,
        interaction.guild_id,
        interaction.channel_id,
        roles,
        channel_nsfw=channel_is_nsfw(interaction),
        moderator=is_moderator(interaction),
    )


def missing_permissions(interaction: discord.Interaction[Any]) -> list[str]:
    """What the bot lacks in this channel to post a result, by name."""
    if interaction.guild_id is None:
        return []
    return missing_for_posting(
        interaction.app_permissions, thread=isinstance(interaction.channel, discord.Thread)
    )


async def gate(interaction: discord.Interaction[Any], *, queueing: bool) -> None:
    """Raise UserError unless this member may use Flexbot here (and queue work, if ``queueing``).

    Every entry point runs it: the command tree for slash commands and menus, and each button
    and modal callback itself (discord.py sends those past the tree).
    """
    core = core_of(interaction.client)
    who = requester_of(interaction)
    await core.admin.channel_gate(
        who.guild_id, interaction.channel_id or 0, who.role_ids, channel_is_nsfw(interaction)
    )
    if not queueing:
        return
    await core.engine.check_access(who)
    missing = missing_permissions(interaction)
    if missing:
        raise UserError.of(
            "I can't post results in this channel: I am missing {permissions}. Ask a server "
            "admin to grant them, or use another channel.",
            permissions=", ".join(missing),
        )
