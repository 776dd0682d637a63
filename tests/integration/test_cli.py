"""`flexbot` as a member of the public runs it: real processes, the bundled fake fal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.support.cli import run_flexbot

ROOT = Path(__file__).parents[2]
SAMPLE = ROOT / "samples" / "photo.jpg"


def test_fake_edit_writes_requested_size_and_prints_seed_cost_and_rerun(tmp_path: Path) -> None:
    run = run_flexbot(
        "edit",
        str(SAMPLE),
        "--prompt",
        "make it night",
        "--fake",
        "--size",
        "1024x768",
        "--out",
        "out.png",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    out = Image.open(tmp_path / "out.png")
    assert (out.format, out.size) == ("PNG", (1024, 768))
    assert run.stdout.index("Estimated cost: $0.10") < run.stdout.index("Wrote out.png")
    seed = re.search(r"^Seed: (\d+)$", run.stdout, re.M)
    assert seed
    assert "Cost: $0.10" in run.stdout
    rerun = re.search(r"^Rerun: (.*)$", run.stdout, re.M)
    assert rerun
    assert f"--seed {seed[1]}" in rerun[1]

    again = run_flexbot(
        "edit",
        str(SAMPLE),
        "--prompt",
        "make it night",
        "--fake",
        "--size",
        "1024x768",
        "--out",
        "again.png",
        "--seed",
        seed[1],
        cwd=tmp_path,
    )
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again.png").read_bytes() == (tmp_path / "out.png").read_bytes()


def test_different_seed_gives_a_different_image(tmp_path: Path) -> None:
    for seed in ("1", "2"):
        run = run_flexbot(
            "edit",
            str(SAMPLE),
            "--prompt",
            "x",
            "--fake",
            "--size",
            "square",
            "--seed",
            seed,
            "--out",
            f"{seed}.jpg",
            cwd=tmp_path,
        )
        assert run.returncode == 0, run.stderr
    assert (tmp_path / "1.jpg").read_bytes() != (tmp_path / "2.jpg").read_bytes()


def _bomb(path: Path) -> None:
    # A real 40000x40000 1-bit PNG: tiny on disk, 1.6 gigapixels when decoded.
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    side = 40000
    raw = zlib.compress(b"\x00" * ((side // 8 + 1) * side), 9)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", raw)
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("name", "make", "reason"),
    [
        ("cat.png", lambda p: p.write_text("meow, not a picture"), "not an image"),
        ("broken.jpg", lambda p: p.write_bytes(SAMPLE.read_bytes()[:4000]), "truncated"),
        ("bomb.png", _bomb, "too many pixels"),
        ("empty.png", lambda p: p.write_bytes(b""), "empty"),
    ],
)
def test_bad_file_gets_one_line_reason_naming_it(
    tmp_path: Path, name: str, make: object, reason: str
) -> None:
    make(tmp_path / name)  # type: ignore[operator]
    # Run the CLI in a process that reports its own peak memory as it exits. VmHWM, not
    # ru_maxrss: Linux carries ru_maxrss over from the parent (pytest) across exec.
    measured = (
        "import re, sys\n"
        "from bot.cli import main\n"
        "try:\n    code = main(sys.argv[1:])\n"
        "finally:\n"
        "    status = open('/proc/self/status').read()\n"
        "    peak = re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1)\n"
        "    sys.stderr.write(f'peak_rss_kb={peak}\\n')\n"
        "sys.exit(code)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", measured, "edit", name, "--prompt", "x", "--fake"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if line.startswith("flexbot: error:")]
    assert len(errors) == 1
    assert name in errors[0]
    assert reason in errors[0]
    assert not (tmp_path / "out.png").exists()
    peak = re.search(r"peak_rss_kb=(\d+)", run.stderr)
    assert peak, run.stderr
    assert int(peak[1]) < 300 * 1024, "the bomb must never be decoded"


def test_missing_fal_key_without_fake_is_a_clear_usage_error(tmp_path: Path) -> None:
    run = run_flexbot("edit", str(SAMPLE), "--prompt", "x", cwd=tmp_path)
    assert run.returncode == 2
    assert "FAL_KEY is not set" in run.stderr
    assert "--fake" in run.stderr


def test_out_of_range_parameter_names_it(tmp_path: Path) -> None:
    run = run_flexbot("edit", str(SAMPLE), "--prompt", "x", "--fake", "--steps", "99", cwd=tmp_path)
    assert run.returncode == 2
    assert "`steps`: got 99, allowed: 2 to 50" in run.stderr


def test_run_without_token_explains_how_to_get_one(tmp_path: Path) -> None:
    run = run_flexbot("run", cwd=tmp_path)
    assert run.returncode == 2
    assert "DISCORD_TOKEN is not set" in run.stderr
    assert "flexbot edit" in run.stderr


def test_wrong_setting_stops_start_with_key_source_value(tmp_path: Path) -> None:
    run = run_flexbot("run", cwd=tmp_path, env={"FLEXBOT_USER_MAX_RUNNING": "lots"})
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "flexbot: configuration error: setting 'user_max_running' from "
        "FLEXBOT_USER_MAX_RUNNING: got 'lots'; allowed: an integer from 1 to 64"
    ]


def test_config_example_is_printed(tmp_path: Path) -> None:
    run = run_flexbot("config-example", cwd=tmp_path)
    assert run.returncode == 0
    assert run.stdout == (ROOT / "config" / "flexbot.example.toml").read_text()


def test_core_never_imports_discord() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "bot").rglob("*.py")
        if path.name != "app.py"
        and re.search(r"^\s*(import discord|from discord)", path.read_text(), re.M)
    ]
    assert offenders == []


def test_file_over_the_byte_cap_is_refused_before_it_is_read(tmp_path: Path) -> None:
    noise = Image.frombytes("RGB", (1000, 1000), os.urandom(3_000_000))
    noise.save(tmp_path / "noise.png")  # about 3 MB: noise does not compress
    run = run_flexbot(
        "edit",
        "noise.png",
        "--prompt",
        "x",
        "--fake",
        cwd=tmp_path,
        env={"FLEXBOT_MAX_INPUT_BYTES": str(2**20)},
    )
    assert run.returncode == 1
    assert "flexbot: error: noise.png: the file is 2.9 MB, larger than the 1 MB limit." in (
        run.stderr
    )
