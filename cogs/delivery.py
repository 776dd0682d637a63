"""Delivery over Discord: results as new channel messages (bot token, never the interaction).

The result replies to the job's status message, pings only the requester, and is re-encoded to
fit the guild's upload limit. Forbidden / NotFound are final (Undeliverable): a 403 is never
retried, since every one counts towards Discord's invalid-request ban.

Everything posted here is read by the whole channel, so it is written in the server's language
(``/flexadmin language``, else the guild's Discord locale), read once per message: one small
query, and a /flexadmin language change shows on the very next message.
"""

from __future__ import annotations

import asyncio
import io
import logging

import discord
from PIL import Image

from bot.engine.delivery import Undeliverable, Words
from bot.engine.engine import Engine
from bot.languages import ServerLanguages
from bot.model import Job, Progress
from bot.permissions import missing_for_posting
from cogs.edits import render

log = logging.getLogger(__name__)

JPEG_QUALITIES = (90, 80, 70, 60)


def fit_upload(data: bytes, limit: int, ext: str) -> tuple[bytes, str]:
    """The image as is when it fits, else re-encoded as JPEG (and downscaled) until it does."""
    if len(data) <= limit:
        return data, ext
    with Image.open(io.BytesIO(data)) as source:
        image = source.convert("RGB")
    while min(image.size) >= 64:
        for quality in JPEG_QUALITIES:
            buf = io.BytesIO()
            image.save(buf, "JPEG", quality=quality, optimize=True)
            if buf.tell() <= limit:
                return buf.getvalue(), "jpg"
        image = image.resize(
            (image.width * 3 // 4, image.height * 3 // 4), Image.Resampling.LANCZOS
        )
    raise Undeliverable(f"the result cannot be made smaller than the {limit} byte upload limit")


def requester_only(job: Job) -> discord.AllowedMentions:
    return discord.AllowedMentions(
        everyone=False, roles=False, users=[discord.Object(job.user_id)], replied_user=False
    )


Postable = discord.TextChannel | discord.Thread | discord.VoiceChannel | discord.DMChannel


class DiscordDelivery:
    """Posts results and failures in the job's channel, replying to its status message."""

    def __init__(self, client: discord.Client, engine: Engine) -> None:
        self.bot = client
        self.engine = engine

    def _count(self, exc: BaseException) -> None:
        if isinstance(exc, discord.HTTPException):
            self.engine.metrics.discord_errors.labels(str(exc.status)).inc()

    async def _channel(self, job: Job) -> Postable:
        if job.channel_id is None:
            raise Undeliverable("the job has no channel")
        channel = self.bot.get_channel(job.channel_id)
        if channel is None:
            try:
                channel = await self.bot.fetch_channel(job.channel_id)
            except (discord.NotFound, discord.Forbidden) as exc:
                self._count(exc)
                raise Undeliverable(
                    f"channel {job.channel_id} is gone or hidden ({exc.text})"
                ) from exc
        if not isinstance(channel, Postable):
            raise Undeliverable(f"channel {job.channel_id} cannot take messages")
        return channel

    @staticmethod
    def _missing(channel: Postable) -> list[str]:
        if isinstance(channel, discord.DMChannel) or channel.guild.me is None:
            return []
        return missing_for_posting(
            channel.permissions_for(channel.guild.me), thread=isinstance(channel, discord.Thread)
        )

    async def _locale(self, job: Job) -> str:
        """The language of the job's server for public messages (English outside a server)."""
        guild = self.bot.get_guild(job.guild_id) if job.guild_id is not None else None
        preferred = str(guild.preferred_locale) if guild is not None else None
        return await ServerLanguages(self.engine.db).locale_for(job.guild_id, preferred)

    async def _edit_status(self, job: Job, rendered: render.Rendered) -> None:
        if job.status_message_id is None:
            return
        try:
            channel = await self._channel(job)
            await channel.get_partial_message(job.status_message_id).edit(
                content=rendered.content,
                view=render.make_view(rendered.buttons) if rendered.buttons else None,
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except (Undeliverable, discord.HTTPException) as exc:
            self._count(exc)
            log.info("job=%s status message not updated: %s", job.id, exc)

    async def progress(self, job: Job, progress: Progress) -> None:
        locale = await self._locale(job)
        await self._edit_status(job, render.status_progress(job, progress, locale))

    async def _flagged_display(self, job: Job, channel: Postable) -> str:
        """``spoiler`` or ``hide`` for a flagged output: a spoiler only where the admins chose
        it, in a channel age-restricted now and when the job was asked for."""
        core = getattr(self.bot, "core", None)
        is_nsfw = getattr(channel, "is_nsfw", None)
        nsfw_now = bool(is_nsfw()) if callable(is_nsfw) else False
        if core is None or not (nsfw_now and job.channel_nsfw):
            return "hide"
        display: str = await core.admin.flagged_display(job.guild_id, channel.id, nsfw_now)
        return display

    async def deliver(self, job: Job, image: bytes) -> int | None:
        channel = await self._channel(job)
        missing = self._missing(channel)
        if missing:
            raise Undeliverable(
                f"missing permissions in channel {channel.id}: {', '.join(missing)}"
            )
        parent = None
        if job.parent_job_id is not None:
            parent = await self.engine.get_job(job.parent_job_id)
        display = await self._flagged_display(job, channel) if job.nsfw_flagged else None
        locale = await self._locale(job)
        file = discord.utils.MISSING
        if display == "hide":
            # Never shown openly: the message says so and carries no image at all.
            out = render.flagged_hidden(job, parent, locale)
        else:
            limit = (
                channel.guild.filesize_limit if not isinstance(channel, discord.DMChannel) else 0
            )
            limit = limit or discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES
            ext = "png" if job.params.output_format == "png" else "jpg"
            data, ext = await asyncio.to_thread(fit_upload, image, limit, ext)
            filename = render.output_filename_shown(job, ext, display)
            out = render.result(job, parent, filename, locale)
            file = discord.File(io.BytesIO(data), filename=filename)
        reference = None
        if job.status_message_id is not None:
            reference = discord.MessageReference(
                message_id=job.status_message_id, channel_id=channel.id, fail_if_not_exists=False
            )
        try:
            message = await channel.send(
                out.content,
                embed=out.embed or discord.utils.MISSING,
                file=file,
                view=render.make_view(out.buttons),
                allowed_mentions=requester_only(job),
                reference=reference or discord.utils.MISSING,
                nonce=job.delivery_key,
            )
        except (discord.Forbidden, discord.NotFound) as exc:
            self._count(exc)
            raise Undeliverable(f"cannot post in channel {job.channel_id}: {exc.text}") from exc
        await self._edit_status(job, render.status_done(job, message.jump_url, locale))
        return message.id

    async def failed(self, job: Job, reason: Words) -> None:
        ended = render.status_ended(job, reason, await self._locale(job))
        if job.status_message_id is not None:
            await self._edit_status(job, ended)
            return
        try:
            channel = await self._channel(job)
            await channel.send(
                f"<@{job.user_id}> {ended.content}",
                allowed_mentions=requester_only(job),
            )
        except (Undeliverable, discord.HTTPException) as exc:
            self._count(exc)
            log.warning("job=%s could not tell the requester it failed: %s", job.id, exc)
