"""A source folder with only some tables runs green: the models it can feed are trained and
published, every other one is skipped with the file that would enable it (issue 14).

The folder holds a lead export and a flat customer table with a churn flag, and nothing else:
no customers, subscriptions, events or orders. Lead scoring and snapshot churn run; the models
of the event tables skip, and nothing fails for want of an optional table.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ml.core.settings import Settings
from ml.synthetic.leads import generate_leads
from orchestration.definitions import defs as load_defs
from tests.flat_exports import SNAPSHOT_MAPPING, snapshot_export
from tests.orchestration.small_crm import set_small_crm

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def partial_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Settings, dg.ExecuteInProcessResult]]:
    source = tmp_path_factory.mktemp("partial_source")
    generate_leads(2_000, seed=4, start=date(2025, 1, 1), end=date(2025, 12, 31)).to_csv(
        source / "leads.csv", index=False
    )
    export = snapshot_export(1_200, seed=9)
    export.to_csv(source / "customers.csv", index=False)
    leads_section = (REPOSITORY / "examples/synthetic/mapping.yaml").read_text()
    (source / "mapping.yaml").write_text(leads_section + "\n" + SNAPSHOT_MAPPING)
    with contextlib.ExitStack() as stack:
        instance = stack.enter_context(dg.instance_for_test())
        env = stack.enter_context(pytest.MonkeyPatch.context())
        set_small_crm(env, tmp_path_factory.mktemp("partial_home"))
        env.setenv("CRM_SOURCE", str(source))
        job = load_defs().resolve_job_def("retraining_job")
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        settings = Settings()
        env.undo()
        yield settings, result


def _metadata(result: dg.ExecuteInProcessResult, key: str) -> dict:
    (event,) = [
        e
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key.to_user_string() == key
    ]
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}


def test_the_run_is_green(partial_run) -> None:
    _, result = partial_run
    failures = [e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert result.success, failures


def test_lead_and_snapshot_churn_scores_are_published(partial_run) -> None:
    settings, _ = partial_run
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        (leads,) = con.execute("select count(*) from serving.lead_scores").fetchone()
        scores = con.execute(
            "select count(*), min(model_name), max(model_name), "
            "count(*) filter (where churn_reason like '%churns%') from serving.customer_scores"
        ).fetchone()
        (active,) = con.execute(
            "select count(*) from raw.customer_snapshot where not churned"
        ).fetchone()
    assert leads > 0
    assert scores[0] == active > 0
    assert scores[1] == scores[2] == "churn_snapshot"
    assert scores[3] > 0


def test_models_without_their_tables_are_skipped_with_the_file_that_enables_them(
    partial_run,
) -> None:
    _, result = partial_run
    churn = _metadata(result, "models/churn")
    assert churn["skipped"] is True
    assert "needs customers, subscriptions" in churn["reason"]
    assert "customers.csv and subscriptions.csv" in churn["reason"]
    value = _metadata(result, "models/customer_value")
    assert value["skipped"] is True and "orders.csv" in value["reason"]
    models = _metadata(result, "source/crm_files")["models"]
    assert "| lead_scoring | runs |" in models and "| churn_snapshot | runs |" in models
    assert "| churn | churn skipped" in models


def test_optional_tables_without_files_load_empty(partial_run) -> None:
    _, result = partial_run
    for table in ("customers", "events", "orders", "consents"):
        loaded = _metadata(result, f"raw/{table}")
        assert loaded["has_file"] is False and loaded["dagster/row_count"] == 0
