"""Safe downloads of fal's outputs: the URL, host, redirect and address checks, and the deadline.

Output downloads fetch a URL fal hands us, so they are fenced: https only, the host must be one
of ``result_hosts`` (or a subdomain of one), every address it resolves to must be public, and
redirects are followed by hand (at most ``MAX_REDIRECTS``) with each hop checked the same way.
The address actually connected to is checked again before the body is read (unless an https
proxy from the environment stands in between). The whole download, retries and redirects
included, has one deadline, so a server trickling bytes cannot hold a worker past it.

The single exception is ``insecure_local_origin``: the ``http://127.0.0.1:PORT`` origin of a
fake fal on this machine, whose outputs skip those checks. It must be a loopback IP literal, and
no setting names it: ``FalClient.from_settings`` passes the queue's own origin only when that
origin is one (a dry run's fake, or the fake the end-to-end tests point ``fal_queue_url`` at),
so a production configuration with ``https://queue.fal.run`` can never enable it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import logging
import socket
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urljoin, urlsplit

import httpx

from bot.fal.errors import (
    FalDownloadError,
    FalDownloadRefusedError,
    FalDownloadTimeoutError,
)
from bot.fal.retry import Transient, retry_after
from bot.fal.transport import USER_AGENT, Transport, host_of

log = logging.getLogger(__name__)

#: Where fal serves outputs. fal's own runner toolkit uploads results to ``https://fal.media``
#: and ``https://v3.fal.media`` (fal-ai/fal, projects/fal/src/fal/toolkit/file/providers/fal.py,
#: ``_FAL_CDN``/``_FAL_CDN_V3``); the v3 storage token's ``base_url`` may name another
#: subdomain, and live results are seen on ``v3b.fal.media``. fal's docs show result URLs on
#: ``v3.fal.media`` (shared/reference/fal-queue-api.md §3). Each entry also allows its
#: subdomains, so ``fal.media`` covers all of these.
DEFAULT_RESULT_HOSTS = ("fal.media",)
MAX_REDIRECTS = 3
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_DEADLINE_PER_TIMEOUT = 4  # the whole download may take this many per-call timeouts


def _origin(parts: SplitResult) -> str | None:
    """``scheme://host:port`` with the default port spelled out; None if there is no host."""
    try:
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.scheme not in ("http", "https"):
        return None
    port = port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname.lower()
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown}:{port}"


def loopback_origin(url: str) -> str | None:
    """The origin of ``url`` if its host is a loopback IP literal (a local fake), else None."""
    parts = urlsplit(url)
    try:
        address = ipaddress.ip_address(parts.hostname or "")
    except ValueError:
        return None
    return _origin(parts) if address.is_loopback else None


def _is_public(address: str) -> bool:
    """Whether an IP may be downloaded from: not private, loopback, link-local, reserved, ..."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def parse_result_hosts(hosts: str | Sequence[str]) -> tuple[str, ...]:
    """Host names from a list or a comma/space separated string, lower-cased, validated."""
    items = hosts.replace(",", " ").split() if isinstance(hosts, str) else list(hosts)
    parsed = []
    for item in items:
        host = item.strip().lower().removeprefix("*.").strip(".")
        if not host or any(c in host for c in "/:@?#[] "):
            raise ValueError(f"fal result host {item!r} is not a host name (like fal.media)")
        parsed.append(host)
    if not parsed:
        raise ValueError("no fal result hosts: no output could ever be downloaded")
    return tuple(parsed)


@dataclass(frozen=True, slots=True)
class DownloadRules:
    """Where outputs may come from and how long one download may take, validated."""

    result_hosts: tuple[str, ...]
    deadline: float
    local_origin: str | None

    @classmethod
    def build(
        cls,
        result_hosts: str | Sequence[str],
        download_deadline: float | None,
        timeout: float,
        insecure_local_origin: str | None,
    ) -> DownloadRules:
        """The rules for ``FalClient``'s options of the same names; bad ones are a ValueError."""
        hosts = parse_result_hosts(result_hosts)
        deadline = (
            download_deadline if download_deadline is not None else _DEADLINE_PER_TIMEOUT * timeout
        )
        if deadline <= 0:
            raise ValueError("download_deadline must be positive")
        local_origin: str | None = None
        if insecure_local_origin is not None:
            local_origin = loopback_origin(insecure_local_origin)
            if local_origin is None:
                raise ValueError(
                    "insecure_local_origin must be http(s)://<loopback IP>:port, the address of "
                    "a fake fal on this machine"
                )
        return cls(hosts, deadline, local_origin)


