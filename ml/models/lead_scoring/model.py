"""Lead scoring: conversion propensity of open leads, with grades, drivers and plain reasons.

Rows come from ``raw.leads`` (``ml.data.lead_mapping.load_leads``): contract columns plus any number of
typed custom attributes ``attr_*``. The model uses all of them (the major CRM tools score on their
standard fields only); it never sees ``lead_id``, dates, the outcome, ``protected_*`` columns or
personal data (which ``load_leads`` never reads).

Label: converted within ``conversion_window_days`` (60) of creation. With creation dates, training
rows are the leads whose window has closed by the as-of time and the leads to score are the open
ones (created within the window, not converted yet); the holdout is the newest 20% of training
leads (out of time). Without creation dates (X Education) every labelled lead is a training row,
the holdout is a stratified 20%, and the leads to score are those not converted.

Calibration follows ``ml.models.churn.model``: the booster fitted on the older 80% predicts the holdout, a
Platt map on its log-odds is kept only if it lowers the out-of-fold Brier score there, and only
when no map is kept is the booster refitted on every training lead (a map is never paired with a
booster refitted on its own calibration rows). Holdout metrics are those of the first booster's
uncalibrated probabilities; the calibration report holds the Brier scores compared.

``score = round(100 * calibrated probability)``; grades by score: A >= 75, B >= 50, C >= 25, else D
(:class:`LeadConfig`). Drivers are the largest CatBoost SHAP contributions (log-odds of the
uncalibrated booster), each with the value and its direction; the reason puts them in words with
what is typical: the median for numbers, the conversion rate of the value against the average for
categories and yes/no attributes (``"lead source: Reference (converts 2.4x the average)"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import duckdb
import numpy as np
import pandas as pd
from catboost import CatBoostClassifier, Pool
from sklearn.model_selection import train_test_split

from ml.core.maths import sigmoid
from ml.data.contract import PII_COLUMNS, PROTECTED_COLUMNS
from ml.data.lead_mapping import ATTRIBUTE_PREFIX
from ml.modelling.boosting import (
    MISSING_CATEGORY,
    BoostingParams,
    CalibratedBooster,
    CalibrationMode,
    CalibrationReport,
    Calibrator,
    HoldsBoosting,
    catboost_frame,
    fit_with_calibration,
)
from ml.modelling.evaluation import (
    EvaluationResult,
    evaluate,
    plot_calibration_curve,
    plot_lift_chart,
)

LABEL_COLUMN = "converted_within_window"
CATEGORICAL_FEATURES: tuple[str, ...] = ("source", "country", "company_size", "role")
NUMERIC_FEATURES: tuple[str, ...] = (
    "email_opens",
    "page_views",
    "website_visits",
    "time_on_site_minutes",
)
CONTRACT_FEATURES: tuple[str, ...] = CATEGORICAL_FEATURES + NUMERIC_FEATURES
NEVER_FEATURES: frozenset[str] = frozenset(
    {"lead_id", "created_at", "converted_at", "converted", LABEL_COLUMN}
) | (PII_COLUMNS | PROTECTED_COLUMNS)
LEAD_SCORE_COLUMNS: tuple[str, ...] = (
    "lead_id",
    "score",
    "grade",
    "conversion_probability",
    "top_drivers",
    "reason",
    "model_version",
)
GRADES: tuple[str, ...] = ("A", "B", "C", "D")
NO_STRONG_SIGNALS = "no strong signals either way"

FeatureKind = Literal["category", "boolean", "number"]

# Plain-word names of the contract features; attributes are named from their column name.
_LABELS: dict[str, str] = {
    "source": "lead source",
    "country": "country",
    "company_size": "company size",
    "role": "role",
}
# "<value> <noun> (typical <median>)" for the contract counts.
_NUMBER_NOUNS: dict[str, str] = {
    "email_opens": "marketing e-mails opened",
    "page_views": "page views",
    "website_visits": "website visits",
    "time_on_site_minutes": "minutes on the website",
}


# 5-fold CV on X Education (benchmarks/leads_xeducation.py): depth 5-6 and a few hundred rounds at
# 0.05 are on a plateau; more rounds start to overfit 7k leads. Combinations of categories cost
# 40% of the fit time on X Education for no AUC (0.8802 with max_ctr_complexity 1 against 0.8801
# with CatBoost's default 4, 2 folds); an export has many categorical columns.
LEAD_BOOSTING = BoostingParams(
    iterations=500, depth=5, learning_rate=0.05, l2_leaf_reg=5.0, max_ctr_complexity=1
)


@dataclass(frozen=True)
class LeadConfig(HoldsBoosting):
    """Settings of the lead model.

    Attributes:
        boosting: CatBoost settings (its seed also draws the stratified holdout and the
            calibration folds).
        conversion_window_days: A lead counts as converted if it converts within this many days
            of creation.
        holdout_fraction: Share of training leads held out (newest by creation date, else
            stratified) for metrics and calibration.
        calibration: As ``ml.models.churn.model.TrainingConfig.calibration``.
        use_attributes: Use the ``attr_*`` custom attributes (off only to measure what they add).
        top_drivers: Drivers per scored lead.
        grade_a: Lowest score of grade A.
        grade_b: Lowest score of grade B.
        grade_c: Lowest score of grade C (below: D).
        min_category_rows: A category's conversion rate is quoted only if it has this many
            training leads.
    """

    boosting: BoostingParams = LEAD_BOOSTING
    conversion_window_days: int = 60
    holdout_fraction: float = 0.2
    calibration: CalibrationMode = "auto"
    use_attributes: bool = True
    top_drivers: int = 3
    grade_a: int = 75
    grade_b: int = 50
    grade_c: int = 25
    min_category_rows: int = 30

    def __post_init__(self) -> None:
        if not 0 <= self.grade_c <= self.grade_b <= self.grade_a <= 100:
            raise ValueError(
                f"grade cut-offs need 0 <= C <= B <= A <= 100, got A={self.grade_a}, "
                f"B={self.grade_b}, C={self.grade_c}"
            )
        if not 0 < self.holdout_fraction < 1:
            raise ValueError(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction}")
        if self.conversion_window_days < 1 or self.top_drivers < 1:
            raise ValueError("conversion_window_days and top_drivers must be >= 1")

    def grade(self, score: np.ndarray) -> np.ndarray:
        """Grade letter per 0-100 score."""
        return np.select(
            [score >= self.grade_a, score >= self.grade_b, score >= self.grade_c],
            ["A", "B", "C"],
            "D",
        ).astype(object)


def _has_values(frame: pd.DataFrame, column: str) -> bool:
    return column in frame.columns and bool(frame[column].notna().any())


def lead_training_frame(
    leads: pd.DataFrame, as_of: datetime | None = None, conversion_window_days: int = 60
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split ``raw.leads`` rows into labelled training leads and open leads to score.

    Args:
        leads: Rows of ``raw.leads`` (``ml.data.lead_mapping.read_leads``).
        as_of: What is known at this (naive UTC) time; default the newest creation or
            conversion time in ``leads``. Ignored without creation dates.
        conversion_window_days: Label window after creation.

    Returns:
        ``(training, scoring)``. Training rows carry the 0/1 label ``converted_within_window``:
        with creation dates, leads whose window closed by ``as_of``, labelled by a conversion on
        or before the window's end; without, every lead with a known ``converted``. Scoring rows
        are the leads not converted by ``as_of``: created within the window before ``as_of``
        (with dates), or all not-converted leads (without dates; those scores are in-sample).
    """
    if "lead_id" not in leads.columns:
        raise ValueError("leads lack the lead_id column")
    if not _has_values(leads, "created_at"):
        converted = leads["converted"] if "converted" in leads.columns else None
        if converted is None or not converted.notna().any():
            raise ValueError("leads have neither creation dates nor a converted flag to learn from")
        known = converted.notna().to_numpy()
        training = leads.loc[known].reset_index(drop=True)
        training[LABEL_COLUMN] = training["converted"].astype(bool).to_numpy()
        scoring = leads.loc[~converted.astype("boolean").fillna(False).to_numpy(dtype=bool)]
        return training, scoring.reset_index(drop=True)

    created = pd.to_datetime(leads["created_at"])
    has_dates = _has_values(leads, "converted_at")
    conv = pd.to_datetime(leads["converted_at"]) if has_dates else None
    if as_of is None:
        latest = [created.max()] + ([conv.max()] if conv is not None else [])
        as_of = max(latest).to_pydatetime()
    now = pd.Timestamp(as_of)
    window = pd.Timedelta(days=conversion_window_days)
    closed = (created + window <= now).to_numpy()
    if conv is not None:
        label = (conv.notna() & (conv <= created + window) & (conv <= now)).to_numpy()
        converted_by_now = (conv.notna() & (conv <= now)).to_numpy()
    else:
        # A flag without a date: take it as the outcome of the window.
        label = leads["converted"].astype("boolean").fillna(False).to_numpy(dtype=bool)
        converted_by_now = label
    training = leads.loc[closed].reset_index(drop=True)
    training[LABEL_COLUMN] = label[closed]
    open_now = (created <= now).to_numpy() & ~closed & ~converted_by_now
    return training, leads.loc[open_now].reset_index(drop=True)


