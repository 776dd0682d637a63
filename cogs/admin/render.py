"""Pure rendering of /flexadmin answers: facts from the core -> mentions, dollars, embeds."""

from __future__ import annotations

from typing import Any

import discord

from bot.admin import LIMIT_WORDS
from bot.admin_community import FilterList
from bot.admin_facts import (
    AdminChange,
    BlockChanged,
    ChannelsChanged,
    CreditChanged,
    DefaultsChanged,
    FilterChanged,
    FlaggedChanged,
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
from bot.model import AuditRow, LimitScope, usd
from bot.params import ChannelDefaults
from bot.prompt_filter import Hit
from bot.reconcile import CheckSummary


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
        case FilterChanged(kind, term, added, changed):
            template = {
                (True, True): FILTER_ADDED,
                (True, False): FILTER_ALREADY,
                (False, True): FILTER_REMOVED,
                (False, False): FILTER_MISSING,
            }[(added, changed)]
            return template.format(kind=kind, term=term)
        case FlaggedChanged(channel, show):
            template = FLAGGED_SPOILER if show == "spoiler" else FLAGGED_HIDE
            return template.format(channel=f"<#{channel}>")
        case DefaultsChanged(channel, defaults) if defaults.empty:
            return DEFAULTS_CLEARED.format(channel=f"<#{channel}>")
        case DefaultsChanged(channel, defaults):
            return DEFAULTS_SET.format(channel=f"<#{channel}>", defaults=show_defaults(defaults))
    raise AssertionError(f"unknown admin change {change!r}")


# Admin-facing words about issue 14's controls (templates for the message catalogues).
FILTER_ADDED = "Prompts holding the {kind} “{term}” are now refused on this server."
FILTER_ALREADY = "The {kind} “{term}” was already blocked."
FILTER_REMOVED = "The {kind} “{term}” is no longer blocked."
FILTER_MISSING = "“{term}” is not a blocked {kind} here; see /flexadmin filter list."
FLAGGED_HIDE = "Images fal's safety checker flags are not shown in {channel} (the member is told)."
FLAGGED_SPOILER = "Images fal's safety checker flags are shown behind a spoiler in {channel}."
DEFAULTS_SET = "Edits in {channel} now default to {defaults}; members' own options still win."
DEFAULTS_CLEARED = "Edits in {channel} use the bot's defaults again."
FILTER_LIST = "Blocked words: {words}\nBlocked patterns: {patterns}"
FILTER_BOT_WIDE = "\nThe bot's owner also blocks {count} term(s) on every server."
FILTER_NONE = "none"
FILTER_PASSES = "That prompt passes the filter here."
FILTER_BLOCKS = "That prompt would be refused: it holds “{term}” ({source} {kind})."


def show_defaults(defaults: ChannelDefaults) -> str:
    """``steps 12, size 1024x768`` for the defaults set."""
    names = ("steps", "guidance", "size", "format", "safety")
    return ", ".join(
        f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}"
        for name, value in zip(names, defaults.as_tuple(), strict=True)
        if value is not None
    )


def render_filter_list(listed: FilterList) -> str:
    words = ", ".join(f"“{w}”" for w in listed.words) or FILTER_NONE
    patterns = ", ".join(f"`{p}`" for p in listed.patterns) or FILTER_NONE
    text = FILTER_LIST.format(words=words, patterns=patterns)
    if listed.bot_wide:
        text += FILTER_BOT_WIDE.format(count=listed.bot_wide)
    return text[:1900]


def render_filter_test(hit: Hit | None) -> str:
    if hit is None:
        return FILTER_PASSES
    source = "bot-wide" if hit.term.everywhere else "this server's"
    return FILTER_BLOCKS.format(term=hit.shown, source=source, kind=hit.term.kind)


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


def render_audit_line(row: AuditRow) -> str:
    """One audit row: when, who, what."""
    detail = render_audit_detail(row.detail)
    return f"<t:{int(row.created_at)}:R> <@{row.actor_id}> {row.action} {detail}"


def render_reconcile(summary: CheckSummary) -> str:
    """The last reconciliation: the whole bot for its owner, one server's jobs for its admins."""
    failed = f"\nThe latest attempt failed: {summary.failure}." if summary.failure else ""
    if summary.checked_at is None or summary.start is None:
        return "Flexbot has not finished a check against fal's records yet." + failed
    when = f"<t:{int(summary.checked_at)}:R>"
    if not summary.bot_wide:
        found = (
            "no differences"
            if summary.differences == 0
            else f"{summary.differences} job(s) charged differently from what fal recorded "
            f"({summary.unlisted} that fal does not list, {summary.price_differences} at "
            "another price); the bot owner has the details"
        )
        return (
            f"Last check of this server's jobs against fal's records ({when}, this month): "
            f"{found}.{failed}"
        )
    lines = [
        f"Last check {when}, whole bot, since {summary.start:%Y-%m-%d}: "
        f"{summary.matched} job(s) matched fal's records.",
        f"- {summary.orphans} request(s) fal ran and billed that no job records "
        f"({usd(summary.orphan_micros)})",
        f"- {summary.unlisted} charged job(s) fal has no record of",
        f"- {summary.price_differences} job(s) charged differently from fal's price",
    ]
    if summary.differences:
        lines.append("Run `flexbot reconcile` on the bot's host for each one.")
    return "\n".join(lines) + failed
