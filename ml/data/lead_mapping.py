"""Plug a CRM lead export into the ``leads`` contract with a YAML column mapping.

A real export (HubSpot, Salesforce, a spreadsheet) names its columns its own way and carries many
custom properties. The mapping says which source column is which contract column; every other
column the mapping does not drop becomes a typed attribute ``attr_<snake_case_name>`` (numeric ->
DOUBLE, yes/no -> BOOLEAN, else VARCHAR), so the model can use all of them. Example::

    columns:
      Prospect ID: lead_id
      Lead Source: source
    converted: {column: Converted, true_values: [1], false_values: [0]}
    missing_values: ["Select", ""]
    drop:
      Tags: filled in by sales after the first contact (leakage)
    pii: [Email]
    protected: [Gender]

``pii`` columns are never read into any table, message or model. ``protected`` columns are loaded
as ``protected_<name>`` (for fairness audits) and are never model features, which only take
contract columns and ``attr_*``. As a safety net, an unmapped column whose name looks personal
(``Email``, ``Phone``, ``First Name``...) or protected (``Gender``, ``Age``...), or whose values look
like e-mail addresses, must be declared (``pii``, ``protected``, ``drop``) or explicitly cleared in
``not_personal``; otherwise loading stops.

:func:`load_leads` reads the export in DuckDB, applies the missing-value tokens, renames and casts
the contract columns and writes ``raw.leads``. Rows that break the contract (missing or duplicate
``lead_id``, a value that does not cast, a negative count, a date in the future, a conversion
before creation, an unknown outcome value) go to ``quarantine.leads`` and
``<quarantine_dir>/leads.parquet`` with a reason, like ``ml.data.ingest``. Bad mappings raise
:class:`MappingError`, naming the mapping file, the column and what is wrong.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import yaml

from ml.core.warehouse import fetch_row, quote_ident, sql_literal, transaction
from ml.data.contract import LEADS_TABLE, Column

# The reading, casting and atomic-write rules are ml.data.ingest's, so a lead export is read exactly like
# every other raw file (line numbers, malformed lines, offsets in timestamps, no rounded integers).
from ml.data.ingest import (
    _ROW,
    QUARANTINE_SCHEMA,
    RAW_SCHEMA,
    ContractError,
    _read_into,
    _row_list,
    _temp_names,
    _typed_expr,
    _write_parquet_atomically,
)

TABLE = LEADS_TABLE.name

# Contract columns of raw.leads (name -> DuckDB type), in table order.
LEAD_COLUMNS: dict[str, str] = {c.name: c.type for c in LEADS_TABLE.columns}
_CONTRACT: dict[str, Column] = {c.name: c for c in LEADS_TABLE.columns}
OUTCOME_COLUMNS: tuple[str, ...] = ("converted_at", "converted")
NON_NEGATIVE_COLUMNS: tuple[str, ...] = (
    "email_opens",
    "page_views",
    "website_visits",
    "time_on_site_minutes",
)
ATTRIBUTE_PREFIX = "attr_"
PROTECTED_PREFIX = "protected_"
DEFAULT_TRUE_VALUES: tuple[str, ...] = ("1", "true", "yes", "y", "t")
DEFAULT_FALSE_VALUES: tuple[str, ...] = ("0", "false", "no", "n", "f")
_YES_NO = ("yes", "no", "true", "false", "y", "n")
_MAPPING_KEYS = frozenset(
    {"columns", "converted", "missing_values", "drop", "pii", "protected", "not_personal"}
)
_PERSONAL_NAME = re.compile(
    r"((personal|work|business|home|private|primary|secondary|contact|other)_)?"
    r"(e_?mail(_address)?|phone(_number)?|mobile(_phone)?(_number)?|telephone|fax"
    r"|(first|last|full|middle|given|family|sur)_?name|name|street(_address)?"
    r"|(postal_|home_|mailing_)?address|ip_address|date_of_birth|birth_?date|birthday)"
)
_PROTECTED_NAME = re.compile(
    r"gender|sex|age|age_(range|group|band)|birth_year|year_of_birth|race|ethnicity"
    r"|ethnic_origin|religion|nationality|disability|marital_status|sexual_orientation"
)
_MAX_VALUE_CHARS = 40


class MappingError(ValueError):
    """A lead mapping cannot be used: bad YAML, an unknown or missing column, a clash."""


@dataclass(frozen=True)
class ConvertedFlag:
    """How a 0/1 (or yes/no) outcome column of the export reads as ``converted``.

    Attributes:
        column: Source column.
        true_values: Values meaning converted (compared case-insensitively, trimmed).
        false_values: Values meaning not converted. Empty: every other non-missing value is
            false. Otherwise a value in neither list quarantines the row.
    """

    column: str
    true_values: tuple[str, ...] = DEFAULT_TRUE_VALUES
    false_values: tuple[str, ...] = ()


@dataclass(frozen=True)
class LeadMapping:
    """A parsed, self-consistent lead column mapping (not yet checked against a file).

    Attributes:
        path: The YAML file (named in every error).
        columns: Source column -> contract column.
        converted: The outcome flag, when the export has a 0/1 outcome instead of a date.
        missing_values: Text meaning "no value" (besides blanks), e.g. ``"Select"``.
        drop: Source columns not to use -> why.
        pii: Personal-data source columns; never read.
        protected: Protected-attribute source columns; loaded as ``protected_*``, never features.
        not_personal: Columns whose name looks personal or protected but are not.
    """

    path: Path
    columns: dict[str, str]
    converted: ConvertedFlag | None = None
    missing_values: tuple[str, ...] = ("",)
    drop: dict[str, str] = field(default_factory=dict)
    pii: tuple[str, ...] = ()
    protected: tuple[str, ...] = ()
    not_personal: tuple[str, ...] = ()

    @property
    def named_columns(self) -> tuple[str, ...]:
        """Every source column the mapping names, in mapping order."""
        flag = (self.converted.column,) if self.converted else ()
        return (
            *self.columns,
            *flag,
            *self.drop,
            *self.pii,
            *self.protected,
            *self.not_personal,
        )

    def error(self, column: str | None, problem: str) -> MappingError:
        """A :class:`MappingError` naming this mapping file and the column."""
        where = f"{self.path}: column {column!r}: " if column else f"{self.path}: "
        return MappingError(where + problem)


@dataclass(frozen=True)
class LeadLoadResult:
    """What happened when a lead export was loaded.

    Attributes:
        source_file: The export that was read.
        rows_read: Data rows in the file (including malformed CSV lines).
        rows_loaded: Rows written to ``raw.leads``.
        rows_quarantined: Rows written to ``quarantine.leads``.
        problems: Human-readable lines naming file, column, rows and an example value.
        attributes: ``attr_*`` column -> inferred type, in file order.
        protected: ``protected_*`` columns loaded.
        dropped: Source columns not loaded (``drop`` and ``pii``).
    """

    source_file: Path
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    problems: tuple[str, ...]
    attributes: dict[str, str]
    protected: tuple[str, ...]
    dropped: tuple[str, ...]


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key listed twice (PyYAML would silently keep the last one)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise MappingError(
                f"column {key!r}: listed twice (line {key_node.start_mark.line + 1})"
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_unique_mapping,  # type: ignore[arg-type]
)


def snake_case(name: str) -> str:
    """``"Time on Site (min)"`` -> ``"time_on_site_min"``."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


