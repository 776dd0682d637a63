"""A failure notice with values reaches the member in their language; the database keeps English.

The engine hands ``Delivery.failed`` the message itself (``bot.i18n.Text``), so the notice is
rendered in the reader's language while ``jobs.failure_reason`` stays the English sentence.
"""

from __future__ import annotations

from pathlib import Path

from bot.fal.fake import FakeFal
from bot.i18n import format_money
from bot.model import EditParams, EditRequest, ImageSize, JobState, JobTicket, Requester
from cogs.edits import render
from tests.support.engine_kit import engine_kit

SETTINGS = {
    "megapixel_pixels": 4096,
    "price_per_megapixel": 10_000,
    "max_output_megapixels": 1.0,  # auto output estimated at 1 unit; fal makes the input's 3
    "user_daily_cap": 150_000,
    "user_monthly_cap": None,
    "fal_concurrency": 1,
    "user_max_queued": 4,
    "user_max_running": 1,
    "user_cooldown_seconds": 0.0,
}


async def test_budget_ran_out_notice_is_french_and_the_stored_reason_english(
    tmp_path: Path, fake_fal: FakeFal, instant_retries: None
) -> None:
    async with engine_kit(tmp_path, fake_fal.url, start=False, **SETTINGS) as kit:
        jobs = []
        for seed in range(3):
            image = await kit.image(128, 96, seed=seed)  # 3 units in; estimated 4, costs 6
            ticket = await kit.engine.submit(
                EditRequest(
                    EditParams(prompt="night", image_size=ImageSize("auto")),
                    (image,),
                    Requester(user_id=4, guild_id=11, channel_id=100),
                )
            )
            assert isinstance(ticket, JobTicket), ticket
            jobs.append(ticket.job_id)
        await kit.engine.start()
        last = await kit.wait_final(jobs[2])
        assert last.state == JobState.FAILED
        assert last.failure_reason is not None
        assert last.failure_reason.startswith("Your budget ran out while this edit was waiting")
        assert "$0.03 is left of your daily budget ($0.15)" in last.failure_reason

        [notice] = kit.delivery.notices[jobs[2]]
        shown = render.status_ended(last, notice, "fr").content or ""
        left, cap = format_money(30_000, "fr"), format_money(150_000, "fr")
        assert shown.startswith(f"⚠️ Tâche n° {jobs[2]} terminée : Votre budget s'est épuisé")
        assert "rien n'a été facturé" in shown
        assert f"il ne reste que {left} sur votre budget quotidien ({cap})" in shown
        assert "budget ran out" not in shown
