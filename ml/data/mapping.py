"""One mapping format for every source file: how a CRM export becomes a contract table.

A source folder holds the exports and, optionally, ``mapping.yaml`` with one section per contract
table (docs/bring-your-own-data.md). A table without a section is read from ``<table>.csv`` (or
``.csv.gz``, ``.tsv``, ``.parquet``, ``.xlsx``) with the contract's column names. A section says::

    customers:
      file: "Customers Export*.csv"       # a name or a glob (several files are one table)
      delimiter: ";"                       # CSV only; detected when absent
      sheet: Customers                     # .xlsx only; the first sheet when absent
      columns: {CustomerID: customer_record_id, Created Date: signed_up_at}
      values: {plan: {Gold: premium, Silver: standard}}   # contract column -> value map
      date_formats: {signed_up_at: "%d/%m/%Y %H:%M"}      # contract column -> strptime format
      missing_values: ["n/a", "Select"]    # text meaning "no value" (blanks always are)
      sentinels: {pdays: {"999": never contacted}}  # a value that means something, not a number
      labels: {pdays: days since the last contact}  # how a column reads in reasons
      pii: [Email]                         # never read
      protected: [Gender]                  # kept for fairness audits only, never a feature
      drop: {Churn Reason: written after the customer left (leakage)}
      not_personal: [Company Name]         # a name that looks personal but is not
      not_outcome: [Cancellation Policy]   # a name that looks like the outcome but is not
      generate_id: true                    # the export has no id: number the rows
      exclude_rows:                        # rows that are not this table's, quarantined
        InvoiceNo: {starts_with: [C], reason: a cancellation, not an order}

Flat tables (``leads``, ``customer_snapshot``) keep every other column as a typed attribute
``attr_<snake_case_name>`` and take their outcome as a flag::

    converted: {column: Converted, true_values: [1], false_values: [0]}

Every error names the mapping file, the table and the column. Nothing here reads an export; the
readers (``ml.data.ingest``, ``ml.data.flat_tables``) check the mapping against the file.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from ml.data.contract import Table

MAPPING_FILE = "mapping.yaml"
DEFAULT_TRUE_VALUES: tuple[str, ...] = ("1", "true", "yes", "y", "t")
DEFAULT_FALSE_VALUES: tuple[str, ...] = ("0", "false", "no", "n", "f")
FILE_SUFFIXES: tuple[str, ...] = (".parquet", ".csv", ".csv.gz", ".tsv", ".txt", ".xlsx")
_KEYS = frozenset(
    {
        "file",
        "sheet",
        "delimiter",
        "columns",
        "values",
        "date_formats",
        "missing_values",
        "sentinels",
        "labels",
        "pii",
        "protected",
        "drop",
        "not_personal",
        "not_outcome",
        "generate_id",
        "exclude_rows",
    }
)


class MappingError(ValueError):
    """A mapping cannot be used: bad YAML, an unknown or missing column, a clash."""


@dataclass(frozen=True)
class Flag:
    """How a yes/no outcome column of a flat export reads as its contract flag.

    Attributes:
        column: Source column.
        true_values: Values meaning yes (compared case-insensitively, trimmed).
        false_values: Values meaning no. Empty: every other non-missing value is no. Otherwise
            a value in neither list quarantines the row.
    """

    column: str
    true_values: tuple[str, ...] = DEFAULT_TRUE_VALUES
    false_values: tuple[str, ...] = ()


@dataclass(frozen=True)
class RowExclusion:
    """Rows of an export that are not rows of the table (a cancellation in an order log).

    They are quarantined with the rule and its reason, never loaded (``ml.data.ingest``).

    Attributes:
        column: Source column the rule reads (compared as trimmed text).
        starts_with: A row whose value starts with one of these is excluded.
        values: A row whose value is one of these is excluded.
        reason: Why such rows are not the table's, in the mapping author's words.
    """

    column: str
    starts_with: tuple[str, ...] = ()
    values: tuple[str, ...] = ()
    reason: str = ""

    def describe(self) -> str:
        """The rule in words, e.g. ``InvoiceNo starts with 'C' (a cancellation)``."""
        parts = [f"starts with {v!r}" for v in self.starts_with]
        parts += [f"is {v!r}" for v in self.values]
        return f"{self.column} {' or '.join(parts)} ({self.reason})"


@dataclass(frozen=True)
class TableMapping:
    """How one export becomes one contract table (see the module docstring).

    Attributes:
        table: The contract table.
        path: The YAML file it came from (named in every error), or None for the default.
        file: File name or glob in the source folder; None: ``<table>`` with a known suffix.
        sheet: Sheet of an ``.xlsx`` file.
        delimiter: Field separator of a CSV file; None: detected.
        columns: Source column -> contract column.
        values: Contract column -> {source value -> contract value}; other values pass.
        date_formats: Contract column -> ``strptime`` format of its source text.
        missing_values: Text meaning "no value" (blanks always do).
        sentinels: Source column -> {value -> what it means}; the value loads as no value and
            reasons say what it means.
        labels: Source column -> how it reads in reasons.
        drop: Source columns not to use -> why.
        pii: Personal-data source columns; never read.
        protected: Protected-attribute source columns; kept for fairness audits only.
        not_personal: Columns whose name looks personal or protected but are not.
        not_outcome: Columns of a flat export whose name looks like the outcome but that are
            known before it (so not leakage).
        generate_id: The export has no id: the table's key is generated from the row position.
        exclude_rows: Rules for rows that are not the table's (contract tables only).
        flag: The outcome flag of a flat table (``converted``, ``churned``).
        claimed: File names or globs other sections of the mapping read: never this table's
            default file (a flat export called ``customers.csv`` is not the customers table).
    """

    table: Table
    path: Path | None = None
    file: str | None = None
    sheet: str | None = None
    delimiter: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    date_formats: dict[str, str] = field(default_factory=dict)
    missing_values: tuple[str, ...] = ("",)
    sentinels: dict[str, dict[str, str]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    drop: dict[str, str] = field(default_factory=dict)
    pii: tuple[str, ...] = ()
    protected: tuple[str, ...] = ()
    not_personal: tuple[str, ...] = ()
    not_outcome: tuple[str, ...] = ()
    generate_id: bool = False
    exclude_rows: tuple[RowExclusion, ...] = ()
    flag: Flag | None = None
    claimed: tuple[str, ...] = ()

    @property
    def is_default(self) -> bool:
        """No section: the file carries the contract's column names."""
        return self.path is None

    @property
    def named_columns(self) -> tuple[str, ...]:
        """Every source column the mapping names, in mapping order."""
        flag = (self.flag.column,) if self.flag else ()
        return (
            *self.columns,
            *flag,
            *self.drop,
            *self.pii,
            *self.protected,
            *self.not_personal,
            *self.not_outcome,
        )

    @property
    def ignored(self) -> frozenset[str]:
        """Source columns never loaded."""
        return frozenset((*self.drop, *self.pii))

    def source_of(self, contract_column: str) -> str | None:
        """The source column mapped to ``contract_column``, or None."""
        if self.flag and self.table.flag_column == contract_column:
            return self.flag.column
        for source, target in self.columns.items():
            if target == contract_column:
                return source
        return None

    def error(self, column: str | None, problem: str) -> MappingError:
        """A :class:`MappingError` naming this mapping, its table and the column."""
        where = f"{self.path or 'default mapping'}: {self.table.name}"
        return MappingError(
            f"{where}: column {column!r}: {problem}" if column else f"{where}: {problem}"
        )


