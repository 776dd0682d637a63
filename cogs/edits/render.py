"""Pure rendering of edits: jobs and tickets -> message content, embeds and buttons. No network.

Every function takes the ``locale`` its reader reads: the server's language for what is posted
in the channel (results, status, failure notices; ``cogs.interactions.server_locale``), the
member's Discord locale for private answers. None is English.
"""

from __future__ import annotations

from dataclasses import dataclass

import discord

from bot.errors import Words, as_text
from bot.i18n import Duration, Money, Text, format_money, language_of, translate
from bot.model import Job, JobState, JobTicket, Progress

CONTENT_MAX = 2000
DESCRIPTION_MAX = 4000

#: action -> (label, style) for the buttons under a result, in order.
RESULT_ACTIONS: dict[str, tuple[str, discord.ButtonStyle]] = {
    "rerun": ("Rerun", discord.ButtonStyle.secondary),
    "reroll": ("Reroll", discord.ButtonStyle.secondary),
    "tweak": ("Tweak", discord.ButtonStyle.secondary),
    "remix": ("Remix", discord.ButtonStyle.primary),
    "delete": ("Delete", discord.ButtonStyle.danger),
}
#: Buttons under a flagged result: no Remix, which would feed the flagged image to a new edit.
FLAGGED_ACTIONS = ("rerun", "reroll", "tweak", "delete")
SPOILER_PREFIX = "SPOILER_"  # Discord shows an attachment named so behind a spoiler

# Member-facing words about outputs fal's safety checker flagged (templates for the catalogues).
FLAGGED_HIDDEN = (
    "<@{user}> job #{job}: fal's safety checker flagged the image, so it is not shown in this "
    "channel. It was still charged ({cost}) because fal billed it."
)
FLAGGED_SPOILER = (
    "fal's safety checker flagged this image, so it is behind a spoiler. It was charged ({cost}) "
    "as usual."
)
FLAGGED_NOT_SHOWN = (
    "Job #{job}'s image was flagged by fal's safety checker, so Flexbot does not post it here."
)

REMIX_FLAGGED = "Job #{job}'s image was flagged by fal's safety checker, so it cannot be remixed."

CUSTOM_ID_TEMPLATE = r"flex:(?P<action>rerun|reroll|tweak|remix|delete|cancel):(?P<job>\d+)"


@dataclass(frozen=True, slots=True)
class ButtonSpec:
    """One button: its label, style and the custom_id that carries its state."""

    label: str
    custom_id: str
    style: discord.ButtonStyle


@dataclass(frozen=True, slots=True)
class Rendered:
    """A message to send or an edit to make."""

    content: str
    embed: discord.Embed | None = None
    buttons: tuple[ButtonSpec, ...] = ()


def custom_id(action: str, job_id: int) -> str:
    return f"flex:{action}:{job_id}"


def cancel_button(job_id: int, locale: str | None = None) -> ButtonSpec:
    label = translate(locale, "Cancel")
    return ButtonSpec(label, custom_id("cancel", job_id), discord.ButtonStyle.danger)


def result_buttons(
    job_id: int, actions: tuple[str, ...] | None = None, locale: str | None = None
) -> tuple[ButtonSpec, ...]:
    return tuple(
        ButtonSpec(translate(locale, label), custom_id(action, job_id), style)
        for action, (label, style) in RESULT_ACTIONS.items()
        if actions is None or action in actions
    )


def make_view(buttons: tuple[ButtonSpec, ...]) -> discord.ui.View:
    """A View of plain buttons; clicks are routed by custom_id to the DynamicItem in results."""
    view = discord.ui.View(timeout=None)
    for b in buttons:
        view.add_item(discord.ui.Button(label=b.label, custom_id=b.custom_id, style=b.style))
    return view


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _eta(seconds: float) -> Text:
    return Text("now") if seconds <= 0 else Text("in ~{wait}", {"wait": Duration(seconds)})


def status_queued(ticket: JobTicket, locale: str | None = None) -> Rendered:
    """The status message right after a job was queued."""
    place = (
        Text("next in line")
        if ticket.position == 0
        else Text("position {position}", {"position": ticket.position + 1})
    )
    text = translate(
        locale,
        "⏳ Job #{job} queued ({place}), starts {eta} · estimated cost {cost}",
        job=ticket.job_id,
        place=place,
        eta=_eta(ticket.eta_seconds),
        cost=Money(ticket.estimate_micros),
    )
    return Rendered(text, buttons=(cancel_button(ticket.job_id, locale),))


def status_progress(job: Job, progress: Progress, locale: str | None = None) -> Rendered:
    """The status message while a job waits or runs (fal's log lines as fal wrote them)."""
    if progress.state == "fal_queue":
        where = translate(locale, "waiting at fal")
        if progress.queue_position is not None:
            position = translate(
                locale, "position {position}", position=progress.queue_position + 1
            )
            where += f" ({position})"
    elif progress.state == "running":
        where = translate(locale, "running")
        if progress.logs:
            where += f": {_clip(progress.logs[-1], 200)}"
    else:
        where = translate(locale, progress.state)
    text = translate(
        locale,
        "⏳ Job #{job} {where} · estimated cost {cost}",
        job=job.id,
        where=where,
        cost=Money(job.estimate_micros),
    )
    return Rendered(_clip(text, CONTENT_MAX), buttons=(cancel_button(job.id, locale),))


def status_done(job: Job, result_url: str, locale: str | None = None) -> Rendered:
    return Rendered(translate(locale, "✅ Job #{job} done: {url}", job=job.id, url=result_url))


