"""The fake Discord refuses what Discord's own OpenAPI description refuses, and says where."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import discord as dpy
import pytest
from discord import app_commands

from tests.fakes.discord import FakeDiscord
from tests.fakes.discord.openapi import SPEC_PATH, OpenApi, Violation

REPO = Path(__file__).resolve().parents[2]
MESSAGES = "/api/v10/channels/1/messages"
COMMANDS = "/api/v10/applications/1/commands"
BUTTON = {"type": 2, "style": 1, "label": "Rerun", "custom_id": "flex:rerun:1"}


def check(method: str, path: str, body: Any = None, **query: str) -> list[Violation]:
    ctype = None if body is None else "application/json"
    return OpenApi.load().check(method, path, query, body, ctype)


def only(violations: list[Violation]) -> Violation:
    assert len(violations) == 1, [str(v) for v in violations]
    return violations[0]


def test_valid_create_message_payload_passes() -> None:
    body = {
        "content": "done <@1>",
        "embeds": [{"title": "Result", "color": 0x5865F2, "fields": [{"name": "a", "value": "b"}]}],
        "components": [{"type": 1, "components": [BUTTON]}],
        "allowed_mentions": {"parse": [], "users": [1], "replied_user": False},
        "message_reference": {"message_id": 123, "fail_if_not_exists": False},
        "attachments": [{"id": 0, "filename": "out.png"}],
        "flags": 4096,
        "nonce": "abc",
        "enforce_nonce": True,
    }
    assert check("POST", MESSAGES, body) == []


@pytest.mark.parametrize(
    ("body", "json_path", "rule"),
    [
        ({"content": 5}, "$.content", "type"),
        ({"embeds": [{"color": "red"}]}, "$.embeds[0].color", "type"),
        ({"embeds": [{"title": "t" * 257}]}, "$.embeds[0].title", "maxLength: 256"),
        (
            {"components": [{"type": 1, "components": [{**BUTTON, "style": 9}]}]},
            "$.components[0].components[0].style",
            "enum: [1, 2, 3, 4, 5, 6]",
        ),
        (
            {"components": [{"type": 1, "components": [{**BUTTON, "label": "x" * 81}]}]},
            "$.components[0].components[0].label",
            "maxLength: 80",
        ),
        ({"components": [{"type": 99}]}, "$.components[0].type", "enum"),
        (
            {"message_reference": {"message_id": "12ab"}},
            "$.message_reference.message_id",
            "pattern",
        ),
    ],
)
def test_bad_message_fields_are_refused_naming_path_and_rule(
    body: dict[str, Any], json_path: str, rule: str
) -> None:
    violation = only(check("POST", MESSAGES, body))
    assert violation.route == "POST /channels/{channel_id}/messages"
    assert violation.json_path == json_path
    assert violation.rule.startswith(rule)
    assert f"body {json_path}: " in str(violation)


def test_integer_option_max_value_of_2_pow_53_is_refused() -> None:
    # What cogs/edit.py's `app_commands.Range[int, 0, 2**53]` makes real discord.py send.
    client = dpy.Client(intents=dpy.Intents.none())
    tree = app_commands.CommandTree(client)

    @app_commands.command(name="edit", description="Edit an image")
    async def edit(interaction: dpy.Interaction, seed: app_commands.Range[int, 0, 2**53]) -> None:
        """Unused."""

    payload = [edit.to_dict(tree)]
    violation = only(check("PUT", COMMANDS, payload))
    assert violation.json_path == "$[0].options[0].max_value"
    assert violation.rule == f"maximum: {2**53 - 1}"
    assert "'edit' > 'seed'" in violation.message
    payload[0]["options"][0]["max_value"] = 2**53 - 1
    assert check("PUT", COMMANDS, payload) == []


def test_the_2_pow_53_minus_1_limit_is_discords_own() -> None:
    # Cited from the description, not restated: options' min/max_value are Int53Type.
    spec = json.loads(SPEC_PATH.read_text())
    schemas = spec["components"]["schemas"]
    assert schemas["Int53Type"]["maximum"] == 2**53 - 1
    assert schemas["Int53Type"]["minimum"] == -(2**53 - 1)
    max_value = schemas["ApplicationCommandIntegerOption"]["properties"]["max_value"]
    assert {"$ref": "#/components/schemas/Int53Type"} in max_value["oneOf"]


def test_query_parameters_are_checked_with_discords_spellings() -> None:
    route = "/api/v10/channels/1/messages"
    assert check("GET", route, limit="100") == []
    assert only(check("GET", route, limit="500")).json_path == "$.limit"
    assert check("GET", "/api/v10/guilds/1", with_counts="1") == []
    callback = "/api/v10/interactions/1/tok/callback"
    assert only(check("POST", callback, {"type": 6}, with_response="maybe")).where == "query"


def test_a_route_discord_does_not_have_is_a_violation() -> None:
    assert only(check("GET", "/api/v10/channels/1/no-such-thing")).where == "route"


def test_at_original_is_not_taken_for_a_message_id() -> None:
    op = OpenApi.load().match("PATCH", "/api/v10/webhooks/1/tok/messages/@original")
    assert op is not None
    assert op.template == "/webhooks/{webhook_id}/{webhook_token}/messages/@original"


@pytest.fixture
async def http(discord: FakeDiscord) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": f"Bot {discord.token}"}
    async with aiohttp.ClientSession(base_url=discord.url, headers=headers) as session:
        yield session


async def test_fake_answers_50035_at_the_path_and_records_it(
    discord: FakeDiscord, http: aiohttp.ClientSession
) -> None:
    discord.expect_violations = True
    form = aiohttp.FormData(quote_fields=False)
    payload = {"content": "x", "components": [{"type": 1, "components": [{**BUTTON, "style": 9}]}]}
    form.add_field("payload_json", json.dumps(payload), content_type="application/json")
    form.add_field("files[0]", b"\x89PNG", filename="out.png")
    async with http.post(f"/api/v10/channels/{discord.general.id}/messages", data=form) as resp:
        data = await resp.json()
    assert (resp.status, data["code"]) == (400, 50035)
    leaf = data["errors"]["components"]["0"]["components"]["0"]["style"]["_errors"][0]
    assert leaf["code"] == "BASE_TYPE_CHOICES"
    assert "$.components[0].components[0].style" in leaf["message"]
    assert discord.general.messages == []
    assert [v.json_path for v in discord.openapi_violations] == [
        "$.components[0].components[0].style"
    ]


def test_a_refused_request_fails_the_test_that_sent_it(tmp_path: Path) -> None:
    test = tmp_path / "test_sends_bad_body.py"
    test.write_text(
        textwrap.dedent(
            """
            import aiohttp

            async def test_sends_bad_body(discord):
                url = f"{discord.api_base}/channels/{discord.general.id}/messages"
                headers = {"Authorization": f"Bot {discord.token}"}
                async with aiohttp.ClientSession(headers=headers) as http:
                    async with http.post(url, json={"embeds": [{"color": "red"}]}) as resp:
                        assert resp.status == 400
            """
        )
    )
    run = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", str(test), "--rootdir", str(tmp_path)),
            *("-p", "tests.e2e.conftest", "-p", "no:randomly", "-p", "no:cacheprovider"),
            *("-o", "asyncio_mode=auto"),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 1, run.stdout[-3000:]
    assert "1 passed, 1 error" in run.stdout
    assert "requests Discord would refuse" in run.stdout
    assert "POST /channels/{channel_id}/messages: body $.embeds[0].color" in run.stdout
