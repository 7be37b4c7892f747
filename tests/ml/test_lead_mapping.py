"""Lead column mappings: YAML errors name file and column; loading types, quarantines, protects."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from ml.data.lead_mapping import (
    LEAD_COLUMNS,
    LeadMapping,
    MappingError,
    load_leads,
    load_mapping,
    read_leads,
    snake_case,
)

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 10, 1)

BASE_MAPPING = """\
columns:
  Lead ID: lead_id
  Create Date: created_at
  Original Source: source
  Number of Pageviews: page_views
  Time on Site (min): time_on_site_minutes
  Became a Customer Date: converted_at
missing_values: ["Select", ""]
pii: [Email]
protected: [Gender]
drop:
  Lead Status: set by sales after contact (leakage)
"""

EXPORT = """\
Lead ID,Email,Create Date,Original Source,Number of Pageviews,Time on Site (min),Became a Customer Date,Industry,Trial Started,Seats,Gender,Lead Status
L1,a@example.com,2026-01-05 10:00:00,Referrals,12,30.5,2026-01-20,Software,Yes,10,f,won
L2,b@example.com,2026-02-01,Select,3,,,Retail,No,5,m,open
,c@example.com,2026-02-02,Events,4,1,,Retail,No,1,f,open
L1,d@example.com,2026-02-03,Events,4,1,,Retail,No,1,f,open
L5,e@example.com,2026-02-04,Events,lots,1,,Select,No,2,m,open
L6,f@example.com,2026-02-05,Events,-2,1,,Retail,yes,3,f,open
L7,g@example.com,2031-01-01,Events,2,1,,Retail,no,4,m,open
L8,h@example.com,2026-03-01,Events,2,1,2026-02-01,Retail,No,6,f,open
L9,i@example.com,2026-03-02,,7,2.5,,,No,7.5,m,open
"""


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    yield connection
    connection.close()


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", ["examples/x_education", "examples/synthetic"])
def test_example_mappings_parse(path: str) -> None:
    mapping = load_mapping(ROOT / path / "leads_mapping.yaml")
    assert "lead_id" in mapping.columns.values()
    assert all(reason for reason in mapping.drop.values())


def test_x_education_mapping_drops_sales_columns() -> None:
    mapping = load_mapping(ROOT / "examples/x_education/leads_mapping.yaml")
    for column in ("Tags", "Lead Quality", "Lead Profile", "Last Notable Activity"):
        assert column in mapping.drop
    assert mapping.converted is not None and mapping.converted.true_values == ("1",)
    assert "Select" in mapping.missing_values


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("columns: {Lead ID: lead_id, Source: sourse, Won: converted_at}", "Source", "'source'"),
        ("columns: {Source: source, Won: converted_at}", None, "'lead_id' is not mapped"),
        ("columns: {Lead ID: lead_id, Source: source}", None, "no outcome mapped"),
        (
            "columns: {Lead ID: lead_id, A: source, B: source, Won: converted_at}",
            "B",
            "mapped twice",
        ),
        (
            "columns:\n  Lead ID: lead_id\n  Lead ID: source\n  Won: converted_at\n",
            "Lead ID",
            "listed twice",
        ),
        (
            "columns: {Lead ID: lead_id, Won: converted_at}\ndrop: {Tags: }",
            "Tags",
            "without a reason",
        ),
        (
            "columns: {Lead ID: lead_id, Email: source, Won: converted_at}\npii: [Email]",
            "Email",
            "more than one place",
        ),
        (
            "columns: {Lead ID: lead_id, Won: converted_at}\n"
            "converted: {column: Flag, true_values: [1]}",
            None,
            "map one outcome",
        ),
        ("colums: {Lead ID: lead_id}", None, "unknown section"),
    ],
)
def test_bad_mapping_names_file_and_column(
    tmp_path: Path, text: str, column: str | None, fragment: str
) -> None:
    path = _write(tmp_path, "bad_mapping.yaml", text)
    with pytest.raises(MappingError) as error:
        load_mapping(path)
    message = str(error.value)
    assert str(path) in message
    assert fragment in message
    if column:
        assert repr(column) in message


def test_mapped_column_missing_from_file_lists_close_matches(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    mapping = load_mapping(
        _write(
            tmp_path, "m.yaml", "columns: {Lead Id: lead_id, Lead Sorce: source, Won: converted}"
        )
    )
    export = _write(tmp_path, "leads.csv", "Lead ID,Lead Source,Won\nL1,Web,1\n")
    with pytest.raises(MappingError) as error:
        load_leads(con, export, mapping, tmp_path / "q", now=NOW)
    message = str(error.value)
    assert "m.yaml" in message and "'Lead Id'" in message and "leads.csv" in message
    assert "'Lead ID'" in message  # the close match


@pytest.mark.parametrize(
    ("header", "row", "column", "fragment"),
    [
        ("Email", "x@example.com", "Email", "personal data"),
        ("First Name", "Ann", "First Name", "personal data"),
        ("Gender", "f", "Gender", "protected attribute"),
        ("Notes", "call me at ann@example.com", "Notes", "e-mail addresses"),
    ],
)
def test_undeclared_personal_or_protected_column_stops_the_load(
    tmp_path: Path,
    con: duckdb.DuckDBPyConnection,
    header: str,
    row: str,
    column: str,
    fragment: str,
) -> None:
    mapping = load_mapping(_write(tmp_path, "m.yaml", "columns: {ID: lead_id, Won: converted}"))
    export = _write(tmp_path, "leads.csv", f"ID,Won,{header}\nL1,1,{row}\n")
    with pytest.raises(MappingError, match=f"column '{column}': .*{fragment}"):
        load_leads(con, export, mapping, tmp_path / "q", now=NOW)
    assert con.execute(
        "select count(*) from information_schema.tables where table_name = 'leads'"
    ).fetchall() == [(0,)]


def test_not_personal_clears_a_look_alike(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    mapping = load_mapping(
        _write(tmp_path, "m.yaml", "columns: {ID: lead_id, Won: converted}\nnot_personal: [Name]")
    )
    export = _write(tmp_path, "leads.csv", "ID,Won,Name\nL1,1,Plan A\n")
    result = load_leads(con, export, mapping, tmp_path / "q", now=NOW)
    assert result.attributes == {"attr_name": "VARCHAR"}


def test_load_types_quarantines_and_protects(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    mapping = load_mapping(_write(tmp_path, "mapping.yaml", BASE_MAPPING))
    export = _write(tmp_path, "leads.csv", EXPORT)
    result = load_leads(con, export, mapping, tmp_path / "quarantine", now=NOW)

    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (9, 3, 6)
    assert result.attributes == {
        "attr_industry": "VARCHAR",
        "attr_trial_started": "BOOLEAN",
        "attr_seats": "DOUBLE",
    }
    assert result.protected == ("protected_gender",)
    leads = read_leads(con)
    assert list(leads.columns) == [
        *LEAD_COLUMNS,
        "attr_industry",
        "attr_trial_started",
        "attr_seats",
        "protected_gender",
    ]
    assert list(leads["lead_id"]) == ["L1", "L2", "L9"]
    by_id = leads.set_index("lead_id")
    # "Select" and blanks are missing values; the outcome follows converted_at.
    assert pd.isna(by_id.loc["L2", "source"]) and pd.isna(by_id.loc["L9", "attr_industry"])
    assert by_id.loc["L1", "converted"] and not by_id.loc["L2", "converted"]
    assert by_id.loc["L1", "page_views"] == 12 and by_id.loc["L9", "attr_seats"] == 7.5
    assert pd.isna(by_id.loc["L2", "time_on_site_minutes"])
    # Personal data and dropped columns are never stored, not even in quarantine.
    quarantine = con.execute("select * from quarantine.leads order by row_number").df()
    for frame in (leads, quarantine):
        assert not {"Email", "email", "Lead Status"} & set(frame.columns)
        assert not frame.astype(str).apply(lambda c: c.str.contains("@")).any().any()

    reasons = dict(zip(quarantine["row_number"], quarantine["reason"], strict=True))
    assert reasons[4] == "lead_id: required value missing"
    assert "repeats row 2" in reasons[5]
    assert "page_views: 'lots' cannot be read as INTEGER" in reasons[6]
    assert "page_views: '-2' is negative" in reasons[7]
    assert "created_at" in reasons[8] and "in the future" in reasons[8]
    assert "converted_at" in reasons[9] and "before created_at" in reasons[9]
    assert pd.read_parquet(tmp_path / "quarantine" / "leads.parquet").shape[0] == 6
    problems = "\n".join(result.problems)
    assert (
        "leads.csv, column page_views: 1 row cannot be read as INTEGER (rows 6; e.g. 'lots')"
        in (problems)
    )
    assert "leads.csv, column lead_id: 1 row without a lead_id (rows 4)" in problems


def test_converted_flag_with_false_values_quarantines_unknown_values(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    mapping = load_mapping(
        _write(
            tmp_path,
            "m.yaml",
            "columns: {Prospect ID: lead_id}\n"
            "converted: {column: Converted, true_values: [1], false_values: [0]}",
        )
    )
    export = _write(tmp_path, "x.csv", "Prospect ID,Converted\na,1\nb,0\nc,maybe\nd,\n")
    result = load_leads(con, export, mapping, tmp_path / "q", now=NOW)
    leads = read_leads(con).set_index("lead_id")
    assert leads.loc["a", "converted"]
    assert not leads.loc["b", "converted"]
    assert pd.isna(leads.loc["d", "converted"])  # unknown outcome: not a training row
    assert result.rows_quarantined == 1
    reason = con.execute("select reason from quarantine.leads").fetchall()[0][0]
    assert reason == "converted: 'maybe' cannot be read as BOOLEAN"


def test_two_columns_with_the_same_attribute_name_clash(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    mapping = load_mapping(_write(tmp_path, "m.yaml", "columns: {ID: lead_id, Won: converted}"))
    export = _write(tmp_path, "leads.csv", "ID,Won,Deal Size,Deal-Size\nL1,1,3,4\n")
    with pytest.raises(MappingError, match=r"'Deal-Size'.*attr_deal_size"):
        load_leads(con, export, mapping, tmp_path / "q", now=NOW)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Time on Site (min)", "time_on_site_min"), ("  Lead Source ", "lead_source"), ("A-B", "a_b")],
)
def test_snake_case(name: str, expected: str) -> None:
    assert snake_case(name) == expected


def test_mapping_error_is_a_value_error() -> None:
    error = LeadMapping(Path("m.yaml"), {}).error("Lead Source", "not in leads.csv")
    assert isinstance(error, ValueError)
    assert str(error) == "m.yaml: column 'Lead Source': not in leads.csv"


def test_missing_ids_are_not_reported_as_repeats(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    mapping = load_mapping(
        _write(
            tmp_path, "m.yaml", "columns: {ID: lead_id, Won: converted}\nmissing_values: [Select]"
        )
    )
    export = _write(tmp_path, "leads.csv", "ID,Won\n,1\nSelect,0\na,1\na,0\n")
    result = load_leads(con, export, mapping, tmp_path / "q", now=NOW)
    reasons = con.execute("select row_number, reason from quarantine.leads").fetchall()
    assert reasons == [
        (2, "lead_id: required value missing"),
        (3, "lead_id: required value missing"),
        (5, "lead_id: 'a' repeats row 4"),
    ]
    assert "leads.csv, column lead_id: 2 rows without a lead_id (rows 2, 3)" in result.problems
