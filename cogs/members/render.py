"""Pure rendering of the member commands: /queue lines and the /usage embed, in the member's
language (``locale`` as Discord sends it; money, dates and waits formatted for it). No network."""

from __future__ import annotations

import discord

from bot.engine import usage
from bot.engine.quota import LimitSource
from bot.i18n import Duration, Money, Text, translate
from bot.model import JobState, LimitScope
from bot.settings import UNLIMITED

MAX_SHOWN = 25  # Discord's limit of options in one select
CHART_NAME = "usage.png"

#: The /usage heading of each cap (``CapLine.name``).
CAP_LABELS = {
    "user_daily_cap": "Your daily budget",
    "user_monthly_cap": "Your monthly budget",
    "guild_monthly_cap": "This server's monthly budget",
    "global_monthly_cap": "The bot's monthly budget",
}


def describe_entry(entry: usage.QueueEntry, locale: str | None = None) -> str:
    job = entry.job
    prompt = job.params.prompt if len(job.params.prompt) <= 40 else job.params.prompt[:39] + "…"
    if job.state == JobState.QUEUED:
        when = (
            translate(locale, "starts now")
            if not entry.eta_seconds
            else translate(locale, "starts in ~{wait}", wait=Duration(entry.eta_seconds))
        )
        where = translate(
            locale,
            "queued, position {position}, {when}",
            position=(entry.position or 0) + 1,
            when=when,
        )
    elif job.state == JobState.FETCHED:
        where = translate(locale, "finished, being posted")
    else:
        where = translate(locale, "running at fal")
    return translate(
        locale,
        "#{job} · {where} · about {cost} · “{prompt}”",
        job=job.id,
        where=where,
        cost=Money(job.estimate_micros),
        prompt=prompt,
    )


def render_queue(entries: list[usage.QueueEntry], locale: str | None = None) -> str:
    if not entries:
        return translate(locale, "You have no queued or running edits.")
    lines = [describe_entry(e, locale) for e in entries[:MAX_SHOWN]]
    if len(entries) > MAX_SHOWN:
        lines.append(translate(locale, "…and {count} more.", count=len(entries) - MAX_SHOWN))
    return f"**{translate(locale, 'Your edits')}**\n" + "\n".join(lines)


def limit_source(source: LimitSource, locale: str | None = None) -> str:
    """Where a limit's value came from, for /usage."""
    if source.scope == LimitScope.USER:
        return translate(locale, "member override")
    if source.scope == LimitScope.ROLE:
        return translate(locale, "role {role}", role=f"<@&{source.target_id}>")
    if source.scope == LimitScope.GUILD:
        return translate(locale, "server setting")
    if source.scope == LimitScope.GLOBAL:
        return translate(locale, "bot-wide override")
    return translate(locale, "default")


def render_usage(mu: usage.MemberUsage, now: float, locale: str | None = None) -> discord.Embed:
    """The /usage embed: one field per cap, with what is left and when it resets."""
    embed = discord.Embed(
        title=translate(locale, "Your Flexbot usage"), colour=discord.Colour.blurple()
    )
    spent = translate(
        locale,
        "Today: **{today}** · This month: **{month}**",
        today=Money(mu.today_micros),
        month=Money(mu.month_micros),
    )
    if mu.credit_micros:
        credit = Money(mu.credit_micros)
        spent += " · " + translate(locale, "Credit this month: {credit}", credit=credit)
    counts = translate(
        locale, "Queued: {queued} · Running: {running}", queued=mu.queued, running=mu.running
    )
    embed.description = f"{spent}\n{counts}"
    for cap in mu.caps:
        at = int(cap.resets_at.timestamp())
        resets = translate(
            locale, "resets {when} ({wait})", when=f"<t:{at}:R>", wait=Duration(at - now)
        )
        if cap.cap_micros is None:
            value = translate(
                locale,
                "{spent} spent · no cap ({unlimited})",
                spent=Money(cap.spent_micros),
                unlimited=UNLIMITED,
            )
        else:
            value = translate(
                locale,
                "{spent} of {total} · **{left} left** · {resets}",
                spent=Money(cap.spent_micros),
                total=Money(cap.cap_micros + cap.credit_micros),
                left=Money(cap.remaining_micros or 0),
                resets=resets,
            )
        label = Text(CAP_LABELS.get(cap.name, cap.label))
        name = translate(
            locale, "{label} ({source})", label=label, source=limit_source(cap.source, locale)
        )
        embed.add_field(name=name, value=value, inline=False)
    if mu.recent:
        lines = [
            translate(
                locale,
                "#{job} {state} · {amount}",
                job=j.id,
                state=Text(j.state.value),
                amount=Money(j.held_micros + j.charged_micros),
            )
            for j in mu.recent
        ]
        embed.add_field(
            name=translate(locale, "Recent edits"), value="\n".join(lines), inline=False
        )
    embed.set_image(url=f"attachment://{CHART_NAME}")
    return embed
