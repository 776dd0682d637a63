"""The fake gateway: one aiohttp WebSocket endpoint speaking Discord's JSON protocol in text frames.

discord.py asks for `compress=zlib-stream` but parses text frames as plain JSON (gateway.py
`received_message` only decompresses bytes), so the fake never compresses.

Sharding follows the gateway docs ("Sharding"): an IDENTIFY may carry `shard: [shard_id,
num_shards]` (none = `[0, 1]`); a guild's events go only to the sessions of shard
`(guild_id >> 22) % num_shards`, events without a guild (DMs) only to shard 0, and a shard id
not below its count is closed with 4010 "Invalid shard".
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

from .state import Json, shard_of

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_MS = 41250
INTENT_GUILD_MESSAGES = 1 << 9
CLOSE_INVALID_SHARD = 4010


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
    #: `(shard_id, num_shards)` from IDENTIFY; `(0, 1)` when it named none.
    shard: tuple[int, int] = (0, 1)

    @property
    def shard_id(self) -> int:
        """The shard this session runs."""
        return self.shard[0]

    @property
    def connected(self) -> bool:
        """Whether the session holds an open socket."""
        return self.ws is not None and not self.ws.closed

    def owns(self, guild_id: int | None) -> bool:
        """Whether Discord sends this guild's events (None: a DM's) to this session's shard."""
        if guild_id is None:
            return self.shard_id == 0
        return shard_of(guild_id, self.shard[1]) == self.shard_id

    def events(self, t: str) -> list[Json]:
        """The `d` of every dispatch of type `t` sent to this session."""
        return [frame["d"] for frame in self.log if frame["t"] == t]

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
    #: The shard the frame came from: its session's, or for IDENTIFY the one it asks for.
    shard_id: int | None = None


class Gateway:
    """Accepts bot connections, keeps sessions and dispatches events to them."""

    def __init__(
        self,
        *,
        token: str,
        ready_payload: Callable[[GatewaySession], Json],
        guild_payloads: Callable[[GatewaySession], list[Json]],
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
        self._resume_gate_shard: int | None = None
        self._sockets: set[web.WebSocketResponse] = set()

    @property
    def connected(self) -> bool:
        """Whether some bot holds an open gateway socket."""
        return any(not ws.closed for ws in self._sockets)

    def ops(self, op: int) -> list[ReceivedOp]:
        """Frames of one opcode the bot sent."""
        return [r for r in self.received if r.op == op]

    def shard_sessions(self, shard_id: int) -> list[GatewaySession]:
        """Every session (oldest first) that identified as `shard_id`."""
        return [s for s in self.sessions if s.shard_id == shard_id]

    def route(self, guild_id: int | None) -> list[GatewaySession]:
        """The sessions an event of `guild_id` (None: a DM) goes to: of the shard owning it, every
        live session and the newest one even while disconnected (it gets the event on RESUME)."""
        owners = [s for s in self.sessions if s.owns(guild_id)]
        targets = [s for s in owners if s.connected]
        newest: dict[tuple[int, int], GatewaySession] = {s.shard: s for s in owners}
        targets += [s for s in newest.values() if s not in targets]
        return targets

    async def dispatch(
        self, t: str, d: Json, *, guild_id: int | None, intent: int | None = None
    ) -> None:
        """Send an event of `guild_id` (None: not in a guild) to the sessions `route` names."""
        for session in self.route(guild_id):
            if intent is None or session.intents & intent:
                await session.send(t, d)

    def hold_resumes(self, *, shard_id: int | None = None) -> asyncio.Event:
        """Make RESUMEs (only `shard_id`'s if given) wait unanswered until the returned event is
        set: events sent meanwhile can only reach the bot by replay."""
        self._resume_gate = asyncio.Event()
        self._resume_gate_shard = shard_id
        return self._resume_gate

    async def drop(self, code: int = 4000, *, shard_id: int | None = None) -> int:
        """Close every open socket (as a network blip would), or only those of `shard_id`'s
        sessions; returns how many were closed."""
        sockets = [ws for ws in self._sockets if not ws.closed]
        if shard_id is not None:
            own = {s.ws for s in self.shard_sessions(shard_id)}
            sockets = [ws for ws in sockets if ws in own]
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
        shard_id = session.shard_id if session else None
        if op == Op.IDENTIFY and isinstance(data, dict):
            pair = _shard_pair(data.get("shard"))
            shard_id = pair[0] if pair else None
        elif op == Op.RESUME and isinstance(data, dict):
            resumed = next((s for s in self.sessions if s.id == data.get("session_id")), None)
            shard_id = resumed.shard_id if resumed else None
        self.received.append(
            ReceivedOp(int(op or 0), shown, session.id if session else None, shard_id)
        )
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
        shard = _shard_pair(data.get("shard"))
        if shard is None:
            await ws.close(code=CLOSE_INVALID_SHARD, message=b"Invalid shard.")
            return None
        session = GatewaySession(
            id=secrets.token_hex(16),
            intents=int(data.get("intents", 0)),
            identify=data,
            ws=ws,
            shard=shard,
        )
        self.sessions.append(session)
        await session.send("READY", self._ready_payload(session))
        self.ready_count += 1
        for guild in self._guild_payloads(session):
            await session.send("GUILD_CREATE", guild)
        return session

    async def _resume(self, ws: web.WebSocketResponse, data: Json) -> GatewaySession | None:
        session = next((s for s in self.sessions if s.id == data.get("session_id")), None)
        if session is None or data.get("token") != self._token:
            await ws.send_str(json.dumps({"op": Op.INVALID_SESSION, "d": False}))
            return None
        if self._resume_gate is not None and self._resume_gate_shard in (None, session.shard_id):
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


def _shard_pair(value: Any) -> tuple[int, int] | None:
    """IDENTIFY's `shard` as `(shard_id, num_shards)`; `(0, 1)` when absent; None when Discord
    would close the session with 4010 Invalid shard."""
    if value is None:
        return (0, 1)
    if not isinstance(value, list) or len(value) != 2:
        return None
    shard_id, count = value
    if not isinstance(shard_id, int) or not isinstance(count, int):
        return None
    if not 0 <= shard_id < count:
        return None
    return (shard_id, count)
