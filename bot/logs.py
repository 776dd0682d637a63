"""Logging: one line per event, readable or JSON, with job/guild/user ids, never a secret.

Ids come from a context (``bind(job_id=...)``) that asyncio copies into every task started inside
it, so a worker's lines all carry its job id without passing it around. Redaction happens in a
filter on the handler: every record, from our code or a library, passes through it, with the
secrets' values and signed URL query strings masked.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from bot.secret import Secret

_CONTEXT: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "flexbot_log_context", default=None
)
CONTEXT_KEYS = ("job_id", "guild_id", "user_id")

# Query strings that make a URL a credential: Discord CDN signatures, fal storage tokens, keys.
_SIGNED_QUERY = re.compile(
    r"(?i)([?&](?:ex|is|hm|token|key|signature|sig|x-amz-[a-z-]+|auth)=)[^&\s\"']+"
)
_AUTH_HEADER = re.compile(r"(?i)\b(Key|Bearer|Bot)\s+[A-Za-z0-9._:\-]{12,}")
_DISCORD_TOKEN = re.compile(r"\b[MNO][A-Za-z\d_-]{23,28}\.[A-Za-z\d_-]{6}\.[A-Za-z\d_-]{27,}\b")


@contextlib.contextmanager
def bind(**ids: Any) -> Iterator[None]:
    """Add ids (job_id, guild_id, user_id) to every log line inside this block and its tasks."""
    current = _CONTEXT.get() or {}
    token = _CONTEXT.set({**current, **{k: v for k, v in ids.items() if v is not None}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class Redactor(logging.Filter):
    """Masks secrets and signed URLs in the final message and in exception text."""

    def __init__(self, secrets: Sequence[Secret] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = secret.redact(text)
        text = _SIGNED_QUERY.sub(r"\1***", text)
        text = _AUTH_HEADER.sub(r"\1 ***", text)
        return _DISCORD_TOKEN.sub("***", text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.scrub(record.getMessage())
        record.args = None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        for key in CONTEXT_KEYS:
            if not hasattr(record, key):
                setattr(record, key, (_CONTEXT.get() or {}).get(key))
        return True


class TextFormatter(logging.Formatter):
    """``2026-11-27 15:00:00 INFO bot.engine [job=12 guild=3 user=4]: message``."""

    def format(self, record: logging.LogRecord) -> str:
        ids = " ".join(
            f"{key[:-3]}={getattr(record, key)}"
            for key in CONTEXT_KEYS
            if getattr(record, key, None) is not None
        )
        when = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%d %H:%M:%S")
        line = f"{when} {record.levelname} {record.name}{f' [{ids}]' if ids else ''}: "
        line += record.getMessage()
        if record.exc_text:
            line += "\n" + record.exc_text
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in CONTEXT_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, default=str)


def configure_logging(
    level: str = "INFO",
    *,
    json_lines: bool = False,
    secrets: Sequence[Secret] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """Install one handler on the root logger; returns it (tests attach to it)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(Redactor(secrets))
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every URL at INFO (signed CDN links, request ids); aiohttp's access log too.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("discord").setLevel(max(logging.INFO, root.level))
    return handler
