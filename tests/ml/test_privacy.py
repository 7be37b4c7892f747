"""The PII salt: generated once per state folder, owner-only, overridable, bound as a parameter."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import duckdb
import pytest

from ml.core.privacy import keyed_hash_sql, pii_salt, salt_file, set_salt_variable


def test_salt_is_generated_once_and_readable_by_the_owner_only(tmp_path: Path) -> None:
    first = pii_salt(tmp_path)
    assert len(first) == 64
    assert pii_salt(tmp_path) == first
    mode = stat.S_IMODE(salt_file(tmp_path).stat().st_mode)
    assert mode == 0o600
    assert pii_salt(tmp_path / "other") != first


def test_configured_salt_wins_and_must_be_long_enough(tmp_path: Path) -> None:
    assert pii_salt(tmp_path, "a" * 32) == "a" * 32
    assert not salt_file(tmp_path).exists()
    with pytest.raises(ValueError, match="CRM_PII_SALT"):
        pii_salt(tmp_path, "short")


def test_keyed_hash_is_sha256_of_salt_and_value() -> None:
    with duckdb.connect() as con:
        set_salt_variable(con, "s" * 20)
        rows = con.execute(
            f"select {keyed_hash_sql('v')} from (values ('anna@example.com'), (null)) t(v)"
        ).fetchall()
    assert rows[0][0] == hashlib.sha256(("s" * 20 + "anna@example.com").encode()).hexdigest()
    assert rows[1][0] is None
