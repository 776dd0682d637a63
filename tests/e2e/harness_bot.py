"""A tiny real discord.py bot that proves the fake Discord harness works end to end.

Run as `python tests/e2e/harness_bot.py` with the same environment `flexbot run` reads
(DISCORD_TOKEN, FLEXBOT_DISCORD_API_BASE, FLEXBOT_DISCORD_GATEWAY_URL,
FLEXBOT_DISCORD_SYNC_GUILDS), applying the same two overrides before login.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import signal
from typing import Any

import discord
import yarl
from discord import app_commands
from discord.ext import commands

log = logging.getLogger("harness_bot")


class RerunButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]], template=r"harness:rerun:(?P<job>\d+)"
):
    """A per-job button whose state lives in its custom_id, so it works after a restart."""

    def __init__(self, job: int) -> None:
        super().__init__(discord.ui.Button(label="Rerun", custom_id=f"harness:rerun:{job}"))
        self.job = job

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Button[Any],
        match: re.Match[str],
        /,
    ) -> RerunButton:
        return cls(int(match["job"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.defer()
        channel = interaction.channel
        assert isinstance(channel, discord.abc.Messageable)
        await channel.send(
            f"rerun of job {self.job} for {interaction.user.mention} (pid {os.getpid()})",
            allowed_mentions=discord.AllowedMentions(users=True),
        )


class PromptModal(discord.ui.Modal, title="Edit with FLUX"):
    """Asks for a prompt for the message the context menu was used on."""

    prompt: discord.ui.TextInput[PromptModal] = discord.ui.TextInput(
        label="Prompt", custom_id="prompt", max_length=200
    )

    def __init__(self, source: discord.Message) -> None:
        super().__init__(custom_id="harness:modal")
        self.source = source

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        await interaction.response.send_message(
            f"prompt={self.prompt.value} source={self.source.id} "
            f"images={len(self.source.attachments)}"
        )


class HarnessBot(commands.Bot):
    """The harness bot: commands are registered in setup_hook like the product does."""

    def __init__(self) -> None:
        super().__init__(command_prefix=commands.when_mentioned, intents=discord.Intents.default())

    async def setup_hook(self) -> None:
        self.add_dynamic_items(RerunButton)
        self.tree.add_command(edit)
        self.tree.add_command(post)
        self.tree.add_command(
            app_commands.ContextMenu(name="Edit with FLUX", callback=edit_with_flux)
        )
        guilds = [g for g in os.environ.get("FLEXBOT_DISCORD_SYNC_GUILDS", "").split(",") if g]
        if guilds:
            for gid in guilds:
                guild = discord.Object(int(gid))
                self.tree.copy_global_to(guild=guild)
                await self.tree.sync(guild=guild)
        else:
            await self.tree.sync()


@app_commands.command(name="edit", description="Edit an image")
async def edit(
    interaction: discord.Interaction[Any], image: discord.Attachment, prompt: str
) -> None:
    await interaction.response.defer(thinking=True)
    data = await image.read()
    view = discord.ui.View(timeout=None)
    view.add_item(RerunButton(interaction.id % 1_000_000))
    await interaction.edit_original_response(
        content=f"edited: {prompt}",
        attachments=[discord.File(io.BytesIO(b"EDITED:" + data), filename="out.png")],
        view=view,
    )


@app_commands.command(name="post", description="Post text to a channel")
async def post(
    interaction: discord.Interaction[Any], channel: discord.TextChannel, text: str
) -> None:
    target = interaction.client.get_channel(channel.id)
    assert isinstance(target, discord.TextChannel)
    try:
        await target.send(text)
    except discord.Forbidden as exc:
        await interaction.response.send_message(
            f"I can't post in {channel.mention} (Discord error {exc.code}).", ephemeral=True
        )
        return
    await interaction.response.send_message(f"Posted in {channel.mention}.", ephemeral=True)


async def edit_with_flux(interaction: discord.Interaction[Any], message: discord.Message) -> None:
    await interaction.response.send_modal(PromptModal(message))


async def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    discord.http.Route.BASE = os.environ["FLEXBOT_DISCORD_API_BASE"]
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(
        os.environ["FLEXBOT_DISCORD_GATEWAY_URL"]
    )
    bot = HarnessBot()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, lambda: asyncio.ensure_future(bot.close()))
    async with bot:
        await bot.start(os.environ["DISCORD_TOKEN"])


if __name__ == "__main__":
    asyncio.run(main())
