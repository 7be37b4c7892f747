"""A throwaway database on the local PostgreSQL server for tests that need a real one.

Tests skip, saying why, only when no server answers at CRM_TEST_POSTGRES_URL (default: the local
server with trust auth, ``postgresql://postgres@127.0.0.1:5432/postgres``).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import psycopg2
import pytest

ADMIN_URL = os.environ.get("CRM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def unreachable_reason() -> str | None:
    """Why the test server cannot be used, or None when it answers."""
    try:
        psycopg2.connect(ADMIN_URL, connect_timeout=5).close()
    except psycopg2.OperationalError as error:
        return f"no PostgreSQL server reachable at {ADMIN_URL}: {str(error).strip()}"
    return None


def _admin() -> psycopg2.extensions.connection:
    reason = unreachable_reason()
    if reason:
        pytest.skip(reason)
    con = psycopg2.connect(ADMIN_URL, connect_timeout=5)
    con.autocommit = True
    return con


@contextlib.contextmanager
def fresh_database(prefix: str = "crm_test", password: str | None = None) -> Iterator[str]:
    """Create an empty database, yield its URL, drop it (and its connections) afterwards.

    ``password`` is put into the URL; the local server trusts its clients and ignores it, so
    tests can check that a password given to the project never reaches a log.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = _admin()
    try:
        with admin.cursor() as cur:
            cur.execute(f'create database "{name}"')
        base = ADMIN_URL.rsplit("/", 1)[0]
        if password is not None:
            base = base.replace("://postgres@", f"://postgres:{password}@", 1)
        yield f"{base}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'drop database if exists "{name}" with (force)')
        admin.close()
