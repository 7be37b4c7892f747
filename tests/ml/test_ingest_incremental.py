"""Incremental ingest on real files and a real DuckDB file: the manifest, appends, reloads."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from ml.core.warehouse import connect
from ml.data.contract import RAW_TABLES
from ml.data.ingest import IngestResult, ingest_table
from ml.data.manifest import MANIFEST_TABLE, appended_rows_table, last_load_appended
from ml.data.mapping import TableMapping, load_source_mapping
from ml.data.tombstones import Tombstones

EVENTS = RAW_TABLES["events"]
HEADER = "event_id,customer_record_id,event_type,occurred_at\n"
DAY1 = HEADER + (
    "e1,c1,login,2025-01-01 10:00:00\n"
    "e2,c2,login,not a date\n"  # quarantined: occurred_at does not cast
    "e3,c3,feature_use,2025-01-01 12:00:00\n"
)
DAY2 = HEADER + (
    "e4,c1,email_open,2025-01-02 09:00:00\n"
    "e5,,login,2025-01-02 10:00:00\n"  # quarantined: customer_record_id missing
    "e6,c2,login,2025-01-02 11:00:00\n"
)
SALT = "a-salt-of-sixteen-characters-or-more"


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(tmp_path / "warehouse.duckdb", threads=2, memory_limit="1GB")
    yield connection
    connection.close()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "source"
    (folder / "events").mkdir(parents=True)
    (folder / "events" / "day1.csv").write_text(DAY1)
    return folder


def _mapping(source: Path, extra: str = "") -> TableMapping:
    (source / "mapping.yaml").write_text(f"events:\n  file: events/*.csv\n{extra}")
    return load_source_mapping(source / "mapping.yaml", RAW_TABLES)["events"]


def _load(
    con: duckdb.DuckDBPyConnection,
    source: Path,
    tmp_path: Path,
    mapping: TableMapping | None = None,
    **kwargs: object,
) -> IngestResult:
    return ingest_table(
        con,
        EVENTS,
        source,
        tmp_path / "quarantine",
        mapping=mapping or _mapping(source),
        **kwargs,  # type: ignore[arg-type]
    )


def _raw(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute("select * from raw.events order by all").fetchall()


def _quarantined(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        "select source_file, row_number from quarantine.events order by all"
    ).fetchall()


def _manifest(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute(
        f"select file, size, sha256, rows_loaded, rows_quarantined from {MANIFEST_TABLE} "
        "where table_name = 'events' order by file"
    ).fetchall()


def _full_load(tmp_path: Path, source: Path) -> tuple[list[tuple], list[tuple]]:
    """raw and quarantine rows of a fresh warehouse loaded from the same folder."""
    with connect(tmp_path / "fresh.duckdb", threads=2, memory_limit="1GB") as fresh:
        ingest_table(fresh, EVENTS, source, tmp_path / "fresh_q", mapping=_mapping(source))
        return _raw(fresh), _quarantined(fresh)


def _plant(con: duckdb.DuckDBPyConnection) -> None:
    """A row no file holds: it survives a load that reads nothing and vanishes in a reload."""
    con.execute("insert into raw.events values ('planted', 'c9', 'login', '2025-01-01')")


def test_a_new_file_is_appended_alone_and_the_manifest_lists_both(
    con: duckdb.DuckDBPyConnection, source: Path, tmp_path: Path
) -> None:
    first = _load(con, source, tmp_path)
    assert (first.mode, first.rows_read, first.rows_loaded, first.rows_quarantined) == (
        "full",
        3,
        2,
        1,
    )
    _plant(con)
    (source / "events" / "day2.csv").write_text(DAY2)

    second = _load(con, source, tmp_path)

    assert (second.mode, second.files_read, second.files_skipped) == ("append", 1, 1)
    assert second.rows_read == 3  # day2 only
    # the appended rows apart, for the raw checks: day2's loaded rows, nothing older
    appended = con.execute(f"select event_id from {appended_rows_table('events')} order by 1")
    assert appended.fetchall() == [("e4",), ("e6",)]
    assert ("planted", "c9", "login", pd.Timestamp("2025-01-01")) in _raw(con)  # no reload
    keys = [r[0] for r in _raw(con)]
    assert keys == ["e1", "e3", "e4", "e6", "planted"]
    assert _quarantined(con) == [("day1.csv", 3), ("day2.csv", 3)]
    parquet = pd.read_parquet(tmp_path / "quarantine" / "events.parquet")
    assert sorted(parquet["source_file"]) == ["day1.csv", "day2.csv"]
    manifest = _manifest(con)
    assert [(f, rows, q) for f, _, _, rows, q in manifest] == [
        ("events/day1.csv", 2, 1),
        ("events/day2.csv", 2, 1),
    ]
    for file, size, sha, _, _ in manifest:
        data = (source / file).read_bytes()
        assert (size, sha) == (len(data), hashlib.sha256(data).hexdigest())
    con.execute("delete from raw.events where event_id = 'planted'")
    assert (_raw(con), _quarantined(con)) == _full_load(tmp_path, source)


def test_an_unchanged_folder_reads_nothing_even_when_touched(
    con: duckdb.DuckDBPyConnection, source: Path, tmp_path: Path
) -> None:
    _load(con, source, tmp_path)
    (source / "events" / "day2.csv").write_text(DAY2)
    _load(con, source, tmp_path)
    _plant(con)
    before = _raw(con)
    loaded_at = con.execute(
        f"select list(loaded_at order by file) from {MANIFEST_TABLE}"
    ).fetchall()
    # A new modification time alone (a copy, a touch) is not a change: the hash decides.
    for path in (source / "events").iterdir():
        os.utime(path, (1_900_000_000, 1_900_000_000))

    again = _load(con, source, tmp_path)

    assert (again.mode, again.rows_read, again.files_read, again.files_skipped) == (
        "unchanged",
        0,
        0,
        2,
    )
    assert again.rows_loaded == len(before) and again.rows_quarantined == 2
    assert _raw(con) == before
    assert (
        con.execute(f"select list(loaded_at order by file) from {MANIFEST_TABLE}").fetchall()
        == loaded_at
    )


@pytest.mark.parametrize(
    ("change", "said"),
    [
        # Same size, other content: only the hash can tell.
        ("edited", "changed since loaded: events/day1.csv"),
        ("removed", "no longer in the folder: events/day1.csv"),
    ],
)
def test_a_changed_or_vanished_file_reloads_the_table_whole(
    con: duckdb.DuckDBPyConnection, source: Path, tmp_path: Path, change: str, said: str
) -> None:
    _load(con, source, tmp_path)
    (source / "events" / "day2.csv").write_text(DAY2)
    _load(con, source, tmp_path)
    assert last_load_appended(con, "events")
    _plant(con)
    day1 = source / "events" / "day1.csv"
    if change == "edited":
        edited = DAY1.replace("e3,c3,feature_use", "e3,c7,feature_use")
        assert len(edited) == len(DAY1)
        day1.write_text(edited)
    else:
        day1.unlink()

    result = _load(con, source, tmp_path)

    assert result.mode == "full" and result.files_read == (2 if change == "edited" else 1)
    assert f"events: reloaded whole ({said})" in result.problems
    assert not last_load_appended(con, "events")  # every row is new: the checks read them all
    assert "planted" not in [r[0] for r in _raw(con)]
    assert (_raw(con), _quarantined(con)) == _full_load(tmp_path, source)
    assert [r[0] for r in _manifest(con)] == (
        ["events/day1.csv", "events/day2.csv"] if change == "edited" else ["events/day2.csv"]
    )
    if change == "edited":
        assert ("e3", "c7") in [r[:2] for r in _raw(con)]


def test_a_key_loaded_before_repeating_in_a_new_file_is_reported_and_left_to_staging(
    con: duckdb.DuckDBPyConnection, source: Path, tmp_path: Path
) -> None:
    _load(con, source, tmp_path)
    # e1 again (a correction of its time) and e3 again as an exact copy.
    (source / "events" / "day2.csv").write_text(
        HEADER + "e1,c1,login,2025-01-01 10:05:00\ne7,c2,login,2025-01-02\n"
        "e3,c3,feature_use,2025-01-01 12:00:00\n"
    )

    result = _load(con, source, tmp_path)

    assert result.mode == "append"
    repeated = [p for p in result.problems if "repeat a key already loaded" in p]
    assert repeated == [
        # Only the new file was read, so its lines are named as in a one-file load.
        "day2.csv, column event_id: 2 rows repeat a key already loaded from an earlier "
        "file (rows 2, 4); loaded like duplicates within a file: staging "
        "keeps one row per key and lists the others in int_rejected_rows (duplicate_key, "
        "exact_duplicate)"
    ]
    # The rows dbt sees are those of a full load of the folder: it keeps one per key.
    assert [r[0] for r in _raw(con)] == ["e1", "e1", "e3", "e3", "e7"]
    assert (_raw(con), _quarantined(con)) == _full_load(tmp_path, source)


def test_rows_of_erased_persons_in_a_new_file_are_dropped(
    con: duckdb.DuckDBPyConnection, source: Path, tmp_path: Path
) -> None:
    tombstones = Tombstones(SALT, frozenset({hashlib.sha256(f"{SALT}c2".encode()).hexdigest()}))
    _load(con, source, tmp_path, tombstones=tombstones)
    (source / "events" / "day2.csv").write_text(DAY2)

    result = _load(con, source, tmp_path, tombstones=tombstones)

    assert result.mode == "append" and result.rows_erased == 1
    assert "c2" not in {r[1] for r in _raw(con)}
    assert [r[0] for r in _raw(con)] == ["e1", "e3", "e4"]


def test_full_refresh_and_a_changed_mapping_reload_every_file(
    con: duckdb.DuckDBPyConnection, source: Path, tmp_path: Path
) -> None:
    _load(con, source, tmp_path)
    (source / "events" / "day2.csv").write_text(DAY2)
    _load(con, source, tmp_path)
    _plant(con)

    refreshed = _load(con, source, tmp_path, full_refresh=True)

    assert (refreshed.mode, refreshed.files_read, refreshed.rows_read) == ("full", 2, 6)
    assert "events: reloaded whole (full refresh asked for)" in refreshed.problems
    assert "planted" not in [r[0] for r in _raw(con)]
    assert len(_manifest(con)) == 2
    _plant(con)

    remapped = _load(con, source, tmp_path, mapping=_mapping(source, '  missing_values: ["n/a"]\n'))

    assert remapped.mode == "full"
    assert "events: reloaded whole (the mapping or the ingest rules changed)" in remapped.problems
    assert "planted" not in [r[0] for r in _raw(con)]


def test_a_table_loaded_before_the_manifest_existed_is_reloaded_once(
    con: duckdb.DuckDBPyConnection, source: Path, tmp_path: Path
) -> None:
    _load(con, source, tmp_path)
    con.execute(f"drop table {MANIFEST_TABLE}")
    _plant(con)

    assert _load(con, source, tmp_path).mode == "full"
    assert "planted" not in [r[0] for r in _raw(con)]
    assert _load(con, source, tmp_path).mode == "unchanged"


def test_a_new_file_with_another_column_appends_its_bad_rows_with_that_column(
    con: duckdb.DuckDBPyConnection, source: Path, tmp_path: Path
) -> None:
    _load(con, source, tmp_path)
    # A new column, and a known one spelt in another case (still the same column).
    (source / "events" / "day2.csv").write_text(
        "event_id,customer_record_id,event_type,Occurred_At,channel\n"
        "e4,c1,login,2025-01-02,web\n"
        "e5,c2,login,yesterday,app\n"
    )

    result = _load(con, source, tmp_path)

    assert result.mode == "append"
    assert "day2.csv: extra column(s) channel ignored" in result.problems
    rows = con.execute(
        "select source_file, row_number, occurred_at, channel from quarantine.events order by all"
    ).fetchall()
    assert rows == [("day1.csv", 3, "not a date", None), ("day2.csv", 3, "yesterday", "app")]
