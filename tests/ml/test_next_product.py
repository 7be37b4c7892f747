"""Next-product model: out-of-time training, ranking, one offer per customer."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.modelling.reasons import ReasonRules
from ml.models.next_product import pipeline
from ml.models.next_product.model import (
    LABEL,
    NEXT_PRODUCT_BOOSTING,
    OFFER_COLUMNS,
    NextProductConfig,
    recommend,
    train_next_product_model,
)
from tests.ml.conftest import make_feature_frame

FAST = NextProductConfig(
    boosting=replace(NEXT_PRODUCT_BOOSTING, iterations=60, thread_count=2), training_as_of_dates=3
)
CATEGORIES = np.array(["add_on", "hardware", "service"])


def _candidates(seed: int = 0) -> pd.DataFrame:
    """Customers x categories with a planted taste: premium plans buy hardware, others add-ons."""
    features = make_feature_frame(
        customers_per_date=300,
        as_of_dates=(date(2025, 1, 1), date(2025, 2, 1), date(2025, 3, 1)),
        seed=seed,
    ).drop(columns=["churned"])
    rows = features.loc[features.index.repeat(3)].reset_index(drop=True)
    rows["product_category"] = np.tile(CATEGORIES, len(features))
    premium = rows["plan"] == "premium"
    logit = -3.0 + np.select(
        [
            premium & (rows["product_category"] == "hardware"),
            ~premium & (rows["product_category"] == "add_on"),
        ],
        [3.0, 2.0],
        0.0,
    )
    rng = np.random.default_rng(seed)
    rows[LABEL] = rng.random(len(rows)) < 1 / (1 + np.exp(-logit))
    return rows


def test_holdout_is_the_newest_date_and_the_planted_taste_is_learned() -> None:
    labelled = _candidates()
    training = train_next_product_model(labelled, FAST)
    assert training.summary["holdout_as_of_date"] == "2025-03-01"
    assert training.holdout.n == int((labelled["as_of_date"] == labelled["as_of_date"].max()).sum())
    assert training.holdout.roc_auc > 0.75
    premium = labelled.loc[
        (labelled["plan"] == "premium") & (labelled["as_of_date"] == labelled["as_of_date"].max())
    ]
    offers = recommend(training.model, premium)
    assert (offers["product_category"] == "hardware").mean() > 0.9


def test_recommend_gives_one_offer_per_customer_among_its_candidates() -> None:
    labelled = _candidates(seed=1)
    training = train_next_product_model(labelled, FAST)
    latest = labelled.loc[labelled["as_of_date"] == labelled["as_of_date"].max()].drop(
        columns=[LABEL]
    )
    # A customer who bought hardware already has only two candidates.
    latest = latest.loc[
        ~((latest["customer_id"] == "C000000") & (latest["product_category"] == "hardware"))
    ]
    offers = recommend(training.model, latest)
    assert tuple(offers.columns) == OFFER_COLUMNS
    assert offers["customer_id"].is_unique
    assert set(offers["customer_id"]) == set(latest["customer_id"])
    assert offers.loc[offers["customer_id"] == "C000000", "product_category"].item() != "hardware"
    assert offers["probability"].between(0, 1).all()
    first = offers.iloc[0]
    ratio = first["probability"] / training.model.purchase_rates[first["product_category"]]
    assert first["offer_reason"].startswith(
        f"{round(100 * first['probability'], 1)}% chance to buy {first['product_category']} "
        f"within 90 days, {round(ratio, 1)}x the average customer who has not bought it; "
    )
    # Then what the reason rules cite, in the direction of the score.
    for reason, text in zip(offers["offer_reason"], offers["offer_reason_factors"], strict=True):
        factors = json.loads(text)
        said = reason.split("; ", 1)[1]
        if factors["side"] == "high":
            assert said.startswith("raises the chance: ") and "holds" not in said
        if factors["side"] == "low":
            assert said.startswith("holds the chance down: ") and "raises" not in said
        concepts = [f["concept"] for f in factors["factors"]]
        assert len(concepts) == len(set(concepts))
    # The offer is the candidate with the highest probability.
    scored = latest.assign(p=training.model.predict(latest))
    best = scored.sort_values("p", ascending=False).drop_duplicates("customer_id")
    merged = offers.merge(best, on="customer_id")
    assert (merged["product_category_x"] == merged["product_category_y"]).all()


def test_training_needs_two_dates_and_both_classes() -> None:
    labelled = _candidates()
    one_date = labelled.loc[labelled["as_of_date"] == labelled["as_of_date"].max()]
    with pytest.raises(ValueError, match="two labelled as-of dates"):
        train_next_product_model(one_date, FAST)
    with pytest.raises(ValueError, match="both purchases and non-purchases"):
        train_next_product_model(labelled.assign(**{LABEL: False}), FAST)


def _customers(labelled: pd.DataFrame, gender: np.ndarray) -> pd.DataFrame:
    ids = labelled["customer_id"].drop_duplicates().to_numpy()
    birth_year = np.random.default_rng(5).integers(1950, 2000, len(ids))
    return pd.DataFrame({"customer_id": ids, "gender": gender, "birth_year": birth_year})


def test_who_is_offered_at_capacity_is_audited_and_gates_promotion(tmp_path: Path) -> None:
    labelled = _candidates()
    ids = labelled["customer_id"].drop_duplicates()
    fair = _customers(labelled, np.random.default_rng(4).choice(["f", "m"], len(ids)))
    training = pipeline.train(labelled, FAST, tmp_path / "fair", customers=fair)
    report = training.candidate.json_artifacts["fairness_report.json"]
    assert isinstance(report, dict)
    assert report["config"]["capacity_k"] == 30  # top decile of the 300 holdout customers
    assert {row["attribute"] for row in report["groups"]} == {"gender", "age_band"}
    assert training.summary["fairness_gate"] == "passed", report["reasons"]
    assert training.candidate.decide(None, None).promote
    # Women are planted on the basic plans, whose offers are weak: the capacity goes to men.
    newest = labelled.loc[labelled["as_of_date"] == labelled["as_of_date"].max()]
    premium = newest.drop_duplicates("customer_id").set_index("customer_id")["plan"] == "premium"
    unfair = _customers(labelled, np.where(premium.reindex(ids).to_numpy(), "m", "f"))
    blocked = pipeline.train(labelled, FAST, tmp_path / "unfair", customers=unfair)
    decision = blocked.candidate.decide(None, None)
    assert not decision.promote
    assert decision.gate_failures[0].startswith("fairness gate: gender at capacity 30")


def test_without_customers_the_offers_are_not_audited(tmp_path: Path) -> None:
    training = pipeline.train(_candidates(), FAST, tmp_path)
    assert training.summary["fairness_gate"] == "not audited"
    assert "fairness_report.json" not in training.candidate.json_artifacts


def test_reason_rules_reach_the_served_offer_reasons() -> None:
    labelled = _candidates(seed=2)
    training = train_next_product_model(labelled, FAST)
    latest = labelled.loc[labelled["as_of_date"] == labelled["as_of_date"].max()].drop(
        columns=[LABEL]
    )
    cited = {
        rules: pipeline.score(training.model, "1", latest, rules)["offer_reason_factors"].map(
            lambda text: len(json.loads(text)["factors"])
        )
        for rules in (ReasonRules(), ReasonRules(max_factors=1))
    }
    assert cited[ReasonRules()].max() > 1
    assert cited[ReasonRules(max_factors=1)].max() == 1