def _kind(column: pd.Series, name: str) -> FeatureKind | None:
    """How a column enters the model, or None for a type it cannot use."""
    if name in CATEGORICAL_FEATURES:
        return "category"
    if pd.api.types.is_bool_dtype(column):
        return "boolean"
    if pd.api.types.is_numeric_dtype(column):
        return "number"
    inferred = pd.api.types.infer_dtype(column, skipna=True)
    if inferred == "boolean":
        return "boolean"  # DuckDB BOOLEAN with nulls arrives as object
    if inferred in ("string", "empty", "categorical", "mixed"):
        return "category"
    if inferred in ("integer", "floating", "mixed-integer-float", "decimal"):
        return "number"
    return None


def lead_feature_kinds(frame: pd.DataFrame, use_attributes: bool = True) -> dict[str, FeatureKind]:
    """The features a lead model may use on ``frame``, with how each enters the model.

    Contract features and (when ``use_attributes``) every ``attr_*`` column, minus columns with
    fewer than two distinct values (nothing to learn) and anything in :data:`NEVER_FEATURES`.
    ``protected_*`` columns are never candidates.
    """
    candidates = [c for c in CONTRACT_FEATURES if c in frame.columns]
    if use_attributes:
        candidates += [c for c in frame.columns if c.startswith(ATTRIBUTE_PREFIX)]
    kinds: dict[str, FeatureKind] = {}
    for name in candidates:  # columns, never rows
        column = frame[name]
        if name in NEVER_FEATURES or column.nunique(dropna=False) < 2:
            continue
        kind = _kind(column, name)
        if kind is not None:
            kinds[name] = kind
    return kinds


