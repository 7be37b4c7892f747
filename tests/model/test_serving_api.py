"""The scoring service against the default run's real registry and warehouse (no mocks).

Parity: for the same input the service answers exactly what the batch run published (probability,
band or grade, drivers, reason, version; the next best action). Security: keys, rate limit, body
limit, field-naming 422s, erasure, nothing of a payload in the logs. A champion promoted in the
registry is served without a restart. One test runs the real ``crm-signals serve`` process.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import duckdb
import httpx
import mlflow
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from ml.core.settings import Settings
from ml.core.warehouse import connect
from ml.modelling.registry import Registry, champion_version, roll_back
from ml.models.churn.pipeline import MODEL_NAME as CHURN_MODEL
from ml.serving.api.app import create_app
from ml.serving.api.scoring import PublishedScores, score_customers
from ml.serving.api.security import hash_key
from tests.model.conftest import DefaultRun

KEY = "test-key-5f1c0e7d9a"
SAMPLE = 40


def _settings(run: DefaultRun, **changes: object) -> Settings:
    return run.settings.model_copy(update=changes)


@pytest.fixture(scope="module")
def client(default_run: DefaultRun) -> Iterator[TestClient]:
    """The service of the default run, no keys (loopback)."""
    with TestClient(create_app(_settings(default_run))) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def published(default_run: DefaultRun) -> dict[str, pd.DataFrame]:
    with connect(default_run.settings.warehouse_path, read_only=True) as con:
        return {
            "customers": con.execute(
                "select * from serving.customer_scores using sample 40 rows (reservoir, 7)"
            ).df(),
            "leads": con.execute(
                "select * from serving.lead_scores using sample 40 rows (reservoir, 7)"
            ).df(),
            "actions": con.execute(
                "select a.* from serving.next_best_actions a "
                "order by a.action = 'no_action', a.customer_id limit 20"
            ).df(),
        }


def _lead_records(settings: Settings, lead_ids: list[str]) -> list[dict[str, str | None]]:
    """The leads' rows of the export the batch run read (synthetic leads.csv), as text."""
    export = pd.read_csv(settings.source_dir / "leads.csv", dtype=str, keep_default_na=False)
    rows = export.loc[export["Lead ID"].isin(lead_ids)].set_index("Lead ID", drop=False)
    return [
        {k: (v if v != "" else None) for k, v in rows.loc[i].to_dict().items()} for i in lead_ids
    ]


def test_customer_scores_equal_the_batch_run(
    client: TestClient, published: dict[str, pd.DataFrame]
) -> None:
    batch = published["customers"].sort_values("customer_id").reset_index(drop=True)
    ids = batch["customer_id"].tolist()
    answer = client.post("/v1/customers/score/batch", json={"customer_ids": ids})
    assert answer.status_code == 200, answer.text
    served = pd.DataFrame(answer.json()["scores"])
    assert served["customer_id"].tolist() == ids
    # Exactly: the same model, rows and code path, and SHAP that does not depend on the batch.
    assert served["churn_probability"].tolist() == batch["churn_probability"].tolist()
    assert served["churn_risk_band"].tolist() == batch["churn_risk_band"].tolist()
    assert served["churn_reason"].tolist() == batch["churn_reason"].tolist()
    assert served["churn_top_drivers"].tolist() == [
        json.loads(d) for d in batch["churn_top_drivers"]
    ]
    assert set(served["model_version"]) == set(batch["model_version"].astype(str))
    # One customer on its own is explained as in the batch of the whole snapshot.
    one = client.get(f"/v1/customers/{ids[0]}/score").json()
    assert one["churn_top_drivers"] == json.loads(batch["churn_top_drivers"].iloc[0])
    assert one["churn_reason"] == batch["churn_reason"].iloc[0]


