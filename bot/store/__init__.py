"""Persistence: SQLite database with numbered migrations, and the content-addressed blob store."""
