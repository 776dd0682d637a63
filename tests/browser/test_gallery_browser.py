"""The web gallery in a real headless Chromium (Debian's ``chromium``, driven by Playwright), fed by
the REAL Flexbot on the fake Discord: a member's /edit and two remixes of it made with the Remix
button, /gallery links, /optout gallery, the Delete button and a moderator deleting results from
Discord itself (MESSAGE_DELETE, MESSAGE_DELETE_BULK), exactly as members would.

Screenshots of the grid and of a family tree are saved in the test's tmp dir (and, with
``GALLERY_SCREENSHOTS=<dir>``, copied there: that is how docs/gallery-*.png are made).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

from bot.gallery.signing import LinkSigner
from bot.secret import Secret
from tests.e2e.conftest import StartBot
from tests.e2e.flexbot_fixtures import FlexbotRun, slash_edit, start_flexbot
from tests.fakes.discord import FakeDiscord, FakeMessage, FakeUser
from tests.fakes.discord.gateway import INTENT_GUILD_MESSAGES

pytest_plugins = ["tests.e2e.flexbot_fixtures"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SECRET = "browser-test-gallery-secret-0123456789"
INTENT_MESSAGE_CONTENT = 1 << 15  # privileged: Flexbot must never need it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def fal_options() -> dict[str, Any]:
    return {"processing_time": 0.1}


@pytest.fixture
def gallery_port() -> int:
    return free_port()


@pytest.fixture
def flexbot_env(gallery_port: int) -> dict[str, str]:
    return {"FLEXBOT_GALLERY_PORT": str(gallery_port), "GALLERY_SECRET": SECRET}


@pytest.fixture
async def flexbot(
    discord: FakeDiscord, start_bot: StartBot, fal: Any, flexbot_env: dict[str, str]
) -> FlexbotRun:
    """The real Flexbot with its commands in both servers (alice is a member of both)."""
    return await start_flexbot(discord, start_bot, fal, flexbot_env, guilds=discord.guilds)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


def next_result(discord: FakeDiscord) -> Any:
    seen = {m.id for m in discord.general.messages if m.files}
    return discord.general.wait_for_message(
        lambda m: bool(m.files) and m.author is discord.bot_user and m.id not in seen, timeout=15
    )


async def remix(discord: FakeDiscord, result: FakeMessage, user: FakeUser, prompt: str) -> Any:
    waiter = next_result(discord)
    click = await discord.click(result, "Remix", user=user)
    modal = await click.wait_for_modal()
    await (await discord.submit_modal(modal, {"prompt": prompt}, user=user)).wait_for_original()
    return await waiter


async def gallery_link(discord: FakeDiscord, user: FakeUser, **where: Any) -> str:
    answer = await (await discord.slash("gallery", user=user, **where)).wait_for_original()
    assert answer.ephemeral
    found = re.search(r"<(http://[^>]+)>", answer.content)
    assert found, answer.content
    return found[1]


async def shown(page: Page, url: str) -> list[int]:
    response = await page.goto(url)
    assert response is not None
    assert response.status == 200
    ids = await page.locator("ul.grid li[data-job]").evaluate_all(
        "els => els.map(e => Number(e.dataset.job))"
    )
    return list(ids)


async def images_decode(page: Page, selector: str) -> list[int]:
    """naturalWidth of every image matched, once each has loaded (0: failed to decode)."""
    return list(
        await page.locator(selector).evaluate_all(
            """async els => Promise.all(els.map(img => img.decode().then(
                   () => img.naturalWidth, () => 0)))"""
        )
    )


async def wait_until_removed(flexbot: FlexbotRun, job_id: int, timeout: float = 15) -> None:
    """Wait until the bot has recorded the job's removal: a deletion in Discord reaches it as a
    gateway event and leaves no trace on Discord's side, so re-read its database (as
    ``wait_for_job_state`` does), woken early by the fake Discord's traffic."""

    def removed() -> bool:
        return bool(flexbot.query("SELECT 1 FROM gallery_removed WHERE job_id = ?", (job_id,)))

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not removed():
        if loop.time() > deadline:
            raise TimeoutError(f"job #{job_id} still in the gallery")
        with contextlib.suppress(TimeoutError):
            await flexbot.discord.wait_for(removed, timeout=0.05)


def keep_screenshot(path: Path) -> None:
    target = os.environ.get("GALLERY_SCREENSHOTS")
    if target:
        shutil.copy(path, Path(target) / path.name)


