"""The /flexadmin settings report: what a server's admins may see of the settings, and where
each value comes from."""

from __future__ import annotations

from bot.admin_facts import Ids, SettingRow
from bot.engine import quota
from bot.engine.quota import MONEY_LIMITS
from bot.i18n import Text
from bot.model import DEFAULT_SAFETY_TOLERANCE, LimitScope, usd
from bot.settings import UNLIMITED, Settings
from bot.store import access as access_repo
from bot.store import channels as channels_repo
from bot.store import filters as filters_repo
from bot.store import limits as limits_repo
from bot.store import policy as policy_repo
from bot.store.db import Database

#: A safety row's value (msgids: the /flexadmin cog shows them in the admin's language).
CHECKER_ON = "tolerance ≤ {tolerance}, checker on"
CHECKER_MAY_BE_OFF = "tolerance ≤ {tolerance}, checker may be off (age-restricted)"


def show_limit(name: str, value: int | None) -> str:
    """A limit's value for people: dollars for money caps, "unlimited" for None."""
    if value is None:
        return UNLIMITED
    return usd(value) if name in MONEY_LIMITS else str(value)


async def settings_report(
    db: Database, settings: Settings, guild_id: int | None
) -> list[SettingRow]:
    """The settings a server's admins may see, then the overrides that apply to this server.

    Only ``describe_for_admins`` rows: the operator's paths, URLs, hosts, secrets and sync
    guilds stay with ``flexbot doctor``. Overrides are the owner's bot-wide ones for those
    same settings and this server's own; other servers' rows are never read.
    """
    visible = settings.describe_for_admins()
    rows = [SettingRow(k, v, s) for k, v, s in visible]
    shown = {k for k, _, _ in visible}
    owner_rows = await limits_repo.guild_overrides(db, limits_repo.GLOBAL)
    overrides = [(o.scope, o.target_id, o.name, o.value) for o in owner_rows]
    owner = quota.owner_limits(quota.default_limits(settings), overrides)
    for o in owner_rows:
        if o.scope == LimitScope.GLOBAL and o.name in shown:
            rows.append(SettingRow(o.name, show_limit(o.name, o.value), "bot-wide override"))
    if guild_id is None:
        return rows
    for o in await limits_repo.guild_overrides(db, guild_id):
        if o.name not in shown:
            continue
        source = quota.LimitSource(o.scope, o.target_id)
        rows.append(SettingRow(o.name, _bounded(o.name, o.value, owner[o.name]), source))
    return rows + await _access_rows(db, guild_id)


def _bounded(name: str, stored: int | None, bound: int | None) -> str:
    """An override as it applies: one stored past the owner's bound shows what applies instead."""
    applies = quota.within_owner_bound(name, stored, bound)
    if applies == stored:
        return show_limit(name, stored)
    return f"{show_limit(name, applies)} (owner's limit; {show_limit(name, stored)} was set)"


async def _access_rows(db: Database, guild_id: int) -> list[SettingRow]:
    """The settings report's lines for channels, role, safety, pause and blocks."""
    channels = await policy_repo.allowed_channels(db, guild_id)
    role = await policy_repo.required_role(db, guild_id)
    rows = [
        SettingRow(
            "allowed_channels",
            Ids("channel", tuple(channels)) if channels else "all",
            "server" if channels else "default",
        ),
        SettingRow(
            "required_role",
            Ids("role", (role,)) if role else "none",
            "server" if role else "default",
        ),
    ]
    safety = await policy_repo.safety_rows(db, guild_id)
    if not any(r.channel_id == policy_repo.GUILD_DEFAULT for r in safety):
        rows.append(
            SettingRow(
                "safety",
                Text(CHECKER_ON, {"tolerance": DEFAULT_SAFETY_TOLERANCE}),
                "default",
            )
        )
    for r in safety:
        server = r.channel_id == policy_repo.GUILD_DEFAULT
        checker = CHECKER_MAY_BE_OFF if r.checker_off_allowed else CHECKER_ON
        rows.append(
            SettingRow(
                "safety",
                Text(checker, {"tolerance": r.max_tolerance}),
                "server" if server else Ids("channel", (r.channel_id,)),
            )
        )
    paused = await access_repo.paused_scopes(db, guild_id)
    everywhere = limits_repo.GLOBAL in paused
    where = ("bot-wide" if everywhere else "server") if paused else "default"
    rows.append(SettingRow("paused", "yes" if paused else "no", where))
    blocked = await access_repo.blocked_users(db, guild_id)
    rows.append(SettingRow("blocked_members", str(len(blocked)), "server"))
    return rows + await _community_rows(db, guild_id)


async def _community_rows(db: Database, guild_id: int) -> list[SettingRow]:
    """The settings report's lines for the prompt filter and each channel's own settings."""
    terms = await filters_repo.terms(db, guild_id)
    words = sum(1 for t in terms if t.kind == "word")
    rows = [
        SettingRow(
            "prompt_filter",
            Text(
                "{words} word(s), {patterns} pattern(s)",
                {"words": words, "patterns": len(terms) - words},
            ),
            "server" if terms else "default",
        )
    ]
    for channel in await channels_repo.guild_channels(db, guild_id):
        where = Ids("channel", (channel.channel_id,))
        if channel.has_defaults:
            shown = ", ".join(
                f"{name} {value}"
                for name, value in (
                    ("steps", channel.steps),
                    ("guidance", None if channel.guidance is None else f"{channel.guidance:g}"),
                    ("size", channel.size),
                    ("format", channel.output_format),
                    ("safety", channel.safety),
                )
                if value is not None
            )
            rows.append(SettingRow("channel_defaults", shown, where))
        if channel.flagged_output != "hide":
            rows.append(SettingRow("flagged_output", channel.flagged_output, where))
    return rows
