"""Load raw contract files into DuckDB ``raw.<table>`` as they are, quarantining bad rows.

One file per table (``<table>.parquet``, ``<table>.csv`` or ``<table>.csv.gz``) is read entirely in
DuckDB. CSV is read with every column as text so nothing is lost before it is checked, and each
row keeps its position in the file (for CSV the line number, for Parquet the 1-based row number)
so an error message can point a person at it. CSV line numbers count one line per record: after a
quoted value spanning several lines they point at the record, not the physical line. Malformed
CSV lines (wrong number of fields, bad quoting, invalid UTF-8, longer than ``MAX_LINE_BYTES``) are
quarantined with their raw text in ``raw_line`` instead of failing the whole file. A header row
that is not UTF-8 text (a Latin-1 or UTF-16 export) fails the file, since no column could be
matched reliably.

Each contract column is ``TRY_CAST`` to its type. A row whose value is present but does not cast,
whose required value is missing, or whose text is unsafe (a spreadsheet formula, a control
character, longer than ``MAX_TEXT_CHARS``; see docs/data-contract.md) goes to quarantine (DuckDB
``quarantine.<table>`` and ``<quarantine_dir>/<table>.parquet``) with a reason; the other rows
replace ``raw.<table>`` in one transaction. Problems that make the whole file unusable (missing,
empty or unreadable file, a header that is not UTF-8, a missing required column, no data rows in
a table that must have some) raise :class:`ContractError` before anything is written, so the
previous ``raw.<table>`` stays as it was.

Values of PII and protected columns are never written into messages: they are masked as
``'***'`` in problems and reasons (the quarantined row itself keeps them, like the source file).
"""

from __future__ import annotations

import gzip
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ml.core.settings import path_within
from ml.core.warehouse import fetch_row, quote_ident, sql_literal, transaction
from ml.data.contract import Column, Table
from ml.data.tombstones import RECORD_COLUMN, Tombstones, drop_erased_rows

RAW_SCHEMA = "raw"
QUARANTINE_SCHEMA = "quarantine"
_SUFFIXES = (".parquet", ".csv", ".csv.gz")
_ROW = "_ingest_row_number"  # internal name of the position column; unlikely in a CRM export
_MASK = "'***'"
_MAX_ROWS_LISTED = 5
_MAX_VALUE_CHARS = 40
# Names the quarantine table uses for its own columns; a file column with one of these names is
# not a contract column, so it is left out of quarantine rather than clashing.
_QUARANTINE_META = ("source_file", "row_number", "reason", "raw_line")
MAX_LINE_BYTES = 16 * 2**20
"""Longest CSV line read (DuckDB's default is 2 MB); a longer line is a malformed line."""
MAX_TEXT_CHARS = 10_000
"""Longest text value accepted; no contract column holds free text, so longer is garbage."""
# C0 control characters except tab, line feed and carriage return, and DEL: no CRM value holds
# them, PostgreSQL cannot store NUL, and C tools cut a string at it (so 'c1\0x' would equal 'c1').
_CONTROL_CHARS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
# Text a spreadsheet would run as a formula when a BI user exports it to CSV (OWASP "CSV
# injection"): a first non-blank character of = @ tab or carriage return, or + / - followed by
# anything but a number or phone number (digits, blanks and ( ) . / + -), so '+49 (0)30 123-4'
# and '-5' are data while '+cmd|...' and '-2+3+cmd|...' are formulas.
_FORMULA = r"(?s)^ *([=@\t\r]|[+-].*[^0-9\s()./+-])"
_UNSAFE = f"{_FORMULA}|{_CONTROL_CHARS}"


class ContractError(ValueError):
    """A source file cannot be used at all: missing, unreadable, or missing a required column.

    The message names the file, the column and the rows where they are known, never a value.
    """


