"""Pure rendering of edits: jobs and tickets -> message content, embeds and buttons. No network."""

from __future__ import annotations

from dataclasses import dataclass

import discord

from bot.engine.quota import humanize_delta
from bot.model import Job, JobState, JobTicket, Progress, usd

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


def cancel_button(job_id: int) -> ButtonSpec:
    return ButtonSpec("Cancel", custom_id("cancel", job_id), discord.ButtonStyle.danger)


def result_buttons(job_id: int, actions: tuple[str, ...] | None = None) -> tuple[ButtonSpec, ...]:
    return tuple(
        ButtonSpec(label, custom_id(action, job_id), style)
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


def _eta(seconds: float) -> str:
    return "now" if seconds <= 0 else f"in ~{humanize_delta(seconds)}"


def status_queued(ticket: JobTicket) -> Rendered:
    """The status message right after a job was queued."""
    place = "next in line" if ticket.position == 0 else f"position {ticket.position + 1}"
    return Rendered(
        f"⏳ Job #{ticket.job_id} queued ({place}), starts {_eta(ticket.eta_seconds)} · "
        f"estimated cost {usd(ticket.estimate_micros)}",
        buttons=(cancel_button(ticket.job_id),),
    )


def status_progress(job: Job, progress: Progress) -> Rendered:
    """The status message while a job waits or runs."""
    if progress.state == "fal_queue":
        where = "waiting at fal"
        if progress.queue_position is not None:
            where += f" (position {progress.queue_position + 1})"
    elif progress.state == "running":
        where = "running"
        if progress.logs:
            where += f": {_clip(progress.logs[-1], 200)}"
    else:
        where = progress.state
    text = f"⏳ Job #{job.id} {where} · estimated cost {usd(job.estimate_micros)}"
    return Rendered(_clip(text, CONTENT_MAX), buttons=(cancel_button(job.id),))


def status_done(job: Job, result_url: str) -> Rendered:
    return Rendered(f"✅ Job #{job.id} done: {result_url}")


def status_ended(job: Job, reason: str) -> Rendered:
    icon = "✖️" if job.state == JobState.CANCELLED else "⚠️"
    return Rendered(_clip(f"{icon} Job #{job.id} ended: {reason}", CONTENT_MAX))


def queued_ack(ticket: JobTicket) -> str:
    """The requester's private note that the job is queued and where the status is."""
    return f"Queued as job #{ticket.job_id}; the status and the result follow in this channel."


def lineage(job: Job, parent: Job | None) -> str | None:
    """``remix of #123 by @x`` (or rerun / tweak / reroll), None for a fresh edit."""
    if job.parent_job_id is None:
        return None
    verb = {"remix": "remix", "reroll": "reroll", "tweak": "tweak"}.get(job.origin, "rerun")
    by = f" by <@{parent.user_id}>" if parent is not None else ""
    return f"{verb} of #{job.parent_job_id}{by}"


def output_filename(job: Job, fmt: str | None = None) -> str:
    ext = fmt or ("png" if job.params.output_format == "png" else "jpg")
    return f"flexbot-{job.id}.{ext}"


def output_filename_shown(job: Job, ext: str, display: str | None) -> str:
    """The attachment's name: behind a spoiler when a flagged output is shown that way."""
    name = output_filename(job, ext)
    return SPOILER_PREFIX + name if job.nsfw_flagged and display == "spoiler" else name


def flagged_hidden(job: Job, parent: Job | None) -> Rendered:
    """A flagged output where it may not be shown: the facts and the charge, no image."""
    full = result(job, parent, None)
    content = FLAGGED_HIDDEN.format(user=job.user_id, job=job.id, cost=usd(job.cost_micros or 0))
    return Rendered(content, full.embed, result_buttons(job.id, FLAGGED_ACTIONS))


def result(job: Job, parent: Job | None, filename: str | None) -> Rendered:
    """The result message: mention, embed with every parameter, and the result buttons.

    ``filename`` is the attachment the embed shows (None: none). A flagged output's attachment
    (a spoiler) is never put in the embed, where Discord would show it openly.
    """
    p = job.params
    seed = job.seed if job.seed is not None else p.seed
    embed = discord.Embed(
        title=f"Job #{job.id}", description=_clip(p.prompt, DESCRIPTION_MAX), colour=0x5865F2
    )
    embed.add_field(name="Seed", value=str(seed))
    embed.add_field(name="Steps", value=str(p.num_inference_steps))
    embed.add_field(name="Guidance", value=f"{p.guidance_scale:g}")
    size = str(p.image_size)
    if job.output_width and job.output_height:
        size = f"{job.output_width}x{job.output_height} ({size})"
    embed.add_field(name="Size", value=size)
    embed.add_field(name="Format", value=p.output_format)
    safety = p.safety_tolerance + ("" if p.enable_safety_checker else ", checker off")
    embed.add_field(name="Safety", value=safety)
    embed.add_field(name="Cost", value=usd(job.cost_micros or 0))
    embed.add_field(name="Requester", value=f"<@{job.user_id}>")
    line = lineage(job, parent)
    if line:
        embed.add_field(name="Lineage", value=line)
    if filename is not None and not job.nsfw_flagged:
        embed.set_image(url=f"attachment://{filename}")
    embed.set_footer(text=f"job {job.id}")
    content = f"<@{job.user_id}> job #{job.id} is ready · seed {seed} · {usd(job.cost_micros or 0)}"
    if line:
        content += f" · {line}"
    if job.nsfw_flagged:
        content += "\n" + FLAGGED_SPOILER.format(cost=usd(job.cost_micros or 0))
        return Rendered(content, embed, result_buttons(job.id, FLAGGED_ACTIONS))
    return Rendered(content, embed, result_buttons(job.id))


def job_summary(job: Job) -> str:
    """One line about a job that has no result to show."""
    reason = f": {job.failure_reason}" if job.failure_reason else ""
    return f"Job #{job.id} is {job.state}{reason}."
