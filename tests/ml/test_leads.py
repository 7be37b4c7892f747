"""Lead scoring: synthetic export, training frame, model behaviour, scores, drivers and reasons."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.data.contract import FLAT_TABLES, LEADS_TABLE
from ml.data.flat_tables import load_flat_table, read_flat_table
from ml.data.mapping import load_source_mapping
from ml.modelling.reasons import ReasonRules
from ml.modelling.registry import Training
from ml.models.lead_scoring import pipeline as lead_pipeline
from ml.models.lead_scoring.model import (
    GRADES,
    LABEL_COLUMN,
    LEAD_BOOSTING,
    LEAD_SCORE_COLUMNS,
    LeadConfig,
    LeadModel,
    lead_feature_kinds,
    lead_training_frame,
    score_leads,
    train_lead_model,
)
from ml.synthetic.leads import EXPORT_COLUMNS, generate_leads, generate_leads_with_truth

ROOT = Path(__file__).resolve().parents[2]
SYNTHETIC_MAPPING = ROOT / "examples/synthetic/mapping.yaml"
START, END = date(2025, 1, 1), date(2025, 12, 31)
AS_OF = datetime(2026, 1, 1)
FAST = LeadConfig(boosting=replace(LEAD_BOOSTING, iterations=120, depth=4, learning_rate=0.1))


def _load(tmp_path: Path, export: pd.DataFrame, mapping: Path) -> pd.DataFrame:
    export.to_csv(tmp_path / "leads.csv", index=False)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    try:
        leads_mapping = load_source_mapping(mapping, FLAT_TABLES)["leads"]
        load_flat_table(con, leads_mapping, tmp_path, tmp_path / "q", now=AS_OF)
        return read_flat_table(con, LEADS_TABLE).rows
    finally:
        con.close()


@pytest.fixture(scope="module")
def leads(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """4,000 synthetic leads of 2025, loaded through the synthetic mapping."""
    export = generate_leads(4_000, seed=7, start=START, end=END)
    return _load(tmp_path_factory.mktemp("leads"), export, SYNTHETIC_MAPPING)


@pytest.fixture(scope="module")
def frames(leads: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return lead_training_frame(leads, AS_OF)


@pytest.fixture(scope="module")
def model(frames: tuple[pd.DataFrame, pd.DataFrame]) -> LeadModel:
    return train_lead_model(frames[0], FAST)


@pytest.fixture(scope="module")
def scores(model: LeadModel, frames: tuple[pd.DataFrame, pd.DataFrame]) -> pd.DataFrame:
    return score_leads(model, frames[1], model_version="3")


def test_generator_is_deterministic_per_seed() -> None:
    a = generate_leads(500, seed=1, start=START, end=END)
    b = generate_leads(500, seed=1, start=START, end=END)
    c = generate_leads(500, seed=2, start=START, end=END)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    assert tuple(a.columns) == EXPORT_COLUMNS


def test_generator_has_the_known_effects_missing_tokens_and_open_leads() -> None:
    export, logit = generate_leads_with_truth(20_000, seed=3, start=START, end=END)
    converted = export["Became a Customer Date"].notna()
    trial = export["Trial Started"] == "Yes"
    # Trial started is worth +1.5 log-odds: it must show in the raw conversion rates.
    assert converted[trial].mean() > converted[~trial].mean() + 0.15
    assert np.corrcoef(logit, converted)[0, 1] > 0.3
    assert (export["Job Title"] == "Select").any() and (export["Country"] == "").any()
    created = export["Create Date"]
    lag = (export["Became a Customer Date"] - created).dt.days
    assert lag.min() >= 0 and (export["Became a Customer Date"].max() <= pd.Timestamp(AS_OF))
    recent = created > pd.Timestamp(END) - pd.Timedelta(days=7)
    assert converted[recent].mean() < converted[~recent].mean() / 2  # still open


def test_training_frame_uses_closed_windows_and_scores_open_leads() -> None:
    leads = pd.DataFrame(
        {
            "lead_id": ["old_won", "old_late", "old_lost", "open", "open_won", "future"],
            "created_at": pd.to_datetime(
                ["2025-01-01", "2025-01-01", "2025-02-01", "2025-12-01", "2025-12-01", "2026-02-01"]
            ),
            "converted_at": pd.to_datetime(
                ["2025-01-20", "2025-04-01", None, None, "2025-12-10", None]
            ),
            "converted": [True, True, False, False, True, False],
        }
    )
    training, scoring = lead_training_frame(leads, AS_OF, conversion_window_days=60)
    assert dict(zip(training["lead_id"], training[LABEL_COLUMN], strict=True)) == {
        "old_won": True,
        "old_late": False,  # converted after its 60-day window
        "old_lost": False,
    }
    assert list(scoring["lead_id"]) == ["open"]


def test_training_frame_without_dates_uses_every_labelled_lead() -> None:
    leads = pd.DataFrame(
        {
            "lead_id": ["a", "b", "c"],
            "created_at": pd.Series([pd.NaT] * 3, dtype="datetime64[us]"),
            "converted_at": pd.Series([pd.NaT] * 3, dtype="datetime64[us]"),
            "converted": [True, False, None],
        }
    )
    training, scoring = lead_training_frame(leads)
    assert list(training["lead_id"]) == ["a", "b"]
    assert list(training[LABEL_COLUMN]) == [True, False]
    assert list(scoring["lead_id"]) == ["b", "c"]


def test_model_uses_custom_attributes_and_ranks_the_known_driver(
    model: LeadModel, frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    assert {"attr_trial_started", "attr_budget_confirmed", "attr_industry"} <= set(
        model.feature_names
    )
    importance = model.feature_importance()
    assert "attr_trial_started" in list(importance)[:3]
    # Same leads, only the strong attribute-only driver flipped: the score must go up.
    training = frames[0]
    with_trial = model.predict_proba(training.assign(attr_trial_started=True))
    without = model.predict_proba(training.assign(attr_trial_started=False))
    assert (with_trial >= without).mean() > 0.95
    assert (with_trial - without).mean() > 0.05
    assert model.holdout is not None and model.holdout.roc_auc > 0.7


def test_scores_have_the_serving_columns_and_bounds(
    scores: pd.DataFrame, frames: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    assert tuple(scores.columns) == LEAD_SCORE_COLUMNS
    assert len(scores) == len(frames[1]) > 0
    assert set(scores["lead_id"]) == set(frames[1]["lead_id"])
    assert scores["score"].between(0, 100).all()
    assert pd.api.types.is_integer_dtype(scores["score"])
    assert scores["conversion_probability"].between(0, 1).all()
    assert np.array_equal(
        scores["score"], np.rint(scores["conversion_probability"] * 100).astype(int)
    )
    assert set(scores["grade"]) <= set(GRADES)
    expected = np.select(
        [scores["score"] >= 75, scores["score"] >= 50, scores["score"] >= 25], ["A", "B", "C"], "D"
    )
    assert (scores["grade"] == expected).all()
    assert (scores["model_version"] == "3").all()
    assert scores["score"].is_monotonic_decreasing


def test_drivers_and_reasons_are_consistent(scores: pd.DataFrame, model: LeadModel) -> None:
    for drivers, reason in zip(scores["top_drivers"], scores["reason"], strict=True):
        parsed = json.loads(drivers)
        assert len(parsed) == model.config.top_drivers
        contributions = [abs(d["contribution"]) for d in parsed]
        assert contributions == sorted(contributions, reverse=True)
        for d in parsed:
            assert set(d) == {"feature", "value", "direction", "contribution"}
            assert d["feature"] in model.feature_names
            assert d["direction"] == ("raises" if d["contribution"] > 0 else "lowers")
        assert reason and isinstance(reason, str)
    reasons = " | ".join(scores["reason"])
    assert "x the average)" in reasons and "(typical " in reasons
    assert "trial started: yes (converts" in reasons


def test_reason_quotes_the_category_rate_against_the_average(
    model: LeadModel, scores: pd.DataFrame
) -> None:
    ratio = model.typical.rates["source"]["Referrals"] / model.typical.base_rate
    assert ratio > 1.3  # referrals carry +1.2 log-odds in the synthetic truth
    phrase = f"lead source: Referrals (converts {ratio:.1f}x the average)"
    # Leads from referrals whose reason cites the source.
    referred = scores["top_drivers"].str.contains('"feature":"source","value":"Referrals"')
    cited = scores["reason_factors"].map(
        lambda text: "source" in {f["concept"] for f in json.loads(text)["factors"]}
    )
    named = referred & cited
    assert named.any()
    assert scores.loc[named, "reason"].str.contains(phrase, regex=False).all()


def test_protected_and_personal_columns_never_reach_the_model(tmp_path: Path) -> None:
    export = generate_leads(1_500, seed=11, start=START, end=END)
    # A protected attribute that predicts the outcome perfectly: it must still not be used.
    export["Gender"] = np.where(export["Became a Customer Date"].notna(), "f", "m")
    mapping = SYNTHETIC_MAPPING.read_text() + "  protected: [Gender]\n"
    (tmp_path / "mapping.yaml").write_text(mapping)
    leads = _load(tmp_path, export, tmp_path / "mapping.yaml")
    assert "protected_gender" in leads.columns
    assert not {"attr_email", "attr_first_name", "email"} & set(leads.columns)
    training, scoring = lead_training_frame(leads, AS_OF)
    model = train_lead_model(training, FAST)
    forbidden = {"protected_gender", "attr_gender", "attr_email", "attr_first_name"}
    assert not forbidden & set(model.feature_names)
    assert not any(f.startswith("protected_") for f in model.feature_names)
    drivers = " ".join(score_leads(model, scoring)["top_drivers"])
    assert "gender" not in drivers and "@" not in drivers


def test_feature_kinds_skip_ids_dates_outcomes_and_constants(leads: pd.DataFrame) -> None:
    kinds = lead_feature_kinds(leads.assign(attr_constant="same"))
    assert not {"lead_id", "created_at", "converted_at", "converted", "attr_constant"} & set(kinds)
    assert kinds["attr_trial_started"] == "boolean" and kinds["source"] == "category"
    assert "attr_industry" not in lead_feature_kinds(leads, use_attributes=False)


def test_model_without_dates_uses_a_stratified_holdout(
    frames: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    training = frames[0].assign(created_at=pd.NaT, converted_at=pd.NaT)
    model = train_lead_model(training, FAST)
    assert model.holdout is not None
    assert abs(model.holdout.n - 0.2 * len(training)) <= 1
    assert model.holdout.base_rate == pytest.approx(training[LABEL_COLUMN].mean(), abs=0.01)


def test_grade_cut_offs_are_validated() -> None:
    with pytest.raises(ValueError, match="grade cut-offs"):
        LeadConfig(grade_a=40, grade_b=50)


def _train_with_gender(
    tmp_path: Path, gender: np.ndarray | Callable[[pd.DataFrame], np.ndarray] | None
) -> Training:
    export = generate_leads(1_500, seed=11, start=START, end=END)
    mapping = SYNTHETIC_MAPPING.read_text()
    if gender is not None:
        export["Gender"] = gender(export) if callable(gender) else gender
        mapping += "  protected: [Gender]\n"
    (tmp_path / "mapping.yaml").write_text(mapping)
    export.to_csv(tmp_path / "leads.csv", index=False)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    try:
        leads_mapping = load_source_mapping(tmp_path / "mapping.yaml", FLAT_TABLES)["leads"]
        load_flat_table(con, leads_mapping, tmp_path, tmp_path / "q", now=AS_OF)
        table = read_flat_table(con, LEADS_TABLE)
    finally:
        con.close()
    return lead_pipeline.train(table, FAST, tmp_path / "plots")


def test_declared_protected_column_is_audited_at_grade_a_and_capacity(tmp_path: Path) -> None:
    gender = np.random.default_rng(3).choice(["f", "m"], 1_500)
    training = _train_with_gender(tmp_path, gender)
    report = training.candidate.json_artifacts["fairness_report.json"]
    assert isinstance(report, dict)
    assert {row["attribute"] for row in report["groups"]} == {"gender"}
    assert report["config"]["capacity_k"] >= 1  # the capacity cut is audited too
    assert {"selection_status", "capacity_status"} <= set(report["groups"][0])
    assert training.summary["fairness_gate"] == "passed", report["reasons"]
    assert "fairness.gate_passed" in training.candidate.metrics
    assert training.candidate.card.fairness_gate is not None
    assert training.candidate.decide(None, None).promote


def test_a_planted_disparity_in_lead_selection_blocks_promotion(tmp_path: Path) -> None:
    # Gender follows conversion: a model that never sees gender still grades one gender A.
    training = _train_with_gender(
        tmp_path, lambda e: np.where(e["Became a Customer Date"].notna(), "f", "m")
    )
    assert training.summary["fairness_gate"] == "FAILED"
    decision = training.candidate.decide(None, None)
    assert not decision.promote
    assert decision.gate_failures[0].startswith("fairness gate: gender")


def test_leads_without_protected_columns_say_not_audited(tmp_path: Path) -> None:
    training = _train_with_gender(tmp_path, None)
    assert training.summary["fairness_gate"] == "not audited (no protected column)"
    assert "fairness_report.json" not in training.candidate.json_artifacts
    assert training.candidate.decide(None, None).promote


def test_reason_rules_reach_the_served_lead_reasons(model: LeadModel, leads: pd.DataFrame) -> None:
    cited = {
        rules: lead_pipeline.score(model, "3", leads, datetime(2026, 1, 5), rules)
        .set_index("lead_id")["reason_factors"]
        .map(lambda text: len(json.loads(text)["factors"]))
        for rules in (ReasonRules(), ReasonRules(max_factors=1))
    }
    assert cited[ReasonRules()].max() > 1
    assert cited[ReasonRules(max_factors=1)].max() == 1
