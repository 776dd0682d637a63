"""Request validation with Discord's limits and error shapes (50035 Invalid Form Body & co)."""

from __future__ import annotations

from typing import Any

from .state import Json, MessageFlag

CONTENT_MAX = 2000
EMBEDS_MAX = 10
EMBED_TOTAL_MAX = 6000
ATTACHMENTS_MAX = 10
REQUEST_MAX = 25 * 1024 * 1024
_EMBED_FIELD_LIMITS = {"title": 256, "description": 4096}


class ApiError(Exception):
    """An error response: HTTP status plus Discord's JSON body."""

    def __init__(self, status: int, code: int, message: str, errors: Json | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> Json:
        """The JSON body Discord sends."""
        data: Json = {"message": self.message, "code": self.code}
        if self.errors is not None:
            data["errors"] = self.errors
        return data


def error_leaf(code: str, message: str) -> Json:
    """One field's `{"_errors": [...]}` node."""
    return {"_errors": [{"code": code, "message": message}]}


_err = error_leaf


def _put(errors: Json, path: list[str | int], leaf: Json) -> None:
    node = errors
    for key in path[:-1]:
        node = node.setdefault(str(key), {})
    node[str(path[-1])] = leaf


def invalid_form_body(errors: Json) -> ApiError:
    """50035 with the nested `errors` object."""
    return ApiError(400, 50035, "Invalid Form Body", errors)


def _max_len(errors: Json, path: list[str | int], value: Any, limit: int) -> int:
    text = value if isinstance(value, str) else ""
    if len(text) > limit:
        _put(errors, path, _err("BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length."))
    return len(text)


def _check_embeds(errors: Json, embeds: list[Json]) -> None:
    if len(embeds) > EMBEDS_MAX:
        _put(errors, ["embeds"], _err("BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length."))
        return
    total = 0
    for i, embed in enumerate(embeds):
        for key, limit in _EMBED_FIELD_LIMITS.items():
            total += _max_len(errors, ["embeds", i, key], embed.get(key), limit)
        fields = embed.get("fields") or []
        if len(fields) > 25:
            _put(
                errors,
                ["embeds", i, "fields"],
                _err("BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length."),
            )
        for j, fld in enumerate(fields):
            total += _max_len(errors, ["embeds", i, "fields", j, "name"], fld.get("name"), 256)
            total += _max_len(errors, ["embeds", i, "fields", j, "value"], fld.get("value"), 1024)
        footer = embed.get("footer") or {}
        total += _max_len(errors, ["embeds", i, "footer", "text"], footer.get("text"), 2048)
        author = embed.get("author") or {}
        total += _max_len(errors, ["embeds", i, "author", "name"], author.get("name"), 256)
    if total > EMBED_TOTAL_MAX and "embeds" not in errors:
        _put(
            errors,
            ["embeds"],
            _err(
                "MAX_EMBED_SIZE_EXCEEDED", f"Embed size exceeds maximum size of {EMBED_TOTAL_MAX}"
            ),
        )


def _check_custom_id(errors: Json, path: list[str | int], comp: Json, seen: set[str]) -> None:
    custom_id = comp.get("custom_id")
    if comp.get("type") == 2 and comp.get("style") in (5, 6):
        return  # link and premium buttons carry url / sku_id, no custom_id
    if not isinstance(custom_id, str) or not 1 <= len(custom_id) <= 100:
        _put(
            errors,
            [*path, "custom_id"],
            _err("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."),
        )
        return
    if custom_id in seen:
        _put(
            errors,
            [*path, "custom_id"],
            _err("COMPONENT_CUSTOM_ID_DUPLICATED", "Component custom id cannot be duplicated"),
        )
    seen.add(custom_id)


def _check_v2(errors: Json, comps: list[Json], path: list[str | int], seen: set[str]) -> int:
    count = 0
    for i, comp in enumerate(comps):
        count += 1
        if comp.get("type") in (2, 3, 5, 6, 7, 8):
            _check_custom_id(errors, [*path, i], comp, seen)
        children = list(comp.get("components") or [])
        count += _check_v2(errors, children, [*path, i, "components"], seen)
        if isinstance(comp.get("accessory"), dict):
            count += _check_v2(errors, [comp["accessory"]], [*path, i, "accessory"], seen)
    return count


def _check_components(errors: Json, components: list[Json], flags: int) -> None:
    seen: set[str] = set()
    if flags & MessageFlag.IS_COMPONENTS_V2:
        if _check_v2(errors, components, ["components"], seen) > 40:
            _put(
                errors,
                ["components"],
                _err("BASE_TYPE_MAX_LENGTH", "Must be 40 or fewer in length."),
            )
        return
    if len(components) > 5:
        _put(
            errors,
            ["components"],
            _err("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length."),
        )
        return
    for i, row in enumerate(components):
        if row.get("type") != 1:
            _put(
                errors,
                ["components", i, "type"],
                _err("UNION_TYPE_CHOICES", 'Value of field "type" must be one of (1,).'),
            )
            continue
        children = row.get("components") or []
        if not 1 <= len(children) <= 5:
            _put(
                errors,
                ["components", i, "components"],
                _err("BASE_TYPE_BAD_LENGTH", "Must be between 1 and 5 in length."),
            )
            continue
        if any(c.get("type") != 2 for c in children) and len(children) > 1:
            _put(
                errors,
                ["components", i, "components"],
                _err(
                    "COMPONENT_LAYOUT_WIDTH_EXCEEDED",
                    "The specified component exceeds the maximum width",
                ),
            )
        for j, comp in enumerate(children):
            _check_custom_id(errors, ["components", i, "components", j], comp, seen)


def check_message(
    body: Json, files: list[tuple[str, bytes, str | None]], upload_limit: int, *, is_edit: bool
) -> None:
    """Raise `ApiError` where Discord would reject this create/edit message body."""
    total = sum(len(data) for _, data, _ in files)
    if total > REQUEST_MAX or any(len(data) > upload_limit for _, data, _ in files):
        raise ApiError(413, 40005, "Request entity too large")
    errors: Json = {}
    flags = int(body.get("flags") or 0)
    content = body.get("content")
    if content is not None and not isinstance(content, str):
        _put(errors, ["content"], _err("BASE_TYPE_STRING", "Must be a string."))
    else:
        _max_len(errors, ["content"], content, CONTENT_MAX)
    embeds = body.get("embeds") or []
    if body.get("embed"):
        embeds = [body["embed"], *embeds]
    _check_embeds(errors, embeds)
    _check_components(errors, body.get("components") or [], flags)
    if flags & MessageFlag.IS_COMPONENTS_V2 and (content or embeds):
        _put(
            errors,
            ["content" if content else "embeds"],
            _err(
                "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
                "The 'content' and 'embeds' fields cannot be used with IS_COMPONENTS_V2",
            ),
        )
    attachments = body.get("attachments") or []
    if len(attachments) > ATTACHMENTS_MAX or len(files) > ATTACHMENTS_MAX:
        _put(
            errors, ["attachments"], _err("BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        )
    if errors:
        raise invalid_form_body(errors)
    if not is_edit and not (
        content
        or embeds
        or body.get("components")
        or files
        or body.get("sticker_ids")
        or body.get("poll")
    ):
        raise ApiError(400, 50006, "Cannot send an empty message")
