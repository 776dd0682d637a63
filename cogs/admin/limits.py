"""/flexadmin limit set|clear and /flexadmin credit grant|revoke."""

from __future__ import annotations

import discord
from discord import app_commands

from bot.admin import LIMIT_WORDS, parse_limit_value, parse_money
from bot.core import Core
from cogs.admin.group import AdminSubgroup, guild_id_of, reply

LIMIT_CHOICES = [
    app_commands.Choice(name=words, value=name)
    for name, words in LIMIT_WORDS.items()
    if name != "global_monthly_cap"
]


def role_id(role: discord.Role | None) -> int | None:
    """A limit on @everyone is the server-wide limit: members' roles never include @everyone."""
    return None if role is None or role.is_default() else role.id


class LimitGroup(AdminSubgroup):
    """Caps and counts for the server, a role or a member."""

    def __init__(self, core: Core) -> None:
        super().__init__(core, name="limit", description="Spend caps, queue caps and cooldown.")

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
        parsed = parse_limit_value(limit.value, value)
        await reply(
            interaction,
            self.core.admin.set_limit(
                interaction.user.id,
                guild_id_of(interaction),
                limit.value,
                parsed,
                user_id=member.id if member else None,
                role_id=role_id(role),
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
            self.core.admin.clear_limit(
                interaction.user.id,
                guild_id_of(interaction),
                limit.value,
                user_id=member.id if member else None,
                role_id=role_id(role),
            ),
        )


class CreditGroup(AdminSubgroup):
    """Extra allowance for a member this month."""

    def __init__(self, core: Core) -> None:
        super().__init__(core, name="credit", description="Give or take back extra budget.")

    async def _change(
        self,
        interaction: discord.Interaction,
        member: discord.Member,
        amount: str,
        reason: str | None,
        grant: bool,
    ) -> None:
        micros = parse_money(amount) or 0
        admin = self.core.admin
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
