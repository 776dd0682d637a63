"""Result buttons (state in the custom_id ``flex:<action>:<job_id>`` + SQLite) and their modals.

Buttons are not app commands, so each click passes the same gate the command tree runs:
the queueing gate for Rerun/Reroll/Tweak/Remix, the channel gate for Delete and Cancel.
"""

from __future__ import annotations

import random
import re
from typing import Any

import discord

from bot.errors import UserError
from bot.i18n import translate
from bot.model import Job, Origin
from bot.params import parse_edit_params
from bot.visibility import may_manage
from cogs.edits import render
from cogs.edits.commands import check_safety, publish
from cogs.edits.reuse import load_job, rerun
from cogs.errors import locale_of, report
from cogs.interactions import core_of, gate, requester_of

#: Buttons that queue paid work pass the queueing gate; the others the channel gate.
QUEUEING_ACTIONS = frozenset({"rerun", "reroll", "tweak", "remix"})


class TweakModal(discord.ui.Modal):
    """Prompt, steps, guidance and seed, prefilled from the job (labels in the clicker's
    language; the custom_ids stay English)."""

    def __init__(self, job: Job, locale: str | None = None) -> None:
        title = translate(locale, "Tweak job #{job}", job=job.id)
        super().__init__(title=title[:45], custom_id=f"flextweak:{job.id}")
        self.job = job
        p = job.params
        seed = job.seed if job.seed is not None else p.seed

        def field(label: str, value: str, *, long: bool = False) -> discord.ui.TextInput[Any]:
            text: discord.ui.TextInput[Any] = discord.ui.TextInput(
                label=translate(locale, label)[:45],
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
        await gate(interaction, queueing=True)  # a modal submit is a new interaction
        p = parse_edit_params(
            prompt=self.prompt.value,
            num_images=1,
            limits=core_of(interaction.client).param_limits,
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

    def __init__(self, job: Job, locale: str | None = None) -> None:
        title = translate(locale, "Remix job #{job}", job=job.id)
        super().__init__(title=title[:45], custom_id=f"flexremix:{job.id}")
        self.job = job
        self.prompt: discord.ui.TextInput[RemixModal] = discord.ui.TextInput(
            label=translate(locale, "New prompt")[:45],
            custom_id="prompt",
            style=discord.TextStyle.paragraph,
        )
        self.add_item(self.prompt)

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        core = core_of(interaction.client)
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
            await gate(interaction, queueing=self.action in QUEUEING_ACTIONS)
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
        job = await load_job(interaction, self.job_id)
        await interaction.response.send_modal(TweakModal(job, locale_of(interaction)))

    async def _remix(self, interaction: discord.Interaction[Any]) -> None:
        job = await load_job(interaction, self.job_id)
        if job.nsfw_flagged:  # its image would become the reference of a new edit
            raise UserError.of(render.REMIX_FLAGGED, job=job.id)
        await interaction.response.send_modal(RemixModal(job, locale_of(interaction)))

    async def _delete(self, interaction: discord.Interaction[Any]) -> None:
        job = await load_job(interaction, self.job_id)
        if not may_manage(job, requester_of(interaction)):
            raise UserError(
                "Only the member who asked for this edit or a moderator (Manage Messages) "
                "can delete it."
            )
        await interaction.response.defer()
        # Deleted in Discord, gone from the web gallery too.
        await core_of(interaction.client).gallery.forget_result(job.id, interaction.user.id)
        if interaction.message is not None:
            await interaction.message.delete()

    async def _cancel(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        result = await core_of(interaction.client).engine.cancel(
            self.job_id, requester_of(interaction)
        )
        text = translate(locale_of(interaction), result.template or result.message, **result.params)
        await interaction.edit_original_response(content=text)
