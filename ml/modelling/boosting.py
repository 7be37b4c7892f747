"""The boosting kit every model of the suite is built from: CatBoost settings, frames, calibration.

* :class:`BoostingParams` is the one CatBoost parameter type: each model's config holds one
  (``config.boosting``) and builds its boosters with :meth:`BoostingParams.classifier` or
  :meth:`BoostingParams.regressor`, so ``allow_writing_files=False`` (else CatBoost writes
  ``catboost_info/`` into the working directory), the seed and the thread count are set in one
  place.
* :func:`catboost_frame` gives a feature frame the dtypes CatBoost expects.
* Calibration: a binary booster's log-odds may be mapped to calibrated probabilities by a
  :class:`Calibrator`. :func:`fit_with_calibration` is the one path every calibrated model
  takes: the booster is fitted without a calibration slice, a Platt map on its log-odds is kept
  only if it lowers the out-of-fold Brier score on that slice (:func:`choose_calibrator`), and
  only when no map is kept is the booster refitted with the slice added. A kept calibrator is
  never paired with a booster refitted on its own calibration rows.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Generic, Literal, TypeVar

import numpy as np
import pandas as pd
from catboost import CatBoostClassifier, CatBoostRegressor, Pool
from scipy.optimize import brentq
from scipy.special import logit as log_odds
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss

from ml.core.maths import sigmoid
from ml.modelling.explanations import ShapMode, shap_contributions

MISSING_CATEGORY = "missing"
CalibrationMode = Literal["auto", "none", "sigmoid", "isotonic"]


@dataclass(frozen=True)
class BoostingParams:
    """CatBoost settings of one model.

    Attributes:
        iterations: Boosting rounds (fixed: no model here stops early on held-out data, which
            would then no longer be held out).
        depth: Tree depth.
        learning_rate: Step size.
        l2_leaf_reg: L2 regularisation of leaf values; None leaves CatBoost's default (3).
        one_hot_max_size: Categoricals with at most this many values are one-hot encoded
            instead of target statistics; None leaves CatBoost's default.
        max_ctr_complexity: Most categorical features CatBoost combines into one statistic;
            None leaves CatBoost's default.
        thread_count: CatBoost threads.
        seed: Random seed of CatBoost (and of the model's own folds and samples).
    """

    iterations: int = 400
    depth: int = 4
    learning_rate: float = 0.05
    l2_leaf_reg: float | None = None
    one_hot_max_size: int | None = None
    max_ctr_complexity: int | None = None
    thread_count: int = 2
    seed: int = 42

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.depth < 1 or self.thread_count < 1:
            raise ValueError("iterations, depth and thread_count must be >= 1")

    def _kwargs(self) -> dict[str, Any]:
        optional = {
            "l2_leaf_reg": self.l2_leaf_reg,
            "one_hot_max_size": self.one_hot_max_size,
            "max_ctr_complexity": self.max_ctr_complexity,
        }
        return {
            "iterations": self.iterations,
            "depth": self.depth,
            "learning_rate": self.learning_rate,
            **{k: v for k, v in optional.items() if v is not None},
            "thread_count": self.thread_count,
            "random_seed": self.seed,
            "allow_writing_files": False,
            "verbose": False,
        }

    def classifier(
        self, monotone_constraints: Mapping[str, int] | None = None
    ) -> CatBoostClassifier:
        """An unfitted binary classifier (log loss).

        Args:
            monotone_constraints: Feature name to 1 (the prediction never falls as it grows) or
                -1 (never rises); features not named are unconstrained.
        """
        extra = {"monotone_constraints": dict(monotone_constraints)} if monotone_constraints else {}
        return CatBoostClassifier(loss_function="Logloss", **self._kwargs(), **extra)

    def regressor(self, loss_function: str = "RMSE") -> CatBoostRegressor:
        """An unfitted regressor with ``loss_function`` (e.g. ``Poisson``, ``Tweedie:...``)."""
        return CatBoostRegressor(loss_function=loss_function, **self._kwargs())

    def with_threads(self, thread_count: int) -> BoostingParams:
        """The same settings on ``thread_count`` threads (the run's ``CRM_THREADS``)."""
        return replace(self, thread_count=thread_count)


# Configs pickled into models registered before this kit held these CatBoost settings flat.
_FLAT_BOOSTING_FIELDS = {
    "iterations": "iterations",
    "depth": "depth",
    "learning_rate": "learning_rate",
    "l2_leaf_reg": "l2_leaf_reg",
    "one_hot_max_size": "one_hot_max_size",
    "max_ctr_complexity": "max_ctr_complexity",
    "thread_count": "thread_count",
    "threads": "thread_count",
    "seed": "seed",
}


class HoldsBoosting:
    """Base of the model configs that hold their CatBoost settings in a ``boosting`` field.

    A model registered before :class:`BoostingParams` existed pickled its config with the
    CatBoost settings as flat fields (``iterations``, ``depth``, ..., the CLV config said
    ``threads``); unpickling such a config moves them into ``boosting``, so the registered model
    loads as a config of today.
    """

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        if "boosting" not in state:
            flat = {
                new: state.pop(old) for old, new in _FLAT_BOOSTING_FIELDS.items() if old in state
            }
            state["boosting"] = BoostingParams(**flat)
        for name, value in state.items():
            object.__setattr__(self, name, value)


ConfigT = TypeVar("ConfigT")


def with_settings(config: ConfigT, **changes: Any) -> ConfigT:
    """``config`` (a model config holding ``boosting``) with some settings changed; CatBoost ones
    (``iterations``, ``depth``, ...) go into its :class:`BoostingParams`.

    Example: ``with_settings(TrainingConfig(), depth=6, calibration="none")``.
    """
    names = {f.name for f in fields(BoostingParams)}
    boosting = {name: value for name, value in changes.items() if name in names}
    rest = {name: value for name, value in changes.items() if name not in names}
    if boosting:
        rest["boosting"] = replace(config.boosting, **boosting)  # type: ignore[attr-defined]
    return replace(config, **rest)  # type: ignore[type-var]


def flat_params(settings: object) -> dict[str, Any]:
    """A (nested) settings dataclass as flat MLflow parameters, nested fields as
    ``<field>_<name>`` (``boosting_iterations``)."""
    return _flatten(asdict(settings), "")  # type: ignore[call-overload]


def _flatten(values: dict[str, Any], prefix: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, dict):
            out |= _flatten(value, f"{prefix}{name}_")
        else:
            out[f"{prefix}{name}"] = value
    return out


def catboost_frame(
    frame: pd.DataFrame,
    feature_names: Sequence[str],
    cat_features: Collection[str],
    bool_features: Collection[str] = (),
    what: str = "model",
) -> pd.DataFrame:
    """Select features in model order and give them the dtypes CatBoost expects.

    Categoricals become strings with :data:`MISSING_CATEGORY` for nulls; booleans become float64
    0/1; everything else becomes float64. Nulls in booleans and numbers become NaN (nullable
    columns from DuckDB included). Work is column by column, never row by row.

    Args:
        frame: Rows to prepare; may hold other columns too.
        feature_names: Feature columns, in the order the model uses them.
        cat_features: Which of ``feature_names`` are categorical.
        bool_features: Which of ``feature_names`` are yes/no values.
        what: Names the model in the error message ("frame lacks {what} features [...]").

    Returns:
        A frame with exactly ``feature_names`` as columns and the index of ``frame``.

    Raises:
        ValueError: If ``frame`` lacks a feature column, or a numeric feature holds values that
            are not numbers.
    """
    missing = [c for c in feature_names if c not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks {what} features {missing}")
    cats, bools = set(cat_features), set(bool_features)
    columns: dict[str, Any] = {}
    for name in feature_names:  # a few dozen columns at most, never rows
        col = frame[name]
        if name in cats:
            columns[name] = col.astype("object").where(col.notna(), MISSING_CATEGORY).astype(str)
        elif name in bools:
            columns[name] = (
                col.astype("boolean").astype("Float64").to_numpy("float64", na_value=np.nan)
            )
        else:
            try:
                columns[name] = pd.to_numeric(col).to_numpy(dtype="float64", na_value=np.nan)
            except (TypeError, ValueError):
                raise ValueError(
                    f"feature {name!r} is not numeric; list it in cat_features"
                ) from None
    return pd.DataFrame(columns, index=frame.index)


# --------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibrator:
    """A monotone map from booster log-odds to calibrated probability.

    Attributes:
        method: ``sigmoid`` (Platt: ``sigmoid(coef * logit + intercept)``) or ``isotonic``
            (piecewise linear through the fitted thresholds, clipped at the ends).
        coef: Platt slope.
        intercept: Platt intercept.
        x_thresholds: Isotonic knots on the log-odds axis.
        y_thresholds: Isotonic probabilities at the knots.
    """

    method: Literal["sigmoid", "isotonic"]
    coef: float = 1.0
    intercept: float = 0.0
    x_thresholds: tuple[float, ...] = ()
    y_thresholds: tuple[float, ...] = ()

    def apply(self, logit: np.ndarray) -> np.ndarray:
        """Map booster log-odds to probabilities."""
        if self.method == "sigmoid":
            return sigmoid(self.coef * logit + self.intercept)
        return np.interp(logit, np.asarray(self.x_thresholds), np.asarray(self.y_thresholds))

    @classmethod
    def fit(
        cls, method: Literal["sigmoid", "isotonic"], logit: np.ndarray, y: np.ndarray
    ) -> Calibrator:
        """Fit a calibrator on booster log-odds and 0/1 labels."""
        if method == "sigmoid":
            # Unpenalised: the map has two parameters and thousands of rows.
            lr = LogisticRegression(C=np.inf).fit(logit.reshape(-1, 1), y)
            return cls("sigmoid", coef=float(lr.coef_[0, 0]), intercept=float(lr.intercept_[0]))
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(logit, y)
        return cls(
            "isotonic",
            x_thresholds=tuple(float(v) for v in iso.X_thresholds_),
            y_thresholds=tuple(float(v) for v in iso.y_thresholds_),
        )


@dataclass(frozen=True)
class CalibrationReport:
    """How the calibration choice was made.

    Attributes:
        method: ``none``, ``sigmoid`` or ``isotonic``.
        brier_uncalibrated: Brier score of the raw booster on the calibration slice (auto only).
        brier_calibrated_out_of_fold: Out-of-fold Brier score of the Platt map (auto only).
        refit_on_calibration_slice: The booster was refitted with the calibration slice added.
    """

    method: str
    brier_uncalibrated: float | None = None
    brier_calibrated_out_of_fold: float | None = None
    refit_on_calibration_slice: bool = False

    def as_metrics(self) -> dict[str, float]:
        """The Brier scores compared, as flat metrics (those that were measured)."""
        metrics = {}
        if self.brier_uncalibrated is not None:
            metrics["calibration_brier_uncalibrated"] = self.brier_uncalibrated
        if self.brier_calibrated_out_of_fold is not None:
            metrics["calibration_brier_sigmoid_oof"] = self.brier_calibrated_out_of_fold
        return metrics


class CalibratedBooster:
    """Prediction and explanation shared by the calibrated binary CatBoost models.

    A subclass sets ``booster``, ``calibrator``, ``calibration_report`` and ``cat_features`` and
    defines ``prepare``.
    """

    booster: CatBoostClassifier
    calibrator: Calibrator | None
    calibration_report: CalibrationReport
    cat_features: tuple[str, ...]
    # A class default: models pickled before it existed have none.
    reference_calibrator: Calibrator | None = None

    def reference_probability(self, served: np.ndarray) -> np.ndarray:
        """How often the event happens among rows this model served ``served`` for, as its
        held-out calibration slice says: the probabilities performance estimation (CBPE)
        trusts.

        When ``auto`` calibration keeps no map, the served probabilities are the booster's own,
        and a Platt map that did not lower the Brier score can still reshape the low tail the
        expected ROC curve is made of: on the synthetic CRM the booster's own probabilities put
        the estimated AUC 0.021 under the realized one (benchmarks/RESULTS.md, "Performance
        before the labels arrive"). NannyML's CBPE likewise calibrates on its labelled
        reference period. The map was fitted on the log-odds of the booster trained without the
        slice; after the refit with the slice the booster's level already holds what the slice
        says, so only the map's slope is taken and the mean of ``served`` is kept (the
        intercept is solved for). With a kept calibrator, or no slice, ``served`` is returned.
        """
        served = np.asarray(served, dtype=float)
        reference = self.reference_calibrator
        if reference is None or len(served) == 0:
            return served
        log_odds_served = log_odds(np.clip(served, 1e-12, 1.0 - 1e-12))
        if not self.calibration_report.refit_on_calibration_slice:
            return reference.apply(log_odds_served)
        level = float(served.mean())
        if not 0.0 < level < 1.0:
            return served
        stretched = reference.coef * log_odds_served
        intercept = brentq(lambda c: sigmoid(stretched + c).mean() - level, -50.0, 50.0)
        return sigmoid(stretched + intercept)

    def prepare(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's features in order, with the dtypes CatBoost expects."""
        raise NotImplementedError

    def _pool(self, frame: pd.DataFrame) -> Pool:
        return self.pool(self.prepare(frame))

    def pool(self, prepared: pd.DataFrame) -> Pool:
        """A CatBoost Pool of rows already :meth:`prepare`-d, to predict and explain once."""
        return Pool(prepared, cat_features=list(self.cat_features))

    def raw_logit(self, frame: pd.DataFrame) -> np.ndarray:
        """Booster log-odds (before calibration)."""
        return self.raw_logit_of_pool(self._pool(frame))

    def raw_logit_of_pool(self, pool: Pool) -> np.ndarray:
        """Booster log-odds (before calibration) of the rows of a Pool from :meth:`pool`."""
        return np.asarray(self.booster.predict(pool, prediction_type="RawFormulaVal"), dtype=float)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of the positive class per row, in [0, 1]."""
        return self.predict_proba_of_pool(self._pool(frame))

    def predict_proba_of_pool(self, pool: Pool) -> np.ndarray:
        """:meth:`predict_proba` of the rows of a Pool from :meth:`pool` (no frame copies)."""
        logit = self.raw_logit_of_pool(pool)
        proba = self.calibrator.apply(logit) if self.calibrator else sigmoid(logit)
        return np.clip(proba, 0.0, 1.0)

    def shap_values(self, frame: pd.DataFrame, mode: ShapMode = "regular") -> np.ndarray:
        """SHAP contributions per row and feature, in log-odds of the uncalibrated booster.

        Args:
            frame: Rows with the model's features.
            mode: How CatBoost computes them (:data:`ml.modelling.explanations.ShapMode`).

        Returns:
            Array of shape (rows, features), columns in model order (bias dropped).
        """
        return shap_contributions(self.booster, self._pool(frame), mode)


def choose_calibrator(
    logit: np.ndarray, y: np.ndarray, mode: CalibrationMode, seed: int = 42
) -> tuple[Calibrator | None, CalibrationReport]:
    """Pick the calibrator for booster log-odds on the calibration slice.

    ``auto`` compares the Brier score of the raw booster with the out-of-fold Brier score of a
    Platt map (2 folds) and keeps the map only if it is lower. ``sigmoid``/``isotonic`` always fit
    that map; ``none`` never does.

    Args:
        logit: Booster log-odds on the calibration slice.
        y: 0/1 labels of the slice.
        mode: Calibration mode.
        seed: Seed of the fold assignment.

    Returns:
        The calibrator (or ``None``) and a report of the Brier scores compared.
    """
    if mode == "none":
        return None, CalibrationReport("none")
    if mode == "sigmoid" or mode == "isotonic":
        return Calibrator.fit(mode, logit, y), CalibrationReport(mode)

    brier_raw = float(brier_score_loss(y, sigmoid(logit)))
    folds = np.random.default_rng(seed).permutation(len(y)) % 2
    out_of_fold = np.empty(len(y), dtype=float)
    for k in (0, 1):  # two folds, not rows
        fit_rows, score_rows = folds != k, folds == k
        if len(np.unique(y[fit_rows])) < 2:
            return None, CalibrationReport("none", brier_raw, None)
        cal = Calibrator.fit("sigmoid", logit[fit_rows], y[fit_rows])
        out_of_fold[score_rows] = cal.apply(logit[score_rows])
    brier_cal = float(brier_score_loss(y, out_of_fold))
    if brier_cal < brier_raw:
        return Calibrator.fit("sigmoid", logit, y), CalibrationReport(
            "sigmoid", brier_raw, brier_cal
        )
    return None, CalibrationReport("none", brier_raw, brier_cal)


BoosterT = TypeVar("BoosterT", bound=CalibratedBooster)


@dataclass(frozen=True, eq=False)
class CalibratedFit(Generic[BoosterT]):
    """A calibrated booster and what its calibration slice saw.

    Attributes:
        model: The booster with its calibrator (or none) and calibration report.
        held_out_logit: Log-odds, on the calibration rows, of the booster fitted without them
            (an honest holdout prediction); None when there was no calibration slice.
    """

    model: BoosterT
    held_out_logit: np.ndarray | None


def fit_with_calibration(
    fit: Callable[[pd.DataFrame], BoosterT],
    rows: pd.DataFrame,
    is_calibration: np.ndarray,
    labels: Callable[[pd.DataFrame], np.ndarray],
    mode: CalibrationMode,
    seed: int,
    refit_without_calibrator: bool = True,
    held_out_prediction: bool = False,
) -> CalibratedFit[BoosterT]:
    """Fit a booster without the calibration rows, choose its calibrator on them, refit if none
    is kept.

    With no calibration row, or ``mode == "none"`` when no held-out prediction is asked for, the
    booster is fitted on all rows at once: no fitted object would depend on the slice.

    Args:
        fit: Fits an uncalibrated booster on the rows given.
        rows: Every training row; a refit uses them in this order.
        is_calibration: Boolean mask of the calibration rows (held out from the first fit).
        labels: The 0/1 labels of a frame of rows.
        mode: Calibration mode (see :func:`choose_calibrator`).
        seed: Seed of the calibration folds.
        refit_without_calibrator: When no calibrator is kept, refit the booster on all rows,
            calibration rows included (costs a second fit).
        held_out_prediction: Fit without the calibration rows first even in mode ``none``, for
            :attr:`CalibratedFit.held_out_logit` (a model's holdout metrics).

    Returns:
        The fitted model with its calibrator (or ``None``) and calibration report.
    """
    is_calibration = np.asarray(is_calibration, dtype=bool)
    if not is_calibration.any() or (mode == "none" and not held_out_prediction):
        return CalibratedFit(fit(rows), None)
    calibration = rows.loc[is_calibration].reset_index(drop=True)
    model = fit(rows.loc[~is_calibration].reset_index(drop=True))
    logit = model.raw_logit(calibration)
    calibrator, report = choose_calibrator(logit, labels(calibration), mode, seed)
    reference = None
    slice_labels = labels(calibration)
    if calibrator is None and len(np.unique(slice_labels)) == 2:
        # The slice's Platt map, for performance estimation only (reference_probability): the
        # served probabilities stay the booster's. It is fitted on the held-out booster's
        # log-odds and, after the refit below, read on the refitted booster's (the benchmark
        # measures the pair). A map that reverses the order says nothing.
        platt = Calibrator.fit("sigmoid", logit, slice_labels)
        reference = platt if platt.coef > 0 else None
    if calibrator is None and refit_without_calibrator:
        # Nothing fitted depends on the calibration rows now, so they can join the training rows.
        model = fit(rows)
        report = replace(report, refit_on_calibration_slice=True)
    model.calibrator = calibrator
    model.calibration_report = report
    model.reference_calibrator = reference
    return CalibratedFit(model, logit)
