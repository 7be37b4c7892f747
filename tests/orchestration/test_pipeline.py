"""The whole graph, end to end, on a small synthetic CRM in a temporary CRM_HOME."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import mlflow
import psycopg2
import pytest

from ml.data.contract import PII_COLUMNS, PROTECTED_COLUMNS
from ml.data.erasure import read_audit_log
from ml.data.features import CHURN_FEATURES
from ml.data.tombstones import read_tombstones
from ml.serving.publishing import SCORE_HISTORY, newest_snapshot_sql, published_tables
from orchestration.defs.governance.assets import REGISTERED_MODELS
from orchestration.defs.ingest.assets import raw_tables
from orchestration.lib.keys import CUSTOMER_FEATURES
from orchestration.resources import CrmSettings
from tests.orchestration.conftest import POSTGRES_PASSWORD
from tests.orchestration.small_crm import PII_SALT, set_small_crm

SCORE_COLUMNS = [
    "customer_id",
    "as_of_date",
    "scored_at",
    "churn_probability",
    "churn_risk_band",
    "churn_top_drivers",
    "churn_reason",
    "model_name",
    "model_version",
    "churn_reason_factors",
    "features_fingerprint",
]


def _warehouse(run) -> duckdb.DuckDBPyConnection:
    """A read-only connection; use it in a ``with`` block so the file is free for the next run."""
    return duckdb.connect(str(run.settings.warehouse_path), read_only=True)


def test_retraining_job_succeeds_and_gates_pass(pipeline_run) -> None:
    result = pipeline_run.result
    assert result.success
    gates = result.get_asset_check_evaluations()
    features_gate = [g for g in gates if g.asset_key == CUSTOMER_FEATURES]
    assert features_gate and all(g.passed for g in features_gate)
    dbt_tests = [g for g in gates if g.asset_key.path[0] in ("staging", "intermediate", "marts")]
    assert len(dbt_tests) > 10 and all(g.passed for g in dbt_tests)


def test_serving_table_follows_the_contract(pipeline_run) -> None:
    with _warehouse(pipeline_run) as con:
        scores = con.sql("select * from serving.customer_scores").df()
        assert list(scores.columns) == SCORE_COLUMNS
        assert len(scores) > 500
        assert scores["churn_probability"].between(0, 1).all()
        assert set(scores["churn_risk_band"]) <= {"high", "medium", "low"}
        assert not scores.duplicated(["customer_id", "as_of_date"]).any()
        drivers = scores["churn_top_drivers"].map(json.loads)
        assert drivers.map(len).between(1, 3).all()
        assert {d["feature"] for row in drivers for d in row} <= set(CHURN_FEATURES)
        assert scores["churn_reason"].str.len().gt(0).all()
        latest = con.sql("select * from serving.customer_scores_latest").df()
        assert latest["customer_id"].is_unique and len(latest) == scores["customer_id"].nunique()


def test_scores_come_from_the_registered_champion(pipeline_run) -> None:
    uri = pipeline_run.settings.mlflow_tracking_uri
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    champion = client.get_model_version_by_alias("churn", "champion")
    with _warehouse(pipeline_run) as con:
        versions = con.execute(
            "select distinct model_version from serving.customer_scores"
        ).fetchall()
        assert versions == [(str(champion.version),)]


def test_parquet_export_matches_the_table(pipeline_run) -> None:
    path = pipeline_run.settings.exports_dir / "serving.customer_scores.parquet"
    with _warehouse(pipeline_run) as con:
        exported = con.execute(f"select count(*) from read_parquet('{path}')").fetchall()[0]
        table = con.execute("select count(*) from serving.customer_scores").fetchall()[0]
        assert exported == table


def test_drift_report_is_written_and_reported(pipeline_run) -> None:
    event = pipeline_run.instance.get_latest_materialization_event(
        dg.AssetKey(["monitoring", "churn_drift"])
    )
    metadata = event.asset_materialization.metadata
    assert 0.0 <= metadata["drift_share"].value <= 1.0
    assert (pipeline_run.settings.reports_dir / "churn_feature_drift.html").stat().st_size > 1000


def test_no_pii_or_protected_columns_reach_features_or_serving(pipeline_run) -> None:
    with _warehouse(pipeline_run) as con:
        serving = [
            f"serving.{name}"
            for (name,) in con.execute(
                "select table_name from information_schema.tables where table_schema = 'serving'"
            ).fetchall()
        ]
        assert len(serving) >= 9
        for table in ("marts.customer_features", "marts.campaign_sends", *serving):
            columns = set(con.sql(f"select * from {table} limit 0").columns)
            assert not columns & (PII_COLUMNS | PROTECTED_COLUMNS), table


def test_no_pii_value_reaches_logs_mlflow_or_exports(pipeline_run) -> None:
    """Search every text the run left behind for the people's names, e-mails and phones."""
    settings = pipeline_run.settings
    customers = settings.synthetic_dir / "customers.parquet"
    leads = settings.synthetic_dir / "leads.csv"
    with duckdb.connect() as con:
        people = con.execute(
            f"""
            select distinct value from (
                select unnest([full_name, email, phone]) as value from read_parquet('{customers}')
            ) where length(value) >= 8
            """
        ).fetchall()
        lead_pii = con.execute(f"select distinct \"Email\" from read_csv('{leads}')").fetchall()
    values = {v for (v,) in people + lead_pii if v}
    assert len(values) > 1000
    texts: list[str] = []
    run_id = pipeline_run.result.run_id
    for entry in pipeline_run.instance.all_logs(run_id):
        texts.append(entry.user_message or "")
        if entry.dagster_event is not None:
            texts.append(str(entry.dagster_event.event_specific_data))
    client = mlflow.MlflowClient(settings.mlflow_tracking_uri)
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id]):
            texts.append(json.dumps({**run.data.params, **run.data.tags}))
    for path in settings.mlflow_artifacts_dir.rglob("*"):
        if path.suffix in (".json", ".yaml", ".txt", ".md", ".html", ".csv", "") and path.is_file():
            texts.append(path.read_text(errors="ignore"))
    with duckdb.connect() as con:
        for export in settings.exports_dir.glob("*.parquet"):
            texts.append(con.execute(f"select * from read_parquet('{export}')").df().to_csv())
    text = "\n".join(texts)
    # The search reads real content: run logs, MLflow tags and the exported customer ids.
    assert "promotion_reason" in text and "crm_dbt_models" in text
    assert re.search(r"C-R\d{7}", text)
    leaked = [v for v in values if v in text]  # a few thousand substring checks, not rows
    assert leaked == [], f"{len(leaked)} personal values leaked, e.g. {leaked[:3]}"