def snake_case(name: str) -> str:
    """``"Time on Site (min)"`` -> ``"time_on_site_min"``, ``"SeniorCitizen"`` ->
    ``"senior_citizen"`` (camel case is split: exports name columns both ways)."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name.strip())
    return re.sub(r"[^0-9a-z]+", "_", words.lower()).strip("_")


def close_matches(name: str, candidates: list[str] | tuple[str, ...]) -> str:
    """Up to three candidates spelt like ``name``, for error messages."""
    by_lower = {c.lower(): c for c in candidates}
    matches = difflib.get_close_matches(name.lower(), list(by_lower), n=3, cutoff=0.6)
    return ", ".join(repr(by_lower[m]) for m in matches) or "none"


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key listed twice (PyYAML would silently keep the last one)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise MappingError(f"{key!r} is listed twice (line {key_node.start_mark.line + 1})")
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_unique_mapping,  # type: ignore[arg-type]
)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader)  # a SafeLoader
    except MappingError as exc:
        raise MappingError(f"{path}: {exc}") from exc
    except (OSError, yaml.YAMLError) as exc:
        raise MappingError(f"{path}: cannot read the mapping ({exc})") from exc
    if not isinstance(data, dict):
        raise MappingError(f"{path}: expected a YAML mapping with one section per table")
    return data


def _text(value: Any) -> str:
    # YAML reads 1 and yes as numbers and booleans; files hold text, so compare as text.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def _texts(where: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise MappingError(f"{where} must be a list, got {type(value).__name__}")
    return tuple(_text(v) for v in value)


def _text_map(where: str, value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MappingError(f"{where} must be a mapping, got {type(value).__name__}")
    return {_text(k): ("" if v is None else _text(v)) for k, v in value.items()}


def _nested_map(where: str, value: Any) -> dict[str, dict[str, str]]:
    return {k: _text_map(f"{where}.{k}", v) for k, v in _text_map_raw(where, value).items()}


def _text_map_raw(where: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MappingError(f"{where} must be a mapping, got {type(value).__name__}")
    return {_text(k): v for k, v in value.items()}


def _exclusions(where: str, value: Any) -> tuple[RowExclusion, ...]:
    rules = []
    for column, spec in _text_map_raw(where, value).items():
        if not isinstance(spec, dict) or set(spec) - {"starts_with", "values", "reason"}:
            raise MappingError(
                f"{where}.{column} must be {{starts_with: [...], values: [...], reason: ...}}"
            )
        starts_with = spec.get("starts_with")
        values = spec.get("values")
        rule = RowExclusion(
            column=column,
            starts_with=_texts(
                f"{where}.{column}.starts_with",
                [starts_with] if isinstance(starts_with, str | int) else starts_with,
            ),
            values=_texts(
                f"{where}.{column}.values", [values] if isinstance(values, str | int) else values
            ),
            reason="" if spec.get("reason") is None else _text(spec["reason"]),
        )
        if not (rule.starts_with or rule.values) or "" in (*rule.starts_with, *rule.values):
            raise MappingError(f"{where}.{column}: give non-empty starts_with or values")
        if not rule.reason:
            raise MappingError(f"{where}.{column}: excluded without a reason: write why")
        rules.append(rule)
    return tuple(rules)


def parse_table_mapping(table: Table, data: dict[str, Any], path: Path) -> TableMapping:
    """A checked mapping of ``table`` from its YAML section (see the module docstring).

    Raises:
        MappingError: An unknown key, a contract column that does not exist or is mapped twice,
            a required column left unmapped, an unknown date format, a dropped column without
            a reason, a source column in two places; the message names file, table and column.
    """
    where = f"{path}: {table.name}"
    allowed = _KEYS | ({table.flag_column} if table.flag_column else set())
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise MappingError(f"{where}: unknown key(s) {unknown}; expected {sorted(allowed)}")
    flag = None
    if table.flag_column and data.get(table.flag_column) is not None:
        spec = data[table.flag_column]
        if not isinstance(spec, dict) or "column" not in spec:
            raise MappingError(
                f"{where}: '{table.flag_column}' must be "
                "{column: <source column>, true_values: [...], false_values: [...]}"
            )
        true_values = _texts(f"{where}: {table.flag_column}.true_values", spec.get("true_values"))
        flag = Flag(
            column=_text(spec["column"]),
            true_values=tuple(v.lower() for v in true_values) or DEFAULT_TRUE_VALUES,
            false_values=tuple(
                v.lower()
                for v in _texts(
                    f"{where}: {table.flag_column}.false_values", spec.get("false_values")
                )
            ),
        )
    mapping = TableMapping(
        table=table,
        path=path,
        file=None if data.get("file") is None else _text(data["file"]),
        sheet=None if data.get("sheet") is None else _text(data["sheet"]),
        delimiter=None if data.get("delimiter") is None else str(data["delimiter"]),
        columns=_text_map(f"{where}: columns", data.get("columns")),
        values=_nested_map(f"{where}: values", data.get("values")),
        date_formats=_text_map(f"{where}: date_formats", data.get("date_formats")),
        missing_values=tuple(
            dict.fromkeys(("", *_texts(f"{where}: missing_values", data.get("missing_values"))))
        ),
        sentinels=_nested_map(f"{where}: sentinels", data.get("sentinels")),
        labels=_text_map(f"{where}: labels", data.get("labels")),
        drop=_text_map(f"{where}: drop", data.get("drop")),
        pii=_texts(f"{where}: pii", data.get("pii")),
        protected=_texts(f"{where}: protected", data.get("protected")),
        not_personal=_texts(f"{where}: not_personal", data.get("not_personal")),
        not_outcome=_texts(f"{where}: not_outcome", data.get("not_outcome")),
        generate_id=bool(data.get("generate_id", False)),
        exclude_rows=_exclusions(f"{where}: exclude_rows", data.get("exclude_rows")),
        flag=flag,
    )
    _check(mapping)
    return mapping


def _check(mapping: TableMapping) -> None:
    table = mapping.table
    contract = {c.name: c for c in table.columns}
    for source, target in mapping.columns.items():
        if target not in contract:
            raise mapping.error(
                source,
                f"maps to unknown contract column {target!r} (close matches: "
                f"{close_matches(target, tuple(contract))}; contract columns: "
                f"{', '.join(contract)})",
            )
    for target in dict.fromkeys(mapping.columns.values()):
        sources = [s for s, t in mapping.columns.items() if t == target]
        if len(sources) > 1:
            raise mapping.error(
                sources[1], f"contract column {target!r} is mapped twice (also from {sources[0]!r})"
            )
    if mapping.flag and table.flag_column in mapping.columns.values():
        raise mapping.error(mapping.flag.column, f"{table.flag_column!r} is mapped twice")
    if mapping.generate_id and table.key in mapping.columns.values():
        raise mapping.error(
            None, f"generate_id and a mapped {table.key!r}: keep one (generate_id numbers the rows)"
        )
    for name, section in (("values", mapping.values), ("date_formats", mapping.date_formats)):
        for target in section:
            if target not in contract:
                raise mapping.error(
                    target,
                    f"{name} names an unknown contract column (contract columns: "
                    f"{', '.join(contract)})",
                )
    for target, form in mapping.date_formats.items():
        if contract[target].type not in ("TIMESTAMP", "DATE"):
            raise mapping.error(target, f"date_formats on a {contract[target].type} column")
        if "%" not in form:
            raise mapping.error(target, f"date format {form!r} has no % directive (strptime)")
    for name, reason in mapping.drop.items():
        if not reason:
            raise mapping.error(name, "dropped without a reason: write why next to it")
    for rule in mapping.exclude_rows:
        if table.flat:
            raise mapping.error(rule.column, "exclude_rows is for contract tables only")
        if rule.column in mapping.ignored:
            raise mapping.error(
                rule.column, "excludes rows by a column that is dropped or personal (never read)"
            )
    counts: dict[str, int] = {}
    for name in mapping.named_columns:
        counts[name] = counts.get(name, 0) + 1
    twice = [n for n, c in counts.items() if c > 1]
    if twice:
        raise mapping.error(
            twice[0], "listed in more than one place (columns, flag, drop, pii, protected)"
        )
    if table.flag_column and table.flat and mapping.path is not None:
        outcomes = [c for c in table.outcome_columns if c in mapping.columns.values()]
        if mapping.flag:
            outcomes.append(table.flag_column)
        if not outcomes:
            raise mapping.error(
                None,
                f"no outcome mapped: map {' or '.join(repr(c) for c in table.outcome_columns)} "
                f"or give '{table.flag_column}: {{column: ..., true_values: [...]}}'",
            )
        if len(outcomes) > 1:
            raise mapping.error(
                None,
                f"map one outcome, not {' and '.join(repr(o) for o in outcomes)} "
                f"({table.flag_column} is derived from the date when that is mapped)",
            )


def default_mapping(table: Table) -> TableMapping:
    """The mapping of a table without a section: the file has the contract's column names."""
    return TableMapping(table=table)