@dataclass(frozen=True)
class IngestResult:
    """What happened when one raw file was loaded.

    Attributes:
        table: Contract table name.
        source_file: The file that was read.
        rows_read: Data rows in the file (including malformed CSV lines).
        rows_loaded: Rows written to ``raw.<table>``.
        rows_quarantined: Rows written to ``quarantine.<table>``.
        rows_erased: Rows of erased persons dropped on load (``ml.data.erasure``).
        problems: Human-readable lines naming file, column, rows and (masked when personal)
            an example value.
    """

    table: str
    source_file: Path
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    problems: tuple[str, ...]
    rows_erased: int = 0


def find_source_file(table: Table, source_dir: Path) -> Path:
    """Return the one file of ``table`` in ``source_dir``.

    Raises:
        ContractError: No file, or more than one candidate (ambiguous).
    """
    candidates = [path_within(source_dir, f"{table.name}{s}") for s in _SUFFIXES]
    found = [p for p in candidates if p.is_file()]
    names = ", ".join(p.name for p in candidates)
    if not found:
        raise ContractError(f"{table.name}: no file {names} in {source_dir}")
    if len(found) > 1:
        raise ContractError(
            f"{table.name}: several files ({', '.join(p.name for p in found)}) in {source_dir}; "
            "keep exactly one"
        )
    return found[0]


@contextmanager
def _temp_names(con: duckdb.DuckDBPyConnection, *prefixes: str) -> Iterator[list[str]]:
    names = [f"_{p}_{uuid.uuid4().hex[:12]}" for p in prefixes]
    try:
        yield names
    finally:
        for name in names:
            con.execute(f"drop table if exists temp.{quote_ident(name)}")


def _check_header_text(path: Path) -> None:
    """Refuse a CSV whose header row is not UTF-8 text.

    DuckDB would quarantine the header as a malformed line and take the first data row as the
    header, so a Latin-1 or UTF-16 export would fail with a confusing list of values as column
    names (or, worse, load under the wrong names).

    Raises:
        ContractError: The first line is not valid UTF-8 or holds NUL bytes (UTF-16).
    """
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as handle:
        first = handle.readline(MAX_LINE_BYTES)
    first = first.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark is fine
    try:
        first.decode("utf-8")
        if b"\x00" not in first:
            return
    except UnicodeDecodeError:
        pass
    if first.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in first:
        looks_like = "it looks like UTF-16"
    else:
        looks_like = "it looks like Latin-1 or Windows-1252"
    raise ContractError(
        f"{path.name}: the header row (line 1) is not UTF-8 text ({looks_like}); "
        "save the export as UTF-8 CSV"
    )


def _read_error(file_name: str, exc: duckdb.Error) -> ContractError:
    """A ContractError for a file DuckDB cannot read, without quoting its content.

    DuckDB's message quotes the offending line ("Original Line: ..."), which may hold personal
    data, so only its summary lines are kept.
    """
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    summary = [
        line
        for i, line in enumerate(lines)
        if (i == 0 or "Maximum line size" in line)
        and not line.startswith(("Original Line", "LINE ", "^"))
    ]
    detail = "; ".join(summary) or type(exc).__name__
    if "Maximum line size" in detail:
        return ContractError(
            f"{file_name}: a line within the first rows is longer than "
            f"{MAX_LINE_BYTES // 2**20} MB, so the file's layout cannot be detected ({detail})"
        )
    return ContractError(f"{file_name}: cannot be read ({detail})")


def _with_position(names: list[str], position: str, offset: int) -> str:
    """Select list of the file's columns plus the 1-based position column ``_ROW``.

    A file column that happens to be named like the position column is kept under another name
    (an ignored extra column) instead of clashing with it.
    """
    columns = [
        f"{quote_ident(n)} as {quote_ident(n + '_1')}" if n.lower() == _ROW else quote_ident(n)
        for n in names
    ]
    return ", ".join([*columns, f"cast({quote_ident(position)} + {offset} as bigint) as {_ROW}"])


