"""Plain values shared by the core, the cogs and the CLI: the typed vocabulary (job states,
origins, ledger kinds, limit scopes, usage periods, safety levels), edit parameters, jobs, the
values submit takes and returns, and money helpers. Nothing here does I/O.

Every ``StrEnum`` value equals the string stored in the database, so rows read back compare equal
to the enum and the schema does not change.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Any, ClassVar, Literal

MICROS_PER_USD = 1_000_000

#: fal's named sizes for this endpoint, with the pixels each one produces.
PRESET_SIZES: dict[str, tuple[int, int]] = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}

OutputFormat = Literal["jpeg", "png"]


class SafetyTolerance(StrEnum):
    """fal's safety levels: "1" is the strictest, "5" the most permissive."""

    STRICTEST = "1"
    STRICT = "2"
    MODERATE = "3"
    PERMISSIVE = "4"
    MOST_PERMISSIVE = "5"


DEFAULT_SAFETY_TOLERANCE = SafetyTolerance.STRICT
DEFAULT_GUIDANCE = 3.5
DEFAULT_STEPS = 28
MAX_IMAGES = 8


@dataclass(frozen=True, slots=True)
class ImageSize:
    """``auto``, one of fal's presets, or a custom width x height."""

    preset: str | None = "auto"
    width: int | None = None
    height: int | None = None

    @property
    def is_auto(self) -> bool:
        return self.preset == "auto"

    def pixels(self) -> tuple[int, int] | None:
        """The output's width and height, or None when the model picks (``auto``)."""
        if self.preset is None:
            assert self.width is not None
            assert self.height is not None
            return (self.width, self.height)
        return PRESET_SIZES.get(self.preset)

    def to_fal(self) -> str | dict[str, int]:
        if self.preset is None:
            return {"width": self.width or 0, "height": self.height or 0}
        return self.preset

    def __str__(self) -> str:
        if self.preset is None:
            return f"{self.width}x{self.height}"
        return self.preset


@dataclass(frozen=True, slots=True)
class EditParams:
    """One validated request to ``fal-ai/flux-2-flex/edit``, minus its image URLs."""

    prompt: str
    image_size: ImageSize = field(default_factory=ImageSize)
    seed: int | None = None
    safety_tolerance: SafetyTolerance = DEFAULT_SAFETY_TOLERANCE
    enable_safety_checker: bool = True
    output_format: OutputFormat = "jpeg"
    guidance_scale: float = DEFAULT_GUIDANCE
    num_inference_steps: int = DEFAULT_STEPS

    def to_fal_input(self, image_urls: list[str]) -> dict[str, Any]:
        """The JSON body fal expects, with our inputs' uploaded URLs."""
        body: dict[str, Any] = {
            "prompt": self.prompt,
            "image_urls": list(image_urls),
            "image_size": self.image_size.to_fal(),
            "safety_tolerance": self.safety_tolerance,
            "enable_safety_checker": self.enable_safety_checker,
            "output_format": self.output_format,
            "guidance_scale": self.guidance_scale,
            "num_inference_steps": self.num_inference_steps,
        }
        if self.seed is not None:
            body["seed"] = self.seed
        return body

    def to_json(self) -> str:
        """A stable JSON form for the jobs table."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EditParams:
        data = json.loads(text)
        data["image_size"] = ImageSize(**data["image_size"])
        data["safety_tolerance"] = SafetyTolerance(data["safety_tolerance"])
        return cls(**data)


def usd(micros: int) -> str:
    """Format micro-dollars for people: ``$0.05``, ``$1.25``, ``$0.0025``."""
    amount = Decimal(micros) / MICROS_PER_USD
    if micros % 10_000 == 0:
        return f"${amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)}"
    return f"${amount.normalize():f}"


def micros_from_usd(text: str | float | int | Decimal) -> int:
    """Parse a dollar amount exactly into micro-dollars (no float rounding)."""
    value = Decimal(str(text)) * MICROS_PER_USD
    if value != value.to_integral_value():
        raise ValueError(f"{text} has more precision than a micro-dollar")
    return int(value)


class JobState(StrEnum):
    """The stored states of a job (DESIGN §3)."""

    QUEUED = "queued"
    SUBMITTING = "submitting"
    #: "Maybe at fal": the submit's answer was lost (or a crash came inside the submit window),
    #: so fal may be running and billing it. Looked up in fal's request list before anything is
    #: sent again (``bot.engine.reconcile``); never failed while fal may be running it.
    UNSURE = "unsure"
    RUNNING = "running"
    FETCHED = "fetched"
    DELIVERED = "delivered"
    UNDELIVERABLE = "undeliverable"
    CANCELLED = "cancelled"
    FAILED = "failed"

    # Not members: set below, once the members exist.
    ACTIVE: ClassVar[frozenset[JobState]]
    FINAL: ClassVar[frozenset[JobState]]


JobState.ACTIVE = frozenset(
    {JobState.QUEUED, JobState.SUBMITTING, JobState.UNSURE, JobState.RUNNING}
)
JobState.FINAL = frozenset(
    {JobState.DELIVERED, JobState.UNDELIVERABLE, JobState.CANCELLED, JobState.FAILED}
)


class Origin(StrEnum):
    """How a job came to be: what the member did."""

    COMMAND = "command"  # /edit
    CONTEXT_MENU = "context_menu"  # "Edit with FLUX" on a message
    CLI = "cli"  # flexbot edit
    RERUN = "rerun"
    REROLL = "reroll"
    TWEAK = "tweak"
    REMIX = "remix"


class LedgerKind(StrEnum):
    """The kinds of ledger row: money held for a job, let go, charged, given back."""

    RESERVE = "reserve"
    RELEASE = "release"
    CHARGE = "charge"
    REFUND = "refund"


class LimitScope(StrEnum):
    """Whom a limit override applies to."""

    USER = "user"
    ROLE = "role"
    GUILD = "guild"
    GLOBAL = "global"


class UsagePeriod(StrEnum):
    """The windows usage reports cover (UTC)."""

    TODAY = "today"
    MONTH = "month"
    LAST30 = "last30"
    ALL = "all"


class CancelOutcome(StrEnum):
    """What a cancel request did."""

    CANCELLED = "cancelled"  # was queued: ended at once, nothing charged
    CANCELLING = "cancelling"  # at fal: asked to stop
    FINISHED = "finished"  # had already ended
    NOT_FOUND = "not_found"
    NOT_ALLOWED = "not_allowed"


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asked, and where: what budgets and limits apply, and which jobs they may see.

    ``channel_nsfw``: the channel is age-restricted. ``moderator``: Manage Messages in this
    channel of this server (the front end fills both; ``bot.visibility`` decides with them).
    """

    user_id: int
    guild_id: int | None = None
    channel_id: int | None = None
    role_ids: tuple[int, ...] = ()
    channel_nsfw: bool = False
    moderator: bool = False


