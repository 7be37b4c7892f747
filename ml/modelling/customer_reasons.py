"""Plain words for the customer features (``ml.data.features.CHURN_FEATURES``) and their concepts.

The one concept map of the customer features: features that say the same thing are one
:class:`~ml.modelling.reasons.Concept`, said in one phrase that reads them together (``"logins
fell from 5 to 0 in the last 60 days, last login 34 days ago (typical: 4 a month)"``, never
``"0 logins 31 to 60 days ago"`` alone; ``"month-to-month contract"`` once, not once for the
contract type and again for the missing renewal date). Every model that explains a score with
these features (churn, next product) phrases its reasons here; the rules of what is cited are
:mod:`ml.modelling.reasons`.

Phrases are built per feature or concept (a few dozen templates, never per row), with what is
typical today: the median of the customers scored (:func:`typical_values`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from ml.data.features import NUMERIC_FEATURES
from ml.modelling.boosting import MISSING_CATEGORY
from ml.modelling.reasons import Concept

Template = Callable[[pd.Series], pd.Series]


def _pick(condition: pd.Series, yes: str, no: str) -> pd.Series:
    return pd.Series(np.where(condition, yes, no), index=condition.index, dtype=object)


def _whole(x: pd.Series) -> pd.Series:
    return x.round().astype("Int64").astype(str)


def _money(x: pd.Series) -> pd.Series:
    # Exact two-decimal formatting with integer arithmetic: no per-row format calls.
    cents = (x.abs() * 100).round().astype("int64")
    return (cents // 100).astype(str) + "." + (cents % 100).astype(str).str.zfill(2)


def _count(singular: str, plural: str, suffix: str = "") -> Template:
    def phrase(x: pd.Series) -> pd.Series:
        noun = _pick(x.round() == 1, singular, plural)
        return _whole(x) + " " + noun + suffix

    return phrase


def _days(prefix: str, when_missing: str) -> Template:
    def phrase(x: pd.Series) -> pd.Series:
        text = prefix + " " + _whole(x) + " days"
        return text.where(x.notna(), when_missing)

    return phrase


def _price_change(x: pd.Series) -> pd.Series:
    direction = _pick(x >= 0, "up", "down")
    text = "price " + direction + " by " + _money(x) + " in the last 90 days"
    return text.where(x != 0, "no price change in the last 90 days")


def _login_trend(x: pd.Series) -> pd.Series:
    # login_trend = (logins_30d + 1) / (logins_31_60d + 1): below 1 means fewer logins.
    change = ((x - 1).abs() * 100).round()
    direction = _pick(x < 1, "down", "up")
    text = "logins " + direction + " " + _whole(change) + "% on the previous month"
    return text.where(change != 0, "logins flat on the previous month")


def _satisfaction(x: pd.Series) -> pd.Series:
    tenths = (x * 10).round().astype("Int64")
    rating = (tenths // 10).astype(str) + "." + (tenths % 10).astype(str)
    text = "average support rating " + rating + " of 5 in the last 90 days"
    return text.where(x.notna(), "no rated support tickets in the last 90 days")


def _months_to_renewal(x: pd.Series) -> pd.Series:
    text = "contract renews in " + _whole(x) + " months"
    text = text.where(x != 1, "contract renews next month")
    return text.where(x.notna(), "month-to-month contract")


def _category(prefix: str, suffix: str, unknown: str) -> Template:
    def phrase(x: pd.Series) -> pd.Series:
        text = x.astype(str)
        known = x.notna() & (text != MISSING_CATEGORY)
        return (prefix + text + suffix).where(known, unknown)

    return phrase


NUMERIC_TEMPLATES: dict[str, Template] = {
    "tenure_days": _days("customer for", "tenure unknown"),
    "monthly_price": lambda x: "pays " + _money(x) + " per month",
    "price_change_90d": _price_change,
    "plan_changes_365d": _count("plan change", "plan changes", " in the last year"),
    "downgrades_90d": _count("downgrade", "downgrades", " in the last 90 days"),
    "months_to_renewal": _months_to_renewal,
    "logins_30d": _count("login", "logins", " in the last 30 days"),
    "logins_31_60d": _count("login", "logins", " 31 to 60 days ago"),
    "login_trend": _login_trend,
    "days_since_last_login": _days("no login for", "no login on record"),
    "feature_uses_30d": _count("feature use", "feature uses", " in the last 30 days"),
    "email_opens_30d": _count("e-mail opened", "e-mails opened", " in the last 30 days"),
    "email_clicks_30d": _count("e-mail click", "e-mail clicks", " in the last 30 days"),
    "pricing_page_visits_30d": _count(
        "pricing page visit", "pricing page visits", " in the last 30 days"
    ),
    "tickets_30d": _count("support ticket", "support tickets", " in the last 30 days"),
    "tickets_90d": _count("support ticket", "support tickets", " in the last 90 days"),
    "open_tickets": _count("open support ticket", "open support tickets"),
    "avg_satisfaction_90d": _satisfaction,
    "orders_90d": _count("order", "orders", " in the last 90 days"),
    "order_value_90d": lambda x: "orders worth " + _money(x) + " in the last 90 days",
    "days_since_last_order": _days("no order for", "no orders on record"),
}

CATEGORICAL_TEMPLATES: dict[str, Template] = {
    "plan": _category("on the ", " plan", "plan unknown"),
    "contract_type": _category("", " contract", "contract type unknown"),
    "acquisition_channel": _category("came via ", "", "acquisition channel unknown"),
    "country_code": _category("country ", "", "country unknown"),
}

# Counts, durations and amounts: their phrase also says what is typical today (the median of the
# customers scored with them), e.g. "4 support tickets in the last 30 days (typical: 0)".
TYPICAL_FEATURES: frozenset[str] = frozenset(NUMERIC_FEATURES) - {
    # Changes, ratios and ratings read on their own; a typical value would not help.
    "price_change_90d",
    "months_to_renewal",
    "login_trend",
    "avg_satisfaction_90d",
}

# The concept map: features that say one thing. A feature in none is its own concept.
CUSTOMER_CONCEPTS: tuple[Concept, ...] = (
    # months_to_renewal is null exactly for month-to-month contracts: the same fact twice.
    Concept("contract", ("contract_type", "months_to_renewal")),
    # login_trend is (logins_30d + 1) / (logins_31_60d + 1); recency is the same activity.
    Concept("logins", ("logins_30d", "logins_31_60d", "login_trend", "days_since_last_login")),
    Concept("support tickets", ("tickets_30d", "tickets_90d", "open_tickets")),
    Concept("orders", ("orders_90d", "order_value_90d", "days_since_last_order")),
    Concept("e-mail engagement", ("email_opens_30d", "email_clicks_30d")),
    Concept("price", ("monthly_price", "price_change_90d")),
    Concept("plan changes", ("plan_changes_365d", "downgrades_90d")),
)


def _numeric_or_missing(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").astype("float64")


def typical_values(frame: pd.DataFrame) -> dict[str, float]:
    """The median of each typical-value feature over ``frame`` (missing values left out)."""
    present = [c for c in sorted(TYPICAL_FEATURES) if c in frame.columns]
    medians = frame[present].apply(_numeric_or_missing).median()
    return {str(k): float(v) for k, v in medians.items() if pd.notna(v)}


def _typical_text(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 or value == round(value) else f"{value:.1f}"


def _note(typical: dict[str, float], *features: str, unit: str = "") -> str:
    known = [_typical_text(typical[f]) for f in features if f in typical]
    if len(known) != len(features) or not known:
        return ""
    return " (typical: " + " and ".join(known) + unit + ")"


def feature_phrase(feature: str, values: pd.Series, typical: dict[str, float]) -> pd.Series:
    """Plain words for one feature's values, with what is typical for counts and amounts."""
    if feature in NUMERIC_TEMPLATES:
        numbers = _numeric_or_missing(values)
        text = NUMERIC_TEMPLATES[feature](numbers)
        note = _note(typical, feature)
        return text.where(numbers.isna(), text + note) if note else text
    if feature in CATEGORICAL_TEMPLATES:
        return CATEGORICAL_TEMPLATES[feature](values)
    return f"{feature} " + values.astype(str)


