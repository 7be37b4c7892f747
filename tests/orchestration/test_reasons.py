"""Served reasons tell the truth about the score, on every row of the default run.

The rules are ``ml.modelling.reasons``; these tests read only what the serving tables hold: the
reason, the factors it cites (with their SHAP contributions, log-odds) and the score.
"""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.modelling.reasons import DEFAULT_RULES, NO_STRONG_SIGNALS, ReasonRules, reason_rules
from orchestration.resources import CrmSettings

# (table, the score as SQL, the rule-made reason as SQL, factors, words of the two directions).
# Offers and uplift lead with their numbers in words and then the rule-made part after "; ".
# The uplift's reason explains the offer's effect in log-odds (staying with the offer against
# without), so that is its score.
_AFTER_NUMBERS = "regexp_replace({}, '^[^;]*; ', '')"
EXPLAINED = [
    (
        "customer_scores",
        "churn_probability",
        "churn_reason",
        "churn_reason_factors",
        ("raises risk", "holds risk down"),
    ),
    (
        "lead_scores",
        "conversion_probability",
        "reason",
        "reason_factors",
        ("raises conversion", "holds conversion down"),
    ),
    (
        "next_product_offers",
        "probability",
        _AFTER_NUMBERS.format("offer_reason"),
        "offer_reason_factors",
        ("raises the chance", "holds the chance down"),
    ),
    (
        "customer_uplift",
        "ln(p_retained_if_treated / (1 - p_retained_if_treated)) "
        "- ln(p_retained_if_not / (1 - p_retained_if_not))",
        _AFTER_NUMBERS.format("uplift_reason"),
        "uplift_reason_factors",
        ("makes the offer work better", "makes it work less"),
    ),
]
ROUNDING = 1e-4  # the served numbers are rounded to 4 decimals


def _served(run, table: str, columns: list[str]) -> pd.DataFrame:
    with duckdb.connect(str(run.settings.warehouse_path), read_only=True) as con:
        return con.sql(f"select {', '.join(columns)} from serving.{table}").df()


@pytest.fixture(params=EXPLAINED, ids=[e[0] for e in EXPLAINED])
def served(request, pipeline_run) -> tuple[pd.DataFrame, pd.DataFrame, tuple[str, str]]:
    table, score, reason, factors, words = request.param
    rows = _served(
        pipeline_run, table, [f"{score} as score", f"{reason} as reason", f"{factors} as f"]
    )
    assert len(rows) > 100
    parsed = rows["f"].map(json.loads)
    rows = pd.DataFrame(
        {
            "score": rows["score"],
            "reason": rows["reason"],
            "distance": parsed.map(lambda f: f["distance"]),
            "side": parsed.map(lambda f: f["side"]),
            "total": parsed.map(lambda f: f["total"]),
        }
    )
    cited = pd.DataFrame(
        [
            {"row": i, "rank": rank, **factor}
            for i, f in enumerate(parsed)
            for rank, factor in enumerate(f["factors"], 1)
        ]
    )
    return rows, cited, words


def test_the_side_is_the_score_against_the_base_rate(served) -> None:
    rows, _, _ = served
    middle = DEFAULT_RULES.middle
    expected = np.select(
        [rows["distance"] >= middle, rows["distance"] <= -middle], ["high", "low"], "middle"
    )
    near_edge = (rows["distance"].abs() - middle).abs() <= ROUNDING
    assert ((rows["side"] == expected) | near_edge).all()
    # The distance is the score's: the calibration map is monotone, so every score above the
    # base value is at least every score below it.
    above, below = rows["distance"] > ROUNDING, rows["distance"] < -ROUNDING
    assert above.any() and below.any()
    assert rows.loc[above, "score"].min() >= rows.loc[below, "score"].max()
    assert {"high", "low"} <= set(rows["side"])


def test_cited_factors_point_the_way_of_the_score(served) -> None:
    rows, cited, _ = served
    side = rows["side"].to_numpy()[cited["row"]]
    contribution = cited["contribution"].to_numpy()
    assert (contribution[side == "high"] > 0).all()
    assert (contribution[side == "low"] < 0).all()
    assert (cited["direction"] == np.where(contribution > 0, "raises", "lowers")).all()
    # Low scores are explained too: what holds them down.
    assert (side == "low").any()


def test_no_reason_repeats_a_concept(served) -> None:
    rows, cited, _ = served
    assert not cited.duplicated(["row", "concept"]).any()
    features = cited.explode("features")
    assert not features.duplicated(["row", "features"]).any()
    # One phrase per cited factor, and "no strong signals" exactly when nothing is cited.
    count = cited.groupby("row").size().reindex(range(len(rows)), fill_value=0)
    phrases = rows["reason"].str.count("; ") + 1
    assert ((rows["reason"] == NO_STRONG_SIGNALS) == (count == 0)).all()
    assert (phrases[count > 0] == count[count > 0]).all()


def test_no_negligible_factor_is_cited(served) -> None:
    rows, cited, _ = served
    total = rows["total"].to_numpy()[cited["row"]]
    floor = np.maximum(DEFAULT_RULES.min_contribution, DEFAULT_RULES.min_share * total)
    assert (cited["contribution"].abs() >= floor - ROUNDING).all()
    assert (cited.groupby("row").size() <= DEFAULT_RULES.max_factors).all()


def test_the_words_match_the_direction(served) -> None:
    rows, cited, (raises, lowers) = served
    said = rows["reason"]
    has_raising = cited.loc[cited["contribution"] > 0, "row"].unique()
    has_lowering = cited.loc[cited["contribution"] < 0, "row"].unique()
    raising = np.zeros(len(rows), dtype=bool)
    raising[has_raising] = True
    lowering = np.zeros(len(rows), dtype=bool)
    lowering[has_lowering] = True
    assert (said.str.contains(raises + ": ", regex=False) == raising).all()
    assert (said.str.contains(lowers + ": ", regex=False) == lowering).all()


def test_churn_reasons_say_paired_features_together(pipeline_run) -> None:
    rows = _served(pipeline_run, "customer_scores", ["churn_reason", "churn_top_drivers"])
    reason = rows["churn_reason"]
    # Logins of last month are never said without this month's, a contract never twice.
    assert not reason.str.contains("31 to 60 days ago", regex=False).any()
    assert (reason.str.count("month-to-month") <= 1).all()
    assert (reason.str.count("contract") <= 1).all()
    assert reason.str.contains("logins (?:fell|rose) from", regex=True).any()


def test_the_crm_resource_sets_the_reason_rules_of_a_run(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MAX_FACTORS", "MIDDLE", "MIN_CONTRIBUTION", "MIN_SHARE"):
        monkeypatch.delenv(f"CRM_REASON_{name}", raising=False)
    assert reason_rules(CrmSettings().get()) == DEFAULT_RULES
    # What a launchpad run config of the crm resource sets, over the environment.
    monkeypatch.setenv("CRM_REASON_MAX_FACTORS", "2")
    crm = CrmSettings(reason_max_factors=1, reason_min_share=0.2)
    assert reason_rules(crm.get()) == ReasonRules(max_factors=1, min_share=0.2)
