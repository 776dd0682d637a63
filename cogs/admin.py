"""/flexadmin: the server owners' group (Manage Server), with reports, pause and resume.

Subgroups live in ``cogs.admin_limits`` (limits, credit) and ``cogs.admin_access`` (access,
safety); their extensions attach them to this group, so load this one first.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.admin import LIMIT_WORDS
from bot.admin_facts import (
    AdminChange,
    BlockChanged,
    ChannelsChanged,
    CreditChanged,
    Ids,
    LimitChanged,
    PauseChanged,
    RoleChanged,
    SafetyChanged,
    SettingRow,
)
from bot.admin_report import show_limit
from bot.engine.quota import MONEY_LIMITS, LimitSource
from bot.engine.usage import UsageReport
from bot.errors import UserError
from bot.model import LimitScope, usd
from cogs.errors import Refused

if TYPE_CHECKING:
    from bot.app import FlexBot

log = logging.getLogger(__name__)

GROUP_NAME = "flexadmin"
Period = Literal["today", "month", "last30", "all"]
NO_PERMISSION = "You need the Manage Server permission to use /flexadmin."


async def reply(interaction: discord.Interaction, action: Awaitable[AdminChange]) -> None:
    """Run one admin change and answer with its outcome, or with what was wrong."""
    try:
        message = describe_change(await action)
    except UserError as exc:
        message = str(exc)
    await interaction.response.send_message(message, ephemeral=True)


def mentions(ids: Ids) -> str:
    mark = {"member": "@", "role": "@&", "channel": "#"}[ids.kind]
    return ", ".join(f"<{mark}{i}>" for i in ids.ids)


def _who(scope: LimitScope, target: int) -> str:
    return {
        LimitScope.USER: f"<@{target}>",
        LimitScope.ROLE: f"<@&{target}>",
        LimitScope.GUILD: "this server",
        LimitScope.GLOBAL: "every server",
    }[scope]


def describe_change(change: AdminChange) -> str:
    """An admin change in words, members, roles and channels as mentions."""
    where = "everywhere" if getattr(change, "everywhere", False) else "on this server"
    match change:
        case LimitChanged(name, scope, target, value, cleared):
            who = f"{LIMIT_WORDS[name]} for {_who(scope, target)}"
            if cleared:
                return f"{who} is back to the default."
            return f"{who} is now {show_limit(name, value)}."
        case CreditChanged(user, amount, True, _):
            return f"Granted {usd(amount)} of credit to <@{user}> for this month."
        case CreditChanged(user, amount, False, left):
            return f"Revoked {usd(amount)} of credit from <@{user}>; {usd(left or 0)} left."
        case BlockChanged(user, True, _):
            return f"<@{user}> can no longer use Flexbot {where}."
        case BlockChanged(user, False, _):
            return f"<@{user}> can use Flexbot {where} again."
        case PauseChanged(True, _):
            return f"Flexbot is paused {where}; jobs already queued still run."
        case PauseChanged(False, _):
            return f"Flexbot takes edits {where} again."
        case ChannelsChanged(()):
            return "Flexbot now answers in every channel."
        case ChannelsChanged(channels):
            return f"Flexbot now answers only in {mentions(Ids('channel', channels))}."
        case RoleChanged(None):
            return "No role is needed to use Flexbot any more."
        case RoleChanged(role):
            return f"Members now need <@&{role}> to use Flexbot."
        case SafetyChanged(channel, None, _):
            return f"<#{channel}> follows the server's safety default again."
        case SafetyChanged(channel, tolerance, checker_off):
            place = "this server's default" if channel is None else f"<#{channel}>"
            checker = (
                " The checker may be switched off (age-restricted channels only)."
                if checker_off
                else " The safety checker stays on."
            )
            return f"Highest safety tolerance for {place} is now {tolerance}.{checker}"
    raise AssertionError(f"unknown admin change {change!r}")


def guild_id_of(interaction: discord.Interaction) -> int:
    assert interaction.guild_id is not None  # guild_only group
    return interaction.guild_id


def render_report(report: UsageReport) -> discord.Embed:
    t = report.totals
    embed = discord.Embed(title=f"Flexbot usage: {report.period.label}", colour=0x5865F2)
    embed.description = (
        f"**{usd(t.spent_micros)}** spent ({usd(t.charged_micros)} charged, "
        f"{usd(t.held_micros)} held for running jobs)\n"
        f"{t.jobs} jobs: {t.delivered} delivered, {t.failed} failed, {t.cancelled} cancelled"
    )
    members = [f"<@{b.key}> · {usd(b.spent_micros)} · {b.jobs} jobs" for b in report.top_members]
    channels = [
        f"{f'<#{b.key}>' if b.key else 'no channel'} · {usd(b.spent_micros)} · {b.jobs} jobs"
        for b in report.channels
    ]
    embed.add_field(name="Top members", value="\n".join(members) or "none", inline=False)
    embed.add_field(name="Channels", value="\n".join(channels) or "none", inline=False)
    return embed


def render_audit_detail(detail: dict[str, Any]) -> str:
    """An audit row's details for people: members, roles and channels as mentions, money in $."""
    scope = detail.get("scope")
    money = detail.get("name") in MONEY_LIMITS

    def show(key: str, value: Any) -> str | None:
        if value is None or (key == "target" and scope in ("guild", "global")):
            return None
        if key == "user" or (key == "target" and scope == "user"):
            return f"<@{value}>"
        if key == "role" or (key == "target" and scope == "role"):
            return f"<@&{value}>"
        if key == "channel":
            return f"<#{value}>"
        if key == "channels" and isinstance(value, list):
            return ",".join(f"<#{c}>" for c in value) or "all"
        if key == "amount" or (key == "value" and money):
            return usd(int(value))
        return str(value)

    shown = ((k, show(k, v)) for k, v in detail.items())
    return " ".join(f"{k}={v}" for k, v in shown if v is not None)


