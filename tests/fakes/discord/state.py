"""The fake Discord's world: users, guild, roles, channels and per-channel message transcripts."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .clock import FakeClock

if TYPE_CHECKING:
    from .server import FakeDiscord

DISCORD_EPOCH_MS = 1420070400000
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024

Json = dict[str, Any]


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard Discord sends a guild's events to: `(guild_id >> 22) % num_shards` (the gateway
    docs, "Sharding")."""
    return (guild_id >> 22) % shard_count


class Perm:
    """Permission bits (developers/topics/permissions.mdx)."""

    ADMINISTRATOR = 1 << 3
    ADD_REACTIONS = 1 << 6
    VIEW_CHANNEL = 1 << 10
    SEND_MESSAGES = 1 << 11
    MANAGE_MESSAGES = 1 << 13
    EMBED_LINKS = 1 << 14
    ATTACH_FILES = 1 << 15
    READ_MESSAGE_HISTORY = 1 << 16
    MENTION_EVERYONE = 1 << 17
    USE_EXTERNAL_EMOJIS = 1 << 18
    USE_APPLICATION_COMMANDS = 1 << 31
    SEND_MESSAGES_IN_THREADS = 1 << 38
    ALL = (1 << 51) - 1

    EVERYONE_DEFAULT = (
        VIEW_CHANNEL
        | SEND_MESSAGES
        | SEND_MESSAGES_IN_THREADS
        | EMBED_LINKS
        | ATTACH_FILES
        | READ_MESSAGE_HISTORY
        | ADD_REACTIONS
        | USE_EXTERNAL_EMOJIS
        | USE_APPLICATION_COMMANDS
        | MENTION_EVERYONE
    )


class ChannelType:
    """Channel type numbers used by the fake."""

    TEXT = 0
    PUBLIC_THREAD = 11


class MessageFlag:
    """Message flag bits."""

    EPHEMERAL = 1 << 6
    LOADING = 1 << 7
    SUPPRESS_NOTIFICATIONS = 1 << 12
    IS_COMPONENTS_V2 = 1 << 15


class Snowflakes:
    """Increasing snowflake ids whose timestamp part follows the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self._counter = itertools.count()
        self._last = 0

    def next(self) -> int:
        """A new id, strictly greater than every earlier one."""
        ms = int(self._clock.time() * 1000) - DISCORD_EPOCH_MS
        value = (ms << 22) | (next(self._counter) & 0xFFF)
        self._last = max(self._last + 1, value)
        return self._last

    def next_on_shard(self, shard_id: int, shard_count: int) -> int:
        """A new id (as `next`) whose guild would live on `shard_id` of `shard_count`: the
        timestamp part moves up to `shard_count - 1` ms ahead of the clock."""
        value = self.next()
        while shard_of(value, shard_count) != shard_id:
            value = ((value >> 22) + 1) << 22
        self._last = value
        return value


@dataclass(eq=False)
class FakeUser:
    """A Discord user (a member of one or both fake guilds, or the bot)."""

    id: int
    username: str
    bot: bool = False
    #: The Discord client language interactions carry (``interaction.locale``).
    locale: str = "en-US"

    @property
    def mention(self) -> str:
        """`<@id>`, as a message would ping this user."""
        return f"<@{self.id}>"

    def payload(self) -> Json:
        """The user object as the API returns it."""
        return {
            "id": str(self.id),
            "username": self.username,
            "global_name": None if self.bot else self.username.title(),
            "discriminator": "0",
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
        }


@dataclass(eq=False)
class FakeRole:
    """A guild role; the @everyone role has the guild's id."""

    id: int
    name: str
    permissions: int
    position: int = 0
    mentionable: bool = False
    managed: bool = False

    @property
    def mention(self) -> str:
        """`<@&id>`."""
        return f"<@&{self.id}>"

    def payload(self) -> Json:
        """The role object as the API returns it."""
        return {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "managed": self.managed,
            "mentionable": self.mentionable,
            "flags": 0,
        }


