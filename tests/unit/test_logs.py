import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.logs import bind, configure_logging
from bot.secret import Secret

FAL_KEY = "abcd1234-fal:0123456789abcdef0123456789abcdef"
DISCORD_TOKEN = "MTAxMjM0NTY3ODkwMTIzNDU2Nzg5.GabcDE.abcdefghijklmnopqrstuvwxyz0123456789AB"
SIGNED = "https://cdn.discordapp.com/attachments/1/2/a.png?ex=66&is=65&hm=deadbeefcafe&"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    out = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    configure_logging("DEBUG", secrets=[Secret(FAL_KEY), Secret(DISCORD_TOKEN)], stream=out)
    yield out
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def every_log_path(log: logging.Logger) -> None:
    log.info(f"key in message {FAL_KEY}")  # a careless caller, on purpose
    log.info("key in args %s and token %s", FAL_KEY, DISCORD_TOKEN)
    log.warning("header Authorization: Key %s", FAL_KEY)
    log.info("signed url %s", SIGNED)
    try:
        raise RuntimeError(f"request failed with token {DISCORD_TOKEN} at {SIGNED}")
    except RuntimeError:
        log.exception("boom")
    log.debug("bot token header Bot %s", DISCORD_TOKEN)


def test_secrets_and_signed_urls_never_reach_the_log(captured: io.StringIO) -> None:
    every_log_path(logging.getLogger("bot.test"))
    every_log_path(logging.getLogger("discord.http"))  # library loggers pass the same filter
    text = captured.getvalue()
    assert FAL_KEY not in text
    assert DISCORD_TOKEN not in text
    assert "hm=deadbeefcafe" not in text
    assert "0123456789abcdef0123456789abcdef" not in text
    assert "RuntimeError" in text  # the traceback is kept, only scrubbed
    assert text.count("***") >= 8


def test_httpx_url_logging_is_silenced(captured: io.StringIO) -> None:
    logging.getLogger("httpx").info("HTTP Request: GET %s", SIGNED)
    assert captured.getvalue() == ""


def test_lines_carry_job_guild_and_user_ids(captured: io.StringIO) -> None:
    with bind(job_id=12, guild_id=3, user_id=4):
        logging.getLogger("bot.engine").info("fetched")
    assert "[job=12 guild=3 user=4]: fetched" in captured.getvalue()


def test_json_lines_when_asked() -> None:
    out = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging("INFO", json_lines=True, secrets=[Secret(FAL_KEY)], stream=out)
        with bind(job_id=7):
            logging.getLogger("bot.x").info("hello %s", FAL_KEY)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    entry = json.loads(out.getvalue().strip())
    assert entry["msg"] == "hello ***"
    assert entry["job_id"] == 7
    assert entry["level"] == "INFO"
