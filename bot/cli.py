"""``flexbot``: run the bot, run one edit from the terminal, run the fake fal, print settings."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shlex
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from bot.errors import ConfigError, ImageRejected, InvalidParameter, StoreError
from bot.fal.client import FalClient, QueueStatus
from bot.fal.errors import FalError
from bot.images import ImageLimits, ImageProcessor, NormalizedImage, check_size, image_size
from bot.logs import configure_logging
from bot.model import EditParams, usd
from bot.params import ParamLimits, parse_edit_params
from bot.pricing import PriceList
from bot.secret import Secret
from bot.settings import Settings, load_settings, render_example

log = logging.getLogger(__name__)

EXIT_FAILED = 1
EXIT_USAGE = 2
FAKE_KEY = Secret("fake-key")


def image_limits(settings: Settings) -> ImageLimits:
    return ImageLimits(
        max_bytes=settings.max_input_bytes,
        max_pixels=settings.max_input_pixels,
        max_input_megapixels=settings.max_input_megapixels,
        megapixel=settings.megapixel_pixels,
    )


def param_limits(settings: Settings) -> ParamLimits:
    return ParamLimits(
        max_prompt_chars=settings.max_prompt_chars,
        max_output_megapixels=settings.max_output_megapixels,
        megapixel_pixels=settings.megapixel_pixels,
    )


def fal_client(settings: Settings, key: Secret | None, url: str | None = None) -> FalClient:
    """The fal client for these settings; ``url`` points both APIs at a fake."""
    return FalClient(
        key,
        queue_url=url or settings.fal_queue_url,
        rest_url=url or settings.fal_rest_url,
        app_id=settings.fal_app_id,
        timeout=settings.fal_http_timeout_seconds,
        max_attempts=settings.fal_max_attempts,
    )


@contextlib.asynccontextmanager
async def fal_backend(settings: Settings, *, fake: bool) -> AsyncIterator[FalClient]:
    """The real fal, or the bundled fake started in this process."""
    if not fake:
        async with fal_client(settings, settings.fal_key) as client:
            yield client
        return
    from bot.fal.fake import FakeFal  # only needed for dry runs

    async with (
        FakeFal(processing_time=1.0) as server,
        fal_client(settings, FAKE_KEY, server.url) as client,
    ):
        yield client


# -- flexbot edit --------------------------------------------------------------------------------


@dataclass
class _Terminal:
    """Progress on stderr: one rewritten line on a terminal, plain lines otherwise."""

    out: TextIO
    _last: str = ""

    def show(self, text: str) -> None:
        if text == self._last:
            return
        self._last = text
        if self.out.isatty():
            self.out.write("\r\033[K" + text[:200])
        else:
            self.out.write(text + "\n")
        self.out.flush()

    def done(self) -> None:
        if self.out.isatty() and self._last:
            self.out.write("\n")
        self._last = ""


def rerun_command(args: argparse.Namespace, params: EditParams, seed: int, out: Path) -> str:
    words = [
        "flexbot",
        "edit",
        *[str(p) for p in args.images],
        "--prompt",
        params.prompt,
        "--seed",
        str(seed),
        "--size",
        str(params.image_size),
        "--steps",
        str(params.num_inference_steps),
        "--guidance",
        f"{params.guidance_scale:g}",
        "--format",
        params.output_format,
        "--safety-tolerance",
        params.safety_tolerance,
    ]
    if not params.enable_safety_checker:
        words.append("--no-safety-checker")
    if args.fake:
        words.append("--fake")
    words += ["--out", str(out)]
    return shlex.join(words)


async def _load_inputs(
    paths: Sequence[Path], settings: Settings, processor: ImageProcessor
) -> list[NormalizedImage]:
    images = []
    for path in paths:
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise ImageRejected(str(path), f"cannot read it ({exc.strerror})") from None
        check_size(str(path), size, settings.max_input_bytes)
        images.append(await processor.normalize(path.read_bytes(), str(path)))
    return images


async def run_edit(args: argparse.Namespace, settings: Settings) -> int:
    err = _Terminal(sys.stderr)
    output_format = args.format
    if output_format is None and args.out:
        # `--out night.png` means a PNG: take the format from the file name when not given.
        output_format = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}.get(
            Path(args.out).suffix.lower()
        )
    params = parse_edit_params(
        prompt=args.prompt,
        num_images=len(args.images),
        limits=param_limits(settings),
        seed=args.seed,
        steps=args.steps,
        guidance=args.guidance,
        size=args.size,
        output_format=output_format,
        safety_tolerance=args.safety_tolerance,
        enable_safety_checker=not args.no_safety_checker,
    )
    if not args.fake and not settings.fal_key:
        print(
            "flexbot: error: FAL_KEY is not set. Create a key at https://fal.ai/dashboard/keys "
            "and export FAL_KEY=..., or add --fake to try the bundled fake fal (no account, "
            "nothing billed).",
            file=sys.stderr,
        )
        return EXIT_USAGE
    with ImageProcessor(image_limits(settings), settings.image_workers) as processor:
        images = await _load_inputs(args.images, settings, processor)
    for path, image in zip(args.images, images, strict=True):
        for note in image.notes:
            print(f"{path}: {note}", file=sys.stderr)
    sizes = [(i.width, i.height) for i in images]
    prices = PriceList.from_settings(settings)
    estimate = prices.estimate(params, sizes)
    dry = " (fake fal: nothing is billed)" if args.fake else ""
    print(
        f"Estimated cost: {usd(estimate.micros)} for {estimate.total_megapixels} megapixels{dry}",
        flush=True,
    )

    async with fal_backend(settings, fake=args.fake) as fal:
        urls = [
            await fal.upload(i.data, i.content_type, f"input-{n}") for n, i in enumerate(images, 1)
        ]
        request_id = await fal.submit(params.to_fal_input(urls))
        err.show(f"Submitted (request {request_id})")

        def on_status(status: QueueStatus) -> None:
            if status.status == "IN_QUEUE":
                err.show(f"Waiting at fal, position {status.queue_position}")
            elif status.logs:
                err.show(f"Running: {status.logs[-1].message}")
            elif status.status == "IN_PROGRESS":
                err.show("Running")

        result = await fal.wait(request_id, poll_interval=0.25, on_status=on_status)
        err.done()
        if not result.images:
            raise FalError("fal returned no image")
        data = await fal.download(result.images[0].url, settings.max_output_bytes)

    width, height = image_size(data)
    ext = "png" if params.output_format == "png" else "jpg"
    out = Path(args.out) if args.out else Path(f"flexbot-{result.seed}.{ext}")
    out.write_bytes(data)
    actual = prices.quote(sizes, (width, height))
    print(f"Wrote {out} ({width}x{height})")
    print(f"Seed: {result.seed}")
    print(f"Cost: {usd(actual.micros)}{dry}")
    print(f"Rerun: {rerun_command(args, params, result.seed, out)}")
    return 0


# -- flexbot run / fake-fal ----------------------------------------------------------------------

LOGIN_HELP = """\
flexbot: DISCORD_TOKEN is not set, so the bot cannot log in.

