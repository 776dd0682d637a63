"""The audit table: every admin change, who made it and its details."""

from __future__ import annotations

import json
import time
from typing import Any

from bot.model import AuditRow
from bot.store.db import Reader, Tx, execute, fetch_all


async def record(
    tx: Tx, guild_id: int | None, actor_id: int | None, action: str, detail: dict[str, Any]
) -> None:
    await execute(
        tx,
        "INSERT INTO audit (guild_id, actor_id, action, detail, created_at) VALUES (?, ?, ?, ?, ?)",
        (guild_id, actor_id, action, json.dumps(detail, sort_keys=True), time.time()),
    )


async def audit_rows(src: Reader, guild_id: int | None = None, limit: int = 100) -> list[AuditRow]:
    """The newest audit rows, of one guild or of all."""
    sql = "SELECT id, guild_id, actor_id, action, detail, created_at FROM audit"
    args: list[Any] = []
    if guild_id is not None:
        sql += " WHERE guild_id = ?"
        args.append(guild_id)
    rows = await fetch_all(src, sql + " ORDER BY id DESC LIMIT ?", [*args, limit])
    return [AuditRow(int(r[0]), r[1], r[2], str(r[3]), json.loads(r[4]), float(r[5])) for r in rows]
