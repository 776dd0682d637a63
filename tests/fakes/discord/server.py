"""FakeDiscord: the world, the HTTP/WebSocket server on 127.0.0.1 and the test-side driver API.

Tests act as Discord users (`slash`, `click`, `context_menu`, `submit_modal`, `channel.post`) and
read what the bot did from per-channel transcripts. Every state change notifies one
`asyncio.Condition`, so `wait_for` wakes on changes instead of polling.
"""

from __future__ import annotations

import asyncio
import mimetypes
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from .clock import FakeClock
from .faults import Faults
from .gateway import INTENT_GUILD_MESSAGES, Gateway, GatewaySession
from .openapi import OpenApi, Violation
from .rest import RestApi
from .state import (
    ChannelType,
    FakeAttachment,
    FakeChannel,
    FakeGuild,
    FakeInteraction,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
    Json,
    MessageFlag,
    Perm,
    Snowflakes,
    resolve_mentions,
    walk_components,
)

T = TypeVar("T")

FAKE_TOKEN = "fake-bot-token"
TOKEN_LIFETIME_S = 15 * 60
CDN_URL_LIFETIME_S = 24 * 60 * 60


@dataclass
class RecordedRequest:
    """A REST request the bot made, with the fake's answer."""

    method: str
    route: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    files: list[tuple[str, bytes, str | None]]
    status: int = 0
    violations: list[Violation] = field(default_factory=list)

    @property
    def key(self) -> str:
        """`METHOD /template`, the name faults and `requests_for` use."""
        return f"{self.method} {self.route}"


class InteractionType:
    """Interaction type numbers."""

    PING = 1
    APPLICATION_COMMAND = 2
    MESSAGE_COMPONENT = 3
    AUTOCOMPLETE = 4
    MODAL_SUBMIT = 5


