"""Pure rendering of /flexadmin answers: facts from the core -> mentions, dollars, embeds.

Every answer is private, so it is in the admin's own Discord locale (``locale``; None is
English), money and dates formatted for it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import discord
from babel.dates import format_date, format_skeleton

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
    Shown,
)
from bot.admin_report import show_limit
from bot.engine.quota import MONEY_LIMITS, LimitSource
from bot.engine.usage import UsageReport
from bot.i18n import (
    ENGLISH,
    Money,
    Text,
    catalogues,
    format_money,
    language_of,
    translate,
)
from bot.model import AuditRow, LimitScope, usd
from bot.params import ChannelDefaults
from bot.prompt_filter import Hit
from bot.reconcile import CheckSummary


def mentions(ids: Ids) -> str:
    mark = {"member": "@", "role": "@&", "channel": "#"}[ids.kind]
    return ", ".join(f"<{mark}{i}>" for i in ids.ids)


def _who(scope: LimitScope, target: int) -> Text | str:
    who: dict[LimitScope, Text | str] = {
        LimitScope.USER: f"<@{target}>",
        LimitScope.ROLE: f"<@&{target}>",
        LimitScope.GUILD: Text("this server"),
        LimitScope.GLOBAL: Text("every server"),
    }
    return who[scope]


def limit_words(name: str, locale: str | None) -> str:
    """A limit's name for people (the /flexadmin limit choice's own words)."""
    words = LIMIT_WORDS.get(name, name)
    return catalogues().lookup(language_of(locale), words, "choice") or words


def show_value(name: str, value: int | None, locale: str | None) -> str:
    """A limit's value in the reader's format: money for caps, "unlimited" for None."""
    if value is None:
        return translate(locale, "unlimited")
    if name in MONEY_LIMITS:
        return format_money(value, language_of(locale))
    return show_limit(name, value)


def describe_change(change: AdminChange, locale: str | None = None) -> str:
    """An admin change in the admin's words, members, roles and channels as mentions."""
    everywhere = getattr(change, "everywhere", False)

    def t(msgid: str, **params: object) -> str:
        return translate(locale, msgid, **params)

    match change:
        case LimitChanged(name, scope, target, value, cleared):
            limit, who = limit_words(name, locale), _who(scope, target)
            if cleared:
                return t("{limit} for {who} is back to the default.", limit=limit, who=who)
            return t(
                "{limit} for {who} is now {value}.",
                limit=limit,
                who=who,
                value=show_value(name, value, locale),
            )
        case CreditChanged(user, amount, True, _):
            return t(
                "Granted {amount} of credit to {member} for this month.",
                amount=Money(amount),
                member=f"<@{user}>",
            )
        case CreditChanged(user, amount, False, left):
            return t(
                "Revoked {amount} of credit from {member}; {left} left.",
                amount=Money(amount),
                member=f"<@{user}>",
                left=Money(left or 0),
            )
        case BlockChanged(user, True, _):
            template = (
                "{member} can no longer use Flexbot anywhere."
                if everywhere
                else "{member} can no longer use Flexbot on this server."
            )
            return t(template, member=f"<@{user}>")
        case BlockChanged(user, False, _):
            template = (
                "{member} can use Flexbot everywhere again."
                if everywhere
                else "{member} can use Flexbot on this server again."
            )
            return t(template, member=f"<@{user}>")
        case PauseChanged(True, _):
            if everywhere:
                return t("Flexbot is paused everywhere; jobs already queued still run.")
            return t("Flexbot is paused on this server; jobs already queued still run.")
        case PauseChanged(False, _):
            if everywhere:
                return t("Flexbot takes edits everywhere again.")
            return t("Flexbot takes edits on this server again.")
        case ChannelsChanged(()):
            return t("Flexbot now answers in every channel.")
        case ChannelsChanged(channels):
            return t(
                "Flexbot now answers only in {channels}.",
                channels=mentions(Ids("channel", channels)),
            )
        case RoleChanged(None):
            return t("No role is needed to use Flexbot any more.")
        case RoleChanged(role):
            return t("Members now need {role} to use Flexbot.", role=f"<@&{role}>")
        case SafetyChanged(channel, None, _):
            return t(
                "{channel} follows the server's safety default again.", channel=f"<#{channel}>"
            )
        case SafetyChanged(channel, tolerance, checker_off):
            checker = (
                t("The checker may be switched off (age-restricted channels only).")
                if checker_off
                else t("The safety checker stays on.")
            )
            if channel is None:
                text = t(
                    "Highest safety tolerance for this server's default is now {tolerance}.",
                    tolerance=tolerance,
                )
            else:
                text = t(
                    "Highest safety tolerance for {channel} is now {tolerance}.",
                    channel=f"<#{channel}>",
                    tolerance=tolerance,
                )
            return f"{text} {checker}"
        case FilterChanged(kind, term, added, changed):
            templates = {
                (True, True): FILTER_ADDED,
                (True, False): FILTER_ALREADY,
                (False, True): FILTER_REMOVED,
                (False, False): FILTER_MISSING,
            }[(added, changed)]
            return t(templates[kind], term=term)
        case FlaggedChanged(channel, show):
            template = FLAGGED_SPOILER if show == "spoiler" else FLAGGED_HIDE
            return t(template, channel=f"<#{channel}>")
        case DefaultsChanged(channel, defaults) if defaults.empty:
            return t(DEFAULTS_CLEARED, channel=f"<#{channel}>")
        case DefaultsChanged(channel, defaults):
            return t(
                DEFAULTS_SET, channel=f"<#{channel}>", defaults=show_defaults(defaults, locale)
            )
    raise AssertionError(f"unknown admin change {change!r}")


