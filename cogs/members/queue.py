"""/queue (your unfinished jobs, positions, ETAs, cancel from there) and /cancel job."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from bot.core import Core
from bot.engine import usage
from bot.i18n import translate
from bot.model import CancelResult, JobState
from cogs.errors import locale_of
from cogs.interactions import requester_of
from cogs.members.render import MAX_SHOWN, describe_entry, render_queue

CANCEL_SELECT_ID = "flexq:cancel"


class CancelSelect(discord.ui.Select["QueueView"]):
    """Pick one of your unfinished jobs to cancel."""

    def __init__(self, core: Core, entries: list[usage.QueueEntry], locale: str) -> None:
        options = [
            discord.SelectOption(
                label=translate(locale, "Cancel #{job}", job=e.job.id),
                value=str(e.job.id),
                description=describe_entry(e, locale)[:100],
            )
            for e in entries[:MAX_SHOWN]
        ]
        super().__init__(
            custom_id=CANCEL_SELECT_ID,
            placeholder=translate(locale, "Cancel an edit…"),
            options=options,
        )
        self.core = core

    async def callback(self, interaction: discord.Interaction) -> None:
        job_id = int(self.values[0])
        engine = self.core.engine
        locale = locale_of(interaction)
        result = await engine.cancel(job_id, requester_of(interaction))
        entries = await usage.queue_for(
            engine, interaction.user.id, visible_to=requester_of(interaction)
        )
        view = QueueView(self.core, interaction.user.id, entries, locale) if entries else None
        await interaction.response.edit_message(
            content=f"{cancel_text(result, locale)}\n\n{render_queue(entries, locale)}", view=view
        )


class QueueView(discord.ui.View):
    """The select under a /queue reply; only the member who asked may use it."""

    def __init__(
        self, core: Core, owner_id: int, entries: list[usage.QueueEntry], locale: str
    ) -> None:
        super().__init__(timeout=900)
        self.owner_id = owner_id
        cancellable = [e for e in entries if e.job.state != JobState.FETCHED]
        if cancellable:
            self.add_item(CancelSelect(core, cancellable, locale))

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.owner_id:
            return True
        text = translate(locale_of(interaction), "This is someone else's queue.")
        await interaction.response.send_message(text, ephemeral=True)
        return False


class QueueCog(commands.Cog):
    """Members' view of their own jobs."""

    def __init__(self, core: Core) -> None:
        self.core = core

    @app_commands.command(name="queue", description="Your queued and running edits; cancel one.")
    async def queue(self, interaction: discord.Interaction) -> None:
        locale = locale_of(interaction)
        entries = await usage.queue_for(
            self.core.engine, interaction.user.id, visible_to=requester_of(interaction)
        )
        view = QueueView(self.core, interaction.user.id, entries, locale)
        text = render_queue(entries, locale)
        if not view.children:
            await interaction.response.send_message(text, ephemeral=True)
            return
        await interaction.response.send_message(text, view=view, ephemeral=True)

    @app_commands.command(name="cancel", description="Cancel one of your edits.")
    @app_commands.describe(job="The job number, e.g. 42 (see /queue)")
    async def cancel(
        self, interaction: discord.Interaction, job: app_commands.Range[int, 1]
    ) -> None:
        result = await self.core.engine.cancel(job, requester_of(interaction))
        await interaction.response.send_message(
            cancel_text(result, locale_of(interaction)), ephemeral=True
        )


def cancel_text(result: CancelResult, locale: str) -> str:
    """The outcome of a cancel in the member's language."""
    return translate(locale, result.template or result.message, **result.params)
