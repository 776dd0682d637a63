"""The channel permissions Flexbot needs to post a result, and which of them are missing."""

from __future__ import annotations

#: (attribute of discord.Permissions, the name Discord shows admins), in the order we name them.
POSTING_PERMISSIONS = (
    ("view_channel", "View Channel"),
    ("send_messages", "Send Messages"),
    ("attach_files", "Attach Files"),
    ("embed_links", "Embed Links"),
    ("read_message_history", "Read Message History"),
)
_THREAD_SEND = ("send_messages_in_threads", "Send Messages in Threads")


def missing_for_posting(permissions: object, *, thread: bool = False) -> list[str]:
    """Names of the posting permissions ``permissions`` lacks (threads need their own send)."""
    wanted = [
        _THREAD_SEND if thread and attr == "send_messages" else (attr, name)
        for attr, name in POSTING_PERMISSIONS
    ]
    return [name for attr, name in wanted if not getattr(permissions, attr)]