def _text_list(path: Path, key: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise MappingError(f"{path}: {key} must be a list, got {type(value).__name__}")
    # YAML reads 1 and yes as numbers/booleans; the file holds text, so compare as text.
    return tuple(
        ("true" if v else "false") if isinstance(v, bool) else str(v).strip() for v in value
    )


def _close(name: str, candidates: list[str] | tuple[str, ...]) -> str:
    by_lower = {c.lower(): c for c in candidates}
    matches = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.6)
    return ", ".join(repr(by_lower[m]) for m in matches) or "none"


def load_mapping(path: Path) -> LeadMapping:
    """Read and check a lead mapping YAML file (the file's columns are checked at load).

    Args:
        path: The YAML file.

    Returns:
        The mapping.

    Raises:
        MappingError: The YAML is unreadable or not a mapping, a key is unknown, a contract
            column is unknown or mapped twice, a source column is listed twice, ``lead_id`` or an
            outcome (``converted_at`` or ``converted``) is unmapped, or a ``drop`` entry has no
            reason. The message names the file and the column.
    """
    path = Path(path)
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # a SafeLoader
    except MappingError as exc:
        raise MappingError(f"{path}: {exc}") from exc
    except (OSError, yaml.YAMLError) as exc:
        raise MappingError(f"{path}: cannot read the mapping ({exc})") from exc
    if not isinstance(data, dict):
        raise MappingError(f"{path}: expected a YAML mapping with a 'columns' section")
    unknown_keys = sorted(set(data) - _MAPPING_KEYS)
    if unknown_keys:
        raise MappingError(
            f"{path}: unknown section(s) {unknown_keys}; expected {sorted(_MAPPING_KEYS)}"
        )
    columns = data.get("columns") or {}
    if not isinstance(columns, dict):
        raise MappingError(f"{path}: 'columns' must map source column -> contract column")
    columns = {str(k): str(v).strip() for k, v in columns.items()}

    converted = None
    flag = data.get("converted")
    if flag is not None:
        if not isinstance(flag, dict) or "column" not in flag:
            raise MappingError(
                f"{path}: 'converted' must be {{column: <source column>, true_values: [...]}}"
            )
        true_values = _text_list(path, "converted.true_values", flag.get("true_values"))
        converted = ConvertedFlag(
            column=str(flag["column"]),
            true_values=tuple(v.lower() for v in true_values) or DEFAULT_TRUE_VALUES,
            false_values=tuple(
                v.lower()
                for v in _text_list(path, "converted.false_values", flag.get("false_values"))
            ),
        )

    drop = data.get("drop") or {}
    if not isinstance(drop, dict):
        raise MappingError(
            f"{path}: 'drop' must map each source column to the reason it is dropped"
        )
    mapping = LeadMapping(
        path=path,
        columns=columns,
        converted=converted,
        missing_values=tuple(
            dict.fromkeys(("", *_text_list(path, "missing_values", data.get("missing_values"))))
        ),
        drop={str(k): ("" if v is None else str(v).strip()) for k, v in drop.items()},
        pii=_text_list(path, "pii", data.get("pii")),
        protected=_text_list(path, "protected", data.get("protected")),
        not_personal=_text_list(path, "not_personal", data.get("not_personal")),
    )
    _check_mapping(mapping)
    return mapping