def _label(name: str) -> str:
    if name in _LABELS:
        return _LABELS[name]
    return name.removeprefix(ATTRIBUTE_PREFIX).replace("_", " ")


def _number_text(values: pd.Series) -> pd.Series:
    """Whole numbers without decimals, others with one (vectorised string ops)."""
    return values.round(1).astype(str).str.replace(r"\.0$", "", regex=True)


@dataclass(frozen=True)
class Typical:
    """What is typical of the training leads, quoted in reasons.

    Attributes:
        base_rate: Share of training leads that converted.
        medians: Median of each number feature.
        rates: Conversion rate per category (``"missing"`` for not filled in; ``"yes"``/``"no"``
            for booleans), only for categories with at least ``min_category_rows`` leads.
        modes: Most common value of each category feature.
    """

    base_rate: float
    medians: dict[str, float] = field(default_factory=dict)
    rates: dict[str, dict[str, float]] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)


class LeadModel(CalibratedBooster):
    """A trained lead booster with its calibrator, feature kinds and typical values."""

    def __init__(
        self,
        booster: CatBoostClassifier,
        kinds: dict[str, FeatureKind],
        config: LeadConfig,
        typical: Typical | None = None,
        calibrator: Calibrator | None = None,
        calibration_report: CalibrationReport | None = None,
        holdout: EvaluationResult | None = None,
        holdout_labels: np.ndarray | None = None,
        holdout_proba: np.ndarray | None = None,
    ) -> None:
        self.booster = booster
        self.kinds = dict(kinds)
        # A plain attribute, as CalibratedBooster declares it; kinds is not changed after this.
        self.cat_features = tuple(n for n, k in self.kinds.items() if k == "category")
        self.config = config
        self.typical = typical or Typical(base_rate=float("nan"))
        self.calibrator = calibrator
        self.calibration_report = calibration_report or CalibrationReport(
            method=calibrator.method if calibrator else "none"
        )
        self.holdout = holdout
        self.holdout_labels = holdout_labels
        self.holdout_proba = holdout_proba

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Features in model order."""
        return tuple(self.kinds)

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's features in order: categories as strings (``"missing"`` for nulls),
        numbers and booleans as float64 (NaN for nulls)."""
        bools = [n for n, k in self.kinds.items() if k == "boolean"]
        return catboost_frame(frame, self.feature_names, self.cat_features, bools, "lead model")


