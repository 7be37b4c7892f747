"""Contact policy: do-not-contact, consent per channel, frequency caps, and the audit rows."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from ml.models.next_best_action.contact_policy import (
    AUDIT_COLUMNS,
    FrequencyCap,
    audit_rows,
    caps_from_settings,
    decide_contacts,
)
from ml.models.next_best_action.model import ACTIONS, ActionSettings, choose_actions, expected_gains

CAPS = (FrequencyCap("email", 2, 30), FrequencyCap("phone", 1, 30))
CUSTOMERS = pd.Series(["A", "B", "C", "D", "E"])
CONSENT = pd.DataFrame(
    {
        "customer_id": ["A", "A", "B", "B", "C", "C", "D", "E", "E"],
        "channel": ["email", "phone", "email", "all", "email", "phone", "phone", "email", "phone"],
        "granted": [True, True, True, False, True, False, True, False, True],
    }
)
RECENT = pd.DataFrame(
    {
        "customer_id": ["A", "C", "E"],
        "channel": ["email", "email", "phone"],
        "period_days": [30, 30, 30],
        "contacts": [1, 2, 1],
    }
)


def test_rules_and_their_reasons() -> None:
    decision = decide_contacts(CUSTOMERS, CONSENT, RECENT, CAPS)
    assert list(decision.allowed.columns) == list(ACTIONS)
    offer, call = decision.reasons["retention_offer"], decision.reasons["retention_call"]
    # A: e-mail and phone consent, one e-mail this month (cap 2): everything allowed.
    assert decision.allowed.loc[0].all()
    # B: do-not-contact in force overrides the e-mail grant.
    assert not decision.allowed.loc[1].any()
    assert offer[1] == call[1] == "do-not-contact request in force"
    # C: e-mail cap reached; phone consent withdrawn.
    assert offer[2] == "frequency cap: 2 email contacts in the last 30 days (cap 2)"
    assert call[2] == "no phone consent in force"
    # D: no e-mail record at all means no consent.
    assert offer[3] == "no email consent in force" and decision.allowed.loc[3, "retention_call"]
    # E: e-mail withdrawn, phone cap reached.
    assert call[4] == "frequency cap: 1 phone contacts in the last 30 days (cap 1)"
    assert pd.isna(decision.reasons.loc[0]).all()


def test_audit_lists_every_worthwhile_suppressed_action() -> None:
    inputs = pd.DataFrame(
        {
            "customer_id": CUSTOMERS,
            "as_of_date": [date(2026, 10, 1)] * 5,
            "churn_probability": [0.6] * 5,
            "monthly_value": [35.0] * 5,
            "expected_order_value_12m": [None] * 5,
            "retention_uplift": [0.25] * 5,
            "product_category": [None] * 5,
            "product_probability": [None] * 5,
            "category_order_value": [None] * 5,
        }
    )
    settings = ActionSettings()
    decision = decide_contacts(CUSTOMERS, CONSENT, RECENT, CAPS)
    actions = choose_actions(inputs, settings, decision.allowed)
    gains = expected_gains(inputs, settings)
    audit = audit_rows(gains, decision, actions, settings.min_gain)
    assert tuple(audit.columns) == AUDIT_COLUMNS
    # Nobody is sent what the policy blocked.
    for row in audit.itertuples():
        assert actions.loc[actions["customer_id"] == row.customer_id, "action"].item() != (
            row.suppressed_action
        )
    assert set(audit.loc[audit["customer_id"] == "B", "suppressed_action"]) == {
        a for a in ACTIONS if gains.loc[1, a] >= settings.min_gain
    }
    assert actions.loc[1, "action"] == "no_action"
    assert actions.loc[3, "action"] == "retention_call"  # D: the call is still allowed
    assert (audit["expected_gain_eur"] >= settings.min_gain).all()


def test_caps_from_settings_and_validation() -> None:
    assert caps_from_settings({"phone": (1, 30), "email": (2, 7)}) == (
        FrequencyCap("email", 2, 7),
        FrequencyCap("phone", 1, 30),
    )
    with pytest.raises(ValueError, match="invalid cap"):
        FrequencyCap("email", 1, 0)
