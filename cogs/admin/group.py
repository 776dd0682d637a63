"""/flexadmin: the server owners' group (Manage Server), with reports, pause and resume.

The limit, credit, access and safety subgroups (``cogs.admin.limits``, ``cogs.admin.access``)
hang under this group; ``cogs.admin`` assembles them. Manage Server is checked at run time on
every subcommand (``default_permissions`` is only a default a server can change).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Awaitable
from typing import Literal

import discord
from discord import app_commands
from discord.ext.commands.bot import BotBase

from bot.admin_facts import AdminChange
from bot.core import Core
from bot.errors import UserError
from bot.i18n import translate
from cogs.admin.language import language_command
from cogs.admin.render import (
    describe_change,
    render_audit_line,
    render_reconcile,
    render_report,
    render_settings,
)
from cogs.errors import Refused, locale_of

log = logging.getLogger(__name__)

GROUP_NAME = "flexadmin"
Period = Literal["today", "month", "last30", "all"]
NO_PERMISSION = "You need the Manage Server permission to use /flexadmin."


async def reply(interaction: discord.Interaction, action: Awaitable[AdminChange]) -> None:
    """Run one admin change and answer with its outcome (a UserError goes to the tree)."""
    message = describe_change(await action, locale_of(interaction))
    await interaction.response.send_message(message, ephemeral=True)


def allowed(interaction: discord.Interaction) -> None:
    """Manage Server in this server, or Refused (answered once, by the tree's on_error)."""
    if interaction.guild is None or not interaction.permissions.manage_guild:
        raise Refused(UserError(NO_PERMISSION))


def guild_id_of(interaction: discord.Interaction) -> int:
    assert interaction.guild_id is not None  # guild_only group
    return interaction.guild_id


class FlexAdmin(app_commands.Group):
    """Server owners' controls; every change is recorded with who made it."""

    def __init__(self, core: Core) -> None:
        super().__init__(
            name=GROUP_NAME,
            description="Flexbot budgets, access, safety and reports (Manage Server).",
            guild_only=True,
            default_permissions=discord.Permissions(manage_guild=True),
        )
        self.core = core
        self.add_command(language_command(core))

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        allowed(interaction)
        return True

    @app_commands.command(name="usage", description="Totals, top members and channels.")
    @app_commands.describe(period="today, this month (default), last 30 days, or all time")
    async def usage(self, interaction: discord.Interaction, period: Period = "month") -> None:
        report = await self.core.admin.usage_report(guild_id_of(interaction), period)
        embed = render_report(report, locale_of(interaction))
        await interaction.response.send_message(embed=embed, ephemeral=True)

    @app_commands.command(name="export", description="Every job and its cost as a CSV file.")
    @app_commands.describe(period="today, this month (default), last 30 days, or all time")
    async def export(self, interaction: discord.Interaction, period: Period = "month") -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        text = await self.core.admin.export_csv(guild_id_of(interaction), period)
        name = f"flexbot-usage-{period}.csv"
        await interaction.edit_original_response(
            content=translate(
                locale_of(interaction),
                "Usage export ({period}); `amount_usd` sums to what was spent.",
                period=period,
            ),
            attachments=[discord.File(io.BytesIO(text.encode()), filename=name)],
        )

    @app_commands.command(
        name="settings", description="This server's effective limits and their source."
    )
    async def settings(self, interaction: discord.Interaction) -> None:
        rows = await self.core.admin.settings_report(guild_id_of(interaction))
        locale = locale_of(interaction)
        text = render_settings(rows, locale)
        if len(text) <= 1900:
            await interaction.response.send_message(f"```\n{text}\n```", ephemeral=True)
            return
        overrides = [r for r in rows if r.source != "default"]
        await interaction.response.send_message(
            translate(
                locale,
                "{count} settings, {changed} not at their default; full list attached.",
                count=len(rows),
                changed=len(overrides),
            ),
            file=discord.File(io.BytesIO(text.encode()), filename="flexbot-settings.txt"),
            ephemeral=True,
        )

    @app_commands.command(name="audit", description="The latest admin changes and who made them.")
    async def audit(self, interaction: discord.Interaction) -> None:
        rows = await self.core.admin.audit_log(guild_id_of(interaction), 15)
        lines = [render_audit_line(r) for r in rows]
        await interaction.response.send_message(
            "\n".join(lines)[:1900] or translate(locale_of(interaction), "No admin changes yet."),
            ephemeral=True,
        )

    @app_commands.command(
        name="report", description="The last check of Flexbot's charges against fal's records."
    )
    async def report(self, interaction: discord.Interaction) -> None:
        # The bot owner sees the whole bot; a server's admins only their own server's jobs.
        owner = await self._is_owner(interaction)
        summary = self.core.reconciler.summary(None if owner else guild_id_of(interaction))
        text = render_reconcile(summary, locale_of(interaction))
        await interaction.response.send_message(text, ephemeral=True)

    @app_commands.command(name="pause", description="Refuse new edits (running ones finish).")
    @app_commands.describe(everywhere="Pause the whole bot (bot owner only)", reason="Why")
    async def pause(
        self, interaction: discord.Interaction, everywhere: bool = False, reason: str | None = None
    ) -> None:
        guild = await self._scope(interaction, everywhere)
        if guild != -1:
            await reply(interaction, self.core.admin.pause(interaction.user.id, guild, reason))

    @app_commands.command(name="resume", description="Take new edits again.")
    @app_commands.describe(everywhere="Resume the whole bot (bot owner only)")
    async def resume(self, interaction: discord.Interaction, everywhere: bool = False) -> None:
        guild = await self._scope(interaction, everywhere)
        if guild != -1:
            await reply(interaction, self.core.admin.resume(interaction.user.id, guild))

    async def _scope(self, interaction: discord.Interaction, everywhere: bool) -> int | None:
        """This guild, None for bot-wide (owner only), or -1 after refusing."""
        if not everywhere:
            return guild_id_of(interaction)
        if await self._is_owner(interaction):
            return None
        text = translate(
            locale_of(interaction), "Only the bot's owner can pause or resume it everywhere."
        )
        await interaction.response.send_message(text, ephemeral=True)
        return -1

    @staticmethod
    async def _is_owner(interaction: discord.Interaction) -> bool:
        client = interaction.client
        # AutoShardedBot is a BotBase but not a commands.Bot: check the base both share.
        return isinstance(client, BotBase) and await client.is_owner(interaction.user)


class AdminSubgroup(app_commands.Group):
    """A /flexadmin subgroup: discord.py checks only the direct parent, so check here too."""

    def __init__(self, core: Core, *, name: str, description: str) -> None:
        super().__init__(name=name, description=description)
        self.core = core

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        allowed(interaction)
        return True
