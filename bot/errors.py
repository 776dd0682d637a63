"""Flexbot's exception tree.

    FlexbotError
    ├── ConfigError            a setting is wrong; start-up stops (exit code 2)
    ├── UserError              the one way to say no to a member; ``str(e)`` is safe to show them,
    │   │                      ``limit``/``remaining``/``resets_at`` carry the facts behind a limit,
    │   │                      ``template``/``params`` the same words for translation (bot.i18n)
    │   ├── InvalidParameter   a parameter out of range (names it, the value and what is allowed)
    │   ├── ImageRejected      an input image we will not take (names the file and why)
    │   └── NoSuchJob          a job that does not exist *or* may not be seen from here
    ├── UpstreamError          something outside us failed (fal, Discord)
    │   └── FalError           fal said no; subclasses by kind (see bot.fal.errors)
    └── StoreError             the database cannot be used
        └── SchemaTooNew       the database was written by a newer Flexbot

Exceptions carry their facts as attributes so callers branch on fields, not on text.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.i18n import ENGLISH, Text, translate

#: Words for a member: a fixed English sentence (itself a msgid), or a message with parameters.
Words = str | Text


def english(words: Words) -> str:
    """The English text of ``words``: what the database and the logs keep."""
    if isinstance(words, Text):
        return translate(ENGLISH, words.msgid, **words.params)
    return words


def as_text(words: Words) -> Text:
    """``words`` as a message to translate (a fixed sentence is its own msgid)."""
    return words if isinstance(words, Text) else Text(words)


class FlexbotError(Exception):
    """Base of every error Flexbot raises on purpose."""


class ConfigError(FlexbotError):
    """A setting has a value we cannot use."""

    def __init__(self, key: str, source: str, value: object, allowed: str) -> None:
        self.key = key
        self.source = source
        self.value = value
        self.allowed = allowed
        super().__init__(f"setting {key!r} from {source}: got {value!r}; allowed: {allowed}")


class UserError(FlexbotError):
    """No to a member: the message is written for them and safe to show.

    When a limit said no, ``limit`` names it (``user_daily_cap``, ``user_max_queued``, ``paused``,
    ...), ``remaining`` is what is left of it (micro-dollars for money caps) and ``resets_at`` is
    when it resets (epoch seconds, UTC), so callers and tests branch on fields, never on text.

    ``template`` is the message's msgid in the catalogues (English with ``{named}`` placeholders)
    and ``params`` its values (``bot.i18n.Money``, ``Duration``, ``Moment`` where the reader's
    locale formats them), so the front end can say it in the member's language. Without a
    template the message itself is the msgid (a fixed sentence).
    """

    def __init__(
        self,
        message: str,
        *,
        limit: str | None = None,
        remaining: int | None = None,
        resets_at: float | None = None,
        template: str | None = None,
        params: Mapping[str, object] | None = None,
    ) -> None:
        self.message = message
        self.limit = limit
        self.remaining = remaining
        self.resets_at = resets_at
        self.template = template or message
        self.params: Mapping[str, object] = dict(params or {})
        super().__init__(message)

    @classmethod
    def of(
        cls,
        template: str,
        /,
        *,
        limit: str | None = None,
        remaining: int | None = None,
        resets_at: float | None = None,
        **params: object,
    ) -> UserError:
        """A refusal from its msgid and parameters; its message is the English text."""
        return cls(
            translate(ENGLISH, template, **params),
            limit=limit,
            remaining=remaining,
            resets_at=resets_at,
            template=template,
            params=params,
        )


class InvalidParameter(UserError):
    """A user-supplied parameter is outside what the endpoint accepts."""

    def __init__(self, name: str, value: object, allowed: Words) -> None:
        self.name = name
        self.value = value
        self.allowed = english(allowed)
        shown: object = value if isinstance(value, int | float | Text) else repr(value)
        if isinstance(value, str) and len(value) > 60:
            shown = repr(value[:57] + "...")
        super().__init__(
            f"`{name}`: got {english(shown) if isinstance(shown, Text) else shown}, "
            f"allowed: {self.allowed}.",
            template="`{name}`: got {value}, allowed: {allowed}.",
            params={"name": name, "value": shown, "allowed": as_text(allowed)},
        )


class ImageRejected(UserError):
    """An input image was refused; the message names the file and what to do."""

    def __init__(self, filename: str, reason: Words) -> None:
        self.filename = filename
        self.reason = english(reason)
        #: The reason as a message, so the member reads it in their language.
        self.reason_text = as_text(reason)
        super().__init__(
            f"{filename}: {self.reason}",
            template="{filename}: {reason}",
            params={"filename": filename, "reason": self.reason_text},
        )


class NoSuchJob(UserError):
    """A job that is missing, or that this member may not see from here (same words for both,
    so a job id from another server tells nothing)."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        super().__init__(
            f"There is no job #{job_id}.",
            limit="job",
            template="There is no job #{job}.",
            params={"job": job_id},
        )


class UpstreamError(FlexbotError):
    """A service we depend on failed."""


class StoreError(FlexbotError):
    """The database cannot be used."""


class SchemaTooNew(StoreError):
    """The database was migrated by a newer Flexbot than this one."""

    def __init__(self, found: int, known: int) -> None:
        self.found = found
        self.known = known
        super().__init__(
            f"the database is at schema version {found}, but this Flexbot knows only up to "
            f"{known}; upgrade Flexbot or restore a backup made by this version"
        )