def _check_mapping(mapping: LeadMapping) -> None:
    for source, target in mapping.columns.items():
        if target not in LEAD_COLUMNS:
            raise mapping.error(
                source,
                f"maps to unknown contract column {target!r} (close matches: "
                f"{_close(target, tuple(LEAD_COLUMNS))}; contract columns: "
                f"{', '.join(LEAD_COLUMNS)}). Unmapped columns become attributes by themselves.",
            )
    targets = list(mapping.columns.values())
    for target in dict.fromkeys(targets):
        sources = [s for s, t in mapping.columns.items() if t == target]
        if len(sources) > 1:
            raise mapping.error(
                sources[1], f"contract column {target!r} is mapped twice (also from {sources[0]!r})"
            )
    if mapping.converted and "converted" in targets:
        raise mapping.error(mapping.converted.column, "'converted' is mapped twice")
    if "lead_id" not in targets:
        raise mapping.error(None, "required contract column 'lead_id' is not mapped")
    outcomes = [t for t in OUTCOME_COLUMNS if t in targets] + (
        ["converted"] if mapping.converted else []
    )
    if not outcomes:
        raise mapping.error(
            None,
            "no outcome mapped: map a conversion date to 'converted_at' or give "
            "'converted: {column: ..., true_values: [...]}'",
        )
    if len(outcomes) > 1:
        raise mapping.error(
            None,
            "map one outcome, not both 'converted_at' and 'converted' (converted is derived "
            "from converted_at when that is mapped)",
        )
    for name, reason in mapping.drop.items():
        if not reason:
            raise mapping.error(name, "dropped without a reason: write why next to it")
    counts: dict[str, int] = {}
    for name in mapping.named_columns:
        counts[name] = counts.get(name, 0) + 1
    twice = [n for n, c in counts.items() if c > 1]
    if twice:
        raise mapping.error(
            twice[0], "listed in more than one place (columns, converted, drop, pii, protected)"
        )


