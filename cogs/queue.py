"""/queue (your unfinished jobs, positions, ETAs, cancel from there) and /cancel job."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.engine import usage
from bot.engine.quota import humanize_delta
from bot.model import JobState, usd

if TYPE_CHECKING:
    from bot.app import FlexBot

CANCEL_SELECT_ID = "flexq:cancel"
MAX_SHOWN = 25  # Discord's limit of options in one select


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


def is_moderator(interaction: discord.Interaction) -> bool:
    return bool(interaction.guild is not None and interaction.permissions.manage_messages)


class CancelSelect(discord.ui.Select["QueueView"]):
    """Pick one of your unfinished jobs to cancel."""

    def __init__(self, bot: FlexBot, entries: list[usage.QueueEntry]) -> None:
        options = [
            discord.SelectOption(
                label=f"Cancel #{e.job.id}",
                value=str(e.job.id),
                description=describe_entry(e)[:100],
            )
            for e in entries[:MAX_SHOWN]
        ]
        super().__init__(custom_id=CANCEL_SELECT_ID, placeholder="Cancel an edit…", options=options)
        self.bot = bot

    async def callback(self, interaction: discord.Interaction) -> None:
        job_id = int(self.values[0])
        engine = self.bot.core.engine
        result = await engine.cancel(
            job_id, interaction.user.id, moderator=is_moderator(interaction)
        )
        entries = await usage.queue_for(engine, interaction.user.id)
        view = QueueView(self.bot, interaction.user.id, entries) if entries else None
        await interaction.response.edit_message(
            content=f"{result.message}\n\n{render_queue(entries)}", view=view
        )


class QueueView(discord.ui.View):
    """The select under a /queue reply; only the member who asked may use it."""

    def __init__(self, bot: FlexBot, owner_id: int, entries: list[usage.QueueEntry]) -> None:
        super().__init__(timeout=900)
        self.owner_id = owner_id
        cancellable = [e for e in entries if e.job.state != JobState.FETCHED]
        if cancellable:
            self.add_item(CancelSelect(bot, cancellable))

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.owner_id:
            return True
        await interaction.response.send_message("This is someone else's queue.", ephemeral=True)
        return False


class QueueCog(commands.Cog):
    """Members' view of their own jobs."""

    def __init__(self, bot: FlexBot) -> None:
        self.bot = bot

    @app_commands.command(name="queue", description="Your queued and running edits; cancel one.")
    async def queue(self, interaction: discord.Interaction) -> None:
        entries = await usage.queue_for(self.bot.core.engine, interaction.user.id)
        view = QueueView(self.bot, interaction.user.id, entries)
        if not view.children:
            await interaction.response.send_message(render_queue(entries), ephemeral=True)
            return
        await interaction.response.send_message(render_queue(entries), view=view, ephemeral=True)

    @app_commands.command(name="cancel", description="Cancel one of your edits.")
    @app_commands.describe(job="The job number, e.g. 42 (see /queue)")
    async def cancel(
        self, interaction: discord.Interaction, job: app_commands.Range[int, 1]
    ) -> None:
        result = await self.bot.core.engine.cancel(
            job, interaction.user.id, moderator=is_moderator(interaction)
        )
        await interaction.response.send_message(result.message, ephemeral=True)


async def setup(bot: FlexBot) -> None:
    await bot.add_cog(QueueCog(bot))