# Admin-facing words about issue 14's controls (msgids of the message catalogues), by kind.
FILTER_ADDED = {
    "word": "Prompts holding the word “{term}” are now refused on this server.",
    "pattern": "Prompts matching the pattern “{term}” are now refused on this server.",
}
FILTER_ALREADY = {
    "word": "The word “{term}” was already blocked.",
    "pattern": "The pattern “{term}” was already blocked.",
}
FILTER_REMOVED = {
    "word": "The word “{term}” is no longer blocked.",
    "pattern": "The pattern “{term}” is no longer blocked.",
}
FILTER_MISSING = {
    "word": "“{term}” is not a blocked word here; see /flexadmin filter list.",
    "pattern": "“{term}” is not a blocked pattern here; see /flexadmin filter list.",
}
FLAGGED_HIDE = "Images fal's safety checker flags are not shown in {channel} (the member is told)."
FLAGGED_SPOILER = "Images fal's safety checker flags are shown behind a spoiler in {channel}."
DEFAULTS_SET = "Edits in {channel} now default to {defaults}; members' own options still win."
DEFAULTS_CLEARED = "Edits in {channel} use the bot's defaults again."
FILTER_LIST = "Blocked words: {words}\nBlocked patterns: {patterns}"
FILTER_BOT_WIDE = "The bot's owner also blocks {count} term(s) on every server."
FILTER_NONE = "none"
FILTER_PASSES = "That prompt passes the filter here."
FILTER_BLOCKS = {
    ("word", False): "That prompt would be refused: it holds “{term}” (this server's word).",
    ("pattern", False): "That prompt would be refused: it holds “{term}” (this server's pattern).",
    ("word", True): "That prompt would be refused: it holds “{term}” (a bot-wide word).",
    ("pattern", True): "That prompt would be refused: it holds “{term}” (a bot-wide pattern).",
}
#: The names of a channel's defaults, in ChannelDefaults order.
DEFAULT_NAMES = ("steps", "guidance", "size", "format", "safety")
DEFAULT_LABELS = {
    "steps": "steps {value}",
    "guidance": "guidance {value}",
    "size": "size {value}",
    "format": "format {value}",
    "safety": "safety {value}",
}


def show_defaults(defaults: ChannelDefaults, locale: str | None = None) -> str:
    """``steps 12, size 1024x768`` for the defaults set."""
    return ", ".join(
        translate(
            locale, DEFAULT_LABELS[name], value=f"{value:g}" if isinstance(value, float) else value
        )
        for name, value in zip(DEFAULT_NAMES, defaults.as_tuple(), strict=True)
        if value is not None
    )


def render_filter_list(listed: FilterList, locale: str | None = None) -> str:
    none = translate(locale, FILTER_NONE)
    words = ", ".join(f"“{w}”" for w in listed.words) or none
    patterns = ", ".join(f"`{p}`" for p in listed.patterns) or none
    text = translate(locale, FILTER_LIST, words=words, patterns=patterns)
    if listed.bot_wide:
        text += "\n" + translate(locale, FILTER_BOT_WIDE, count=listed.bot_wide)
    return text[:1900]


def render_filter_test(hit: Hit | None, locale: str | None = None) -> str:
    if hit is None:
        return translate(locale, FILTER_PASSES)
    template = FILTER_BLOCKS[(hit.term.kind, hit.term.everywhere)]
    return translate(locale, template, term=hit.shown)