def _ago(days: pd.Series) -> pd.Series:
    text = _whole(days) + " days ago"
    return text.where(days.round() != 1, "yesterday").where(days.round() != 0, "today")


def _contract(v: pd.DataFrame, typical: dict[str, float]) -> pd.Series:
    kind = CATEGORICAL_TEMPLATES["contract_type"](v["contract_type"])
    months = _numeric_or_missing(v["months_to_renewal"])
    renews = " renewing in " + _whole(months) + " months"
    renews = renews.where(months != 1, " renewing next month")
    monthly = v["contract_type"].astype(str) == "month-to-month"
    return kind.where(monthly | months.isna(), kind + renews)


def _logins(v: pd.DataFrame, typical: dict[str, float]) -> pd.Series:
    now = _numeric_or_missing(v["logins_30d"])
    before = _numeric_or_missing(v["logins_31_60d"])
    text = pd.Series(
        np.select(
            [now < before, now > before, now == 0],
            ["logins fell from ", "logins rose from ", "no logins in the last 60 days"],
            "",
        ),
        index=v.index,
        dtype=object,
    )
    moved = now != before
    text = text.where(~moved, text + _whole(before) + " to " + _whole(now) + " in the last 60 days")
    steady = (now == before) & (now > 0)
    text = text.where(~steady, _whole(now) + " logins a month in each of the last two months")
    days = _numeric_or_missing(v["days_since_last_login"])
    last = ", last login " + _ago(days)
    text = text.where(days.isna(), text + last)
    text = text.where(days.notna(), text + ", no login on record")
    return text + _note(typical, "logins_30d", unit=" a month")