def test_customers_scored_live_equal_their_published_rows(
    client: TestClient, published: dict[str, pd.DataFrame]
) -> None:
    """The service answers from a published row only where scoring now would give that row."""
    service = client.app.state.service  # type: ignore[attr-defined]
    champion = service.champions.get(CHURN_MODEL)
    snapshot = service.snapshots.current()
    batch = published["customers"].sort_values("customer_id").reset_index(drop=True)
    ids = batch["customer_id"].astype(str).tolist()
    reused = score_customers(champion, snapshot, ids, published=PublishedScores())
    # The published rows themselves (their scored_at is the batch run's), in the order asked.
    assert reused["customer_id"].tolist() == ids
    assert reused["scored_at"].tolist() == batch["scored_at"].tolist()
    # Scored and explained now, every row says the same.
    live = score_customers(champion, snapshot, ids)
    assert live["scored_at"].min() > batch["scored_at"].max()
    for column in (
        "customer_id",
        "churn_probability",
        "churn_risk_band",
        "churn_top_drivers",
        "churn_reason",
        "features_fingerprint",
    ):
        assert live[column].tolist() == batch[column].tolist(), column
    # Another model version published nothing: its answers are scored now.
    other = replace(champion, version=f"{champion.version}-other")
    fresh = score_customers(other, snapshot, ids[:3], published=PublishedScores())
    assert fresh["model_version"].tolist() == [other.version] * 3
    assert fresh["churn_probability"].tolist() == batch["churn_probability"].tolist()[:3]
    # A customer whose features changed since the publish is scored now, the others reused.
    changed = snapshot.published.copy()
    changed.loc[ids[0], "features_fingerprint"] += 1
    mixed = score_customers(
        champion, replace(snapshot, published=changed), ids[:3], published=PublishedScores()
    )
    assert mixed["customer_id"].tolist() == ids[:3]
    assert mixed["scored_at"].iloc[0] > batch["scored_at"].max()
    assert mixed["scored_at"].tolist()[1:] == batch["scored_at"].tolist()[1:3]
    assert mixed["churn_reason"].tolist() == batch["churn_reason"].tolist()[:3]


def test_lead_scores_equal_the_batch_run(
    client: TestClient, default_run: DefaultRun, published: dict[str, pd.DataFrame]
) -> None:
    batch = published["leads"].sort_values("lead_id").reset_index(drop=True)
    records = _lead_records(default_run.settings, batch["lead_id"].tolist())
    answer = client.post("/v1/leads/score/batch", json={"leads": records})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["rejected"] == []
    served = pd.DataFrame(body["scores"])
    assert served["lead_id"].tolist() == batch["lead_id"].tolist()
    assert served["conversion_probability"].tolist() == batch["conversion_probability"].tolist()
    assert served["score"].tolist() == batch["score"].tolist()
    assert served["grade"].tolist() == batch["grade"].tolist()
    assert served["reason"].tolist() == batch["reason"].tolist()
    assert served["top_drivers"].tolist() == [json.loads(d) for d in batch["top_drivers"]]
    single = client.post("/v1/leads/score", json=records[0])
    assert single.status_code == 200, single.text
    assert single.json()["reason"] == batch["reason"].iloc[0]
    assert single.json()["model_name"] == "lead_scoring"


def test_next_best_action_equals_the_batch_run(
    client: TestClient, published: dict[str, pd.DataFrame]
) -> None:
    for row in published["actions"].itertuples():
        answer = client.get(f"/v1/customers/{row.customer_id}/next-best-action")
        assert answer.status_code == 200, answer.text
        served = answer.json()
        assert (served["action"], served["reason"]) == (row.action, row.reason)
        assert served["expected_gain_eur"] == pytest.approx(row.expected_gain_eur)


def test_what_if_overrides_a_feature(
    client: TestClient, published: dict[str, pd.DataFrame]
) -> None:
    customer = published["customers"]["customer_id"].iloc[0]
    before = client.get(f"/v1/customers/{customer}/score").json()
    answer = client.post(
        f"/v1/customers/{customer}/what-if", json={"overrides": {"tickets_30d": 9}}
    )
    assert answer.status_code == 200, answer.text
    after = answer.json()
    assert after["overrides"] == {"tickets_30d": 9}
    # Tickets are a monotone feature: more of them never lowers the risk.
    assert after["churn_probability"] >= before["churn_probability"]
    bad = client.post(f"/v1/customers/{customer}/what-if", json={"overrides": {"shoe_size": 9}})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "overrides.shoe_size"


