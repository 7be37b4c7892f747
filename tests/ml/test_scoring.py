"""Serving rows: contract columns and types, risk bands, and the publish gate."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.core.settings import Settings
from ml.modelling.reasons import reason_rules
from ml.models.churn.model import ChurnModel
from ml.models.churn.scoring import RiskBands, score_customers, validate_scores
from ml.serving.tables import serving_table

CUSTOMER_SCORES = serving_table("customer_scores")

SCORED_AT = datetime(2026, 1, 5, 6, 0, 0)


@pytest.fixture(scope="module")
def scores(trained_model: ChurnModel, feature_frame: pd.DataFrame) -> pd.DataFrame:
    rows = feature_frame.tail(400).reset_index(drop=True)
    return score_customers(trained_model, rows, "churn", "7", SCORED_AT, RiskBands())


def test_scores_have_exactly_the_contract_columns_and_types(scores: pd.DataFrame) -> None:
    assert tuple(scores.columns) == CUSTOMER_SCORES.column_names
    # Registered in DuckDB as-is, the frame has the SQL types of serving.customer_scores.
    with duckdb.connect() as con:
        con.register("scores", scores)
        described = con.execute("describe scores").fetchall()
    assert [(name, sql_type) for name, sql_type, *_ in described] == list(CUSTOMER_SCORES.columns)
    assert scores["churn_probability"].dtype == np.float64
    assert scores["scored_at"].dtype == "datetime64[us]"


def test_scores_content(
    scores: pd.DataFrame, trained_model: ChurnModel, feature_frame: pd.DataFrame
) -> None:
    rows = feature_frame.tail(400).reset_index(drop=True)
    np.testing.assert_array_equal(scores["churn_probability"], trained_model.predict_proba(rows))
    assert scores["customer_id"].tolist() == rows["customer_id"].tolist()
    assert set(scores["as_of_date"]) == {date(2025, 12, 1)}
    assert (scores["scored_at"] == pd.Timestamp(SCORED_AT)).all()
    assert set(scores["model_name"]) == {"churn"} and set(scores["model_version"]) == {"7"}
    assert all(isinstance(json.loads(t), list) for t in scores["churn_top_drivers"])
    assert scores["churn_reason"].str.len().gt(0).all()
    validate_scores(scores)


@pytest.mark.parametrize(
    ("proba", "band"),
    [
        (0.9, "high"),
        (0.4, "high"),
        (0.3999, "medium"),
        (0.15, "medium"),
        (0.1499, "low"),
        (0.0, "low"),
    ],
)
def test_risk_bands(proba: float, band: str) -> None:
    assert RiskBands().assign(np.array([proba])).tolist() == [band]


def test_bands_follow_probabilities(scores: pd.DataFrame) -> None:
    high = scores["churn_probability"] >= 0.4
    low = scores["churn_probability"] < 0.15
    assert (scores.loc[high, "churn_risk_band"] == "high").all()
    assert (scores.loc[low, "churn_risk_band"] == "low").all()
    custom = RiskBands(high=0.0, medium=0.0).assign(scores["churn_probability"].to_numpy())
    assert set(custom) == {"high"}


def test_risk_bands_reject_inverted_thresholds() -> None:
    with pytest.raises(ValueError, match="medium <= high"):
        RiskBands(high=0.1, medium=0.2)


def test_aware_scored_at_is_stored_as_utc(
    trained_model: ChurnModel, feature_frame: pd.DataFrame
) -> None:
    aware = datetime(2026, 1, 5, 8, 0, tzinfo=timezone(timedelta(hours=2)))
    out = score_customers(trained_model, feature_frame.head(5), "churn", "1", aware)
    assert (out["scored_at"] == pd.Timestamp(datetime(2026, 1, 5, 6, 0))).all()
    assert out["scored_at"].dt.tz is None


def _set(column: str, value: Any) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        out[column] = out[column].astype(object)
        out.loc[out.index[0], column] = value
        return out

    return change


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda f: f.iloc[:0], "empty"),
        (_set("churn_probability", 1.2), "outside"),
        (_set("churn_probability", -0.01), "outside"),
        (_set("churn_probability", np.nan), "null churn_probability"),
        (_set("churn_probability", None), "null churn_probability"),
        (_set("churn_risk_band", "severe"), "churn_risk_band"),
        (_set("customer_id", None), "null customer_id"),
        (lambda f: pd.concat([f, f.iloc[[3]]], ignore_index=True), "duplicate"),
    ],
    ids=[
        "empty",
        "above-one",
        "negative",
        "nan",
        "none",
        "bad-band",
        "null-key",
        "duplicate-key",
    ],
)
def test_validate_scores_rejects_bad_frames(
    scores: pd.DataFrame, break_it: Callable[[pd.DataFrame], pd.DataFrame], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        validate_scores(break_it(scores))


def test_a_daily_run_rescores_only_customers_whose_features_or_model_changed(
    trained_model: ChurnModel, feature_frame: pd.DataFrame
) -> None:
    from ml.models.churn.pipeline import score_changed

    rows = feature_frame.tail(300).reset_index(drop=True)
    first = score_changed(trained_model, "7", rows, None, SCORED_AT)
    assert first.rescored == len(rows)

    # Next day: five customers logged in again, one is new, one left the snapshot.
    today = rows.iloc[1:].copy()
    moved = today.index[:5]
    today.loc[moved, "logins_30d"] = today.loc[moved, "logins_30d"] + 3
    moved_ids = set(today.loc[moved, "customer_id"])
    newcomer = rows.iloc[[0]].assign(customer_id="C-new")
    today = pd.concat([today, newcomer], ignore_index=True)
    later = SCORED_AT + timedelta(days=1)
    second = score_changed(trained_model, "7", today, first.scores, later)

    assert second.rescored == 6
    by_id = second.scores.set_index("customer_id")
    rescored = set(by_id.index[by_id["scored_at"] == pd.Timestamp(later)])
    assert rescored == moved_ids | {"C-new"}
    assert rows["customer_id"].iloc[0] not in by_id.index
    # Kept or not, every probability is what scoring everything today would give.
    full = score_customers(trained_model, today, "churn", "7", later, RiskBands())
    merged = full.set_index("customer_id").join(by_id, rsuffix="_kept")
    np.testing.assert_allclose(merged["churn_probability"], merged["churn_probability_kept"])
    assert (merged["features_fingerprint"] == merged["features_fingerprint_kept"]).all()
    validate_scores(second.scores)

    # A new champion scores everyone again.
    assert score_changed(trained_model, "8", today, second.scores, later).rescored == len(today)


def _cited(factors: pd.Series) -> pd.Series:
    return factors.map(lambda text: len(json.loads(text)["factors"]))


def test_reason_rules_set_in_the_environment_change_the_served_reasons(
    trained_model: ChurnModel, feature_frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml.models.churn.pipeline import score_changed

    rows = feature_frame.tail(300).reset_index(drop=True)
    monkeypatch.setenv("CRM_REASON_MAX_FACTORS", "1")
    rules = reason_rules(Settings())
    default = score_changed(trained_model, "7", rows, None, SCORED_AT).scores
    one = score_customers(trained_model, rows, "churn", "7", SCORED_AT, rules=rules)
    assert _cited(default["churn_reason_factors"]).max() > 1
    assert _cited(one["churn_reason_factors"]).max() == 1
    assert (default["churn_reason"] != one["churn_reason"]).any()
    # The rules change what a reason cites, not the score or its drivers.
    np.testing.assert_array_equal(default["churn_probability"], one["churn_probability"])
    assert (default["churn_top_drivers"] == one["churn_top_drivers"]).all()
    # A daily run under new rules explains every customer again, though no feature changed.
    again = score_changed(trained_model, "7", rows, default, SCORED_AT, rules=rules)
    assert again.rescored == len(rows)
    assert (again.scores["churn_reason"] == one["churn_reason"]).all()
    assert (
        score_changed(trained_model, "7", rows, again.scores, SCORED_AT, rules=rules).rescored == 0
    )


def test_a_daily_run_in_another_shap_mode_explains_every_customer_again(
    trained_model: ChurnModel, feature_frame: pd.DataFrame
) -> None:
    # The SHAP mode changes the served drivers without changing a feature, as the rules do.
    from ml.models.churn.pipeline import score_changed

    rows = feature_frame.tail(200).reset_index(drop=True)
    regular = score_changed(trained_model, "7", rows, None, SCORED_AT).scores
    approximate = score_changed(
        trained_model, "7", rows, regular, SCORED_AT, shap_mode="approximate"
    )
    assert approximate.rescored == len(rows)
    assert (approximate.scores["features_fingerprint"] != regular["features_fingerprint"]).all()
    again = score_changed(
        trained_model, "7", rows, approximate.scores, SCORED_AT, shap_mode="approximate"
    )
    assert again.rescored == 0
