"""A calibrated yes/no outcome model on a flat table: leads that convert, customers who churn.

A flat table (``ml.data.flat_tables``) holds one row per lead or customer: a few contract
columns, any number of typed custom attributes ``attr_*`` and an outcome. The model of such a
table is one recipe, whatever the outcome; what differs is said by a :class:`FlatOutcome`: which
contract columns are features, what the label is called, and the words of the reasons
("converts 2.4x the average", "churns 2.4x the average").

* Features: the outcome's contract features and (``use_attributes``) every ``attr_*`` column,
  minus constants and anything in ``FlatOutcome.never``; never ``protected_*`` columns, ids,
  dates or the outcome.
* Holdout: the newest ``holdout_fraction`` of rows by the outcome's date column when every row
  has one (out of time), else a stratified sample.
* Settings: the config's boosting settings, or (``tuning_grid``) the candidate with the best
  mean ROC AUC over stratified inner folds of the fit rows only (never the holdout).
* Calibration: ``ml.modelling.boosting.fit_with_calibration`` on the holdout: a Platt map on
  the log-odds is kept only if it lowers the out-of-fold Brier score there, and only when no map
  is kept is the booster refitted on every row. Holdout metrics are those of the first booster's
  uncalibrated probabilities.
* Reasons: the factors the rules of ``ml.modelling.reasons`` cite from the CatBoost SHAP
  contributions (log-odds of the uncalibrated booster): for a score above the base rate what
  raises it, below it what holds it down, near it both, never a negligible one, in words with
  what is typical: the median for numbers, the outcome rate of a category (or yes/no)
  against the average. Column labels and the meaning of a missing value come from the mapping
  (``labels``, ``sentinels``): ``"days since last contact: never contacted"``, not ``-1``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from catboost import CatBoostClassifier, Pool
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split

from ml.core.maths import sigmoid
from ml.core.warehouse import frame_query
from ml.data.flat_tables import ATTRIBUTE_PREFIX
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
from ml.modelling.explanations import top_driver_order
from ml.modelling.reasons import (
    DEFAULT_RULES,
    SCORE_WORDS,
    Concept,
    ReasonRules,
    ReasonWords,
    cite_factors,
    concept_phrases,
    write_reasons,
)

FeatureKind = Literal["category", "boolean", "number"]


@dataclass(frozen=True)
class FlatOutcome:
    """What a flat-table model predicts and how its reasons talk about it.

    Attributes:
        label_column: The 0/1 label of training rows.
        date_column: When a row was created or observed; an out-of-time holdout needs it.
        categorical: Contract columns that are categories.
        numeric: Contract columns that are numbers.
        never: Columns that are never features (ids, dates, outcomes, personal data).
        verb: How a category's outcome rate reads: ``"converts"``, ``"churns"``.
        subject: What a row is, plural: ``"leads"``, ``"customers"``.
        labels: Contract column -> how it reads in reasons.
        number_nouns: Contract count -> noun, read ``"<value> <noun> (typical <median>)"``.
        words: How the two directions of a reason read (``"raises conversion"``).
        concepts: Contract features that say one thing, said once (``ml.modelling.reasons``).
    """

    label_column: str
    date_column: str | None
    categorical: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    never: frozenset[str] = frozenset()
    verb: str = "converts"
    subject: str = "rows"
    labels: Mapping[str, str] = field(default_factory=dict)
    number_nouns: Mapping[str, str] = field(default_factory=dict)
    words: ReasonWords = SCORE_WORDS
    concepts: tuple[Concept, ...] = ()

    @property
    def contract_features(self) -> tuple[str, ...]:
        return self.categorical + self.numeric


@dataclass(frozen=True)
class FlatModelConfig(HoldsBoosting):
    """Settings every flat-table model has.

    Attributes:
        boosting: CatBoost settings (its seed also draws the stratified holdout and the folds).
        holdout_fraction: Share of rows held out for metrics and calibration.
        calibration: As ``ml.modelling.boosting.fit_with_calibration``.
        use_attributes: Use the ``attr_*`` custom attributes (off only to measure what they add).
        top_drivers: Drivers per scored row.
        min_category_rows: A category's outcome rate is quoted only if it has this many rows.
        tuning_grid: Candidate changes to ``boosting``; non-empty: the best by inner CV is used.
        tuning_folds: Inner folds of the tuning.
    """

    boosting: BoostingParams = field(default_factory=BoostingParams)
    holdout_fraction: float = 0.2
    calibration: CalibrationMode = "auto"
    use_attributes: bool = True
    top_drivers: int = 3
    min_category_rows: int = 30
    tuning_grid: tuple[Mapping[str, Any], ...] = ()
    tuning_folds: int = 3

    def __post_init__(self) -> None:
        if not 0 < self.holdout_fraction < 1:
            raise ValueError(f"holdout_fraction must be in (0, 1), got {self.holdout_fraction}")
        if self.top_drivers < 1 or self.tuning_folds < 2:
            raise ValueError("top_drivers must be >= 1 and tuning_folds >= 2")


@dataclass(frozen=True)
class Typical:
    """What is typical of the training rows, quoted in reasons.

    Attributes:
        base_rate: Share of training rows with the outcome.
        medians: Median of each number feature.
        rates: Outcome rate per category (``"missing"`` for not filled in; ``"yes"``/``"no"``
            for booleans), only for categories with at least ``min_category_rows`` rows.
        modes: Most common value of each category feature.
    """

    base_rate: float
    medians: dict[str, float] = field(default_factory=dict)
    rates: dict[str, dict[str, float]] = field(default_factory=dict)
    modes: dict[str, str] = field(default_factory=dict)


class FlatOutcomeModel(CalibratedBooster):
    """A trained flat-table booster with its calibrator, feature kinds and what reasons quote.

    Subclasses name the model for its registry pickles (``LeadModel``) and set ``outcome``.
    """

    outcome: FlatOutcome
    # Class-level defaults: models pickled before these existed load with them.
    column_labels: dict[str, str] = {}  # noqa: RUF012 - read-only default
    missing_meanings: dict[str, str] = {}  # noqa: RUF012 - read-only default
    tuned: dict[str, Any] = {}  # noqa: RUF012 - read-only default

    def __init__(
        self,
        booster: CatBoostClassifier,
        kinds: dict[str, FeatureKind],
        config: FlatModelConfig,
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
        return catboost_frame(frame, self.feature_names, self.cat_features, bools, "flat model")

    def label(self, feature: str) -> str:
        """How a feature reads in reasons: the mapping's label, the contract's words, else its
        name."""
        return (
            self.column_labels.get(feature)
            or self.outcome.labels.get(feature)
            or feature.removeprefix(ATTRIBUTE_PREFIX).replace("_", " ")
        )

    def feature_importance(self) -> dict[str, float]:
        """CatBoost's prediction-value-change importance per feature (sums to 100), largest
        first."""
        values = self.booster.get_feature_importance(type="PredictionValuesChange")
        pairs = zip(self.feature_names, map(float, values), strict=True)
        return dict(sorted(pairs, key=lambda p: -p[1]))


def _kind(column: pd.Series, name: str, outcome: FlatOutcome) -> FeatureKind | None:
    """How a column enters the model, or None for a type it cannot use."""
    if name in outcome.categorical:
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


def feature_kinds(
    frame: pd.DataFrame, outcome: FlatOutcome, use_attributes: bool = True
) -> dict[str, FeatureKind]:
    """The features a model may use on ``frame``, with how each enters the model.

    Contract features and (when ``use_attributes``) every ``attr_*`` column, minus columns with
    fewer than two distinct values (nothing to learn) and anything in ``outcome.never``.
    ``protected_*`` columns are never candidates.
    """
    candidates = [c for c in outcome.contract_features if c in frame.columns]
    if use_attributes:
        candidates += [c for c in frame.columns if c.startswith(ATTRIBUTE_PREFIX)]
    kinds: dict[str, FeatureKind] = {}
    for name in candidates:  # columns, never rows
        column = frame[name]
        if name in outcome.never or column.nunique(dropna=False) < 2:
            continue
        kind = _kind(column, name, outcome)
        if kind is not None:
            kinds[name] = kind
    return kinds


def labels_of(frame: pd.DataFrame, outcome: FlatOutcome) -> np.ndarray:
    """The 0/1 label of training rows."""
    if outcome.label_column not in frame.columns:
        raise ValueError(f"frame lacks the label column {outcome.label_column!r}")
    return frame[outcome.label_column].astype(bool).to_numpy().astype(int)


def _fit(
    model_class: type[FlatOutcomeModel],
    frame: pd.DataFrame,
    kinds: dict[str, FeatureKind],
    config: FlatModelConfig,
) -> FlatOutcomeModel:
    y = labels_of(frame, model_class.outcome)
    if len(np.unique(y)) < 2:
        raise ValueError(f"training {model_class.outcome.subject} hold a single class")
    booster = config.boosting.classifier()
    model = model_class(booster, kinds, config)
    booster.fit(Pool(model.prepare(frame), label=y, cat_features=list(model.cat_features)))
    return model


def _typical(
    frame: pd.DataFrame, kinds: dict[str, FeatureKind], config: FlatModelConfig, y: np.ndarray
) -> Typical:
    outcome = pd.Series(y, index=frame.index, dtype=float)
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
        stats = outcome.groupby(text.to_numpy()).agg(["mean", "size"])
        kept = stats[stats["size"] >= config.min_category_rows]
        rates[name] = {str(k): float(v) for k, v in kept["mean"].items()}
        filled = stats.drop(index=MISSING_CATEGORY, errors="ignore")
        if len(filled):
            modes[name] = str(filled["size"].idxmax())
    return Typical(base_rate=float(outcome.mean()), medians=medians, rates=rates, modes=modes)


def time_ordered(frame: pd.DataFrame, outcome: FlatOutcome) -> bool:
    """Whether every row has the outcome's date and the dates differ: an out-of-time split is
    possible. (One export date for every row orders nothing: rows would split by position.)"""
    date = outcome.date_column
    if date is None or date not in frame.columns:
        return False
    values = frame[date]
    return bool(values.notna().all()) and values.nunique() > 1


def holdout_split(
    frame: pd.DataFrame, config: FlatModelConfig, outcome: FlatOutcome
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (fit, holdout): the newest rows by the outcome's date, else stratified."""
    n = len(frame)
    date = outcome.date_column
    if date is not None and time_ordered(frame, outcome):
        # Ties go by position, so the holdout has exactly the requested size.
        order = np.argsort(pd.to_datetime(frame[date]).to_numpy(), kind="stable")
        holdout = np.zeros(n, dtype=bool)
        holdout[order[n - round(config.holdout_fraction * n) :]] = True
        return ~holdout, holdout
    _, test_idx = train_test_split(
        np.arange(n),
        test_size=config.holdout_fraction,
        stratify=labels_of(frame, outcome),
        random_state=config.boosting.seed,
    )
    holdout = np.zeros(n, dtype=bool)
    holdout[test_idx] = True
    return ~holdout, holdout


