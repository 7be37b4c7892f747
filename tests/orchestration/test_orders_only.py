"""A source holding only an order log without amounts runs green end to end: customer value
trains and scores with purchases and probability alive, every other model is skipped with the
file that would enable it, and the value column is null with the reason stated."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import dagster as dg
import duckdb
import mlflow
import pandas as pd
import pytest

from ml.core.settings import Settings
from ml.models.customer_value.model import NO_AMOUNTS
from orchestration.definitions import defs as load_defs
from tests.orchestration.small_crm import PII_SALT, REPOSITORY


@pytest.fixture(scope="module")
def orders_only_run(tmp_path_factory: pytest.TempPathFactory):
    """The retraining job on a folder holding orders.csv without its amount column (the orders
    of the small synthetic CRM, about 650 customers)."""
    root = tmp_path_factory.mktemp("orders_only")
    full, source, home = root / "full", root / "source", root / "home"
    generate = ("-m", "ml.synthetic.generator", "--customers", "2000", "--seed", "8")
    subprocess.run(
        [sys.executable, *generate, "--out", str(full), "--format", "csv", "--no-progress"],
        cwd=REPOSITORY,
        check=True,
        capture_output=True,
    )
    source.mkdir()
    orders = pd.read_csv(full / "orders.csv")
    orders.drop(columns=["amount"]).to_csv(source / "orders.csv", index=False)
    with contextlib.ExitStack() as stack:
        instance = stack.enter_context(dg.instance_for_test())
        env = stack.enter_context(pytest.MonkeyPatch.context())
        for name, value in {
            "CRM_HOME": str(home),
            "CRM_SOURCE": str(source),
            "CRM_PII_SALT": PII_SALT,
            "CRM_THREADS": "2",
        }.items():
            env.setenv(name, value)
        result = (
            load_defs()
            .resolve_job_def("retraining_job")
            .execute_in_process(instance=instance, raise_on_error=False)
        )
        settings = Settings()
        env.undo()
        yield result, settings, orders


def _metadata(result: dg.ExecuteInProcessResult, node: str) -> dict:
    """The metadata of the one asset a step (``models__customer_value``) materialized."""
    (materialization,) = result.asset_materializations_for_node(node)
    return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}


def test_an_order_log_without_amounts_runs_green_and_scores_its_customers(
    orders_only_run,
) -> None:
    result, settings, orders = orders_only_run
    assert result.success

    completed = orders.loc[orders["status"] == "completed", "customer_record_id"].nunique()
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        served = con.sql("select * from serving.customer_value").df()
        customers, records, kept = con.execute(
            "select (select count(*) from marts.customers), "
            "(select count(distinct customer_record_id) from marts.orders), "
            "(select count(*) from marts.orders)"
        ).fetchone() or (0, 0, 0)
    # Every record of the log is a customer of its own, and no order is lost for want of a
    # customer table (staging drops only the generator's future-dated rows).
    assert customers == records > 0.95 * orders["customer_record_id"].nunique()
    assert kept > 0.99 * len(orders)
    assert 0 < len(served) <= completed and served["customer_id"].is_unique
    assert served["expected_value_12m"].isna().all()
    assert (served["expected_purchases_12m"] >= 0).all()
    assert served["probability_alive"].between(0, 1).all()

    trained = _metadata(result, "models__customer_value")
    assert trained["value_columns"] == NO_AMOUNTS
    assert trained["backtest_protocol"].startswith(("out of time: ", "customer split"))
    assert "purchases_mae" in trained["decided_by"]
    assert _metadata(result, "serving__customer_value")["value_columns"] == NO_AMOUNTS

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias("customer_value", "champion")
    params = client.get_run(version.run_id).data.params
    assert params["value_columns"] == NO_AMOUNTS
    assert params["backtest_protocol"] == trained["backtest_protocol"]
    assert params["judged_on"] == "purchases"


def test_the_models_an_order_log_cannot_feed_say_what_would_enable_them(
    orders_only_run,
) -> None:
    result, _, _ = orders_only_run
    churn = _metadata(result, "models__churn")
    assert churn["skipped"] is True
    assert "customers.csv" in churn["reason"] and "subscriptions.csv" in churn["reason"]
