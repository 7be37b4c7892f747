"""CRM bulk files from the change feed, held to the formats' documented rules.

Salesforce Bulk API 2.0 ingest: UTF-8, header row of field API names, comma, LF as declared in
the job, dateTime yyyy-MM-ddTHH:mm:ss.SSSZ, #N/A for null, at most 100 MB per upload. HubSpot
import: UTF-8 CSV with a header row of property names, dates YYYY-MM-DD, file size and row limits,
under 1,000 columns. The split is tested with small configured limits.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from ml.core.warehouse import connect
from ml.serving.changes import SCORE_CHANGES
from ml.serving.crm_export import (
    FORMATS,
    CrmFields,
    CrmFieldsError,
    CrmFormat,
    export_changes,
    load_crm_fields,
)
from ml.serving.tables import publish

FIRST_AT = datetime(2026, 9, 1, 6, 0, 5, 250000)
SECOND_AT = datetime(2026, 9, 2, 6, 0)
BEFORE_BOTH = "2026-08-01T00:00:00Z"  # --since as a time: every publish of the fixture
# What CSV must carry intact: a comma, quotes, a line break, non-ASCII letters and the euro sign.
AWKWARD = 'raises risk: 3 tickets, "urgent"\nlogins fell; Müller pays € 40'


def _feed(publish_id: str, at: datetime, customers: list[str], leads: list[str]) -> pd.DataFrame:
    rows = [
        {
            "publish_id": publish_id,
            "published_at": at,
            "entity_type": "customer",
            "customer_id": c,
            "lead_id": None,
            "change": "new",
            "changed_fields": "risk_band,action,reason",
            "new_risk_band": "high",
            "new_action": None if c.endswith("0") else "retention_call",
            "new_reason": AWKWARD,
            "probability": 0.00001 if c.endswith("1") else 0.725,
            "model_version": "4",
        }
        for c in customers
    ] + [
        {
            "publish_id": publish_id,
            "published_at": at,
            "entity_type": "lead",
            "customer_id": None,
            "lead_id": lead,
            "change": "new",
            "changed_fields": "grade,reason",
            "new_grade": "A",
            "new_reason": "raises conversion: Referrals",
            "probability": 0.8,
            "model_version": "2",
        }
        for lead in leads
    ]
    frame = pd.DataFrame(rows)
    for column in SCORE_CHANGES.column_names:
        if column not in frame:
            frame[column] = None
    return frame


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with connect(tmp_path / "warehouse.duckdb", threads=1, memory_limit="1GB") as connection:
        exports = tmp_path / "exports"
        customers = [f"C-{i:03d}" for i in range(40)]
        publish(
            connection, SCORE_CHANGES, _feed("run-1", FIRST_AT, customers, ["L-1", "L-2"]), exports
        )
        publish(connection, SCORE_CHANGES, _feed("run-2", SECOND_AT, ["C-005"], ["L-2"]), exports)
        yield connection


def _read(path: Path) -> tuple[bytes, list[dict[str, str]]]:
    raw = path.read_bytes()
    text = raw.decode("utf-8")  # strict: fails on anything but UTF-8
    return raw, list(csv.DictReader(io.StringIO(text, newline="")))


def _fields(**limits: int) -> CrmFields:
    data = load_crm_fields().model_dump()
    for crm in ("salesforce", "hubspot"):
        data[crm].update(limits)
    return CrmFields.model_validate(data)


def test_salesforce_upsert_files_follow_bulk_api_2_rules(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    out = tmp_path / "sf"
    export = export_changes(con, "salesforce", out, load_crm_fields(), since="run-1")
    assert export.publishes == [("run-2", SECOND_AT)]
    files = {f.path.name: f for f in export.files}
    assert set(files) == {"Contact-customer-001.csv", "Lead-lead-001.csv"}
    raw, rows = _read(out / "Contact-customer-001.csv")
    assert not raw.startswith(b"\xef\xbb\xbf")  # no byte-order mark
    assert raw.split(b"\n", 1)[0] == (
        b"CRM_Signals_Id__c,Churn_Risk_Band__c,Churn_Reason__c,Next_Best_Action__c,"
        b"Churn_Probability__c,Churn_Model_Version__c,CRM_Signals_Published_At__c"
    )
    assert b"\r" not in raw  # LF, as the job declares
    assert rows == [
        {
            "CRM_Signals_Id__c": "C-005",
            "Churn_Risk_Band__c": "high",
            "Churn_Reason__c": AWKWARD,
            "Next_Best_Action__c": "retention_call",
            "Churn_Probability__c": "0.725",
            "Churn_Model_Version__c": "4",
            "CRM_Signals_Published_At__c": "2026-09-02T06:00:00.000Z",
        }
    ]
    job = json.loads((out / "Contact-customer.job.json").read_text())
    assert job == {
        "object": "Contact",
        "externalIdFieldName": "CRM_Signals_Id__c",
        "contentType": "CSV",
        "operation": "upsert",
        "columnDelimiter": "COMMA",
        "lineEnding": "LF",
    }
    assert (files["Lead-lead-001.csv"].rows, files["Contact-customer-001.csv"].rows) == (1, 1)


def test_by_default_the_newest_publish_is_exported(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    export = export_changes(con, "salesforce", tmp_path / "sf", load_crm_fields())
    assert export.publishes == [("run-2", SECOND_AT)]
    assert [(f.path.name, f.rows) for f in export.files] == [
        ("Contact-customer-001.csv", 1),
        ("Lead-lead-001.csv", 1),
    ]
    # Nothing newer than the newest: header-only files, so a sync sees "no changes".
    empty = export_changes(con, "salesforce", tmp_path / "none", load_crm_fields(), "run-2")
    assert empty.publishes == []
    assert [f.rows for f in empty.files] == [0, 0]
    assert (tmp_path / "none" / "Lead-lead-001.csv").read_text().count("\n") == 1


def test_a_catch_up_export_takes_the_newest_row_of_each_entity(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    con.execute(
        "update serving.score_changes set new_action = null, probability = 0.00001 "
        "where publish_id = 'run-2'"
    )
    export = export_changes(con, "salesforce", tmp_path / "sf", load_crm_fields(), BEFORE_BOTH)
    assert export.publishes == [("run-1", FIRST_AT), ("run-2", SECOND_AT)]
    # A time is after or at a publish, as an id is (a publish id vanishes when erasure empties it).
    by_time = export_changes(
        con, "salesforce", tmp_path / "t", load_crm_fields(), "2026-09-01T06:00:05.250Z"
    )
    assert (
        by_time.publishes
        == export_changes(con, "salesforce", tmp_path / "i", load_crm_fields(), "run-1").publishes
        == [("run-2", SECOND_AT)]
    )
    _, rows = _read(tmp_path / "sf" / "Contact-customer-001.csv")
    by_id = {r["CRM_Signals_Id__c"]: r for r in rows}
    assert len(rows) == 40  # one row per customer, not one per publish
    assert by_id["C-005"]["CRM_Signals_Published_At__c"] == "2026-09-02T06:00:00.000Z"
    assert by_id["C-005"]["Next_Best_Action__c"] == "#N/A"  # now empty: set to null
    assert by_id["C-005"]["Churn_Probability__c"] == "0.00001"  # never 1e-05
    assert by_id["C-006"]["CRM_Signals_Published_At__c"] == "2026-09-01T06:00:05.250Z"
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", by_id["C-010"]["CRM_Signals_Published_At__c"]
    )
    assert by_id["C-010"]["Next_Best_Action__c"] == "#N/A"


def test_hubspot_import_files_have_property_names_dates_and_empty_cells(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    export = export_changes(con, "hubspot", tmp_path / "hs", load_crm_fields(), since="run-1")
    assert export.jobs == []
    raw, rows = _read(tmp_path / "hs" / "contacts-lead-001.csv")
    assert raw.split(b"\n", 1)[0] == (
        b"crm_signals_lead_id,lead_grade,lead_score_reason,lead_conversion_probability,"
        b"lead_model_version,crm_signals_published_date"
    )
    assert rows == [
        {
            "crm_signals_lead_id": "L-2",
            "lead_grade": "A",
            "lead_score_reason": "raises conversion: Referrals",
            "lead_conversion_probability": "0.8",
            "lead_model_version": "2",
            "crm_signals_published_date": "2026-09-02",
        }
    ]
    con.execute("update serving.score_changes set new_action = null")
    export_changes(con, "hubspot", tmp_path / "hs", load_crm_fields(), since="run-1")
    _, rows = _read(tmp_path / "hs" / "contacts-customer-001.csv")
    assert rows[0]["next_best_action"] == ""  # an empty cell leaves the property as it is


@pytest.mark.parametrize("crm", FORMATS)
def test_a_file_limit_splits_the_export_into_files_that_each_keep_it(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, crm: CrmFormat
) -> None:
    limit = 2_000
    export = export_changes(con, crm, tmp_path / crm, _fields(max_file_bytes=limit), BEFORE_BOTH)
    customer_files = [f for f in export.files if f.entity_type == "customer"]
    assert len(customer_files) > 2
    ids: list[str] = []
    for file in customer_files:
        raw, rows = _read(file.path)
        assert len(raw) == file.bytes <= limit
        assert raw.split(b"\n", 1)[0].startswith(
            b"CRM_Signals_Id__c," if crm == "salesforce" else b"crm_signals_id,"
        )
        assert len(rows) == file.rows > 0
        ids += [next(iter(r.values())) for r in rows]
    assert ids == [f"C-{i:03d}" for i in range(40)]  # every row once, in order
    # A smaller export into the same folder leaves no part of the bigger one behind.
    export_changes(con, crm, tmp_path / crm, _fields(max_file_bytes=limit))
    assert len(list((tmp_path / crm).glob("*-customer-*.csv"))) == 1


def test_a_row_limit_splits_too(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    export = export_changes(con, "hubspot", tmp_path / "hs", _fields(max_rows=15), BEFORE_BOTH)
    counts = [f.rows for f in export.files if f.entity_type == "customer"]
    assert counts == [15, 15, 10]


def test_a_row_that_cannot_fit_a_file_is_an_error(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    con.execute("update serving.score_changes set new_reason = repeat('x', 1100)")
    with pytest.raises(ValueError, match="more than a salesforce file may hold"):
        export_changes(con, "salesforce", tmp_path / "sf", _fields(max_file_bytes=1_100))


def test_nothing_to_export_is_an_error_naming_what_to_do(tmp_path: Path) -> None:
    with duckdb.connect() as empty, pytest.raises(ValueError, match="run the pipeline"):
        export_changes(empty, "hubspot", tmp_path, load_crm_fields())


def test_an_unknown_publish_names_the_known_ones(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=r"publish 'run-9' is not in .*newest: run-1, run-2"):
        export_changes(con, "hubspot", tmp_path, load_crm_fields(), since="run-9")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            ("salesforce", "customer", "fields", "risk_band"),
            "Risk__c",
            r"salesforce.customer: unknown feed columns \['risk_band'\]",
        ),
        (
            ("hubspot", "lead", "id_field"),
            "Lead-Id",
            r"hubspot.lead: \['Lead-Id'\] are not hubspot field names",
        ),
        (
            ("salesforce", "lead", "fields", "probability"),
            "Lead_Score_Reason__c",
            r"salesforce.lead: CRM field names used twice: \['Lead_Score_Reason__c'\]",
        ),
        (("hubspot", "max_rows"), 0, r"hubspot.max_rows: Input should be greater than 0"),
    ],
)
def test_a_wrong_field_mapping_names_the_file_and_the_field(
    tmp_path: Path, key: tuple[str, ...], value: object, message: str
) -> None:
    data = load_crm_fields().model_dump()
    section = data
    for part in key[:-1]:
        section = section[part]
    section[key[-1]] = value
    path = tmp_path / "crm_fields.yml"
    path.write_text(json.dumps(data))  # JSON is YAML
    with pytest.raises(CrmFieldsError, match=message) as caught:
        load_crm_fields(path)
    assert str(path) in str(caught.value)