def test_schema_errors_name_the_field(
    client: TestClient, default_run: DefaultRun, published: dict[str, pd.DataFrame]
) -> None:
    record = _lead_records(default_run.settings, [published["leads"]["lead_id"].iloc[0]])[0]
    unknown = client.post("/v1/leads/score", json={**record, "Favourite Colour": "red"})
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "leads.0.Favourite Colour"
    not_a_count = client.post("/v1/leads/score", json={**record, "Marketing Emails Opened": "x"})
    assert not_a_count.status_code == 422
    assert not_a_count.json()["errors"][0]["field"] == "lead.email_opens"
    personal = client.post("/v1/leads/score", json={**record, "Industry": "ann@example.org"})
    assert personal.status_code == 422  # the mapping's safety net: e-mails are personal data
    assert personal.json()["errors"][0]["field"] == "leads.Industry"
    assert "/" not in personal.json()["errors"][0]["message"]  # no path of the server
    # A lead with its id only is scored: what it leaves out reads as empty cells of the export.
    assert client.post("/v1/leads/score", json={"Lead ID": "L-ONLY-ID"}).status_code == 200
    nested = client.post("/v1/leads/score", json={**record, "Country": {"a": 1}})
    assert nested.status_code == 422
    assert any("Country" in e["field"] for e in nested.json()["errors"])
    missing = client.post("/v1/customers/score/batch", json={"ids": ["x"]})
    assert missing.status_code == 422
    fields = {e["field"] for e in missing.json()["errors"]}
    assert {"customer_ids", "ids"} <= fields
    too_many = client.post(
        "/v1/customers/score/batch", json={"customer_ids": [f"C-{i}" for i in range(1001)]}
    )
    assert too_many.status_code == 422
    assert too_many.json()["errors"][0]["field"] == "customer_ids"


def test_keys_rate_limit_and_body_limit(default_run: DefaultRun) -> None:
    settings = _settings(
        default_run,
        api_key_hashes=SecretStr(f"crm-sync:{hash_key(KEY)}"),
        serve_rate_limit=3,
        serve_max_body_bytes=2_000,
    )
    customer = default_run.scoring_features["customer_id"].iloc[0]
    with TestClient(create_app(settings)) as client:
        path = f"/v1/customers/{customer}/score"
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"X-API-Key": "wrong"}).status_code == 401
        codes = [client.get(path, headers={"X-API-Key": KEY}).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        big = client.post(
            "/v1/customers/score/batch",
            json={"customer_ids": ["C-0000000000"] * 400},
            headers={"X-API-Key": KEY},
        )
        assert big.status_code == 413
        # Operations endpoints need no key.
        assert client.get("/health").status_code == 200
        assert client.get("/ready").json()["ready"] is True
        metrics = client.get("/metrics").text
        assert 'endpoint="/v1/customers/{customer_id}/score"' in metrics
        assert 'model_version="churn:' in metrics
        assert 'status="429"' in metrics


def test_erased_and_unknown_ids_are_not_found(default_run: DefaultRun, tmp_path: Path) -> None:
    """A person whose erasure request arrived after the last run is not scored."""
    home = tmp_path / "home"
    home.mkdir()
    source = default_run.settings
    shutil.copy(source.warehouse_path, home / "warehouse.duckdb")
    for folder in ("secrets", "erasure"):
        if (source.home / folder).is_dir():
            shutil.copytree(source.home / folder, home / folder)
    settings = _settings(default_run, home=home, mlflow_uri=source.mlflow_tracking_uri)
    customer = str(default_run.scoring_features["customer_id"].iloc[1])
    with TestClient(create_app(settings)) as client:
        assert client.get(f"/v1/customers/{customer}/score").status_code == 200
        assert client.get("/v1/customers/C-NOT-A-CUSTOMER/score").status_code == 404
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        (record,) = con.execute(
            "select any_value(customer_record_id) from marts.customer_identity_map "
            "where customer_id = ?",
            [customer],
        ).fetchone() or (None,)
        con.execute(
            "insert into raw.erasure_requests values ('REQ-SERVE-1', ?, now()::timestamp)",
            [record],
        )
    with TestClient(create_app(settings)) as client:
        for path in ("score", "next-best-action"):
            answer = client.get(f"/v1/customers/{customer}/{path}")
            assert answer.status_code == 404
            assert "churn" not in answer.text


def test_logs_carry_no_payload_or_id(
    client: TestClient,
    default_run: DefaultRun,
    published: dict[str, pd.DataFrame],
    caplog: pytest.LogCaptureFixture,
) -> None:
    record = _lead_records(default_run.settings, [published["leads"]["lead_id"].iloc[0]])[0]
    record |= {"Lead ID": "L-SECRET-4242", "Country": "Xanadu-7731"}
    customer = str(published["customers"]["customer_id"].iloc[0])
    with caplog.at_level(logging.DEBUG):
        assert client.post("/v1/leads/score", json=record).status_code == 200
        assert client.get(f"/v1/customers/{customer}/score").status_code == 200
        client.post("/v1/leads/score", json={**record, "Marketing Emails Opened": "Qz-99"})
    # The service's log lines (the test's own HTTP client logs the URLs it calls).
    logged = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))
    )
    assert "/v1/leads/score 200" in logged  # the request is logged, by its route
    for secret in ("L-SECRET-4242", "Xanadu-7731", "Qz-99", customer):
        assert secret not in logged


