"""The reason rules (ml.modelling.reasons) on hand-made SHAP matrices, and the customer phrases."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ml.core.settings import Settings
from ml.modelling.customer_reasons import CUSTOMER_CONCEPTS, concept_phrase
from ml.modelling.reasons import (
    DEFAULT_RULES,
    NO_STRONG_SIGNALS,
    Concept,
    ReasonRules,
    ReasonWords,
    cite_factors,
    concept_phrases,
    concepts_of,
    reason_rules,
    write_reasons,
)

FEATURES = ("a", "b", "c", "d", "e")
WORDS = ReasonWords(raises="raises risk", lowers="holds risk down")
RULES = ReasonRules(max_factors=3, middle=0.25, min_contribution=0.05, min_share=0.1)


def _cited(shap: list[list[float]], concepts: tuple[Concept, ...] = ()) -> list[dict[str, float]]:
    cited = cite_factors(np.asarray(shap, dtype=float), FEATURES, concepts, RULES)
    names = [c.name for c in cited.concepts]
    out: list[dict[str, float]] = [{} for _ in shap]
    for row, concept, value in zip(cited.rows, cited.concept, cited.contribution, strict=True):
        out[row][names[concept]] = round(float(value), 6)
    return out


@pytest.mark.parametrize(
    ("shap", "expected"),
    [
        # High (sum 1.2): only what raises it, largest first; the lowering 'b' is not said.
        ([0.8, -0.3, 0.4, 0.3, 0.0], {"a": 0.8, "c": 0.4, "d": 0.3}),
        # Low (sum -1.5), the 2% customer on a long contract: what holds the risk down.
        ([0.2, -0.9, -0.5, 0.0, -0.3], {"b": -0.9, "c": -0.5, "e": -0.3}),
        # Middle (sum 0.1): both directions.
        ([0.6, -0.55, 0.03, 0.0, 0.02], {"a": 0.6, "b": -0.55}),
        # At most max_factors, the largest.
        ([0.5, 0.4, 0.3, 0.2, 0.1], {"a": 0.5, "b": 0.4, "c": 0.3}),
    ],
)
def test_cites_what_moves_the_score_its_way(shap: list[float], expected: dict) -> None:
    assert _cited([shap]) == [expected]


def test_side_and_distance_follow_the_sum_of_contributions() -> None:
    cited = cite_factors(
        np.array([[0.2, 0.05, 0, 0, 0], [-0.2, -0.05, 0, 0, 0], [0.2, 0.04, 0, 0, 0]]),
        FEATURES,
        rules=RULES,
    )
    assert cited.side.tolist() == ["high", "low", "middle"]
    assert np.allclose(cited.distance, [0.25, -0.25, 0.24])


@pytest.mark.parametrize(
    ("shap", "expected"),
    [
        # Below the absolute floor of 0.05 log-odds: nothing to say.
        ([0.04, 0.04, 0.04, 0.04, 0.04], {}),
        # 'b' is above the floor but below a tenth of the total |contribution| (2.0): left out.
        ([1.8, 0.09, 0.06, 0.05, 0.0], {"a": 1.8}),
        # A negative that would pass the floors is still not said for a high score.
        ([1.0, -0.5, 0.0, 0.0, 0.0], {"a": 1.0}),
    ],
)
def test_negligible_factors_are_never_cited(shap: list[float], expected: dict) -> None:
    assert _cited([shap]) == [expected]


def test_a_concept_is_said_once_with_the_sum_of_its_features() -> None:
    pair = (Concept("logins", ("b", "c")),)
    # b and c say one thing: cited once, with b + c, and ranked by that sum.
    assert _cited([[0.3, 0.2, 0.25, 0.0, 0.0]], pair) == [{"logins": 0.45, "a": 0.3}]
    # Features of a concept that cancel out do not make it a reason.
    assert _cited([[0.3, 0.4, -0.38, 0.0, 0.0]], pair) == [{"a": 0.3}]


def test_concepts_cover_every_feature_once() -> None:
    grouped = concepts_of(FEATURES, (Concept("pair", ("b", "d", "missing")),))
    assert [(c.name, c.features) for c in grouped] == [
        ("pair", ("b", "d")),
        ("a", ("a",)),
        ("c", ("c",)),
        ("e", ("e",)),
    ]
    with pytest.raises(ValueError, match="two concepts"):
        concepts_of(FEATURES, (Concept("x", ("a", "b")), Concept("y", ("b",))))


def test_rules_reject_nonsense() -> None:
    with pytest.raises(ValueError):
        ReasonRules(max_factors=0)
    with pytest.raises(ValueError):
        ReasonRules(min_share=1.0)
    with pytest.raises(ValueError, match="shape"):
        cite_factors(np.zeros((2, 3)), FEATURES)


def test_reasons_read_the_direction_and_serialise_the_factors() -> None:
    shap = np.array(
        [
            [0.8, -0.3, 0.4, 0.0, 0.0],  # high
            [0.0, -0.9, 0.0, 0.0, 0.0],  # low
            [0.6, -0.65, 0.0, 0.0, 0.0],  # middle, the lowering factor is the larger
            [0.01, 0.0, 0.0, 0.0, 0.0],  # nothing to say
        ]
    )
    cited = cite_factors(shap, FEATURES, rules=RULES)
    prepared = pd.DataFrame({f: [f"{f}{i}" for i in range(4)] for f in FEATURES})
    phrases = concept_phrases(cited, prepared, lambda concept, values: values.iloc[:, 0])
    reasons = write_reasons(cited, phrases, WORDS)

    assert reasons.text.tolist() == [
        "raises risk: a0; c0",
        "holds risk down: b1",
        "holds risk down: b2; raises risk: a2",
        NO_STRONG_SIGNALS,
    ]
    first = json.loads(reasons.factors[0])
    assert first == {
        "distance": 0.9,
        "side": "high",
        "total": 1.5,
        "factors": [
            {"concept": "a", "features": ["a"], "direction": "raises", "contribution": 0.8},
            {"concept": "c", "features": ["c"], "direction": "raises", "contribution": 0.4},
        ],
    }
    assert json.loads(reasons.factors[3])["factors"] == []


def test_many_rows_are_cited_without_a_loop_over_rows() -> None:
    rng = np.random.default_rng(0)
    shap = rng.normal(0, 0.3, size=(20_000, len(FEATURES)))
    cited = cite_factors(shap, FEATURES, rules=RULES)
    signs = np.sign(cited.contribution)
    side = cited.side[cited.rows]
    assert (signs[side == "high"] > 0).all() and (signs[side == "low"] < 0).all()
    floor = np.maximum(RULES.min_contribution, RULES.min_share * cited.total[cited.rows])
    assert (np.abs(cited.contribution) >= floor).all()
    # Ranks count 1, 2, ... within each row.
    first = np.r_[True, cited.rows[1:] != cited.rows[:-1]]
    assert (cited.ranks[first] == 1).all()


def _customer(**values: object) -> pd.DataFrame:
    return pd.DataFrame({k: [v] for k, v in values.items()})


@pytest.mark.parametrize(
    ("concept", "values", "phrase"),
    [
        (
            "logins",
            _customer(
                logins_30d=0.0, logins_31_60d=5.0, login_trend=1 / 6, days_since_last_login=34.0
            ),
            "logins fell from 5 to 0 in the last 60 days, last login 34 days ago (typical: 4 a month)",
        ),
        (
            "logins",
            _customer(
                logins_30d=6.0, logins_31_60d=6.0, login_trend=1.0, days_since_last_login=1.0
            ),
            "6 logins a month in each of the last two months, last login yesterday "
            "(typical: 4 a month)",
        ),
        (
            "logins",
            _customer(
                logins_30d=0.0, logins_31_60d=0.0, login_trend=1.0, days_since_last_login=np.nan
            ),
            "no logins in the last 60 days, no login on record (typical: 4 a month)",
        ),
        (
            "contract",
            _customer(contract_type="two-year", months_to_renewal=11.0),
            "two-year contract renewing in 11 months",
        ),
        (
            "contract",
            _customer(contract_type="month-to-month", months_to_renewal=np.nan),
            "month-to-month contract",
        ),
        (
            "support tickets",
            _customer(tickets_30d=4.0, tickets_90d=6.0, open_tickets=1.0),
            "4 support tickets in the last 30 days and 6 in the last 90 days (typical: 0 and 1), "
            "1 still open",
        ),
        (
            "orders",
            _customer(orders_90d=0.0, order_value_90d=0.0, days_since_last_order=np.nan),
            "0 orders in the last 90 days (typical: 1), no orders on record",
        ),
    ],
)
def test_customer_concepts_read_their_features_together(
    concept: str, values: pd.DataFrame, phrase: str
) -> None:
    typical = {"logins_30d": 4.0, "tickets_30d": 0.0, "tickets_90d": 1.0, "orders_90d": 1.0}
    (declared,) = [c for c in CUSTOMER_CONCEPTS if c.name == concept]
    assert concept_phrase(declared, values, typical).tolist() == [phrase]


REASON_VARIABLES = (
    "CRM_REASON_MAX_FACTORS",
    "CRM_REASON_MIDDLE",
    "CRM_REASON_MIN_CONTRIBUTION",
    "CRM_REASON_MIN_SHARE",
)


def test_the_reason_settings_default_to_the_rules_and_parse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in REASON_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    # ml.core may not import ml.modelling, so the defaults are written twice: held equal here.
    assert reason_rules(Settings()) == DEFAULT_RULES
    monkeypatch.setenv("CRM_REASON_MAX_FACTORS", "1")
    monkeypatch.setenv("CRM_REASON_MIDDLE", "0.5")
    monkeypatch.setenv("CRM_REASON_MIN_CONTRIBUTION", "0.1")
    monkeypatch.setenv("CRM_REASON_MIN_SHARE", "0.2")
    assert reason_rules(Settings()) == ReasonRules(
        max_factors=1, middle=0.5, min_contribution=0.1, min_share=0.2
    )
    # Refused when read, as ReasonRules would refuse them.
    for name, bad in (("CRM_REASON_MAX_FACTORS", "0"), ("CRM_REASON_MIN_SHARE", "1")):
        monkeypatch.setenv(name, bad)
        with pytest.raises(ValueError, match=name.removeprefix("CRM_").lower()):
            Settings()