def _sql_list(values: tuple[str, ...]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


@dataclass(frozen=True)
class _Plan:
    """Which file column becomes which table column."""

    contract: dict[str, str]  # contract column -> clean column (c_<i>)
    attributes: dict[str, str]  # attr_/protected_ column -> clean column
    sources: dict[str, str]  # clean column -> source column
    kept_sources: tuple[str, ...]  # source columns shown in quarantine (never pii)


def _check_against_file(mapping: LeadMapping, file_name: str, header: list[str]) -> None:
    present = set(header)
    for name in mapping.named_columns:
        if name not in present:
            raise mapping.error(name, f"not in {file_name} (close matches: {_close(name, header)})")


def _plan(mapping: LeadMapping, file_name: str, header: list[str]) -> _Plan:
    _check_against_file(mapping, file_name, header)
    # Clean columns get positional names so any source name (quotes, clashes) is safe in SQL.
    clean = {name: f"c_{i}" for i, name in enumerate(header)}
    contract = {target: clean[source] for source, target in mapping.columns.items()}
    if mapping.converted:
        contract["converted"] = clean[mapping.converted.column]
    skipped = set(mapping.columns) | set(mapping.drop) | set(mapping.pii)
    if mapping.converted:
        skipped.add(mapping.converted.column)
    attributes: dict[str, str] = {}
    origin: dict[str, str] = {}
    for name in header:
        if name in skipped:
            continue
        prefix = PROTECTED_PREFIX if name in mapping.protected else ATTRIBUTE_PREFIX
        snake = snake_case(name) or f"column_{header.index(name) + 1}"
        target = prefix + snake
        if target in attributes:
            raise mapping.error(
                name,
                f"becomes {target!r}, like {origin[target]!r}: drop or rename one of them",
            )
        attributes[target] = clean[name]
        origin[target] = name
    sources = {c: n for n, c in clean.items()}
    kept = tuple(n for n in header if n not in set(mapping.pii) | set(mapping.drop))
    return _Plan(contract, attributes, sources, kept)


def _check_personal(
    con: duckdb.DuckDBPyConnection, src: str, mapping: LeadMapping, plan: _Plan
) -> None:
    """Stop when an undeclared attribute looks like personal data or a protected attribute."""
    cleared = set(mapping.not_personal) | set(mapping.protected)
    candidates = [
        (target, plan.sources[c])
        for target, c in plan.attributes.items()
        if plan.sources[c] not in cleared
    ]
    for _, name in candidates:
        snake = snake_case(name)
        if _PERSONAL_NAME.fullmatch(snake):
            raise mapping.error(
                name,
                "looks like personal data: list it under 'pii' (never read) or, if it is not "
                "personal, under 'not_personal'",
            )
        if _PROTECTED_NAME.fullmatch(snake):
            raise mapping.error(
                name,
                "looks like a protected attribute: list it under 'protected' (kept for fairness "
                "audits, never a feature), 'drop', or 'not_personal'",
            )
    if not candidates:
        return
    # An e-mail address in a free-text column is personal data whatever the column is called.
    aggregates = ", ".join(
        f"count(*) filter (where regexp_matches(cast({quote_ident(name)} as varchar), "
        f"'[^@\\s]+@[^@\\s]+\\.[a-zA-Z]{{2,}}'))"
        for _, name in candidates
    )
    counts = fetch_row(con, f"select {aggregates} from {quote_ident(src)}")
    for (_, name), count in zip(candidates, counts, strict=True):
        if count:
            raise mapping.error(
                name,
                f"holds e-mail addresses ({count} rows): list it under 'pii' (never read) or "
                "'drop'",
            )


def _clean_expr(name: str, source_type: str, tokens: tuple[str, ...]) -> str:
    ref = quote_ident(name)
    if source_type != "VARCHAR":
        return ref
    # Missing-value tokens and blanks become NULL before anything is typed or counted.
    return f"case when trim({ref}) in ({_sql_list(tokens)}) then null else trim({ref}) end"


def _attribute_types(
    con: duckdb.DuckDBPyConnection, clean: str, plan: _Plan, clean_types: dict[str, str]
) -> dict[str, str]:
    """Infer each attribute's type in one scan: numeric -> DOUBLE, yes/no -> BOOLEAN, else text."""
    text = [t for t, c in plan.attributes.items() if clean_types[c] == "VARCHAR"]
    inferred: dict[str, str] = {}
    for target, c in plan.attributes.items():
        kind = clean_types[c]
        if kind == "BOOLEAN":
            inferred[target] = "BOOLEAN"
        elif kind in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT", "DOUBLE") or (
            kind.startswith("DECIMAL")
        ):
            inferred[target] = "DOUBLE"
        else:
            inferred[target] = "VARCHAR"
    if text:
        aggregates = []
        for target in text:
            ref = quote_ident(plan.attributes[target])
            aggregates += [
                f"count({ref})",
                f"count(try_cast({ref} as double))",
                f"count(*) filter (where lower({ref}) in ({_sql_list(_YES_NO)}))",
            ]
        row = fetch_row(con, f"select {', '.join(aggregates)} from {quote_ident(clean)}")
        for i, target in enumerate(text):
            present, numeric, yes_no = row[3 * i : 3 * i + 3]
            if present and numeric == present:
                inferred[target] = "DOUBLE"
            elif present and yes_no == present:
                inferred[target] = "BOOLEAN"
    return inferred


