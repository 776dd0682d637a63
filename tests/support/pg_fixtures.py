"""Pytest fixtures for a real PostgreSQL: one server per session, a fresh database per test.

``pg_cluster`` starts on first use only, so a run without PostgreSQL tests starts no server; it is
stopped at the end of the session, whatever the outcome. ``pg_url`` is the URL of a new, empty
database that is dropped (ending any connection the test left open) after the test.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.support.pg_cluster import PgCluster

_db_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgCluster]:
    """The session's PostgreSQL server on 127.0.0.1 (its log: ``pg_cluster.log_path``)."""
    with PgCluster.running(tmp_path_factory.mktemp("pg")) as cluster:
        yield cluster


@pytest.fixture
async def pg_url(pg_cluster: PgCluster, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """``postgresql://...`` of an empty database of this test's own."""
    # Numbered for uniqueness; the test's name is there to tell databases apart in the server log.
    slug = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")
    name = f"t{next(_db_numbers)}_{slug}"[:63]
    url = await pg_cluster.create_database(name)
    yield url
    await pg_cluster.drop_database(name)
