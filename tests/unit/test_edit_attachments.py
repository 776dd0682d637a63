"""Which attachments /edit and the "Edit with FLUX" menu take: every format intake can read."""

from __future__ import annotations

import discord
import pytest

from cogs.edits.commands import is_image


def attachment(filename: str, content_type: str | None) -> discord.Attachment:
    data = {"id": 1, "filename": filename, "size": 1000, "url": "u", "proxy_url": "u"}
    if content_type is not None:
        data["content_type"] = content_type
    return discord.Attachment(data=data, state=_State())  # type: ignore[arg-type]


class _State:
    """What discord.Attachment reads from its connection state: nothing is fetched here."""

    http = None


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [
        ("IMG_0001.HEIC", None),  # phones upload HEIC; Discord may not name its type
        ("photo.heif", "application/octet-stream"),
        ("render.avif", None),
        ("shot.png", "image/png"),
        ("scan", "image/jpeg"),
    ],
)
def test_phone_and_web_formats_are_taken(filename: str, content_type: str | None) -> None:
    assert is_image(attachment(filename, content_type))


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [("notes.txt", "text/plain"), ("clip.mp4", "video/mp4"), ("doc.pdf", None)],
)
def test_other_files_are_not(filename: str, content_type: str | None) -> None:
    assert not is_image(attachment(filename, content_type))
