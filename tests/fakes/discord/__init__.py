"""A fake Discord (REST, gateway, CDN) that unmodified discord.py talks to over 127.0.0.1."""

from .clock import FakeClock
from .server import FakeDiscord, RecordedRequest
from .state import (
    FakeAttachment,
    FakeChannel,
    FakeGuild,
    FakeInteraction,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
    MessageFlag,
    Perm,
)
from .validate import ApiError

__all__ = [
    "ApiError",
    "FakeAttachment",
    "FakeChannel",
    "FakeClock",
    "FakeDiscord",
    "FakeGuild",
    "FakeInteraction",
    "FakeMember",
    "FakeMessage",
    "FakeRole",
    "FakeUser",
    "MessageFlag",
    "Perm",
    "RecordedRequest",
]
