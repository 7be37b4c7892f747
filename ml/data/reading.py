"""Read a table's export file(s) into DuckDB as they are, and apply its mapping in SQL.

Every contract and flat table is read here, so every file follows the same rules:

* CSV (any delimiter, detected or given; ``.csv``, ``.csv.gz``, ``.tsv``, ``.txt``) is read with
  every column as text, so nothing is lost before it is checked. Malformed lines (wrong number of
  fields, bad quoting, invalid UTF-8, longer than ``MAX_LINE_BYTES``) are kept aside with their
  raw text instead of failing the file. A header that is not UTF-8 (a Latin-1 or UTF-16 export)
  fails the file: no column could be matched reliably.
* Parquet keeps its types.
* Excel (``.xlsx``) is read as text with python-calamine (DuckDB's excel extension would have to
  be downloaded at run time), one sheet.
* A glob in the mapping may match several files: they are one table, each row remembering its
  file and line.

Each row keeps its position: ``ROW`` (unique in the table), ``FILE`` and ``LINE`` (the line in a
CSV or spreadsheet, counting the header as line 1; the 1-based row in Parquet);
``SourceRead.where`` is how messages point at it (``17``, or ``part2.csv:17`` when there are
several files).

:func:`value_expr` then turns a source column into its contract column's text in SQL:
missing-value tokens and sentinels to NULL, value maps, date formats; :func:`generated_id_expr`
numbers rows of an export without an id. The typing, checks and quarantine belong to the loaders (``ml.data.ingest``,
``ml.data.flat_tables``).
"""

from __future__ import annotations

import gzip
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from ml.core.warehouse import fetch_row, quote_ident, sql_literal
from ml.data.mapping import TableMapping, candidate_files

ROW = "_ingest_row_number"  # internal names of the position columns; unlikely in a CRM export
FILE = "_ingest_file"
LINE = "_ingest_line"
POSITION_COLUMNS = (ROW, FILE, LINE)
MAX_LINE_BYTES = 16 * 2**20
"""Longest CSV line read (DuckDB's default is 2 MB); a longer line is a malformed line."""


class ContractError(ValueError):
    """A source file cannot be used at all: missing, unreadable, or missing a required column.

    The message names the file, the column and the rows where they are known, never a value.
    """


@dataclass(frozen=True)
class SourceRead:
    """A table's files, read into temp tables of the connection.

    Attributes:
        files: The files read.
        name: How messages name them: the file name, or the mapping's glob.
        src: Temp table of the rows: the file's columns plus the position columns.
        rejects: Temp table of malformed lines: ``file``, ``line``, ``error_type``, ``csv_line``.
        malformed: Malformed lines set aside.
        source_types: File column -> DuckDB type, in file order.
        positions: Select list of ``ROW``, ``FILE`` and ``LINE`` from ``src``.
        where: SQL of a row's place in messages (``line`` or ``file:line``), valid on ``src``
            and on any table selected with ``positions``.
    """

    files: tuple[Path, ...]
    name: str
    src: str
    rejects: str
    malformed: int
    source_types: dict[str, str]
    positions: str
    where: str

    @property
    def header(self) -> list[str]:
        return list(self.source_types)


@contextmanager
def temp_names(con: duckdb.DuckDBPyConnection, *prefixes: str) -> Iterator[list[str]]:
    """Unique temp table names, dropped again afterwards."""
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


