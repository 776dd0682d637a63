"""A result's family tree: its ancestors up to the first edit, then everything grown out of it.

Results the gallery may not show (deleted, opted out, flagged, not delivered) are left out and
their shown children hang from the nearest shown ancestor instead, so the tree never reveals a
hidden result yet keeps the rest of the family together. Pure: rows in, nodes out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.store.gallery import GalleryRow


@dataclass
class Node:
    """One result in the tree; ``kind`` is how it was made from its parent (its origin)."""

    row: GalleryRow
    current: bool = False
    children: list[Node] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.row.origin


def family_tree(
    job: GalleryRow, ancestors: Sequence[GalleryRow], descendants: Sequence[GalleryRow]
) -> Node:
    """The tree's root (the first shown ancestor, or ``job``) with ``job`` marked current.

    ``ancestors``: nearest first; ``descendants``: parents before children (id order)."""
    me = Node(job, current=True)
    by_id: dict[int, Node] = {job.id: me}
    parent_of = {row.id: row.parent_job_id for row in descendants}
    for row in descendants:  # a parent's id is smaller, so it was placed already
        if not row.shown:
            continue
        node = Node(row)
        by_id[row.id] = node
        up = row.parent_job_id
        while up is not None and up not in by_id:  # skip hidden links in the chain
            up = parent_of.get(up)
        by_id[up if up is not None else job.id].children.append(node)
    top = me
    for row in ancestors:
        if row.shown:
            top = Node(row, children=[top])
    return top


def count(node: Node) -> int:
    """Results in the tree under (and including) ``node``."""
    return 1 + sum(count(child) for child in node.children)
