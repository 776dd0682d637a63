"""Delivery over Discord: results as new channel messages (bot token, never the interaction)."""

from __future__ import annotations

import io
import logging
from typing import TYPE_CHECKING

import discord

from bot.engine.delivery import Progress, Undeliverable
from bot.model import Job, usd

if TYPE_CHECKING:
    from bot.app import FlexBot

log = logging.getLogger(__name__)


class DiscordDelivery:
    """Posts results and failures in the job's channel, replying to its status message."""

    def __init__(self, bot: FlexBot) -> None:
        self.bot = bot

    async def _channel(self, job: Job) -> discord.abc.Messageable:
        if job.channel_id is None:
            raise Undeliverable("the job has no channel")
        channel = self.bot.get_channel(job.channel_id)
        if channel is None:
            try:
                channel = await self.bot.fetch_channel(job.channel_id)
            except (discord.NotFound, discord.Forbidden) as exc:
                raise Undeliverable(f"channel {job.channel_id} is gone or hidden ({exc.text})")
        if not isinstance(channel, discord.abc.Messageable):
            raise Undeliverable(f"channel {job.channel_id} cannot take messages")
        return channel

    async def progress(self, job: Job, progress: Progress) -> None:
        return None

    async def deliver(self, job: Job, image: bytes) -> int | None:
        channel = await self._channel(job)
        ext = "png" if job.params.output_format == "png" else "jpg"
        content = (
            f"<@{job.user_id}> job #{job.id} · seed {job.seed} · "
            f"{usd(job.cost_micros or 0)}"
        )
        try:
            message = await channel.send(
                content,
                file=discord.File(io.BytesIO(image), filename=f"flexbot-{job.id}.{ext}"),
                allowed_mentions=discord.AllowedMentions(
                    everyone=False, roles=False, users=[discord.Object(job.user_id)]
                ),
                nonce=job.delivery_key,
            )
        except (discord.Forbidden, discord.NotFound) as exc:
            raise Undeliverable(f"cannot post in channel {job.channel_id}: {exc.text}") from exc
        return message.id

    async def failed(self, job: Job, reason: str) -> None:
        try:
            channel = await self._channel(job)
            await channel.send(
                f"<@{job.user_id}> job #{job.id} ended without a result: {reason}",
                allowed_mentions=discord.AllowedMentions(
                    everyone=False, roles=False, users=[discord.Object(job.user_id)]
                ),
            )
        except (Undeliverable, discord.HTTPException):
            log.warning("job=%s could not tell the requester it failed", job.id)