def _read_into(
    con: duckdb.DuckDBPyConnection, path: Path, src: str, rejects: str, scans: str
) -> int:
    """Copy the file into temp table ``src`` with a position column; return malformed CSV lines.

    Malformed CSV lines (wrong number of fields, bad quoting, invalid UTF-8, too long) are kept
    in the rejects table instead of failing the whole file.

    Raises:
        ContractError: The file cannot be read at all (not CSV or Parquet, a header that is not
            UTF-8, a line too long to detect the layout).
    """
    file = str(path)
    try:
        if path.name.endswith(".parquet"):
            names = [
                str(r[0]) for r in con.execute("describe from read_parquet(?)", [file]).fetchall()
            ]
            if "file_row_number" in {n.lower() for n in names}:
                # The file has a column of that name; ordinality numbers the rows the same way.
                relation, params = "read_parquet(?) with ordinality", [file]
                described = con.execute(f"describe from {relation}", params).fetchall()
                position, offset = str(described[-1][0]), 0
            else:
                relation = "read_parquet(?, file_row_number = true)"
                params, position, offset = [file], "file_row_number", 1
            con.execute(
                f"create temp table {quote_ident(src)} as "
                f"select {_with_position(names, position, offset)} from {relation}",
                params,
            )
            return 0
        _check_header_text(path)
        options = (
            "header = true, all_varchar = true, ignore_errors = true, "
            f"max_line_size = {MAX_LINE_BYTES}, buffer_size = {2 * MAX_LINE_BYTES}"
        )
        # The reader names the ordinality column 'ordinality', or 'ordinality0' when the file
        # has a column of that name: it is always the last column.
        described = con.execute(
            f"describe from read_csv(?, {options}) with ordinality", [file]
        ).fetchall()
        names, position = [str(r[0]) for r in described[:-1]], str(described[-1][0])
        con.execute(
            f"create temp table {quote_ident(src)} as "
            f"select {_with_position(names, position, 0)} "
            f"from read_csv(?, {options}, store_rejects = true, rejects_table = ?, "
            f"rejects_scan = ?) with ordinality",
            [file, rejects, scans],
        )
    except duckdb.Error as exc:
        raise _read_error(path.name, exc) from exc
    (n_rejected,) = fetch_row(con, f"select count(distinct line) from {quote_ident(rejects)}")
    # Turn the record ordinal into the line number in the file: line 1 is the header, and every
    # rejected line before a record shifts it down by one. The rejects are few, so an ASOF join
    # against their cumulative count is cheap.
    if n_rejected:
        con.execute(
            f"create or replace temp table {quote_ident(src)} as "
            f"with rejected as (select distinct line from {quote_ident(rejects)}), "
            f"shifts as (select line - j - 1 as good_before, j from "
            f"(select line, row_number() over (order by line) as j from rejected)) "
            f"select s.* exclude ({_ROW}), "
            f"cast(s.{_ROW} + 1 + coalesce(shifts.j, 0) as bigint) as {_ROW} "
            f"from {quote_ident(src)} s asof left join shifts on s.{_ROW} > shifts.good_before "
            f"order by {_ROW}"
        )
    else:
        con.execute(f"update {quote_ident(src)} set {_ROW} = {_ROW} + 1")
    return int(n_rejected)


def _typed_expr(column: Column, source: str | None, source_type: str | None) -> str:
    """SQL that casts the file's value to the contract type, null when it does not cast."""
    if source is None:
        return f"cast(null as {column.type})"
    ref = quote_ident(source)
    if source_type == "VARCHAR" and column.type != "VARCHAR":
        # Blank text in a typed column means "no value", not a bad value.
        ref = f"nullif(trim({ref}), '')"
    if source_type == column.type:
        return ref
    if column.type == "VARCHAR":
        return f"cast({ref} as varchar)"
    if column.type == "TIMESTAMP" and source_type in (
        "TIMESTAMP_NS",
        "TIMESTAMP_MS",
        "TIMESTAMP_S",
        "DATE",
    ):
        # Typed Parquet without a time zone: no text to parse and no offset to convert.
        return f"cast({ref} as timestamp)"
    if column.type == "TIMESTAMP":
        # Through TIMESTAMPTZ so a value with an offset ('...+02:00') becomes UTC instead of
        # silently dropping the offset; naive values are taken as UTC (session time zone).
        return f"cast(try_cast({ref} as timestamptz) as timestamp)"
    if column.type in ("INTEGER", "BIGINT"):
        # TRY_CAST would round '4.5' to 5; a fractional value is a bad value, not an integer.
        return (
            f"case when try_cast({ref} as double) = try_cast({ref} as {column.type}) "
            f"then try_cast({ref} as {column.type}) end"
        )
    return f"try_cast({ref} as {column.type})"


