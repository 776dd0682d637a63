"""The operator's commands on a PostgreSQL deployment: what they say, and no password in it."""

from __future__ import annotations

from pathlib import Path

from bot.store.db import migrations
from tests.support.cli import run_flexbot


def with_password(url: str, password: str) -> str:
    return url.replace("postgresql://flexbot@", f"postgresql://flexbot:{password}@", 1)


def test_doctor_reports_the_server_and_schema_without_the_password(
    tmp_path: Path, pg_url: str
) -> None:
    # trust authentication: the server accepts any password, so the check still connects
    url = with_password(pg_url, "s3cret-pw")
    done = run_flexbot("doctor", data_dir=tmp_path, env={"FLEXBOT_DATABASE_URL": url})
    line = next(x for x in done.stdout.splitlines() if "database:" in x)
    assert line.startswith("[ok  ] database: PostgreSQL at postgresql://flexbot:***@127.0.0.1")
    assert f"schema 0, {len(migrations())} migration(s) will run at start" in line
    assert "s3cret-pw" not in done.stdout + done.stderr


def test_doctor_names_an_unreachable_server_and_what_to_check(tmp_path: Path) -> None:
    url = "postgresql://flexbot:s3cret-pw@127.0.0.1:1/flexbot"
    done = run_flexbot("doctor", data_dir=tmp_path, env={"FLEXBOT_DATABASE_URL": url})
    assert "[FAIL] database: PostgreSQL at postgresql://flexbot:***@127.0.0.1:1/flexbot" in (
        done.stdout
    )
    assert "fix: check database_url, that the server runs, and PGPASSWORD" in done.stdout
    assert "s3cret-pw" not in done.stdout + done.stderr
    assert done.returncode != 0


def test_backup_and_restore_point_a_postgresql_deployment_to_pg_dump(
    tmp_path: Path, pg_url: str
) -> None:
    for command in (["backup", str(tmp_path / "b")], ["restore", str(tmp_path / "b")]):
        done = run_flexbot(*command, data_dir=tmp_path, env={"FLEXBOT_DATABASE_URL": pg_url})
        assert done.returncode == 2
        assert "back it up with pg_dump and restore it with pg_restore" in done.stderr
    assert not (tmp_path / "b").exists()
