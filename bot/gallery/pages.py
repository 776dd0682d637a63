"""The gallery's HTML: Jinja2 templates (autoescaped) fed plain view values.

Everything a page shows is decided here from store rows, and nothing here knows money: the rows
carry no cost columns. Links are built by :class:`Urls` from the page's own base path, so a
private link's token (or ``public``) carries through every link without cookies or JavaScript.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import jinja2

from bot.gallery.tree import Node
from bot.store.gallery import GalleryRow

#: Grid results per page.
PAGE_SIZE = 48
#: Longest alt text taken from a prompt (screen readers read all of it).
ALT_CHARS = 250

KIND_LABELS = {
    "command": "first edit",
    "context_menu": "first edit (from a message)",
    "cli": "first edit (terminal)",
    "rerun": "rerun",
    "reroll": "reroll",
    "tweak": "tweak",
    "remix": "remix",
}

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("bot.gallery", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)


class Urls:
    """Links inside one server's gallery, under ``/s/<guild>/<key>``."""

    def __init__(self, guild_id: int, key: str) -> None:
        self.base = f"/s/{guild_id}/{key}"

    def grid(self, **query: Any) -> str:
        shown = {
            k: v for k, v in query.items() if v not in (None, "") and not (k == "page" and v == 1)
        }
        return f"{self.base}/" + (f"?{urlencode(shown)}" if shown else "")

    def job(self, job_id: int) -> str:
        return f"{self.base}/job/{job_id}"

    def thumb(self, row: GalleryRow) -> str:
        return f"{self.base}/thumb/{row.id}/{row.output_hash}.webp"

    def full(self, row: GalleryRow) -> str:
        return f"{self.base}/image/{row.id}/{row.output_hash}"


def prompt_of(row: GalleryRow) -> str:
    return str(json.loads(row.params).get("prompt", ""))


def alt_of(row: GalleryRow) -> str:
    prompt = " ".join(prompt_of(row).split())
    return prompt if len(prompt) <= ALT_CHARS else prompt[: ALT_CHARS - 1] + "…"


def when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def member_name(names: Mapping[int, str], user_id: int) -> str:
    return names.get(user_id) or f"member {user_id}"


@dataclass(frozen=True)
class Card:
    """One result as a grid cell or tree node shows it."""

    id: int
    href: str
    thumb: str | None  # None: the image was purged
    alt: str
    who: str
    when: str
    kind: str
    remixes: int
    width: int
    height: int


def card(row: GalleryRow, urls: Urls, names: Mapping[int, str]) -> Card:
    width, height = row.width or 1, row.height or 1
    scale = min(1.0, 480 / max(width, height))
    return Card(
        id=row.id,
        href=urls.job(row.id),
        thumb=None if row.purged else urls.thumb(row),
        alt=alt_of(row),
        who=member_name(names, row.user_id),
        when=when(row.created_at),
        kind=KIND_LABELS.get(row.origin, row.origin),
        remixes=row.remixes,
        width=max(1, round(width * scale)),
        height=max(1, round(height * scale)),
    )


@dataclass(frozen=True)
class GridQuery:
    """What the grid's form asked for."""

    search: str = ""
    member: int | None = None
    most_remixed: bool = False
    page: int = 1


def render_grid(
    urls: Urls,
    server_name: str,
    query: GridQuery,
    rows: Sequence[GalleryRow],
    members: Sequence[tuple[int, int]],
    names: Mapping[int, str],
    *,
    has_next: bool,
) -> str:
    sort = "remixed" if query.most_remixed else ""
    keep = {"q": query.search, "member": query.member, "sort": sort}
    return _env.get_template("grid.html").render(
        title=server_name,
        urls=urls,
        query=query,
        sort=sort,
        cards=[card(r, urls, names) for r in rows],
        members=[(uid, member_name(names, uid), n) for uid, n in members],
        prev_href=urls.grid(**keep, page=query.page - 1) if query.page > 1 else None,
        next_href=urls.grid(**keep, page=query.page + 1) if has_next else None,
    )


def _params_table(row: GalleryRow) -> list[tuple[str, str]]:
    params = json.loads(row.params)
    size = params.get("image_size") or {}
    if isinstance(size, dict) and size.get("preset"):
        size_text = str(size["preset"])
    elif isinstance(size, dict) and size.get("width"):
        size_text = f"{size.get('width')} x {size.get('height')}"
    else:
        size_text = "as the input" if not size else json.dumps(size, sort_keys=True)
    seed = row.seed if row.seed is not None else params.get("seed")
    out = [
        ("Seed", "" if seed is None else str(seed)),
        ("Steps", str(params.get("num_inference_steps", ""))),
        ("Guidance", f"{params.get('guidance_scale', '')}"),
        ("Image size", size_text),
        ("Output size", f"{row.width} x {row.height}" if row.width else "unknown"),
        ("Output format", str(params.get("output_format", ""))),
        ("Safety tolerance", str(params.get("safety_tolerance", ""))),
        ("Safety checker", "on" if params.get("enable_safety_checker", True) else "off"),
        ("Model", row.endpoint),
        ("Made by", KIND_LABELS.get(row.origin, row.origin)),
    ]
    known = {
        "prompt",
        "image_size",
        "seed",
        "num_inference_steps",
        "guidance_scale",
        "output_format",
        "safety_tolerance",
        "enable_safety_checker",
    }
    out += [
        (k.replace("_", " ").capitalize(), str(v))
        for k, v in sorted(params.items())
        if k not in known
    ]
    return out


def _tree_items(node: Node, urls: Urls, names: Mapping[int, str]) -> dict[str, Any]:
    return {
        "card": card(node.row, urls, names),
        "current": node.current,
        "children": [_tree_items(c, urls, names) for c in node.children],
    }


def render_job(
    urls: Urls,
    server_name: str,
    row: GalleryRow,
    tree: Node,
    tree_size: int,
    names: Mapping[int, str],
) -> str:
    jump = (
        f"https://discord.com/channels/{row.guild_id}/{row.channel_id}/{row.result_message_id}"
        if row.channel_id and row.result_message_id
        else None
    )
    return _env.get_template("job.html").render(
        title=f"#{row.id} · {server_name}",
        server_name=server_name,
        urls=urls,
        row=row,
        prompt=prompt_of(row),
        alt=alt_of(row),
        full=None if row.purged else urls.full(row),
        who=member_name(names, row.user_id),
        when=when(row.created_at),
        params=_params_table(row),
        jump=jump,
        tree=_tree_items(tree, urls, names),
        tree_size=tree_size,
    )