def test_bad_file_fails_clearly_quarantines_and_keeps_last_good_scores(
    pipeline_run, tmp_path, monkeypatch
) -> None:
    settings = pipeline_run.settings
    export = tmp_path / "export"
    shutil.copytree(settings.synthetic_dir, export)
    con = duckdb.connect()
    # customers loses a required column; three events get unreadable timestamps.
    (export / "customers.parquet").unlink()
    con.sql(
        f"copy (select * exclude (signed_up_at) from "
        f"read_parquet('{settings.synthetic_dir / 'customers.parquet'}')) "
        f"to '{export / 'customers.csv'}' (header)"
    )
    (export / "events.parquet").unlink()
    con.sql(
        f"copy (select * replace (case when row_number() over () <= 3 then 'not a date' "
        f"else cast(occurred_at as varchar) end as occurred_at) "
        f"from read_parquet('{settings.synthetic_dir / 'events.parquet'}')) "
        f"to '{export / 'events.csv'}' (header)"
    )
    con.close()
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as before:
        good = before.sql("select * from serving.customer_scores order by all").df()

    set_small_crm(monkeypatch, settings.home)
    monkeypatch.setenv("CRM_SOURCE", str(export))
    job = pipeline_run.defs.resolve_job_def("scoring_job")
    result = job.execute_in_process(instance=pipeline_run.instance, raise_on_error=False)

    assert not result.success
    messages = [
        str(e.event_specific_data.error)  # type: ignore[union-attr]
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    ]
    assert any("customers.csv" in m and "signed_up_at" in m for m in messages)
    # The copied folder has the lead export but not its mapping: a clear error too.
    assert any("no 'leads' section" in m for m in messages)
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as after:
        assert after.execute("select count(*) from quarantine.events").fetchall()[0] == (3,)
        pd_after = after.sql("select * from serving.customer_scores order by all").df()
    assert pd_after.equals(good)


