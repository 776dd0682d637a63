"""The fake gateway: one aiohttp WebSocket endpoint speaking Discord's JSON protocol in text frames.

discord.py asks for `compress=zlib-stream` but parses text frames as plain JSON (gateway.py
`received_message` only decompresses bytes), so the fake never compresses.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from .state import Json

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_MS = 41250
INTENT_GUILD_MESSAGES = 1 << 9


class Op:
    """Gateway opcodes."""

    DISPATCH = 0
    HEARTBEAT = 1
    IDENTIFY = 2
    PRESENCE = 3
    VOICE_STATE = 4
    RESUME = 6
    RECONNECT = 7
    REQUEST_MEMBERS = 8
    INVALID_SESSION = 9
    HELLO = 10
    HEARTBEAT_ACK = 11


@dataclass(eq=False)
class GatewaySession:
    """A gateway session (IDENTIFY); it outlives its socket so that a RESUME can replay events."""

    id: str
    intents: int
    identify: Json
    seq: int = 0
    log: list[Json] = field(default_factory=list)
    ws: web.WebSocketResponse | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def send(self, t: str, d: Any) -> None:
        """Number and log a dispatch; deliver it now if connected, else on RESUME."""
        async with self.lock:
            self.seq += 1
            frame = {"op": Op.DISPATCH, "t": t, "s": self.seq, "d": d}
            self.log.append(frame)
            if self.ws is not None and not self.ws.closed:
                await self.ws.send_str(json.dumps(frame))


@dataclass
class ReceivedOp:
    """A frame the bot sent, kept for assertions (tokens removed)."""

    op: int
    data: Any
    session_id: str | None


class Gateway:
    """Accepts bot connections, keeps sessions and dispatches events to them."""

    def __init__(
        self,
        *,
        token: str,
        ready_payload: Callable[[GatewaySession], Json],
        guild_payloads: Callable[[], list[Json]],
        members_chunk: Callable[[Json], Json],
        changed: Callable[[], Awaitable[None]],
        resume_url: Callable[[], str],
    ) -> None:
        self._token = token
        self._ready_payload = ready_payload
        self._guild_payloads = guild_payloads
        self._members_chunk = members_chunk
        self._changed = changed
        self._resume_url = resume_url
        self.sessions: list[GatewaySession] = []
        self.received: list[ReceivedOp] = []
        self.connect_queries: list[dict[str, str]] = []
        self.ready_count = 0
        self.resumed_count = 0
        self.replayed_count = 0
        self._resume_gate: asyncio.Event | None = None
        self._sockets: set[web.WebSocketResponse] = set()

    @property
    def connected(self) -> bool:
        """Whether some bot holds an open gateway socket."""
        return any(not ws.closed for ws in self._sockets)

    def ops(self, op: int) -> list[ReceivedOp]:
        """Frames of one opcode the bot sent."""
        return [r for r in self.received if r.op == op]

    async def dispatch(self, t: str, d: Json, *, intent: int | None = None) -> None:
        """Send an event to every live session, and to the newest one even while disconnected."""
        targets = [s for s in self.sessions if s.ws is not None and not s.ws.closed]
        if self.sessions and self.sessions[-1] not in targets:
            targets.append(self.sessions[-1])
        for session in targets:
            if intent is None or session.intents & intent:
                await session.send(t, d)

    def hold_resumes(self) -> asyncio.Event:
        """Make RESUMEs wait (unanswered) until the returned event is set: events sent meanwhile
        can only reach the bot by replay."""
        self._resume_gate = asyncio.Event()
        return self._resume_gate

    async def drop(self, code: int = 4000) -> int:
        """Close every open socket (as a network blip would); returns how many were closed."""
        sockets = [ws for ws in self._sockets if not ws.closed]
        for ws in sockets:
            await ws.close(code=code, message=b"fake discord dropped the connection")
        return len(sockets)

    async def close(self) -> None:
        """Close all sockets at server shutdown."""
        await self.drop(code=1001)

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """The WebSocket endpoint."""
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=0)
        await ws.prepare(request)
        self._sockets.add(ws)
        self.connect_queries.append(dict(request.query))
        session: GatewaySession | None = None
        try:
            await ws.send_str(
                json.dumps({"op": Op.HELLO, "d": {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}})
            )
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                session = await self._on_frame(ws, frame, session)
        finally:
            self._sockets.discard(ws)
            if session is not None and session.ws is ws:
                session.ws = None
            await self._changed()
        return ws

    async def _on_frame(
        self, ws: web.WebSocketResponse, frame: Json, session: GatewaySession | None
    ) -> GatewaySession | None:
        op = frame.get("op")
        data = frame.get("d")
        shown = dict(data) if isinstance(data, dict) else data
        if isinstance(shown, dict):
            shown.pop("token", None)
        self.received.append(ReceivedOp(int(op or 0), shown, session.id if session else None))
        if op == Op.HEARTBEAT:
            await ws.send_str(json.dumps({"op": Op.HEARTBEAT_ACK}))
        elif op == Op.IDENTIFY:
            session = await self._identify(ws, data)
        elif op == Op.RESUME:
            session = await self._resume(ws, data)
        elif op == Op.REQUEST_MEMBERS and session is not None:
            await session.send("GUILD_MEMBERS_CHUNK", self._members_chunk(data))
        await self._changed()
        return session

    async def _identify(self, ws: web.WebSocketResponse, data: Json) -> GatewaySession | None:
        if data.get("token") != self._token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return None
        session = GatewaySession(
            id=secrets.token_hex(16), intents=int(data.get("intents", 0)), identify=data, ws=ws
        )
        self.sessions.append(session)
        await session.send("READY", self._ready_payload(session))
        self.ready_count += 1
        for guild in self._guild_payloads():
            await session.send("GUILD_CREATE", guild)
        return session

    async def _resume(self, ws: web.WebSocketResponse, data: Json) -> GatewaySession | None:
        session = next((s for s in self.sessions if s.id == data.get("session_id")), None)
        if session is None or data.get("token") != self._token:
            await ws.send_str(json.dumps({"op": Op.INVALID_SESSION, "d": False}))
            return None
        if self._resume_gate is not None:
            await self._changed()
            await self._resume_gate.wait()
        async with session.lock:
            session.ws = ws
            last = int(data.get("seq") or 0)
            for frame in session.log:
                if frame["s"] > last:
                    await ws.send_str(json.dumps(frame))
                    self.replayed_count += 1
        await session.send("RESUMED", {})
        self.resumed_count += 1
        return session
