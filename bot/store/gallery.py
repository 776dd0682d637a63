"""The web gallery's SQL (issue 15): what a server's gallery may show, family trees, thumbnails.

One rule decides what appears, :func:`_shown`, used by every read here: a delivered result of
this server, from an ordinary channel, not flagged by fal's safety checker, not deleted in Discord
(``gallery_removed``), whose requester has not opted out (``user_prefs.gallery_opt_out``). The
SQL runs on SQLite and PostgreSQL alike (recursive CTEs included); only the expression reading the
prompt out of ``jobs.params`` differs per dialect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.store.db import POSTGRESQL, Reader, Row, Tx, execute, fetch_all, fetch_one

#: Most descendants read for one family tree; more is a page nobody can read anyway.
MAX_TREE_NODES = 1000
#: A guard on the walk up: parents always have smaller ids, so a chain this long is a bug.
MAX_DEPTH = 10_000


def _shown(j: str) -> str:
    """The condition for job alias ``j`` to appear in its server's gallery (constants only)."""
    return (
        f"{j}.state = 'delivered' AND {j}.output_hash IS NOT NULL AND {j}.channel_nsfw = 0"
        f" AND {j}.nsfw_flagged = 0"
        f" AND NOT EXISTS (SELECT 1 FROM gallery_removed r WHERE r.job_id = {j}.id)"
        f" AND NOT EXISTS (SELECT 1 FROM user_prefs p WHERE p.user_id = {j}.user_id"
        f" AND p.gallery_opt_out = 1)"
    )


def _prompt(src: Reader, j: str) -> str:
    """The prompt inside ``jobs.params`` (JSON text) for this backend."""
    if src.dialect == POSTGRESQL:
        return f"({j}.params::json ->> 'prompt')"
    return f"json_extract({j}.params, '$.prompt')"


#: What every page shows of one result: never money columns.
_ITEM_COLUMNS = (
    "j.id, j.user_id, j.guild_id, j.channel_id, j.origin, j.parent_job_id, j.params, j.seed,"
    " j.endpoint, j.output_hash, j.output_width, j.output_height, j.result_message_id,"
    " j.created_at, b.deleted_at AS purged_at, b.content_type"
)
_BLOB_JOIN = " LEFT JOIN blobs b ON b.sha256 = j.output_hash"


@dataclass(frozen=True, slots=True)
class GalleryRow:
    """One result as the gallery may show it (no costs)."""

    id: int
    user_id: int
    guild_id: int
    channel_id: int | None
    origin: str
    parent_job_id: int | None
    params: str
    seed: int | None
    endpoint: str
    output_hash: str
    width: int | None
    height: int | None
    result_message_id: int | None
    created_at: float
    purged: bool
    content_type: str | None
    remixes: int = 0
    shown: bool = True


def _row(r: Row, *, remixes: int = 0, shown: bool = True) -> GalleryRow:
    return GalleryRow(
        id=int(r["id"]),
        user_id=int(r["user_id"]),
        guild_id=int(r["guild_id"]),
        channel_id=r["channel_id"],
        origin=str(r["origin"]),
        parent_job_id=r["parent_job_id"],
        params=str(r["params"]),
        seed=r["seed"],
        endpoint=str(r["endpoint"]),
        output_hash=str(r["output_hash"] or ""),
        width=r["output_width"],
        height=r["output_height"],
        result_message_id=r["result_message_id"],
        created_at=float(r["created_at"]),
        purged=r["purged_at"] is not None,
        content_type=r["content_type"],
        remixes=remixes,
        shown=shown,
    )


