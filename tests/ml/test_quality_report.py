"""``crm-signals check-source`` and ``evaluate``: what a folder gives each model, and how good the
models are on it against the baseline, without writing anywhere but the report folder."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import duckdb
import pytest

from ml.data.contract import FLAT_TABLES, LEADS_TABLE
from ml.data.flat_tables import FlatTable, load_flat_table, read_flat_table
from ml.data.mapping import load_source_mapping
from ml.data.sources import Needs
from ml.modelling.boosting import with_settings
from ml.models import quality_report
from ml.models.source_check import check_source
from ml.synthetic.leads import generate_leads
from orchestration.cli import main as cli

ROOT = Path(__file__).resolve().parents[2]
SYNTHETIC_MAPPING = ROOT / "examples/synthetic/mapping.yaml"


@pytest.fixture(scope="module")
def lead_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("leads_only")
    export = generate_leads(3_000, seed=3, start=date(2025, 1, 1), end=date(2025, 12, 31))
    export.to_csv(folder / "leads.csv", index=False)
    (folder / "mapping.yaml").write_text(SYNTHETIC_MAPPING.read_text())
    return folder


@pytest.fixture(scope="module")
def leads(lead_folder: Path) -> FlatTable:
    mapping = load_source_mapping(lead_folder / "mapping.yaml", FLAT_TABLES)["leads"]
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        load_flat_table(con, mapping, lead_folder, lead_folder / "q")
        return read_flat_table(con, LEADS_TABLE)


def test_skip_reason_names_the_tables_and_the_files() -> None:
    needs = Needs("churn", tables=("customers", "subscriptions"), uses=("events",))
    assert needs.skip_reason({"customers": 5, "subscriptions": 3}) is None
    assert needs.skip_reason({"customers": 5}) == (
        "churn skipped: it needs subscriptions; add subscriptions.csv (or map your export in "
        "mapping.yaml)"
    )
    assert "add an export with a 'leads' section in mapping.yaml" in (
        Needs("lead_scoring", tables=("leads",)).skip_reason({}) or ""
    )
    with pytest.raises(ValueError, match="unknown table"):
        Needs("x", tables=("customer",))


def test_check_source_of_a_lead_export_says_what_runs_and_what_would_enable_the_rest(
    lead_folder: Path,
) -> None:
    check = check_source(lead_folder, lead_folder / "mapping.yaml")
    status = dict(check.models)
    assert status["lead_scoring"] == "runs"
    assert status["churn"].startswith("churn skipped: it needs customers, subscriptions")
    assert "orders.csv" in status["customer_value"]
    (load,) = check.loads
    assert load["table"] == "leads" and load["rows_loaded"] + load["rows_quarantined"] == 3_000
    assert check.usable
    assert not (lead_folder / "q2").exists()


def test_check_source_reports_an_unusable_file_and_goes_on(tmp_path: Path) -> None:
    (tmp_path / "customers.csv").write_text("customer_record_id,country\nR1,DE\n")
    (tmp_path / "orders.csv").write_text(
        "order_id,customer_record_id,ordered_at,amount,status\nO1,R1,2026-01-02,10,completed\n"
    )
    check = check_source(tmp_path, None)
    errors = {load["table"]: load["error"] for load in check.loads if "error" in load}
    assert "customers.csv" in errors["customers"] and "signed_up_at" in errors["customers"]
    assert not check.usable
    assert "CANNOT BE USED" in check.text()


def test_the_cli_exit_codes(lead_folder: Path, tmp_path: Path, capsys) -> None:
    assert cli(["check-source", str(lead_folder)]) == 0  # the folder's own mapping.yaml
    assert "lead_scoring: would run" in capsys.readouterr().out
    (tmp_path / "mapping.yaml").write_text("leads:\n  colums: {}\n")
    assert cli(["check-source", str(tmp_path)]) == 2
    assert "unknown key" in capsys.readouterr().err


def _fast_lead_spec() -> quality_report.FlatModelSpec:
    (spec,) = [s for s in quality_report.flat_model_specs(threads=2) if s.name == "lead_scoring"]
    return replace(spec, config=with_settings(spec.config, iterations=120, tuning_grid=()))


def test_cross_validation_is_out_of_time_with_intervals_a_baseline_and_calibration(
    leads: FlatTable,
) -> None:
    evaluation = quality_report.cross_validate(
        _fast_lead_spec(), leads, folds=3, say=lambda _: None
    )
    assert evaluation.protocol.startswith("out of time by created_at: 3 expanding-window folds")
    for scores in (evaluation.model_scores, evaluation.baseline_scores):
        auc = scores["roc_auc"]
        assert len(auc.folds) == 3 and auc.low <= auc.mean <= auc.high
        assert 0.6 < auc.mean < 1.0
    gain = evaluation.gain["roc_auc"]
    assert gain.mean == pytest.approx(
        evaluation.model_scores["roc_auc"].mean - evaluation.baseline_scores["roc_auc"].mean
    )
    bins = evaluation.calibration
    assert [b["bin"] for b in bins] == list(range(1, 11))
    # Out-of-fold rows: all but the first (training-only) slice of the expanding window.
    assert sum(b["n"] for b in bins) == pytest.approx(evaluation.rows * 3 / 4, abs=3)
    assert bins[-1]["observed_rate"] > bins[0]["observed_rate"]
    # The synthetic truth's strongest attribute-only driver is named by its export label.
    assert "Trial Started" in [name for name, _ in evaluation.top_features[:4]]


def test_report_files_are_written_as_json_and_html(leads: FlatTable, tmp_path: Path) -> None:
    evaluation = quality_report.cross_validate(
        _fast_lead_spec(), leads, folds=2, say=lambda _: None
    )
    report = quality_report.QualityReport(
        "leads_only", "2026-12-04T00:00:00+00:00", [evaluation], [("churn", "churn skipped")]
    )
    json_path, html_path = quality_report.write_report(report, tmp_path / "out")
    written = json.loads(json_path.read_text())
    assert written["evaluations"][0]["model"] == "lead_scoring"
    assert written["evaluations"][0]["model_scores"]["roc_auc"]["mean"] == pytest.approx(
        evaluation.model_scores["roc_auc"].mean
    )
    page = html_path.read_text()
    assert "lead_scoring" in page and "baseline" in page and "churn skipped" in page
    assert "Calibration" in page