def _present_expr(source: str, source_type: str) -> str:
    """SQL that is true when the file holds a value (so a null cast means a bad value)."""
    ref = quote_ident(source)
    if source_type == "VARCHAR":
        return f"nullif(trim({ref}), '') is not null"
    return f"{ref} is not null"


@dataclass(frozen=True)
class _Check:
    column: Column
    kind: str  # a key of _PROBLEM
    predicate: str  # SQL, true for a bad row
    value: str  # SQL of the value to quote in messages (masked when personal)
    detail: str = "''"  # SQL of what to add after the problem, e.g. the offending character


# What each kind of check says: after "<file>, column <c>: <n> rows" in a problem line, and
# after "<c>: <value>" in a quarantine reason ({type} is the contract type).
_PROBLEM = {
    "cast": ("cannot be read as {type}", "cannot be read as {type}"),
    "missing": ("without a value in a required column", "required value missing"),
    "unsafe": (
        "with unsafe text (a spreadsheet formula or a control character)",
        "is unsafe text",
    ),
    "too_long": (
        f"with text longer than {MAX_TEXT_CHARS} characters",
        f"is longer than the {MAX_TEXT_CHARS} allowed",
    ),
}


def _shown(column: Column, ref: str) -> str:
    """SQL of a value as quoted in messages: masked when personal, else short and printable."""
    if column.pii or column.protected:
        return _MASK
    # Control characters are replaced so a value cannot rewrite a terminal or a log line.
    printable = (
        f"regexp_replace(left(cast({ref} as varchar), {_MAX_VALUE_CHARS}), "
        f"{sql_literal(_CONTROL_CHARS)}, '?', 'g')"
    )
    return f"'''' || {printable} || ''''"


def _text_checks(column: Column, ref: str) -> list[_Check]:
    """Checks of a text column whose file value is text: unsafe characters, length."""
    control = f"regexp_extract({ref}, {sql_literal(_CONTROL_CHARS)})"
    first = f"left(ltrim({ref}, ' '), 1)"
    # The offending character is named so the reason says why, even with the value masked.
    first_named = (
        f"case {first} when chr(9) then 'a tab' when chr(13) then 'a carriage return' "
        f"else '''' || {first} || '''' end"
    )
    why = (
        f"case when {control} <> '' "
        f"then ' (control character ' || printf('U+%04X', unicode({control})) || ')' "
        f"else ' (a spreadsheet would run it as a formula: starts with ' || {first_named} || ')' "
        "end"
    )
    return [
        # One regular expression for both rules: it is most of the cost on large tables.
        _Check(
            column,
            "unsafe",
            f"regexp_matches({ref}, {sql_literal(_UNSAFE)})",
            _shown(column, ref),
            why,
        ),
        _Check(
            column,
            "too_long",
            f"length({ref}) > {MAX_TEXT_CHARS}",
            f"'text of ' || length({ref}) || ' characters'",
        ),
    ]


def _checks(table: Table, mapping: dict[str, str], source_types: dict[str, str]) -> list[_Check]:
    checks: list[_Check] = []
    for column in table.columns:
        source = mapping.get(column.name)
        typed = _typed_expr(column, source, source_types.get(source) if source else None)
        if source is not None:
            ref = quote_ident(source)
            if column.type != "VARCHAR":
                present = _present_expr(source, source_types[source])
                checks.append(
                    _Check(column, "cast", f"({present} and {typed} is null)", _shown(column, ref))
                )
            elif source_types[source] == "VARCHAR":
                checks += _text_checks(column, ref)
        if column.required and source is not None:
            # Present-but-unreadable values are reported by the cast check; this one is for
            # absent values (null, or blank text, which no id or category can be).
            missing = (
                f"nullif(trim({typed}), '') is null"
                if column.type == "VARCHAR"
                else f"not ({_present_expr(source, source_types[source])})"
            )
            checks.append(_Check(column, "missing", f"({missing})", "''"))
    return checks


