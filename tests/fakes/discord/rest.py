"""The fake REST API under /api/v10 and the CDN route, with a router that knows route templates.

Every request is recorded with its template (`POST /channels/{channel_id}/messages`) so faults and
assertions can name routes the way discord.py's `Route` does. A request no route matches is
recorded in `FakeDiscord.unknown_routes` and answered 404 with a body naming it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import BodyPartReader, web

from .openapi import Violation, refusal
from .state import FakeChannel, FakeGuild, FakeInteraction, FakeMessage, Json, MessageFlag, Perm
from .validate import ApiError, check_message, error_leaf, invalid_form_body

if TYPE_CHECKING:
    from .server import FakeDiscord, RecordedRequest

log = logging.getLogger(__name__)

API_PREFIX = "/api/v10"
Handler = Callable[["Call"], Awaitable["Reply"]]


@dataclass
class Reply:
    """A handler's answer: status and JSON body (None for 204), or raw bytes for the CDN."""

    status: int = 200
    body: Any = None
    raw: bytes | None = None
    content_type: str = "application/json"


@dataclass
class Call:
    """One parsed request."""

    request: web.Request
    params: dict[str, str]
    body: Any
    files: list[tuple[str, bytes, str | None]]
    file_indexes: list[int]
    record: RecordedRequest

    def id(self, name: str) -> int:
        """A path parameter as a snowflake; 404 if not numeric."""
        try:
            return int(self.params[name])
        except ValueError:
            raise ApiError(404, 0, "404: Not Found") from None


#: Discord keeps an enforced nonce "for a few minutes"; the fake uses five (on its clock).
NONCE_WINDOW = 300.0
NONCE_MAX = 25