def tune_by_cv(
    model_class: type[FlatOutcomeModel],
    frame: pd.DataFrame,
    kinds: dict[str, FeatureKind],
    config: FlatModelConfig,
) -> tuple[FlatModelConfig, dict[str, Any], tuple[float, ...]]:
    """The config's boosting changed by the ``tuning_grid`` candidate with the best mean ROC AUC
    over stratified inner folds of ``frame`` (only ``frame`` is read: pass the fit rows).

    Returns:
        ``(config with the chosen settings, the chosen changes, every candidate's mean AUC)``.
    """
    grid = config.tuning_grid or ({},)
    y = labels_of(frame, model_class.outcome)
    folds = StratifiedKFold(config.tuning_folds, shuffle=True, random_state=config.boosting.seed)
    splits = list(folds.split(np.zeros(len(y)), y))
    mean_auc = []
    for changes in grid:  # a handful of settings, each a few fits
        candidate = replace(config, boosting=replace(config.boosting, **changes))
        auc = []
        for train, test in splits:
            fitted = _fit(model_class, frame.iloc[train], kinds, candidate)
            auc.append(roc_auc_score(y[test], fitted.raw_logit(frame.iloc[test])))
        mean_auc.append(float(np.mean(auc)))
    best = dict(grid[int(np.argmax(mean_auc))])
    chosen = replace(config, boosting=replace(config.boosting, **best), tuning_grid=())
    return chosen, best, tuple(mean_auc)