def render_report(report: UsageReport, locale: str | None = None) -> discord.Embed:
    t = report.totals

    def tr(msgid: str, **params: object) -> str:
        return translate(locale, msgid, **params)

    embed = discord.Embed(
        title=tr(
            "Flexbot usage: {period}",
            period=period_label(report.period.label, report.period.since, locale),
        ),
        colour=0x5865F2,
    )
    spent = tr(
        "**{spent}** spent ({charged} charged, {held} held for running jobs)",
        spent=Money(t.spent_micros),
        charged=Money(t.charged_micros),
        held=Money(t.held_micros),
    )
    counts = tr(
        "{jobs} jobs: {delivered} delivered, {failed} failed, {cancelled} cancelled",
        jobs=t.jobs,
        delivered=t.delivered,
        failed=t.failed,
        cancelled=t.cancelled,
    )
    embed.description = f"{spent}\n{counts}"
    line = "{who} · {spent} · {jobs} jobs"
    members = [
        tr(line, who=f"<@{b.key}>", spent=Money(b.spent_micros), jobs=b.jobs)
        for b in report.top_members
    ]
    channels = [
        tr(
            line,
            who=f"<#{b.key}>" if b.key else Text("no channel"),
            spent=Money(b.spent_micros),
            jobs=b.jobs,
        )
        for b in report.channels
    ]
    none = tr("none")
    embed.add_field(name=tr("Top members"), value="\n".join(members) or none, inline=False)
    embed.add_field(name=tr("Channels"), value="\n".join(channels) or none, inline=False)
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


def _shown(value: Shown | LimitSource, locale: str | None) -> str:
    if isinstance(value, Ids):
        return mentions(value)
    if isinstance(value, Text):
        return translate(locale, value.msgid, **value.params)
    if isinstance(value, LimitSource):
        scope = value.scope or LimitScope.GUILD
        if scope == LimitScope.ROLE:
            return translate(locale, "role {role} override", role=f"<@&{value.target_id}>")
        if scope == LimitScope.USER:
            return translate(locale, "{member} override", member=f"<@{value.target_id}>")
        return translate(locale, "server override")
    return translate(locale, value)  # the fixed words (default, server, none, yes...) translate


def render_settings(rows: list[SettingRow], locale: str | None = None) -> str:
    """One line per setting: its name (as in the settings file), value and source."""
    return "\n".join(
        f"{r.key} = {_shown(r.value, locale)}  ({_shown(r.source, locale)})" for r in rows
    )


def render_audit_line(row: AuditRow) -> str:
    """One audit row: when, who, what (the action and its details as recorded)."""
    detail = render_audit_detail(row.detail)
    return f"<t:{int(row.created_at)}:R> <@{row.actor_id}> {row.action} {detail}"


def render_reconcile(summary: CheckSummary, locale: str | None = None) -> str:
    """The last reconciliation: the whole bot for its owner, one server's jobs for its admins."""

    def t(msgid: str, **params: object) -> str:
        return translate(locale, msgid, **params)

    failed = ""
    if summary.failure:
        # The failure is fal's or the network's own words, shown as they came.
        failed = "\n" + t("The latest attempt failed: {failure}.", failure=summary.failure)
    if summary.checked_at is None or summary.start is None:
        return t("Flexbot has not finished a check against fal's records yet.") + failed
    when = f"<t:{int(summary.checked_at)}:R>"
    if not summary.bot_wide:
        found = (
            t("no differences")
            if summary.differences == 0
            else t(
                "{count} job(s) charged differently from what fal recorded ({unlisted} that "
                "fal does not list, {priced} at another price); the bot owner has the details",
                count=summary.differences,
                unlisted=summary.unlisted,
                priced=summary.price_differences,
            )
        )
        return (
            t(
                "Last check of this server's jobs against fal's records ({when}, this month): "
                "{found}.",
                when=when,
                found=found,
            )
            + failed
        )
    since = summary.start
    lines = [
        t(
            "Last check {when}, whole bot, since {since}: {matched} job(s) matched fal's records.",
            when=when,
            since=_day(since, locale),
            matched=summary.matched,
        ),
        "- "
        + t(
            "{orphans} request(s) fal ran and billed that no job records ({amount})",
            orphans=summary.orphans,
            amount=Money(summary.orphan_micros),
        ),
        "- " + t("{count} charged job(s) fal has no record of", count=summary.unlisted),
        "- "
        + t("{count} job(s) charged differently from fal's price", count=summary.price_differences),
    ]
    if summary.differences:
        lines.append(t("Run `flexbot reconcile` on the bot's host for each one."))
    return "\n".join(lines) + failed


def _babel(locale: str | None) -> str:
    language = language_of(locale)
    return "en_US" if language == ENGLISH else language


def _day(at: datetime, locale: str | None) -> str:
    if language_of(locale) == ENGLISH:
        return f"{at:%Y-%m-%d}"
    return format_date(at, "medium", locale=_babel(locale))


#: The report periods with fixed names (the month's name is the locale's own).
PERIOD_LABELS = ("today (UTC)", "the last 30 days", "all time")


def period_label(label: str, since: float, locale: str | None) -> str:
    """``March 2026 (UTC)``, ``März 2026 (UTC)``, ``the last 30 days``."""
    if label in PERIOD_LABELS or language_of(locale) == ENGLISH:
        return translate(locale, label)
    month = format_skeleton("yMMMM", datetime.fromtimestamp(since, UTC), locale=_babel(locale))
    return f"{month} (UTC)"
