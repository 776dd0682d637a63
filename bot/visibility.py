"""Who may see and use a job from where: THE rule, in one place (issue 11).

A job is visible only

- from its own server (a job from a direct message: only to its requester, only in DMs), and
- through its channel's safety policy: a job asked for in an age-restricted channel is visible
  only from an age-restricted channel, so its images never reappear in an ordinary one.

Everything that shows a job or reuses its images (``/show``, ``/rerun``, the Rerun, Reroll,
Tweak and Remix buttons, ``/cancel``) goes through :func:`visible`, and a job that is not visible
is answered exactly like a missing one (``NoSuchJob``), so a job id tells nothing about another
server. A moderator is a moderator *of the job's server*: Manage Messages elsewhere counts for
nothing.

Pure functions of the stored job and the requester; the front end fills ``Requester.channel_nsfw``
and ``Requester.moderator`` from the interaction.
"""

from __future__ import annotations

from bot.model import Job, Requester


def visible(job: Job, who: Requester) -> bool:
    """May ``who``, where they are, see this job and reuse its images?"""
    if job.guild_id is None:
        # A DM job's images were sent privately: only its requester, and only in DMs.
        return who.guild_id is None and who.user_id == job.user_id
    if who.guild_id != job.guild_id:
        return False
    return who.channel_nsfw or not job.channel_nsfw


def moderates(job: Job, who: Requester) -> bool:
    """Is ``who`` a moderator of the job's own server, asking from where the job is visible?"""
    return who.moderator and job.guild_id is not None and visible(job, who)


def may_manage(job: Job, who: Requester) -> bool:
    """May ``who`` cancel this job or delete its result? Its requester, or a moderator of its
    server; both only from where the job is visible."""
    return visible(job, who) and (who.user_id == job.user_id or moderates(job, who))
