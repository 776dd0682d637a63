"""One error handler and the global gates for every command, button and modal.

``report`` turns any exception into a short ephemeral answer: a UserError's own text, fixed text for
known Discord errors, else a logged traceback and "Something went wrong (ref abc123)". The gates
(blocked, paused, channel/role policy, DMs, the bot's own permissions) run before any work.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import UserError
from bot.model import Requester
from bot.permissions import missing_for_posting
from cogs import render

if TYPE_CHECKING:
    from bot.app import FlexBot

log = logging.getLogger(__name__)

#: Commands that queue paid work: blocked members and paused servers are refused here.
QUEUEING_COMMANDS = frozenset({"edit", "rerun", "Edit with FLUX"})
#: Commands that are never gated (so an admin can always resume a paused server).
UNGATED_COMMANDS = frozenset({"flexadmin"})


class Refused(app_commands.CheckFailure):
    """A gate said no; the message is for the member."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


def requester_of(interaction: discord.Interaction[Any]) -> Requester:
    """Who is asking, where, with which roles (for budgets and policy)."""
    user = interaction.user
    roles = (
        tuple(r.id for r in user.roles if not r.is_default())
        if isinstance(user, discord.Member)
        else ()
    )
    return Requester(user.id, interaction.guild_id, interaction.channel_id, roles)


def channel_is_nsfw(interaction: discord.Interaction[Any]) -> bool:
    is_nsfw = getattr(interaction.channel, "is_nsfw", None)
    return bool(is_nsfw()) if callable(is_nsfw) else False


def is_moderator(interaction: discord.Interaction[Any]) -> bool:
    """Manage Messages in this channel (from the interaction payload)."""
    return interaction.guild_id is not None and interaction.permissions.manage_messages


def missing_permissions(interaction: discord.Interaction[Any]) -> list[str]:
    """What the bot lacks in this channel to post a result, by name."""
    if interaction.guild_id is None:
        return []
    return missing_for_posting(
        interaction.app_permissions, thread=isinstance(interaction.channel, discord.Thread)
    )


async def gate(interaction: discord.Interaction[Any], *, queueing: bool) -> None:
    """Raise Refused unless this member may use Flexbot here (and queue work, if ``queueing``)."""
    bot: FlexBot = interaction.client
    who = requester_of(interaction)
    try:
        await bot.core.admin.channel_gate(
            who.guild_id, interaction.channel_id or 0, who.role_ids, channel_is_nsfw(interaction)
        )
        if queueing:
            await bot.core.engine.check_access(who)
    except UserError as refusal:
        raise Refused(render.refusal_text(refusal)) from None
    if queueing:
        missing = missing_permissions(interaction)
        if missing:
            raise Refused(
                "I can't post results in this channel: I am missing "
                + ", ".join(missing)
                + ". Ask a server admin to grant them, or use another channel."
            )


def _known(error: BaseException) -> str | None:
    if isinstance(error, UserError):
        return str(error)
    if isinstance(error, Refused):
        return error.message
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"Slow down: try again in {error.retry_after:.0f} s."
    if isinstance(error, app_commands.MissingPermissions):
        return "You need " + ", ".join(error.missing_permissions) + " to do that."
    if isinstance(error, app_commands.BotMissingPermissions):
        return "I need " + ", ".join(error.missing_permissions) + " in this channel."
    if isinstance(error, app_commands.NoPrivateMessage):
        return "This works in servers only."
    if isinstance(error, app_commands.CheckFailure):
        return "You can't use that here."
    if isinstance(error, app_commands.TransformerError):
        return f"`{error.value}` is not a valid value there."
    if isinstance(error, discord.Forbidden):
        return "Discord did not let me do that here (missing permissions)."
    if isinstance(error, discord.NotFound):
        return "That message or channel no longer exists."
    return None


def unwrap(error: BaseException) -> BaseException:
    while isinstance(error, app_commands.CommandInvokeError | commands.CommandInvokeError):
        error = error.original
    return error


async def say(interaction: discord.Interaction[Any], text: str) -> None:
    """An ephemeral answer, whatever state the interaction is in."""
    response = interaction.response
    try:
        if not response.is_done():
            await response.send_message(text, ephemeral=True)
        elif response.type == discord.InteractionResponseType.deferred_channel_message:
            # Our commands defer ephemerally, so the original is the private answer.
            await interaction.edit_original_response(content=text, embed=None, view=None)
        else:
            await interaction.followup.send(text, ephemeral=True)
    except discord.HTTPException as exc:
        log.warning("could not answer interaction %s: %s", interaction.id, exc)


async def report(interaction: discord.Interaction[Any], error: BaseException) -> None:
    """Answer any failure: the member gets a short ephemeral message, bugs get a log ref."""
    error = unwrap(error)
    text = _known(error)
    if text is None:
        ref = secrets.token_hex(3)
        log.error("ref=%s unexpected error in interaction %s", ref, interaction.id, exc_info=error)
        text = f"Something went wrong (ref {ref}). Please try again; if it persists, tell an admin."
    await say(interaction, text)


def command_name(interaction: discord.Interaction[Any]) -> str:
    command = interaction.command
    if command is None:
        return ""
    root = getattr(command, "root_parent", None) or command
    return root.name


class Errors(commands.Cog):
    """Installs the tree-wide error handler and gates."""

    def __init__(self, bot: FlexBot) -> None:
        self.bot = bot

    async def cog_load(self) -> None:
        tree = self.bot.tree
        tree.on_error = self.on_app_command_error  # type: ignore[method-assign]
        tree.interaction_check = self.tree_check  # type: ignore[method-assign]

    async def on_app_command_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError
    ) -> None:
        await report(interaction, error)

    async def tree_check(self, interaction: discord.Interaction[Any]) -> bool:
        name = command_name(interaction)
        if name in UNGATED_COMMANDS:
            return True
        await gate(interaction, queueing=name in QUEUEING_COMMANDS)
        return True


async def setup(bot: FlexBot) -> None:
    await bot.add_cog(Errors(bot))