def _labels(frame: pd.DataFrame) -> np.ndarray:
    if LABEL_COLUMN not in frame.columns:
        raise ValueError(f"frame lacks the label column {LABEL_COLUMN!r} (use lead_training_frame)")
    return frame[LABEL_COLUMN].astype(bool).to_numpy().astype(int)


def _fit(frame: pd.DataFrame, kinds: dict[str, FeatureKind], config: LeadConfig) -> LeadModel:
    y = _labels(frame)
    if len(np.unique(y)) < 2:
        raise ValueError("training leads hold a single class; cannot fit a lead model")
    booster = config.boosting.classifier()
    model = LeadModel(booster, kinds, config)
    booster.fit(Pool(model.prepare(frame), label=y, cat_features=list(model.cat_features)))
    return model


def _typical(frame: pd.DataFrame, kinds: dict[str, FeatureKind], config: LeadConfig) -> Typical:
    y = pd.Series(_labels(frame), index=frame.index, dtype=float)
    medians: dict[str, float] = {}
    rates: dict[str, dict[str, float]] = {}
    modes: dict[str, str] = {}
    for name, kind in kinds.items():  # columns, never rows
        col = frame[name]
        if kind == "number":
            median = pd.to_numeric(col).median()
            if pd.notna(median):
                medians[name] = float(median)
            continue
        if kind == "boolean":
            text = col.astype("boolean").map({True: "yes", False: "no"}).astype(object)
        else:
            text = col.astype("object")
        text = text.where(col.notna(), MISSING_CATEGORY)
        stats = y.groupby(text.to_numpy()).agg(["mean", "size"])
        kept = stats[stats["size"] >= config.min_category_rows]
        rates[name] = {str(k): float(v) for k, v in kept["mean"].items()}
        filled = stats.drop(index=MISSING_CATEGORY, errors="ignore")
        if len(filled):
            modes[name] = str(filled["size"].idxmax())
    return Typical(base_rate=float(y.mean()), medians=medians, rates=rates, modes=modes)