def _attribute_expr(clean_column: str, clean_type: str, target_type: str) -> str:
    ref = quote_ident(clean_column)
    if target_type == "DOUBLE":
        return f"try_cast({ref} as double)"
    if target_type == "BOOLEAN":
        if clean_type == "BOOLEAN":
            return ref
        return f"lower({ref}) in ('yes', 'true', 'y')"
    return f"cast({ref} as varchar)"


@dataclass(frozen=True)
class _Check:
    column: str
    predicate: str  # SQL, true for a bad row
    reason: str  # SQL text expression
    summary: str  # what is wrong, for the problem line
    example: str  # SQL of the value quoted in the problem line


def _shown(ref: str) -> str:
    return f"'''' || left(cast({ref} as varchar), {_MAX_VALUE_CHARS}) || ''''"


def _contract_expr(
    name: str, clean_column: str | None, clean_type: str | None, mapping: LeadMapping
) -> str:
    if LEAD_COLUMNS[name] != "BOOLEAN":
        return _typed_expr(_CONTRACT[name], clean_column, clean_type)
    if clean_column is None:
        return "cast(null as boolean)"
    ref = quote_ident(clean_column)
    if clean_type == "BOOLEAN":
        return ref
    flag = mapping.converted or ConvertedFlag(column="", false_values=DEFAULT_FALSE_VALUES)
    value = f"lower(cast({ref} as varchar))"
    false_when = (
        f"{value} in ({_sql_list(flag.false_values)})"
        if flag.false_values
        else f"{ref} is not null"
    )
    return f"case when {value} in ({_sql_list(flag.true_values)}) then true when {false_when} then false end"