def _shown(value: str | Ids | LimitSource) -> str:
    if isinstance(value, Ids):
        return mentions(value)
    if isinstance(value, LimitSource):
        scope = value.scope or LimitScope.GUILD
        who = {
            LimitScope.ROLE: f"role <@&{value.target_id}>",
            LimitScope.USER: f"<@{value.target_id}>",
        }
        return f"{who.get(scope, 'server')} override"
    return value


def render_settings(rows: list[SettingRow]) -> str:
    return "\n".join(f"{r.key} = {_shown(r.value)}  ({_shown(r.source)})" for r in rows)


class FlexAdmin(app_commands.Group):
    """Server owners' controls; every change is recorded with who made it."""

    def __init__(self, bot: FlexBot) -> None:
        super().__init__(
            name=GROUP_NAME,
            description="Flexbot budgets, access, safety and reports (Manage Server).",
            guild_only=True,
            default_permissions=discord.Permissions(manage_guild=True),
        )
        self.bot = bot

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        # default_permissions is only a default the server can change; this is the real check.
        if interaction.guild is not None and interaction.permissions.manage_guild:
            return True
        raise Refused(NO_PERMISSION)  # answered by the tree's on_error (cogs.errors)

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        if type(self.bot.tree).on_error is not app_commands.CommandTree.on_error:
            return  # cogs.errors answers and logs
        if isinstance(error, Refused) and not interaction.response.is_done():
            await interaction.response.send_message(error.message, ephemeral=True)
        else:
            log.error("/%s failed", GROUP_NAME, exc_info=error)

    @app_commands.command(name="usage", description="Totals, top members and channels.")
    @app_commands.describe(period="today, this month (default), last 30 days, or all time")
    async def usage(self, interaction: discord.Interaction, period: Period = "month") -> None:
        report = await self.bot.core.admin.usage_report(guild_id_of(interaction), period)
        await interaction.response.send_message(embed=render_report(report), ephemeral=True)

    @app_commands.command(name="export", description="Every job and its cost as a CSV file.")
    @app_commands.describe(period="today, this month (default), last 30 days, or all time")
    async def export(self, interaction: discord.Interaction, period: Period = "month") -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        text = await self.bot.core.admin.export_csv(guild_id_of(interaction), period)
        name = f"flexbot-usage-{period}.csv"
        await interaction.edit_original_response(
            content=f"Usage export ({period}); `amount_usd` sums to what was spent.",
            attachments=[discord.File(io.BytesIO(text.encode()), filename=name)],
        )

    @app_commands.command(name="settings", description="Every effective setting and its source.")
    async def settings(self, interaction: discord.Interaction) -> None:
        rows = await self.bot.core.admin.settings_report(guild_id_of(interaction))
        text = render_settings(rows)
        if len(text) <= 1900:
            await interaction.response.send_message(f"```\n{text}\n```", ephemeral=True)
            return
        overrides = [r for r in rows if r.source != "default"]
        await interaction.response.send_message(
            f"{len(rows)} settings, {len(overrides)} not at their default; full list attached.",
            file=discord.File(io.BytesIO(text.encode()), filename="flexbot-settings.txt"),
            ephemeral=True,
        )

    @app_commands.command(name="audit", description="The latest admin changes and who made them.")
    async def audit(self, interaction: discord.Interaction) -> None:
        rows = await self.bot.core.admin.audit_log(guild_id_of(interaction), 15)
        lines = [
            f"<t:{int(r.created_at)}:R> <@{r.actor_id}> {r.action} {render_audit_detail(r.detail)}"
            for r in rows
        ]
        await interaction.response.send_message(
            "\n".join(lines)[:1900] or "No admin changes yet.", ephemeral=True
        )

    @app_commands.command(name="pause", description="Refuse new edits (running ones finish).")
    @app_commands.describe(everywhere="Pause the whole bot (bot owner only)", reason="Why")
    async def pause(
        self, interaction: discord.Interaction, everywhere: bool = False, reason: str | None = None
    ) -> None:
        guild = await self._scope(interaction, everywhere)
        if guild != -1:
            await reply(interaction, self.bot.core.admin.pause(interaction.user.id, guild, reason))

    @app_commands.command(name="resume", description="Take new edits again.")
    @app_commands.describe(everywhere="Resume the whole bot (bot owner only)")
    async def resume(self, interaction: discord.Interaction, everywhere: bool = False) -> None:
        guild = await self._scope(interaction, everywhere)
        if guild != -1:
            await reply(interaction, self.bot.core.admin.resume(interaction.user.id, guild))

    async def _scope(self, interaction: discord.Interaction, everywhere: bool) -> int | None:
        """This guild, None for bot-wide (owner only), or -1 after refusing."""
        if not everywhere:
            return guild_id_of(interaction)
        if await self.bot.is_owner(interaction.user):
            return None
        await interaction.response.send_message(
            "Only the bot's owner can pause or resume it everywhere.", ephemeral=True
        )
        return -1


class AdminSubgroup(app_commands.Group):
    """A /flexadmin subgroup: discord.py checks only the direct parent, so defer to /flexadmin."""

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        parent = self.parent
        if parent is None:
            raise Refused(NO_PERMISSION)
        return await parent.interaction_check(interaction)


def flexadmin_group(bot: commands.Bot) -> FlexAdmin:
    """The registered /flexadmin group, for the extensions that add subgroups to it."""
    group = bot.tree.get_command(GROUP_NAME)
    if not isinstance(group, FlexAdmin):
        raise commands.ExtensionFailed(GROUP_NAME, RuntimeError("load cogs.admin first"))
    return group


async def setup(bot: FlexBot) -> None:
    bot.tree.add_command(FlexAdmin(bot))


async def teardown(bot: FlexBot) -> None:
    bot.tree.remove_command(GROUP_NAME)