def _reason_expr(checks: list[_Check]) -> str:
    parts = []
    for c in checks:
        said = _PROBLEM[c.kind][1].format(type=c.column.type)
        if c.kind == "missing":
            text = sql_literal(f"{c.column.name}: {said}")
        else:
            text = (
                f"{sql_literal(c.column.name + ': ')} || {c.value} || {sql_literal(' ' + said)} "
                f"|| {c.detail}"
            )
        parts.append(f"case when {c.predicate} then {text} end")
    return f"nullif(concat_ws('; ', {', '.join(parts)}), '')" if parts else "cast(null as varchar)"


def _row_list(rows: list[int], count: int) -> str:
    listed = ", ".join(str(r) for r in rows)
    return listed + (", ..." if count > len(rows) else "")


def _problem_lines(
    con: duckdb.DuckDBPyConnection, src: str, file_name: str, checks: list[_Check]
) -> tuple[list[str], list[_Check]]:
    """Describe each failing check in one line; return the lines and the failing checks."""
    if not checks:
        return [], []
    # One scan over the table gives every column's count and first rows. The example values are
    # read from the first bad row of each failing check only: an aggregate would build the
    # quoted example for every row, which costs more than the checks themselves.
    aggregates = []
    for c in checks:
        aggregates += [
            f"count(*) filter (where {c.predicate})",
            f"list({_ROW} order by {_ROW}) filter (where {c.predicate})[1:{_MAX_ROWS_LISTED}]",
        ]
    row = fetch_row(con, f"select {', '.join(aggregates)} from {quote_ident(src)}")
    lines, failing = [], []
    for i, c in enumerate(checks):
        count, rows = row[2 * i], row[2 * i + 1]
        if not count:
            continue
        failing.append(c)
        where = f"{file_name}, column {c.column.name}: {count} row{'s' if count > 1 else ''}"
        said = _PROBLEM[c.kind][0].format(type=c.column.type)
        shown = ""
        if c.kind != "missing":
            (example,) = fetch_row(
                con,
                f"select {c.value} || {c.detail} from {quote_ident(src)} where {_ROW} = ?",
                [rows[0]],
            )
            shown = f"; e.g. {example}"
        lines.append(f"{where} {said} (rows {_row_list(rows, count)}{shown})")
    return lines, failing