To get a token: open https://discord.com/developers/applications, create an application, open
"Bot", press "Reset Token" and copy it. Then:

    export DISCORD_TOKEN=...      # never commit it; or name a secrets_file in the settings
    export FAL_KEY=...            # from https://fal.ai/dashboard/keys (omit for a dry run)
    flexbot run

To try an edit without any account first:

    flexbot edit samples/photo.jpg --prompt "make it night" --fake --out out.png
"""


async def run_bot(settings: Settings) -> int:
    if not settings.discord_token:
        print(LOGIN_HELP, file=sys.stderr, end="")
        return EXIT_USAGE
    from bot.app import run  # imports discord; only the bot needs it

    return await run(settings)


def _utc_date(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-01") from None


async def run_usage_cli(settings: Settings, args: argparse.Namespace) -> int:
    from bot.engine import usage
    from bot.store.db import Database

    if not settings.database_path.exists():
        print(f"flexbot: no database at {settings.database_path} yet", file=sys.stderr)
        return EXIT_FAILED
    now = time.time()
    span = usage.period("month", now)
    if args.since is not None:
        span = usage.Period(args.since.timestamp(), now + 1, f"since {args.since:%Y-%m-%d}")
    async with await Database.open(settings.database_path) as db:
        if args.csv:
            print(await usage.export_csv(db, args.guild, span), end="")
            return 0
        report = await usage.usage_report(db, args.guild, span)
    t = report.totals
    where = f"server {args.guild}" if args.guild else "all servers"
    print(f"Usage for {where}, {span.label}")
    print(f"  jobs {t.jobs}: {t.delivered} delivered, {t.failed} failed, {t.cancelled} cancelled")
    print(f"  spent {usd(t.charged_micros)}, held for running jobs {usd(t.held_micros)}")
    for title, rows, label in (
        ("Top members", report.top_members, "user"),
        ("Channels", report.channels, "channel"),
    ):
        if rows:
            print(f"{title}:")
            for row in rows:
                print(f"  {label} {row.key}: {row.jobs} jobs, {usd(row.spent_micros)}")
    return 0


async def run_doctor_cli(settings: Settings) -> int:
    from bot.app import check_discord
    from bot.doctor import run_doctor

    async with fal_client(settings, settings.fal_key) as client:
        results = await run_doctor(settings, client, check_discord)
    for result in results:
        print(result.line())
    failed = [r for r in results if not r.ok]
    print(f"{len(results) - len(failed)} ok, {len(failed)} failed")
    return EXIT_FAILED if failed else 0


# -- entry point --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flexbot", description=__doc__)
    parser.add_argument(
        "--config", type=Path, help="settings file (default: FLEXBOT_CONFIG or config/flexbot.toml)"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("run", help="run the Discord bot")

    edit = sub.add_parser("edit", help="run one edit from the terminal")
    edit.add_argument("images", nargs="+", type=Path, help="1 to 8 reference images")
    edit.add_argument("--prompt", required=True)
    edit.add_argument("--seed")
    edit.add_argument("--steps")
    edit.add_argument("--guidance")
    edit.add_argument("--size", help="auto, a preset such as landscape_16_9, or WIDTHxHEIGHT")
    edit.add_argument("--format", help="jpeg (default) or png")
    edit.add_argument("--safety-tolerance", help="1 (strictest) to 5; default 2")
    edit.add_argument("--no-safety-checker", action="store_true")
    edit.add_argument("--out", help="where to write the image (default flexbot-SEED.EXT)")
    edit.add_argument(
        "--fake", action="store_true", help="use the bundled fake fal: no key, nothing billed"
    )

    fake = sub.add_parser("fake-fal", help="serve the bundled fake fal over HTTP")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=8765)
    fake.add_argument(
        "--processing-time", type=float, default=1.0, help="seconds each request spends in progress"
    )
    fake.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")

    sub.add_parser("config-example", help="print config/flexbot.example.toml")
    sub.add_parser("doctor", help="check settings, storage, the fal key and Discord access")

    use = sub.add_parser("usage", help="spend report from the database")
    use.add_argument("--guild", type=int, help="one server's id (default: the whole bot)")
    use.add_argument("--since", type=_utc_date, help="YYYY-MM-DD, UTC (default: this month)")
    use.add_argument("--csv", action="store_true", help="one row per job, as CSV")

    bak = sub.add_parser("backup", help="copy the live database and images to a directory")
    bak.add_argument("path", type=Path, help="a new, empty directory")
    res = sub.add_parser("restore", help="restore a backup into the data directory (bot stopped)")
    res.add_argument("path", type=Path, help="a directory written by `flexbot backup`")
    res.add_argument("--force", action="store_true", help="replace an existing database")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "config-example":
        print(render_example(), end="")
        return 0
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"flexbot: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(
        settings.log_level,
        json_lines=settings.log_format == "json",
        secrets=[s for s in (settings.discord_token, settings.fal_key) if s],
    )
    if args.command == "edit" and not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("bot").setLevel(logging.WARNING)  # the terminal shows progress itself
    try:
        if args.command == "edit":
            return asyncio.run(run_edit(args, settings))
        if args.command == "run":
            return asyncio.run(run_bot(settings))
        if args.command == "usage":
            return asyncio.run(run_usage_cli(settings, args))
        if args.command == "doctor":
            return asyncio.run(run_doctor_cli(settings))
        if args.command in ("backup", "restore"):
            from bot import backup

            if args.command == "backup":
                report = backup.backup(settings.data_dir, args.path)
                print(
                    f"Backed up {report.jobs} jobs, {report.ledger_rows} ledger rows and "
                    f"{report.blobs_copied} images to {report.path}"
                )
            else:
                report = backup.restore(args.path, settings.data_dir, force=args.force)
                print(
                    f"Restored {report.jobs} jobs, {report.ledger_rows} ledger rows and "
                    f"{report.blobs_copied} images into {report.path}"
                )
            return 0
        if args.command == "fake-fal":
            from bot.fal.fake import serve

            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(
                    serve(
                        args.host,
                        args.port,
                        processing_time=args.processing_time,
                        latency=args.latency,
                    )
                )
            return 0
    except InvalidParameter as exc:
        print(f"flexbot: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ImageRejected as exc:
        print(f"flexbot: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except FalError as exc:
        print(f"flexbot: error: {exc.user_message} ({exc})", file=sys.stderr)
        return EXIT_FAILED
    except StoreError as exc:
        print(f"flexbot: database error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
