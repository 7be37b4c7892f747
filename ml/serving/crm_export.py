"""CRM bulk files from the change feed: Salesforce Bulk API 2.0 upsert CSV and HubSpot import CSV.

The rows are the newest feed row per customer or lead over the chosen publishes (by default the
newest publish; with ``since``, every publish after that one, so a sync that missed some
catches up). Field names come from a small YAML (``ml/serving/crm_fields.yml``). What each format
documents, and what the files do about it:

* **Salesforce Bulk API 2.0 ingest** (``operation: upsert``): UTF-8 without a byte-order mark; a
  header row of field API names, the External ID field first; comma delimiter and LF line
  endings (the job's defaults, written into ``<object>.job.json``, the body of the job-create
  request); quotes only where a value holds a comma, quote or line break, quotes doubled;
  dateTime as ``yyyy-MM-ddTHH:mm:ss.SSSZ`` (UTC), numbers in plain decimals; an empty value is
  ignored by an update, so a value that is now empty is written ``#N/A`` (Salesforce's null).
  At most 100 MB of CSV per upload (150 MB after base64): a bigger export is several files,
  one upload each.
* **HubSpot import**: CSV in UTF-8 with a header row of property internal names, the unique
  identifier property first; dates as ``YYYY-MM-DD`` (choose year-month-day in the import);
  an empty cell leaves the property as it is. At most ``max_file_bytes`` per file (20 MB on free
  tools) and ``max_rows`` rows (1,048,576 with the header), and under 1,000 columns.

Files are split without reading a row into Python: DuckDB computes an upper bound of each CSV
line's bytes (every value as if quoted), a running total numbers the files so that no file can
pass the limits, and each file is one ``COPY``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ml.core.warehouse import qualified, quote_ident, sql_literal
from ml.serving.changes import SCORE_CHANGES
from ml.serving.publishing import base_tables
from ml.serving.tables import SERVING_SCHEMA

CrmFormat = Literal["salesforce", "hubspot"]
FORMATS: tuple[CrmFormat, ...] = ("salesforce", "hubspot")
DEFAULT_FIELDS_FILE = Path(__file__).with_name("crm_fields.yml")

SALESFORCE_NULL = "#N/A"
SALESFORCE_DATETIME = "%Y-%m-%dT%H:%M:%S.%gZ"  # DuckDB strftime: %g is milliseconds
HUBSPOT_DATE = "%Y-%m-%d"
SALESFORCE_HEADER_CHARS = 32_000  # the longest header row Bulk API 2.0 accepts
HUBSPOT_MAX_COLUMNS = 999  # "less than 1000 columns"
NEWLINE = "\n"

# Salesforce field API names (custom ones end in __c) and HubSpot internal names.
_NAME_RULES = {
    "salesforce": re.compile(r"^[A-Za-z][A-Za-z0-9_]*$"),
    "hubspot": re.compile(r"^[a-z][a-z0-9_]*$"),
}
_ENTITY_ID = {"customer": "customer_id", "lead": "lead_id"}


class CrmObject(BaseModel):
    """Where one entity type's rows go in the CRM."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    object: str = Field(description="Salesforce sObject API name / HubSpot object type")
    id_field: str = Field(description="CRM field holding the CRM Signals id (the match key)")
    fields: dict[str, str] = Field(description="feed column -> CRM field name")

    @model_validator(mode="after")
    def _known_columns_once(self) -> CrmObject:
        unknown = sorted(set(self.fields) - set(SCORE_CHANGES.column_names))
        if unknown:
            raise ValueError(
                f"unknown feed columns {unknown}; serving.score_changes has "
                f"{', '.join(SCORE_CHANGES.column_names)}"
            )
        names = [self.id_field, *self.fields.values()]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"CRM field names used twice: {repeated}")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", self.object):
            raise ValueError(f"object {self.object!r} is not a plain API name")
        return self


