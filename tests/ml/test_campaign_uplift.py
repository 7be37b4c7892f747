"""Campaign uplift: holdout of the newest whole campaigns, a planted effect found, segments."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd
import pytest

from ml.modelling.reasons import ReasonRules
from ml.modelling.uplift import UPLIFT_BOOSTING, UpliftConfig
from ml.models.retention_uplift import pipeline
from ml.models.retention_uplift.model import (
    UPLIFT_COLUMNS,
    CampaignUpliftConfig,
    plot_qini,
    predict_retention_uplift,
    train_campaign_uplift,
)
from tests.ml.conftest import make_feature_frame

WAVES = (date(2025, 1, 1), date(2025, 4, 1), date(2025, 7, 1), date(2025, 10, 1))
FAST = CampaignUpliftConfig(
    learner=UpliftConfig(boosting=replace(UPLIFT_BOOSTING, iterations=80, thread_count=2)),
    n_boot=50,
)


def _sends(seed: int = 0) -> pd.DataFrame:
    """Randomised retention-offer tests: the offer helps price-page visitors, hurts the rest a bit."""
    frame = make_feature_frame(customers_per_date=1500, as_of_dates=WAVES, seed=seed)
    rng = np.random.default_rng(seed)
    n = len(frame)
    treated = rng.random(n) < 0.5
    persuadable = frame["pricing_page_visits_30d"].to_numpy() >= 1
    logit = 1.5 + np.where(treated, np.where(persuadable, 1.5, -0.3), 0.0)
    retained = rng.random(n) < 1 / (1 + np.exp(-logit))
    return frame.drop(columns=["churned"]).assign(
        send_id=[f"X{i}" for i in range(n)],
        campaign_id=pd.Series(frame["as_of_date"]).dt.strftime("retention-%Y-%m").to_numpy(),
        campaign_type="retention_offer",
        is_treated=treated,
        outcome=retained.astype(int),
    )


@pytest.fixture(scope="module")
def training():
    return train_campaign_uplift(_sends(), FAST)


def test_the_newest_whole_campaigns_are_held_out(training) -> None:
    assert training.summary["holdout_campaigns"] == ["retention-2025-10", "retention-2025-07"][::-1]
    assert training.summary["training_campaigns"] == ["retention-2025-01", "retention-2025-04"]
    assert training.metrics["holdout_rows"] == 3000


def test_the_planted_effect_is_found(training) -> None:
    i = training.interval
    assert i.low <= i.estimate <= i.high
    # Targeting by uplift finds the persuadables: far above the average effect, interval above 0.
    assert i.low > 0
    assert i.estimate > training.metrics["average_effect"] + 0.05
    # Normalised by the perfect ranking of single responders, so small; random is about 0.
    assert training.metrics["qini"] > 0.02
    assert training.metrics["auuc"] > 0.02


def test_predictions_and_segments(training) -> None:
    features = make_feature_frame(customers_per_date=400, as_of_dates=(date(2026, 1, 1),), seed=5)
    uplift = predict_retention_uplift(training.model, features)
    assert tuple(uplift.columns) == UPLIFT_COLUMNS
    assert len(uplift) == 400
    visitors = features["pricing_page_visits_30d"].to_numpy() >= 1
    assert (
        uplift.loc[visitors, "retention_uplift"].mean()
        > uplift.loc[~visitors, "retention_uplift"].mean() + 0.1
    )
    assert (uplift.loc[visitors, "uplift_segment"] == "persuadable").mean() > 0.8
    assert (uplift.loc[~visitors, "uplift_segment"] == "do_not_disturb").mean() > 0.5
    row = uplift.loc[uplift["uplift_segment"] == "persuadable"].iloc[0]
    assert row["uplift_reason"].startswith(
        "the offer is predicted to raise the chance to stay: "
        f"{round(100 * row['p_retained_if_not'])}% without an offer, "
        f"{round(100 * row['p_retained_if_treated'])}% with one; "
    )
    # Then what makes the effect larger or smaller than average, by the reason rules: the
    # factors add up to the effect in log-odds minus a constant (the average effect).
    lor = np.log(uplift["p_retained_if_treated"] / (1 - uplift["p_retained_if_treated"])) - np.log(
        uplift["p_retained_if_not"] / (1 - uplift["p_retained_if_not"])
    )
    factors = uplift["uplift_reason_factors"].map(json.loads)
    distance = factors.map(lambda f: f["distance"])
    assert np.ptp(lor - distance) < 1e-3
    for f, reason in zip(factors, uplift["uplift_reason"], strict=True):
        said = reason.split("; ", 1)[1]
        if f["side"] == "high":
            assert said.startswith("makes the offer work better: ") and "less" not in said
        if f["side"] == "low":
            assert said.startswith("makes it work less: ") and "better" not in said


def test_qini_plot_is_written(training, tmp_path) -> None:
    path = plot_qini(
        training.holdout_outcome,
        training.holdout_uplift,
        training.holdout_treatment,
        tmp_path / "q.png",
    )
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_one_campaign_is_not_enough() -> None:
    sends = _sends()
    with pytest.raises(ValueError, match="at least two campaigns"):
        train_campaign_uplift(sends.loc[sends["campaign_id"] == "retention-2025-01"], FAST)


def _gender_of(sends: pd.DataFrame, planted: bool) -> pd.DataFrame:
    ids = sends["customer_id"].drop_duplicates()
    if planted:
        # Men are the price-page visitors the offer helps: targeting by uplift picks men.
        newest = sends.loc[sends["campaign_id"].isin(["retention-2025-07", "retention-2025-10"])]
        visitor = newest.groupby("customer_id")["pricing_page_visits_30d"].max() >= 1
        gender = np.where(visitor.reindex(ids, fill_value=False).to_numpy(), "m", "f")
    else:
        gender = np.random.default_rng(2).choice(["f", "m"], len(ids))
    birth_year = np.random.default_rng(3).integers(1950, 2000, len(ids))
    return pd.DataFrame({"customer_id": ids, "gender": gender, "birth_year": birth_year})


@pytest.mark.parametrize("planted", [False, True])
def test_who_is_targeted_at_capacity_is_audited_and_gates_promotion(
    planted: bool, tmp_path
) -> None:
    sends = _sends()
    result = pipeline.train(sends, FAST, tmp_path, customers=_gender_of(sends, planted))
    report = result.candidate.json_artifacts["fairness_report.json"]
    assert isinstance(report, dict)
    n_customers = sends.loc[sends["campaign_id"] >= "retention-2025-07", "customer_id"].nunique()
    assert report["config"]["capacity_k"] == int(np.ceil(0.3 * n_customers))  # uplift@30
    decision = result.candidate.decide(None, None)
    if planted:
        assert result.summary["fairness_gate"] == "FAILED" and not decision.promote
        assert decision.gate_failures[0].startswith("fairness gate: gender at capacity")
    else:
        assert result.summary["fairness_gate"] == "passed", report["reasons"]
        assert decision.promote


def test_reason_rules_reach_the_served_uplift_reasons(training) -> None:
    features = make_feature_frame(customers_per_date=400, as_of_dates=(date(2026, 1, 1),), seed=6)
    cited = {
        rules: pipeline.score(training.model, "1", features, rules)["uplift_reason_factors"].map(
            lambda text: len(json.loads(text)["factors"])
        )
        for rules in (ReasonRules(), ReasonRules(max_factors=1))
    }
    assert cited[ReasonRules()].max() > 1
    assert cited[ReasonRules(max_factors=1)].max() == 1
