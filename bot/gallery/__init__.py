"""The read-only web gallery (issue 15): a server's results and their family trees on the web.

No Discord here: :mod:`.service` is what the Discord side calls (signed links, public switch,
opt-out, deleted results), :mod:`.server` the aiohttp application, :mod:`.pages` the Jinja2
rendering, :mod:`.tree` the family tree, :mod:`.thumbs` the WebP thumbnails, :mod:`.signing` the
HMAC links. SQL lives in :mod:`bot.store.gallery`.
"""