@dataclass(eq=False)
class FakeMember:
    """A user's membership in one guild."""

    user: FakeUser
    roles: list[int] = field(default_factory=list)
    joined_at: str = "2024-01-01T00:00:00+00:00"

    def payload(self, *, with_user: bool = True) -> Json:
        """The guild member object as the API returns it."""
        data: Json = {
            "roles": [str(r) for r in self.roles],
            "nick": None,
            "avatar": None,
            "joined_at": self.joined_at,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
        }
        if with_user:
            data["user"] = self.user.payload()
        return data


@dataclass(eq=False)
class FakeAttachment:
    """A file on the fake CDN: uploaded with a message or with an interaction."""

    id: int
    filename: str
    data: bytes
    content_type: str | None
    url: str
    description: str | None = None
    ephemeral: bool = False

    def payload(self) -> Json:
        """The attachment object as the API returns it."""
        data: Json = {
            "id": str(self.id),
            "filename": self.filename,
            "size": len(self.data),
            "url": self.url,
            "proxy_url": self.url,
        }
        if self.content_type:
            data["content_type"] = self.content_type
        if self.description is not None:
            data["description"] = self.description
        if self.ephemeral:
            data["ephemeral"] = True
        return data


@dataclass(eq=False)
class FakeMessage:
    """A message in a channel's transcript, with its edit history."""

    id: int
    channel: FakeChannel
    author: FakeUser
    content: str = ""
    embeds: list[Json] = field(default_factory=list)
    components: list[Json] = field(default_factory=list)
    attachments: list[FakeAttachment] = field(default_factory=list)
    flags: int = 0
    timestamp: str = ""
    edited_timestamp: str | None = None
    webhook_id: int | None = None
    interaction: FakeInteraction | None = None
    message_reference: Json | None = None
    type: int = 0
    mentioned_user_ids: set[int] = field(default_factory=set)
    mentioned_role_ids: set[int] = field(default_factory=set)
    mention_everyone: bool = False
    allowed_mentions: Json | None = None
    edits: list[Json] = field(default_factory=list)
    deleted: bool = False

    @property
    def ephemeral(self) -> bool:
        """Only the invoking user sees it."""
        return bool(self.flags & MessageFlag.EPHEMERAL)

    @property
    def loading(self) -> bool:
        """A deferred response still showing "thinking..."."""
        return bool(self.flags & MessageFlag.LOADING)

    @property
    def files(self) -> dict[str, bytes]:
        """Attached file bytes by filename."""
        return {a.filename: a.data for a in self.attachments}

    def buttons(self) -> list[Json]:
        """Every button in the message's components, depth first."""
        return [c for c in walk_components(self.components) if c.get("type") == 2]

    def snapshot(self) -> Json:
        """The editable fields, as kept in `edits` before each change."""
        return {
            "content": self.content,
            "embeds": list(self.embeds),
            "components": list(self.components),
            "attachments": [a.filename for a in self.attachments],
            "flags": self.flags,
            "edited_timestamp": self.edited_timestamp,
        }

    def payload(self) -> Json:
        """The message object as the API returns it."""
        guild = self.channel.guild
        data: Json = {
            "id": str(self.id),
            "channel_id": str(self.channel.id),
            "guild_id": str(guild.id),
            "author": self.author.payload(),
            "content": self.content,
            "timestamp": self.timestamp,
            "edited_timestamp": self.edited_timestamp,
            "tts": False,
            "mention_everyone": self.mention_everyone,
            "mentions": [
                guild.members[u].user.payload()
                for u in self.mentioned_user_ids
                if u in guild.members
            ]
            if not self.mention_everyone
            else [],
            "mention_roles": [str(r) for r in self.mentioned_role_ids],
            "attachments": [a.payload() for a in self.attachments],
            "embeds": self.embeds,
            "components": self.components,
            "pinned": False,
            "type": self.type,
            "flags": self.flags,
        }
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
            data["application_id"] = str(self.webhook_id)
        if self.message_reference is not None:
            data["message_reference"] = self.message_reference
        if self.interaction is not None:
            data["interaction_metadata"] = {
                "id": str(self.interaction.id),
                "type": self.interaction.type,
                "user": self.interaction.user.payload(),
                "authorizing_integration_owners": {"0": str(guild.id)},
            }
        return data