def train_flat_model(
    model_class: type[FlatOutcomeModel],
    frame: pd.DataFrame,
    config: FlatModelConfig,
    column_labels: Mapping[str, str] | None = None,
    missing_meanings: Mapping[str, str] | None = None,
) -> FlatOutcomeModel:
    """Train a flat-table model: tuning, holdout metrics and calibration, then refit.

    Args:
        model_class: The model's class (its ``outcome`` says what it predicts).
        frame: Training rows with the outcome's label column.
        config: Settings.
        column_labels: Column -> label for reasons (``ml.data.flat_tables.FlatTable``).
        missing_meanings: Column -> what a missing value means.

    Returns:
        The model, with holdout metrics (``model.holdout``) and the holdout's labels and
        uncalibrated probabilities for plots.

    Raises:
        ValueError: No usable feature, or a class missing from the fit or holdout rows.
    """
    outcome = model_class.outcome
    kinds = feature_kinds(frame, outcome, config.use_attributes)
    if not kinds:
        raise ValueError(
            f"no usable feature: every candidate column of the {outcome.subject} is empty or "
            "constant"
        )
    fit_rows, holdout_rows = holdout_split(frame, config, outcome)
    holdout_frame = frame.loc[holdout_rows].reset_index(drop=True)
    y_holdout = labels_of(holdout_frame, outcome)
    if len(np.unique(y_holdout)) < 2:
        raise ValueError(f"the holdout {outcome.subject} hold a single class; need more rows")
    tuned: dict[str, Any] = {}
    if config.tuning_grid:
        fit_frame = frame.loc[fit_rows].reset_index(drop=True)
        config, tuned, _ = tune_by_cv(model_class, fit_frame, kinds, config)

    fitted = fit_with_calibration(
        lambda rows: _fit(model_class, rows, kinds, config),
        frame,
        holdout_rows,
        lambda rows: labels_of(rows, outcome),
        config.calibration,
        config.boosting.seed,
        held_out_prediction=True,
    )
    model, logit = fitted.model, fitted.held_out_logit
    assert logit is not None  # a held-out prediction was asked for
    model.typical = _typical(frame, kinds, config, labels_of(frame, outcome))
    model.holdout = evaluate(y_holdout, sigmoid(logit))
    model.holdout_labels = y_holdout
    model.holdout_proba = sigmoid(logit)
    model.column_labels = dict(column_labels or {})
    model.missing_meanings = dict(missing_meanings or {})
    model.tuned = tuned
    return model