def _tickets(v: pd.DataFrame, typical: dict[str, float]) -> pd.Series:
    recent = _numeric_or_missing(v["tickets_30d"])
    quarter = _numeric_or_missing(v["tickets_90d"])
    still_open = _numeric_or_missing(v["open_tickets"])
    text = NUMERIC_TEMPLATES["tickets_30d"](recent) + " and " + _whole(quarter)
    text = text + " in the last 90 days" + _note(typical, "tickets_30d", "tickets_90d")
    return text.where(still_open.fillna(0) == 0, text + ", " + _whole(still_open) + " still open")


def _orders(v: pd.DataFrame, typical: dict[str, float]) -> pd.Series:
    count = _numeric_or_missing(v["orders_90d"])
    value = _numeric_or_missing(v["order_value_90d"]).fillna(0)
    text = NUMERIC_TEMPLATES["orders_90d"](count)
    any_orders = count.fillna(0) > 0
    text = text.where(
        ~any_orders,
        text.str.replace(" in the last 90 days", "", regex=False)
        + " worth "
        + _money(value)
        + " in the last 90 days",
    )
    text = text + _note(typical, "orders_90d")
    days = _numeric_or_missing(v["days_since_last_order"])
    return text + (", last order " + _ago(days)).where(days.notna(), ", no orders on record")


def _email(v: pd.DataFrame, typical: dict[str, float]) -> pd.Series:
    opens = _numeric_or_missing(v["email_opens_30d"])
    clicks = _numeric_or_missing(v["email_clicks_30d"])
    text = NUMERIC_TEMPLATES["email_opens_30d"](opens).str.replace(
        " in the last 30 days", "", regex=False
    )
    return (
        text
        + " and "
        + _whole(clicks)
        + " clicked in the last 30 days"
        + _note(typical, "email_opens_30d", "email_clicks_30d")
    )


def _price(v: pd.DataFrame, typical: dict[str, float]) -> pd.Series:
    price = _numeric_or_missing(v["monthly_price"])
    change = _numeric_or_missing(v["price_change_90d"])
    text = "pays " + _money(price) + " per month" + _note(typical, "monthly_price")
    return text + ", " + _price_change(change)


def _plan_changes(v: pd.DataFrame, typical: dict[str, float]) -> pd.Series:
    changes = _numeric_or_missing(v["plan_changes_365d"])
    downgrades = _numeric_or_missing(v["downgrades_90d"])
    return (
        NUMERIC_TEMPLATES["plan_changes_365d"](changes)
        + ", "
        + NUMERIC_TEMPLATES["downgrades_90d"](downgrades)
    )


ConceptTemplate = Callable[[pd.DataFrame, dict[str, float]], pd.Series]
CONCEPT_TEMPLATES: dict[str, ConceptTemplate] = {
    "contract": _contract,
    "logins": _logins,
    "support tickets": _tickets,
    "orders": _orders,
    "e-mail engagement": _email,
    "price": _price,
    "plan changes": _plan_changes,
}


def concept_phrase(concept: Concept, values: pd.DataFrame, typical: dict[str, float]) -> pd.Series:
    """Plain words for one concept's values (its features as columns), one call per concept.

    A declared concept whose features are all there reads them together; a single feature (or
    a concept of which a model has only some features) reads feature by feature.
    """
    declared = {c.name: c for c in CUSTOMER_CONCEPTS}
    whole = concept.name in declared and declared[concept.name].features == concept.features
    if whole and concept.name in CONCEPT_TEMPLATES:
        return CONCEPT_TEMPLATES[concept.name](values, typical)
    parts = [feature_phrase(f, values[f], typical) for f in concept.features]
    text = parts[0]
    for part in parts[1:]:  # the few features of one concept
        text = text + ", " + part
    return text