def holdout_split(frame: pd.DataFrame, config: LeadConfig) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (fit, holdout): newest leads by creation date, else stratified."""
    n = len(frame)
    if "created_at" in frame.columns and frame["created_at"].notna().all():
        # Ties in created_at go by position, so the holdout has exactly the requested size.
        order = np.argsort(pd.to_datetime(frame["created_at"]).to_numpy(), kind="stable")
        holdout = np.zeros(n, dtype=bool)
        holdout[order[n - round(config.holdout_fraction * n) :]] = True
        return ~holdout, holdout
    _, test_idx = train_test_split(
        np.arange(n),
        test_size=config.holdout_fraction,
        stratify=_labels(frame),
        random_state=config.boosting.seed,
    )
    holdout = np.zeros(n, dtype=bool)
    holdout[test_idx] = True
    return ~holdout, holdout


def train_lead_model(frame: pd.DataFrame, config: LeadConfig | None = None) -> LeadModel:
    """Train the lead model: holdout metrics and calibration, then refit (see module docstring).

    Args:
        frame: Training leads from :func:`lead_training_frame` (with ``converted_within_window``).
        config: Settings; defaults to :class:`LeadConfig`.

    Returns:
        The model, with holdout metrics (``model.holdout``) and the holdout's labels and
        uncalibrated probabilities for plots.

    Raises:
        ValueError: No usable feature, or a class missing from the fit or holdout rows.
    """
    config = config or LeadConfig()
    kinds = lead_feature_kinds(frame, config.use_attributes)
    if not kinds:
        raise ValueError("no usable lead feature: every candidate column is empty or constant")
    _, holdout_rows = holdout_split(frame, config)
    holdout_frame = frame.loc[holdout_rows].reset_index(drop=True)
    y_holdout = _labels(holdout_frame)
    if len(np.unique(y_holdout)) < 2:
        raise ValueError("the holdout leads hold a single class; need more labelled leads")

    fitted = fit_with_calibration(
        lambda rows: _fit(rows, kinds, config),
        frame,
        holdout_rows,
        _labels,
        config.calibration,
        config.boosting.seed,
        held_out_prediction=True,
    )
    model, logit = fitted.model, fitted.held_out_logit
    assert logit is not None  # a held-out prediction was asked for
    holdout = evaluate(y_holdout, sigmoid(logit))
    model.typical = _typical(frame, kinds, config)
    model.holdout = holdout
    model.holdout_labels = y_holdout
    model.holdout_proba = sigmoid(logit)
    return model


def plot_lead_model(model: LeadModel, directory: Path) -> dict[str, Path]:
    """Calibration and lift plots of the holdout (``ml.modelling.evaluation``), as PNGs in ``directory``.

    The plots' axis titles say "churn": they are ml.modelling.evaluation's, read "conversion".
    """
    if model.holdout_labels is None or model.holdout_proba is None:
        raise ValueError("the model carries no holdout predictions to plot")
    directory = Path(directory)
    return {
        "calibration": plot_calibration_curve(
            model.holdout_labels, model.holdout_proba, directory / "lead_calibration.png"
        ),
        "lift": plot_lift_chart(
            model.holdout_labels, model.holdout_proba, directory / "lead_lift.png"
        ),
    }


def _phrases(
    model: LeadModel, feature: str, values: pd.Series, numbers: pd.Series, known: pd.Series
) -> pd.Series:
    """Plain words for one feature's driver values (one call per feature, never per row)."""
    kind = model.kinds[feature]
    label = _label(feature)
    typical = model.typical
    if kind == "number":
        median = typical.medians.get(feature)
        shown = _number_text(numbers)
        text = (
            shown + " " + _NUMBER_NOUNS[feature]
            if feature in _NUMBER_NOUNS
            else label + ": " + shown
        )
        if median is not None:
            text = text + f" (typical {_number_text(pd.Series([median])).iloc[0]})"
        return text.where(known, label + ": not recorded")
    # Categories and booleans: the value's conversion rate against the average.
    rates = pd.Series(typical.rates.get(feature, {}), dtype=float)
    ratio = values.map(rates) / typical.base_rate if typical.base_rate > 0 else values.map(rates)
    ratio_text = (
        ratio.round(1).astype(str).where(ratio < 10, ratio.round().astype("Int64").astype(str))
    )
    shown = values.where(values != MISSING_CATEGORY, "not filled in")
    text = label + ": " + shown.astype(str)
    quoted = text + " (converts " + ratio_text + "x the average)"
    mode = typical.modes.get(feature)
    fallback = text + (f" (most leads: {mode})" if mode is not None else "")
    return quoted.where(ratio.notna(), fallback)


_AGGREGATE_SQL = """
    select
        row_id,
        to_json(list({
            'feature': feature,
            'value': coalesce(
                to_json(value_text),
                to_json(value_bool),
                case
                    when value_number = trunc(value_number) and abs(value_number) < 1e15
                        then to_json(value_number::bigint)
                    else to_json(round(value_number, 4))
                end
            ),
            'direction': case when contribution > 0 then 'raises' else 'lowers' end,
            'contribution': round(contribution, 4)
        } order by rank))::varchar as top_drivers,
        string_agg(phrase, '; ' order by rank) filter (where contribution > 0) as raising,
        string_agg(phrase, '; ' order by rank) filter (where contribution < 0) as lowering
    from drivers
    group by row_id
    order by row_id
"""