def test_a_new_champion_is_served_without_restart(default_run: DefaultRun) -> None:
    settings = _settings(default_run, serve_champion_ttl_seconds=0)
    registry = Registry(settings.mlflow_tracking_uri, settings.mlflow_artifacts_dir)
    old = champion_version(registry, "churn")
    assert old is not None
    client_api = mlflow.MlflowClient(settings.mlflow_tracking_uri)
    current = client_api.get_model_version("churn", old)
    new = client_api.create_model_version("churn", current.source, run_id=current.run_id).version
    customer = default_run.scoring_features["customer_id"].iloc[0]
    try:
        with TestClient(create_app(settings)) as client:
            assert client.get(f"/v1/customers/{customer}/score").json()["model_version"] == old
            roll_back(registry, "churn", str(new), "serving test: promote a new version")
            answer = client.get(f"/v1/customers/{customer}/score").json()
            assert answer["model_version"] == str(new)
    finally:
        roll_back(registry, "churn", old, "serving test: restore the champion")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_serve_command(default_run: DefaultRun) -> None:
    """The real process: no keys beyond loopback is refused; with a key it scores."""
    command = [str(Path(sys.executable).parent / "crm-signals"), "serve"]
    env = {**os.environ, "CRM_HOME": str(default_run.settings.home)}
    env.pop("CRM_API_KEY_HASHES", None)
    refused = subprocess.run(
        [*command, "--host", "0.0.0.0"], env=env, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 2
    assert "without API keys" in refused.stderr
    port = _free_port()
    env["CRM_API_KEY_HASHES"] = f"crm-sync:{hash_key(KEY)}"
    server = subprocess.Popen(
        [*command, "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:  # the process imports the stack first; poll until it answers
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, "crm-signals serve exited"
            assert time.monotonic() < deadline, "crm-signals serve did not answer in 120 s"
            time.sleep(0.5)
        customer = default_run.scoring_features["customer_id"].iloc[0]
        path = f"{base}/v1/customers/{customer}/score"
        assert httpx.get(path, timeout=30).status_code == 401
        answer = httpx.get(path, headers={"X-API-Key": KEY}, timeout=30)
        assert answer.status_code == 200
        assert 0 <= answer.json()["churn_probability"] <= 1
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0].decode()
    assert customer not in output  # the server's own log names no customer