def plot_flat_model(model: FlatOutcomeModel, directory: Path, prefix: str) -> dict[str, Path]:
    """Calibration and lift plots of the holdout (``ml.modelling.evaluation``), as PNGs."""
    if model.holdout_labels is None or model.holdout_proba is None:
        raise ValueError("the model carries no holdout predictions to plot")
    directory = Path(directory)
    return {
        "calibration": plot_calibration_curve(
            model.holdout_labels, model.holdout_proba, directory / f"{prefix}_calibration.png"
        ),
        "lift": plot_lift_chart(
            model.holdout_labels, model.holdout_proba, directory / f"{prefix}_lift.png"
        ),
    }


def number_text(values: pd.Series) -> pd.Series:
    """Whole numbers without decimals, others with one (vectorised string ops)."""
    return values.round(1).astype(str).str.replace(r"\.0$", "", regex=True)


def _phrases(
    model: FlatOutcomeModel,
    feature: str,
    values: pd.Series,
    numbers: pd.Series,
    known: pd.Series,
) -> pd.Series:
    """Plain words for one feature's driver values (one call per feature, never per row)."""
    kind = model.kinds[feature]
    label = model.label(feature)
    typical = model.typical
    outcome = model.outcome
    unknown = model.missing_meanings.get(feature)
    if kind == "number":
        median = typical.medians.get(feature)
        shown = number_text(numbers)
        nouns = outcome.number_nouns
        text = shown + " " + nouns[feature] if feature in nouns else label + ": " + shown
        if median is not None:
            text = text + f" (typical {number_text(pd.Series([median])).iloc[0]})"
        return text.where(known, f"{label}: {unknown or 'not recorded'}")
    # Categories and booleans: the value's outcome rate against the average.
    rates = pd.Series(typical.rates.get(feature, {}), dtype=float)
    ratio = values.map(rates) / typical.base_rate if typical.base_rate > 0 else values.map(rates)
    ratio_text = (
        ratio.round(1).astype(str).where(ratio < 10, ratio.round().astype("Int64").astype(str))
    )
    shown = values.where(values != MISSING_CATEGORY, unknown or "not filled in")
    text = label + ": " + shown.astype(str)
    quoted = text + f" ({outcome.verb} " + ratio_text + "x the average)"
    mode = typical.modes.get(feature)
    fallback = text + (f" (most {outcome.subject}: {mode})" if mode is not None else "")
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
        } order by rank))::varchar as top_drivers
    from drivers
    group by row_id
    order by row_id
