"""Pure rendering of the member commands: /queue lines and the /usage embed. No network."""

from __future__ import annotations

import discord

from bot.engine import usage
from bot.engine.quota import LimitSource, humanize_delta
from bot.model import JobState, LimitScope, usd
from bot.settings import UNLIMITED

MAX_SHOWN = 25  # Discord's limit of options in one select
CHART_NAME = "usage.png"


def describe_entry(entry: usage.QueueEntry) -> str:
    job = entry.job
    prompt = job.params.prompt if len(job.params.prompt) <= 40 else job.params.prompt[:39] + "…"
    if job.state == JobState.QUEUED:
        when = (
            "starts now"
            if not entry.eta_seconds
            else f"starts in ~{humanize_delta(entry.eta_seconds)}"
        )
        where = f"queued, position {(entry.position or 0) + 1}, {when}"
    elif job.state == JobState.FETCHED:
        where = "finished, being posted"
    else:
        where = "running at fal"
    return f"#{job.id} · {where} · about {usd(job.estimate_micros)} · “{prompt}”"


def render_queue(entries: list[usage.QueueEntry]) -> str:
    if not entries:
        return "You have no queued or running edits."
    lines = [describe_entry(e) for e in entries[:MAX_SHOWN]]
    if len(entries) > MAX_SHOWN:
        lines.append(f"…and {len(entries) - MAX_SHOWN} more.")
    return "**Your edits**\n" + "\n".join(lines)


def limit_source(source: LimitSource) -> str:
    """Where a limit's value came from, for /usage."""
    if source.scope == LimitScope.USER:
        return "member override"
    if source.scope == LimitScope.ROLE:
        return f"role <@&{source.target_id}>"
    if source.scope == LimitScope.GUILD:
        return "server setting"
    if source.scope == LimitScope.GLOBAL:
        return "bot-wide override"
    return "default"


def render_usage(mu: usage.MemberUsage, now: float) -> discord.Embed:
    """The /usage embed: one field per cap, with what is left and when it resets."""
    embed = discord.Embed(title="Your Flexbot usage", colour=discord.Colour.blurple())
    embed.description = (
        f"Today: **{usd(mu.today_micros)}** · This month: **{usd(mu.month_micros)}**"
        + (f" · Credit this month: {usd(mu.credit_micros)}" if mu.credit_micros else "")
        + f"\nQueued: {mu.queued} · Running: {mu.running}"
    )
    for cap in mu.caps:
        resets = (
            f"resets <t:{int(cap.resets_at.timestamp())}:R> "
            f"({humanize_delta(cap.resets_at.timestamp() - now)})"
        )
        if cap.cap_micros is None:
            value = f"{usd(cap.spent_micros)} spent · no cap ({UNLIMITED})"
        else:
            total = cap.cap_micros + cap.credit_micros
            value = (
                f"{usd(cap.spent_micros)} of {usd(total)} · "
                f"**{usd(cap.remaining_micros or 0)} left** · {resets}"
            )
        embed.add_field(name=f"{cap.label} ({limit_source(cap.source)})", value=value, inline=False)
    if mu.recent:
        lines = [f"#{j.id} {j.state} · {usd(j.held_micros + j.charged_micros)}" for j in mu.recent]
        embed.add_field(name="Recent edits", value="\n".join(lines), inline=False)
    embed.set_image(url=f"attachment://{CHART_NAME}")
    return embed
