"""Where CRM Signals writes to PostgreSQL: the target, its connection, and a password-free URL.

The URL is a secret (it carries the password): it is never logged as it is; messages and logs use
:attr:`PostgresTarget.redacted`. Publishing (``ml.serving.publishing``) and erasure
(``ml.data.erasure``) both connect through :func:`connect_postgres`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import psycopg2.extensions

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresError(RuntimeError):
    """A PostgreSQL step failed; its transaction was rolled back, so readers see no part of it."""


@dataclass(frozen=True)
class PostgresTarget:
    """Where to publish: a libpq URL and a schema.

    Attributes:
        url: ``postgresql://user:password@host:port/dbname`` (a secret: see :meth:`redacted`).
        schema: Schema the tables are published into (lower-case identifier).
    """

    url: str = field(repr=False)
    schema: str = "crm_signals"

    def __post_init__(self) -> None:
        if not _IDENTIFIER.match(self.schema):
            raise ValueError(
                f"PostgreSQL schema {self.schema!r} is not a plain lower-case identifier "
                "(letters, digits, underscore)"
            )

    @property
    def redacted(self) -> str:
        """The URL without its password, for messages and logs."""
        return redact_url(self.url)


def redact_url(url: str) -> str:
    """``url`` with the password replaced by ``***`` (user, host, port and database kept)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@contextlib.contextmanager
def connect_postgres(
    target: PostgresTarget, timeout_s: int = 10
) -> Iterator[psycopg2.extensions.connection]:
    """A connection to the target server, closed afterwards.

    Raises:
        PostgresError: The server cannot be reached; the message names the redacted URL.
    """
    try:
        con = psycopg2.connect(
            target.url, connect_timeout=timeout_s, application_name="crm_signals"
        )
    except psycopg2.OperationalError as error:
        # libpq's message names host and port but never the password.
        raise PostgresError(
            f"cannot connect to PostgreSQL at {target.redacted}: {str(error).strip()}"
        ) from error
    try:
        yield con
    finally:
        con.close()
