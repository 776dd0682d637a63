"""The web gallery over real HTTP, on SQLite and PostgreSQL: jobs made by the real engine (fake
fal), the gallery server on 127.0.0.1, pages and images fetched as a browser would.

What a visitor notices: which results appear, the family tree's links, images that decode, the
403 for every link that opens nothing, and what never appears (other servers, age-restricted
channels, flagged outputs, deleted results, opted-out members, costs).
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from PIL import Image

from bot.fal.fake import FakeFal
from bot.gallery.server import GalleryServer
from bot.gallery.service import Gallery
from bot.model import Origin, Requester
from bot.secret import Secret
from bot.store.db import execute
from tests.support.engine_kit import Kit, engine_kit

SECRET = Secret("test-gallery-secret-0123456789abcdef")
GUILD, OTHER = 10, 20
ALICE, BOB, CAROL = 1, 2, 3


@dataclass
class Site:
    kit: Kit
    gallery: Gallery
    server: GalleryServer
    http: aiohttp.ClientSession
    jobs: dict[str, int]

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def link(self, guild: int = GUILD, *, expires: float | None = None) -> str:
        assert self.gallery.signer is not None
        exp = int(expires if expires is not None else time.time() + 3600)
        return f"/s/{guild}/{self.gallery.signer.token(guild, ALICE, exp)}/"

    async def get(self, path: str) -> tuple[int, str, dict[str, str]]:
        async with self.http.get(self.root + path) as r:
            return r.status, await r.text(), dict(r.headers)

    async def get_bytes(self, path: str) -> tuple[int, bytes, dict[str, str]]:
        async with self.http.get(self.root + path) as r:
            return r.status, await r.read(), dict(r.headers)


def shown_jobs(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'data-job="(\d+)"', html)]


async def delivered(kit: Kit, ticket_job: int) -> int:
    job = await kit.wait_final(ticket_job)
    assert job.state == "delivered", job
    return job.id


@asynccontextmanager
async def gallery_site(tmp_path: Path, fal_url: str, db_url: str | None) -> AsyncIterator[Site]:
    async with engine_kit(
        tmp_path, fal_url, database_url=db_url, gallery_secret=SECRET, gallery_port=1
    ) as kit:
        e = kit.engine
        here = Requester(ALICE, GUILD, 100)
        jobs: dict[str, int] = {}
        jobs["castle"] = await delivered(
            kit, (await kit.submit(ALICE, prompt="a castle at dawn")).job_id
        )
        jobs["snow"] = await delivered(
            kit,
            (
                await e.remix(jobs["castle"], Requester(BOB, GUILD, 100), "the castle in snow")
            ).job_id,
        )
        jobs["dragons"] = await delivered(
            kit,
            (
                await e.remix(jobs["castle"], Requester(CAROL, GUILD, 100), "castle with dragons")
            ).job_id,
        )
        jobs["reroll"] = await delivered(
            kit, (await e.rerun(jobs["snow"], here, {"seed": 5}, origin=Origin.REROLL)).job_id
        )
        jobs["elsewhere"] = await delivered(
            kit, (await kit.submit(ALICE, guild=OTHER, prompt="another server's castle")).job_id
        )
        jobs["nsfw"] = await delivered(
            kit, (await kit.submit(ALICE, prompt="castle after dark", channel_nsfw=True)).job_id
        )
        jobs["flagged"] = await delivered(
            kit, (await kit.submit(ALICE, prompt="flagged castle")).job_id
        )
        async with kit.db.transaction() as tx:
            await execute(tx, "UPDATE jobs SET nsfw_flagged = 1 WHERE id = ?", (jobs["flagged"],))
        gallery = Gallery(kit.db, kit.settings, time.time)
        server = GalleryServer(kit.db, e.blobs, gallery, "127.0.0.1", 0)
        await server.start()
        try:
            async with aiohttp.ClientSession() as http:
                yield Site(kit, gallery, server, http, jobs)
        finally:
            await server.stop()


async def test_grid_shows_this_servers_results_newest_first_and_nothing_hidden(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with gallery_site(tmp_path, fake_fal.url, db_url) as site:
        j = site.jobs
        status, html, headers = await site.get(site.link())
        assert status == 200
        assert shown_jobs(html) == [j["reroll"], j["dragons"], j["snow"], j["castle"]]
        assert 'alt="the castle in snow"' in html
        assert "$" not in html
        assert "cost" not in html.lower()
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["Cache-Control"] == "private, no-store"

        _, html, _ = await site.get(site.link() + "?q=DRAGONS")
        assert shown_jobs(html) == [j["dragons"]]
        _, html, _ = await site.get(site.link() + f"?member={BOB}")
        assert shown_jobs(html) == [j["snow"]]
        _, html, _ = await site.get(site.link() + "?sort=remixed")
        assert shown_jobs(html)[:2] == [j["castle"], j["snow"]]  # 2 remixes, then 1 reroll
        _, html, _ = await site.get(site.link() + "?q=100%25")  # LIKE wildcards are literal
        assert shown_jobs(html) == []


async def test_job_page_tree_links_parent_and_children_with_decodable_thumbnails(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with gallery_site(tmp_path, fake_fal.url, db_url) as site:
        j = site.jobs
        status, html, _ = await site.get(site.link() + f"job/{j['snow']}")
        assert status == 200
        assert "the castle in snow" in html
        assert f"https://discord.com/channels/{GUILD}/100/" in html
        assert "Seed" in html
        assert "Guidance" in html
        assert "$" not in html
        tree = html[html.index('id="family"') :]
        assert shown_jobs(tree) == [j["castle"], j["snow"], j["reroll"]]
        assert f'aria-current="page" data-job="{j["snow"]}"' in tree
        assert ">remix</span>" in tree
        assert ">reroll</span>" in tree

        for path in re.findall(r'src="([^"]+\.webp)"', tree):
            status, body, headers = await site.get_bytes(path)
            assert status == 200
            assert headers["Cache-Control"] == "private, max-age=31536000, immutable"
            with Image.open(io.BytesIO(body)) as img:
                assert img.format == "WEBP"
                assert img.width > 0
        # Each link of the tree opens that result's own page.
        for href in re.findall(r'class="node[^"]*" href="([^"]+)"', tree):
            assert (await site.get(href))[0] == 200


async def test_bad_expired_and_other_server_links_get_a_bare_403(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with gallery_site(tmp_path, fake_fal.url, db_url) as site:
        good = site.link()
        assert (await site.get(good))[0] == 200
        forged = good[:-3] + ("A" if good[-3] != "A" else "B") + good[-2:]
        expired = site.link(expires=time.time() - 1)
        other = site.link(OTHER).replace(f"/s/{OTHER}/", f"/s/{GUILD}/")
        castle = site.jobs["castle"]
        for path in (forged, expired, other, f"/s/{GUILD}/public/", good.replace(".", "", 1)):
            for suffix in ("", f"job/{castle}"):
                status, body, _ = await site.get(path + suffix)
                assert (status, body) == (403, "Forbidden"), path + suffix
        _, html, _ = await site.get(good + f"job/{castle}")
        thumb = re.findall(r'src="(/s/[^"]+\.webp)"', html)[0]
        assert (await site.get_bytes(thumb.replace(good, expired)))[0] == 403


async def test_public_switch_deleted_result_and_opt_out(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with gallery_site(tmp_path, fake_fal.url, db_url) as site:
        j = site.jobs
        await site.gallery.set_public(GUILD, ALICE, True)
        status, html, headers = await site.get(f"/s/{GUILD}/public/")
        assert status == 200
        assert j["castle"] in shown_jobs(html)
        assert headers["Cache-Control"] == "public, max-age=60"
        assert (await site.get(f"/s/{OTHER}/public/"))[0] == 403

        await site.gallery.forget_result(j["snow"], BOB)
        await site.gallery.set_opt_out(CAROL, True)
        _, html, _ = await site.get(site.link())
        assert shown_jobs(html) == [j["reroll"], j["castle"]]
        assert (await site.get(site.link() + f"job/{j['snow']}"))[0] == 404
        _, html, _ = await site.get(site.link() + f"job/{j['castle']}")
        tree = html[html.index('id="family"') :]
        # The deleted remix is gone; what grew out of it hangs from its nearest shown ancestor.
        assert shown_jobs(tree) == [j["castle"], j["reroll"]]
        assert "castle with dragons" not in html

        await site.gallery.set_opt_out(CAROL, False)
        await site.gallery.set_public(GUILD, ALICE, False)
        assert (await site.get(f"/s/{GUILD}/public/"))[0] == 403
        _, html, _ = await site.get(site.link())
        assert j["dragons"] in shown_jobs(html)


async def test_purged_image_shows_a_placeholder_and_keeps_the_parameters(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with gallery_site(tmp_path, fake_fal.url, db_url) as site:
        castle = site.jobs["castle"]
        await site.kit.engine.purge_blobs(time.time() + 400 * 86400)
        status, html, _ = await site.get(site.link() + f"job/{castle}")
        assert status == 200
        assert "no longer kept" in html
        assert "a castle at dawn" in html
        assert "Seed" in html
        assert "/image/" not in html
        _, grid, _ = await site.get(site.link())
        assert ".webp" not in grid
        assert "Image no longer kept" in grid


async def test_link_from_the_service_opens_its_own_server_only(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with gallery_site(tmp_path, fake_fal.url, db_url) as site:
        link = await site.gallery.link_for(GUILD, ALICE)
        assert link.expires is not None
        assert 7 * 86400 - 60 < link.expires - time.time() <= 7 * 86400 + 1
        path = link.url.split("://", 1)[1].split("/", 1)[1]
        assert (await site.get("/" + path))[0] == 200
        assert (await site.get("/" + path.replace(str(GUILD), str(OTHER), 1)))[0] == 403


async def test_results_whose_messages_were_deleted_in_discord_disappear(
    tmp_path: Path, fake_fal: FakeFal, db_url: str | None
) -> None:
    async with gallery_site(tmp_path, fake_fal.url, db_url) as site:
        j = site.jobs
        message: dict[str, int] = {}
        for name, job_id in j.items():
            job = await site.kit.engine.get_job(job_id)
            assert job is not None
            assert job.result_message_id is not None
            message[name] = job.result_message_id
        gallery = site.gallery
        # A member's chat message, and a result's message id under the wrong server: no change.
        assert await gallery.forget_messages(GUILD, [999_999]) == []
        assert await gallery.forget_messages(OTHER, [message["castle"]]) == []
        _, html, _ = await site.get(site.link())
        assert shown_jobs(html) == [j["reroll"], j["dragons"], j["snow"], j["castle"]]

        # A moderator deletes one result; then a purge takes another with a chat message.
        assert await gallery.forget_messages(GUILD, [message["snow"]]) == [j["snow"]]
        purged = [message["dragons"], 999_998]
        assert await gallery.forget_messages(GUILD, purged) == [j["dragons"]]
        _, html, _ = await site.get(site.link())
        assert shown_jobs(html) == [j["reroll"], j["castle"]]
        for gone in ("snow", "dragons"):
            assert (await site.get(site.link() + f"job/{j[gone]}"))[0] == 404
        # Deleting an already removed result again (the Delete button's own event) writes nothing.
        assert await gallery.forget_messages(GUILD, [message["snow"]]) == []
