"""The command tree owns the gates and the error handler for every app command (Red's RedTree).

Buttons and modals are not app commands: their callbacks call the same :func:`gate` and send
their errors to the same :func:`report`, so every entry point says no the same way.
"""

from __future__ import annotations

import logging
from typing import Any

import discord
from discord import app_commands

from bot.errors import UserError
from cogs.errors import report
from cogs.interactions import gate

log = logging.getLogger(__name__)

#: Commands that queue paid work: blocked members and paused servers are refused here.
QUEUEING_COMMANDS = frozenset({"edit", "rerun", "Edit with FLUX"})
#: Commands that are never gated (so an admin can always resume a paused server).
UNGATED_COMMANDS = frozenset({"flexadmin"})


def command_name(interaction: discord.Interaction[Any]) -> str:
    """The top-level command's name (``flexadmin`` for ``/flexadmin limits set``)."""
    command = interaction.command
    if command is None:
        return ""
    root = getattr(command, "root_parent", None) or command
    return root.name


class FlexTree(app_commands.CommandTree[Any]):
    """Gates before any command runs; one answer for any error after."""

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        name = command_name(interaction)
        if name in UNGATED_COMMANDS:
            return True
        try:
            await gate(interaction, queueing=name in QUEUEING_COMMANDS)
        except UserError as exc:
            await report(interaction, exc)
            return False
        return True

    async def on_error(
        self, interaction: discord.Interaction[Any], error: app_commands.AppCommandError, /
    ) -> None:
        await report(interaction, error)