def load_source_mapping(path: Path, tables: dict[str, Table]) -> dict[str, TableMapping]:
    """Read a folder's ``mapping.yaml``: one section per contract table.

    Args:
        path: The YAML file.
        tables: Contract tables by name (the sections may name only these).

    Raises:
        MappingError: The file is unreadable, names an unknown table, or a section is invalid.
    """
    path = Path(path)
    data = _read_yaml(path)
    unknown = sorted(set(data) - set(tables))
    if unknown:
        raise MappingError(
            f"{path}: unknown table(s) {unknown} (close matches: "
            f"{close_matches(unknown[0], tuple(tables))}); tables: {', '.join(tables)}"
        )
    mappings = {}
    for name, section in data.items():
        if not isinstance(section, dict):
            raise MappingError(f"{path}: {name} must be a mapping of settings, not {section!r}")
        mappings[name] = parse_table_mapping(tables[name], section, path)
    return mappings


def candidate_files(mapping: TableMapping, source_dir: Path) -> list[Path]:
    """The files of the table in ``source_dir``, sorted (a glob may match several).

    Without ``file`` in the mapping: ``<table>`` with one of :data:`FILE_SUFFIXES`.
    """
    source_dir = Path(source_dir)
    if mapping.file is None:
        return [
            source_dir / f"{mapping.table.name}{suffix}"
            for suffix in FILE_SUFFIXES
            if (source_dir / f"{mapping.table.name}{suffix}").is_file()
            and not any(
                fnmatch.fnmatch(f"{mapping.table.name}{suffix}", claimed)
                for claimed in mapping.claimed
            )
        ]
    pattern = mapping.file
    if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
        raise mapping.error(None, f"file {pattern!r} must name a file inside the source folder")
    return sorted(p for p in source_dir.glob(pattern) if p.is_file())


def source_mappings(path: Path | None, tables: dict[str, Table]) -> dict[str, TableMapping]:
    """Every table's mapping: its section of ``path``, else the default (contract names)."""
    sections = load_source_mapping(path, tables) if path is not None else {}
    claimed = tuple(m.file for m in sections.values() if m.file is not None)
    return {
        name: sections.get(name, replace(default_mapping(table), claimed=claimed))
        for name, table in tables.items()
    }
