"""What /gallery and /flexadmin gallery answer: plain text, links Discord shows as links."""

from __future__ import annotations

from bot.gallery.service import GalleryLink


def render_link(link: GalleryLink) -> str:
    """The private answer to /gallery: the link, whether it is private, and until when."""
    if link.expires is None:
        return f"This server's gallery is public: <{link.url}>"
    return (
        f"Your private link to this server's gallery: <{link.url}>\n"
        f"It works until <t:{link.expires}:f> (<t:{link.expires}:R>). Please don't share it: "
        "anyone holding it can see this server's gallery until then."
    )