def _checks(
    plan: _Plan, typed: dict[str, str], clean_types: dict[str, str], now: datetime
) -> list[_Check]:
    checks = [
        _Check(
            "lead_id",
            "lead_id is null",
            "'lead_id: required value missing'",
            "without a lead_id",
            "''",
        ),
        _Check(
            "lead_id",
            f"(lead_id is not null and _first_row < {_ROW})",
            "'lead_id: ' || " + _shown("lead_id") + " || ' repeats row ' || _first_row",
            "repeating the lead_id of an earlier row (the first is kept)",
            _shown("lead_id"),
        ),
    ]
    for name, c in plan.contract.items():
        ref = quote_ident(c)
        if LEAD_COLUMNS[name] != "VARCHAR" and clean_types[c] != LEAD_COLUMNS[name]:
            checks.append(
                _Check(
                    name,
                    f"({ref} is not null and {typed[name]} is null)",
                    f"'{name}: ' || {_shown(ref)} || ' cannot be read as {LEAD_COLUMNS[name]}'",
                    f"cannot be read as {LEAD_COLUMNS[name]}",
                    _shown(ref),
                )
            )
        if name in NON_NEGATIVE_COLUMNS:
            checks.append(
                _Check(
                    name,
                    f"coalesce({typed[name]} < 0, false)",
                    f"'{name}: ' || {_shown(ref)} || ' is negative'",
                    "with a negative value",
                    _shown(ref),
                )
            )
    stamp = f"timestamp '{now.strftime('%Y-%m-%d %H:%M:%S')}'"
    for name in ("created_at", "converted_at"):
        if name in plan.contract:
            ref = quote_ident(plan.contract[name])
            checks.append(
                _Check(
                    name,
                    f"coalesce({typed[name]} > {stamp}, false)",
                    f"'{name}: ' || {_shown(ref)} || ' is in the future'",
                    "dated in the future",
                    _shown(ref),
                )
            )
    if "created_at" in plan.contract and "converted_at" in plan.contract:
        ref = quote_ident(plan.contract["converted_at"])
        checks.append(
            _Check(
                "converted_at",
                f"coalesce({typed['converted_at']} < {typed['created_at']}, false)",
                f"'converted_at: ' || {_shown(ref)} || ' is before created_at'",
                "converted before created_at",
                _shown(ref),
            )
        )
    return checks


def _problem_lines(
    con: duckdb.DuckDBPyConnection, table: str, file_name: str, checks: list[_Check]
) -> tuple[list[str], list[_Check]]:
    """One scan gives each check's count, first rows and first example (as ml.data.ingest does)."""
    aggregates = []
    for c in checks:
        aggregates += [
            f"count(*) filter (where {c.predicate})",
            f"list({_ROW} order by {_ROW}) filter (where {c.predicate})[1:5]",
            f"arg_min({c.example}, {_ROW}) filter (where {c.predicate})",
        ]
    row = fetch_row(con, f"select {', '.join(aggregates)} from {quote_ident(table)}")
    lines, failing = [], []
    for i, c in enumerate(checks):
        count, rows, example = row[3 * i : 3 * i + 3]
        if not count:
            continue
        failing.append(c)
        shown = f"; e.g. {example}" if example and example != "''" else ""
        lines.append(
            f"{file_name}, column {c.column}: {count} row{'s' if count > 1 else ''} {c.summary} "
            f"(rows {_row_list(rows, count)}{shown})"
        )
    return lines, failing


