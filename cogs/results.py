"""Result buttons (state in the custom_id ``flex:<action>:<job_id>`` + SQLite), /rerun and /show."""

from __future__ import annotations

import asyncio
import io
import random
import re
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import NoSuchJob, UserError
from bot.model import Job, Origin
from bot.params import parse_edit_params
from cogs import render
from cogs.delivery import fit_upload
from cogs.edit import check_safety, publish
from cogs.errors import gate, is_moderator, report, requester_of

if TYPE_CHECKING:
    from bot.app import Core, FlexBot


def core_of(interaction: discord.Interaction[Any]) -> Core:
    bot: FlexBot = interaction.client
    return bot.core


async def load_job(core: Core, job_id: int) -> Job:
    job = await core.engine.get_job(job_id)
    if job is None:
        raise NoSuchJob(job_id)
    return job


async def rerun(
    interaction: discord.Interaction[Any],
    job_id: int,
    overrides: dict[str, Any] | None = None,
    origin: Origin = Origin.RERUN,
) -> None:
    """Queue a rerun for the clicker (their budget pays); the interaction is already deferred."""
    core = core_of(interaction)
    await gate(interaction, queueing=True)
    job = await load_job(core, job_id)
    await check_safety(core, interaction, job.params)
    outcome = await core.engine.rerun(job_id, requester_of(interaction), overrides, origin=origin)
    await publish(core, interaction, outcome)


class TweakModal(discord.ui.Modal):
    """Prompt, steps, guidance and seed, prefilled from the job."""

    def __init__(self, job: Job) -> None:
        super().__init__(title=f"Tweak job #{job.id}", custom_id=f"flextweak:{job.id}")
        self.job = job
        p = job.params
        seed = job.seed if job.seed is not None else p.seed

        def field(label: str, value: str, *, long: bool = False) -> discord.ui.TextInput[Any]:
            text: discord.ui.TextInput[Any] = discord.ui.TextInput(
                label=label,
                custom_id=label.lower(),
                default=value[:4000],
                required=label == "Prompt",
                style=discord.TextStyle.paragraph if long else discord.TextStyle.short,
                max_length=4000 if long else 20,
            )
            self.add_item(text)
            return text

        self.prompt = field("Prompt", p.prompt, long=True)
        self.steps = field("Steps", str(p.num_inference_steps))
        self.guidance = field("Guidance", f"{p.guidance_scale:g}")
        self.seed = field("Seed", "" if seed is None else str(seed))

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        p = parse_edit_params(
            prompt=self.prompt.value,
            num_images=1,
            limits=core_of(interaction).param_limits,
            seed=self.seed.value,
            steps=self.steps.value,
            guidance=self.guidance.value,
        )
        overrides = {
            "prompt": p.prompt,
            "seed": p.seed,
            "num_inference_steps": p.num_inference_steps,
            "guidance_scale": p.guidance_scale,
        }
        await rerun(interaction, self.job.id, overrides, origin=Origin.TWEAK)

    async def on_error(  # type: ignore[override] # Modal's signature, typed as BaseView's
        self, interaction: discord.Interaction[Any], error: Exception, /
    ) -> None:
        await report(interaction, error)


class RemixModal(discord.ui.Modal):
    """A new prompt; the job's result becomes the reference image."""

    def __init__(self, job: Job) -> None:
        super().__init__(title=f"Remix job #{job.id}", custom_id=f"flexremix:{job.id}")
        self.job = job
        self.prompt: discord.ui.TextInput[RemixModal] = discord.ui.TextInput(
            label="New prompt", custom_id="prompt", style=discord.TextStyle.paragraph
        )
        self.add_item(self.prompt)

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        core = core_of(interaction)
        await gate(interaction, queueing=True)
        p = parse_edit_params(prompt=self.prompt.value, num_images=1, limits=core.param_limits)
        await check_safety(core, interaction, self.job.params)
        outcome = await core.engine.remix(self.job.id, requester_of(interaction), p.prompt)
        await publish(core, interaction, outcome)

    async def on_error(  # type: ignore[override] # Modal's signature, typed as BaseView's
        self, interaction: discord.Interaction[Any], error: Exception, /
    ) -> None:
        await report(interaction, error)


class FlexButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=render.CUSTOM_ID_TEMPLATE
):
    """Every result and status button; works after restarts (nothing lives in memory)."""

    def __init__(self, action: str, job_id: int) -> None:
        super().__init__(
            discord.ui.Button(label=action.title(), custom_id=render.custom_id(action, job_id))
        )
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> FlexButton:
        return cls(match["action"], int(match["job"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await getattr(self, f"_{self.action}")(interaction)
        except Exception as exc:  # the error boundary of a click: answer, never go silent
            await report(interaction, exc)

    async def _rerun(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await rerun(interaction, self.job_id)

    async def _reroll(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await rerun(interaction, self.job_id, {"seed": random.randrange(2**32)}, Origin.REROLL)

    async def _tweak(self, interaction: discord.Interaction[Any]) -> None:
        await gate(interaction, queueing=True)
        job = await load_job(core_of(interaction), self.job_id)
        await interaction.response.send_modal(TweakModal(job))

    async def _remix(self, interaction: discord.Interaction[Any]) -> None:
        await gate(interaction, queueing=True)
        job = await load_job(core_of(interaction), self.job_id)
        await interaction.response.send_modal(RemixModal(job))

    async def _delete(self, interaction: discord.Interaction[Any]) -> None:
        job = await load_job(core_of(interaction), self.job_id)
        if interaction.user.id != job.user_id and not is_moderator(interaction):
            raise UserError(
                "Only the member who asked for this edit or a moderator (Manage Messages) "
                "can delete it."
            )
        await interaction.response.defer()
        if interaction.message is not None:
            await interaction.message.delete()

    async def _cancel(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        result = await core_of(interaction).engine.cancel(
            self.job_id, interaction.user.id, moderator=is_moderator(interaction)
        )
        await interaction.edit_original_response(content=result.message)


class Results(commands.Cog):
    """/rerun and /show, and the dynamic result buttons."""

    def __init__(self, bot: FlexBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        self.bot.add_dynamic_items(FlexButton)

    async def cog_unload(self) -> None:
        self.bot.remove_dynamic_items(FlexButton)

    @app_commands.command(name="rerun", description="Run a job again (same seed unless given)")
    @app_commands.describe(job="Job number", prompt="A new prompt (optional)")
    async def rerun_command(
        self,
        interaction: discord.Interaction[Any],
        job: app_commands.Range[int, 1],
        seed: app_commands.Range[int, 0, 2**53] | None = None,
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
            limits = core_of(interaction).param_limits
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
        core = core_of(interaction)
        found = await load_job(core, job)
        stored = core.blobs.get(found.output_hash) if found.output_hash else None
        if stored is None:
            if found.output_hash:
                raise UserError(f"The image of job #{job} has expired and was deleted.")
            raise UserError(render.job_summary(found))
        ext = "png" if found.params.output_format == "png" else "jpg"
        data, ext = await asyncio.to_thread(fit_upload, stored, interaction.filesize_limit, ext)
        parent = await core.engine.get_job(found.parent_job_id) if found.parent_job_id else None
        filename = render.output_filename(found, ext)
        out = render.result(found, parent, filename)
        await interaction.edit_original_response(content=f"Job #{job} posted below.")
        await interaction.followup.send(
            out.content,
            embed=out.embed or discord.utils.MISSING,
            file=discord.File(io.BytesIO(data), filename=filename),
            view=render.make_view(out.buttons),
            allowed_mentions=discord.AllowedMentions.none(),
        )


async def setup(bot: FlexBot) -> None:
    await bot.add_cog(Results(bot))
