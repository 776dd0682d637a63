"""Uploads to fal storage: a short-lived token from the rest API, then the bytes to its host.

The token goes only to the storage host it names; the fal key goes only to the rest API that
hands the token out. A refused token is fetched once more before the upload gives up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime

from bot.fal.errors import FalAuthError, FalError
from bot.fal.transport import Call, Transport, host_of
from bot.secret import Secret

log = logging.getLogger(__name__)

_TOKEN_MARGIN = 60.0


@dataclass(slots=True)
class StorageToken:
    token: Secret
    token_type: str
    base_url: str
    expires: float  # time.monotonic() deadline


class Storage:
    """fal storage (``fal-cdn-v3``) for one client: the token cache and uploads."""

    def __init__(self, transport: Transport, rest_url: str) -> None:
        self._transport = transport
        self._rest_url = rest_url
        self._token: StorageToken | None = None
        self._token_lock = asyncio.Lock()

    async def upload(self, data: bytes, content_type: str, file_name: str) -> str:
        """Upload bytes to fal storage and return the public ``access_url``."""
        for fresh in (False, True):
            token = await self.token(force=fresh)
            url = f"{token.base_url.rstrip('/')}/files/upload"
            headers = {
                "Content-Type": content_type,
                "Authorization": f"{token.token_type} {token.token.reveal()}",
                "X-Fal-File-Name": file_name,
            }
            try:
                response = await self._transport.send(
                    "POST", url, Call(auth="none", extra_headers=headers), content=data
                )
            except FalAuthError:
                if fresh:
                    raise
                log.info("fal storage token refused; fetching a new one")
                continue
            body = self._transport.json(response)
            access_url = body.get("access_url") if isinstance(body, dict) else None
            if not isinstance(access_url, str):
                raise FalError("fal storage returned no access_url")
            log.debug("uploaded %d bytes to fal storage host=%s", len(data), host_of(access_url))
            return access_url
        raise AssertionError("unreachable")

    async def token(self, *, force: bool) -> StorageToken:
        """The cached token while it has a minute left, else (or when ``force``) a new one."""
        async with self._token_lock:
            now = time.monotonic()
            if not force and self._token is not None and self._token.expires - _TOKEN_MARGIN > now:
                return self._token
            url = f"{self._rest_url}/storage/auth/token"
            response = await self._transport.send(
                "POST", url, Call(), params={"storage_type": "fal-cdn-v3"}, json={}
            )
            body = self._transport.json(response)
            if not isinstance(body, dict) or not all(
                isinstance(body.get(k), str) for k in ("token", "token_type", "base_url")
            ):
                raise FalError("fal storage returned an unusable token response")
            self._token = StorageToken(
                token=Secret(body["token"]),
                token_type=body["token_type"],
                base_url=body["base_url"],
                expires=now + self._token_lifetime(body.get("expires_at")),
            )
            self._transport.storage_token = self._token.token
            return self._token

    @staticmethod
    def _token_lifetime(expires_at: object) -> float:
        """Seconds until ``expires_at`` (ISO 8601); unknown means use it once and refresh."""
        if not isinstance(expires_at, str):
            return 0.0
        try:
            when = datetime.fromisoformat(expires_at)
        except ValueError:
            return 0.0
        if when.tzinfo is None:
            return 0.0
        return max(0.0, when.timestamp() - time.time())
