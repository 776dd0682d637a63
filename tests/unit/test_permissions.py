from types import SimpleNamespace

from bot.permissions import missing_for_posting

ALL = dict.fromkeys(
    [
        "view_channel",
        "send_messages",
        "send_messages_in_threads",
        "attach_files",
        "embed_links",
        "read_message_history",
    ],
    True,
)


def perms(**denied: bool) -> SimpleNamespace:
    return SimpleNamespace(**{**ALL, **denied})


def test_nothing_missing_when_everything_is_granted() -> None:
    assert missing_for_posting(perms()) == []


def test_missing_permissions_are_named_as_discord_shows_them() -> None:
    assert missing_for_posting(perms(attach_files=False, embed_links=False)) == [
        "Attach Files",
        "Embed Links",
    ]


def test_threads_need_send_messages_in_threads_not_send_messages() -> None:
    assert missing_for_posting(perms(send_messages=False), thread=True) == []
    assert missing_for_posting(perms(send_messages_in_threads=False), thread=True) == [
        "Send Messages in Threads"
    ]
    assert missing_for_posting(perms(send_messages=False)) == ["Send Messages"]