@dataclass(eq=False)
class FakeChannel:
    """A guild text channel or thread, holding the transcript of messages posted in it."""

    id: int
    guild: FakeGuild
    name: str
    type: int = ChannelType.TEXT
    nsfw: bool = False
    parent_id: int | None = None
    overwrites: list[Json] = field(default_factory=list)
    position: int = 0
    deleted: bool = False
    messages: list[FakeMessage] = field(default_factory=list)

    @property
    def is_thread(self) -> bool:
        """Threads take SEND_MESSAGES_IN_THREADS and their parent's overwrites."""
        return self.type in (10, 11, 12)

    @property
    def mention(self) -> str:
        """`<#id>`."""
        return f"<#{self.id}>"

    @property
    def visible_messages(self) -> list[FakeMessage]:
        """Messages not deleted, oldest first."""
        return [m for m in self.messages if not m.deleted]

    @property
    def last_message(self) -> FakeMessage | None:
        """The newest message that is still there."""
        visible = self.visible_messages
        return visible[-1] if visible else None

    async def wait_for_message(
        self,
        predicate: Callable[[FakeMessage], bool] | None = None,
        *,
        timeout: float = 10.0,
    ) -> FakeMessage:
        """The first (oldest) message in this channel matching `predicate`, waiting for it."""
        check = predicate or (lambda _m: True)

        def found() -> FakeMessage | None:
            return next((m for m in self.visible_messages if check(m)), None)

        return await self.guild.owner.wait_for(found, timeout=timeout)

    async def post(
        self,
        user: FakeUser,
        content: str = "",
        *,
        attachments: Iterable[tuple[str, bytes, str]] = (),
    ) -> FakeMessage:
        """A member posts a message (e.g. an image to use from a context menu)."""
        return await self.guild.owner.create_user_message(self, user, content, attachments)

    def payload(self) -> Json:
        """The channel object as the API returns it."""
        data: Json = {
            "id": str(self.id),
            "guild_id": str(self.guild.id),
            "name": self.name,
            "type": self.type,
            "position": self.position,
            "permission_overwrites": self.overwrites,
            "nsfw": self.nsfw,
            "topic": None,
            "last_message_id": str(self.messages[-1].id) if self.messages else None,
            "rate_limit_per_user": 0,
            "parent_id": str(self.parent_id) if self.parent_id else None,
            "flags": 0,
        }
        if self.is_thread:
            data.pop("permission_overwrites")
            data.update(
                owner_id=str(self.guild.owner_id),
                message_count=len(self.messages),
                member_count=1,
                total_message_sent=len(self.messages),
                thread_metadata={
                    "archived": False,
                    "auto_archive_duration": 1440,
                    "archive_timestamp": "2024-01-01T00:00:00+00:00",
                    "locked": False,
                },
            )
        return data


