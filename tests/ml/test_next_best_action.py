"""Next best action: expected gains, the choice, no action, the consent mask, the reasons."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from ml.models.next_best_action.model import (
    NBA_COLUMNS,
    NO_ACTION,
    ActionSettings,
    choose_actions,
    expected_gains,
)
from ml.models.next_best_action.pipeline import audit_actions

SETTINGS = ActionSettings()


def _inputs(**columns: list[object]) -> pd.DataFrame:
    n = len(next(iter(columns.values())))
    base: dict[str, list[object]] = {
        "customer_id": [f"C{i}" for i in range(n)],
        "as_of_date": [date(2026, 10, 1)] * n,
        "churn_probability": [0.1] * n,
        "monthly_value": [20.0] * n,
        "expected_order_value_12m": [None] * n,
        "retention_uplift": [0.0] * n,
        "product_category": [None] * n,
        "product_probability": [None] * n,
        "category_order_value": [None] * n,
    }
    base.update(columns)
    return pd.DataFrame(base)


def test_gains_follow_the_documented_formulas() -> None:
    frame = _inputs(
        churn_probability=[0.5],
        monthly_value=[30.0],
        expected_order_value_12m=[40.0],
        retention_uplift=[0.1],
        product_category=["hardware"],
        product_probability=[0.2],
        category_order_value=[150.0],
    )
    gains = expected_gains(frame, SETTINGS).iloc[0]
    value = 12 * 30.0 + 40.0
    assert gains["retention_offer"] == pytest.approx(0.1 * value - SETTINGS.cost_retention_offer)
    assert gains["retention_call"] == pytest.approx(
        0.5 * SETTINGS.call_save_rate * value - SETTINGS.cost_retention_call
    )
    assert gains["cross_sell_offer"] == pytest.approx(
        0.2 * 150.0 * SETTINGS.offer_incrementality * SETTINGS.margin
        - SETTINGS.cost_cross_sell_offer
    )
    assert gains["nurture_email"] == pytest.approx(
        0.5 * SETTINGS.nurture_save_rate * value - SETTINGS.cost_nurture_email
    )


def test_the_best_action_wins_and_low_value_gets_no_action() -> None:
    frame = _inputs(
        churn_probability=[0.6, 0.05, 0.6, 0.02],
        monthly_value=[35.0, 35.0, 35.0, 10.0],
        retention_uplift=[0.02, 0.0, 0.25, 0.0],
        product_category=[None, "hardware", None, None],
        product_probability=[None, 0.6, None, None],
        category_order_value=[None, 150.0, None, None],
    )
    actions = choose_actions(frame, SETTINGS)
    assert tuple(actions.columns) == NBA_COLUMNS
    assert list(actions["action"]) == [
        "retention_call",  # high risk, small offer effect: the call is worth more
        "cross_sell_offer",
        "retention_offer",  # a strong measured offer effect beats the call
        NO_ACTION,  # low risk, low value: nothing is worth its cost
    ]
    assert actions.loc[3, "expected_gain_eur"] == 0.0
    assert "no action is worth its cost" in actions.loc[3, "reason"]
    assert "hardware" in actions.loc[1, "reason"]
    assert actions.loc[1, "product_category"] == "hardware"
    assert pd.isna(actions.loc[0, "product_category"])
    assert list(actions["channel"].iloc[:3]) == ["phone", "email", "email"]


def test_do_not_disturb_customers_are_not_called() -> None:
    frame = _inputs(churn_probability=[0.7], monthly_value=[35.0], retention_uplift=[-0.1])
    assert expected_gains(frame, SETTINGS).loc[0, "retention_call"] == -np.inf
    assert choose_actions(frame, SETTINGS).loc[0, "action"] != "retention_call"


def test_a_mask_moves_to_the_next_allowed_action_or_none() -> None:
    frame = _inputs(
        churn_probability=[0.6, 0.6], monthly_value=[35.0, 35.0], retention_uplift=[0.25, 0.25]
    )
    allowed = pd.DataFrame(
        {
            "retention_call": [True, False],
            "retention_offer": [False, False],
            "cross_sell_offer": [False, False],
            "nurture_email": [False, False],
        }
    )
    actions = choose_actions(frame, SETTINGS, allowed)
    assert list(actions["action"]) == ["retention_call", NO_ACTION]
    assert actions.loc[1, "reason"].startswith(
        "the contact policy does not allow retention offer by email"
    )


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="margin"):
        ActionSettings(margin=1.5)
    with pytest.raises(ValueError, match="cost_retention_call"):
        ActionSettings(cost_retention_call=-1)


def test_who_receives_an_action_is_audited_by_gender_and_age_band() -> None:
    n = 400
    customers = pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(n)],
            "gender": np.repeat(["f", "m"], n // 2),
            "birth_year": np.tile([1960, 1990], n // 2),
        }
    )
    # Women get an action one time in ten, men half the time: a real disparity on 400 rows.
    acted = np.r_[np.arange(n // 2) % 10 == 0, np.arange(n // 2) % 2 == 0]
    actions = pd.DataFrame(
        {
            "customer_id": customers["customer_id"],
            "as_of_date": date(2026, 1, 1),
            "action": np.where(acted, "retention_call", "no_action"),
        }
    )
    report = audit_actions(actions, customers)
    assert not report.gate_passed
    assert report.reasons[0].startswith("gender: selection-rate ratio 0.20 (f 0.100 vs m 0.500)")
    fair = audit_actions(
        actions.assign(action=np.where(np.arange(n) % 3 == 0, "retention_call", "no_action")),
        customers,
    )
    assert fair.gate_passed, fair.reasons
