"""The salt of the keyed hashes that stand in for personal identifiers.

E-mail addresses and phone numbers leave the warehouse's staging layer as salted SHA-256 hashes
(identity resolution matches on the hashes), and erased records are remembered as salted hashes of
their record ids (tombstones). The salt is a secret: it comes from ``CRM_PII_SALT`` when set
(production: a secret store puts it in the environment), else from ``<CRM_HOME>/secrets/pii_salt``,
created on first use with owner-only permissions. It is never written into SQL text, dbt's
compiled files or logs: DuckDB reads it from the session variable ``pii_salt`` that
:func:`set_salt_variable` (and the dbt plugin ``ml.core.dbt_salt_plugin``) bind as a parameter.

Changing the salt changes every hash: identity keys are rebuilt by the next dbt build, but
tombstones written with the old salt no longer match. Rotate it only together with the
tombstones (docs/governance.md).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import duckdb

SALT_VARIABLE = "pii_salt"
SALT_ENVIRONMENT_VARIABLE = "CRM_PII_SALT"
_MIN_SALT_CHARS = 16


def salt_file(home: Path) -> Path:
    """Where the generated salt is kept when ``CRM_PII_SALT`` is not set."""
    return Path(home) / "secrets" / "pii_salt"


def pii_salt(home: Path, configured: str | None = None) -> str:
    """The salt: ``configured`` (from ``CRM_PII_SALT``) if given, else the file under ``home``.

    Args:
        home: The state folder (``CRM_HOME``).
        configured: The salt from the settings, or None.

    Raises:
        ValueError: The configured salt is too short to be a secret.
    """
    if configured is not None:
        if len(configured) < _MIN_SALT_CHARS:
            raise ValueError(
                f"{SALT_ENVIRONMENT_VARIABLE} must hold at least {_MIN_SALT_CHARS} characters"
            )
        return configured
    path = salt_file(home)
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    # O_EXCL: two processes starting at once must not write two different salts.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32))
    return path.read_text().strip()


def set_salt_variable(con: duckdb.DuckDBPyConnection, salt: str) -> None:
    """Make the salt available to SQL on ``con`` as ``getvariable('pii_salt')``."""
    con.execute(f"set variable {SALT_VARIABLE} = ?", [salt])


def keyed_hash_sql(expression: str) -> str:
    """SQL of the salted hash of ``expression`` (null stays null); needs :func:`set_salt_variable`.

    The same expression is the dbt macro ``keyed_hash``: both must agree, or tombstones and
    identity keys stop matching (tests/ml/test_privacy.py checks they do).
    """
    return f"sha256(getvariable('{SALT_VARIABLE}') || {expression})"


# The PostgreSQL setting the dbt macro `pii_salt` reads (dbt_project/macros/dialect.sql).
POSTGRES_SALT_SETTING = "crm.pii_salt"


def postgres_salt_options(salt: str) -> str:
    """The ``PGOPTIONS`` value that sets the PII salt in every PostgreSQL session of a process.

    dbt on PostgreSQL reads the salt with ``current_setting('crm.pii_salt')``, so it never appears
    in compiled SQL. libpq splits PGOPTIONS on white space; a backslash escapes a space or a
    backslash.
    """
    escaped = salt.replace("\\", "\\\\").replace(" ", "\\ ")
    return f"-c {POSTGRES_SALT_SETTING}={escaped}"
