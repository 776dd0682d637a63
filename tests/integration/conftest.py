"""Fixtures for tests that talk real HTTP to the bundled fake fal on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import stamina

from bot.fal.client import FalClient, QueueStatus
from bot.fal.fake import FakeFal
from bot.secret import Secret

FAKE_FAL_KEY = "fake-key-id:fake-key-secret-0123456789"


@pytest.fixture
def instant_retries() -> Iterator[None]:
    """stamina without backoff; each caller's own attempt limit still applies."""
    with stamina.set_testing(True, attempts=1000, cap=True):
        yield


@pytest.fixture
async def fake_fal() -> AsyncIterator[FakeFal]:
    """A running fake fal (no latency, instant processing); its base URL is ``fake_fal.url``."""
    async with FakeFal() as fake:
        yield fake


@pytest.fixture
async def fal_client(fake_fal: FakeFal, instant_retries: None) -> AsyncIterator[FalClient]:
    """A ``FalClient`` pointed at ``fake_fal`` for the queue, storage and request list."""
    async with FalClient(
        Secret(FAKE_FAL_KEY),
        queue_url=fake_fal.url,
        rest_url=fake_fal.url,
        api_url=fake_fal.url,
        timeout=5.0,
        max_attempts=3,
        insecure_local_origin=fake_fal.url,
    ) as client:
        yield client


async def wait_for_status(
    client: FalClient,
    request_id: str,
    until: Callable[[QueueStatus], bool] = lambda s: s.done,
    *,
    within: float = 10.0,
) -> QueueStatus:
    """Poll ``request_id`` until ``until(status)`` holds (by default: COMPLETED)."""
    for _ in range(int(within / 0.01)):
        state = await client.status(request_id)
        if until(state):
            return state
        await asyncio.sleep(0.01)
    raise AssertionError(f"request {request_id} did not reach the awaited state in {within}s")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str | None:
    """The database a test runs on: each test taking it runs on SQLite (the default: no URL)
    and on a fresh database of the throwaway PostgreSQL server (issue 13)."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_url")
    return url