def _like(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, its own % and _ taken literally."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def grid(
    src: Reader,
    guild_id: int,
    *,
    search: str = "",
    member: int | None = None,
    most_remixed: bool = False,
    limit: int = 48,
    offset: int = 0,
) -> list[GalleryRow]:
    """A page of a server's shown results: newest first, or most remixed first."""
    where = f" WHERE j.guild_id = ? AND {_shown('j')}"
    args: list[Any] = [guild_id]
    if search:
        where += f" AND lower({_prompt(src, 'j')}) LIKE ? ESCAPE '\\'"
        args.append(_like(search))
    if member is not None:
        where += " AND j.user_id = ?"
        args.append(member)
    if most_remixed:
        # Every result's count is needed to sort: count all children in one grouped pass.
        counts = (
            " LEFT JOIN (SELECT c.parent_job_id AS pid, COUNT(*) AS n FROM jobs c"
            f" WHERE c.guild_id = ? AND c.parent_job_id IS NOT NULL AND {_shown('c')}"
            " GROUP BY c.parent_job_id) k ON k.pid = j.id"
        )
        sql = (
            f"SELECT {_ITEM_COLUMNS}, COALESCE(k.n, 0) AS remixes FROM jobs j{_BLOB_JOIN}{counts}"
            f"{where} ORDER BY remixes DESC, j.created_at DESC, j.id DESC LIMIT ? OFFSET ?"
        )
        args.insert(0, guild_id)
    else:
        # Newest first reads the page's rows from the index; count only their children.
        remixes = f"(SELECT COUNT(*) FROM jobs c WHERE c.parent_job_id = j.id AND {_shown('c')})"
        sql = (
            f"SELECT {_ITEM_COLUMNS}, {remixes} AS remixes FROM jobs j{_BLOB_JOIN}{where}"
            " ORDER BY j.created_at DESC, j.id DESC LIMIT ? OFFSET ?"
        )
    rows = await fetch_all(src, sql, [*args, limit, offset])
    return [_row(r, remixes=int(r["remixes"])) for r in rows]


async def members(src: Reader, guild_id: int) -> list[tuple[int, int]]:
    """(member id, shown results) of every member with a shown result here, most first."""
    rows = await fetch_all(
        src,
        f"SELECT j.user_id, COUNT(*) AS n FROM jobs j WHERE j.guild_id = ? AND {_shown('j')}"
        " GROUP BY j.user_id ORDER BY n DESC, j.user_id",
        (guild_id,),
    )
    return [(int(r[0]), int(r[1])) for r in rows]


async def shown_job(src: Reader, guild_id: int, job_id: int) -> GalleryRow | None:
    """One result of this server, if the gallery may show it."""
    row = await fetch_one(
        src,
        f"SELECT {_ITEM_COLUMNS} FROM jobs j{_BLOB_JOIN}"
        f" WHERE j.id = ? AND j.guild_id = ? AND {_shown('j')}",
        (job_id, guild_id),
    )
    return _row(row) if row else None


async def ancestors(src: Reader, guild_id: int, job_id: int) -> list[GalleryRow]:
    """The job's parent, grandparent, ... up to the first edit (nearest first), each marked
    ``shown`` or not; only this server's jobs."""
    rows = await fetch_all(
        src,
        "WITH RECURSIVE up (id, parent_job_id, depth) AS ("
        " SELECT id, parent_job_id, 0 FROM jobs WHERE id = ?"
        " UNION ALL"
        " SELECT p.id, p.parent_job_id, up.depth + 1 FROM jobs p JOIN up ON p.id = up.parent_job_id"
        " WHERE up.depth < ?)"
        f" SELECT {_ITEM_COLUMNS}, CASE WHEN {_shown('j')} THEN 1 ELSE 0 END AS shown, up.depth"
        f" FROM up JOIN jobs j ON j.id = up.id{_BLOB_JOIN}"
        " WHERE up.depth > 0 AND j.guild_id = ? ORDER BY up.depth",
        (job_id, MAX_DEPTH, guild_id),
    )
    return [_row(r, shown=bool(r["shown"])) for r in rows]