def status_ended(job: Job, reason: Words, locale: str | None = None) -> Rendered:
    """The job ended without a result. ``reason`` is the engine's English sentence or its
    message with values (``Text``): shown in the reader's language when the catalogues know it,
    else as it is."""
    icon = "✖️" if job.state == JobState.CANCELLED else "⚠️"
    text = translate(
        locale,
        "{icon} Job #{job} ended: {reason}",
        icon=icon,
        job=job.id,
        reason=as_text(reason),
    )
    return Rendered(_clip(text, CONTENT_MAX))


def queued_ack(ticket: JobTicket, locale: str | None = None) -> str:
    """The requester's private note that the job is queued and where the status is."""
    return translate(
        locale,
        "Queued as job #{job}; the status and the result follow in this channel.",
        job=ticket.job_id,
    )


#: How a job came from another, for the lineage line.
LINEAGE = {
    "remix": "remix of #{parent}",
    "reroll": "reroll of #{parent}",
    "tweak": "tweak of #{parent}",
    "rerun": "rerun of #{parent}",
}
LINEAGE_BY = {
    "remix": "remix of #{parent} by {author}",
    "reroll": "reroll of #{parent} by {author}",
    "tweak": "tweak of #{parent} by {author}",
    "rerun": "rerun of #{parent} by {author}",
}


def lineage(job: Job, parent: Job | None, locale: str | None = None) -> str | None:
    """``remix of #123 by @x`` (or rerun / tweak / reroll), None for a fresh edit."""
    if job.parent_job_id is None:
        return None
    verb = job.origin if job.origin in LINEAGE else "rerun"
    if parent is None:
        return translate(locale, LINEAGE[verb], parent=job.parent_job_id)
    return translate(
        locale, LINEAGE_BY[verb], parent=job.parent_job_id, author=f"<@{parent.user_id}>"
    )


def output_filename(job: Job, fmt: str | None = None) -> str:
    ext = fmt or ("png" if job.params.output_format == "png" else "jpg")
    return f"flexbot-{job.id}.{ext}"


def output_filename_shown(job: Job, ext: str, display: str | None) -> str:
    """The attachment's name: behind a spoiler when a flagged output is shown that way."""
    name = output_filename(job, ext)
    return SPOILER_PREFIX + name if job.nsfw_flagged and display == "spoiler" else name


def flagged_hidden(job: Job, parent: Job | None, locale: str | None = None) -> Rendered:
    """A flagged output where it may not be shown: the facts and the charge, no image."""
    full = result(job, parent, None, locale)
    content = translate(
        locale, FLAGGED_HIDDEN, user=job.user_id, job=job.id, cost=Money(job.cost_micros or 0)
    )
    return Rendered(content, full.embed, result_buttons(job.id, FLAGGED_ACTIONS, locale))


def result(
    job: Job, parent: Job | None, filename: str | None, locale: str | None = None
) -> Rendered:
    """The result message: mention, embed with every parameter, and the result buttons.

    ``filename`` is the attachment the embed shows (None: none). A flagged output's attachment
    (a spoiler) is never put in the embed, where Discord would show it openly.
    """
    p = job.params
    seed = job.seed if job.seed is not None else p.seed
    cost = Money(job.cost_micros or 0)

    def t(msgid: str, **params: object) -> str:
        return translate(locale, msgid, **params)

    embed = discord.Embed(
        title=t("Job #{job}", job=job.id),
        description=_clip(p.prompt, DESCRIPTION_MAX),
        colour=0x5865F2,
    )
    embed.add_field(name=t("Seed"), value=str(seed))
    embed.add_field(name=t("Steps"), value=str(p.num_inference_steps))
    embed.add_field(name=t("Guidance"), value=f"{p.guidance_scale:g}")
    size = str(p.image_size)
    if job.output_width and job.output_height:
        size = f"{job.output_width}x{job.output_height} ({size})"
    embed.add_field(name=t("Size"), value=size)
    embed.add_field(name=t("Format"), value=p.output_format)
    safety = str(p.safety_tolerance)
    if not p.enable_safety_checker:
        safety = t("{tolerance}, checker off", tolerance=safety)
    embed.add_field(name=t("Safety"), value=safety)
    embed.add_field(name=t("Cost"), value=format_money(cost.micros, language_of(locale)))
    embed.add_field(name=t("Requester"), value=f"<@{job.user_id}>")
    line = lineage(job, parent, locale)
    if line:
        embed.add_field(name=t("Lineage"), value=line)
    if filename is not None and not job.nsfw_flagged:
        embed.set_image(url=f"attachment://{filename}")
    embed.set_footer(text=t("job {job}", job=job.id))
    content = t(
        "{mention} job #{job} is ready · seed {seed} · {cost}",
        mention=f"<@{job.user_id}>",
        job=job.id,
        seed=seed,
        cost=cost,
    )
    if line:
        content += f" · {line}"
    if job.nsfw_flagged:
        content += "\n" + t(FLAGGED_SPOILER, cost=cost)
        return Rendered(content, embed, result_buttons(job.id, FLAGGED_ACTIONS, locale))
    return Rendered(content, embed, result_buttons(job.id, None, locale))


def job_summary(job: Job, locale: str | None = None) -> str:
    """One line about a job that has no result to show."""
    state = Text(str(job.state))
    if job.failure_reason:
        return translate(
            locale,
            "Job #{job} is {state}: {reason}.",
            job=job.id,
            state=state,
            reason=translate(locale, job.failure_reason),
        )
    return translate(locale, "Job #{job} is {state}.", job=job.id, state=state)