def load_leads(
    con: duckdb.DuckDBPyConnection,
    source_file: Path,
    mapping: LeadMapping,
    quarantine_dir: Path,
    now: datetime | None = None,
) -> LeadLoadResult:
    """Load a lead export through a mapping into ``raw.leads``; quarantine the rows that break it.

    Args:
        con: Writable DuckDB connection, not inside an open transaction, session time zone UTC
            (``ml.core.warehouse.connect`` sets it): naive timestamps are read as UTC.
        source_file: The export (``.csv``, ``.csv.gz`` or ``.parquet``).
        mapping: From :func:`load_mapping`.
        quarantine_dir: Folder for ``leads.parquet`` with the quarantined rows (rewritten on every
            successful load).
        now: Dates after this are "in the future" (default: the current UTC time).

    Returns:
        Counts, problems, and the attribute columns with their inferred types.

    Raises:
        MappingError: The mapping names a column the file lacks, two columns give the same
            attribute name, or an undeclared column looks personal or protected. Nothing is
            written.
        ContractError: The file is missing, empty or unreadable. Nothing is written.
    """
    source_file, quarantine_dir = Path(source_file), Path(quarantine_dir)
    file_name = source_file.name
    now = now or datetime.now(UTC)
    if now.tzinfo is not None:
        # Timestamps are stored as naive UTC (see ml.data.ingest), so compare in naive UTC.
        now = now.astimezone(UTC).replace(tzinfo=None)
    if not source_file.is_file():
        raise ContractError(f"{TABLE}: no file {source_file}")
    if source_file.stat().st_size == 0:
        raise ContractError(f"{file_name}: the file is empty (a header row is required)")
    with _temp_names(con, "src", "rejects", "scans", "clean") as (src, rejects, scans, clean):
        try:
            n_malformed = _read_into(con, source_file, src, rejects, scans)
        except duckdb.Error as exc:
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc)
            raise ContractError(f"{file_name}: cannot be read ({first_line})") from exc
        described = con.execute(f"describe {quote_ident(src)}").fetchall()
        source_types = {str(r[0]): str(r[1]) for r in described if r[0] != _ROW}
        header = list(source_types)
        plan = _plan(mapping, file_name, header)
        _check_personal(con, src, mapping, plan)

        # Stage 1: only the columns the load uses (never pii), missing tokens applied, plus the
        # first row of each lead_id so duplicates can be told from the original.
        used = {
            **{c: t for t, c in plan.contract.items()},
            **{c: t for t, c in plan.attributes.items()},
        }
        names = {c: plan.sources[c] for c in used}
        id_source = names[plan.contract["lead_id"]]
        lead_id_clean = _clean_expr(id_source, source_types[id_source], mapping.missing_values)
        clean_select = ", ".join(
            f"{_clean_expr(names[c], source_types[names[c]], mapping.missing_values)} as {c}"
            for c in used
        )
        con.execute(
            f"create temp table {quote_ident(clean)} as select {_ROW}, {clean_select}, "
            f"cast({lead_id_clean} as varchar) as lead_id, "
            f"min({_ROW}) over (partition by cast({lead_id_clean} as varchar)) as _first_row "
            f"from {quote_ident(src)}"
        )
        clean_types = {
            str(r[0]): str(r[1]) for r in con.execute(f"describe {quote_ident(clean)}").fetchall()
        }
        typed = {
            name: _contract_expr(
                name, plan.contract.get(name), clean_types.get(plan.contract.get(name, "")), mapping
            )
            for name in LEAD_COLUMNS
        }
        if "converted_at" in plan.contract:
            typed["converted"] = f"({typed['converted_at']} is not null)"
        attribute_types = _attribute_types(con, clean, plan, clean_types)

        problems: list[str] = []
        unmapped = [n for n in LEAD_COLUMNS if n not in plan.contract and n != "converted"]
        if unmapped:
            problems.append(
                f"{file_name}: contract column(s) {', '.join(unmapped)} not mapped; loaded as empty"
            )
        if n_malformed:
            lines = fetch_row(
                con, f"select list(distinct line order by line)[1:5] from {quote_ident(rejects)}"
            )[0]
            problems.append(
                f"{file_name}: {n_malformed} malformed line{'s' if n_malformed > 1 else ''} "
                f"quarantined (lines {_row_list(lines, n_malformed)})"
            )
        checks = _checks(plan, typed, clean_types, now)
        check_lines, failing = _problem_lines(con, clean, file_name, checks)
        problems += check_lines
        bad = " or ".join(c.predicate for c in failing) or "false"
        reason = (
            "nullif(concat_ws('; ', "
            + ", ".join(f"case when {c.predicate} then {c.reason} end" for c in failing)
            + "), '')"
            if failing
            else "cast(null as varchar)"
        )

        column_defs = ", ".join(
            [f"{quote_ident(n)} {t}" for n, t in LEAD_COLUMNS.items()]
            + [f"{quote_ident(n)} {t}" for n, t in attribute_types.items()]
        )
        typed_select = ", ".join(
            [
                f"{typed[n] if n != 'lead_id' else 'lead_id'} as {quote_ident(n)}"
                for n in LEAD_COLUMNS
            ]
            + [
                f"{_attribute_expr(plan.attributes[n], clean_types[plan.attributes[n]], t)} "
                f"as {quote_ident(n)}"
                for n, t in attribute_types.items()
            ]
        )
        # Quarantined rows keep the file's text of the columns the load uses (never pii), so a
        # person can fix them at the source; malformed lines keep their raw text only when the
        # mapping declares no pii (the raw line would carry it).
        original = ", ".join(
            f"cast(s.{quote_ident(n)} as varchar) as {quote_ident(n)}"
            for n in plan.kept_sources
            if n not in ("source_file", "row_number", "reason", "raw_line")
        )
        bad_rows_sql = (
            f"select {sql_literal(file_name)} as source_file, b.{_ROW} as row_number, "
            f"b.reason, {original}, cast(null as varchar) as raw_line "
            f"from (select {_ROW}, {reason} as reason from {quote_ident(clean)} where {bad}) b "
            f"join {quote_ident(src)} s on s.{_ROW} = b.{_ROW}"
        )
        if n_malformed:
            raw_line = "cast(null as varchar)" if mapping.pii else "any_value(csv_line)"
            bad_rows_sql += (
                f" union all by name select {sql_literal(file_name)} as source_file, "
                f"cast(line as bigint) as row_number, "
                f"'malformed line: ' || lower(string_agg(distinct error_type, ', ')) as reason, "
                f"{raw_line} as raw_line from {quote_ident(rejects)} group by line"
            )
        raw_table = f"{RAW_SCHEMA}.{quote_ident(TABLE)}"
        quarantine_table = f"{QUARANTINE_SCHEMA}.{quote_ident(TABLE)}"
        with transaction(con):
            con.execute(f"create schema if not exists {RAW_SCHEMA}")
            con.execute(f"create schema if not exists {QUARANTINE_SCHEMA}")
            con.execute(f"create or replace table {raw_table} ({column_defs})")
            con.execute(
                f"insert into {raw_table} select {typed_select} from {quote_ident(clean)} "
                f"where not ({bad}) order by {_ROW}"
            )
            con.execute(
                f"create or replace table {quarantine_table} as "
                f"select * from ({bad_rows_sql}) order by row_number"
            )
            counts = fetch_row(
                con,
                f"select (select count(*) from {quote_ident(src)}), "
                f"(select count(*) from {raw_table}), (select count(*) from {quarantine_table})",
            )
        _write_parquet_atomically(
            con, f"select * from {quarantine_table}", quarantine_dir / f"{TABLE}.parquet"
        )
    return LeadLoadResult(
        source_file=source_file,
        rows_read=int(counts[0]) + n_malformed,
        rows_loaded=int(counts[1]),
        rows_quarantined=int(counts[2]),
        problems=tuple(problems),
        attributes={n: t for n, t in attribute_types.items() if n.startswith(ATTRIBUTE_PREFIX)},
        protected=tuple(n for n in attribute_types if n.startswith(PROTECTED_PREFIX)),
        dropped=(*mapping.drop, *mapping.pii),
    )


def read_leads(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """``raw.leads`` as a pandas frame (nullable dtypes as DuckDB returns them)."""
    return con.execute(f"select * from {RAW_SCHEMA}.{quote_ident(TABLE)}").df()
