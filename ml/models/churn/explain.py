"""Why a customer scores as they do: SHAP top drivers and a reason that tells the truth.

Contributions are CatBoost SHAP values in log-odds of the uncalibrated booster (see
``ChurnModel.shap_values``); a positive contribution raises the churn risk. The top drivers are the
features with the largest |contribution|; the reason cites what the rules of
:mod:`ml.modelling.reasons` allow (for a risk above the base rate what raises it, below it what
holds it down, near it both; never a negligible factor; one phrase per concept), in the words of
:mod:`ml.modelling.customer_reasons`. Everything is vectorised: drivers come from one ``argsort``
of the SHAP matrix, phrases are built per concept (never per row), and the per-customer JSON is
aggregated in DuckDB. Drivers only ever name the model's features, which come from the
allow-list in ``ml.data.features``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from catboost import Pool

from ml.core.warehouse import frame_query
from ml.data.features import KEY_COLUMNS
from ml.modelling import customer_reasons
from ml.modelling.customer_reasons import CUSTOMER_CONCEPTS, concept_phrase, feature_phrase
from ml.modelling.explanations import ShapMode, shap_contributions, top_driver_order
from ml.modelling.reasons import (
    DEFAULT_RULES,
    NO_STRONG_SIGNALS,
    ReasonRules,
    ReasonWords,
    cite_factors,
    concept_phrases,
    write_reasons,
)
from ml.models.churn.model import ChurnModel

NO_RISK_SIGNALS = NO_STRONG_SIGNALS
# The customer phrases live in ml.modelling.customer_reasons (next product and uplift use them
# too); these names stay importable from here.
CATEGORICAL_TEMPLATES = customer_reasons.CATEGORICAL_TEMPLATES
NUMERIC_TEMPLATES = customer_reasons.NUMERIC_TEMPLATES
TYPICAL_FEATURES = customer_reasons.TYPICAL_FEATURES
typical_values = customer_reasons.typical_values
RISK_WORDS = ReasonWords(raises="raises risk", lowers="holds risk down")
DRIVER_COLUMNS = ("customer_id", "as_of_date", "rank", "feature", "value", "contribution")


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


def _shap(
    model: ChurnModel,
    frame: pd.DataFrame,
    prepared: pd.DataFrame | None,
    pool: Pool | None,
    shap_mode: ShapMode,
) -> tuple[pd.DataFrame, np.ndarray]:
    if prepared is None:
        prepared = model.prepare(frame)
    if pool is None:
        pool = model.pool(prepared)
    # CatBoost's ShapValues on the caller's Pool: scoring builds the Pool once for both the
    # probabilities and the explanations.
    return prepared, shap_contributions(model.booster, pool, shap_mode)


def _driver_arrays(model: ChurnModel, prepared: pd.DataFrame, shap: np.ndarray, n: int) -> _Drivers:
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
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
    prepared, shap = _shap(model, frame, None, None, shap_mode)
    drivers = _driver_arrays(model, prepared, shap, n)
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
    """Plain words for each driver's feature and value, whichever way it pushes.

    Args:
        drivers: Long frame from :func:`top_drivers` (needs feature and value).
        typical: Typical value per feature (:func:`typical_values`); a count, duration or
            amount then reads "... (typical: 0)".

    Returns:
        A string per driver row (e.g. ``"4 support tickets in the last 30 days"``), same index
        as ``drivers``.
    """
    phrases = pd.Series(np.full(len(drivers), None, dtype=object), index=drivers.index)
    features = drivers["feature"].to_numpy(dtype=object)
    for feature in pd.unique(features):  # one pass per feature, never per row
        mask = features == feature
        text = feature_phrase(str(feature), drivers.loc[mask, "value"], typical or {})
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
        } order by rank))::varchar as churn_top_drivers
    from drivers
    group by row_id
    order by row_id
"""

EXPLAIN_COLUMNS: tuple[str, ...] = (
    *KEY_COLUMNS,
    "churn_top_drivers",
    "churn_reason",
    "churn_reason_factors",
)


def explain_scores(
    model: ChurnModel,
    frame: pd.DataFrame,
    n: int = 3,
    typical: dict[str, float] | None = None,
    prepared: pd.DataFrame | None = None,
    pool: Pool | None = None,
    shap_mode: ShapMode = "regular",
    rules: ReasonRules = DEFAULT_RULES,
) -> pd.DataFrame:
    """One explanation row per input row: top drivers as JSON, a reason and the factors it cites.

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
        rules: What a reason may cite (:class:`ml.modelling.reasons.ReasonRules`).

    Returns:
        Columns customer_id, as_of_date (as in ``frame``), churn_top_drivers (JSON list of
        ``{"feature", "value", "contribution"}``, contribution rounded to 4 decimals, largest
        |contribution| first), churn_reason (``"raises risk: ..."``, ``"holds risk down:
        ..."``, both for a risk near the base rate, or ``"no strong signals either way"``) and
        churn_reason_factors (the JSON of :func:`ml.modelling.reasons.write_reasons`), in input
        order.
    """
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in EXPLAIN_COLUMNS})
    prepared, shap = _shap(model, frame, prepared, pool, shap_mode)
    drivers = _driver_arrays(model, prepared, shap, n)
    # Typed value columns for DuckDB; pandas NA becomes SQL NULL (a NaN would be invalid JSON).
    long = pd.DataFrame(
        {
            "row_id": drivers.rows,
            "rank": drivers.ranks,
            "feature": drivers.feature,
            "value_text": pd.array(drivers.value_text, dtype="string"),
            "value_number": pd.array(drivers.value_number, dtype="Float64"),
            "contribution": drivers.contribution,
        }
    )
    with frame_query("drivers", long) as con:
        agg = con.execute(_AGGREGATE_SQL).df()

    today = typical if typical is not None else typical_values(frame)
    cited = cite_factors(shap, model.feature_names, CUSTOMER_CONCEPTS, rules)
    phrases = concept_phrases(
        cited, prepared, lambda concept, values: concept_phrase(concept, values, today)
    )
    reasons = write_reasons(cited, phrases, RISK_WORDS)
    result = frame[list(KEY_COLUMNS)].reset_index(drop=True).copy()
    result["churn_top_drivers"] = agg["churn_top_drivers"].to_numpy(dtype=object)
    result["churn_reason"] = reasons.text
    result["churn_reason_factors"] = reasons.factors
    return result[list(EXPLAIN_COLUMNS)]
