"""/gallery, /flexadmin gallery and the names the web gallery shows (registered when it is on)."""
