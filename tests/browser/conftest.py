"""Browser tests drive the real bot on the fake Discord: the end-to-end fixtures, reused."""

from tests.e2e.conftest import discord, start_bot

__all__ = ["discord", "start_bot"]
