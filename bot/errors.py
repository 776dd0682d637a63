"""Flexbot's exception tree.

    FlexbotError
    ├── ConfigError            a setting is wrong; start-up stops (exit code 2)
    ├── UserError              the one way to say no to a member; ``str(e)`` is safe to show them,
    │   │                      ``limit``/``remaining``/``resets_at`` carry the facts behind a limit
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
    """

    def __init__(
        self,
        message: str,
        *,
        limit: str | None = None,
        remaining: int | None = None,
        resets_at: float | None = None,
    ) -> None:
        self.message = message
        self.limit = limit
        self.remaining = remaining
        self.resets_at = resets_at
        super().__init__(message)


class InvalidParameter(UserError):
    """A user-supplied parameter is outside what the endpoint accepts."""

    def __init__(self, name: str, value: object, allowed: str) -> None:
        self.name = name
        self.value = value
        self.allowed = allowed
        shown = value if isinstance(value, int | float) else repr(value)
        if isinstance(value, str) and len(value) > 60:
            shown = repr(value[:57] + "...")
        super().__init__(f"`{name}`: got {shown}, allowed: {allowed}.")


class ImageRejected(UserError):
    """An input image was refused; the message names the file and what to do."""

    def __init__(self, filename: str, reason: str) -> None:
        self.filename = filename
        self.reason = reason
        super().__init__(f"{filename}: {reason}")


class NoSuchJob(UserError):
    """A job that is missing, or that this member may not see from here (same words for both,
    so a job id from another server tells nothing)."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        super().__init__(f"There is no job #{job_id}.", limit="job")


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
