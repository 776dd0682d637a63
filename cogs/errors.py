"""How the Discord layer says no, and answers any failure.

The core says no with one exception, :class:`~bot.errors.UserError`. ``report`` turns any error
into a short ephemeral answer in the member's Discord locale: a UserError's own words (channels
and roles as mentions; translated from its template), fixed text for known Discord errors, else a
logged traceback and "Something went wrong (ref abc123)".
:class:`Refused` only carries a UserError through discord.py's check machinery, which aborts a
command only on an ``AppCommandError``.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.admin_facts import GateRefused
from bot.errors import UserError
from bot.i18n import ENGLISH, Duration, language_of, translate

log = logging.getLogger(__name__)


class Refused(app_commands.CheckFailure):
    """A check said no: the UserError, wrapped so discord.py aborts the command."""

    def __init__(self, error: UserError) -> None:
        self.error = error
        super().__init__(str(error))


def locale_of(interaction: discord.Interaction[Any]) -> str:
    """The member's Discord locale (``fr``, ``pt-BR``): private answers are in their language."""
    return str(interaction.locale)


def refusal_text(refusal: UserError, locale: str | None = None) -> str:
    """A no from the core in the member's words and language, naming channels and roles as
    mentions. English is the core's own text; other languages translate its template."""
    if isinstance(refusal, GateRefused) and refusal.channel_ids:
        where = ", ".join(f"<#{c}>" for c in refusal.channel_ids)
        return translate(
            locale, "Flexbot is not enabled in this channel. Try {where}.", where=where
        )
    if isinstance(refusal, GateRefused) and refusal.role_id is not None:
        return translate(
            locale, "You need the {role} role to use Flexbot here.", role=f"<@&{refusal.role_id}>"
        )
    if language_of(locale) == ENGLISH:
        return refusal.message
    return translate(locale, refusal.template, **refusal.params)


def _known(error: BaseException, locale: str | None) -> str | None:
    if isinstance(error, UserError):
        return refusal_text(error, locale)
    if isinstance(error, app_commands.CommandOnCooldown):
        return translate(
            locale, "Slow down: try again in {wait}.", wait=Duration(error.retry_after)
        )
    if isinstance(error, app_commands.MissingPermissions):
        missing = ", ".join(error.missing_permissions)
        return translate(locale, "You need {permissions} to do that.", permissions=missing)
    if isinstance(error, app_commands.BotMissingPermissions):
        missing = ", ".join(error.missing_permissions)
        return translate(locale, "I need {permissions} in this channel.", permissions=missing)
    if isinstance(error, app_commands.NoPrivateMessage):
        return translate(locale, "This works in servers only.")
    if isinstance(error, app_commands.CheckFailure):
        return translate(locale, "You can't use that here.")
    if isinstance(error, app_commands.TransformerError):
        return translate(locale, "`{value}` is not a valid value there.", value=error.value)
    if isinstance(error, discord.Forbidden):
        return translate(locale, "Discord did not let me do that here (missing permissions).")
    if isinstance(error, discord.NotFound):
        return translate(locale, "That message or channel no longer exists.")
    return None


def unwrap(error: BaseException) -> BaseException:
    while True:
        if isinstance(error, app_commands.CommandInvokeError | commands.CommandInvokeError):
            error = error.original
        elif isinstance(error, Refused):
            error = error.error
        else:
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
    locale = locale_of(interaction)
    text = _known(error, locale)
    if text is None:
        ref = secrets.token_hex(3)
        log.error("ref=%s unexpected error in interaction %s", ref, interaction.id, exc_info=error)
        text = translate(
            locale,
            "Something went wrong (ref {ref}). Please try again; if it persists, tell an admin.",
            ref=ref,
        )
    await say(interaction, text)
