"""Flat exports (leads, customer snapshots) through a mapping: errors name file, table and column;
the load types, quarantines and protects, and keeps what each column means for reasons."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from textwrap import indent

import duckdb
import pandas as pd
import pytest

from ml.data.contract import CUSTOMER_SNAPSHOT_TABLE, FLAT_TABLES, LEADS_TABLE
from ml.data.flat_tables import FlatLoadResult, load_flat_table, read_flat_table
from ml.data.mapping import (
    MappingError,
    TableMapping,
    candidate_files,
    load_source_mapping,
    snake_case,
)
from ml.data.reading import ContractError
from ml.data.sources import load_mappings

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 10, 1)
LEAD_COLUMNS = [c.name for c in LEADS_TABLE.columns]

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


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def _mapping(
    folder: Path, section: str, table: str = "leads", file: str = "leads.csv"
) -> TableMapping:
    """The ``table`` section of a mapping.yaml holding ``file:`` and ``section``."""
    text = f"{table}:\n  file: {file!r}\n" + indent(section, "  ")
    return load_source_mapping(_write(folder, "mapping.yaml", text), FLAT_TABLES)[table]


def _load(con: duckdb.DuckDBPyConnection, folder: Path, mapping: TableMapping) -> FlatLoadResult:
    return load_flat_table(con, mapping, folder, folder / "quarantine", now=NOW)


def _reasons(con: duckdb.DuckDBPyConnection, table: str = "leads") -> dict[int, str]:
    return dict(con.execute(f"select row_number, reason from quarantine.{table}").fetchall())


@pytest.mark.parametrize("example", ["x_education", "synthetic"])
def test_example_lead_mappings_parse(example: str) -> None:
    mapping = load_source_mapping(ROOT / "examples" / example / "mapping.yaml", FLAT_TABLES)
    assert mapping["leads"].source_of("lead_id") is not None
    assert all(reason for reason in mapping["leads"].drop.values())


def test_x_education_mapping_drops_sales_columns() -> None:
    mapping = load_source_mapping(ROOT / "examples/x_education/mapping.yaml", FLAT_TABLES)["leads"]
    for column in ("Tags", "Lead Quality", "Lead Profile", "Last Notable Activity"):
        assert column in mapping.drop
    assert mapping.flag is not None and mapping.flag.true_values == ("1",)
    assert "Select" in mapping.missing_values


def test_telco_mapping_reads_churn_as_a_flag_and_protects_family_status() -> None:
    mapping = load_source_mapping(ROOT / "examples/telco/mapping.yaml", FLAT_TABLES)
    snapshot = mapping["customer_snapshot"]
    assert snapshot.flag is not None and snapshot.flag.column == "Churn"
    assert {"gender", "SeniorCitizen", "Partner", "Dependents"} <= set(snapshot.protected)


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("columns: {Lead ID: lead_id, Source: sourse, Won: converted_at}", "Source", "'source'"),
        ("columns: {Source: source}", None, "no outcome mapped"),
        (
            "columns: {Lead ID: lead_id, A: source, B: source, Won: converted_at}",
            "B",
            "mapped twice",
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
        (
            "columns: {Lead ID: lead_id, Won: converted_at}\ndate_formats: {created_at: 'dd/mm'}",
            "created_at",
            "no % directive",
        ),
        (
            "generate_id: true\ncolumns: {Lead ID: lead_id, Won: converted_at}",
            None,
            "keep one",
        ),
        ("colums: {Lead ID: lead_id}", None, "unknown key"),
    ],
)
def test_bad_mapping_names_file_table_and_column(
    tmp_path: Path, text: str, column: str | None, fragment: str
) -> None:
    with pytest.raises(MappingError) as error:
        _mapping(tmp_path, text)
    message = str(error.value)
    assert f"{tmp_path / 'mapping.yaml'}: leads" in message
    assert fragment in message
    if column:
        assert repr(column) in message


def test_a_column_listed_twice_in_the_yaml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="listed twice"):
        _mapping(tmp_path, "columns:\n  Lead ID: lead_id\n  Lead ID: source\n")


def test_unknown_table_section_lists_the_tables(tmp_path: Path) -> None:
    path = _write(tmp_path, "mapping.yaml", "lead:\n  file: x.csv\n")
    with pytest.raises(MappingError, match=r"unknown table\(s\) \['lead'\].*leads"):
        load_source_mapping(path, FLAT_TABLES)


def test_mapped_column_missing_from_file_lists_close_matches(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    mapping = _mapping(
        tmp_path,
        "columns: {Lead Id: lead_id, Lead Sorce: source}\nconverted: {column: Won}",
    )
    _write(tmp_path, "leads.csv", "Lead ID,Lead Source,Won\nL1,Web,1\n")
    with pytest.raises(MappingError) as error:
        _load(con, tmp_path, mapping)
    message = str(error.value)
    assert "mapping.yaml" in message and "'Lead Id'" in message and "leads.csv" in message
    assert "'Lead ID'" in message  # the close match


def test_missing_export_names_the_file(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    mapping = _mapping(tmp_path, "columns: {ID: lead_id}\nconverted: {column: Won}")
    with pytest.raises(ContractError, match=r"leads\.csv"):
        _load(con, tmp_path, mapping)


@pytest.mark.parametrize(
    ("header", "row", "column", "fragment"),
    [
        ("Email", "x@example.com", "Email", "personal data"),
        ("First Name", "Ann", "First Name", "personal data"),
        ("Gender", "f", "Gender", "protected attribute"),
        ("marital", "married", "marital", "protected attribute"),
        ("Senior Citizen", "1", "Senior Citizen", "protected attribute"),
        ("SeniorCitizen", "0", "SeniorCitizen", "protected attribute"),
        ("Age Band", "30-39", "Age Band", "protected attribute"),
        ("Notes", "call me at ann@example.com", "Notes", "e-mail addresses"),
        ("Deal Won", "yes", "Deal Won", "looks like the outcome"),
    ],
)
def test_undeclared_personal_protected_or_outcome_column_stops_the_load(
    tmp_path: Path,
    con: duckdb.DuckDBPyConnection,
    header: str,
    row: str,
    column: str,
    fragment: str,
) -> None:
    mapping = _mapping(tmp_path, "columns: {ID: lead_id}\nconverted: {column: Converted}")
    _write(tmp_path, "leads.csv", f"ID,Converted,{header}\nL1,1,{row}\n")
    with pytest.raises(MappingError, match=f"column '{column}': .*{fragment}"):
        _load(con, tmp_path, mapping)
    assert con.execute(
        "select count(*) from information_schema.tables where table_name = 'leads'"
    ).fetchall() == [(0,)]


@pytest.mark.parametrize(
    "column", ["Churn Reason", "Churn Score", "Churn Date", "Cancellation Date", "Exited"]
)
def test_snapshot_columns_that_look_like_churn_are_refused_unless_dropped(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, column: str
) -> None:
    export = f"CustomerID,Churn Value,{column},Tenure\nC1,1,x,3\nC2,0,,5\n"
    _write(tmp_path, "customers.csv", export)
    section = "columns: {CustomerID: customer_id}\nchurned: {column: Churn Value}\n"
    mapping = _mapping(tmp_path, section, "customer_snapshot", "customers.csv")
    with pytest.raises(MappingError, match=f"'{column}': looks like the outcome"):
        _load(con, tmp_path, mapping)

    dropped = section + f"drop: {{{column}: written after the customer left (leakage)}}\n"
    mapping = _mapping(tmp_path, dropped, "customer_snapshot", "customers.csv")
    result = _load(con, tmp_path, mapping)
    assert result.rows_loaded == 2 and result.attributes == {"attr_tenure": "DOUBLE"}
    assert column in result.dropped


def test_not_outcome_clears_a_look_alike(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    mapping = _mapping(
        tmp_path,
        "columns: {ID: customer_id}\nchurned: {column: Churn}\nnot_outcome: [Cancellation Policy]",
        "customer_snapshot",
        "c.csv",
    )
    _write(tmp_path, "c.csv", "ID,Churn,Cancellation Policy\nC1,1,30 days\n")
    assert _load(con, tmp_path, mapping).attributes == {"attr_cancellation_policy": "VARCHAR"}


def test_not_personal_clears_a_look_alike(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    mapping = _mapping(
        tmp_path, "columns: {ID: lead_id}\nconverted: {column: Won}\nnot_personal: [Name]"
    )
    _write(tmp_path, "leads.csv", "ID,Won,Name\nL1,1,Plan A\n")
    assert _load(con, tmp_path, mapping).attributes == {"attr_name": "VARCHAR"}


def test_load_types_quarantines_and_protects(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    mapping = _mapping(tmp_path, BASE_MAPPING)
    _write(tmp_path, "leads.csv", EXPORT)
    result = _load(con, tmp_path, mapping)

    assert (result.rows_read, result.rows_loaded, result.rows_quarantined) == (9, 3, 6)
    assert result.attributes == {
        "attr_industry": "VARCHAR",
        "attr_trial_started": "BOOLEAN",
        "attr_seats": "DOUBLE",
    }
    assert result.protected == ("protected_gender",)
    leads = read_flat_table(con, LEADS_TABLE).rows
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

    reasons = _reasons(con)
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
        in problems
    )
    assert "leads.csv, column lead_id: 1 row without a lead_id (rows 4)" in problems


def test_flag_with_false_values_quarantines_unknown_values(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    mapping = _mapping(
        tmp_path,
        "columns: {Prospect ID: lead_id}\n"
        "converted: {column: Converted, true_values: [1], false_values: [0]}",
        file="x.csv",
    )
    _write(tmp_path, "x.csv", "Prospect ID,Converted\na,1\nb,0\nc,maybe\nd,\n")
    result = _load(con, tmp_path, mapping)
    leads = read_flat_table(con, LEADS_TABLE).rows.set_index("lead_id")
    assert leads.loc["a", "converted"]
    assert not leads.loc["b", "converted"]
    assert pd.isna(leads.loc["d", "converted"])  # unknown outcome: not a training row
    assert result.rows_quarantined == 1
    assert list(_reasons(con).values()) == ["converted: 'maybe' cannot be read as BOOLEAN"]


def test_two_columns_with_the_same_attribute_name_clash(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    mapping = _mapping(tmp_path, "columns: {ID: lead_id}\nconverted: {column: Won}")
    _write(tmp_path, "leads.csv", "ID,Won,Deal Size,Deal-Size\nL1,1,3,4\n")
    with pytest.raises(MappingError, match=r"'Deal-Size'.*attr_deal_size"):
        _load(con, tmp_path, mapping)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Time on Site (min)", "time_on_site_min"),
        ("  Lead Source ", "lead_source"),
        ("A-B", "a_b"),
        ("SeniorCitizen", "senior_citizen"),
        ("customerID", "customer_id"),
    ],
)
def test_snake_case(name: str, expected: str) -> None:
    assert snake_case(name) == expected


def test_mapping_error_is_a_value_error() -> None:
    error = TableMapping(LEADS_TABLE, Path("m.yaml")).error("Lead Source", "not in leads.csv")
    assert isinstance(error, ValueError)
    assert str(error) == "m.yaml: leads: column 'Lead Source': not in leads.csv"


def test_missing_ids_are_not_reported_as_repeats(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    mapping = _mapping(
        tmp_path, "columns: {ID: lead_id}\nconverted: {column: Won}\nmissing_values: [Select]"
    )
    _write(tmp_path, "leads.csv", "ID,Won\n,1\nSelect,0\na,1\na,0\n")
    result = _load(con, tmp_path, mapping)
    assert _reasons(con) == {
        2: "lead_id: required value missing",
        3: "lead_id: required value missing",
        5: "lead_id: 'a' repeats row 4",
    }
    assert "leads.csv, column lead_id: 2 rows without a lead_id (rows 2, 3)" in result.problems


def test_formula_like_text_is_quarantined_as_in_contract_tables(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    mapping = _mapping(tmp_path, "columns: {ID: lead_id, Src: source}\nconverted: {column: Won}")
    _write(
        tmp_path,
        "leads.csv",
        'ID,Won,Src,Industry\nL1,1,Web,Retail\nL2,0,=HYPERLINK("x"),Retail\nL3,0,Web,@SUM(A1)\n',
    )
    result = _load(con, tmp_path, mapping)
    assert result.rows_loaded == 1 and result.rows_quarantined == 2
    reasons = _reasons(con)
    assert reasons[3].startswith("source: ") and reasons[4].startswith("attr_industry: ")
    assert any("leads.csv, column source" in line for line in result.problems)


def test_one_bad_value_in_a_number_column_is_named_and_quarantined(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    rows = "".join(f"L{i},0,{i * 10}\n" for i in range(60))
    mapping = _mapping(tmp_path, "columns: {ID: lead_id}\nconverted: {column: Won}")
    _write(tmp_path, "leads.csv", "ID,Won,Budget\n" + rows + "L99,1,29 EUR\n")
    result = _load(con, tmp_path, mapping)
    assert result.attributes == {"attr_budget": "DOUBLE"}  # the column stays numeric
    assert result.rows_quarantined == 1
    assert _reasons(con) == {62: "attr_budget: '29 EUR' is not a number"}
    assert any(
        "leads.csv, column attr_budget: 1 row not a number in a number column" in line
        and "'29 EUR'" in line
        for line in result.problems
    )


def test_a_mostly_text_column_stays_text(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    mapping = _mapping(tmp_path, "columns: {ID: lead_id}\nconverted: {column: Won}")
    _write(tmp_path, "leads.csv", "ID,Won,Plan\nL1,0,1\nL2,1,gold\nL3,0,2\n")
    result = _load(con, tmp_path, mapping)
    assert result.attributes == {"attr_plan": "VARCHAR"} and result.rows_quarantined == 0


def test_sentinels_load_as_missing_and_labels_are_kept(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    mapping = _mapping(
        tmp_path,
        "columns: {ID: lead_id}\nconverted: {column: y}\n"
        "sentinels: {pdays: {'-1': never contacted, '999': never contacted}}\n"
        "labels: {pdays: days since the last contact, poutcome: outcome of the last campaign}\n",
    )
    _write(tmp_path, "leads.csv", "ID,y,pdays,poutcome\nA,1,-1,success\nB,0,12,failure\nC,0,999,\n")
    _load(con, tmp_path, mapping)
    flat = read_flat_table(con, LEADS_TABLE)
    assert flat.rows.set_index("lead_id")["attr_pdays"].isna().to_dict() == {
        "A": True,
        "B": False,
        "C": True,
    }
    assert flat.labels["attr_pdays"] == "days since the last contact"
    assert flat.labels["attr_poutcome"] == "outcome of the last campaign"
    assert flat.missing_meanings == {"attr_pdays": "never contacted"}


def test_generated_ids_number_the_rows(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    mapping = _mapping(tmp_path, "generate_id: true\nconverted: {column: Won}")
    _write(tmp_path, "leads.csv", "Won,Visits\n1,3\n0,4\n0,5\n")
    result = _load(con, tmp_path, mapping)
    ids = list(read_flat_table(con, LEADS_TABLE).rows["lead_id"])
    assert result.rows_loaded == 3 and len(set(ids)) == 3
    _load(con, tmp_path, mapping)  # the same file gives the same ids
    assert list(read_flat_table(con, LEADS_TABLE).rows["lead_id"]) == ids


def test_an_unmapped_id_without_generate_id_is_an_error(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    mapping = _mapping(tmp_path, "converted: {column: Won}")
    _write(tmp_path, "leads.csv", "Won,Visits\n1,3\n")
    with pytest.raises(MappingError, match="generate_id"):
        _load(con, tmp_path, mapping)


def test_semicolon_delimited_export_with_a_date_format(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    mapping = _mapping(
        tmp_path,
        "delimiter: ';'\ncolumns: {ID: lead_id, Erstellt: created_at}\n"
        "converted: {column: Won}\ndate_formats: {created_at: '%d.%m.%Y'}\n",
    )
    _write(tmp_path, "leads.csv", "ID;Won;Erstellt;Umsatz\nA;1;05.01.2026;3,5\nB;0;31.12.2025;4\n")
    result = _load(con, tmp_path, mapping)
    rows = read_flat_table(con, LEADS_TABLE).rows.set_index("lead_id")
    assert result.rows_quarantined == 0
    assert rows.loc["A", "created_at"] == pd.Timestamp("2026-01-05")
    assert rows.loc["B", "created_at"] == pd.Timestamp("2025-12-31")


def test_a_glob_reads_several_files_as_one_table(
    tmp_path: Path, con: duckdb.DuckDBPyConnection
) -> None:
    mapping = _mapping(
        tmp_path, "columns: {ID: lead_id}\nconverted: {column: Won}", file="part-*.csv"
    )
    _write(tmp_path, "part-1.csv", "ID,Won\nA,1\nB,0\n")
    _write(tmp_path, "part-2.csv", "ID,Won\nC,0\nA,0\n")
    result = _load(con, tmp_path, mapping)
    assert result.rows_read == 4 and result.rows_loaded == 3
    (row,) = con.execute("select source_file, row_number, reason from quarantine.leads").fetchall()
    assert row[0].endswith("part-2.csv") and row[1] == 3 and "repeats" in row[2]


def test_xlsx_export_loads_like_its_csv(tmp_path: Path, con: duckdb.DuckDBPyConnection) -> None:
    frame = pd.DataFrame(
        {
            "customerID": ["C1", "C2", "C3"],
            "Churn": ["Yes", "No", "No"],
            "tenure": [1, 30, 12],
            "Contract": ["Month-to-month", "Two year", "One year"],
        }
    )
    frame.to_excel(tmp_path / "Churn.xlsx", sheet_name="Customers", index=False)
    mapping = _mapping(
        tmp_path,
        "sheet: Customers\ncolumns: {customerID: customer_id}\n"
        "churned: {column: Churn, true_values: ['Yes'], false_values: ['No']}\n",
        "customer_snapshot",
        "Churn.xlsx",
    )
    result = _load(con, tmp_path, mapping)
    rows = read_flat_table(con, CUSTOMER_SNAPSHOT_TABLE).rows.set_index("customer_id")
    assert result.rows_loaded == 3
    assert result.attributes == {"attr_tenure": "DOUBLE", "attr_contract": "VARCHAR"}
    assert rows["churned"].to_dict() == {"C1": True, "C2": False, "C3": False}
    assert rows.loc["C2", "attr_tenure"] == 30


def test_a_file_another_section_reads_is_not_a_default_table_file(tmp_path: Path) -> None:
    _write(tmp_path, "customers.csv", "ID,Churn\nC1,1\n")
    _write(
        tmp_path,
        "mapping.yaml",
        "customer_snapshot:\n  file: customers.csv\n  columns: {ID: customer_id}\n"
        "  churned: {column: Churn}\n",
    )
    mappings = load_mappings(tmp_path / "mapping.yaml")
    assert candidate_files(mappings["customers"], tmp_path) == []
    assert candidate_files(mappings["customer_snapshot"], tmp_path) == [tmp_path / "customers.csv"]
    # Without the mapping, customers.csv is the customers table.
    assert candidate_files(load_mappings(None)["customers"], tmp_path) == [
        tmp_path / "customers.csv"
    ]
