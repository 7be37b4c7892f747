"""SHAP top drivers, plain-word reasons and the per-customer explanation rows."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ml.data.features import CATEGORICAL_FEATURES, CHURN_FEATURES, KEY_COLUMNS
from ml.models.churn.explain import (
    CATEGORICAL_TEMPLATES,
    NO_RISK_SIGNALS,
    NUMERIC_TEMPLATES,
    explain_scores,
    reason_phrases,
    top_drivers,
)
from ml.models.churn.model import ChurnModel


@pytest.fixture(scope="module")
def rows(feature_frame: pd.DataFrame) -> pd.DataFrame:
    return feature_frame.tail(300).reset_index(drop=True)


def test_every_feature_has_a_template() -> None:
    assert set(NUMERIC_TEMPLATES) | set(CATEGORICAL_TEMPLATES) == set(CHURN_FEATURES)
    assert set(CATEGORICAL_TEMPLATES) == set(CATEGORICAL_FEATURES)


def test_top_drivers_are_the_largest_shap_values(
    trained_model: ChurnModel, rows: pd.DataFrame
) -> None:
    drivers = top_drivers(trained_model, rows, n=3)
    shap = trained_model.shap_values(rows)

    assert list(drivers.columns) == [*KEY_COLUMNS, "rank", "feature", "value", "contribution"]
    assert len(drivers) == 3 * len(rows)
    assert set(drivers["feature"]) <= set(CHURN_FEATURES)
    assert (drivers["rank"].to_numpy().reshape(-1, 3) == [1, 2, 3]).all()
    magnitude = drivers["contribution"].abs().to_numpy().reshape(-1, 3)
    assert (np.diff(magnitude, axis=1) <= 0).all()
    # Rank 1 is the arg-max of |SHAP| for every row, in input order.
    first = drivers[drivers["rank"] == 1]
    expected = np.asarray(CHURN_FEATURES)[np.abs(shap).argmax(axis=1)]
    assert (first["feature"].to_numpy() == expected).all()
    assert (first["customer_id"].to_numpy() == rows["customer_id"].to_numpy()).all()


def test_top_drivers_values_are_model_inputs(trained_model: ChurnModel, rows: pd.DataFrame) -> None:
    drivers = top_drivers(trained_model, rows, n=len(CHURN_FEATURES))
    tickets = drivers[drivers["feature"] == "tickets_30d"]
    assert tickets["value"].astype(float).tolist() == rows["tickets_30d"].astype(float).tolist()
    contract = drivers[drivers["feature"] == "contract_type"]
    assert contract["value"].tolist() == rows["contract_type"].tolist()


@pytest.mark.parametrize(
    ("feature", "value", "phrase"),
    [
        ("tickets_30d", 4, "4 support tickets in the last 30 days"),
        ("tickets_30d", 1, "1 support ticket in the last 30 days"),
        ("days_since_last_login", 25, "no login for 25 days"),
        ("days_since_last_login", np.nan, "no login on record"),
        ("contract_type", "month-to-month", "month-to-month contract"),
        ("price_change_90d", 8.5, "price up by 8.50 in the last 90 days"),
        ("price_change_90d", -3.0, "price down by 3.00 in the last 90 days"),
        ("login_trend", 0.4, "logins down 60% on the previous month"),
        ("tenure_days", 40, "customer for 40 days"),
        ("avg_satisfaction_90d", 2.25, "average support rating 2.2 of 5 in the last 90 days"),
        ("avg_satisfaction_90d", np.nan, "no rated support tickets in the last 90 days"),
        ("plan", "basic", "on the basic plan"),
        ("acquisition_channel", "missing", "acquisition channel unknown"),
        ("open_tickets", 2, "2 open support tickets"),
    ],
)
def test_reason_phrase_templates(feature: str, value: object, phrase: str) -> None:
    drivers = pd.DataFrame({"feature": [feature], "value": [value], "contribution": [0.3]})
    assert reason_phrases(drivers).tolist() == [phrase]


def test_phrases_do_not_depend_on_the_direction() -> None:
    drivers = pd.DataFrame(
        {"feature": ["tickets_30d", "contract_type"], "value": [3, "two-year"]}, index=[10, 11]
    )
    phrases = reason_phrases(drivers)
    assert phrases.index.tolist() == [10, 11]
    assert phrases.tolist() == ["3 support tickets in the last 30 days", "two-year contract"]


def test_reason_factors_tell_the_truth_about_the_score(
    trained_model: ChurnModel, rows: pd.DataFrame
) -> None:
    explained = explain_scores(trained_model, rows, n=3)
    shap = trained_model.shap_values(rows)
    position = {f: i for i, f in enumerate(trained_model.feature_names)}
    sides = set()
    for i, (text, reason) in enumerate(  # checking the output, not producing it
        zip(explained["churn_reason_factors"], explained["churn_reason"], strict=True)
    ):
        factors = json.loads(text)
        sides.add(factors["side"])
        assert factors["distance"] == pytest.approx(shap[i].sum(), abs=1e-3)
        concepts = [f["concept"] for f in factors["factors"]]
        assert len(concepts) == len(set(concepts))
        for factor in factors["factors"]:
            columns = [position[f] for f in factor["features"]]
            assert factor["contribution"] == pytest.approx(shap[i, columns].sum(), abs=1e-3)
            if factors["side"] == "high":
                assert factor["direction"] == "raises"
            if factors["side"] == "low":
                assert factor["direction"] == "lowers"
            assert abs(factor["contribution"]) >= max(0.05, 0.1 * factors["total"]) - 1e-3
        if not factors["factors"]:
            assert reason == NO_RISK_SIGNALS
        else:
            # One phrase per cited factor.
            assert reason.count("; ") == len(factors["factors"]) - 1
    assert {"high", "low"} <= sides


def test_explain_scores_json_and_order(trained_model: ChurnModel, rows: pd.DataFrame) -> None:
    explained = explain_scores(trained_model, rows, n=3)

    assert list(explained.columns) == [
        *KEY_COLUMNS,
        "churn_top_drivers",
        "churn_reason",
        "churn_reason_factors",
    ]
    assert explained["customer_id"].tolist() == rows["customer_id"].tolist()
    for text in explained["churn_top_drivers"]:  # checking the output, not producing it
        drivers = json.loads(text)
        assert len(drivers) == 3
        assert all(set(d) == {"feature", "value", "contribution"} for d in drivers)
        assert {d["feature"] for d in drivers} <= set(CHURN_FEATURES)
        magnitudes = [abs(d["contribution"]) for d in drivers]
        assert magnitudes == sorted(magnitudes, reverse=True)
        assert all(round(d["contribution"], 4) == d["contribution"] for d in drivers)
    assert explained["churn_reason"].notna().all()


def test_explain_scores_names_planted_driver_and_quiet_customers(
    trained_model: ChurnModel, rows: pd.DataFrame
) -> None:
    risky = rows.iloc[[0]].assign(
        tickets_30d=6, tickets_90d=6, logins_30d=0, contract_type="month-to-month"
    )
    safe = rows.iloc[[1]].assign(
        tickets_30d=0, tickets_90d=0, logins_30d=20, logins_31_60d=20, contract_type="two-year"
    )
    explained = explain_scores(trained_model, pd.concat([risky, safe]), n=3)

    assert "6 support tickets in the last 30 days" in explained["churn_reason"].iloc[0]
    assert explained["churn_reason"].iloc[0].startswith("raises risk: ")
    assert "month-to-month contract" in explained["churn_reason"].iloc[0]
    risky_drivers = json.loads(explained["churn_top_drivers"].iloc[0])
    assert {"feature": "tickets_30d", "value": 6} in [
        {k: d[k] for k in ("feature", "value")} for d in risky_drivers
    ]
    # A safe customer is told what holds the risk down, not "no strong risk signals".
    assert explained["churn_reason"].iloc[1].startswith("holds risk down: ")
    assert "raises risk" not in explained["churn_reason"].iloc[1]
    safe_drivers = json.loads(explained["churn_top_drivers"].iloc[1])
    assert all(d["contribution"] <= 0 for d in safe_drivers)


def test_explain_never_names_columns_outside_allow_list(
    trained_model: ChurnModel, rows: pd.DataFrame
) -> None:
    # Extra columns in the input (PII, protected) are ignored by the model and the explanation.
    noisy = rows.assign(email="someone@example.com", gender="f", birth_year=1980)
    explained = explain_scores(trained_model, noisy, n=len(CHURN_FEATURES))
    named = {d["feature"] for text in explained["churn_top_drivers"] for d in json.loads(text)}
    assert named == set(CHURN_FEATURES)
    assert not explained["churn_top_drivers"].str.contains("example.com").any()


def test_missing_values_become_json_null(trained_model: ChurnModel, rows: pd.DataFrame) -> None:
    row = rows.iloc[[0]].copy()
    row["days_since_last_order"] = pd.array([pd.NA], dtype="Int32")
    explained = explain_scores(trained_model, row, n=len(CHURN_FEATURES))
    drivers = {d["feature"]: d["value"] for d in json.loads(explained["churn_top_drivers"].iloc[0])}
    assert drivers["days_since_last_order"] is None
    assert isinstance(drivers["contract_type"], str)


def test_empty_frame_gives_empty_explanations(
    trained_model: ChurnModel, rows: pd.DataFrame
) -> None:
    assert explain_scores(trained_model, rows.iloc[:0]).empty
    assert top_drivers(trained_model, rows.iloc[:0]).empty


def test_reasons_say_what_is_typical(trained_model: ChurnModel, rows: pd.DataFrame) -> None:
    risky = rows.iloc[[0]].assign(tickets_30d=6, tickets_90d=6, contract_type="month-to-month")
    population = pd.concat([risky, rows.iloc[1:200]])
    explained = explain_scores(trained_model, population, n=3)
    recent = float(pd.to_numeric(population["tickets_30d"]).median())
    quarter = float(pd.to_numeric(population["tickets_90d"]).median())
    expected = (
        "6 support tickets in the last 30 days and 6 in the last 90 days "
        f"(typical: {recent:.0f} and {quarter:.0f})"
    )
    assert expected in explained["churn_reason"].iloc[0]
    # Categories have no typical value.
    assert "month-to-month contract (typical" not in explained["churn_reason"].iloc[0]
