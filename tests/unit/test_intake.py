"""Bytes of uploads in flight: per member refused at once, bot-wide waited for (bounded)."""

from __future__ import annotations

import asyncio

import pytest

from bot.errors import UserError
from bot.intake import DownloadBudget
from bot.settings import load_settings


async def test_member_is_refused_the_byte_past_their_share_and_gets_it_back_after() -> None:
    budget = DownloadBudget(per_member=1000, total=10_000)
    async with budget.hold(1, 1000):
        with pytest.raises(UserError, match="Too many uploads in progress") as info:
            async with budget.hold(1, 1):
                pass
        assert info.value.limit == "downloads_member"
        async with budget.hold(2, 1000):  # another member has their own share
            assert budget.in_flight == 2000
    async with budget.hold(1, 1000):
        assert budget.held_by(1) == 1000
    assert (budget.in_flight, budget.held_by(1)) == (0, 0)


async def test_budget_is_released_when_the_download_fails() -> None:
    budget = DownloadBudget(per_member=1000, total=10_000)
    with pytest.raises(ConnectionError):
        async with budget.hold(1, 800):
            raise ConnectionError("discord CDN hiccup")
    assert (budget.in_flight, budget.held_by(1)) == (0, 0)
    async with budget.hold(1, 1000):
        pass


async def test_full_bot_makes_a_member_wait_until_another_upload_ends() -> None:
    budget = DownloadBudget(per_member=1000, total=1500)
    entered = asyncio.Event()

    async def second() -> None:
        async with budget.hold(2, 1000):
            entered.set()

    async with budget.hold(1, 1000):
        waiter = asyncio.create_task(second())
        for _ in range(5):  # let it run up to its wait
            await asyncio.sleep(0)
        assert not entered.is_set()
        assert budget.held_by(2) == 1000  # its share is taken while it waits
    await asyncio.wait_for(entered.wait(), 5)
    await waiter
    assert budget.in_flight == 0


async def test_full_bot_refuses_after_the_bounded_wait_and_frees_the_members_share() -> None:
    budget = DownloadBudget(per_member=1000, total=1500, wait_seconds=0)
    async with budget.hold(1, 1000):
        with pytest.raises(UserError, match="busy receiving other uploads") as info:
            async with budget.hold(2, 1000):
                pass
        assert info.value.limit == "downloads_total"
        assert budget.held_by(2) == 0
        assert budget.in_flight == 1000


async def test_cancelled_wait_gives_everything_back() -> None:
    budget = DownloadBudget(per_member=1000, total=1500)

    async def second() -> None:
        async with budget.hold(2, 1000):
            raise AssertionError("must not get in while the bot is full")

    async with budget.hold(1, 1000):
        waiter = asyncio.create_task(second())
        for _ in range(5):
            await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert (budget.held_by(2), budget.in_flight) == (0, 1000)


def test_shares_come_from_the_settings() -> None:
    settings = load_settings(config_path=None, environ={})
    budget = DownloadBudget.from_settings(settings)
    assert budget.per_member == 8 * settings.max_input_bytes
    assert budget.total == settings.max_download_bytes_in_flight >= budget.per_member