class Downloader:
    """Fetches outputs under ``DownloadRules`` through a client's transport."""

    def __init__(self, transport: Transport, rules: DownloadRules) -> None:
        self._transport = transport
        self._rules = rules
        # Behind an https proxy from the environment the connected peer is the proxy, which
        # may well be private; the proxy resolves the host itself, so only our lookup applies.
        self._check_peers = not (
            transport.http.trust_env and {"https", "all"} & urllib.request.getproxies().keys()
        )

    async def download(self, url: str, max_bytes: int) -> bytes:
        """Fetch an output (an https URL on a result host, or a ``data:`` URI).

        Refuses more than ``max_bytes``, any other host or address (``FalDownloadRefusedError``)
        and anything still running at the deadline (``FalDownloadTimeoutError``)."""
        if url.startswith("data:"):
            return self._decode_data_uri(url, max_bytes)
        try:
            async with asyncio.timeout(self._rules.deadline) as deadline:
                return await self._transport.retrying(lambda: self._download_once(url, max_bytes))
        except TimeoutError as exc:
            if not deadline.expired():
                raise
            log.warning("fal download from %s passed its deadline", host_of(url))
            raise FalDownloadTimeoutError(
                f"download from {host_of(url)} did not finish within {self._rules.deadline:g}s",
                error_type="download_deadline",
                retryable=True,
            ) from exc

    async def _download_once(self, url: str, max_bytes: int) -> bytes:
        # Outputs live on public CDN hosts: no Authorization header, whoever the host is.
        headers = {"User-Agent": USER_AGENT}
        current = url
        for _hop in range(MAX_REDIRECTS + 1):
            local = await self._check_result_url(current)
            try:
                async with self._transport.http.stream(
                    "GET",
                    current,
                    headers=headers,
                    timeout=self._transport.timeout,
                    follow_redirects=False,
                ) as response:
                    if not local and self._check_peers:
                        self._check_peer(response, current)
                    location = response.headers.get("location")
                    if response.status_code in _REDIRECT_CODES and location:
                        current = urljoin(current, location)
                        continue
                    return await self._read_output(response, current, max_bytes)
            except httpx.TimeoutException as exc:
                raise Transient(
                    FalDownloadError(f"download from {host_of(current)} timed out", retryable=True)
                ) from exc
            except httpx.TransportError as exc:
                raise Transient(
                    FalDownloadError(
                        f"download from {host_of(current)} failed: {type(exc).__name__}",
                        retryable=True,
                    )
                ) from exc
        raise FalDownloadRefusedError(
            f"download from {host_of(url)} redirected more than {MAX_REDIRECTS} times",
            error_type="too_many_redirects",
        )

    async def _check_result_url(self, url: str) -> bool:
        """Refuse ``url`` unless it is https on a result host resolving only to public
        addresses; True when it is the fake's ``insecure_local_origin`` instead."""
        parts = urlsplit(url)
        origin = _origin(parts)
        if origin is not None and origin == self._rules.local_origin:
            return True
        host = (parts.hostname or "").rstrip(".")
        if parts.scheme != "https" or origin is None:
            raise self._refused(url, "is not an https URL")
        if not any(host == h or host.endswith("." + h) for h in self._rules.result_hosts):
            raise self._refused(url, "is not one of fal_result_hosts")
        port = parts.port or 443
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except socket.gaierror as exc:
            raise Transient(
                FalDownloadError(f"could not resolve {host_of(url)}", retryable=True)
            ) from exc
        addresses = {str(info[4][0]) for info in infos}
        if not addresses or not all(_is_public(a) for a in addresses):
            raise self._refused(url, "resolves to a private, loopback or link-local address")
        return False

    def _check_peer(self, response: httpx.Response, url: str) -> None:
        """Refuse if the address actually connected to is not public (a DNS answer that
        changed between our lookup and the connection); checked before any body is read."""
        stream = response.extensions.get("network_stream")
        peer = stream.get_extra_info("server_addr") if stream is not None else None
        if isinstance(peer, tuple) and peer and not _is_public(str(peer[0])):
            raise self._refused(url, "connected to a private, loopback or link-local address")

    @staticmethod
    def _refused(url: str, why: str) -> FalDownloadRefusedError:
        log.warning("refused fal output from %s: %s", host_of(url), why)
        return FalDownloadRefusedError(
            f"refused to download from {host_of(url)}: it {why}", error_type="download_refused"
        )

    async def _read_output(self, response: httpx.Response, url: str, max_bytes: int) -> bytes:
        if not response.is_success:
            await response.aread()
            error = self._transport.error(response, None)
            # Only the status: a CDN's error body may quote the signed URL it refused.
            download_error = FalDownloadError(
                f"download from {host_of(url)} failed: HTTP {response.status_code}",
                status=error.status,
                error_type=error.error_type,
                retryable=error.retryable,
            )
            if response.status_code in (408, 429) or response.status_code >= 500:
                raise Transient(download_error, retry_after(response))
            raise download_error
        length = response.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            raise self._too_large(url, int(length), max_bytes)
        buffer = bytearray()
        async for chunk in response.aiter_bytes():
            buffer += chunk
            if len(buffer) > max_bytes:
                raise self._too_large(url, len(buffer), max_bytes)
        return bytes(buffer)

    @staticmethod
    def _too_large(url: str, size: int, max_bytes: int) -> FalDownloadError:
        return FalDownloadError(
            f"output from {host_of(url)} is larger than {max_bytes} bytes (got {size} so far)",
            error_type="output_too_large",
        )

    @staticmethod
    def _decode_data_uri(url: str, max_bytes: int) -> bytes:
        header, _, payload = url.partition(",")
        if not header.endswith(";base64"):
            raise FalDownloadError("data URI output is not base64")
        if len(payload) * 3 // 4 > max_bytes + 3:
            raise FalDownloadError(
                f"data URI output is larger than {max_bytes} bytes", error_type="output_too_large"
            )
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise FalDownloadError("data URI output is not valid base64") from exc
        if len(data) > max_bytes:
            raise FalDownloadError(
                f"data URI output is larger than {max_bytes} bytes", error_type="output_too_large"
            )
        return data
