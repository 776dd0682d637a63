"""/rerun and /show: a job again, or its result posted here; the shared rerun path."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.core import Core
from bot.errors import UserError
from bot.i18n import translate
from bot.model import Job, Origin
from bot.params import parse_edit_params
from cogs.delivery import fit_upload
from cogs.edits import render
from cogs.edits.commands import check_safety, publish
from cogs.errors import locale_of
from cogs.interactions import channel_is_nsfw, core_of, requester_of, server_locale


async def load_job(interaction: discord.Interaction[Any], job_id: int) -> Job:
    """The job, if it may be seen from where this interaction happens; else NoSuchJob."""
    return await core_of(interaction.client).engine.job_for(job_id, requester_of(interaction))


async def rerun(
    interaction: discord.Interaction[Any],
    job_id: int,
    overrides: dict[str, Any] | None = None,
    origin: Origin = Origin.RERUN,
) -> None:
    """Queue a rerun for the clicker (their budget pays): deferred and gated already."""
    core = core_of(interaction.client)
    job = await load_job(interaction, job_id)
    await check_safety(core, interaction, job.params)
    outcome = await core.engine.rerun(job_id, requester_of(interaction), overrides, origin=origin)
    await publish(core, interaction, outcome)


class Reuse(commands.Cog):
    """/rerun and /show."""

    def __init__(self, core: Core) -> None:
        self.core = core

    @app_commands.command(name="rerun", description="Run a job again (same seed unless given)")
    @app_commands.describe(job="Job number", prompt="A new prompt (optional)")
    async def rerun_command(
        self,
        interaction: discord.Interaction[Any],
        job: app_commands.Range[int, 1],
        seed: app_commands.Range[int, 0, 2**53 - 1] | None = None,
        steps: app_commands.Range[int, 2, 50] | None = None,
        guidance: app_commands.Range[float, 1.5, 10.0] | None = None,
        prompt: str | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        overrides: dict[str, Any] = {}
        if seed is not None:
            overrides["seed"] = seed
        if steps is not None:
            overrides["num_inference_steps"] = steps
        if guidance is not None:
            overrides["guidance_scale"] = guidance
        if prompt is not None:
            limits = core_of(interaction.client).param_limits
            overrides["prompt"] = parse_edit_params(
                prompt=prompt, num_images=1, limits=limits
            ).prompt
        await rerun(interaction, job, overrides, origin=Origin.RERUN)

    @app_commands.command(name="show", description="Post a job's result here, with its buttons")
    @app_commands.describe(job="Job number")
    async def show(
        self, interaction: discord.Interaction[Any], job: app_commands.Range[int, 1]
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        core = core_of(interaction.client)
        found = await load_job(interaction, job)
        stored = await core.engine.output_image(found)
        if stored is None:
            if found.output_hash:
                raise UserError.of("The image of job #{job} has expired and was deleted.", job=job)
            raise UserError(render.job_summary(found, locale_of(interaction)))
        display = None
        if found.nsfw_flagged:
            display = await core.admin.flagged_display(
                interaction.guild_id, interaction.channel_id, channel_is_nsfw(interaction)
            )
            if display == "hide":
                raise UserError.of(render.FLAGGED_NOT_SHOWN, job=job)
        ext = "png" if found.params.output_format == "png" else "jpg"
        data, ext = await asyncio.to_thread(fit_upload, stored, interaction.filesize_limit, ext)
        parent = await core.engine.get_job(found.parent_job_id) if found.parent_job_id else None
        filename = render.output_filename_shown(found, ext, display)
        # Posted in the channel: the server's language; the note above it is the member's.
        public = await server_locale(core, interaction.guild_id, interaction.guild_locale)
        out = render.result(found, parent, filename, public)
        posted = translate(locale_of(interaction), "Job #{job} posted below.", job=job)
        await interaction.edit_original_response(content=posted)
        await interaction.followup.send(
            out.content,
            embed=out.embed or discord.utils.MISSING,
            file=discord.File(io.BytesIO(data), filename=filename),
            view=render.make_view(out.buttons),
            allowed_mentions=discord.AllowedMentions.none(),
        )