def test_every_scored_customer_gets_one_named_segment(pipeline_run) -> None:
    with _warehouse(pipeline_run) as con:
        unsegmented = con.execute(
            "select count(*) from serving.customer_scores s "
            "anti join serving.customer_segments g using (customer_id, as_of_date)"
        ).fetchall()[0]
        names = con.execute(
            "select count(distinct segment_id), count(distinct segment_name), sum(share), "
            "sum(customers) from serving.segment_profiles"
        ).fetchall()[0]
        segmented = con.execute("select count(*) from serving.customer_segments").fetchall()[0]
    assert unsegmented == (0,)
    assert names[0] == names[1] >= 3
    assert abs(names[2] - 1.0) < 1e-9 and (names[3],) == segmented


def test_segment_model_is_logged_to_mlflow_without_customer_rows(pipeline_run) -> None:
    client = mlflow.MlflowClient(tracking_uri=pipeline_run.settings.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name("segments")
    assert experiment is not None
    (run,) = client.search_runs([experiment.experiment_id], max_results=1)
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {
        "segment_model.json",
        "segment_profiles.json",
    }
    assert run.data.metrics["segments"] >= 3
    model_json = Path(client.download_artifacts(run.info.run_id, "segment_model.json")).read_text()
    assert '"C-' not in model_json  # centres and names only, no customer ids


def test_every_scored_customer_gets_one_action_within_the_contact_policy(pipeline_run) -> None:
    settings = pipeline_run.settings
    export = settings.exports_dir / "serving.next_best_actions.parquet"
    with _warehouse(pipeline_run) as con:
        scored, actions, distinct, kinds = con.execute(
            """
            select (select count(*) from serving.customer_scores_latest),
                   count(*), count(distinct customer_id), list(distinct action order by action)
            from serving.next_best_actions
            """
        ).fetchall()[0]
        assert actions == distinct == scored
        assert set(kinds) <= {
            "retention_call",
            "retention_offer",
            "cross_sell_offer",
            "nurture_email",
            "no_action",
        }
        assert "no_action" in kinds and len(kinds) >= 3
        # The policy ran last, in the table and in its export: nobody is contacted through a
        # channel without consent in force, after a do-not-contact request, or over a cap.
        caps = settings.contact_caps
        (as_of,) = con.execute("select max(as_of_date) from serving.next_best_actions").fetchall()[
            0
        ]
        for source in ("serving.next_best_actions", f"read_parquet('{export}')"):
            violations = con.execute(
                f"""
                with consent as (
                    select customer_id, channel, arg_max(status, recorded_at) = 'granted' as granted
                    from marts.consents group by all
                ),
                recent as (
                    select customer_id, channel, count(*) as n from marts.contacts
                    where contacted_at >= date '{as_of}' - interval 30 day
                      and contacted_at < date '{as_of}'
                    group by all
                ),
                caps as (
                    select * from (values ('email', {caps["email"][0]}), ('phone', {caps["phone"][0]}))
                        as t(channel, max_contacts)
                )
                select count(*) from {source} a
                left join consent c on c.customer_id = a.customer_id and c.channel = a.channel
                left join consent dnc on dnc.customer_id = a.customer_id and dnc.channel = 'all'
                left join recent r on r.customer_id = a.customer_id and r.channel = a.channel
                left join caps on caps.channel = a.channel
                where a.action <> 'no_action' and (
                    not coalesce(c.granted, false)
                    or dnc.granted = false
                    or coalesce(r.n, 0) >= caps.max_contacts)
                """
            ).fetchall()[0][0]
            assert violations == 0, source
        # Every suppression that mattered is in the audit table with its reason, and none of the
        # suppressed actions was published.
        audit = con.execute(
            """
            select split_part(p.reason, ':', 1) as rule, count(*),
                   count(*) filter (where a.action = p.suppressed_action)
            from serving.contact_policy_audit p
            join serving.next_best_actions a using (customer_id, as_of_date)
            group by 1
            """
        ).fetchall()
        rules = {r[0]: r[1] for r in audit}
        assert "do-not-contact request in force" in rules
        assert "no email consent in force" in rules
        assert "frequency cap" in rules
        assert all(r[2] == 0 for r in audit)
        empty_reasons = con.execute(
            "select count(*) from serving.next_best_actions where coalesce(reason, '') = ''"
        ).fetchall()[0][0]
        assert empty_reasons == 0


def test_next_product_offers_only_categories_not_bought(pipeline_run) -> None:
    with _warehouse(pipeline_run) as con:
        offers, already_bought = con.execute(
            """
            select count(*), count(*) filter (where exists (
                select 1 from marts.orders o
                where o.customer_id = n.customer_id and o.product_category = n.product_category
                  and o.status = 'completed' and o.amount > 0 and o.ordered_at < n.as_of_date))
            from serving.next_product_offers n
            """
        ).fetchall()[0]
    assert offers > 0
    assert already_bought == 0


def test_every_model_is_a_registered_champion_with_plots_and_a_card(pipeline_run) -> None:
    client = mlflow.MlflowClient(tracking_uri=pipeline_run.settings.mlflow_tracking_uri)
    for name in ("churn", "retention_uplift", "next_product", "lead_scoring", "customer_value"):
        champion = client.get_model_version_by_alias(name, "champion")
        run = client.get_run(champion.run_id)
        assert "promotion_reason" in run.data.tags
        artifacts = {a.path for a in client.list_artifacts(champion.run_id, "plots")}
        assert artifacts, f"{name} has no plots in MLflow"
        card = {a.path for a in client.list_artifacts(champion.run_id, "model_card")}
        assert {"model_card/model_card.md", "model_card/model_card.html"} <= card, name
    with _warehouse(pipeline_run) as con:
        versions = con.execute(
            "select distinct model_version from serving.customer_uplift"
        ).fetchall()
    assert versions == [("1",)]


def _erased_people(settings) -> tuple[set[str], set[str]]:
    """The erased records' ids (record and customer form) and their personal values."""
    requests = duckdb.sql(
        f"select trim(customer_record_id) from "
        f"read_parquet('{settings.synthetic_dir / 'erasure_requests.parquet'}')"
    ).fetchall()
    salt = settings.salt()
    tombstones = read_tombstones(settings.erasure_dir, salt).record_key_hashes
    customers = duckdb.sql(
        f"select trim(customer_record_id) as record, full_name, email, phone "
        f"from read_parquet('{settings.synthetic_dir / 'customers.parquet'}')"
    ).fetchall()
    erased = [
        c for c in customers if hashlib.sha256((salt + c[0]).encode()).hexdigest() in tombstones
    ]
    records = {c[0] for c in erased}
    assert {r for (r,) in requests} <= records
    identifiers = records | {f"C-{r}" for r in records}

    def values(rows: list[tuple]) -> set[str]:
        return {str(v).strip() for c in rows for v in c[1:] if v and len(str(v).strip()) >= 6}

    # Names repeat and households share phones: a value that another, kept, person also has is
    # theirs too, so it is not searched for.
    kept = values([c for c in customers if c[0] not in records])
    return identifiers, values(erased) - kept


def _tables_holding(con: duckdb.DuckDBPyConnection, values: set[str]) -> list[str]:
    """Every text column of every table or view in ``con`` that holds one of ``values``."""
    found = []
    columns = con.execute(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where data_type = 'VARCHAR' and table_catalog = current_database()"
    ).fetchall()
    for schema, table, column in columns:
        (hits,) = con.execute(
            f'select count(*) from "{schema}"."{table}" '
            f'where trim("{column}") in (select unnest(?::varchar[]))',
            [sorted(values)],
        ).fetchall()[0]
        if hits:
            found.append(f"{schema}.{table}.{column}")
    return found


def test_erased_people_are_in_no_store_and_stay_out_when_reimported(
    pipeline_run, monkeypatch
) -> None:
    settings = pipeline_run.settings
    identifiers, personal = _erased_people(settings)
    assert len(identifiers) >= 6 and personal
    audit = read_audit_log(settings.erasure_dir)
    assert len(audit) == 3 and (audit["records_erased"] >= 1).all()

    with _warehouse(pipeline_run) as con:
        assert _tables_holding(con, identifiers | personal) == []
    # Every Parquet file the pipeline wrote (exports, quarantine, reports); the source export
    # is the CRM's own file, and the tombstones hold hashes only.
    own_files = [
        p
        for p in settings.home.rglob("*.parquet")
        if settings.home / "synthetic" not in p.parents and settings.erasure_dir not in p.parents
    ]
    assert any(p.parent == settings.exports_dir for p in own_files)
    with duckdb.connect() as files:
        for path in own_files:
            files.execute(f"create or replace view f as select * from read_parquet('{path}')")
            assert _tables_holding(files, identifiers | personal) == [], path
    # MLflow (tracking database and artifacts), reports and logs hold no row of any customer:
    # neither the erased ones nor a sample of everyone scored.
    with _warehouse(pipeline_run) as con:
        scored = {
            c
            for (c,) in con.execute(
                "select distinct customer_id from serving.customer_scores using sample 200 rows"
            ).fetchall()
        }
    stores = [settings.home / "mlflow.db"] + [
        p
        for folder in (settings.mlflow_artifacts_dir, settings.reports_dir, settings.logs_dir)
        for p in folder.rglob("*")
        if p.is_file()
    ]
    assert len(stores) > 20
    for path in stores:
        data = path.read_bytes()
        leaked = [v for v in identifiers | scored if v.encode() in data]
        assert leaked == [], f"{path} holds {leaked[:3]}"
    run_log = "\n".join(
        e.user_message or "" for e in pipeline_run.instance.all_logs(pipeline_run.result.run_id)
    )
    assert "erasure: 3 new requests" in run_log
    assert not [v for v in identifiers if v in run_log]

    # The CRM export still holds them; loading it again drops their rows before anything else.
    # A full refresh: an unchanged folder is otherwise not read again (docs/operations.md).
    set_small_crm(monkeypatch, settings.home)
    reload = dg.materialize(
        [raw_tables],
        resources={"crm": CrmSettings(full_refresh=True)},
        instance=pipeline_run.instance,
    )
    dropped = sum(
        m.metadata["rows_of_erased_persons_dropped"].value  # type: ignore[union-attr]
        for m in reload.asset_materializations_for_node("raw_tables")
    )
    assert dropped > 0
    with _warehouse(pipeline_run) as con:
        assert _tables_holding(con, identifiers | personal) == []


def test_every_models_promotion_decision_is_an_asset_and_a_table(pipeline_run) -> None:
    (materialization,) = pipeline_run.result.asset_materializations_for_node(
        "governance__promotion_decisions"
    )
    with _warehouse(pipeline_run) as con:
        rows = con.execute(
            "select model_name, model_version, promoted, reason "
            "from governance.promotion_decisions order by model_name"
        ).fetchall()
    # Every model the synthetic CRM trains; churn_snapshot needs a flat customer table.
    assert [r[0] for r in rows] == sorted(set(REGISTERED_MODELS) - {"churn_snapshot"})
    assert materialization.metadata["dagster/row_count"].value == len(rows)  # type: ignore[union-attr]
    decisions = {name: (version, promoted, reason) for name, version, promoted, reason in rows}
    assert decisions["churn"][:2] == ("1", True)
    assert decisions["churn"][2].startswith("first model: AUC")
    assert decisions["customer_value"][2].startswith("refitted every run: neg_value_mae")
    assert decisions["lead_scoring"][2].startswith("first model: roc_auc")


def _postgres(pipeline_run, query: str) -> list[tuple]:
    if pipeline_run.postgres_skip_reason:
        pytest.skip(pipeline_run.postgres_skip_reason)
    target = pipeline_run.settings.postgres_target()
    con = psycopg2.connect(target.url)
    try:
        with con.cursor() as cur:
            cur.execute(query)
            return cur.fetchall()
    finally:
        con.close()


def test_every_serving_table_is_published_to_postgres(pipeline_run) -> None:
    schema = pipeline_run.settings.postgres_schema
    names = [
        t
        for (t,) in _postgres(
            pipeline_run,
            f"select table_name from information_schema.tables where table_schema = '{schema}'",
        )
    ]
    published = {
        t: _postgres(pipeline_run, f'select count(*) from {schema}."{t}"')[0][0] for t in names
    }
    with _warehouse(pipeline_run) as con:
        tables = published_tables(con)
        expected = {
            t.name: con.execute(f"select count(*) from ({newest_snapshot_sql(t)})").fetchall()[0][0]
            for t in tables
        }
        newest = con.execute(
            "select customer_id, churn_probability from serving.customer_scores "
            "where as_of_date = (select max(as_of_date) from serving.customer_scores) order by 1"
        ).fetchall()
    assert len(tables) >= 9
    history_rows = published.pop(SCORE_HISTORY)
    assert published == expected
    assert history_rows == sum(expected[t.name] for t in tables if t.history is not None)
    assert _postgres(
        pipeline_run,
        f"select customer_id, churn_probability from {schema}.customer_scores order by 1",
    ) == [(c, pytest.approx(p, abs=1e-12)) for c, p in newest]
    materialization = pipeline_run.result.asset_materializations_for_node("publish__postgres")[0]
    assert materialization.metadata["published"].value is True
    assert "pg-Secret" not in str(materialization.metadata)


def test_secrets_from_the_environment_never_reach_a_log_or_file(pipeline_run) -> None:
    """The PostgreSQL password and the PII salt: run log, CRM_HOME, dbt's target and logs."""
    if pipeline_run.postgres_skip_reason is None:
        assert POSTGRES_PASSWORD in pipeline_run.settings.postgres_url.get_secret_value()
    assert pipeline_run.settings.salt() == PII_SALT
    secrets = [POSTGRES_PASSWORD.encode(), PII_SALT.encode()]
    texts = []
    for entry in pipeline_run.instance.all_logs(pipeline_run.result.run_id):
        texts.append(entry.user_message or "")
        if entry.dagster_event is not None:
            texts.append(str(entry.dagster_event.event_specific_data))
    run_log = "\n".join(texts).encode()
    assert b"published" in run_log and len(run_log) > 10_000
    assert not [s for s in secrets if s in run_log]
    dbt_dir = Path(__file__).resolve().parents[2] / "dbt_project"
    files = [
        p
        for folder in (pipeline_run.settings.home, dbt_dir / "target", dbt_dir / "logs")
        for p in folder.rglob("*")
        if p.is_file()
    ]
    assert any(p.name == "warehouse.duckdb" for p in files)
    for path in files:
        data = path.read_bytes()
        assert not [s for s in secrets if s in data], path