def json_reply(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    """JSON with Content-Type exactly `application/json` (discord.py compares the string)."""
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def unknown_message() -> ApiError:
    """404 Unknown Message (10008)."""
    return ApiError(404, 10008, "Unknown Message")


def unknown_channel() -> ApiError:
    """404 Unknown Channel (10003)."""
    return ApiError(404, 10003, "Unknown Channel")


def missing_permissions() -> ApiError:
    """403 Missing Permissions (50013)."""
    return ApiError(403, 50013, "Missing Permissions")


class RestApi:
    """Routes and handlers; state lives on the owning FakeDiscord."""

    def __init__(self, fake: FakeDiscord) -> None:
        self.fake = fake
        # (channel id, nonce) -> (message, fake-clock time): Discord's enforce_nonce dedup.
        self.nonces: dict[tuple[int, str], tuple[FakeMessage, float]] = {}
        self._routes: list[tuple[str, str, re.Pattern[str], Handler, bool]] = []
        r = self._add
        # login and connect
        r("GET", "/users/@me", self.get_me)
        r("GET", "/users/{user_id}", self.get_user)
        r("GET", "/oauth2/applications/@me", self.get_application)
        r("GET", "/applications/@me", self.get_application)
        r("GET", "/gateway", self.get_gateway)
        r("GET", "/gateway/bot", self.get_gateway_bot)
        # commands
        r("GET", "/applications/{application_id}/commands", self.get_commands)
        r("PUT", "/applications/{application_id}/commands", self.put_commands)
        r("GET", "/applications/{application_id}/guilds/{guild_id}/commands", self.get_commands)
        r("PUT", "/applications/{application_id}/guilds/{guild_id}/commands", self.put_commands)
        # interactions (token auth)
        r("POST", "/interactions/{interaction_id}/{token}/callback", self.callback, bot=False)
        for method in ("GET", "PATCH", "DELETE"):
            handler = {"GET": self.get_webhook_message, "PATCH": self.edit_webhook_message}.get(
                method, self.delete_webhook_message
            )
            r(method, "/webhooks/{application_id}/{token}/messages/@original", handler, bot=False)
            r(
                method,
                "/webhooks/{application_id}/{token}/messages/{message_id}",
                handler,
                bot=False,
            )
        r("POST", "/webhooks/{application_id}/{token}", self.followup, bot=False)
        # channels and messages
        r("GET", "/channels/{channel_id}", self.get_channel)
        r("GET", "/channels/{channel_id}/messages", self.list_messages)
        r("POST", "/channels/{channel_id}/messages", self.create_message)
        r("GET", "/channels/{channel_id}/messages/{message_id}", self.get_message)
        r("PATCH", "/channels/{channel_id}/messages/{message_id}", self.edit_message)
        r("DELETE", "/channels/{channel_id}/messages/{message_id}", self.delete_message)
        r("POST", "/channels/{channel_id}/typing", self.typing)
        # guild
        r("GET", "/guilds/{guild_id}", self.get_guild)
        r("GET", "/guilds/{guild_id}/channels", self.get_guild_channels)
        r("GET", "/guilds/{guild_id}/roles", self.get_roles)
        r("GET", "/guilds/{guild_id}/members/{user_id}", self.get_member)

    def _add(self, method: str, template: str, handler: Handler, *, bot: bool = True) -> None:
        pattern = re.escape(template).replace(r"\{", "{").replace(r"\}", "}")
        pattern = re.sub(r"{(\w+)}", r"(?P<\1>[^/]+)", pattern)
        self._routes.append((method, template, re.compile(f"^{pattern}$"), handler, bot))

    def routes(self) -> list[str]:
        """Every implemented route as `METHOD /template`."""
        return [f"{m} {API_PREFIX}{t}" for m, t, _, _, _ in self._routes] + [
            "GET /attachments/{channel_id}/{attachment_id}/{filename} (CDN)",
            "GET / (gateway WebSocket)",
        ]

    # --------------------------------------------------------------- routing
    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Entry point for every non-gateway request."""
        path = request.path
        if path.startswith("/attachments/"):
            return await self.cdn(request)
        if not path.startswith(API_PREFIX):
            return self._unknown(request)
        sub = path[len(API_PREFIX) :]
        for method, template, pattern, handler, bot in self._routes:
            m = pattern.match(sub)
            if m is None or method != request.method:
                continue
            return await self._run(request, template, m.groupdict(), handler, bot)
        return self._unknown(request)

    def _unknown(self, request: web.Request) -> web.Response:
        name = f"{request.method} {request.path}"
        self.fake.unknown_routes.append(name)
        body = {"message": f"404: Not Found (fake discord has no route {name})", "code": 0}
        return json_reply(404, body)

    async def _run(
        self,
        request: web.Request,
        template: str,
        params: dict[str, str],
        handler: Handler,
        bot: bool,
    ) -> web.Response:
        from .server import RecordedRequest

        body, files, indexes = await self._parse_body(request)
        shown = {k: ("<token>" if k == "token" else v) for k, v in params.items()}
        record = RecordedRequest(
            request.method, template, request.path, shown, dict(request.query), body, files
        )
        self.fake.requests.append(record)
        record.violations = self._check_openapi(request, body)
        try:
            fault = self.fake.faults.take(request.method, template, params)
            if fault is not None:
                record.status = fault.status
                return json_reply(fault.status, fault.body, fault.headers)
            if bot and request.headers.get("Authorization") != f"Bot {self.fake.token}":
                raise ApiError(401, 0, "401: Unauthorized")
            if record.violations:
                raise refusal(record.violations)
            reply = await handler(Call(request, params, body, files, indexes, record))
        except ApiError as exc:
            record.status = exc.status
            return json_reply(exc.status, exc.body())
        except Exception as exc:  # a bug in the fake: answer 400 (not retried) and fail the test
            self.fake.internal_errors.append(f"{request.method} {request.path}: {exc!r}")
            record.status = 400
            log.exception("fake discord failed on %s %s", request.method, request.path)
            return json_reply(400, {"message": f"fake discord internal error: {exc!r}", "code": 0})
        finally:
            await self.fake.changed()
        record.status = reply.status
        if reply.status == 204:
            return web.Response(status=204)
        return json_reply(reply.status, reply.body)

    def _check_openapi(self, request: web.Request, body: Any) -> list[Violation]:
        """Check against Discord's OpenAPI description; record what it refuses."""
        if self.fake.openapi is None:
            return []
        ctype = request.content_type if request.body_exists else None
        found = self.fake.openapi.check(request.method, request.path, request.query, body, ctype)
        for violation in found:
            log.warning("OpenAPI violation: %s", violation)
        self.fake.openapi_violations.extend(found)
        return found

    async def _parse_body(
        self, request: web.Request
    ) -> tuple[Any, list[tuple[str, bytes, str | None]]]:
        files: list[tuple[str, bytes, str | None]] = []
        if not request.body_exists:
            return None, files, []
        ctype = request.content_type
        if ctype.startswith("multipart/"):
            body: Any = None
            reader = await request.multipart()
            indexed: list[tuple[int, tuple[str, bytes, str | None]]] = []
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not isinstance(part, BodyPartReader):
                    continue
                data = await part.read(decode=False)
                if part.name == "payload_json":
                    body = json.loads(data)
                elif part.name and (m := re.fullmatch(r"files\[(\d+)\]", part.name)):
                    ptype = part.headers.get("Content-Type")
                    indexed.append((int(m.group(1)), (part.filename or "file", bytes(data), ptype)))
            indexed.sort(key=lambda x: x[0])
            return body, [f for _, f in indexed], [i for i, _ in indexed]
        raw = await request.read()
        if not raw:
            return None, files, []
        try:
            return json.loads(raw), files, []
        except ValueError:
            raise ApiError(400, 50109, "The request body contains invalid JSON.") from None

    # ------------------------------------------------------------- helpers
    def _attachments_from_upload(self, call: Call, channel: FakeChannel, body: Json) -> list[Any]:
        indexes = call.file_indexes
        meta = {str(a.get("id")): a for a in body.get("attachments") or []}
        out = []
        for pos, (filename, data, ptype) in enumerate(call.files):
            index = indexes[pos] if pos < len(indexes) else pos
            info = meta.get(str(index), {})
            name = info.get("filename") or filename
            ctype = None if ptype in (None, "application/octet-stream") else ptype
            out.append(
                self.fake.cdn_attachment(
                    channel.id, name, data, ctype, description=info.get("description")
                )
            )
        return out

    def _check(self, call: Call, channel: FakeChannel, body: Json, *, is_edit: bool) -> None:
        check_message(body, call.files, channel.guild.upload_limit, is_edit=is_edit)

    def _channel(self, call: Call) -> FakeChannel:
        channel = self.fake.channel(call.id("channel_id"))
        if channel is None:
            raise unknown_channel()
        return channel

    def _message(self, call: Call, channel: FakeChannel) -> FakeMessage:
        msg = self.fake.messages.get(call.id("message_id"))
        if msg is None or msg.deleted or msg.channel is not channel:
            raise unknown_message()
        return msg

    def _bot_perms(self, channel: FakeChannel) -> int:
        return channel.guild.permissions_in(channel, self.fake.bot_user.id)

    # ------------------------------------------------------ login/connect
    async def get_me(self, call: Call) -> Reply:
        user = self.fake.bot_user.payload()
        return Reply(
            body={**user, "verified": True, "mfa_enabled": False, "flags": 0, "locale": "en-US"}
        )

    async def get_user(self, call: Call) -> Reply:
        user = self.fake.users.get(call.id("user_id"))
        if user is None:
            raise ApiError(404, 10013, "Unknown User")
        return Reply(body=user.payload())

    async def get_application(self, call: Call) -> Reply:
        fake = self.fake
        return Reply(
            body={
                "id": str(fake.application_id),
                "name": fake.bot_user.username,
                "icon": None,
                "description": "Fake application",
                "summary": "",
                "type": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                "owner": fake.owner_user.payload(),
                "team": None,
                "flags": 0,
                "bot": fake.bot_user.payload(),
                "approximate_guild_count": len(fake.guilds),
                "interactions_endpoint_url": None,
                "redirect_uris": [],
                "tags": [],
            }
        )

    async def get_gateway(self, call: Call) -> Reply:
        return Reply(body={"url": self.fake.gateway_url.rstrip("/")})

    async def get_gateway_bot(self, call: Call) -> Reply:
        limit = {
            "total": 1000,
            "remaining": 999,
            "reset_after": 0,
            "max_concurrency": self.fake.identify_max_concurrency,
        }
        return Reply(
            body={
                "url": self.fake.gateway_url.rstrip("/"),
                "shards": self.fake.recommended_shards,
                "session_start_limit": limit,
            }
        )

    # ------------------------------------------------------------ commands
    def _scope(self, call: Call) -> int | None:
        if call.id("application_id") != self.fake.application_id:
            raise ApiError(403, 50001, "Missing Access")
        if "guild_id" in call.params:
            guild = self.fake.guild_by_id(call.id("guild_id"))
            if guild is None:
                raise ApiError(403, 50001, "Missing Access")
            return guild.id
        return None

    async def get_commands(self, call: Call) -> Reply:
        return Reply(body=self.fake.commands.get(self._scope(call), []))

    async def put_commands(self, call: Call) -> Reply:
        scope = self._scope(call)
        body = call.body
        if not isinstance(body, list):
            raise invalid_form_body(error_leaf("BASE_TYPE_ARRAY", "Must be an array."))
        errors: Json = {}
        seen: set[tuple[str, int]] = set()
        for i, cmd in enumerate(body):
            ctype = int(cmd.get("type", 1))
            name = cmd.get("name", "")
            problem: tuple[str, str, str] | None = None
            bad_slash_name = not re.fullmatch(r"[-_\w]{1,32}", name) or name != name.lower()
            if ctype == 1 and bad_slash_name:
                problem = ("name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
            if ctype != 1 and not 1 <= len(name) <= 32:
                problem = ("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.")
            if ctype == 1 and not 1 <= len(cmd.get("description", "")) <= 100:
                problem = (
                    "description",
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 100 in length.",
                )
            if len(cmd.get("options") or []) > 25:
                problem = ("options", "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
            if (name, ctype) in seen:
                problem = (
                    "name",
                    "APPLICATION_COMMANDS_DUPLICATE_NAME",
                    f"Application command names must be unique: {name}",
                )
            seen.add((name, ctype))
            if problem is not None:
                errors[str(i)] = {problem[0]: error_leaf(problem[1], problem[2])}
        if errors:
            raise invalid_form_body(errors)
        old = {(c["name"], c.get("type", 1)): c for c in self.fake.commands.get(scope, [])}
        stored = []
        for cmd in body:
            ctype = int(cmd.get("type", 1))
            prev = old.get((cmd["name"], ctype))
            stored.append(
                {
                    "description": "",
                    "options": [],
                    "default_member_permissions": None,
                    "dm_permission": True,
                    "nsfw": False,
                    **cmd,
                    "type": ctype,
                    "id": prev["id"] if prev else str(self.fake.ids.next()),
                    "application_id": str(self.fake.application_id),
                    "version": str(self.fake.ids.next()),
                    **({"guild_id": str(scope)} if scope else {}),
                }
            )
        self.fake.commands[scope] = stored
        self.fake.command_syncs.append((scope, stored))
        return Reply(body=stored)

    # --------------------------------------------------------- interactions
    def _interaction(self, call: Call) -> FakeInteraction:
        handle = self.fake.interactions.get(call.params["token"])
        if handle is None:
            raise ApiError(404, 10015, "Unknown Webhook")
        from .server import TOKEN_LIFETIME_S

        if self.fake.clock.time() - handle.created_at > TOKEN_LIFETIME_S:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        return handle

    def _response_message(
        self, handle: FakeInteraction, body: Json, call: Call, *, loading: bool
    ) -> FakeMessage:
        atts = self._attachments_from_upload(call, handle.channel, body)
        body = dict(body)
        flags = int(body.get("flags") or 0) & (
            MessageFlag.EPHEMERAL
            | MessageFlag.SUPPRESS_NOTIFICATIONS
            | MessageFlag.IS_COMPONENTS_V2
        )
        if loading:
            flags |= MessageFlag.LOADING
        body["flags"] = flags
        msg_type = (
            20
            if handle.type == 2 and handle.data.get("type", 1) == 1
            else (23 if handle.type == 2 else 0)
        )
        return self.fake.new_message(
            handle.channel,
            self.fake.bot_user,
            body,
            atts,
            webhook_id=self.fake.application_id,
            interaction=handle,
            msg_type=msg_type,
        )

    async def callback(self, call: Call) -> Reply:
        handle = self._interaction(call)
        if str(handle.id) != call.params["interaction_id"]:
            raise ApiError(404, 10062, "Unknown interaction")
        if handle.acknowledged:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        deadline = self.fake.ack_deadline
        if deadline is not None and self.fake.clock.time() - handle.created_at > deadline:
            raise ApiError(404, 10062, "Unknown interaction")
        body = call.body or {}
        ctype = body.get("type")
        data = body.get("data") or {}
        resource: Json | None = None
        if ctype in (4, 5):
            if ctype == 4:
                self._check(call, handle.channel, data, is_edit=False)
            msg = self._response_message(handle, data, call, loading=ctype == 5)
            handle.original = msg
            await self.fake.store_message(msg)
            resource = {"type": ctype, "message": msg.payload()}
        elif ctype in (6, 7):
            if handle.type not in (3, 5) or handle.source_message is None:
                raise invalid_form_body(
                    {
                        "type": error_leaf(
                            "INTERACTION_RESPONSE_TYPE_INVALID",
                            "Interaction response type is invalid here",
                        )
                    }
                )
            handle.original = self.fake.messages.get(
                handle.source_message.id, handle.source_message
            )
            if ctype == 7:
                self._check(call, handle.channel, data, is_edit=True)
                await self.fake.update_message(
                    handle.original, data, self._attachments_from_upload(call, handle.channel, data)
                )
                resource = {"type": 7, "message": handle.original.payload()}
        elif ctype == 8:
            pass
        elif ctype == 9:
            self._check_modal(handle, data)
            handle.modal = data
        elif ctype == 1 and handle.type == 1:
            pass
        else:
            raise invalid_form_body(
                {
                    "type": error_leaf(
                        "BASE_TYPE_CHOICES",
                        f"Value must be one of (1, 4, 5, 6, 7, 8, 9), got {ctype!r}.",
                    )
                }
            )
        handle.callbacks.append(body)
        await self.fake.changed()
        if call.request.query.get("with_response") not in ("1", "true", "True"):
            return Reply(204)
        msg = handle.original if ctype in (4, 5, 7) else None
        info: Json = {"id": str(handle.id), "type": handle.type}
        if msg is not None:
            info.update(
                response_message_id=str(msg.id),
                response_message_loading=msg.loading,
                response_message_ephemeral=msg.ephemeral,
            )
        out: Json = {"interaction": info}
        if resource is not None:
            out["resource"] = resource
        return Reply(body=out)

    def _check_modal(self, handle: FakeInteraction, data: Json) -> None:
        errors: Json = {}
        if handle.type == 5:
            raise ApiError(
                400,
                50035,
                "Invalid Form Body",
                {
                    "type": error_leaf(
                        "INTERACTION_RESPONSE_TYPE_INVALID", "A modal cannot answer a modal submit"
                    )
                },
            )
        title = data.get("title") or ""
        if not 1 <= len(title) <= 45:
            errors["title"] = error_leaf(
                "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 45 in length."
            )
        custom_id = data.get("custom_id") or ""
        if not 1 <= len(custom_id) <= 100:
            errors["custom_id"] = error_leaf(
                "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
            )
        if not 1 <= len(data.get("components") or []) <= 5:
            errors["components"] = error_leaf(
                "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length."
            )
        if errors:
            raise ApiError(400, 50035, "Invalid Form Body", {"data": errors})

    def _webhook_target(self, call: Call, handle: FakeInteraction) -> FakeMessage:
        if call.id("application_id") != self.fake.application_id:
            raise ApiError(404, 10015, "Unknown Webhook")
        if call.record.route.endswith("@original"):
            msg = handle.original
            if msg is None or not handle.acknowledged:
                raise unknown_message()
        else:
            msg = self.fake.messages.get(call.id("message_id"))
            if msg is None or msg not in handle.messages:
                raise unknown_message()
        if msg.deleted:
            raise unknown_message()
        return msg

    async def get_webhook_message(self, call: Call) -> Reply:
        handle = self._interaction(call)
        return Reply(body=self._webhook_target(call, handle).payload())

    async def edit_webhook_message(self, call: Call) -> Reply:
        handle = self._interaction(call)
        msg = self._webhook_target(call, handle)
        body = call.body or {}
        self._check(call, msg.channel, body, is_edit=True)
        await self.fake.update_message(
            msg, body, self._attachments_from_upload(call, msg.channel, body)
        )
        return Reply(body=msg.payload())

    async def delete_webhook_message(self, call: Call) -> Reply:
        handle = self._interaction(call)
        await self.fake.delete_message(self._webhook_target(call, handle))
        return Reply(204)

    async def followup(self, call: Call) -> Reply:
        handle = self._interaction(call)
        if call.id("application_id") != self.fake.application_id:
            raise ApiError(404, 10015, "Unknown Webhook")
        if not handle.acknowledged:
            raise ApiError(404, 10015, "Unknown Webhook")
        body = call.body or {}
        self._check(call, handle.channel, body, is_edit=False)
        if handle.response_type == 5 and handle.original is not None and handle.original.loading:
            # Discord turns the first followup after a deferral into the original response.
            await self.fake.update_message(
                handle.original,
                {**body, "flags": None},
                self._attachments_from_upload(call, handle.channel, body),
            )
            return Reply(body=handle.original.payload())
        msg = self._response_message(handle, body, call, loading=False)
        handle.followups.append(msg)
        await self.fake.store_message(msg)
        if call.request.query.get("wait") not in ("true", "1", "True"):
            return Reply(204)
        return Reply(body=msg.payload())

    # ------------------------------------------------------------- channels
    async def get_channel(self, call: Call) -> Reply:
        channel = self._channel(call)
        if not self._bot_perms(channel) & Perm.VIEW_CHANNEL:
            raise ApiError(403, 50001, "Missing Access")
        return Reply(body=channel.payload())

    async def list_messages(self, call: Call) -> Reply:
        channel = self._channel(call)
        if not self._bot_perms(channel) & Perm.READ_MESSAGE_HISTORY:
            return Reply(body=[])
        q = call.request.query
        limit = max(1, min(100, int(q.get("limit", "50"))))
        msgs = [m for m in channel.visible_messages if not m.ephemeral]
        if "before" in q:
            msgs = [m for m in msgs if m.id < int(q["before"])]
        if "after" in q:
            msgs = [m for m in msgs if m.id > int(q["after"])]
            return Reply(body=[m.payload() for m in reversed(msgs[:limit])])
        return Reply(body=[m.payload() for m in reversed(msgs[-limit:])])

    async def create_message(self, call: Call) -> Reply:
        channel = self._channel(call)
        body = call.body or {}
        perms = self._bot_perms(channel)
        send = Perm.SEND_MESSAGES_IN_THREADS if channel.is_thread else Perm.SEND_MESSAGES
        if not perms & Perm.VIEW_CHANNEL:
            raise ApiError(403, 50001, "Missing Access")
        if not perms & send or (call.files and not perms & Perm.ATTACH_FILES):
            raise missing_permissions()
        self._check(call, channel, body, is_edit=False)
        nonce = body.get("nonce")
        if nonce is not None and len(str(nonce)) > NONCE_MAX:
            raise invalid_form_body(
                {
                    "nonce": error_leaf(
                        "BASE_TYPE_MAX_LENGTH", f"Must be {NONCE_MAX} or fewer in length."
                    )
                }
            )
        if nonce is not None and body.get("enforce_nonce"):
            seen = self.nonces.get((channel.id, str(nonce)))
            if seen and not seen[0].deleted and self.fake.clock.time() - seen[1] < NONCE_WINDOW:
                # Discord answers a repeated nonce with the message it already created.
                return Reply(body=seen[0].payload())
        ref = body.get("message_reference")
        if ref and ref.get("message_id"):
            target = self.fake.messages.get(int(ref["message_id"]))
            if target is None or target.deleted:
                if ref.get("fail_if_not_exists", True):
                    raise invalid_form_body(
                        {
                            "message_reference": error_leaf(
                                "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message"
                            )
                        }
                    )
                body = {k: v for k, v in body.items() if k != "message_reference"}
            elif not perms & Perm.READ_MESSAGE_HISTORY:
                raise missing_permissions()
        body = {
            **body,
            "flags": int(body.get("flags") or 0)
            & (MessageFlag.SUPPRESS_NOTIFICATIONS | MessageFlag.IS_COMPONENTS_V2 | 4),
        }
        if not perms & Perm.EMBED_LINKS:
            body.pop("embeds", None)
        msg = self.fake.new_message(
            channel, self.fake.bot_user, body, self._attachments_from_upload(call, channel, body)
        )
        await self.fake.store_message(msg)
        if nonce is not None:
            self.nonces[(channel.id, str(nonce))] = (msg, self.fake.clock.time())
        return Reply(body=msg.payload())

    async def get_message(self, call: Call) -> Reply:
        channel = self._channel(call)
        if not self._bot_perms(channel) & Perm.READ_MESSAGE_HISTORY:
            raise ApiError(403, 50001, "Missing Access")
        msg = self._message(call, channel)
        if msg.ephemeral:
            raise unknown_message()
        return Reply(body=msg.payload())

    async def edit_message(self, call: Call) -> Reply:
        channel = self._channel(call)
        msg = self._message(call, channel)
        body = call.body or {}
        if (msg.author.id != self.fake.bot_user.id or msg.ephemeral) and set(body) - {"flags"}:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        self._check(call, channel, body, is_edit=True)
        await self.fake.update_message(
            msg, body, self._attachments_from_upload(call, channel, body)
        )
        return Reply(body=msg.payload())

    async def delete_message(self, call: Call) -> Reply:
        channel = self._channel(call)
        msg = self._message(call, channel)
        if (
            msg.author.id != self.fake.bot_user.id
            and not self._bot_perms(channel) & Perm.MANAGE_MESSAGES
        ):
            raise missing_permissions()
        await self.fake.delete_message(msg)
        return Reply(204)

    async def typing(self, call: Call) -> Reply:
        self._channel(call)
        return Reply(204)

    # ---------------------------------------------------------------- guild
    def _guild(self, call: Call) -> FakeGuild:
        guild = self.fake.guild_by_id(call.id("guild_id"))
        if guild is None:
            raise ApiError(404, 10004, "Unknown Guild")
        return guild

    async def get_guild(self, call: Call) -> Reply:
        guild = self._guild(call)
        body = guild.payload()
        if call.request.query.get("with_counts") in ("true", "1"):
            body.update(approximate_member_count=len(guild.members), approximate_presence_count=0)
        return Reply(body=body)

    async def get_guild_channels(self, call: Call) -> Reply:
        guild = self._guild(call)
        chans = [c for c in guild.channels.values() if not c.deleted and not c.is_thread]
        return Reply(body=[c.payload() for c in chans])

    async def get_roles(self, call: Call) -> Reply:
        guild = self._guild(call)
        return Reply(body=[r.payload() for r in guild.roles.values()])

    async def get_member(self, call: Call) -> Reply:
        guild = self._guild(call)
        member = guild.members.get(call.id("user_id"))
        if member is None:
            raise ApiError(404, 10007, "Unknown Member")
        return Reply(body=member.payload())

    # ------------------------------------------------------------------ CDN
    async def cdn(self, request: web.Request) -> web.Response:
        """Serve attachment bytes; a URL past its `ex` time on the fake clock is gone."""
        self.fake.cdn_downloads.append(request.path)
        parts = request.path.split("/")
        att = None
        if len(parts) == 5 and parts[3].isdigit():
            att = self.fake.attachments.get(int(parts[3]))
        expiry = request.query.get("ex")
        expired = expiry is not None and int(expiry, 16) < self.fake.clock.time()
        if att is None or expired:
            if att is None:
                self.fake.unknown_routes.append(f"GET {request.path} (unknown attachment)")
            return web.Response(status=404, text="This content is no longer available.")
        return web.Response(
            body=att.data, headers={"Content-Type": att.content_type or "application/octet-stream"}
        )
