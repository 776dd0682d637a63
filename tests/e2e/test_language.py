"""Flexbot in the members' language, end to end: real Flexbot, fake Discord, fake fal.

Private answers follow the member's Discord locale (``interaction.locale``); public messages
follow the server's language (``/flexadmin language``, else its Discord locale); the command
registration carries every localisation and passes Discord's schema.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.i18n import Money, translate
from tests.e2e.flexbot_fixtures import FlexbotRun, slash_edit
from tests.fakes.discord import FakeDiscord, FakeMessage
from tests.support.localisation import problems

pytest_plugins = ["tests.e2e.flexbot_fixtures"]

GUILD_COMMANDS = "PUT /applications/{application_id}/guilds/{guild_id}/commands"


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
    assert first.content.startswith("En file d'attente sous le n° 1 ;")
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

    first = await edit(discord)  # alice's locale is English: her own answer is English
    assert first.content == ("Queued as job #1; the status and the result follow in this channel.")
    result = await discord.general.wait_for_message(lambda m: bool(m.files), timeout=15)
    job = flexbot.job(1)
    cost = translate("de", "{cost}", cost=Money(job["cost_micros"] or 0))
    assert cost.endswith("\xa0$")  # Babel's German money ("0,03 $"), not "$0.03"
    assert result.content == (
        f"<@{discord.alice.id}> Auftrag #1 ist fertig · Seed {job['seed']} · {cost}"
    )
    embed = result.embeds[0]
    assert embed["title"] == "Auftrag #1"
    names = [f["name"] for f in embed["fields"]]
    assert names[:8] == [
        "Seed", "Schritte", "Führung", "Größe", "Format", "Sicherheit", "Kosten", "Angefragt von"
    ]  # fmt: skip
    assert dict(zip(names, [f["value"] for f in embed["fields"]], strict=True))["Kosten"] == cost
    labels = [b["label"] for b in result.buttons()]
    assert labels == ["Rerun", "Reroll", "Tweak", "Remix", "Löschen"]
    status = await discord.wait_for(
        lambda: next((m for m in discord.general.messages if m.content.startswith("✅")), None)
    )
    assert status.content.startswith("✅ Auftrag #1 fertig: https://discord.com/channels/")
    queued = status.edits[0]["content"]
    assert queued.startswith("⏳ Auftrag #1 in der Warteschlange (")

    it = await discord.slash(
        "flexadmin language", user=discord.owner_user, options={"language": "auto"}
    )
    said = await it.wait_for_original()
    assert said.content == (
        "Les messages publics de ce serveur suivent désormais sa langue Discord (en-US)."
    )
    assert flexbot.query("SELECT * FROM guild_language") == []


async def test_a_french_member_reads_french_while_the_channel_reads_the_servers_language(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    discord.alice.locale = "fr"
    ack = await edit(discord)
    assert ack.ephemeral
    assert ack.content == (
        "En file d'attente sous le n° 1 ; le suivi et le résultat arriveront dans ce salon."
    )
    result = await discord.general.wait_for_message(lambda m: bool(m.files), timeout=15)
    assert result.content.startswith(f"<@{discord.alice.id}> job #1 is ready · seed ")

    # The Tweak modal is private: its title and labels are the clicker's (custom_ids stay).
    it = await discord.click(result, "Tweak", user=discord.alice)
    modal = await it.wait_for_modal()
    assert modal["title"] == "Tweak de la tâche n° 1"
    inputs = _inputs(modal)
    assert [c["label"] for c in inputs] == ["Consigne", "Étapes", "Guidage", "Graine"]
    assert [c["custom_id"] for c in inputs] == ["prompt", "steps", "guidance", "seed"]


async def test_an_admin_reads_flexadmin_answers_in_their_own_language(
    discord: FakeDiscord, flexbot: FlexbotRun
) -> None:
    discord.owner_user.locale = "ja"
    it = await discord.slash("flexadmin pause", user=discord.owner_user)
    said = await it.wait_for_original()
    assert said.ephemeral
    assert said.content == (
        "このサーバーで Flexbot を一時停止しました。受付済みのジョブはそのまま実行されます。"
    )
    it = await discord.slash("flexadmin settings", user=discord.owner_user)
    settings = (await it.wait_for_original()).content
    assert "paused = はい  (サーバー)" in settings
    assert "safety = 許容度 ≤ 2、チェッカー有効  (既定値)" in settings
    it = await discord.slash(
        "flexadmin filter test", user=discord.owner_user, options={"prompt": "a red hat"}
    )
    assert (await it.wait_for_original()).content == (
        "このプロンプトはここではフィルターを通過します。"
    )


def _inputs(modal: dict[str, Any]) -> list[dict[str, Any]]:
    """The modal's text inputs in order (in action rows or labels)."""
    found: list[dict[str, Any]] = []
    for top in modal["components"]:
        for comp in top.get("components", []) + ([top["component"]] if "component" in top else []):
            if comp["type"] == 4:
                found.append(comp)
    return found