def explain_leads(model: LeadModel, frame: pd.DataFrame) -> pd.DataFrame:
    """Top drivers (JSON) and a plain-word reason per lead, in input order.

    Args:
        model: The lead model.
        frame: Leads with the model's features.

    Returns:
        Columns ``top_drivers`` (JSON list of ``{"feature", "value", "direction",
        "contribution"}``, largest |contribution| first, contribution in log-odds rounded to 4
        decimals, direction ``raises`` or ``lowers``) and ``reason`` (the raising drivers in words,
        then ``"held back by"`` the lowering ones).
    """
    n = len(frame)
    if n == 0:
        return pd.DataFrame(
            {"top_drivers": pd.Series(dtype=object), "reason": pd.Series(dtype=object)}
        )
    prepared = model.prepare(frame)
    shap = model.shap_values(frame)
    k = min(model.config.top_drivers, shap.shape[1])
    order = np.argsort(-np.abs(shap), axis=1, kind="stable")[:, :k]
    rows = np.repeat(np.arange(n), k)
    cols = order.ravel()
    names = np.asarray(model.feature_names, dtype=object)
    kinds = np.asarray([model.kinds[f] for f in model.feature_names], dtype=object)
    feature = names[cols]
    kind = kinds[cols]
    is_cat, is_bool = kind == "category", kind == "boolean"
    # Gather only the chosen cells, from one object matrix of the prepared features.
    cells = prepared.to_numpy(dtype=object)[rows, cols]
    numbers = np.full(len(cols), np.nan)
    numbers[~is_cat] = cells[~is_cat].astype(float)
    known = ~np.isnan(numbers)
    text = np.full(len(cols), None, dtype=object)
    text[is_cat] = cells[is_cat]
    # What the typical values are keyed by: category text, "yes"/"no" for booleans.
    lookup = text.copy()
    lookup[is_bool] = np.where(numbers[is_bool] == 1, "yes", "no")
    lookup[is_bool & ~known] = MISSING_CATEGORY
    # A category not filled in is a JSON null in the drivers, like a missing number.
    text[is_cat & (text == MISSING_CATEGORY)] = None
    phrase = np.full(len(cols), None, dtype=object)
    for name in pd.unique(feature):  # one pass per feature, never per row
        mask = feature == name
        phrase[mask] = _phrases(
            model, name, pd.Series(lookup[mask]), pd.Series(numbers[mask]), pd.Series(known[mask])
        ).to_numpy(dtype=object)

    long = pd.DataFrame(
        {
            "row_id": rows,
            "rank": np.tile(np.arange(1, k + 1), n),
            "feature": feature,
            "value_text": pd.Series(text, dtype="string"),
            "value_bool": pd.Series(numbers == 1, dtype="boolean").mask(~(is_bool & known)),
            "value_number": pd.Series(numbers, dtype="Float64").mask(kind != "number"),
            "contribution": shap[rows, cols],
            "phrase": phrase,
        }
    )
    with duckdb.connect() as con:
        con.register("drivers", long)
        agg = con.execute(_AGGREGATE_SQL).df()
    raising, lowering = agg["raising"], agg["lowering"]
    reason = raising.where(lowering.isna(), raising + "; held back by " + lowering)
    reason = reason.where(raising.notna(), "held back by " + lowering)
    reason = reason.where(raising.notna() | lowering.notna(), NO_STRONG_SIGNALS)
    return pd.DataFrame(
        {
            "top_drivers": agg["top_drivers"].to_numpy(dtype=object),
            "reason": reason.to_numpy(dtype=object),
        }
    )


def score_leads(
    model: LeadModel, frame: pd.DataFrame, model_version: str | None = None
) -> pd.DataFrame:
    """Score, grade and explain leads: the rows of ``serving.lead_scores``.

    Args:
        model: The lead model.
        frame: Leads to score (the scoring frame of :func:`lead_training_frame`).
        model_version: Registered model version written to each row (``None`` until the caller
            registers the model).

    Returns:
        Exactly :data:`LEAD_SCORE_COLUMNS`: ``lead_id``, ``score`` (int 0-100, the calibrated
        probability in percent), ``grade`` (A-D by :class:`LeadConfig` cut-offs),
        ``conversion_probability``, ``top_drivers`` (JSON), ``reason`` and ``model_version``.
        Highest score first; ties by ``lead_id``.
    """
    proba = model.predict_proba(frame) if len(frame) else np.empty(0)
    score = np.rint(proba * 100).astype("int32")
    explained = explain_leads(model, frame)
    scores = pd.DataFrame(
        {
            "lead_id": frame["lead_id"].astype(str).to_numpy(dtype=object),
            "score": score,
            "grade": model.config.grade(score),
            "conversion_probability": proba.astype("float64"),
            "top_drivers": explained["top_drivers"].to_numpy(dtype=object),
            "reason": explained["reason"].to_numpy(dtype=object),
            "model_version": pd.Series([model_version] * len(frame), dtype=object),
        }
    )
    scores = scores.sort_values(["score", "lead_id"], ascending=[False, True], kind="stable")
    return scores.reset_index(drop=True)[list(LEAD_SCORE_COLUMNS)]


def lead_feature_importance(model: LeadModel) -> dict[str, float]:
    """CatBoost's prediction-value-change importance per feature (sums to 100), largest first."""
    values = model.booster.get_feature_importance(type="PredictionValuesChange")
    pairs = sorted(zip(model.feature_names, map(float, values), strict=True), key=lambda p: -p[1])
    return dict(pairs)
