"""The change feed end to end: the small-CRM run's first publish, then a second publish after a
real change (the next best actions recomputed with another minimum gain), the CRM files and the
PostgreSQL copy. Works on a copy of the run's state folder, so the other tests see the run as is.
"""

from __future__ import annotations

import csv
import shutil

import dagster as dg
import duckdb
import pandas as pd
import psycopg2
import pytest

from ml.core.settings import Settings
from orchestration import cli
from orchestration.defs.next_best_action.assets import next_best_actions
from orchestration.defs.publish.assets import score_changes_feed
from orchestration.resources import CrmSettings
from tests.orchestration.small_crm import set_small_crm

ACTIONS = (
    "select customer_id, action from serving.next_best_actions "
    "where as_of_date = (select max(as_of_date) from serving.next_best_actions)"
)


def _query(settings: Settings, sql: str, params: list | None = None) -> pd.DataFrame:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute(sql, params).df()


@pytest.fixture
def home(pipeline_run, tmp_path, monkeypatch) -> Settings:
    copy = tmp_path / "crm_home"
    shutil.copytree(pipeline_run.settings.home, copy)
    set_small_crm(monkeypatch, copy)
    monkeypatch.delenv("CRM_POSTGRES_URL", raising=False)
    return Settings()


def test_the_first_publish_lists_every_scored_customer_and_lead_as_new(pipeline_run) -> None:
    settings = pipeline_run.settings
    feed = _query(settings, "select * from serving.score_changes")
    assert set(feed["publish_id"]) == {pipeline_run.result.run_id}
    assert set(feed["change"]) == {"new"}
    customers = _query(settings, "select customer_id from serving.customer_scores_latest")
    leads = _query(settings, "select lead_id from serving.lead_scores")
    assert len(leads) > 0
    assert sorted(feed["customer_id"].dropna()) == sorted(customers["customer_id"])
    assert sorted(feed["lead_id"].dropna()) == sorted(leads["lead_id"])
    if pipeline_run.postgres_skip_reason is not None:
        pytest.skip(pipeline_run.postgres_skip_reason)
    with psycopg2.connect(settings.postgres_url.get_secret_value()) as pg, pg.cursor() as cur:
        cur.execute(
            f"select count(*), count(distinct publish_id) from {settings.postgres_schema}.score_changes"
        )
        assert cur.fetchone() == (len(feed), 1)
    pg.close()


def test_a_second_publish_holds_exactly_the_customers_whose_action_changed(
    home: Settings, pipeline_run, tmp_path
) -> None:
    before = _query(home, ACTIONS).set_index("customer_id")["action"]
    # A minimum gain no action reaches: every contact becomes no_action, a real recomputation.
    result = dg.materialize(
        [next_best_actions, score_changes_feed],
        resources={"crm": CrmSettings()},
        run_config={"ops": {"next_best_actions": {"config": {"min_gain": 1e9}}}},
    )
    assert result.success
    after = _query(home, ACTIONS).set_index("customer_id")["action"]
    changed = sorted(after.index[after != before.reindex(after.index)])
    assert 0 < len(changed) < len(after)

    feed = _query(
        home,
        "select * from serving.score_changes where publish_id = ? order by customer_id",
        [result.run_id],
    )
    assert feed["customer_id"].tolist() == changed  # no lead, no unchanged customer
    assert set(feed["changed_fields"]) == {"action"}
    assert set(feed["change"]) == {"changed"}
    assert feed["old_action"].tolist() == before.loc[changed].tolist()
    assert set(feed["new_action"]) == {"no_action"}
    assert (feed["old_risk_band"] == feed["new_risk_band"]).all()
    first = _query(
        home,
        "select count(*) as n from serving.score_changes where publish_id = ?",
        [pipeline_run.result.run_id],
    )
    assert first["n"].iloc[0] > len(feed)  # the first publish is kept

    out = tmp_path / "salesforce"
    assert cli.main(["export-changes", "--format", "salesforce", "--out", str(out)]) == 0
    with (out / "Contact-customer-001.csv").open(newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert [r["CRM_Signals_Id__c"] for r in rows] == changed
    assert {r["Next_Best_Action__c"] for r in rows} == {"no_action"}
    with (out / "Lead-lead-001.csv").open(newline="", encoding="utf-8") as file:
        assert list(csv.DictReader(file)) == []