"""


def _cells(
    model: FlatOutcomeModel, cells: np.ndarray, kind: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(text, lookup, numbers) of prepared cells: the JSON text of categories, what the typical
    values are keyed by (category text, ``"yes"``/``"no"`` for booleans) and the numbers."""
    is_cat, is_bool = kind == "category", kind == "boolean"
    numbers = np.full(len(cells), np.nan)
    numbers[~is_cat] = cells[~is_cat].astype(float)
    known = ~np.isnan(numbers)
    text = np.full(len(cells), None, dtype=object)
    text[is_cat] = cells[is_cat]
    lookup = text.copy()
    lookup[is_bool] = np.where(numbers[is_bool] == 1, "yes", "no")
    lookup[is_bool & ~known] = MISSING_CATEGORY
    # A category not filled in is a JSON null in the drivers, like a missing number.
    text[is_cat & (text == MISSING_CATEGORY)] = None
    return text, lookup, numbers


def _concept_phrase(model: FlatOutcomeModel, concept: Concept, values: pd.DataFrame) -> pd.Series:
    """The phrases of a concept's features joined (one call per concept, never per row)."""
    parts = []
    for name in concept.features:  # the few features of one concept
        kind = np.full(len(values), model.kinds[name], dtype=object)
        _, lookup, numbers = _cells(model, values[name].to_numpy(dtype=object), kind)
        parts.append(
            _phrases(
                model, name, pd.Series(lookup), pd.Series(numbers), pd.Series(~np.isnan(numbers))
            )
        )
    text = parts[0]
    for part in parts[1:]:
        text = text + ", " + part
    return text


def explain(
    model: FlatOutcomeModel, frame: pd.DataFrame, rules: ReasonRules = DEFAULT_RULES
) -> pd.DataFrame:
    """Top drivers (JSON), a plain-word reason and the factors it cites per row, in input order.

    Returns:
        Columns ``top_drivers`` (JSON list of ``{"feature", "value", "direction",
        "contribution"}``, largest |contribution| first, contribution in log-odds rounded to 4
        decimals, direction ``raises`` or ``lowers``), ``reason`` (what the rules of
        ``ml.modelling.reasons`` cite, in the outcome's words: ``"raises conversion: ...;
        holds conversion down: ..."``) and ``reason_factors`` (their JSON,
        ``ml.modelling.reasons.write_reasons``).
    """
    n = len(frame)
    if n == 0:
        return pd.DataFrame(
            {c: pd.Series(dtype=object) for c in ("top_drivers", "reason", "reason_factors")}
        )
    prepared = model.prepare(frame)
    shap = model.shap_values(frame)
    order = top_driver_order(shap, model.config.top_drivers)
    k = order.shape[1]
    rows = np.repeat(np.arange(n), k)
    cols = order.ravel()
    names = np.asarray(model.feature_names, dtype=object)
    kinds = np.asarray([model.kinds[f] for f in model.feature_names], dtype=object)
    feature = names[cols]
    kind = kinds[cols]
    is_bool = kind == "boolean"
    # Gather only the chosen cells, from one object matrix of the prepared features.
    text, _, numbers = _cells(model, prepared.to_numpy(dtype=object)[rows, cols], kind)
    known = ~np.isnan(numbers)
    long = pd.DataFrame(
        {
            "row_id": rows,
            "rank": np.tile(np.arange(1, k + 1), n),
            "feature": feature,
            "value_text": pd.Series(text, dtype="string"),
            "value_bool": pd.Series(numbers == 1, dtype="boolean").mask(~(is_bool & known)),
            "value_number": pd.Series(numbers, dtype="Float64").mask(kind != "number"),
            "contribution": shap[rows, cols],
        }
    )
    with frame_query("drivers", long) as con:
        agg = con.execute(_AGGREGATE_SQL).df()

    cited = cite_factors(shap, model.feature_names, model.outcome.concepts, rules)
    phrases = concept_phrases(
        cited, prepared, lambda concept, values: _concept_phrase(model, concept, values)
    )
    reasons = write_reasons(cited, phrases, model.outcome.words)
    return pd.DataFrame(
        {
            "top_drivers": agg["top_drivers"].to_numpy(dtype=object),
            "reason": reasons.text,
            "reason_factors": reasons.factors,
        }
    )


def feature_table(model: FlatOutcomeModel) -> tuple[tuple[str, str, str], ...]:
    """``(feature, kind, label)`` per feature, for model cards."""
    return tuple((name, kind, model.label(name)) for name, kind in model.kinds.items())


def top_features(model: FlatOutcomeModel, n: int = 8) -> Sequence[tuple[str, float]]:
    """The ``n`` most important features with their importance."""
    return list(model.feature_importance().items())[:n]
