"""Private gallery links: HMAC-SHA256 over (server, member, expiry) with ``GALLERY_SECRET``.

A link reads ``/s/<guild>/<member>.<expires>.<mac>/``. The MAC covers the server in the path, so
a link made for one server is refused by every other; a link past its expiry is refused too.
Checks compare in constant time, and nothing here logs a link or the secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

from bot.secret import Secret

_TOKEN = re.compile(r"^(\d{1,20})\.(\d{1,12})\.([A-Za-z0-9_-]{43})$")
#: Bound into every MAC so a gallery MAC can never be mistaken for another use of the secret.
_PURPOSE = b"flexbot-gallery-v1"


@dataclass(frozen=True, slots=True)
class Grant:
    """What a valid link lets its holder see: one server's gallery, until ``expires``."""

    guild_id: int
    user_id: int
    expires: int


class LinkSigner:
    """Makes and checks private gallery link tokens."""

    def __init__(self, secret: Secret) -> None:
        self._key = secret.reveal().encode()

    def _mac(self, guild_id: int, user_id: int, expires: int) -> str:
        message = b"|".join(
            [_PURPOSE, str(guild_id).encode(), str(user_id).encode(), str(expires).encode()]
        )
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def token(self, guild_id: int, user_id: int, expires: int) -> str:
        """The path segment that opens ``guild_id``'s gallery until ``expires`` (Unix time)."""
        return f"{user_id}.{expires}.{self._mac(guild_id, user_id, expires)}"

    def check(self, guild_id: int, token: str, now: float) -> Grant | None:
        """The grant ``token`` carries for ``guild_id``, or None (malformed, forged, another
        server's, or expired: the caller answers all of them alike)."""
        match = _TOKEN.match(token)
        if match is None:
            return None
        user_id, expires = int(match[1]), int(match[2])
        expected = self._mac(guild_id, user_id, expires)
        if not hmac.compare_digest(expected.encode(), match[3].encode()):
            return None
        if now >= expires:
            return None
        return Grant(guild_id, user_id, expires)
