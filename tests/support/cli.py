"""Run the real ``flexbot`` command in a subprocess, with a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_flexbot(
    *args: str,
    cwd: Path | None = None,
    data_dir: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m bot.cli ARGS`` without the caller's secrets or FLEXBOT_* settings."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("FAL_KEY", "DISCORD_TOKEN") and not k.startswith("FLEXBOT_")
    }
    if data_dir is not None:
        clean["FLEXBOT_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