@dataclass(eq=False)
class FakeGuild:
    """A guild the fake serves, with its roles, members and channels."""

    owner: FakeDiscord
    id: int
    name: str
    owner_id: int
    roles: dict[int, FakeRole] = field(default_factory=dict)
    members: dict[int, FakeMember] = field(default_factory=dict)
    channels: dict[int, FakeChannel] = field(default_factory=dict)
    upload_limit: int = DEFAULT_UPLOAD_LIMIT
    premium_tier: int = 0
    #: The server's primary language (``preferred_locale``, ``interaction.guild_locale``).
    locale: str = "en-US"

    @property
    def everyone(self) -> FakeRole:
        """The @everyone role."""
        return self.roles[self.id]

    def base_permissions(self, user_id: int) -> int:
        """Guild-level permissions of a member from @everyone and their roles."""
        if user_id == self.owner_id:
            return Perm.ALL
        member = self.members.get(user_id)
        perms = self.everyone.permissions
        if member is not None:
            for role_id in member.roles:
                role = self.roles.get(role_id)
                if role is not None:
                    perms |= role.permissions
        return Perm.ALL if perms & Perm.ADMINISTRATOR else perms

    def permissions_in(self, channel: FakeChannel, user_id: int) -> int:
        """A member's permissions in a channel, overwrites applied the way Discord does."""
        perms = self.base_permissions(user_id)
        if perms & Perm.ADMINISTRATOR:
            return Perm.ALL
        source = (
            self.channels[channel.parent_id] if channel.is_thread and channel.parent_id else channel
        )
        member = self.members.get(user_id)
        member_roles = {str(r) for r in (member.roles if member else [])}
        by_id = {o["id"]: o for o in source.overwrites}
        everyone = by_id.get(str(self.id))
        if everyone:
            perms = (perms & ~int(everyone["deny"])) | int(everyone["allow"])
        allow = deny = 0
        for o in source.overwrites:
            if o["type"] == 0 and o["id"] in member_roles:
                allow |= int(o["allow"])
                deny |= int(o["deny"])
        perms = (perms & ~deny) | allow
        own = by_id.get(str(user_id))
        if own and own["type"] == 1:
            perms = (perms & ~int(own["deny"])) | int(own["allow"])
        if not perms & Perm.VIEW_CHANNEL:
            return 0
        if not perms & Perm.SEND_MESSAGES:
            perms &= ~(Perm.ATTACH_FILES | Perm.EMBED_LINKS | Perm.MENTION_EVERYONE)
        return perms

    def payload(self) -> Json:
        """The guild object as GET /guilds/{id} returns it."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [r.payload() for r in self.roles.values()],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": self.premium_tier,
            "premium_subscription_count": 0,
            "preferred_locale": self.locale,
            "public_updates_channel_id": None,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
        }

    def create_payload(self, bot_id: int, now_iso: str) -> Json:
        """The GUILD_CREATE dispatch: the guild plus channels, threads and members."""
        text = [c for c in self.channels.values() if not c.is_thread and not c.deleted]
        threads = [c for c in self.channels.values() if c.is_thread and not c.deleted]
        data = self.payload()
        data.update(
            joined_at=self.members[bot_id].joined_at if bot_id in self.members else now_iso,
            large=False,
            unavailable=False,
            member_count=len(self.members),
            voice_states=[],
            members=[m.payload() for m in self.members.values()],
            channels=[c.payload() for c in text],
            threads=[c.payload() for c in threads],
            presences=[],
            stage_instances=[],
            guild_scheduled_events=[],
            soundboard_sounds=[],
        )
        return data


def walk_components(components: Iterable[Json]) -> Iterable[Json]:
    """Every component in a tree (action rows, containers, sections, labels), depth first."""
    for component in components:
        yield component
        children = list(component.get("components") or [])
        if isinstance(component.get("component"), dict):
            children.append(component["component"])
        if isinstance(component.get("accessory"), dict):
            children.append(component["accessory"])
        yield from walk_components(children)


_USER_MENTION = re.compile(r"<@!?(\d+)>")
_ROLE_MENTION = re.compile(r"<@&(\d+)>")


def resolve_mentions(
    guild: FakeGuild,
    channel: FakeChannel,
    author_id: int,
    content: str,
    allowed: Json | None,
    replied_to: FakeMessage | None,
) -> tuple[set[int], set[int], bool]:
    """Users and roles pinged and whether @everyone/@here fired, as Discord decides it.

    Without `allowed_mentions` everything in the content is parsed; with it only the `parse` types
    and the listed ids are, and a reply pings its author only when `replied_user` is true.
    """
    perms = guild.permissions_in(channel, author_id)
    can_everyone = bool(perms & Perm.MENTION_EVERYONE)
    parse = {"users", "roles", "everyone"} if allowed is None else set(allowed.get("parse", []))
    allowed_users = set() if allowed is None else {int(u) for u in allowed.get("users", [])}
    allowed_roles = set() if allowed is None else {int(r) for r in allowed.get("roles", [])}

    users: set[int] = set()
    for raw in _USER_MENTION.findall(content):
        uid = int(raw)
        if uid in guild.members and ("users" in parse or uid in allowed_users):
            users.add(uid)
    roles: set[int] = set()
    for raw in _ROLE_MENTION.findall(content):
        rid = int(raw)
        role = guild.roles.get(rid)
        if role is None or not (role.mentionable or can_everyone):
            continue
        if "roles" in parse or rid in allowed_roles:
            roles.add(rid)
    everyone = (
        can_everyone and "everyone" in parse and ("@everyone" in content or "@here" in content)
    )
    if replied_to is not None:
        replied_user = True if allowed is None else bool(allowed.get("replied_user", False))
        if replied_user:
            users.add(replied_to.author.id)

    pinged = set(users)
    for member in guild.members.values():
        if everyone or roles.intersection(member.roles):
            pinged.add(member.user.id)
    pinged.discard(author_id)
    return pinged, roles, everyone


@dataclass(eq=False)
class FakeInteraction:
    """One interaction the test sent: its token, the responses the bot gave, and their messages."""

    owner: FakeDiscord
    id: int
    token: str
    type: int
    user: FakeUser
    channel: FakeChannel
    created_at: float
    data: Json
    callbacks: list[Json] = field(default_factory=list)
    original: FakeMessage | None = None
    followups: list[FakeMessage] = field(default_factory=list)
    modal: Json | None = None
    source_message: FakeMessage | None = None

    @property
    def acknowledged(self) -> bool:
        """Whether the initial callback was accepted."""
        return bool(self.callbacks)

    @property
    def response_type(self) -> int | None:
        """The callback type of the initial response (4, 5, 6, 7, 9, ...)."""
        return self.callbacks[0]["type"] if self.callbacks else None

    @property
    def messages(self) -> list[FakeMessage]:
        """The original response (if any) followed by followups."""
        return ([self.original] if self.original else []) + self.followups

    async def wait_for_response(self, *, timeout: float = 10.0) -> Json:
        """The initial callback body, waiting until the bot acknowledged."""
        await self.owner.wait_for(lambda: self.acknowledged, timeout=timeout)
        return self.callbacks[0]

    async def wait_for_original(
        self,
        predicate: Callable[[FakeMessage], bool] | None = None,
        *,
        timeout: float = 10.0,
    ) -> FakeMessage:
        """The original response message once `predicate` holds (e.g. no longer loading)."""
        check = predicate or (lambda m: not m.loading)

        def found() -> FakeMessage | None:
            msg = self.original
            return msg if msg is not None and check(msg) else None

        return await self.owner.wait_for(found, timeout=timeout)

    async def wait_for_modal(self, *, timeout: float = 10.0) -> Json:
        """The modal the bot answered with (callback type 9)."""
        return await self.owner.wait_for(lambda: self.modal, timeout=timeout)

    async def wait_for_followup(
        self,
        predicate: Callable[[FakeMessage], bool] | None = None,
        *,
        timeout: float = 10.0,
    ) -> FakeMessage:
        """The first followup matching `predicate`."""
        check = predicate or (lambda _m: True)
        return await self.owner.wait_for(
            lambda: next((m for m in self.followups if check(m)), None), timeout=timeout
        )
