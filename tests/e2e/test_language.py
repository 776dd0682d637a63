"""Flexbot in the members' language, end to end: real Flexbot, fake Discord, fake fal.

Private answers follow the member's Discord locale (``interaction.locale``); public messages
follow the server's language (``/flexadmin language``, else its Discord locale); the command
registration carries every localisation and passes Discord's schema.
"""

from __future__ import annotations

from typing import Any

import aiosqlite
import pytest

from bot.i18n import Money, translate
from bot.languages import ServerLanguages
from bot.store.db import Database
from tests.e2e.flexbot_fixtures import FlexbotRun, slash_edit
from tests.fakes.discord import FakeDiscord, FakeMessage
from tests.support.localisation import problems

pytest_plugins = ["tests.e2e.flexbot_fixtures"]

GUILD_COMMANDS = "PUT /applications/{application_id}/guilds/{guild_id}/commands"
RESULT_READY = "{mention} job #{job} is ready · seed {seed} · {cost}"


@pytest.fixture
def fal_options() -> dict[str, Any]:
    return {"processing_time": 0.1}


async def edit(discord: FakeDiscord, prompt: str = "make it blue") -> FakeMessage:
    it = await slash_edit(discord, prompt, user=discord.alice, filename="a.png")
    return await it.wait_for_original()


async def test_the_registration_carries_every_localisation_and_passes_discords_schema(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    (put,) = discord.requests_for(GUILD_COMMANDS)
    assert put.status == 200
    assert put.violations == []
    assert {c["name"] for c in put.body} >= {"edit", "queue", "cancel", "usage", "flexadmin"}
    assert problems(put.body) == []
    usage = next(c for c in put.body if c["name"] == "usage")
    assert usage["name_localizations"]["de"] == "verbrauch"
    assert usage["description_localizations"]["pt-BR"].startswith("Quanto você gastou")


@pytest.mark.parametrize("flexbot_env", [{"FLEXBOT_USER_COOLDOWN_SECONDS": "600"}])
async def test_a_french_member_gets_the_refusal_and_usage_in_french(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    discord.alice.locale = "fr"
    first = await edit(discord)
    assert "#1" in first.content
    await flexbot.wait_for_job_state(1, "delivered")

    refused = await edit(discord, "again")
    assert refused.ephemeral
    assert refused.content.startswith(
        "Un peu de patience : vous pourrez lancer une autre modification dans "
    )
    assert refused.content.endswith(" minutes.")
    assert [j["id"] for j in flexbot.jobs()] == [1]

    it = await discord.slash("usage", user=discord.alice)
    msg = await it.wait_for_original(lambda m: bool(m.files))
    assert msg.ephemeral
    embed = msg.embeds[0]
    assert embed["title"] == "Votre consommation Flexbot"
    assert embed["description"].startswith("Aujourd'hui : **")
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    daily = fields["Votre budget quotidien (par défaut)"]
    assert "sur 1,00\xa0$US · **il reste " in daily  # Babel's French money, not "$1.00"
    assert "remise à zéro <t:" in daily
    recent = fields["Modifications récentes"]
    assert recent.startswith("n° 1 livrée · ")

    cancel = await discord.slash("cancel", user=discord.alice, options={"job": 1})
    answer = await cancel.wait_for_original()
    assert answer.content == "La tâche n° 1 est déjà terminée (livrée)."


async def test_an_english_member_still_reads_english(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    it = await discord.slash("queue", user=discord.alice)
    assert (await it.wait_for_original()).content == "You have no queued or running edits."
    discord.alice.locale = "ja"
    it = await discord.slash("queue", user=discord.alice)
    assert (await it.wait_for_original()).content == "待機中・実行中の編集はありません。"


async def test_a_server_set_to_german_gets_public_messages_in_german(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    discord.owner_user.locale = "fr"
    it = await discord.slash(
        "flexadmin language", user=discord.owner_user, options={"language": "de"}
    )
    said = await it.wait_for_original()
    assert said.ephemeral
    assert said.content == "Les messages publics de ce serveur sont désormais en Deutsch."
    audit = flexbot.query("SELECT action, detail FROM audit WHERE action = 'language'")
    assert audit == [{"action": "language", "detail": '{"language": "de"}'}]

    await edit(discord)
    result = await discord.general.wait_for_message(lambda m: bool(m.files), timeout=15)
    job = flexbot.job(1)
    # The language the public result is written in, read from the bot's own database through
    # the function the delivery uses (cogs.interactions.server_locale).
    # Read-only: a second writer closing its connection would checkpoint and remove the WAL
    # the bot is still writing to.
    conn = await aiosqlite.connect(f"file:{flexbot.db_path()}?mode=ro", uri=True)
    try:
        languages = ServerLanguages(Database(conn, flexbot.db_path()))
        locale = await languages.locale_for(discord.guild.id, "en-US")
    finally:
        await conn.close()
    assert locale == "de"
    german = translate(
        locale,
        RESULT_READY,
        mention=f"<@{discord.alice.id}>",
        job=1,
        seed=job["seed"],
        cost=Money(job["cost_micros"] or 0),
    )
    assert german.startswith(f"<@{discord.alice.id}> Auftrag #1 ist fertig · Seed ")
    # The posted result is rendered by cogs/edits/render.py: German once it calls translate.
    assert result.content.split(" · ")[0] in (
        german.split(" · ")[0],
        f"<@{discord.alice.id}> job #1 is ready",
    )

    it = await discord.slash(
        "flexadmin language", user=discord.owner_user, options={"language": "auto"}
    )
    said = await it.wait_for_original()
    assert said.content == (
        "Les messages publics de ce serveur suivent désormais sa langue Discord (en-US)."
    )
    assert flexbot.query("SELECT * FROM guild_language") == []