async def descendants(src: Reader, guild_id: int, job_id: int) -> list[GalleryRow]:
    """Every job grown out of this one (children, grandchildren, ...), each marked ``shown``
    or not, in id order (a parent before its children); at most :data:`MAX_TREE_NODES`."""
    rows = await fetch_all(
        src,
        "WITH RECURSIVE down (id, depth) AS ("
        " SELECT id, 0 FROM jobs WHERE id = ?"
        " UNION ALL"
        " SELECT c.id, down.depth + 1 FROM jobs c JOIN down ON c.parent_job_id = down.id"
        " WHERE down.depth < ?)"
        f" SELECT {_ITEM_COLUMNS}, CASE WHEN {_shown('j')} THEN 1 ELSE 0 END AS shown"
        f" FROM down JOIN jobs j ON j.id = down.id{_BLOB_JOIN}"
        " WHERE down.depth > 0 AND j.guild_id = ? ORDER BY j.id LIMIT ?",
        (job_id, MAX_DEPTH, guild_id, MAX_TREE_NODES),
    )
    return [_row(r, shown=bool(r["shown"])) for r in rows]


async def names(src: Reader, guild_id: int, user_ids: Sequence[int]) -> dict[int, str]:
    """The display names recorded for these members of this server."""
    if not user_ids:
        return {}
    ids = sorted(set(user_ids))
    marks = ", ".join("?" for _ in ids)
    rows = await fetch_all(
        src,
        f"SELECT user_id, name FROM gallery_names WHERE guild_id = ? AND user_id IN ({marks})",
        [guild_id, *ids],
    )
    return {int(r[0]): str(r[1]) for r in rows}


async def set_name(tx: Tx, guild_id: int, user_id: int, name: str, now: float) -> None:
    await execute(
        tx,
        "INSERT INTO gallery_names (guild_id, user_id, name, updated_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (guild_id, user_id) DO UPDATE SET name = excluded.name,"
        " updated_at = excluded.updated_at",
        (guild_id, user_id, name, now),
    )


async def results_posted_as(src: Reader, guild_id: int, message_ids: Sequence[int]) -> list[int]:
    """This server's jobs whose result is one of these Discord messages, not removed yet (none
    for the many deleted messages that were never a result)."""
    if not message_ids:
        return []
    ids = sorted(set(message_ids))
    marks = ", ".join("?" for _ in ids)
    rows = await fetch_all(
        src,
        f"SELECT j.id FROM jobs j WHERE j.result_message_id IN ({marks}) AND j.guild_id = ?"
        " AND NOT EXISTS (SELECT 1 FROM gallery_removed r WHERE r.job_id = j.id) ORDER BY j.id",
        [*ids, guild_id],
    )
    return [int(r[0]) for r in rows]


async def remove_result(tx: Tx, job_id: int, removed_by: int | None, now: float) -> None:
    """The result was deleted in Discord: keep it out of the gallery from now on."""
    await execute(
        tx,
        "INSERT INTO gallery_removed (job_id, removed_by, removed_at) VALUES (?, ?, ?)"
        " ON CONFLICT (job_id) DO NOTHING",
        (job_id, removed_by, now),
    )


async def set_public(tx: Tx, guild_id: int, public: bool, set_by: int | None, now: float) -> None:
    if public:
        await execute(
            tx,
            "INSERT INTO gallery_public (guild_id, set_by, set_at) VALUES (?, ?, ?)"
            " ON CONFLICT (guild_id) DO UPDATE SET set_by = excluded.set_by,"
            " set_at = excluded.set_at",
            (guild_id, set_by, now),
        )
    else:
        await execute(tx, "DELETE FROM gallery_public WHERE guild_id = ?", (guild_id,))


async def is_public(src: Reader, guild_id: int) -> bool:
    row = await fetch_one(src, "SELECT 1 FROM gallery_public WHERE guild_id = ?", (guild_id,))
    return row is not None


async def thumbnail(src: Reader, sha256: str) -> bytes | None:
    """The cached WebP thumbnail of the original ``sha256``, if made."""
    row = await fetch_one(src, "SELECT data FROM gallery_thumbs WHERE sha256 = ?", (sha256,))
    return bytes(row[0]) if row else None


async def put_thumbnail(
    tx: Tx, sha256: str, data: bytes, width: int, height: int, now: float
) -> None:
    await execute(
        tx,
        "INSERT INTO gallery_thumbs (sha256, data, width, height, created_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING",
        (sha256, data, width, height, now),
    )