def _read_error(file_name: str, exc: Exception) -> ContractError:
    """A ContractError for a file that cannot be read, without quoting its content.

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
    """Select list of the file's columns plus the 1-based position column ``ROW``.

    A file column that happens to be named like a position column is kept under another name
    (an ignored extra column) instead of clashing with it.
    """
    internal = {c.lower() for c in POSITION_COLUMNS}
    columns = [
        f"{quote_ident(n)} as {quote_ident(n + '_1')}" if n.lower() in internal else quote_ident(n)
        for n in names
    ]
    return ", ".join([*columns, f"cast({quote_ident(position)} + {offset} as bigint) as {ROW}"])


def _read_parquet(con: duckdb.DuckDBPyConnection, path: Path, src: str) -> None:
    file = str(path)
    names = [str(r[0]) for r in con.execute("describe from read_parquet(?)", [file]).fetchall()]
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


def _read_xlsx(con: duckdb.DuckDBPyConnection, path: Path, src: str, sheet: str | None) -> None:
    # calamine reads the whole sheet in Rust; every cell as text, like a CSV, so the checks see
    # what the user typed. Line numbers count the header as line 1, as in the spreadsheet.
    try:
        frame = pd.read_excel(
            path, sheet_name=sheet if sheet is not None else 0, engine="calamine", dtype=str
        )
    except Exception as exc:  # calamine raises its own errors for broken or protected files
        raise _read_error(path.name, exc) from exc
    frame.columns = [str(c) for c in frame.columns]
    frame = frame.astype(object).where(frame.notna(), None)
    frame[ROW] = range(2, len(frame) + 2)
    name = f"_xlsx_{uuid.uuid4().hex[:12]}"
    con.register(name, frame)
    try:
        con.execute(
            f"create temp table {quote_ident(src)} as select "
            + ", ".join(
                f"cast({quote_ident(c)} as varchar) as {quote_ident(c)}" for c in frame.columns[:-1]
            )
            + f", cast({ROW} as bigint) as {ROW} from {quote_ident(name)}"
        )
    finally:
        con.unregister(name)


def _read_csv(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    src: str,
    rejects: str,
    scans: str,
    delimiter: str | None,
) -> int:
    """A CSV into ``src`` (all text) and its malformed lines into ``rejects``; returns them."""
    file = str(path)
    _check_header_text(path)
    options = (
        "header = true, all_varchar = true, ignore_errors = true, "
        f"max_line_size = {MAX_LINE_BYTES}, buffer_size = {2 * MAX_LINE_BYTES}"
    )
    if delimiter is not None:
        options += f", delim = {sql_literal(delimiter)}"
    elif path.name.endswith(".tsv"):
        options += ", delim = '\t'"
    # The reader names the ordinality column 'ordinality', or 'ordinality0' when the file has a
    # column of that name: it is always the last column.
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
            f"select s.* exclude ({ROW}), "
            f"cast(s.{ROW} + 1 + coalesce(shifts.j, 0) as bigint) as {ROW} "
            f"from {quote_ident(src)} s asof left join shifts on s.{ROW} > shifts.good_before "
            f"order by {ROW}"
        )
    else:
        con.execute(f"update {quote_ident(src)} set {ROW} = {ROW} + 1")
    return int(n_rejected)


def _read_one(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    src: str,
    rejects: str,
    mapping: TableMapping,
) -> int:
    """One file into ``src`` with ``ROW`` = its line; malformed CSV lines into ``rejects``."""
    with temp_names(con, "scans") as (scans,):
        try:
            if path.name.endswith(".parquet"):
                _read_parquet(con, path, src)
                malformed = 0
            elif path.name.endswith(".xlsx"):
                _read_xlsx(con, path, src, mapping.sheet)
                malformed = 0
            else:
                malformed = _read_csv(con, path, src, rejects, scans, mapping.delimiter)
        except duckdb.Error as exc:
            raise _read_error(path.name, exc) from exc
    if not con.execute(
        "select 1 from duckdb_tables() where temporary and table_name = ?", [rejects]
    ).fetchall():
        con.execute(
            f"create temp table {quote_ident(rejects)} "
            "(line bigint, error_type varchar, csv_line varchar)"
        )
    return malformed


def find_files(mapping: TableMapping, source_dir: Path) -> list[Path]:
    """The table's files in ``source_dir``.

    Raises:
        ContractError: No file; or, without a glob in the mapping, several candidates.
    """
    found = candidate_files(mapping, source_dir)
    table = mapping.table.name
    if not found:
        expected = mapping.file or f"{table}.csv (or .csv.gz, .tsv, .parquet, .xlsx)"
        raise ContractError(f"{table}: no file {expected} in {source_dir}")
    if mapping.file is None and len(found) > 1:
        raise ContractError(
            f"{table}: several files ({', '.join(p.name for p in found)}) in {source_dir}; "
            "keep exactly one"
        )
    return found


@contextmanager
def read_source(
    con: duckdb.DuckDBPyConnection, files: list[Path], mapping: TableMapping
) -> Iterator[SourceRead]:
    """Read the table's files into temp tables (dropped afterwards).

    Raises:
        ContractError: A file is empty, unreadable or not UTF-8 text; nothing is kept.
    """
    for path in files:
        if path.stat().st_size == 0:
            raise ContractError(f"{path.name}: the file is empty (a header row is required)")
    name = files[0].name if len(files) == 1 else (mapping.file or files[0].name)
    with temp_names(con, "src", "rejects") as (src, rejects):
        malformed = 0
        parts = []
        with temp_names(con, *(f"part{i}" for i in range(len(files)))) as part_names:
            for index, (path, part) in enumerate(zip(files, part_names, strict=True)):
                target = src if len(files) == 1 else part
                part_rejects = rejects if len(files) == 1 else f"{part}_rejects"
                malformed += _read_one(con, path, target, part_rejects, mapping)
                parts.append((index, path, target, part_rejects))
            if len(files) == 1:
                # One file: its name and line are constants of the read, not columns to write
                # for every row (a full rewrite of a 4M-row table otherwise).
                con.execute(
                    f"alter table {quote_ident(rejects)} add column file varchar "
                    f"default {sql_literal(files[0].name)}"
                )
            else:
                unions = " union all by name ".join(
                    f"select *, {sql_literal(path.name)} as {FILE}, {index} as _part, "
                    f"{ROW} as {LINE} from {quote_ident(part)}"
                    for index, path, part, _ in parts
                )
                con.execute(
                    f"create temp table {quote_ident(src)} as select * exclude (_part, {ROW}), "
                    f"row_number() over (order by _part, {LINE}) as {ROW} from ({unions})"
                )
                reject_unions = " union all ".join(
                    f"select line, error_type, csv_line, {sql_literal(path.name)} as file "
                    f"from {quote_ident(part_rejects)}"
                    for _, path, _, part_rejects in parts
                )
                con.execute(f"create temp table {quote_ident(rejects)} as {reject_unions}")
                for _, _, _, part_rejects in parts:
                    con.execute(f"drop table if exists temp.{quote_ident(part_rejects)}")
        if len(files) == 1:
            positions = f"{ROW}, {sql_literal(files[0].name)} as {FILE}, {ROW} as {LINE}"
            where = f"cast({ROW} as varchar)"
        else:
            positions, where = f"{ROW}, {FILE}, {LINE}", f"{FILE} || ':' || {LINE}"
        described = con.execute(f"describe {quote_ident(src)}").fetchall()
        source_types = {str(r[0]): str(r[1]) for r in described if r[0] not in POSITION_COLUMNS}
        yield SourceRead(
            tuple(files), name, src, rejects, malformed, source_types, positions, where
        )


def match_columns(header: list[str], wanted: list[str], file_name: str) -> dict[str, str]:
    """Wanted name -> file column, matching without regard to case and surrounding blanks.

    Raises:
        ContractError: Two file columns match the same wanted name (' Email' and 'email'):
            which one holds the data cannot be known.
    """
    by_lower: dict[str, list[str]] = {}
    for name in header:
        by_lower.setdefault(name.strip().lower(), []).append(name)
    found = {}
    for name in wanted:
        matches = by_lower.get(name.strip().lower(), [])
        if len(matches) > 1:
            raise ContractError(
                f"{file_name}: columns {', '.join(repr(n) for n in matches)} all match contract "
                f"column {name}; keep one"
            )
        if matches:
            found[name] = matches[0]
    return found


def _sql_list(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join(sql_literal(v) for v in values)


def value_expr(
    mapping: TableMapping,
    source: str,
    source_type: str,
    contract_column: str | None,
) -> str:
    """SQL of a source column after the mapping's cleaning, still untyped.

    Missing-value tokens and sentinels become NULL; a contract column's value map and date
    format apply. A value the date format cannot parse stays as it is, so the loader's type
    check quarantines it with the file's text. Without a mapping section the value is untouched.
    """
    ref = quote_ident(source)
    if mapping.is_default:
        return ref  # no section: the file's values as they are, like every raw load
    sentinels = tuple(mapping.sentinels.get(source, {}))
    values = mapping.values.get(contract_column or "", {})
    date_format = mapping.date_formats.get(contract_column or "")
    if source_type != "VARCHAR":
        if not (sentinels or values or date_format):
            return ref
        ref = f"cast({ref} as varchar)"
    # Tokens and maps compare the trimmed text; a value that is kept keeps its blanks, so a
    # message shows what the file holds.
    text = f"trim({ref})"
    nulls = tuple(dict.fromkeys((*mapping.missing_values, *sentinels)))
    expr = f"case when {text} in ({_sql_list(nulls)}) then null else {ref} end"
    if values:
        cases = " ".join(
            f"when {sql_literal(old)} then {sql_literal(new)}" for old, new in values.items()
        )
        expr = f"case trim({expr}) {cases} else {expr} end"
    if date_format:
        expr = (
            f"coalesce(strftime(try_strptime(trim({expr}), {sql_literal(date_format)}), "
            f"'%Y-%m-%d %H:%M:%S'), {expr})"
        )
    return expr


def generated_id_expr(mapping: TableMapping) -> str:
    """The id of a row when the export has none: stable for the same file, not across exports."""
    return f"{sql_literal(mapping.table.name + '-')} || {ROW}"
