"""/edit and the "Edit with FLUX" message context menu: read the images, queue, show the status."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.core import Core
from bot.errors import ImageRejected, UserError
from bot.i18n import translate
from bot.images import NormalizedImage, check_size, is_supported_upload
from bot.intake import new_input
from bot.model import MAX_IMAGES, EditParams, EditRequest, JobState, JobTicket, Origin
from bot.params import parse_edit_params
from cogs.edits import render
from cogs.errors import locale_of, report
from cogs.interactions import (
    SAFETY_CHOICES,
    SIZE_CHOICES,
    channel_is_nsfw,
    core_of,
    gate,
    requester_of,
    server_locale,
)

log = logging.getLogger(__name__)

Attachment = discord.Attachment
OptAttachment = discord.Attachment | None


def check_declared(core: Core, attachments: Sequence[discord.Attachment]) -> None:
    """Refuse on each attachment's declared type and size, before anything is downloaded."""
    for a in attachments:
        if not is_image(a):
            raise ImageRejected(
                a.filename,
                "is not an image Flexbot can read; attach PNG, JPEG, WebP, GIF, HEIC or AVIF.",
            )
        check_size(a.filename, a.size, core.settings.max_input_bytes)


async def read_images(
    core: Core, attachments: Sequence[discord.Attachment]
) -> list[NormalizedImage]:
    """Download and normalise each image (in memory); ImageRejected names the file.

    ``size`` is Discord's record of the stored file, checked before this; normalize() checks the
    real bytes again. Downloads and decodes overlap; the decode pool bounds how many run at once.
    """

    async def one(a: discord.Attachment) -> NormalizedImage:
        return await core.images.normalize(await a.read(), a.filename)

    return list(await asyncio.gather(*(one(a) for a in attachments)))


async def check_safety(core: Core, interaction: discord.Interaction[Any], p: EditParams) -> None:
    """Members may ask for stricter safety than the channel's policy, never looser."""
    policy = await core.admin.safety_limits(
        interaction.guild_id, interaction.channel_id or 0, channel_is_nsfw(interaction)
    )
    if int(p.safety_tolerance) > int(policy.max_tolerance):
        raise UserError.of(
            "Safety level {asked} is not allowed in this channel; the highest here is {most}. "
            "Pick {most} or lower.",
            asked=p.safety_tolerance,
            most=policy.max_tolerance,
        )
    if not p.enable_safety_checker and not policy.checker_may_be_off:
        raise UserError(
            "The safety checker can only be switched off in age-restricted channels where an "
            "admin allowed it. Leave `safety_checker` on."
        )


async def publish(core: Core, interaction: discord.Interaction[Any], outcome: JobTicket) -> None:
    """Ticket -> private ack (the member's language) plus a public status message (the
    server's language); a refusal was raised before."""
    ack = render.queued_ack(outcome, locale_of(interaction))
    await interaction.edit_original_response(content=ack)
    public = await server_locale(core, interaction.guild_id, interaction.guild_locale)
    status = render.status_queued(outcome, public)
    message = await interaction.followup.send(
        status.content,
        view=render.make_view(status.buttons),
        allowed_mentions=discord.AllowedMentions.none(),
        wait=True,
    )
    await core.engine.set_status_message(outcome.job_id, message.id)
    job = await core.engine.get_job(outcome.job_id)
    if job is not None and job.state != JobState.QUEUED and job.state not in JobState.ACTIVE:
        # Finished before we knew the status message: delivery could not link it; do it now.
        done = render.job_summary(job, public)
        if job.result_message_id and job.channel_id:
            url = f"https://discord.com/channels/{job.guild_id or '@me'}/{job.channel_id}/"
            done = render.status_done(job, url + str(job.result_message_id), public).content
        await message.edit(content=done, view=None)


async def queue_edit(
    interaction: discord.Interaction[Any],
    attachments: Sequence[discord.Attachment],
    *,
    origin: Origin = Origin.COMMAND,
    source_message_id: int | None = None,
    source_author_id: int | None = None,
    **raw: Any,
) -> None:
    """The shared path of /edit and the context menu (after the ephemeral defer).

    Every limit that can be judged from the declared sizes is checked before a byte is
    downloaded; the images are stored only for a job the engine admitted.
    """
    core = core_of(interaction.client)
    who = requester_of(interaction)
    # The channel's defaults (its admins') fill the options the member left out.
    defaults = await core.admin.channel_defaults(interaction.guild_id, interaction.channel_id)
    params = parse_edit_params(
        num_images=len(attachments), limits=core.param_limits, defaults=defaults, **raw
    )
    await check_safety(core, interaction, params)
    check_declared(core, attachments)
    await core.engine.precheck(
        who,
        params,
        [(a.width, a.height) if a.width and a.height else None for a in attachments],
        [a.size for a in attachments],
        source_author_id=source_author_id,
    )
    async with core.engine.downloads.hold(who.user_id, sum(a.size for a in attachments)):
        images = await read_images(core, attachments)
        request = EditRequest(
            params,
            tuple(new_input(image) for image in images),
            who,
            origin=origin,
            source_message_id=source_message_id,
            source_author_id=source_author_id,
        )
        ticket = await core.engine.submit(request)
    await publish(core, interaction, ticket)