@dataclass(frozen=True, slots=True)
class Job:
    """A row of the jobs table."""

    id: int
    state: JobState
    user_id: int
    guild_id: int | None
    channel_id: int | None
    role_ids: tuple[int, ...]
    origin: Origin
    parent_job_id: int | None
    endpoint: str
    params: EditParams
    input_hashes: tuple[str, ...]
    seed: int | None
    estimate_micros: int
    cost_micros: int | None
    held_micros: int
    charged_micros: int
    cancel_requested: bool
    fal_request_id: str | None
    submit_attempts: int
    output_hash: str | None
    output_width: int | None
    output_height: int | None
    failure_reason: str | None
    status_message_id: int | None
    result_message_id: int | None
    source_message_id: int | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    updated_at: float
    #: Asked for in an age-restricted channel (or from before that was recorded: unknown counts
    #: as age-restricted), so its images never reappear in an ordinary channel.
    channel_nsfw: bool = True
    #: The author of the message a context-menu edit took its images from.
    source_author_id: int | None = None
    #: The exact JSON arguments sent to fal (seed included), stored before the POST.
    fal_input: str | None = None
    #: When the last POST began, and when its answer was found lost (``unsure`` jobs).
    submit_window_start: float | None = None
    submit_window_end: float | None = None
    #: ``x-fal-request-id`` of a lost answer, when fal's answer carried one.
    fal_request_hint: str | None = None
    #: How long fal reported the job queued or running (the job timeout counts this).
    fal_seconds: float = 0.0
    #: When fal last reported it queued or running.
    fal_seen_at: float | None = None
    #: fal's safety checker flagged the output (``has_nsfw_concepts``): never shown openly
    #: outside an age-restricted channel.
    nsfw_flagged: bool = False

    @property
    def requester(self) -> Requester:
        return Requester(
            self.user_id, self.guild_id, self.channel_id, self.role_ids, self.channel_nsfw
        )

    @property
    def delivery_key(self) -> str:
        """Stable per job, so a platform that deduplicates can drop a second post."""
        return f"flexbot-job-{self.id}"


@dataclass(frozen=True, slots=True)
class InputImage:
    """A normalised input: already in the blob store, or (``data`` set) to be stored there once
    its job is admitted, so a refused edit leaves nothing on disk."""

    sha256: str
    width: int
    height: int
    data: bytes | None = field(default=None, repr=False, compare=False)
    content_type: str = "image/jpeg"


@dataclass(frozen=True, slots=True)
class EditRequest:
    """Everything submit() needs; built by a cog or the CLI."""

    params: EditParams
    inputs: tuple[InputImage, ...]
    requester: Requester
    origin: Origin = Origin.COMMAND
    parent_job_id: int | None = None
    source_message_id: int | None = None
    #: Who posted the message a context-menu edit uses: their remix opt-out applies.
    source_author_id: int | None = None


@dataclass(frozen=True, slots=True)
class JobTicket:
    """What a member sees right after submitting."""

    job_id: int
    position: int
    eta_seconds: float
    estimate_micros: int


@dataclass(frozen=True, slots=True)
class CancelResult:
    """The outcome of a cancel request, with the words for the member (``message`` in English;
    ``template`` and ``params`` the same for translation, see ``bot.i18n``)."""

    job_id: int
    outcome: CancelOutcome
    message: str
    template: str = ""
    params: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a job is: waiting in our queue, in fal's queue, or running with its latest logs."""

    state: str  # a JobState while ours; "fal_queue" or "running" while at fal
    queue_position: int | None = None  # ours while queued, fal's while in fal's queue
    eta_seconds: float | None = None
    logs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One recorded admin change."""

    id: int
    guild_id: int | None
    actor_id: int | None
    action: str
    detail: dict[str, Any]
    created_at: float
