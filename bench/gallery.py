"""Web gallery benchmark (issue 15): server time of the pages a visitor opens most.

Run: ``python bench/gallery.py [--postgresql]`` (SQLite by default; ``--postgresql`` starts a
throwaway cluster from tests/support/pg_cluster.py). One database holds a server with 10,000
shown results from 50 members (plus 2,000 hidden ones: another server, deleted, flagged,
age-restricted) and one family of 200 results (a random tree under one first edit). The real
gallery server (bot/gallery/server.py) answers on 127.0.0.1; each page is fetched REQUESTS times
after a warm-up, and the server's own time is read from its ``Server-Timing`` header (the time
from the request reaching the handler to the response being ready, HTML rendering included).

Rows:
  baseline        a refused link (403): routing, the middleware and the token check only
  grid            the first page of the 10,000 results, newest first (the target: p95 < 100 ms)
  grid remixed    the same, most remixed first (counts children of every result)
  grid search     a prompt word that matches 1 result in 10
  job (200 tree)  the page of the family's root: ancestors and 199 descendants (p95 < 100 ms)
  job (leaf)      a result at the bottom of that tree (its ancestor chain)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.gallery.server import GalleryServer
from bot.gallery.service import Gallery
from bot.secret import Secret
from bot.settings import load_settings
from bot.store.blobs import BlobStore, DatabaseBlobs
from bot.store.connect import open_database
from bot.store.db import Database, execute

GUILD, OTHER = 10, 20
RESULTS = 10_000
FAMILY = 200
REQUESTS = 300
WORDS = [
    "castle",
    "forest",
    "harbour",
    "dragon",
    "lantern",
    "meadow",
    "comet",
    "violin",
    "glacier",
    "orchard",
]

_INSERT = (
    "INSERT INTO jobs (id, state, user_id, guild_id, channel_id, origin, parent_job_id, endpoint,"
    " params, input_hashes, seed, estimate_micros, output_hash, output_width, output_height,"
    " result_message_id, created_at, updated_at, channel_nsfw, nsfw_flagged)"
    " VALUES (?, 'delivered', ?, ?, 100, ?, ?, 'fal-ai/flux-2-flex/edit', ?, '[]', ?, 0, ?,"
    " 1024, 1024, ?, ?, ?, ?, ?)"
)


def params(prompt: str, seed: int) -> str:
    return json.dumps(
        {
            "prompt": prompt,
            "image_size": {"preset": "auto"},
            "seed": seed,
            "safety_tolerance": "2",
            "enable_safety_checker": True,
            "output_format": "jpeg",
            "guidance_scale": 3.5,
            "num_inference_steps": 28,
        },
        sort_keys=True,
    )


async def fill(db: Database) -> tuple[int, int]:
    """The rows; returns (the family's root id, a leaf of it)."""
    rng = random.Random(15)
    now = time.time() - 86400
    next_id = 1
    async with db.transaction() as tx:
        for n in range(RESULTS + 2000):
            job_id = next_id
            next_id += 1
            shown = n < RESULTS
            guild = GUILD if shown or n % 4 else OTHER
            words = " ".join(rng.sample(WORDS, 3))
            sha = f"{job_id:064x}"
            await execute(
                tx,
                _INSERT,
                (
                    job_id,
                    rng.randrange(1, 51),
                    guild,
                    "command",
                    None,
                    params(f"a {words} scene number {n}", n),
                    n,
                    sha,
                    job_id,
                    now + n,
                    now + n,
                    0 if shown or n % 4 != 1 else 1,
                    0 if shown or n % 4 != 2 else 1,
                ),
            )
            if not shown and n % 4 == 3:
                await execute(
                    tx,
                    "INSERT INTO gallery_removed (job_id, removed_by, removed_at)"
                    " VALUES (?, NULL, ?)",
                    (job_id, now),
                )
        root = next_id
        family = [root]
        for k in range(FAMILY):
            job_id = next_id
            next_id += 1
            parent = None if k == 0 else rng.choice(family[-40:])
            origin = (
                "command" if parent is None else rng.choice(["rerun", "reroll", "tweak", "remix"])
            )
            await execute(
                tx,
                _INSERT,
                (
                    job_id,
                    rng.randrange(1, 51),
                    GUILD,
                    origin,
                    parent,
                    params(f"family member {k}", k),
                    k,
                    f"{job_id:064x}",
                    job_id,
                    now + RESULTS + k,
                    now + RESULTS + k,
                    0,
                    0,
                ),
            )
            if k:
                family.append(job_id)
    # What autovacuum (PostgreSQL) or a periodic ANALYZE would have done by now: planner stats.
    async with db.transaction() as tx:
        await execute(tx, "ANALYZE")
    return root, family[-1]


async def measure(http: aiohttp.ClientSession, url: str, expect: int) -> list[float]:
    times = []
    for i in range(REQUESTS + 20):
        async with http.get(url) as r:
            await r.read()
            assert r.status == expect, (url, r.status)
            server_ms = float(r.headers["Server-Timing"].split("dur=")[1])
        if i >= 20:  # warm-up: the first requests fill SQLite's page cache
            times.append(server_ms)
    return times


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def main(postgresql: bool) -> None:
    async with AsyncExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gallery-bench-")))
        settings = replace(
            load_settings(config_path=None, environ={}),
            data_dir=tmp,
            gallery_port=1,
            gallery_secret=Secret("bench-secret-0123456789abcdef"),
        )
        backend = "SQLite"
        if postgresql:
            from tests.support.pg_cluster import PgCluster

            cluster = PgCluster()
            cluster.start(tmp)
            stack.callback(cluster.stop)
            settings = replace(settings, database_url=await cluster.create_database("bench"))
            backend = "PostgreSQL"
        db = await open_database(settings)
        stack.push_async_callback(db.close)
        started = time.perf_counter()
        root, leaf = await fill(db)
        filled = time.perf_counter() - started
        gallery = Gallery(db, settings, time.time)
        blobs = DatabaseBlobs(db) if db.shared else BlobStore(settings.blob_dir)
        server = GalleryServer(db, blobs, gallery, "127.0.0.1", 0)
        await server.start()
        stack.push_async_callback(server.stop)
        assert gallery.signer is not None
        base = f"http://127.0.0.1:{server.port}/s/{GUILD}/"
        link = base + gallery.signer.token(GUILD, 1, int(time.time()) + 3600) + "/"
        rows = [
            ("baseline (403)", base + "1.1.x/", 403),
            ("grid", link, 200),
            ("grid remixed", link + "?sort=remixed", 200),
            ("grid search", link + "?q=glacier", 200),
            (f"job ({FAMILY} tree)", link + f"job/{root}", 200),
            ("job (leaf)", link + f"job/{leaf}", 200),
        ]
        print(
            f"{backend}: {RESULTS:,} shown results + 2,000 hidden, a {FAMILY}-result family "
            f"(filled in {filled:.1f} s); {REQUESTS} requests per row, server time in ms"
        )
        print(f"{'page':<18}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}")
        async with aiohttp.ClientSession() as http:
            for name, url, expect in rows:
                times = await measure(http, url, expect)
                print(
                    f"{name:<18}{p(times, 50):>8.2f}{p(times, 95):>8.2f}{p(times, 99):>8.2f}"
                    f"{max(times):>8.2f}"
                )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgresql", action="store_true", help="run on a throwaway PostgreSQL")
    asyncio.run(main(parser.parse_args().postgresql))