def is_image(a: discord.Attachment) -> bool:
    """An attachment intake can read (HEIC and AVIF from phones included)."""
    return is_supported_upload(a.filename, a.content_type)


class EditModal(discord.ui.Modal):
    """Prompt (and optional extra images) for an edit of a message's images."""

    def __init__(
        self, source: discord.Message, images: list[discord.Attachment], locale: str | None = None
    ) -> None:
        super().__init__(
            title=translate(locale, "Edit with FLUX")[:45],
            custom_id=f"flexedit:{source.id}",
            timeout=900,
        )
        self.source = source
        self.images = images
        self.prompt: discord.ui.TextInput[EditModal] = discord.ui.TextInput(
            custom_id="prompt", style=discord.TextStyle.paragraph, max_length=4000
        )
        self.add_item(
            discord.ui.Label(text=translate(locale, "Prompt")[:45], component=self.prompt)
        )
        self.extra: discord.ui.FileUpload[EditModal] | None = None
        room = MAX_IMAGES - len(images)
        if room > 0:
            self.extra = discord.ui.FileUpload(
                custom_id="images", min_values=0, max_values=room, required=False
            )
            self.add_item(
                discord.ui.Label(
                    text=translate(locale, "More images (optional)")[:45],
                    description=translate(
                        locale, "Up to {count} more reference images", count=room
                    )[:100],
                    component=self.extra,
                )
            )

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await gate(interaction, queueing=True)
        extra = list(self.extra.values) if self.extra is not None else []
        bot_id = interaction.client.user.id if interaction.client.user else None
        owner = await core_of(interaction.client).engine.owner_of_message(
            self.source.id, self.source.author.id, bot_id
        )
        await queue_edit(
            interaction,
            [*self.images, *extra],
            origin=Origin.CONTEXT_MENU,
            source_message_id=self.source.id,
            source_author_id=owner,
            prompt=self.prompt.value,
        )

    async def on_error(  # type: ignore[override] # Modal's signature, typeshed'd as BaseView's
        self, interaction: discord.Interaction[Any], error: Exception, /
    ) -> None:
        await report(interaction, error)


class Edit(commands.Cog):
    """/edit and the message context menu."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.menu = app_commands.ContextMenu(name="Edit with FLUX", callback=self.edit_message)

    @app_commands.command(name="edit", description="Edit images with FLUX.2 [flex]")
    @app_commands.describe(
        prompt="What to change",
        image="The image to edit (add up to 7 more as references)",
        seed="Same seed + same inputs = same image",
        steps="Inference steps (more = slower, finer)",
        guidance="How closely to follow the prompt",
        size="Output size (auto follows the first image)",
        width="Custom output width (with height)",
        height="Custom output height (with width)",
        format="Output format",
        safety="Safety tolerance: 1 strictest .. 5 most permissive",
        safety_checker="Leave on; off only in age-restricted channels that allow it",
    )
    @app_commands.choices(size=SIZE_CHOICES, safety=SAFETY_CHOICES)
    async def edit(
        self,
        interaction: discord.Interaction[Any],
        prompt: str,
        image: Attachment,
        image2: OptAttachment = None,
        image3: OptAttachment = None,
        image4: OptAttachment = None,
        image5: OptAttachment = None,
        image6: OptAttachment = None,
        image7: OptAttachment = None,
        image8: OptAttachment = None,
        seed: app_commands.Range[int, 0, 2**53 - 1] | None = None,
        steps: app_commands.Range[int, 2, 50] | None = None,
        guidance: app_commands.Range[float, 1.5, 10.0] | None = None,
        size: str | None = None,
        width: app_commands.Range[int, 64, 8192] | None = None,
        height: app_commands.Range[int, 64, 8192] | None = None,
        format: Literal["jpeg", "png"] | None = None,
        safety: str | None = None,
        safety_checker: bool | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        images = [image, image2, image3, image4, image5, image6, image7, image8]
        await queue_edit(
            interaction,
            [a for a in images if a is not None],
            prompt=prompt,
            seed=seed,
            steps=steps,
            guidance=guidance,
            size=size,
            width=width,
            height=height,
            output_format=format,
            safety_tolerance=safety,
            enable_safety_checker=safety_checker,
        )

    async def edit_message(
        self, interaction: discord.Interaction[Any], message: discord.Message
    ) -> None:
        images = [a for a in message.attachments if is_image(a)][:MAX_IMAGES]
        if not images:
            raise UserError("That message has no images to edit. Use it on a message with images.")
        await interaction.response.send_modal(EditModal(message, images, locale_of(interaction)))
