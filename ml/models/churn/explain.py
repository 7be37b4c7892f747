"""Why a customer scores high: SHAP top drivers and plain-word reasons.

Contributions are CatBoost SHAP values in log-odds of the uncalibrated booster (see
``ChurnModel.shap_values``); a positive contribution raises the churn risk. Everything is
vectorised: drivers come from one ``argsort`` of the SHAP matrix, phrases are built per feature
(about 20 templates, never per row), and the per-customer JSON and reason are aggregated in DuckDB.
Drivers only ever name the model's features, which come from the allow-list in ``ml.data.features``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
from catboost import Pool

from ml.data.features import KEY_COLUMNS, NUMERIC_FEATURES
from ml.modelling.boosting import MISSING_CATEGORY
from ml.modelling.explanations import ShapMode, shap_contributions, top_driver_order
from ml.models.churn.model import ChurnModel

NO_RISK_SIGNALS = "no strong risk signals"
DRIVER_COLUMNS = ("customer_id", "as_of_date", "rank", "feature", "value", "contribution")

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

# Counts, durations and amounts: their phrase also says what is typical today (the median of the
# customers scored with them), e.g. "4 support tickets in the last 30 days (typical: 0)".
TYPICAL_FEATURES: frozenset[str] = frozenset(NUMERIC_FEATURES) - {
    # Changes, ratios and ratings read on their own; a typical value would not help.
    "price_change_90d",
    "months_to_renewal",
    "login_trend",
    "avg_satisfaction_90d",
}


def typical_values(frame: pd.DataFrame) -> dict[str, float]:
    """The median of each typical-value feature over ``frame`` (missing values left out)."""
    present = [c for c in sorted(TYPICAL_FEATURES) if c in frame.columns]
    medians = frame[present].apply(_numeric_or_missing).median()
    return {str(k): float(v) for k, v in medians.items() if pd.notna(v)}


def _typical_text(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 or value == round(value) else f"{value:.1f}"


CATEGORICAL_TEMPLATES: dict[str, Template] = {
    "plan": _category("on the ", " plan", "plan unknown"),
    "contract_type": _category("", " plan", "contract type unknown"),
    "acquisition_channel": _category("came via ", "", "acquisition channel unknown"),
    "country_code": _category("country ", "", "country unknown"),
}


def _numeric_or_missing(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").astype("float64")


@dataclass(frozen=True)
class _Drivers:
    """The top drivers as flat arrays, one entry per (row, rank)."""

    rows: np.ndarray  # position of the input row
    ranks: np.ndarray  # 1 = largest |contribution|
    feature: np.ndarray  # feature name (object)
    is_categorical: np.ndarray
    value_text: np.ndarray  # categorical value, None for numerics
    value_number: np.ndarray  # numeric value (NaN if null or categorical)
    contribution: np.ndarray

    @property
    def value(self) -> np.ndarray:
        return np.where(self.is_categorical, self.value_text, self.value_number.astype(object))


def _driver_arrays(
    model: ChurnModel,
    frame: pd.DataFrame,
    n: int,
    prepared: pd.DataFrame | None = None,
    pool: Pool | None = None,
    shap_mode: ShapMode = "regular",
) -> _Drivers:
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if prepared is None:
        prepared = model.prepare(frame)
    if pool is None:
        pool = model.pool(prepared)
    # CatBoost's ShapValues on the caller's Pool: scoring builds the Pool once for both the
    # probabilities and the explanations.
    shap = shap_contributions(model.booster, pool, shap_mode)
    # Largest |contribution| first; a stable sort keeps feature order on ties.
    order = top_driver_order(shap, n)
    k = order.shape[1]
    rows = np.repeat(np.arange(len(prepared)), k)
    cols = order.ravel()

    names = np.asarray(model.feature_names, dtype=object)
    cat_column = np.isin(names, np.asarray(model.cat_features, dtype=object))
    cat_idx, num_idx = np.flatnonzero(cat_column), np.flatnonzero(~cat_column)
    # Position of each feature inside its own typed matrix, so only the chosen cells are
    # gathered (no object copy of the whole frame).
    position = np.empty(len(names), dtype=np.int64)
    position[cat_idx] = np.arange(len(cat_idx))
    position[num_idx] = np.arange(len(num_idx))
    is_cat = cat_column[cols]

    value_text = np.full(len(cols), None, dtype=object)
    cat_matrix = prepared.iloc[:, cat_idx].to_numpy(dtype=object)
    value_text[is_cat] = cat_matrix[rows[is_cat], position[cols[is_cat]]]
    value_number = np.full(len(cols), np.nan)
    num_matrix = prepared.iloc[:, num_idx].to_numpy(dtype="float64")
    value_number[~is_cat] = num_matrix[rows[~is_cat], position[cols[~is_cat]]]

    return _Drivers(
        rows=rows,
        ranks=np.tile(np.arange(1, k + 1), len(prepared)),
        feature=names[cols],
        is_categorical=is_cat,
        value_text=value_text,
        value_number=value_number,
        contribution=shap[rows, cols],
    )


def _empty_drivers() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in DRIVER_COLUMNS})


def top_drivers(
    model: ChurnModel, frame: pd.DataFrame, n: int = 3, shap_mode: ShapMode = "regular"
) -> pd.DataFrame:
    """The ``n`` features with the largest |SHAP contribution| per row, in long format.

    Args:
        model: The churn model.
        frame: Rows with the key columns and the model's features.
        n: Drivers per row.
        shap_mode: How CatBoost computes the SHAP values (``CRM_SHAP_MODE``).

    Returns:
        Columns customer_id, as_of_date, rank (1 = largest |contribution|), feature, value (the
        model's input value: a string for categoricals, a float or NaN for numerics) and
        contribution (log-odds; positive raises the risk). ``n`` rows per input row, in input
        order.
    """
    if frame.empty:
        return _empty_drivers()
    drivers = _driver_arrays(model, frame, n, shap_mode=shap_mode)
    return pd.DataFrame(
        {
            "customer_id": frame["customer_id"].to_numpy(dtype=object)[drivers.rows],
            "as_of_date": frame["as_of_date"].to_numpy()[drivers.rows],
            "rank": drivers.ranks,
            "feature": drivers.feature,
            "value": drivers.value,
            "contribution": drivers.contribution,
        }
    )


def reason_phrases(drivers: pd.DataFrame, typical: dict[str, float] | None = None) -> pd.Series:
    """Plain words for each driver that raises the risk.

    Args:
        drivers: Long frame from :func:`top_drivers` (needs feature, value, contribution).
        typical: Typical value per feature (:func:`typical_values`); a count, duration or
            amount then reads "... (typical: 0)".

    Returns:
        A string per driver row with a positive contribution (e.g. ``"4 support tickets in the
        last 30 days"``), ``None`` for drivers that lower or do not move the risk. Same index as
        ``drivers``.
    """
    phrases = pd.Series(np.full(len(drivers), None, dtype=object), index=drivers.index)
    raising = drivers["contribution"].to_numpy(dtype=float) > 0
    features = drivers["feature"].to_numpy(dtype=object)
    for feature in pd.unique(features[raising]):  # one pass per feature, never per row
        mask = raising & (features == feature)
        values = drivers.loc[mask, "value"]
        if feature in NUMERIC_TEMPLATES:
            numbers = _numeric_or_missing(values)
            text = NUMERIC_TEMPLATES[feature](numbers)
            if typical is not None and feature in typical:
                note = f" (typical: {_typical_text(typical[feature])})"
                text = text.where(numbers.isna(), text + note)
        elif feature in CATEGORICAL_TEMPLATES:
            text = CATEGORICAL_TEMPLATES[feature](values)
        else:
            text = f"{feature} " + values.astype(str)
        phrases.loc[mask] = text.to_numpy(dtype=object)
    return phrases


_AGGREGATE_SQL = """
    select
        row_id,
        to_json(list({
            'feature': feature,
            'value': coalesce(
                to_json(value_text),
                case
                    when value_number = trunc(value_number) and abs(value_number) < 1e15
                        then to_json(value_number::bigint)
                    else to_json(value_number)
                end
            ),
            'contribution': round(contribution, 4)
        } order by rank))::varchar as churn_top_drivers,
        coalesce(
            string_agg(reason, '; ' order by rank) filter (where reason is not null),
            $no_risk
        ) as churn_reason
    from drivers
    group by row_id
    order by row_id
"""


def explain_scores(
    model: ChurnModel,
    frame: pd.DataFrame,
    n: int = 3,
    typical: dict[str, float] | None = None,
    prepared: pd.DataFrame | None = None,
    pool: Pool | None = None,
    shap_mode: ShapMode = "regular",
) -> pd.DataFrame:
    """One explanation row per input row: top drivers as JSON and a plain-word reason.

    Args:
        model: The churn model.
        frame: Rows with the key columns and the model's features.
        n: Drivers per row.
        typical: What is typical today per feature (``typical_values`` of everyone scored);
            defaults to the medians of ``frame``. A bucket of customers passes the whole
            snapshot's, so its reasons read as unpartitioned scoring's do.
        prepared: ``model.prepare(frame)`` when the caller has it (scoring), to skip a copy.
        pool: ``model.pool(prepared)`` when the caller has it, to build the Pool once.
        shap_mode: How CatBoost computes the SHAP values (``CRM_SHAP_MODE``,
            :data:`ml.modelling.explanations.ShapMode`).

    Returns:
        Columns customer_id, as_of_date (as in ``frame``), churn_top_drivers (JSON list of
        ``{"feature", "value", "contribution"}``, contribution rounded to 4 decimals, largest
        |contribution| first) and churn_reason (phrases of the risk-raising drivers joined with
        ``"; "``, or ``"no strong risk signals"``), in input order.
    """
    out_columns = [*KEY_COLUMNS, "churn_top_drivers", "churn_reason"]
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in out_columns})
    drivers = _driver_arrays(model, frame, n, prepared, pool, shap_mode)
    reasons = reason_phrases(
        pd.DataFrame(
            {
                "feature": drivers.feature,
                "value": drivers.value,
                "contribution": drivers.contribution,
            }
        ),
        typical if typical is not None else typical_values(frame),
    )
    # Typed value columns for DuckDB; pandas NA becomes SQL NULL (a NaN would be invalid JSON).
    long = pd.DataFrame(
        {
            "row_id": drivers.rows,
            "rank": drivers.ranks,
            "feature": drivers.feature,
            "value_text": pd.array(drivers.value_text, dtype="string"),
            "value_number": pd.array(drivers.value_number, dtype="Float64"),
            "contribution": drivers.contribution,
            "reason": reasons.to_numpy(dtype=object),
        }
    )
    with duckdb.connect() as con:
        con.register("drivers", long)
        agg = con.execute(_AGGREGATE_SQL, {"no_risk": NO_RISK_SIGNALS}).df()
    result = frame[list(KEY_COLUMNS)].reset_index(drop=True).copy()
    result["churn_top_drivers"] = agg["churn_top_drivers"].to_numpy(dtype=object)
    result["churn_reason"] = agg["churn_reason"].to_numpy(dtype=object)
    return result[out_columns]