async def test_gallery_in_a_real_browser(
    discord: FakeDiscord, flexbot: FlexbotRun, browser: Browser, tmp_path: Path
) -> None:
    waiter = next_result(discord)
    await (await slash_edit(discord, "a lighthouse in fog at dawn")).wait_for_original()
    first = await waiter
    await flexbot.wait_for_job_state(1, "delivered")
    by_bob = await remix(discord, first, discord.bob, "the lighthouse under a green aurora")
    await remix(discord, first, discord.mod, "the lighthouse with whales jumping")
    await flexbot.wait_for_job_state(2, "delivered")
    await flexbot.wait_for_job_state(3, "delivered")

    link = await gallery_link(discord, discord.alice)
    page = await browser.new_page(viewport={"width": 1200, "height": 900})

    # The grid: the job and its two remixes, newest first, thumbnails that decode.
    assert await shown(page, link) == [3, 2, 1]
    assert all(w > 0 for w in await images_decode(page, "ul.grid img"))
    assert await page.locator("ul.grid img").first.get_attribute("alt") == (
        "the lighthouse with whales jumping"
    )
    grid_png = tmp_path / "gallery-grid.png"
    await page.screenshot(path=str(grid_png), full_page=True)
    keep_screenshot(grid_png)

    # Search by a prompt word, through the form (no JavaScript needed to submit it).
    await page.fill("#q", "aurora")
    await page.click("button[type=submit]")
    ids = await page.locator("ul.grid li[data-job]").evaluate_all(
        "els => els.map(e => Number(e.dataset.job))"
    )
    assert ids == [2]

    # The job page: parent -> children, each link opening that result, images decoding.
    await page.goto(link)
    await page.click('ul.grid li[data-job="1"] a')
    assert await page.locator("blockquote.prompt").inner_text() == "a lighthouse in fog at dawn"
    assert all(w > 0 for w in await images_decode(page, "figure img, .tree img"))
    nodes = page.locator(".tree a.node")
    assert await nodes.evaluate_all("els => els.map(e => Number(e.dataset.job))") == [1, 2, 3]
    assert await page.locator('.tree a.node[aria-current="page"]').get_attribute("data-job") == "1"
    children = page.locator(".tree li li > a.node")
    assert await children.evaluate_all("els => els.map(e => e.dataset.job)") == ["2", "3"]
    assert await children.locator(".kind").all_inner_texts() == ["REMIX", "REMIX"]
    jump = page.locator("a", has_text="Open the message in Discord")
    assert (await jump.get_attribute("href") or "").startswith(
        f"https://discord.com/channels/{discord.guild.id}/{discord.general.id}/"
    )
    tree_png = tmp_path / "gallery-tree.png"
    await page.screenshot(path=str(tree_png), full_page=True)
    keep_screenshot(tree_png)
    await children.first.click()
    assert "green aurora" in await page.locator("blockquote.prompt").inner_text()
    assert await page.locator(".tree a.node").evaluate_all(
        "els => els.map(e => Number(e.dataset.job))"
    ) == [1, 2]
    # Keyboard: Tab reaches the search box's page links; Enter on a focused node follows it.
    await page.goto(link)
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")
    assert page.url.endswith("#main")

    # Bad signature, expired link, another server's link: 403 and nothing of the server.
    guild = discord.guild.id
    token = link.rstrip("/").rsplit("/", 1)[1]
    forged = link.replace(token, token[:-1] + ("A" if token[-1] != "A" else "B"))
    expired_token = LinkSigner(Secret(SECRET)).token(guild, discord.alice.id, int(time.time()) - 1)
    expired = link.replace(token, expired_token)
    link_b = await gallery_link(discord, discord.alice, channel=discord.general_b)
    other = link_b.replace(f"/s/{discord.guild_b.id}/", f"/s/{guild}/")
    for bad in (forged, expired, other, f"{forged}job/1", f"{other}job/1"):
        response = await page.goto(bad)
        assert response is not None
        assert response.status == 403, bad
        assert await page.locator("body").inner_text() == "Forbidden"

    # A member who opted out, and a result deleted in Discord, are absent everywhere.
    await (
        await discord.slash("optout gallery", user=discord.mod, options={"state": "on"})
    ).wait_for_original()
    click = await discord.click(by_bob, "Delete", user=discord.bob)
    await discord.wait_for(lambda: discord.messages[by_bob.id].deleted)
    await click.wait_for_original()
    assert await shown(page, link) == [1]
    await page.goto(f"{link}job/1")
    assert await page.locator(".tree a.node").count() == 1
    for gone in (2, 3):
        response = await page.goto(f"{link}job/{gone}")
        assert response is not None
        assert response.status == 404


async def test_results_a_moderator_deletes_in_discord_leave_the_gallery(
    discord: FakeDiscord, flexbot: FlexbotRun, browser: Browser
) -> None:
    # Deletions arrive with GUILD_MESSAGES; message content (privileged) is never asked for.
    assert discord.gateway.sessions
    for session in discord.gateway.sessions:
        assert session.intents & INTENT_GUILD_MESSAGES
        assert not session.intents & INTENT_MESSAGE_CONTENT
    results: list[FakeMessage] = []
    for prompt in ("a red fox in snow", "a blue heron at dusk", "a green frog on a leaf"):
        waiter = next_result(discord)
        await (await slash_edit(discord, prompt)).wait_for_original()
        results.append(await waiter)
    for job_id, result in enumerate(results, start=1):
        await flexbot.wait_for_job_state(job_id, "delivered")
        assert flexbot.job(job_id)["result_message_id"] == result.id
    # A member's chat, mentioning the bot: Flexbot has no text commands (checked at the end: it
    # logs no error for it).
    chat = await discord.general.post(discord.alice, f"{discord.bot_user.mention} nice fox!")

    link = await gallery_link(discord, discord.alice)
    page = await browser.new_page()
    assert await shown(page, link) == [3, 2, 1]

    # A moderator deletes the first result from Discord's own message menu.
    await discord.delete_message(results[0])
    await wait_until_removed(flexbot, 1)
    assert await shown(page, link) == [3, 2]
    response = await page.goto(f"{link}job/1")
    assert response is not None
    assert response.status == 404

    # A purge (bulk delete) takes the third result along with the chat message.
    await discord.delete_messages(discord.general, [results[2], chat])
    await wait_until_removed(flexbot, 3)
    assert await shown(page, link) == [2]
    response = await page.goto(f"{link}job/3")
    assert response is not None
    assert response.status == 404
    await page.goto(f"{link}job/2")
    assert "a blue heron at dusk" in await page.locator("blockquote.prompt").inner_text()
    # The chat's MESSAGE_CREATE came before both deletions, so it has been handled by now.
    assert " ERROR " not in flexbot.process.log()