class FormatFields(BaseModel):
    """One format's objects and per-file limits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_file_bytes: int = Field(gt=1024)
    max_rows: int | None = Field(default=None, gt=0)
    customer: CrmObject | None = None
    lead: CrmObject | None = None


class CrmFields(BaseModel):
    """The field mapping of every format (``crm_fields.yml``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    salesforce: FormatFields
    hubspot: FormatFields

    @model_validator(mode="after")
    def _names_fit_the_format(self) -> CrmFields:
        for crm in FORMATS:
            rule = _NAME_RULES[crm]
            for entity, target in _objects(getattr(self, crm)).items():
                bad = [n for n in (target.id_field, *target.fields.values()) if not rule.match(n)]
                if bad:
                    raise ValueError(
                        f"{crm}.{entity}: {bad} are not {crm} field names ({rule.pattern})"
                    )
                if crm == "hubspot" and len(target.fields) + 1 > HUBSPOT_MAX_COLUMNS:
                    raise ValueError(f"hubspot.{entity}: HubSpot imports under 1,000 columns")
                header = ",".join((target.id_field, *target.fields.values()))
                if crm == "salesforce" and len(header) > SALESFORCE_HEADER_CHARS:
                    raise ValueError(f"salesforce.{entity}: the header passes 32,000 characters")
        return self


def _objects(fields: FormatFields) -> dict[str, CrmObject]:
    return {
        entity: target
        for entity, target in (("customer", fields.customer), ("lead", fields.lead))
        if target is not None
    }


class CrmFieldsError(ValueError):
    """The field mapping file cannot be used; the message names the file and the field."""


def load_crm_fields(path: Path = DEFAULT_FIELDS_FILE) -> CrmFields:
    """Read and check a field mapping file.

    Raises:
        CrmFieldsError: The file cannot be read, is not YAML, or a key or name is wrong.
    """
    try:
        data: Any = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        return CrmFields.model_validate(data)
    except (OSError, yaml.YAMLError) as error:
        raise CrmFieldsError(f"{path}: cannot be read as YAML: {error}") from error
    except ValidationError as error:
        problems = "; ".join(
            ": ".join(
                part
                for part in (
                    ".".join(str(p) for p in e["loc"]),
                    e["msg"].removeprefix("Value error, "),
                )
                if part
            )
            for e in error.errors()
        )
        raise CrmFieldsError(f"{path}: {problems}") from error


@dataclass(frozen=True)
class CrmFile:
    """One written file."""

    path: Path
    entity_type: str
    rows: int
    bytes: int


@dataclass(frozen=True)
class CrmExport:
    """What :func:`export_changes` wrote.

    Attributes:
        publishes: The feed publishes the rows come from, oldest first, with their time.
        files: The CSV files, per entity type in order.
        jobs: Salesforce only: the job-create request bodies written next to the files.
    """

    publishes: list[tuple[str, datetime]]
    files: list[CrmFile]
    jobs: list[Path]


def _publishes(con: duckdb.DuckDBPyConnection, since: str | None) -> list[tuple[str, datetime]]:
    """The publishes to export, oldest first: the newest, or every one after ``since`` (a
    publish id, or a time: the ``published_at`` a sync stored)."""
    if SCORE_CHANGES.name not in base_tables(con, SERVING_SCHEMA):
        raise ValueError(
            "serving.score_changes does not exist yet: run the pipeline (make run) first"
        )
    feed = qualified(SERVING_SCHEMA, SCORE_CHANGES.name)
    # A publish with no changes has no rows, so the feed's own publish ids are the ones to know.
    runs = [
        (str(publish_id), at)
        for publish_id, at in con.execute(
            f"select publish_id, max(published_at) as at from {feed} group by 1 order by 2, 1"
        ).fetchall()
    ]
    if since is None:
        return runs[-1:]
    try:
        # A time works even when erasure emptied the publish a sync remembers.
        after = datetime.fromisoformat(since.removesuffix("Z"))
    except ValueError:
        ids = [publish_id for publish_id, _ in runs]
        if since not in ids:
            raise ValueError(
                f"publish {since!r} is not in serving.score_changes (it holds only publishes "
                f"that changed something; pass its published_at instead); newest: "
                f"{', '.join(ids[-5:]) or 'none'}"
            ) from None
        return runs[ids.index(since) + 1 :]
    return [(publish_id, at) for publish_id, at in runs if at > after]


def _value_sql(column: str, duck_type: str, crm: CrmFormat) -> str:
    """The column as the CRM wants its text; NULL stays NULL (empty in the file)."""
    ident = quote_ident(column)
    if duck_type == "TIMESTAMP":
        return (
            f"strftime({ident}, '{SALESFORCE_DATETIME}')"
            if crm == "salesforce"
            else f"strftime({ident}, '{HUBSPOT_DATE}')"
        )
    if duck_type == "DOUBLE":
        # Plain decimals: DuckDB would write 1e-05 for a small probability.
        return f"rtrim(rtrim(printf('%.6f', {ident}), '0'), '.')"
    # The empty string is no value in a CRM either.
    return f"nullif(cast({ident} as varchar), '')"


def _select_sql(target: CrmObject, entity: str, crm: CrmFormat, publishes: list[str]) -> str:
    types = dict(SCORE_CHANGES.columns)
    entity_id = _ENTITY_ID[entity]
    columns = [(target.id_field, quote_ident(entity_id))] + [
        (name, _value_sql(column, types[column], crm)) for column, name in target.fields.items()
    ]
    if crm == "salesforce":
        # An empty cell is ignored by an update; #N/A sets the field to null.
        columns = [columns[0]] + [
            (name, f"coalesce({value}, '{SALESFORCE_NULL}')") for name, value in columns[1:]
        ]
    values = ", ".join(f"{value} as {quote_ident(name)}" for name, value in columns)
    # An upper bound of the line's bytes: every value quoted, its quotes doubled, separators,
    # newline. What DuckDB writes is never longer, so files cut on it stay under the limits.
    line_bytes = " + ".join(
        f"coalesce(strlen({quote_ident(name)}) + 2 + "
        f"length({quote_ident(name)}) - length(replace({quote_ident(name)}, '\"', '')), 0)"
        for name, _ in columns
    )
    line_bytes += f" + {len(columns) - 1 + len(NEWLINE)}"
    chosen = (
        f"publish_id in ({', '.join(sql_literal(p) for p in publishes)})" if publishes else "false"
    )
    return (
        f"with newest as (select * from {qualified(SERVING_SCHEMA, SCORE_CHANGES.name)} "
        f"where entity_type = {sql_literal(entity)} and {chosen} "
        f"qualify row_number() over (partition by {quote_ident(entity_id)} "
        "order by published_at desc, publish_id desc) = 1), "
        f"formatted as (select {values} from newest) "
        f"select *, {line_bytes} as _line_bytes from formatted "
        f"order by {quote_ident(target.id_field)}"
    )


def _write_entity(
    con: duckdb.DuckDBPyConnection,
    target: CrmObject,
    entity: str,
    crm: CrmFormat,
    limits: FormatFields,
    publishes: list[str],
    out_dir: Path,
) -> list[CrmFile]:
    # Parts of an earlier, bigger export in the same folder would be uploaded again as new.
    for stale in out_dir.glob(f"{target.object}-{entity}-*.csv"):
        stale.unlink()
    header = ",".join((target.id_field, *target.fields.values())) + NEWLINE
    room = limits.max_file_bytes - len(header.encode())
    staged = f"_crm_{entity}"
    con.execute(
        f"create or replace temp table {staged} as {_select_sql(target, entity, crm, publishes)}"
    )
    try:
        (widest,) = con.execute(
            f"select coalesce(max(_line_bytes), 0) from {staged}"
        ).fetchone() or (0,)
        if widest > room:
            raise ValueError(
                f"a {entity} row needs up to {widest} bytes, more than a {crm} file may hold "
                f"({limits.max_file_bytes} bytes with the header)"
            )
        # A file starts at each multiple of (room - widest) bytes of the running total, so a
        # file holds less than room bytes; the row limit cuts as well, whichever comes first.
        span = max(room - int(widest), 1)
        order = f"order by {quote_ident(target.id_field)}"
        row_part = (
            f"(row_number() over ({order}) - 1) // {limits.max_rows}" if limits.max_rows else "0"
        )
        con.execute(
            f"create or replace temp table {staged}_files as select *, dense_rank() over ("
            "order by _byte_part, _row_part) as _file from (select *, "
            f"coalesce(sum(_line_bytes) over ({order} rows between unbounded preceding "
            f"and 1 preceding), 0) // {span} as _byte_part, {row_part} as _row_part "
            f"from {staged})"
        )
        parts = con.execute(
            f"select _file, count(*) from {staged}_files group by 1 order by 1"
        ).fetchall()
        names = [quote_ident(n) for n in (target.id_field, *target.fields.values())]
        written = []
        for number, count in parts or [(1, 0)]:  # nothing changed: a file with the header only
            path = out_dir / f"{target.object}-{entity}-{int(number):03d}.csv"
            con.execute(
                f"copy (select {', '.join(names)} from {staged}_files where _file = ? "
                f"order by {names[0]}) to ? (format csv, header true, delimiter ',', "
                f"quote '\"', escape '\"', new_line '{NEWLINE}')",
                [int(number), str(path)],
            )
            written.append(CrmFile(path, entity, int(count), path.stat().st_size))
        return written
    finally:
        con.execute(f"drop table if exists {staged}_files")
        con.execute(f"drop table if exists {staged}")


def export_changes(
    con: duckdb.DuckDBPyConnection,
    crm: CrmFormat,
    out_dir: Path,
    fields: CrmFields,
    since: str | None = None,
) -> CrmExport:
    """Write the change feed as one CRM's bulk CSV files (see the module docstring).

    Args:
        con: Warehouse connection (read-only is enough).
        crm: ``salesforce`` or ``hubspot``.
        out_dir: Folder for the files (created; earlier files of the same objects are removed,
            so no part of an earlier export is left to be uploaded again).
        fields: The field mapping (:func:`load_crm_fields`).
        since: Export every publish after this one (a publish id or a ``published_at`` time;
            the newest row per entity); None: the newest publish.

    Returns:
        The files written (a header-only file per entity when nothing changed).

    Raises:
        ValueError: No feed yet, an unknown ``since``, or a row longer than a file may be.
    """
    publishes = _publishes(con, since)
    publish_ids = [publish_id for publish_id, _ in publishes]
    limits: FormatFields = getattr(fields, crm)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[CrmFile] = []
    jobs: list[Path] = []
    for entity, target in _objects(limits).items():
        files += _write_entity(con, target, entity, crm, limits, publish_ids, out_dir)
        if crm == "salesforce":
            job = out_dir / f"{target.object}-{entity}.job.json"
            job.write_text(
                json.dumps(
                    {
                        "object": target.object,
                        "externalIdFieldName": target.id_field,
                        "contentType": "CSV",
                        "operation": "upsert",
                        "columnDelimiter": "COMMA",
                        "lineEnding": "LF",
                    },
                    indent=2,
                )
                + "\n"
            )
            jobs.append(job)
    return CrmExport(publishes, files, jobs)