def _write_parquet_atomically(con: duckdb.DuckDBPyConnection, sql: str, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.{uuid.uuid4().hex}.tmp"
    try:
        con.execute(f"copy ({sql}) to ? (format parquet, compression zstd)", [str(tmp)])
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def load_empty_table(
    con: duckdb.DuckDBPyConnection, table: Table, source_dir: Path, quarantine_dir: Path
) -> IngestResult:
    """An optional table without a file: an empty typed table, so downstream models still run."""
    column_defs = ", ".join(f"{quote_ident(c.name)} {c.type}" for c in table.columns)
    quarantine_defs = "source_file varchar, row_number bigint, reason varchar, raw_line varchar"
    with transaction(con):
        con.execute(f"create schema if not exists {RAW_SCHEMA}")
        con.execute(f"create schema if not exists {QUARANTINE_SCHEMA}")
        con.execute(
            f"create or replace table {RAW_SCHEMA}.{quote_ident(table.name)} ({column_defs})"
        )
        con.execute(
            f"create or replace table {QUARANTINE_SCHEMA}.{quote_ident(table.name)} "
            f"({quarantine_defs})"
        )
    _write_parquet_atomically(
        con,
        f"select * from {QUARANTINE_SCHEMA}.{quote_ident(table.name)}",
        path_within(quarantine_dir, f"{table.name}.parquet"),
    )
    return IngestResult(
        table=table.name,
        source_file=source_dir / f"{table.name}.csv",
        rows_read=0,
        rows_loaded=0,
        rows_quarantined=0,
        problems=(f"{table.name}: no file in {source_dir}; optional table loaded empty",),
    )


def _column_mapping(table: Table, file_name: str, names: list[str]) -> dict[str, str]:
    """Contract column -> file column, matching names without regard to case and blanks.

    Raises:
        ContractError: Two file columns match the same contract column (' Email' and 'email'):
            which one holds the data cannot be known.
    """
    by_lower: dict[str, list[str]] = {}
    for name in names:
        by_lower.setdefault(name.strip().lower(), []).append(name)
    mapping = {}
    for column in table.columns:
        found = by_lower.get(column.name, [])
        if len(found) > 1:
            raise ContractError(
                f"{file_name}: columns {', '.join(repr(n) for n in found)} all match contract "
                f"column {column.name}; keep one"
            )
        if found:
            mapping[column.name] = found[0]
    return mapping


def ingest_table(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    source_dir: Path,
    quarantine_dir: Path,
    tombstones: Tombstones | None = None,
) -> IngestResult:
    """Load one contract table's file into ``raw.<table>``; quarantine the rows that break it.

    Args:
        con: Writable DuckDB connection, not inside an open transaction. Its session time zone
            should be UTC (``ml.core.warehouse.connect`` sets it): naive timestamps are read as UTC.
        table: The contract table.
        source_dir: Folder holding ``<table>.parquet``, ``<table>.csv`` or ``<table>.csv.gz``.
        quarantine_dir: Folder for ``<table>.parquet`` with the quarantined rows (rewritten on
            every successful ingest, empty when nothing was quarantined).
        tombstones: Erased records: their rows (and malformed lines naming them) are dropped
            before anything is loaded or quarantined.

    Returns:
        Counts and human-readable problems (bad values, missing optional columns, ignored extra
        columns, malformed lines).

    Raises:
        ContractError: The file is missing, ambiguous, empty, unreadable, has a header that is
            not UTF-8, lacks a required column, has two columns for one contract column, or has
            no data rows while the table must have some. Nothing is written in that case.
    """
    source_dir, quarantine_dir = Path(source_dir), Path(quarantine_dir)
    if table.optional and not any(
        path_within(source_dir, f"{table.name}{s}").is_file() for s in _SUFFIXES
    ):
        return load_empty_table(con, table, source_dir, quarantine_dir)
    path = find_source_file(table, source_dir)
    file_name = path.name
    if path.stat().st_size == 0:
        raise ContractError(f"{file_name}: the file is empty (a header row is required)")
    with _temp_names(con, "src", "rejects", "scans") as (src, rejects, scans):
        n_malformed = _read_into(con, path, src, rejects, scans)

        described = con.execute(f"describe {quote_ident(src)}").fetchall()
        source_types = {str(r[0]): str(r[1]) for r in described if r[0] != _ROW}
        mapping = _column_mapping(table, file_name, list(source_types))

        missing_required = [c.name for c in table.columns if c.required and c.name not in mapping]
        if missing_required:
            raise ContractError(
                f"{file_name}: missing required column(s) {', '.join(missing_required)} "
                f"(file has: {', '.join(source_types) or 'no columns'})"
            )
        (n_rows,) = fetch_row(con, f"select count(*) from {quote_ident(src)}")
        if n_rows + n_malformed == 0 and not table.allows_no_rows:
            # A truncated export must not replace the last good load with nothing.
            raise ContractError(
                f"{file_name}: no data rows (a header only); {table.name} cannot be empty, "
                "so the last good load is kept"
            )
        problems: list[str] = []
        n_erased = 0
        if tombstones is not None:
            n_erased = drop_erased_rows(
                con, quote_ident(src), tombstones, record_column=mapping.get(RECORD_COLUMN)
            )
            if n_malformed:
                drop_erased_rows(con, quote_ident(rejects), tombstones, raw_line_column="csv_line")
                (n_malformed,) = fetch_row(
                    con, f"select count(distinct line) from {quote_ident(rejects)}"
                )
        if n_erased:
            # A count only: which records were erased is not for the logs.
            problems.append(f"{file_name}: {n_erased} rows of erased persons dropped")
        missing_optional = [c.name for c in table.columns if c.name not in mapping]
        if missing_optional:
            problems.append(
                f"{file_name}: optional column(s) {', '.join(missing_optional)} missing; "
                "loaded as empty"
            )
        extra = [n for n in source_types if n not in mapping.values()]
        if extra:
            problems.append(f"{file_name}: extra column(s) {', '.join(extra)} ignored")
        if n_malformed:
            lines, kinds = fetch_row(
                con,
                f"select list(distinct line order by line)[1:{_MAX_ROWS_LISTED}], "
                f"lower(string_agg(distinct error_type, ', ' order by error_type)) "
                f"from {quote_ident(rejects)}",
            )
            problems.append(
                f"{file_name}: {n_malformed} malformed line{'s' if n_malformed > 1 else ''} "
                f"quarantined ({kinds}; lines {_row_list(lines, n_malformed)})"
            )

        checks = _checks(table, mapping, source_types)
        column_problems, failing = _problem_lines(con, src, file_name, checks)
        problems += column_problems
        # Only checks that found something need to run again; a clean file is loaded unfiltered.
        bad = " or ".join(c.predicate for c in failing) or "false"

        types = {c.name: c.type for c in table.columns}
        column_defs = ", ".join(f"{quote_ident(n)} {t}" for n, t in types.items())
        typed_select = ", ".join(
            f"{_typed_expr(c, mapping.get(c.name), source_types.get(mapping.get(c.name, '')))} "
            f"as {quote_ident(c.name)}"
            for c in table.columns
        )
        kept = [n for n in source_types if n not in _QUARANTINE_META]
        original = ", ".join(f"cast({quote_ident(n)} as varchar) as {quote_ident(n)}" for n in kept)
        original_nulls = ", ".join(f"cast(null as varchar) as {quote_ident(n)}" for n in kept)
        raw_table = f"{RAW_SCHEMA}.{quote_ident(table.name)}"
        quarantine_table = f"{QUARANTINE_SCHEMA}.{quote_ident(table.name)}"
        bad_rows_sql = (
            f"select cast($source_file as varchar) as source_file, {_ROW} as row_number, "
            f"{_reason_expr(failing)} as reason, {original}, cast(null as varchar) as raw_line "
            f"from {quote_ident(src)} where {bad}"
        )
        if n_malformed:
            bad_rows_sql += (
                f" union all by name select cast($source_file as varchar) as source_file, "
                f"cast(line as bigint) as row_number, "
                f"'malformed line: ' || lower(string_agg(distinct error_type, ', ')) as reason, "
                f"{original_nulls}, any_value(csv_line) as raw_line "
                f"from {quote_ident(rejects)} group by line"
            )

        with transaction(con):
            con.execute(f"create schema if not exists {RAW_SCHEMA}")
            con.execute(f"create schema if not exists {QUARANTINE_SCHEMA}")
            con.execute(f"create or replace table {raw_table} ({column_defs})")
            con.execute(
                f"insert into {raw_table} select {typed_select} from {quote_ident(src)} "
                f"where not ({bad})"
            )
            con.execute(
                f"create or replace table {quarantine_table} as "
                f"select * from ({bad_rows_sql}) order by row_number",
                {"source_file": file_name},
            )
            counts = fetch_row(
                con,
                f"select (select count(*) from {quote_ident(src)}), "
                f"(select count(*) from {raw_table}), (select count(*) from {quarantine_table})",
            )
        assert counts is not None
        _write_parquet_atomically(
            con,
            f"select * from {quarantine_table}",
            path_within(quarantine_dir, f"{table.name}.parquet"),
        )
    return IngestResult(
        table=table.name,
        source_file=path,
        rows_read=int(counts[0]) + n_malformed + n_erased,
        rows_loaded=int(counts[1]),
        rows_quarantined=int(counts[2]),
        problems=tuple(problems),
        rows_erased=n_erased,
    )
