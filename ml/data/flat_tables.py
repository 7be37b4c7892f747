"""Flat exports (leads, a customer snapshot) into DuckDB through their mapping.

A flat export (HubSpot contacts, a spreadsheet of customers) names its columns its own way and
carries many custom properties. Its mapping (``ml.data.mapping``) says which source column is which
contract column; every other column the mapping does not drop becomes a typed attribute
``attr_<snake_case_name>`` (numeric -> DOUBLE, yes/no -> BOOLEAN, else VARCHAR), so a model can
use all of them, and ``protected`` columns become ``protected_<name>`` (fairness audits only,
never features). ``pii`` columns are never read into any table, message or model.

Safety nets, because a column's name is all there is to go on:

* an undeclared column whose name looks personal (``Email``, ``Phone``, ``First Name``...) or
  protected (``Gender``, ``Age``, ``Marital Status``, ``Senior Citizen``...), or whose values look
  like e-mail addresses, must be declared (``pii``, ``protected``, ``drop``) or cleared in
  ``not_personal``;
* an undeclared column whose name looks like the outcome (``Churn Reason``, ``Churn Score``,
  ``Deal Won``) must be dropped with a reason or cleared in ``not_outcome``: it would leak the
  label into the model.

:func:`load_flat_table` reads the export (``ml.data.reading``), applies the mapping, casts the
contract columns, types the attributes and writes ``raw.<table>`` with a description of its
columns in ``raw.<table>__columns`` (source column, label, what a missing value means). Rows that
break the contract go to ``quarantine.<table>`` and ``<quarantine_dir>/<table>.parquet`` with a
reason, as in ``ml.data.ingest``: a missing or duplicate id, a value that does not cast, a negative
count, a date in the future, an outcome before the start, an unknown outcome value, unsafe text
(a spreadsheet formula, a control character), and a number column's few values that are not
numbers (the column stays a number, and the message names the count and examples).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from ml.core.warehouse import fetch_row, quote_ident, sql_literal, transaction
from ml.data.contract import Column, Table
from ml.data.ingest import (
    QUARANTINE_SCHEMA,
    RAW_SCHEMA,
    TEXT_PROBLEMS,
    IngestCheck,
    row_list,
    text_checks,
    typed_expr,
    write_parquet_atomically,
)
from ml.data.mapping import (
    DEFAULT_FALSE_VALUES,
    TableMapping,
    close_matches,
    snake_case,
)
from ml.data.reading import (
    FILE,
    LINE,
    ROW,
    SourceRead,
    find_files,
    generated_id_expr,
    read_source,
    temp_names,
    value_expr,
)
from ml.data.tombstones import Tombstones, drop_erased_rows

ATTRIBUTE_PREFIX = "attr_"
PROTECTED_PREFIX = "protected_"
COLUMNS_SUFFIX = "__columns"
_YES_NO = ("yes", "no", "true", "false", "y", "n")
NUMBER_SHARE = 0.98
"""A text column is a number when at least this share of its values read as numbers; the few
others are bad values (quarantined, and named), not a reason to make the column text."""
_PERSONAL_NAME = re.compile(
    r"((personal|work|business|home|private|primary|secondary|contact|other)_)?"
    r"(e_?mail(_address)?|phone(_number)?|mobile(_phone)?(_number)?|telephone|fax"
    r"|(first|last|full|middle|given|family|sur)_?name|name|street(_address)?"
    r"|(postal_|home_|mailing_)?address|ip_address|date_of_birth|birth_?date|birthday)"
)
# Words of a column name that make it look like a protected attribute or a close proxy of one.
_PROTECTED_WORDS = frozenset(
    [
        "gender",
        "sex",
        "age",
        "ages",
        "birth",
        "born",
        "race",
        "racial",
        "ethnicity",
        "ethnic",
        "religion",
        "religious",
        "nationality",
        "citizenship",
        "disability",
        "disabled",
        "marital",
        "married",
        "spouse",
        "partner",
        "dependents",
        "pregnant",
        "pregnancy",
        "senior",
        "orientation",
        "veteran",
    ]
)
# Words of a column name that make it look like the outcome itself, per flat table.
_OUTCOME_WORDS: dict[str, frozenset[str]] = {
    "leads": frozenset(["converted", "conversion", "won", "closed", "deal", "lifecycle"]),
    "customer_snapshot": frozenset(
        [
            "churn",
            "churned",
            "cancel",
            "cancelled",
            "canceled",
            "cancellation",
            "attrition",
            "exited",
            "terminated",
            "termination",
            "retained",
            "retention",
            "left",
        ]
    ),
}
_MAX_VALUE_CHARS = 40


@dataclass(frozen=True)
class FlatLoadResult:
    """What happened when a flat export was loaded.

    Attributes:
        table: The contract table.
        source_file: The export that was read (the first, when a glob matched several).
        rows_read: Data rows in the file(s) (including malformed CSV lines).
        rows_loaded: Rows written to ``raw.<table>``.
        rows_quarantined: Rows written to ``quarantine.<table>``.
        problems: Human-readable lines naming file, column, rows and an example value.
        attributes: ``attr_*`` column -> inferred type, in file order.
        protected: ``protected_*`` columns loaded.
        dropped: Source columns not loaded (``drop`` and ``pii``).
        rows_erased: Rows of erased persons dropped before the load.
    """

    table: str
    source_file: Path
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    problems: tuple[str, ...]
    attributes: dict[str, str]
    protected: tuple[str, ...]
    dropped: tuple[str, ...]
    rows_erased: int = 0


@dataclass(frozen=True, eq=False)
class FlatTable:
    """A flat table as the models read it.

    Attributes:
        rows: ``raw.<table>``.
        labels: Column -> how it reads in reasons (the mapping's label, else its source name).
        missing_meanings: Column -> what a missing value means (a sentinel's meaning).
    """

    rows: pd.DataFrame
    labels: dict[str, str]
    missing_meanings: dict[str, str]


def name_words(name: str) -> set[str]:
    """The words of a column name: ``"SeniorCitizen"`` -> ``{"senior", "citizen"}``."""
    return set(snake_case(name).split("_")) - {""}


def _sql_list(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join(sql_literal(v) for v in values)


@dataclass(frozen=True)
class _Plan:
    """Which file column becomes which table column."""

    contract: dict[str, str]  # contract column -> clean column (c_<i>)
    attributes: dict[str, str]  # attr_/protected_ column -> clean column
    sources: dict[str, str]  # clean column -> source column
    kept_sources: tuple[str, ...]  # source columns shown in quarantine (never pii)


def _plan(mapping: TableMapping, file_name: str, header: list[str]) -> _Plan:
    for name in mapping.named_columns:
        if name not in header:
            raise mapping.error(
                name, f"not in {file_name} (close matches: {close_matches(name, header)})"
            )
    for name in mapping.sentinels:
        if name not in header:
            raise mapping.error(name, f"sentinels name a column not in {file_name}")
    # Clean columns get positional names so any source name (quotes, clashes) is safe in SQL.
    clean = {name: f"c_{i}" for i, name in enumerate(header)}
    contract = {target: clean[source] for source, target in mapping.columns.items()}
    flag_column = mapping.table.flag_column
    if mapping.flag and flag_column:
        contract[flag_column] = clean[mapping.flag.column]
    skipped = set(mapping.columns) | mapping.ignored
    if mapping.flag:
        skipped.add(mapping.flag.column)
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
    kept = tuple(n for n in header if n not in mapping.ignored)
    return _Plan(contract, attributes, sources, kept)


def _check_names(
    con: duckdb.DuckDBPyConnection, src: str, mapping: TableMapping, plan: _Plan
) -> None:
    """Stop when an undeclared attribute looks like personal data, a protected attribute or the
    outcome (the safety nets of the module docstring)."""
    cleared = set(mapping.not_personal) | set(mapping.protected)
    outcome_words = _OUTCOME_WORDS.get(mapping.table.name, frozenset())
    candidates = [plan.sources[c] for c in plan.attributes.values()]
    for name in candidates:
        words = name_words(name)
        if name not in set(mapping.not_outcome) and words & outcome_words:
            raise mapping.error(
                name,
                "looks like the outcome the model predicts (it would leak the label): drop it "
                "with the reason, or list it under 'not_outcome' if it is known before",
            )
        if name in cleared:
            continue
        if _PERSONAL_NAME.fullmatch(snake_case(name)):
            raise mapping.error(
                name,
                "looks like personal data: list it under 'pii' (never read) or, if it is not "
                "personal, under 'not_personal'",
            )
        if words & _PROTECTED_WORDS:
            raise mapping.error(
                name,
                "looks like a protected attribute: list it under 'protected' (kept for fairness "
                "audits, never a feature), 'drop', or 'not_personal'",
            )
    unchecked = [n for n in candidates if n not in cleared]
    if not unchecked:
        return
    # An e-mail address in a free-text column is personal data whatever the column is called.
    aggregates = ", ".join(
        f"count(*) filter (where regexp_matches(cast({quote_ident(name)} as varchar), "
        f"'[^@\\s]+@[^@\\s]+\\.[a-zA-Z]{{2,}}'))"
        for name in unchecked
    )
    counts = fetch_row(con, f"select {aggregates} from {quote_ident(src)}")
    for name, count in zip(unchecked, counts, strict=True):
        if count:
            raise mapping.error(
                name,
                f"holds e-mail addresses ({count} rows): list it under 'pii' (never read) or "
                "'drop'",
            )


def _attribute_types(
    con: duckdb.DuckDBPyConnection, clean: str, plan: _Plan, clean_types: dict[str, str]
) -> tuple[dict[str, str], dict[str, int]]:
    """Each attribute's type from one scan: numeric -> DOUBLE, yes/no -> BOOLEAN, else text.

    A text column is a number when at least :data:`NUMBER_SHARE` of its values read as one;
    returns the types and, per such column, how many values do not (they are quarantined).
    """
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
    not_numbers: dict[str, int] = {}
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
            if present and numeric >= NUMBER_SHARE * present:
                inferred[target] = "DOUBLE"
                if numeric < present:
                    not_numbers[target] = present - numeric
            elif present and yes_no == present:
                inferred[target] = "BOOLEAN"
    return inferred, not_numbers


def _fixed_attribute_types(
    con: duckdb.DuckDBPyConnection,
    clean: str,
    plan: _Plan,
    clean_types: dict[str, str],
    types: Mapping[str, str],
) -> tuple[dict[str, str], dict[str, int]]:
    """The attributes ``types`` names, with those types; a number attribute's values that do not
    read as numbers are counted (and quarantined, as a load does)."""
    kept = {t: types[t] for t in plan.attributes if t in types}
    text_numbers = [
        t
        for t, kind in kept.items()
        if kind == "DOUBLE" and clean_types[plan.attributes[t]] == "VARCHAR"
    ]
    if not text_numbers:
        return kept, {}
    aggregates = ", ".join(
        f"count({quote_ident(plan.attributes[t])}) - "
        f"count(try_cast({quote_ident(plan.attributes[t])} as double))"
        for t in text_numbers
    )
    row = fetch_row(con, f"select {aggregates} from {quote_ident(clean)}")
    return kept, {t: int(n) for t, n in zip(text_numbers, row, strict=True) if n}


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
    """The value quoted as a person reads it in a reason: ``'29 EUR'``."""
    return f"'''' || left(cast({ref} as varchar), {_MAX_VALUE_CHARS}) || ''''"


def _contract_expr(
    column: Column, clean_column: str | None, clean_type: str | None, mapping: TableMapping
) -> str:
    if column.type != "BOOLEAN":
        return typed_expr(column, clean_column, clean_type)
    if clean_column is None:
        return "cast(null as boolean)"
    ref = quote_ident(clean_column)
    if clean_type == "BOOLEAN":
        return ref
    flag = mapping.flag
    true_values = flag.true_values if flag else ("1", "true", "yes", "y", "t")
    false_values = flag.false_values if flag else DEFAULT_FALSE_VALUES
    value = f"lower(cast({ref} as varchar))"
    false_when = f"{value} in ({_sql_list(false_values)})" if false_values else f"{ref} is not null"
    return (
        f"case when {value} in ({_sql_list(true_values)}) then true "
        f"when {false_when} then false end"
    )


def _checks(
    table: Table,
    plan: _Plan,
    typed: dict[str, str],
    clean_types: dict[str, str],
    attribute_types: dict[str, str],
    not_numbers: dict[str, int],
    now: datetime,
) -> list[_Check]:
    key = table.key
    columns = {c.name: c for c in table.columns}
    checks = [
        _Check(key, f"{key} is null", f"'{key}: required value missing'", f"without a {key}", "''"),
        _Check(
            key,
            f"({key} is not null and _first_row < {ROW})",
            f"'{key}: ' || " + _shown(key) + " || ' repeats row ' || _first_where",
            f"repeating the {key} of an earlier row (the first is kept)",
            _shown(key),
        ),
    ]
    for name, c in plan.contract.items():
        ref = quote_ident(c)
        kind = columns[name].type
        if kind != "VARCHAR" and clean_types[c] != kind:
            checks.append(
                _Check(
                    name,
                    f"({ref} is not null and {typed[name]} is null)",
                    f"'{name}: ' || {_shown(ref)} || ' cannot be read as {kind}'",
                    f"cannot be read as {kind}",
                    _shown(ref),
                )
            )
        if kind in ("INTEGER", "DOUBLE"):
            # The numbers of a flat contract are counts and durations.
            checks.append(
                _Check(
                    name,
                    f"coalesce({typed[name]} < 0, false)",
                    f"'{name}: ' || {_shown(ref)} || ' is negative'",
                    "with a negative value",
                    _shown(ref),
                )
            )
        if kind == "VARCHAR" and clean_types[c] == "VARCHAR":
            checks += [_as_flat_check(check) for check in text_checks(columns[name], ref)]
    stamp = f"timestamp '{now.strftime('%Y-%m-%d %H:%M:%S')}'"
    for name in plan.contract:
        if columns[name].type == "TIMESTAMP":
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
    start = table.start_column
    for outcome in table.outcome_columns:
        if start and start in plan.contract and outcome in plan.contract:
            ref = quote_ident(plan.contract[outcome])
            checks.append(
                _Check(
                    outcome,
                    f"coalesce({typed[outcome]} < {typed[start]}, false)",
                    f"'{outcome}: ' || {_shown(ref)} || ' is before {start}'",
                    f"before {start}",
                    _shown(ref),
                )
            )
    for target, c in plan.attributes.items():
        ref = quote_ident(c)
        if target in not_numbers:
            checks.append(
                _Check(
                    target,
                    f"({ref} is not null and try_cast({ref} as double) is null)",
                    f"'{target}: ' || {_shown(ref)} || ' is not a number'",
                    f"not a number in a number column (the column stays numeric; "
                    f"{not_numbers[target]} such values)",
                    _shown(ref),
                )
            )
        elif attribute_types[target] == "VARCHAR" and clean_types[c] == "VARCHAR":
            attribute = Column(
                target, "VARCHAR", False, "", protected=target.startswith(PROTECTED_PREFIX)
            )
            checks += [_as_flat_check(check) for check in text_checks(attribute, ref)]
    return checks


def _as_flat_check(check: IngestCheck) -> _Check:
    """An ``ml.data.ingest`` text check (unsafe text, too long) in this module's form."""
    said_line, said_reason = TEXT_PROBLEMS[check.kind]
    name = check.column.name
    return _Check(
        name,
        check.predicate,
        f"{sql_literal(name + ': ')} || {check.value} || {sql_literal(' ' + said_reason)} "
        f"|| {check.detail}",
        said_line,
        f"{check.value} || {check.detail}",
    )


def _problem_lines(
    con: duckdb.DuckDBPyConnection, table: str, file_name: str, checks: list[_Check], where: str
) -> tuple[list[str], list[_Check]]:
    """One scan gives each check's count, first rows and first example (as ml.data.ingest does)."""
    aggregates = []
    for c in checks:
        aggregates += [
            f"count(*) filter (where {c.predicate})",
            f"list({where} order by {ROW}) filter (where {c.predicate})[1:5]",
            f"arg_min({c.example}, {ROW}) filter (where {c.predicate})",
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
            f"(rows {row_list(rows, count)}{shown})"
        )
    return lines, failing


def _column_descriptions(
    mapping: TableMapping, plan: _Plan, attribute_types: dict[str, str]
) -> pd.DataFrame:
    """``raw.<table>__columns``: per loaded column, its source, label and missing meaning."""
    rows = []
    for name, clean in [*plan.contract.items(), *plan.attributes.items()]:
        source = plan.sources[clean]
        meanings = mapping.sentinels.get(source, {})
        rows.append(
            {
                "column_name": name,
                "source_column": source,
                # A contract column reads as the model says it (``lead source``) unless the
                # mapping labels it; an attribute by its name in the export.
                "label": mapping.labels.get(source) or (None if name in plan.contract else source),
                "missing_meaning": "; ".join(dict.fromkeys(meanings.values())) or None,
                "type": attribute_types.get(name),
            }
        )
    return pd.DataFrame(
        rows, columns=["column_name", "source_column", "label", "missing_meaning", "type"]
    )


def load_flat_table(
    con: duckdb.DuckDBPyConnection,
    mapping: TableMapping,
    source_dir: Path,
    quarantine_dir: Path,
    now: datetime | None = None,
    tombstones: Tombstones | None = None,
) -> FlatLoadResult:
    """Load a flat export through its mapping into ``raw.<table>``; quarantine bad rows.

    Args:
        con: Writable DuckDB connection, not inside an open transaction, session time zone UTC
            (``ml.core.warehouse.connect`` sets it): naive timestamps are read as UTC.
        mapping: The table's mapping (``ml.data.mapping``); its table must be flat.
        source_dir: The source folder holding the export.
        quarantine_dir: Folder for ``<table>.parquet`` with the quarantined rows (rewritten on
            every successful load).
        now: Dates after this are "in the future" (default: the current UTC time).
        tombstones: Erased records: a customer snapshot's rows (and malformed lines) whose
            ``customer_id`` hashes to one are dropped before anything else, so an erased
            person never comes back with a re-exported snapshot.

    Returns:
        Counts, problems, and the attribute columns with their inferred types.

    Raises:
        MappingError: The mapping names a column the file lacks, two columns give the same
            attribute name, or an undeclared column looks personal, protected or like the
            outcome. Nothing is written.
        ContractError: The file is missing, empty or unreadable, or the table's id is neither
            mapped nor generated. Nothing is written.
    """
    table = mapping.table
    if not table.flat:
        raise ValueError(f"{table.name} is not a flat table")
    now = now or datetime.now(UTC)
    if now.tzinfo is not None:
        # Timestamps are stored as naive UTC (see ml.data.ingest), so compare in naive UTC.
        now = now.astimezone(UTC).replace(tzinfo=None)
    files = find_files(mapping, Path(source_dir))
    with read_source(con, files, mapping) as read, temp_names(con, "clean") as (clean,):
        erased = _drop_erased(con, mapping, read, tombstones)
        return replace(
            _load(con, mapping, read, clean, Path(quarantine_dir), now), rows_erased=erased
        )


def _drop_erased(
    con: duckdb.DuckDBPyConnection,
    mapping: TableMapping,
    read: SourceRead,
    tombstones: Tombstones | None,
) -> int:
    """Drop the rows of erased persons from the read export (a snapshot's id is the CRM's record
    id; a lead id is not a customer record, so leads are left alone)."""
    key_source = mapping.source_of(mapping.table.key)
    if tombstones is None or not mapping.table.erasable or key_source is None:
        return 0
    erased = drop_erased_rows(con, quote_ident(read.src), tombstones, record_column=key_source)
    if read.malformed:
        drop_erased_rows(con, quote_ident(read.rejects), tombstones, raw_line_column="csv_line")
    return erased


@dataclass(frozen=True)
class _Checked:
    """A read export cleaned by its mapping into a temp table, with its checks run.

    ``typed`` and the attribute expressions select the typed row from the clean table; ``bad`` is
    SQL true for a row that breaks the contract and ``reason`` the SQL of why (null otherwise).
    """

    plan: _Plan
    typed: dict[str, str]
    attribute_types: dict[str, str]
    clean_types: dict[str, str]
    problems: list[str]
    failing: list[_Check]
    bad: str
    reason: str
    malformed: int

    def typed_select(self, table: Table) -> str:
        """The select list of the typed contract columns and attributes of the clean table."""
        key = table.key
        return ", ".join(
            [
                f"{self.typed[c.name] if c.name != key else key} as {quote_ident(c.name)}"
                for c in table.columns
            ]
            + [
                f"{_attribute_expr(self.plan.attributes[n], self.clean_types[self.plan.attributes[n]], t)} "
                f"as {quote_ident(n)}"
                for n, t in self.attribute_types.items()
            ]
        )


def _clean_and_check(
    con: duckdb.DuckDBPyConnection,
    mapping: TableMapping,
    read: SourceRead,
    clean: str,
    now: datetime,
    attribute_types: Mapping[str, str] | None = None,
    report: bool = True,
) -> _Checked:
    """Apply the mapping to the read rows (into temp table ``clean``) and run every check.

    ``attribute_types`` fixes the attributes' types (a trained model's, for rows scored on their
    own) instead of inferring them from the rows; attributes it does not name are left out.
    ``report`` adds a problem line per failing check (one more scan; a load's report).
    """
    table, file_name, src = mapping.table, read.name, read.src
    contract = {c.name: c for c in table.columns}
    key = table.key
    if key not in mapping.columns.values() and not mapping.generate_id:
        raise mapping.error(
            None,
            f"the id {key!r} is not mapped: map the export's id column to it, or set "
            "'generate_id: true' when the export has none",
        )
    plan = _plan(mapping, file_name, read.header)
    _check_names(con, src, mapping, plan)

    # Stage 1: only the columns the load uses (never pii), cleaned by the mapping, plus the
    # first row of each id so duplicates can be told from the original.
    used = {
        **{c: t for t, c in plan.contract.items()},
        **{c: t for t, c in plan.attributes.items()},
    }
    names = {c: plan.sources[c] for c in used}
    if mapping.generate_id:
        key_expr = generated_id_expr(mapping)
    else:
        key_source = names[plan.contract[key]]
        key_expr = value_expr(mapping, key_source, read.source_types[key_source], key)
    clean_select = ", ".join(
        f"{value_expr(mapping, names[c], read.source_types[names[c]], used[c] if used[c] in contract else None)} as {c}"
        for c in used
    )
    con.execute(
        f"create temp table {quote_ident(clean)} as select {read.positions}"
        f"{', ' + clean_select if clean_select else ''}, "
        f"cast({key_expr} as varchar) as {key}, "
        f"min({ROW}) over (partition by cast({key_expr} as varchar)) as _first_row, "
        f"arg_min({read.where}, {ROW}) over (partition by cast({key_expr} as varchar)) as _first_where "
        f"from {quote_ident(src)}"
    )
    clean_types = {
        str(r[0]): str(r[1]) for r in con.execute(f"describe {quote_ident(clean)}").fetchall()
    }
    typed = {
        name: _contract_expr(
            contract[name],
            plan.contract.get(name),
            clean_types.get(plan.contract.get(name, "")),
            mapping,
        )
        for name in contract
    }
    flag = table.flag_column
    outcome = next((o for o in table.outcome_columns if o in plan.contract), None)
    if flag and outcome:
        typed[flag] = f"({typed[outcome]} is not null)"
    if attribute_types is None:
        attribute_types, not_numbers = _attribute_types(con, clean, plan, clean_types)
    else:
        attribute_types, not_numbers = _fixed_attribute_types(
            con, clean, plan, clean_types, attribute_types
        )

    problems: list[str] = []
    unmapped = [n for n in contract if n not in plan.contract and n not in (flag, key)]
    if unmapped:
        problems.append(
            f"{file_name}: contract column(s) {', '.join(unmapped)} not mapped; loaded as empty"
        )
    n_malformed = read.malformed
    if n_malformed:  # erased persons' lines may have gone since the read
        (n_malformed,) = fetch_row(
            con, f"select count(distinct (file, line)) from {quote_ident(read.rejects)}"
        )
    if n_malformed:
        lines = fetch_row(
            con, f"select list(distinct line order by line)[1:5] from {quote_ident(read.rejects)}"
        )[0]
        problems.append(
            f"{file_name}: {n_malformed} malformed line{'s' if n_malformed > 1 else ''} "
            f"quarantined (lines {row_list(lines, n_malformed)})"
        )
    checks = _checks(table, plan, typed, clean_types, attribute_types, not_numbers, now)
    if report:
        check_lines, failing = _problem_lines(con, clean, file_name, checks, read.where)
        problems += check_lines
    else:
        # Per-row reasons only: every check goes into the reason, no scan for the report. A
        # check that does not apply to a row (a null value) is null there, not true.
        failing = checks
    bad = " or ".join(c.predicate for c in failing) or "false"
    reason = (
        "nullif(concat_ws('; ', "
        + ", ".join(f"case when {c.predicate} then {c.reason} end" for c in failing)
        + "), '')"
        if failing
        else "cast(null as varchar)"
    )
    return _Checked(
        plan, typed, dict(attribute_types), clean_types, problems, failing, bad, reason, n_malformed
    )


def _load(
    con: duckdb.DuckDBPyConnection,
    mapping: TableMapping,
    read: SourceRead,
    clean: str,
    quarantine_dir: Path,
    now: datetime,
) -> FlatLoadResult:
    table, src = mapping.table, read.src
    checked = _clean_and_check(con, mapping, read, clean, now)
    plan, attribute_types, problems = checked.plan, checked.attribute_types, checked.problems
    bad, reason, n_malformed = checked.bad, checked.reason, checked.malformed
    column_defs = ", ".join(
        [f"{quote_ident(c.name)} {c.type}" for c in table.columns]
        + [f"{quote_ident(n)} {t}" for n, t in attribute_types.items()]
    )
    typed_select = checked.typed_select(table)
    # Quarantined rows keep the file's text of the columns the load uses (never pii), so a
    # person can fix them at the source; malformed lines keep their raw text only when the
    # mapping declares no pii (the raw line would carry it).
    original = ", ".join(
        f"cast(s.{quote_ident(n)} as varchar) as {quote_ident(n)}"
        for n in plan.kept_sources
        if n not in ("source_file", "row_number", "reason", "raw_line")
    )
    bad_rows_sql = (
        f"select b.{FILE} as source_file, b.{LINE} as row_number, b.reason"
        f"{', ' + original if original else ''}, cast(null as varchar) as raw_line "
        f"from (select {ROW}, {FILE}, {LINE}, {reason} as reason "
        f"from {quote_ident(clean)} where {bad}) b "
        f"join {quote_ident(src)} s on s.{ROW} = b.{ROW}"
    )
    if n_malformed:
        raw_line = "cast(null as varchar)" if mapping.pii else "any_value(csv_line)"
        bad_rows_sql += (
            f" union all by name select file as source_file, "
            f"cast(line as bigint) as row_number, "
            f"'malformed line: ' || lower(string_agg(distinct error_type, ', ')) as reason, "
            f"{raw_line} as raw_line from {quote_ident(read.rejects)} group by file, line"
        )
    descriptions = _column_descriptions(mapping, plan, attribute_types)
    raw_table = f"{RAW_SCHEMA}.{quote_ident(table.name)}"
    columns_table = f"{RAW_SCHEMA}.{quote_ident(table.name + COLUMNS_SUFFIX)}"
    quarantine_table = f"{QUARANTINE_SCHEMA}.{quote_ident(table.name)}"
    con.register("_flat_columns", descriptions)
    try:
        with transaction(con):
            con.execute(f"create schema if not exists {RAW_SCHEMA}")
            con.execute(f"create schema if not exists {QUARANTINE_SCHEMA}")
            con.execute(f"create or replace table {raw_table} ({column_defs})")
            con.execute(
                f"insert into {raw_table} select {typed_select} from {quote_ident(clean)} "
                f"where not ({bad}) order by {ROW}"
            )
            con.execute(f"create or replace table {columns_table} as select * from _flat_columns")
            con.execute(
                f"create or replace table {quarantine_table} as "
                f"select * from ({bad_rows_sql}) order by source_file, row_number"
            )
            counts = fetch_row(
                con,
                f"select (select count(*) from {quote_ident(src)}), "
                f"(select count(*) from {raw_table}), (select count(*) from {quarantine_table})",
            )
    finally:
        con.unregister("_flat_columns")
    write_parquet_atomically(
        con, f"select * from {quarantine_table}", quarantine_dir / f"{table.name}.parquet"
    )
    return FlatLoadResult(
        table=table.name,
        source_file=read.files[0],
        rows_read=int(counts[0]) + n_malformed,
        rows_loaded=int(counts[1]),
        rows_quarantined=int(counts[2]),
        problems=tuple(problems),
        attributes={n: t for n, t in attribute_types.items() if n.startswith(ATTRIBUTE_PREFIX)},
        protected=tuple(n for n in attribute_types if n.startswith(PROTECTED_PREFIX)),
        dropped=(*mapping.drop, *mapping.pii),
    )


@dataclass(frozen=True)
class CheckedRecords:
    """Records checked against a flat table's mapping and contract, nothing written.

    Attributes:
        rows: The typed rows that pass, as ``raw.<table>`` holds them (contract columns, then
            the attributes), with ``record`` (position of the input record, 0-based).
        rejected: ``record`` and ``reason`` of every record that breaks the contract, in the
            words of the quarantine (``"lead_id: required value missing"``).
    """

    rows: pd.DataFrame
    rejected: pd.DataFrame


def check_flat_records(
    con: duckdb.DuckDBPyConnection,
    mapping: TableMapping,
    records: pd.DataFrame,
    attribute_types: Mapping[str, str],
    now: datetime | None = None,
) -> CheckedRecords:
    """Apply a flat export's mapping and contract checks to records given in memory.

    The same renames, value maps, casts and checks as :func:`load_flat_table`, on records that
    arrive one request at a time (the scoring service) instead of in a file, with the
    attributes typed as ``attribute_types`` says (a trained model's) rather than inferred from
    a handful of records. Nothing is written: temp tables of ``con`` are dropped afterwards.

    Args:
        con: A DuckDB connection for temp tables (an in-memory one will do), session time zone
            UTC.
        mapping: The table's mapping.
        records: One row per record, columns named as in the export, values as text (as a CSV
            reads them); every column the mapping names must be there (null when not given).
        attribute_types: Attribute column (``attr_<name>``) -> DOUBLE, BOOLEAN or VARCHAR;
            attributes not named are not read.
        now: Dates after this are "in the future" (default: the current UTC time).

    Raises:
        MappingError: A column looks personal, protected or like the outcome (as in a load).
    """
    now = now or datetime.now(UTC)
    if now.tzinfo is not None:
        now = now.astimezone(UTC).replace(tzinfo=None)
    table = mapping.table
    with temp_names(con, "records", "rejects", "clean") as (src, rejects, clean):
        frame = records.astype("string").reset_index(drop=True)
        frame[ROW] = pd.RangeIndex(1, len(frame) + 1, dtype="int64")
        con.register("_flat_records", frame)
        try:
            con.execute(f"create temp table {quote_ident(src)} as select * from _flat_records")
        finally:
            con.unregister("_flat_records")
        con.execute(
            f"create temp table {quote_ident(rejects)} "
            "(line bigint, error_type varchar, csv_line varchar, file varchar)"
        )
        source_types = {str(c): "VARCHAR" for c in records.columns}
        read = SourceRead(
            files=(),
            name="request",
            src=src,
            rejects=rejects,
            malformed=0,
            source_types=source_types,
            positions=f"{ROW}, 'request' as {FILE}, {ROW} as {LINE}",
            where=f"cast({ROW} - 1 as varchar)",
        )
        checked = _clean_and_check(con, mapping, read, clean, now, attribute_types, report=False)
        # The reasons are asked for only when a record breaks a check: their SQL (every check's
        # reason) is the slow part of the checks, and most records break none.
        typed = con.execute(
            f"select {ROW} - 1 as record, coalesce({checked.bad}, false) as _bad, "
            f"{checked.typed_select(table)} from {quote_ident(clean)} order by {ROW}"
        ).df()
        bad = typed.pop("_bad").to_numpy(dtype=bool)
        rejected = pd.DataFrame(
            {"record": pd.Series(dtype="int64"), "reason": pd.Series(dtype=object)}
        )
        if bad.any():
            rejected = con.execute(
                f"select {ROW} - 1 as record, {checked.reason} as reason "
                f"from {quote_ident(clean)} where coalesce({checked.bad}, false) order by {ROW}"
            ).df()
        rows = typed.loc[~bad].reset_index(drop=True)
    return CheckedRecords(rows, rejected)


def load_empty_flat_table(con: duckdb.DuckDBPyConnection, table: Table) -> None:
    """A flat table the source has no export for: empty, so its model skips."""
    column_defs = ", ".join(f"{quote_ident(c.name)} {c.type}" for c in table.columns)
    with transaction(con):
        con.execute(f"create schema if not exists {RAW_SCHEMA}")
        con.execute(
            f"create or replace table {RAW_SCHEMA}.{quote_ident(table.name)} ({column_defs})"
        )
        con.execute(
            f"create or replace table {RAW_SCHEMA}.{quote_ident(table.name + COLUMNS_SUFFIX)} "
            "(column_name varchar, source_column varchar, label varchar, "
            "missing_meaning varchar, type varchar)"
        )


def read_flat_table(con: duckdb.DuckDBPyConnection, table: Table) -> FlatTable:
    """``raw.<table>`` with how its columns read (nullable dtypes as DuckDB returns them)."""
    rows = con.execute(f"select * from {RAW_SCHEMA}.{quote_ident(table.name)}").df()
    described = con.execute(
        f"select column_name, label, missing_meaning "
        f"from {RAW_SCHEMA}.{quote_ident(table.name + COLUMNS_SUFFIX)}"
    ).fetchall()
    return FlatTable(
        rows,
        labels={str(c): str(label) for c, label, _ in described if label},
        missing_meanings={str(c): str(m) for c, _, m in described if m},
    )