class FakeDiscord:
    """A fake Discord (REST + gateway + CDN) with two guilds, driven from the test's event loop.

    `guild` is the one most tests use; `guild_b` is a second server the bot is also in, for
    tests that one server cannot see or use another's things.
    """

    def __init__(
        self,
        *,
        token: str = FAKE_TOKEN,
        host: str = "127.0.0.1",
        check_openapi: bool = True,
        recommended_shards: int = 1,
    ) -> None:
        self.token = token
        #: GET /gateway/bot's `shards`: how many an AutoShardedBot without a shard_count runs.
        self.recommended_shards = recommended_shards
        #: GET /gateway/bot's `session_start_limit.max_concurrency`: IDENTIFYs per 5 s (one per
        #: bucket `shard_id % max_concurrency`); 1 for most bots.
        self.identify_max_concurrency = 1
        self.host = host
        self.clock = FakeClock()
        self.ids = Snowflakes(self.clock)
        self.faults = Faults()
        self.requests: list[RecordedRequest] = []
        #: Paths of attachment downloads from the CDN (the bot fetching members' uploads).
        self.cdn_downloads: list[str] = []
        self.unknown_routes: list[str] = []
        self.internal_errors: list[str] = []
        # Every REST request is checked against Discord's OpenAPI description; a violation is
        # answered 400 50035 and recorded here, and the e2e fixture fails the test on it.
        self.openapi: OpenApi | None = OpenApi.load() if check_openapi else None
        self.openapi_violations: list[Violation] = []
        # Set by a test that sends bodies Discord refuses on purpose (the fake's own tests).
        self.expect_violations = False
        self.interactions: dict[str, FakeInteraction] = {}
        self.messages: dict[int, FakeMessage] = {}
        self.attachments: dict[int, FakeAttachment] = {}
        self.commands: dict[int | None, list[Json]] = {}
        self.command_syncs: list[tuple[int | None, list[Json]]] = []
        # Discord's 3 s deadline for the first callback, on the fake clock; None disables it.
        self.ack_deadline: float | None = 3.0
        self._cond = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self._build_world()
        self.gateway = Gateway(
            token=token,
            ready_payload=self._ready_payload,
            guild_payloads=lambda session: [
                g.create_payload(self.bot_user.id, self.clock.iso())
                for g in self.guilds
                if session.owns(g.id)
            ],
            members_chunk=self._members_chunk,
            changed=self.changed,
            resume_url=lambda: self.gateway_url,
        )
        self.rest = RestApi(self)

    # ----------------------------------------------------------------- world
    def _build_world(self) -> None:
        new = self.ids.next
        self.application_id = new()
        self.bot_user = FakeUser(self.application_id, "flexbot", bot=True)
        self.owner_user = FakeUser(new(), "owner")
        self.alice = FakeUser(new(), "alice")
        self.bob = FakeUser(new(), "bob")
        self.mod = FakeUser(new(), "moderator")
        self.users: dict[int, FakeUser] = {
            u.id: u for u in (self.bot_user, self.owner_user, self.alice, self.bob, self.mod)
        }
        # With two shards, guild is on shard 0 and guild_b on shard 1; with one, both on shard 0.
        gid = self.ids.next_on_shard(0, 2)
        self.guild = FakeGuild(self, gid, "Flexbot Test Guild", self.owner_user.id)
        g = self.guild
        self.everyone_role = FakeRole(gid, "@everyone", Perm.EVERYONE_DEFAULT)
        self.bot_role = FakeRole(new(), "Flexbot", 0, position=3, managed=True)
        self.mod_role = FakeRole(new(), "Moderator", Perm.MANAGE_MESSAGES, position=2)
        self.artists_role = FakeRole(new(), "Artists", 0, position=1, mentionable=True)
        for role in (self.everyone_role, self.bot_role, self.mod_role, self.artists_role):
            g.roles[role.id] = role
        g.members[self.bot_user.id] = FakeMember(self.bot_user, [self.bot_role.id])
        g.members[self.owner_user.id] = FakeMember(self.owner_user)
        g.members[self.alice.id] = FakeMember(self.alice, [self.artists_role.id])
        g.members[self.bob.id] = FakeMember(self.bob)
        g.members[self.mod.id] = FakeMember(self.mod, [self.mod_role.id])
        self.general = FakeChannel(new(), g, "general", position=0)
        self.nsfw_channel = FakeChannel(new(), g, "art-18plus", nsfw=True, position=1)
        bot_deny = {
            "id": str(self.bot_user.id),
            "type": 1,
            "allow": "0",
            "deny": str(Perm.SEND_MESSAGES),
        }
        self.locked_channel = FakeChannel(
            new(), g, "announcements", overwrites=[bot_deny], position=2
        )
        self.thread = FakeChannel(
            new(), g, "general-thread", type=ChannelType.PUBLIC_THREAD, parent_id=self.general.id
        )
        for ch in (self.general, self.nsfw_channel, self.locked_channel, self.thread):
            g.channels[ch.id] = ch
        self._build_guild_b()

    def _build_guild_b(self) -> None:
        """A second server: alice is in both; carol and mod_b (Manage Messages here) only in B."""
        new = self.ids.next
        self.owner_b = FakeUser(new(), "owner_b")
        self.carol = FakeUser(new(), "carol")
        self.mod_b = FakeUser(new(), "moderator_b")
        for user in (self.owner_b, self.carol, self.mod_b):
            self.users[user.id] = user
        gid = self.ids.next_on_shard(1, 2)
        self.guild_b = FakeGuild(self, gid, "Second Test Guild", self.owner_b.id)
        g = self.guild_b
        self.everyone_role_b = FakeRole(gid, "@everyone", Perm.EVERYONE_DEFAULT)
        self.bot_role_b = FakeRole(new(), "Flexbot", 0, position=2, managed=True)
        self.mod_role_b = FakeRole(new(), "Moderator", Perm.MANAGE_MESSAGES, position=1)
        for role in (self.everyone_role_b, self.bot_role_b, self.mod_role_b):
            g.roles[role.id] = role
        g.members[self.bot_user.id] = FakeMember(self.bot_user, [self.bot_role_b.id])
        g.members[self.owner_b.id] = FakeMember(self.owner_b)
        g.members[self.alice.id] = FakeMember(self.alice)
        g.members[self.carol.id] = FakeMember(self.carol)
        g.members[self.mod_b.id] = FakeMember(self.mod_b, [self.mod_role_b.id])
        self.general_b = FakeChannel(new(), g, "general", position=0)
        self.nsfw_channel_b = FakeChannel(new(), g, "art-18plus", nsfw=True, position=1)
        for ch in (self.general_b, self.nsfw_channel_b):
            g.channels[ch.id] = ch

    @property
    def guilds(self) -> list[FakeGuild]:
        """Every guild the bot is in, `guild` first."""
        return [self.guild, self.guild_b]

    def guild_by_id(self, guild_id: int) -> FakeGuild | None:
        """A guild the bot is in, by id."""
        return next((g for g in self.guilds if g.id == guild_id), None)

    def user(self, name: str) -> FakeUser:
        """A user by username."""
        return next(u for u in self.users.values() if u.username == name)

    def channel(self, channel_id: int) -> FakeChannel | None:
        """A channel (of any guild) that exists and was not deleted."""
        for guild in self.guilds:
            ch = guild.channels.get(channel_id)
            if ch is not None:
                return None if ch.deleted else ch
        return None

    def _ready_payload(self, session: GatewaySession) -> Json:
        ready: Json = {
            "v": 10,
            "user": {**self.bot_user.payload(), "verified": True, "mfa_enabled": False, "flags": 0},
            "guilds": [
                {"id": str(g.id), "unavailable": True} for g in self.guilds if session.owns(g.id)
            ],
            "session_id": session.id,
            "resume_gateway_url": self.gateway_url,
            "session_type": "normal",
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "application": {"id": str(self.application_id), "flags": 0},
            "_trace": ["fake-discord"],
        }
        if "shard" in session.identify:
            ready["shard"] = list(session.shard)  # sent back only when IDENTIFY named it
        return ready

    def _members_chunk(self, data: Json) -> Json:
        guild = self.guild_by_id(int(data.get("guild_id") or 0)) or self.guild
        return {
            "guild_id": str(guild.id),
            "members": [m.payload() for m in guild.members.values()],
            "chunk_index": 0,
            "chunk_count": 1,
            "nonce": data.get("nonce"),
        }

    # ---------------------------------------------------------------- server
    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        """The value for `discord.http.Route.BASE` / FLEXBOT_DISCORD_API_BASE."""
        return f"{self.url}/api/v10"

    @property
    def gateway_url(self) -> str:
        """The value for `DiscordWebSocket.DEFAULT_GATEWAY` / FLEXBOT_DISCORD_GATEWAY_URL."""
        return f"ws://{self.host}:{self.port}/"

    def env(self) -> dict[str, str]:
        """Environment variables that point a bot process at this fake."""
        return {
            "DISCORD_TOKEN": self.token,
            "FLEXBOT_DISCORD_API_BASE": self.api_base,
            "FLEXBOT_DISCORD_GATEWAY_URL": self.gateway_url,
        }

    async def start(self) -> FakeDiscord:
        """Serve on a free port of 127.0.0.1."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/", self.gateway.handle)
        app.router.add_route("*", "/{tail:.*}", self.rest.handle)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        """Close sockets and stop serving."""
        await self.gateway.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --------------------------------------------------------------- waiting
    async def changed(self) -> None:
        """Wake every `wait_for`; called after each state change."""
        async with self._cond:
            self._cond.notify_all()

    async def wait_for(self, predicate: Callable[[], T], *, timeout: float = 10.0) -> T:
        """Wait until `predicate()` is truthy and return its value; TimeoutError names it."""
        async with self._cond:
            try:
                return await asyncio.wait_for(self._cond.wait_for(predicate), timeout)
            except TimeoutError:
                name = getattr(predicate, "__qualname__", repr(predicate))
                raise TimeoutError(
                    f"fake discord: condition {name} not met in {timeout}s"
                ) from None

    def requests_for(self, route: str) -> list[RecordedRequest]:
        """Requests to `"METHOD /template"`, e.g. `"POST /channels/{channel_id}/messages"`."""
        return [r for r in self.requests if r.key == route]

    # -------------------------------------------------------------- messages
    def cdn_attachment(
        self, channel_id: int, filename: str, data: bytes, content_type: str | None, **kw: Any
    ) -> FakeAttachment:
        """Store bytes on the fake CDN under a signed-looking URL."""
        att_id = self.ids.next()
        now = int(self.clock.time())
        query = f"ex={now + CDN_URL_LIFETIME_S:x}&is={now:x}&hm={secrets.token_hex(16)}"
        url = f"{self.url}/attachments/{channel_id}/{att_id}/{filename}?{query}"
        ctype = content_type or mimetypes.guess_type(filename)[0]
        att = FakeAttachment(att_id, filename, data, ctype, url, **kw)
        self.attachments[att_id] = att
        return att

    def new_message(
        self,
        channel: FakeChannel,
        author: FakeUser,
        body: Json,
        attachments: list[FakeAttachment],
        *,
        webhook_id: int | None = None,
        interaction: FakeInteraction | None = None,
        msg_type: int = 0,
    ) -> FakeMessage:
        """Build (not yet store) a message from a validated create body."""
        ref = body.get("message_reference")
        replied = (
            self.messages.get(int(ref["message_id"])) if ref and ref.get("message_id") else None
        )
        content = body.get("content") or ""
        users, roles, everyone = resolve_mentions(
            channel.guild, channel, author.id, content, body.get("allowed_mentions"), replied
        )
        embeds = list(body.get("embeds") or [])
        if body.get("embed"):
            embeds.insert(0, body["embed"])
        msg = FakeMessage(
            id=self.ids.next(),
            channel=channel,
            author=author,
            content=content,
            embeds=embeds,
            components=list(body.get("components") or []),
            attachments=attachments,
            flags=int(body.get("flags") or 0),
            timestamp=self.clock.iso(),
            webhook_id=webhook_id,
            interaction=interaction,
            type=19 if replied is not None else msg_type,
            mentioned_user_ids=users,
            mentioned_role_ids=roles,
            mention_everyone=everyone,
            allowed_mentions=body.get("allowed_mentions"),
        )
        if replied is not None:
            msg.message_reference = {
                "type": 0,
                "message_id": str(replied.id),
                "channel_id": str(replied.channel.id),
                "guild_id": str(replied.channel.guild.id),
            }
        return msg

    async def store_message(self, msg: FakeMessage) -> FakeMessage:
        """Add to the transcript and dispatch MESSAGE_CREATE (not for ephemeral messages)."""
        msg.channel.messages.append(msg)
        self.messages[msg.id] = msg
        if not msg.ephemeral:
            payload = msg.payload()
            members = msg.channel.guild.members
            payload["member"] = (
                members[msg.author.id].payload(with_user=False)
                if msg.author.id in members
                else None
            )
            await self.gateway.dispatch(
                "MESSAGE_CREATE",
                payload,
                guild_id=msg.channel.guild.id,
                intent=INTENT_GUILD_MESSAGES,
            )
        await self.changed()
        return msg

    async def update_message(
        self, msg: FakeMessage, body: Json, new_files: list[FakeAttachment]
    ) -> None:
        """Apply an edit body, keeping the previous version in `msg.edits`."""
        msg.edits.append(msg.snapshot())
        if "content" in body:
            msg.content = body["content"] or ""
            replied = (
                self.messages.get(int(msg.message_reference["message_id"]))
                if msg.message_reference
                else None
            )
            allowed = body.get("allowed_mentions", msg.allowed_mentions)
            users, roles, everyone = resolve_mentions(
                msg.channel.guild, msg.channel, msg.author.id, msg.content, allowed, replied
            )
            msg.mentioned_user_ids, msg.mentioned_role_ids, msg.mention_everyone = (
                users,
                roles,
                everyone,
            )
        if "embeds" in body or "embed" in body:
            msg.embeds = list(body.get("embeds") or ([body["embed"]] if body.get("embed") else []))
        if "components" in body:
            msg.components = list(body["components"] or [])
        if "attachments" in body:
            keep = {str(a.get("id")) for a in body["attachments"] or []}
            msg.attachments = [a for a in msg.attachments if str(a.id) in keep]
        msg.attachments.extend(new_files)
        if "flags" in body and body["flags"] is not None:
            keep_flags = msg.flags & (MessageFlag.EPHEMERAL | MessageFlag.IS_COMPONENTS_V2)
            msg.flags = int(body["flags"]) | keep_flags
        msg.flags &= ~MessageFlag.LOADING
        msg.edited_timestamp = self.clock.iso()
        if not msg.ephemeral:
            await self.gateway.dispatch(
                "MESSAGE_UPDATE",
                msg.payload(),
                guild_id=msg.channel.guild.id,
                intent=INTENT_GUILD_MESSAGES,
            )
        await self.changed()

    async def delete_message(self, msg: FakeMessage) -> None:
        """Delete a message (the bot's REST DELETE, or a moderator in Discord's menu); later calls
        on it get 404 Unknown Message (10008). Sends MESSAGE_DELETE (ids only, no actor) to the
        owning shard's sessions whose intents include GUILD_MESSAGES, as Discord does."""
        msg.deleted = True
        if not msg.ephemeral:
            await self.gateway.dispatch(
                "MESSAGE_DELETE",
                {
                    "id": str(msg.id),
                    "channel_id": str(msg.channel.id),
                    "guild_id": str(msg.channel.guild.id),
                },
                guild_id=msg.channel.guild.id,
                intent=INTENT_GUILD_MESSAGES,
            )
        await self.changed()

    async def delete_messages(self, channel: FakeChannel, msgs: Iterable[FakeMessage]) -> None:
        """A moderator's purge (bulk delete) in one channel: one MESSAGE_DELETE_BULK, sent like
        MESSAGE_DELETE only to sessions whose intents include GUILD_MESSAGES."""
        gone = [m for m in msgs if not m.ephemeral]
        if any(m.channel is not channel for m in gone):
            raise ValueError("a bulk delete removes messages of one channel")
        for msg in gone:
            msg.deleted = True
        await self.gateway.dispatch(
            "MESSAGE_DELETE_BULK",
            {
                "ids": [str(m.id) for m in gone],
                "channel_id": str(channel.id),
                "guild_id": str(channel.guild.id),
            },
            guild_id=channel.guild.id,
            intent=INTENT_GUILD_MESSAGES,
        )
        await self.changed()

    async def delete_channel(self, channel: FakeChannel) -> None:
        """Delete a channel; later calls on it get 404 Unknown Channel (10003)."""
        channel.deleted = True
        event = "THREAD_DELETE" if channel.is_thread else "CHANNEL_DELETE"
        await self.gateway.dispatch(event, channel.payload(), guild_id=channel.guild.id)
        await self.changed()

    async def create_user_message(
        self,
        channel: FakeChannel,
        user: FakeUser,
        content: str,
        attachments: Iterable[tuple[str, bytes, str]],
    ) -> FakeMessage:
        """A member posts in a channel."""
        atts = [self.cdn_attachment(channel.id, n, d, c) for n, d, c in attachments]
        msg = self.new_message(channel, user, {"content": content}, atts)
        return await self.store_message(msg)

    async def post_as_bot(
        self,
        channel: FakeChannel,
        content: str = "",
        *,
        components: Iterable[Json] = (),
        attachments: Iterable[tuple[str, bytes, str]] = (),
    ) -> FakeMessage:
        """A message the bot posted earlier, e.g. a copy of a result's buttons that an older bot
        version posted elsewhere: tests that a click is checked on arrival, not at posting."""
        atts = [self.cdn_attachment(channel.id, n, d, c) for n, d, c in attachments]
        body: Json = {"content": content, "components": list(components)}
        msg = self.new_message(channel, self.bot_user, body, atts)
        return await self.store_message(msg)

    async def drop_gateway(self, code: int = 4000, *, shard_id: int | None = None) -> int:
        """Close the bot's gateway sockets (only `shard_id`'s if given); discord.py reconnects and
        sends RESUME."""
        return await self.gateway.drop(code, shard_id=shard_id)

    # ------------------------------------------------------- interactions
    def _interaction_base(
        self, itype: int, user: FakeUser, channel: FakeChannel, data: Json
    ) -> Json:
        guild = channel.guild
        member = guild.members.get(user.id)
        if member is None:
            raise LookupError(f"{user.username} is not a member of {guild.name!r}")
        perms = guild.permissions_in(channel, user.id)
        channel_payload = {**channel.payload(), "permissions": str(perms)}
        return {
            "id": str(self.ids.next()),
            "application_id": str(self.application_id),
            "type": itype,
            "data": data,
            "guild_id": str(guild.id),
            "guild": {"id": str(guild.id), "locale": guild.locale, "features": []},
            "channel_id": str(channel.id),
            "channel": channel_payload,
            "member": {**member.payload(), "permissions": str(perms)},
            "token": "itok." + secrets.token_urlsafe(32),
            "version": 1,
            "app_permissions": str(guild.permissions_in(channel, self.bot_user.id)),
            "locale": user.locale,
            "guild_locale": guild.locale,
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(guild.id)},
            "context": 0,
            "attachment_size_limit": guild.upload_limit,
        }

    async def _send_interaction(
        self,
        itype: int,
        user: FakeUser,
        channel: FakeChannel,
        data: Json,
        *,
        message: FakeMessage | None = None,
    ) -> FakeInteraction:
        payload = self._interaction_base(itype, user, channel, data)
        if message is not None:
            payload["message"] = message.payload()
        handle = FakeInteraction(
            owner=self,
            id=int(payload["id"]),
            token=payload["token"],
            type=itype,
            user=user,
            channel=channel,
            created_at=self.clock.time(),
            data=data,
            source_message=message,
        )
        self.interactions[handle.token] = handle
        await self.gateway.dispatch("INTERACTION_CREATE", payload, guild_id=channel.guild.id)
        await self.changed()
        return handle

    def find_command(self, name: str, ctype: int, guild: FakeGuild | None = None) -> Json:
        """A command registered in `guild` (default: `self.guild`) or globally, by name and type."""
        for scope in ((guild or self.guild).id, None):
            for cmd in self.commands.get(scope, []):
                if cmd["name"] == name and cmd.get("type", 1) == ctype:
                    return cmd
        known = {scope: sorted(c["name"] for c in cmds) for scope, cmds in self.commands.items()}
        where = (guild or self.guild).name
        raise LookupError(
            f"command {name!r} (type {ctype}) is not registered in {where!r}; registered "
            f"(by guild id, None = global): {known}"
        )

    def _option_value(self, opt: Json, value: Any, resolved: Json, channel: FakeChannel) -> Any:
        otype = opt["type"]
        if otype == 11:
            if isinstance(value, FakeAttachment):
                att = value
            else:
                filename, data, ctype = value
                att = self.cdn_attachment(channel.id, filename, data, ctype, ephemeral=True)
            resolved.setdefault("attachments", {})[str(att.id)] = att.payload()
            return str(att.id)
        if otype in (6, 9) and isinstance(value, FakeUser):
            resolved.setdefault("users", {})[str(value.id)] = value.payload()
            member = channel.guild.members.get(value.id)
            if member is not None:
                perms = channel.guild.permissions_in(channel, value.id)
                resolved.setdefault("members", {})[str(value.id)] = {
                    **member.payload(with_user=False),
                    "permissions": str(perms),
                }
            return str(value.id)
        if otype == 7 and isinstance(value, FakeChannel):
            resolved.setdefault("channels", {})[str(value.id)] = {
                "id": str(value.id),
                "name": value.name,
                "type": value.type,
                "permissions": str(value.guild.permissions_in(value, self.bot_user.id)),
                "parent_id": str(value.parent_id) if value.parent_id else None,
                "nsfw": value.nsfw,
            }
            if value.is_thread:
                resolved["channels"][str(value.id)]["thread_metadata"] = value.payload()[
                    "thread_metadata"
                ]
            return str(value.id)
        if otype in (8, 9) and isinstance(value, FakeRole):
            resolved.setdefault("roles", {})[str(value.id)] = value.payload()
            return str(value.id)
        return value

    def _build_options(
        self,
        defs: list[Json],
        values: dict[str, Any],
        attachments: list[Any],
        resolved: Json,
        channel: FakeChannel,
    ) -> list[Json]:
        known = {d["name"] for d in defs}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown options {sorted(unknown)}; command has {sorted(known)}")
        out: list[Json] = []
        for opt in defs:
            name = opt["name"]
            if name in values:
                value = values[name]
            elif opt["type"] == 11 and attachments:
                value = attachments.pop(0)
            elif opt.get("required"):
                raise ValueError(f"required option {name!r} missing")
            else:
                continue
            out.append(
                {
                    "name": name,
                    "type": opt["type"],
                    "value": self._option_value(opt, value, resolved, channel),
                }
            )
        return out

    async def slash(
        self,
        name: str,
        *,
        user: FakeUser,
        channel: FakeChannel | None = None,
        options: dict[str, Any] | None = None,
        attachments: Iterable[tuple[str, bytes, str] | FakeAttachment] = (),
    ) -> FakeInteraction:
        """Run `/name` (`"group sub"`: a subcommand) as `user`.

        `attachments` fill the attachment options in order; `options` name the rest.
        """
        channel = channel or self.general
        root, *subs = name.split()
        cmd = self.find_command(root, 1, channel.guild)
        resolved: Json = {}
        defs = cmd.get("options") or []
        data: Json = {"id": cmd["id"], "name": root, "type": 1}
        if cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        container = data
        for sub in subs:
            opt = next((o for o in defs if o["name"] == sub and o["type"] in (1, 2)), None)
            if opt is None:
                raise LookupError(f"/{root} has no subcommand {sub!r}")
            nested: Json = {"name": sub, "type": opt["type"], "options": []}
            container["options"] = [nested]
            container = nested
            defs = opt.get("options") or []
        container["options"] = self._build_options(
            defs, dict(options or {}), list(attachments), resolved, channel
        )
        if resolved:
            data["resolved"] = resolved
        return await self._send_interaction(
            InteractionType.APPLICATION_COMMAND, user, channel, data
        )

    async def context_menu(
        self,
        name: str,
        *,
        user: FakeUser,
        message: FakeMessage | None = None,
        target_user: FakeUser | None = None,
        channel: FakeChannel | None = None,
    ) -> FakeInteraction:
        """Run a message (or user) context-menu command as `user`.

        A message's menu runs in its channel; a user's in `channel` (default `general`).
        """
        if message is not None:
            channel = message.channel
            cmd = self.find_command(name, 3, channel.guild)
            data: Json = {
                "id": cmd["id"],
                "name": name,
                "type": 3,
                "target_id": str(message.id),
                "resolved": {"messages": {str(message.id): message.payload()}},
            }
        elif target_user is not None:
            channel = channel or self.general
            cmd = self.find_command(name, 2, channel.guild)
            member = channel.guild.members[target_user.id]
            data = {
                "id": cmd["id"],
                "name": name,
                "type": 2,
                "target_id": str(target_user.id),
                "resolved": {
                    "users": {str(target_user.id): target_user.payload()},
                    "members": {str(target_user.id): member.payload(with_user=False)},
                },
            }
        else:
            raise ValueError("context_menu needs message= or target_user=")
        if cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        return await self._send_interaction(
            InteractionType.APPLICATION_COMMAND, user, channel, data
        )

    async def click(
        self, message: FakeMessage, target: str, *, user: FakeUser, values: list[str] | None = None
    ) -> FakeInteraction:
        """Click the button (or pick `values` in the select) with label or custom_id `target`."""
        current = self.messages.get(message.id, message)
        if current.deleted:
            raise LookupError(f"message {message.id} was deleted")
        candidates = [
            c
            for c in walk_components(current.components)
            if c.get("type") in (2, 3, 5, 6, 7, 8)
            and target in (c.get("label"), c.get("custom_id"))
        ]
        if not candidates:
            shown = [
                (c.get("label"), c.get("custom_id")) for c in walk_components(current.components)
            ]
            raise LookupError(f"no component {target!r} on message {message.id}; it has {shown}")
        comp = candidates[0]
        if comp.get("disabled"):
            raise LookupError(f"component {target!r} is disabled")
        if comp["type"] == 2 and "custom_id" not in comp:
            raise LookupError(f"{target!r} is a link button")
        data: Json = {"custom_id": comp["custom_id"], "component_type": comp["type"]}
        if comp["type"] != 2:
            data["values"] = list(values or [])
        return await self._send_interaction(
            InteractionType.MESSAGE_COMPONENT, user, current.channel, data, message=current
        )

    async def submit_modal(
        self,
        modal: FakeInteraction | Json,
        values: dict[str, Any],
        *,
        user: FakeUser | None = None,
    ) -> FakeInteraction:
        """Submit the modal an interaction was answered with, filling text inputs by custom_id.

        A value for a file upload is a list of `(filename, bytes, content_type)`.
        """
        source = modal if isinstance(modal, FakeInteraction) else None
        spec = source.modal if source is not None else modal
        if spec is None:
            raise LookupError("that interaction was not answered with a modal")
        if user is None:
            if source is None:
                raise ValueError("submit_modal needs user= when given a modal dict")
            user = source.user
        channel = source.channel if source is not None else self.general
        resolved: Json = {}
        remaining = dict(values)

        def answer(comp: Json) -> Json:
            custom_id = comp.get("custom_id")
            out: Json = {"type": comp["type"], "id": comp.get("id"), "custom_id": custom_id}
            value = remaining.pop(custom_id, None) if custom_id else None
            if comp["type"] == 4:
                out["value"] = "" if value is None else str(value)
            elif comp["type"] == 19:
                ids = []
                for filename, data, ctype in value or []:
                    att = self.cdn_attachment(channel.id, filename, data, ctype, ephemeral=True)
                    resolved.setdefault("attachments", {})[str(att.id)] = att.payload()
                    ids.append(str(att.id))
                out["values"] = ids
            elif comp["type"] in (3, 5, 6, 7, 8):
                out["values"] = list(value or [])
            return out

        components: list[Json] = []
        for top in spec.get("components", []):
            if top["type"] == 1:
                components.append(
                    {
                        "type": 1,
                        "id": top.get("id"),
                        "components": [answer(c) for c in top["components"]],
                    }
                )
            elif top["type"] == 18:
                components.append(
                    {"type": 18, "id": top.get("id"), "component": answer(top["component"])}
                )
            else:
                components.append({"type": top["type"], "id": top.get("id")})
        if remaining:
            raise LookupError(f"modal has no inputs {sorted(remaining)}")
        data: Json = {"custom_id": spec["custom_id"], "components": components}
        if resolved:
            data["resolved"] = resolved
        message = source.source_message if source is not None else None
        return await self._send_interaction(
            InteractionType.MODAL_SUBMIT, user, channel, data, message=message
        )
