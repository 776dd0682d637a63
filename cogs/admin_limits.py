"""/flexadmin limit set|clear and /flexadmin credit grant|revoke."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands

from bot.admin import LIMIT_WORDS, parse_limit_value, parse_money
from bot.errors import UserError
from cogs.admin import AdminSubgroup, flexadmin_group, guild_id_of, reply

if TYPE_CHECKING:
    from bot.app import FlexBot

LIMIT_CHOICES = [
    app_commands.Choice(name=words, value=name)
    for name, words in LIMIT_WORDS.items()
    if name != "global_monthly_cap"
]


class LimitGroup(AdminSubgroup):
    """Caps and counts for the server, a role or a member."""

    def __init__(self, bot: FlexBot) -> None:
        super().__init__(name="limit", description="Spend caps, queue caps and cooldown.")
        self.bot = bot

    @app_commands.command(name="set", description="Set a limit for the server, a role or a member.")
    @app_commands.describe(
        limit="Which limit",
        value='Dollars for caps ("1.50", "unlimited"); a whole number for counts and seconds',
        member="Only for this member",
        role="For members with this role (their highest role wins)",
    )
    @app_commands.choices(limit=LIMIT_CHOICES)
    async def set_(
        self,
        interaction: discord.Interaction,
        limit: app_commands.Choice[str],
        value: str,
        member: discord.Member | None = None,
        role: discord.Role | None = None,
    ) -> None:
        try:
            parsed = parse_limit_value(limit.value, value)
        except UserError as exc:
            await interaction.response.send_message(str(exc), ephemeral=True)
            return
        await reply(
            interaction,
            self.bot.core.admin.set_limit(
                interaction.user.id,
                guild_id_of(interaction),
                limit.value,
                parsed,
                user_id=member.id if member else None,
                role_id=role.id if role else None,
            ),
        )

    @app_commands.command(name="clear", description="Remove an override; the default applies.")
    @app_commands.describe(limit="Which limit", member="The member", role="The role")
    @app_commands.choices(limit=LIMIT_CHOICES)
    async def clear(
        self,
        interaction: discord.Interaction,
        limit: app_commands.Choice[str],
        member: discord.Member | None = None,
        role: discord.Role | None = None,
    ) -> None:
        await reply(
            interaction,
            self.bot.core.admin.clear_limit(
                interaction.user.id,
                guild_id_of(interaction),
                limit.value,
                user_id=member.id if member else None,
                role_id=role.id if role else None,
            ),
        )


class CreditGroup(AdminSubgroup):
    """Extra allowance for a member this month."""

    def __init__(self, bot: FlexBot) -> None:
        super().__init__(name="credit", description="Give or take back extra budget.")
        self.bot = bot

    async def _change(
        self,
        interaction: discord.Interaction,
        member: discord.Member,
        amount: str,
        reason: str | None,
        grant: bool,
    ) -> None:
        try:
            micros = parse_money(amount) or 0
        except UserError as exc:
            await interaction.response.send_message(str(exc), ephemeral=True)
            return
        admin = self.bot.core.admin
        change = admin.grant_credit if grant else admin.revoke_credit
        await reply(
            interaction,
            change(interaction.user.id, guild_id_of(interaction), member.id, micros, reason),
        )

    @app_commands.command(name="grant", description="Add to a member's budget this month.")
    @app_commands.describe(member="Who", amount='Dollars, e.g. "1.50"', reason="Why")
    async def grant(
        self,
        interaction: discord.Interaction,
        member: discord.Member,
        amount: str,
        reason: str | None = None,
    ) -> None:
        await self._change(interaction, member, amount, reason, grant=True)

    @app_commands.command(name="revoke", description="Take back credit granted this month.")
    @app_commands.describe(member="Who", amount='Dollars, e.g. "1.50"', reason="Why")
    async def revoke(
        self,
        interaction: discord.Interaction,
        member: discord.Member,
        amount: str,
        reason: str | None = None,
    ) -> None:
        await self._change(interaction, member, amount, reason, grant=False)


async def setup(bot: FlexBot) -> None:
    group = flexadmin_group(bot)
    group.add_command(LimitGroup(bot))
    group.add_command(CreditGroup(bot))


async def teardown(bot: FlexBot) -> None:
    group = flexadmin_group(bot)
    group.remove_command("limit")
    group.remove_command("credit")
