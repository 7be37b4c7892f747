"""Next best action: one action per customer, chosen by expected incremental value.

Every candidate action gets an expected incremental value in EUR over the next 12 months, from
the suite's scores, minus its cost from settings; the best one wins unless its gain is below
``min_gain``, in which case the customer gets ``no_action``. The formulas (also in
docs/output-tables.md):

* ``retention_offer``: ``retention_uplift x value_at_risk - cost``. The uplift comes from the
  CRM's own randomised offer tests, so it already is "churn risk x effect": it is the measured
  change in the chance to stay.
* ``retention_call``: ``churn_probability x call_save_rate x value_at_risk - cost``. No call test
  exists in the data, so the share of at-risk customers a call keeps is a setting (an assumption
  to replace by a test). A customer whose offer uplift is negative (a do-not-disturb) is not
  called either: a contact is predicted to push them out.
* ``cross_sell_offer``: ``next_product_probability x offer_incrementality x category_value x
  margin - cost``: only the purchases the offer causes count, not the ones that happen anyway.
* ``nurture_email``: ``churn_probability x nurture_save_rate x value_at_risk - cost``.

``value_at_risk`` is the customer's expected value over 12 months: 12 x the monthly subscription
price plus the CLV model's expected order value when it is available.

The contact policy (``ml.models.next_best_action.contact_policy``: do-not-contact, consent per channel, frequency caps)
is applied by the caller as the last step before publishing: :func:`choose_actions` takes a mask
of the actions allowed per customer, and every action it does not allow falls back to the next
best allowed one or to ``no_action``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

ACTIONS: tuple[str, ...] = (
    "retention_call",
    "retention_offer",
    "cross_sell_offer",
    "nurture_email",
)
NO_ACTION = "no_action"
ACTION_CHANNEL: dict[str, str] = {
    "retention_call": "phone",
    "retention_offer": "email",
    "cross_sell_offer": "email",
    "nurture_email": "email",
}
NBA_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "as_of_date",
    "action",
    "channel",
    "expected_gain_eur",
    "action_cost_eur",
    "value_at_risk_eur",
    "product_category",
    "reason",
)
INPUT_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "as_of_date",
    "churn_probability",
    "monthly_value",
    "expected_order_value_12m",
    "retention_uplift",
    "product_category",
    "product_probability",
    "category_order_value",
)


@dataclass(frozen=True)
class ActionSettings:
    """Costs and assumptions of the actions (EUR, shares in 0..1).

    Attributes:
        cost_retention_call: Cost of one retention call (agent time).
        cost_retention_offer: Expected cost of one retention offer (the discount given).
        cost_cross_sell_offer: Cost of one cross-sell offer (e-mail production and discount).
        cost_nurture_email: Cost of one nurture e-mail.
        call_save_rate: Share of customers who would churn that a call keeps (assumption).
        nurture_save_rate: Share of customers who would churn that a nurture e-mail keeps.
        offer_incrementality: Share of predicted purchases that a cross-sell offer causes.
        margin: Gross margin on order value.
        min_gain: Smallest expected gain worth a contact; below it the action is no_action.
    """

    cost_retention_call: float = 25.0
    cost_retention_offer: float = 15.0
    cost_cross_sell_offer: float = 0.5
    cost_nurture_email: float = 0.2
    call_save_rate: float = 0.25
    nurture_save_rate: float = 0.02
    offer_incrementality: float = 0.3
    margin: float = 0.4
    min_gain: float = 2.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        for name in ("call_save_rate", "nurture_save_rate", "offer_incrementality", "margin"):
            if getattr(self, name) > 1:
                raise ValueError(f"{name} must be <= 1, got {getattr(self, name)}")

    def cost(self, action: str) -> float:
        return float(getattr(self, f"cost_{action}"))


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    return pd.to_numeric(frame[name]).fillna(0.0).to_numpy(dtype=float)


def expected_gains(inputs: pd.DataFrame, settings: ActionSettings) -> pd.DataFrame:
    """Expected incremental value net of cost per customer and action (EUR).

    Args:
        inputs: One row per customer with :data:`INPUT_COLUMNS`; missing model outputs (no CLV,
            no uplift model, no candidate product) are null and count as zero.
        settings: Costs and assumptions.

    Returns:
        One column per action of :data:`ACTIONS`, aligned with ``inputs``.
    """
    missing = [c for c in INPUT_COLUMNS if c not in inputs.columns]
    if missing:
        raise ValueError(f"next-best-action inputs lack {missing}")
    risk = np.clip(_column(inputs, "churn_probability"), 0.0, 1.0)
    value = value_at_risk(inputs)
    uplift = _column(inputs, "retention_uplift")
    product = _column(inputs, "product_probability") * _column(inputs, "category_order_value")
    gains = {
        "retention_call": np.where(uplift < 0, -np.inf, risk * settings.call_save_rate * value),
        "retention_offer": uplift * value,
        "cross_sell_offer": product * settings.offer_incrementality * settings.margin,
        "nurture_email": risk * settings.nurture_save_rate * value,
    }
    return pd.DataFrame({a: gains[a] - settings.cost(a) for a in ACTIONS}, index=inputs.index)


def value_at_risk(inputs: pd.DataFrame) -> np.ndarray:
    """12 months of subscription plus the expected order value of the next 12 months (EUR)."""
    return 12.0 * _column(inputs, "monthly_value") + _column(inputs, "expected_order_value_12m")


def _money(x: np.ndarray) -> pd.Series:
    return "EUR " + pd.Series(np.round(x).astype(int)).astype(str)


def _pct(x: np.ndarray) -> pd.Series:
    return pd.Series(np.round(100 * x).astype(int)).astype(str) + "%"


def _reasons(
    inputs: pd.DataFrame,
    action: np.ndarray,
    gain: np.ndarray,
    blocked: np.ndarray,
    wanted: np.ndarray,
    wanted_gain: np.ndarray,
    settings: ActionSettings,
) -> np.ndarray:
    """One sentence per customer with the numbers that made the choice (vectorised strings)."""
    head = (
        "churn risk "
        + _pct(np.clip(_column(inputs, "churn_probability"), 0, 1))
        + " on "
        + _money(value_at_risk(inputs))
        + " a year"
    )
    net = _money(gain)
    uplift = _pct(np.abs(_column(inputs, "retention_uplift")))
    category = inputs["product_category"].fillna("").astype(str).reset_index(drop=True)
    probability = _pct(_column(inputs, "product_probability"))
    sentences = {
        "retention_call": head + "; a retention call is expected to gain " + net,
        "retention_offer": head
        + "; the offer raises the chance to stay by "
        + uplift
        + " percentage points: expected gain "
        + net,
        "cross_sell_offer": "likely to buy "
        + category
        + " next ("
        + probability
        + "); expected gain from the offer "
        + net,
        "nurture_email": head + "; a nurture e-mail is the best value: expected gain " + net,
        NO_ACTION: head
        + "; no action is worth its cost (best expected gain "
        + net
        + f" < EUR {settings.min_gain:g})",
    }
    reasons = pd.Series("", index=head.index, dtype=object)
    for name, text in sentences.items():  # one vectorised pass per action, not per row
        reasons = reasons.where(action != name, text)
    policy = (
        "the contact policy does not allow "
        + pd.Series(wanted).str.replace("_", " ")
        + " by "
        + pd.Series(wanted).map(ACTION_CHANNEL).fillna("")
        + " (expected gain "
        + _money(wanted_gain)
        + "), and no allowed action is worth its cost"
    )
    reasons = reasons.where(~((action == NO_ACTION) & blocked), policy)
    return reasons.to_numpy(dtype=object)


def choose_actions(
    inputs: pd.DataFrame, settings: ActionSettings, allowed: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The best allowed action per customer, or no action, with the reason in words.

    Args:
        inputs: One row per customer with :data:`INPUT_COLUMNS`.
        settings: Costs and assumptions.
        allowed: Optional boolean frame aligned with ``inputs`` with one column per action of
            :data:`ACTIONS`: the contact policy (consent, frequency caps). Missing means all
            allowed.

    Returns:
        The columns :data:`NBA_COLUMNS`, one row per customer.
    """
    gains = expected_gains(inputs, settings)
    values = gains.to_numpy(dtype=float)
    # What the customer would get without the contact policy, to say what the policy blocked.
    wanted = np.array(ACTIONS, dtype=object)[values.argmax(axis=1)] if len(values) else np.zeros(0)
    unrestricted_best = values.max(axis=1) if len(values) else np.zeros(0)
    if allowed is not None:
        mask = allowed.reindex(columns=list(ACTIONS)).fillna(False).to_numpy(dtype=bool)
        values = np.where(mask, values, -np.inf)
    best = values.argmax(axis=1) if len(values) else np.zeros(0, dtype=int)
    best_gain = values[np.arange(len(values)), best] if len(values) else np.zeros(0)
    act = np.array(ACTIONS, dtype=object)[best]
    worth = best_gain >= settings.min_gain
    action = np.where(worth, act, NO_ACTION)
    blocked = ~worth & (unrestricted_best >= settings.min_gain)
    gain = np.where(worth, best_gain, 0.0)
    shown_gain = np.where(np.isfinite(best_gain), best_gain, 0.0)
    cost_of = {a: settings.cost(a) for a in ACTIONS} | {NO_ACTION: 0.0}
    action_cost = pd.Series(action).map(cost_of).to_numpy(dtype=float)
    category = inputs["product_category"].to_numpy(dtype=object)
    return pd.DataFrame(
        {
            "customer_id": inputs["customer_id"].to_numpy(),
            "as_of_date": pd.to_datetime(inputs["as_of_date"]).dt.date.to_numpy(dtype=object),
            "action": action,
            "channel": pd.Series(action).map(ACTION_CHANNEL).to_numpy(dtype=object),
            "expected_gain_eur": np.round(gain, 2),
            "action_cost_eur": action_cost,
            "value_at_risk_eur": np.round(value_at_risk(inputs), 2),
            "product_category": pd.Series(category).where(action == "cross_sell_offer"),
            "reason": _reasons(
                inputs, action, shown_gain, blocked, wanted, unrestricted_best, settings
            ),
        }
    )
