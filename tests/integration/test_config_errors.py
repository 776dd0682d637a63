"""A secret set in the wrong place stops `flexbot` without printing the secret."""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import run_flexbot

TOKEN = "MTIz.fake-token-Zm9vYmFy"


def test_token_in_flexbot_variable_stops_doctor_without_printing_it(tmp_path: Path) -> None:
    run = run_flexbot("doctor", cwd=tmp_path, env={"FLEXBOT_DISCORD_TOKEN": TOKEN})
    assert run.returncode == 2
    assert TOKEN not in run.stdout + run.stderr
    assert "FLEXBOT_DISCORD_TOKEN is not a setting; secrets go in DISCORD_TOKEN" in run.stderr
    # config-example loads no settings, so the same mistake does not get in its way.
    example = run_flexbot("config-example", cwd=tmp_path, env={"FLEXBOT_DISCORD_TOKEN": TOKEN})
    assert example.returncode == 0
    assert TOKEN not in example.stdout + example.stderr


def test_secret_in_config_file_stops_doctor_without_printing_it(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "flexbot.toml").write_text(f'[fal]\nfal_key = "{TOKEN}"\n')
    run = run_flexbot("doctor", cwd=tmp_path)
    assert run.returncode == 2
    assert TOKEN not in run.stdout + run.stderr
    assert "never go in the config file; they go in FAL_KEY" in run.stderr
