"""cogs.edits.render is pure: jobs, tickets and progress -> what members see."""

from __future__ import annotations

import re
from dataclasses import replace

from bot.admin_facts import GateRefused
from bot.errors import UserError
from bot.model import EditParams, ImageSize, Job, JobState, JobTicket, Progress
from cogs.edits import render
from cogs.errors import refusal_text

PARAMS = EditParams(
    prompt="make it blue @everyone",
    image_size=ImageSize("landscape_4_3"),
    seed=None,
    safety_tolerance="3",
    output_format="png",
    guidance_scale=4.5,
    num_inference_steps=30,
)


def make_job(**changes: object) -> Job:
    job = Job(
        id=42, state=JobState.DELIVERED, user_id=111, guild_id=9, channel_id=8, role_ids=(),
        origin="command", parent_job_id=None, endpoint="fal-ai/flux-2-flex/edit", params=PARAMS,
        input_hashes=("a" * 64,), seed=1234, estimate_micros=30_000, cost_micros=25_000,
        held_micros=0, charged_micros=25_000, cancel_requested=False, fal_request_id="r",
        submit_attempts=1, output_hash="b" * 64, output_width=1024, output_height=768,
        failure_reason=None, status_message_id=5, result_message_id=None, source_message_id=None,
        created_at=0.0, started_at=1.0, finished_at=2.0, updated_at=2.0,
    )  # fmt: skip
    return replace(job, **changes)  # type: ignore[arg-type]


def fields(r: render.Rendered) -> dict[str, str]:
    assert r.embed is not None
    return {f.name or "": f.value or "" for f in r.embed.fields}


def test_result_shows_every_parameter_cost_and_requester() -> None:
    out = render.result(make_job(), None, "flexbot-42.png")
    f = fields(out)
    assert f["Seed"] == "1234"
    assert f["Steps"] == "30"
    assert f["Guidance"] == "4.5"
    assert f["Size"] == "1024x768 (landscape_4_3)"
    assert f["Format"] == "png"
    assert f["Safety"] == "3"
    assert f["Cost"] == "$0.025"
    assert f["Requester"] == "<@111>"
    assert "Lineage" not in f
    assert out.embed is not None
    assert out.embed.description == PARAMS.prompt
    assert out.embed.image.url == "attachment://flexbot-42.png"
    assert out.content.startswith("<@111> job #42")


def test_prompt_stays_out_of_the_content() -> None:
    out = render.result(make_job(), None, "x.png")
    assert "@everyone" not in out.content


def test_result_buttons_carry_action_and_job_id() -> None:
    out = render.result(make_job(), None, "x.png")
    assert [b.label for b in out.buttons] == ["Rerun", "Reroll", "Tweak", "Remix", "Delete"]
    for b in out.buttons:
        assert len(b.custom_id) <= 100
        m = re.fullmatch(render.CUSTOM_ID_TEMPLATE, b.custom_id)
        assert m is not None
        assert m["job"] == "42"


def test_lineage_names_parent_job_and_its_author() -> None:
    parent = make_job(id=7, user_id=222)
    job = make_job(origin="remix", parent_job_id=7)
    assert render.lineage(job, parent) == "remix of #7 by <@222>"
    assert fields(render.result(job, parent, "x.png"))["Lineage"] == "remix of #7 by <@222>"
    assert render.lineage(make_job(origin="rerun", parent_job_id=7), None) == "rerun of #7"


def test_checker_off_is_shown() -> None:
    job = make_job(params=replace(PARAMS, enable_safety_checker=False))
    assert fields(render.result(job, None, "x.png"))["Safety"] == "3, checker off"


def test_long_prompt_is_clipped_to_embed_limit() -> None:
    job = make_job(params=replace(PARAMS, prompt="x" * 9000))
    out = render.result(job, None, "x.png")
    assert out.embed is not None
    assert out.embed.description is not None
    assert len(out.embed.description) <= render.DESCRIPTION_MAX


def test_queued_status_has_position_eta_cost_and_cancel() -> None:
    out = render.status_queued(
        JobTicket(job_id=3, position=2, eta_seconds=90, estimate_micros=30_000)
    )
    assert "Job #3" in out.content
    assert "position 3" in out.content
    assert "1 min" in out.content
    assert "$0.03" in out.content
    assert [b.custom_id for b in out.buttons] == ["flex:cancel:3"]
    first = render.status_queued(JobTicket(3, 0, 0.0, 10_000))
    assert "next in line" in first.content
    assert "starts now" in first.content


def test_progress_status_shows_fal_queue_and_logs() -> None:
    job = make_job(state=JobState.RUNNING)
    assert (
        "waiting at fal (position 2)"
        in render.status_progress(job, Progress("fal_queue", queue_position=1)).content
    )
    running = render.status_progress(job, Progress("running", logs=("step 1", "step 9/28")))
    assert "step 9/28" in running.content
    assert running.buttons == (render.cancel_button(42),)


def test_done_and_ended_status_have_no_buttons() -> None:
    job = make_job()
    done = render.status_done(job, "https://discord.com/channels/1/2/3")
    assert "https://discord.com/channels/1/2/3" in done.content
    assert done.buttons == ()
    ended = render.status_ended(make_job(state=JobState.CANCELLED), "Cancelled.")
    assert "Cancelled." in ended.content


def test_refusal_and_summary_text() -> None:
    assert refusal_text(UserError("Over your daily cap.")) == "Over your daily cap."
    role = GateRefused("You need a particular role.", limit="role", role_id=9)
    assert refusal_text(role) == "You need the <@&9> role to use Flexbot here."
    where = GateRefused("Not here.", limit="channel", channel_ids=(1, 2))
    assert refusal_text(where) == "Flexbot is not enabled in this channel. Try <#1>, <#2>."
    job = make_job(state=JobState.FAILED, failure_reason="fal broke")
    assert render.job_summary(job) == "Job #42 is failed: fal broke."


async def test_make_view_builds_buttons_with_custom_ids() -> None:
    view = render.make_view(render.result_buttons(5))
    ids = [getattr(c, "custom_id", None) for c in view.children]
    assert ids == [f"flex:{a}:5" for a in render.RESULT_ACTIONS]
