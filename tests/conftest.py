"""Fixtures for the whole suite: a real PostgreSQL (``pg_cluster``, ``pg_url``), started lazily."""

pytest_plugins = ["tests.support.pg_fixtures", "tests.support.procs"]
