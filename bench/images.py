"""Event-loop lag and peak memory while eight 24 MP photos are normalised at once.

Run: ``python bench/images.py``. Each scenario runs in its own subprocess so peak RSS
(``ru_maxrss``) belongs to that scenario alone. The test photos (6000x4000 JPEGs with gradients
and noise, so they are the size of real camera files) are generated once and cached in the
temporary directory.

Scenarios:
  pool      ImageProcessor(workers=2): the way the bot runs it, each decode in its own process
  on-loop   normalize_image called directly in each coroutine: the baseline to beat

``decode MB`` is the largest peak RSS of one decode process (pool only). A decode process is a
fork of the bot, so its peak includes the pages it shares with the bot.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from bot.images import ImageLimits, ImageProcessor, normalize_image

PHOTOS = 8
SIZE = (6000, 4000)
TICK = 0.005
LAG_P99_TARGET_MS = 50.0
RSS_TARGET_MB = 300.0
CACHE = Path(tempfile.gettempdir()) / "flexbot-bench-images"
SCENARIOS = ("pool", "on-loop")


def make_photos() -> list[Path]:
    """Generate (once) eight distinct camera-sized JPEGs."""
    CACHE.mkdir(exist_ok=True)
    paths = [CACHE / f"photo-{i}.jpg" for i in range(PHOTOS)]
    for i, path in enumerate(paths):
        if path.exists():
            continue
        w, h = SIZE
        ramp = Image.linear_gradient("L").resize(SIZE)
        noise = Image.effect_noise(SIZE, 18 + 4 * i)
        swirl = Image.radial_gradient("L").resize(SIZE)
        bands = (
            Image.blend(ramp, noise, 0.35),
            Image.blend(swirl, noise.transpose(Image.Transpose.ROTATE_180), 0.35),
            Image.blend(ramp.transpose(Image.Transpose.FLIP_LEFT_RIGHT), noise, 0.25),
        )
        Image.merge("RGB", bands).save(path, format="JPEG", quality=90)
        print(f"generated {path} ({path.stat().st_size / 1e6:.1f} MB, {w}x{h})", file=sys.stderr)
    return paths


async def run(scenario: str, paths: list[Path]) -> dict[str, float]:
    """Normalise every photo concurrently while a ticker measures how late the loop wakes it."""
    uploads = [(path.read_bytes(), path.name) for path in paths]
    limits = ImageLimits()
    lags: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        while not done.is_set():
            start = time.perf_counter()
            await asyncio.sleep(TICK)
            lags.append(time.perf_counter() - start - TICK)

    async def on_loop(data: bytes, name: str) -> None:
        await asyncio.sleep(0)  # let every task start, as uploads arriving together would
        normalize_image(data, name, limits)

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(TICK * 4)  # ticker is running before work starts
    start = time.perf_counter()
    decode_peak_mb = 0.0
    if scenario == "pool":
        async with ImageProcessor(limits, workers=2) as images:
            await asyncio.gather(*(images.normalize(d, n) for d, n in uploads))
        decode_peak_mb = images.peak_decode_rss_kib / 1024
    else:
        await asyncio.gather(*(on_loop(d, n) for d, n in uploads))
    wall = time.perf_counter() - start
    done.set()
    await ticking

    ordered = sorted(lags)
    return {
        "wall_s": wall,
        "lag_p50_ms": statistics.median(ordered) * 1000,
        "lag_p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        "lag_max_ms": ordered[-1] * 1000,
        "ticks": len(ordered),
        "peak_rss_mb": peak_rss_mb(),
        "decode_peak_mb": decode_peak_mb,
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process.

    VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent through fork and exec, so
    the parent's own peak (it generated the photos) would be reported as ours.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    unit = 1024 * 1024 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / unit


def child(scenario: str) -> None:
    result = asyncio.run(run(scenario, make_photos()))
    print(json.dumps(result))


def main() -> int:
    paths = make_photos()
    total_mb = sum(p.stat().st_size for p in paths) / 1e6
    print(f"{PHOTOS} JPEGs {SIZE[0]}x{SIZE[1]} ({total_mb:.0f} MB in all), normalised concurrently")
    print()
    header = f"{'scenario':<10} {'wall s':>7} {'lag p50 ms':>11} {'lag p99 ms':>11}"
    header += f" {'lag max ms':>11} {'ticks':>6} {'peak RSS MB':>12} {'decode MB':>10}"
    print(header)
    results: dict[str, dict[str, float]] = {}
    for scenario in SCENARIOS:
        run_ = subprocess.run(
            [sys.executable, __file__, "--scenario", scenario],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(run_.stdout.strip().splitlines()[-1])
        results[scenario] = r
        print(
            f"{scenario:<10} {r['wall_s']:>7.2f} {r['lag_p50_ms']:>11.2f} {r['lag_p99_ms']:>11.2f}"
            f" {r['lag_max_ms']:>11.2f} {r['ticks']:>6.0f} {r['peak_rss_mb']:>12.0f}"
            f" {r['decode_peak_mb']:>10.0f}"
        )
    pool = results["pool"]
    checks = [
        (
            f"pool: event-loop lag p99 < {LAG_P99_TARGET_MS:.0f} ms",
            pool["lag_p99_ms"],
            LAG_P99_TARGET_MS,
        ),
        (f"pool: peak RSS < {RSS_TARGET_MB:.0f} MB", pool["peak_rss_mb"], RSS_TARGET_MB),
        (
            f"pool: each decode process < {RSS_TARGET_MB:.0f} MB",
            pool["decode_peak_mb"],
            RSS_TARGET_MB,
        ),
    ]
    print()
    ok = True
    for label, value, limit in checks:
        passed = value < limit
        ok &= passed
        print(f"{'PASS' if passed else 'FAIL'}  {label}  (measured {value:.1f})")
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=SCENARIOS, help="run one scenario (internal)")
    args = parser.parse_args()
    if args.scenario:
        child(args.scenario)
    else:
        sys.exit(main())
