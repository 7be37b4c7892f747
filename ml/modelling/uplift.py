"""Uplift models, uplift metrics and the four classic response segments.

Uplift is ``P(y=1 | treated, x) - P(y=1 | control, x)``: how much a contact (an e-mail, an offer)
changes the chance that a customer acts. It is only learnable from a randomised test with a
treated and a control arm, and it decides whom to contact better than a response score does: a
customer who buys anyway (a sure thing) has a high response score and no uplift.

Learners, both on CatBoost (``allow_writing_files=False``, single-threaded by default):

* **T-learner** (two models): one classifier per arm, uplift = ``mu1(x) - mu0(x)``.
* **X-learner** (Kuenzel et al. 2019): the same two classifiers, then each arm's observed outcomes
  are compared with the other arm's model (treated ``D1 = y - mu0(x)``, control
  ``D0 = mu1(x) - y``), a regressor per arm learns those imputed effects, and uplift is
  ``g * tau0(x) + (1 - g) * tau1(x)``. In a randomised test the propensity ``g`` is the known share
  of treated rows, so no propensity model is fitted (a fitted one would only add noise).

Metrics follow scikit-uplift 0.5.1 (``sklift.metrics``); on 30 random cases (ties included) the
values here equalled its values when this module was written:

* ``uplift_at_k`` is its ``strategy="overall"``: rank all rows by predicted uplift, keep the first
  ``int(k * n)``, and subtract the control response rate from the treated response rate among
  them. Ties in the score are broken as scikit-uplift does (later rows first).
* The Qini curve at each distinct score threshold is ``Y_t(n) - Y_c(n) * N_t(n) / N_c(n)``
  (responders and row counts among the first ``n`` rows, per arm): the extra responders the
  treatment brought among those ``n``, scaled to the treated count. The uplift curve is
  ``(Y_t / N_t - Y_c / N_c) * n``.
* The Qini coefficient (``qini_auc_score``) and AUUC (``uplift_auc_score``) are normalised:
  ``(area(model) - area(random)) / (area(perfect) - area(random))`` with trapezoidal areas; the
  random ranking is the straight line from (0, 0) to the curve's end point, the perfect Qini curve
  ranks treated responders first and control responders last (negative effects included). 1 is a
  perfect ranking, 0 a random one, below 0 worse than random.

Why not a library. scikit-uplift (the reference for these metrics) has had no release since
0.5.1 (August 2022) and imports ``sklearn.utils.extmath.stable_cumsum``, deprecated in
scikit-learn 1.8 and removed in 1.10, which our ``scikit-learn<2`` pin allows. causalml resolves
under our pins only to 0.15.5 with numba 0.53 / llvmlite 0.36 (no Python 3.11 wheels), downgrades
scipy and adds xgboost, lightgbm and CUDA NCCL wheels. The two learners and four metrics here are
short, vectorised and tested against hand-computed values instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Literal

import numpy as np
import pandas as pd
from catboost import CatBoostClassifier, CatBoostRegressor, Pool
from numpy.typing import ArrayLike
from sklearn.model_selection import StratifiedKFold

from ml.modelling.boosting import BoostingParams, HoldsBoosting, catboost_frame

Learner = Literal["t", "x"]
DEFAULT_K = 0.3
# Largest number of resampled row indices held at once by the bootstrap (about 80 MB of int64).
_MAX_BOOTSTRAP_DRAWS = 10_000_000


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _binary(values: ArrayLike, name: str) -> np.ndarray:
    """A 1-d 0/1 int array, or a ValueError that says what is wrong with ``values``."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-d, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.int64)
    try:
        as_float = arr.astype(float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be binary 0/1, got values of type {arr.dtype}") from None
    bad = ~np.isin(as_float, (0.0, 1.0))
    if bad.any():
        examples = sorted({str(v) for v in arr[bad][:5]})
        raise ValueError(
            f"{name} must be binary 0/1 without missing values; {int(bad.sum())} rows are not "
            f"(e.g. {', '.join(examples)})"
        )
    return as_float.astype(np.int64)


def _both_arms(treatment: np.ndarray) -> None:
    n_treated = int(treatment.sum())
    if n_treated == 0 or n_treated == len(treatment):
        arm = "treated" if n_treated else "control"
        raise ValueError(
            f"treatment holds a single arm (all {len(treatment)} rows are {arm}); uplift needs "
            "treated and control rows"
        )


def _checked_metric_inputs(
    outcome: ArrayLike, uplift: ArrayLike, treatment: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = _binary(outcome, "outcome")
    t = _binary(treatment, "treatment")
    u = np.asarray(uplift, dtype=float)
    if u.ndim != 1:
        raise ValueError(f"uplift must be 1-d, got shape {u.shape}")
    if not len(y) == len(u) == len(t):
        raise ValueError(
            f"outcome, uplift and treatment must have equal lengths, got {len(y)}, {len(u)}, "
            f"{len(t)}"
        )
    if len(y) == 0:
        raise ValueError("cannot evaluate zero rows")
    if not np.isfinite(u).all():
        raise ValueError(f"uplift holds {int((~np.isfinite(u)).sum())} NaN or infinite values")
    _both_arms(t)
    return y, u, t


def _n_top(n: int, k: float) -> int:
    if not 0 < k <= 1:
        raise ValueError(f"k must be a fraction in (0, 1], got {k}")
    # Floor, as scikit-uplift does, so the same k selects the same rows.
    n_top = int(n * k)
    if n_top < 1:
        raise ValueError(f"k={k} of {n} rows selects no row")
    return n_top


def _descending(uplift: np.ndarray) -> np.ndarray:
    """Row order by descending score, ties broken as scikit-uplift does (later rows first)."""
    return np.argsort(uplift, kind="mergesort")[::-1]


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------


def uplift_at_k(
    outcome: ArrayLike, uplift: ArrayLike, treatment: ArrayLike, k: float = DEFAULT_K
) -> float:
    """Treated minus control response rate among the ``k`` fraction with the highest uplift.

    Same as ``sklift.metrics.uplift_at_k(..., strategy="overall")``: the first ``int(k * n)``
    rows of the whole sample by predicted uplift, both arms together.

    Args:
        outcome: Observed 0/1 outcomes.
        uplift: Predicted uplift (any real score; only its order matters).
        treatment: 0/1 arm of each row (1 = treated).
        k: Fraction of rows targeted, in (0, 1]; ``k=1`` gives the average effect.

    Returns:
        The uplift among the targeted rows.

    Raises:
        ValueError: On mismatched lengths, non-binary outcome or treatment, a single arm, or if
            the targeted rows hold no treated or no control row.
    """
    y, u, t = _checked_metric_inputs(outcome, uplift, treatment)
    top = _descending(u)[: _n_top(len(y), k)]
    y_top, t_top = y[top], t[top]
    n_treated = int(t_top.sum())
    if n_treated == 0 or n_treated == len(top):
        arm = "control" if n_treated else "treated"
        raise ValueError(f"the top {len(top)} rows hold no {arm} row; uplift@k is undefined")
    return float(y_top[t_top == 1].mean() - y_top[t_top == 0].mean())


@dataclass(frozen=True, eq=False)
class UpliftCurve:
    """Points of a Qini or uplift curve, starting at (0, 0).

    Attributes:
        n_targeted: Rows targeted (first ``n`` by descending score), one point per distinct score.
        gain: Curve value at each point (incremental responders).
    """

    n_targeted: np.ndarray
    gain: np.ndarray

    def area(self) -> float:
        """Trapezoidal area under the curve."""
        return float(np.trapezoid(self.gain, self.n_targeted))


def _cumulative(
    y: np.ndarray, score: np.ndarray, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows, treated rows, treated and control responders among the first n, per distinct score."""
    order = _descending(score)
    y, score, t = y[order], score[order], t[order]
    # Rows with equal scores cannot be told apart by the model: one point after the last of them.
    ends = np.r_[np.flatnonzero(np.diff(score)), score.size - 1]
    n = ends + 1
    n_t = np.cumsum(t)[ends]
    y_t = np.cumsum(y * t)[ends]
    y_c = np.cumsum(y * (1 - t))[ends]
    return n, n_t, n - n_t, y_t, y_c


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den is 0 (no rows of that arm yet contribute nothing)."""
    return np.divide(num.astype(float), den, out=np.zeros(num.shape, dtype=float), where=den != 0)


def _qini(y: np.ndarray, score: np.ndarray, t: np.ndarray) -> UpliftCurve:
    n, n_t, n_c, y_t, y_c = _cumulative(y, score, t)
    gain = y_t - y_c * _ratio(n_t, n_c)
    return UpliftCurve(np.r_[0, n], np.r_[0.0, gain])


def _uplift(y: np.ndarray, score: np.ndarray, t: np.ndarray) -> UpliftCurve:
    n, n_t, n_c, y_t, y_c = _cumulative(y, score, t)
    gain = (_ratio(y_t, n_t) - _ratio(y_c, n_c)) * n
    return UpliftCurve(np.r_[0, n], np.r_[0.0, gain])


def qini_curve(outcome: ArrayLike, uplift: ArrayLike, treatment: ArrayLike) -> UpliftCurve:
    """Qini curve: ``Y_t(n) - Y_c(n) * N_t(n) / N_c(n)`` over the first ``n`` rows by score.

    Args:
        outcome: Observed 0/1 outcomes.
        uplift: Predicted uplift.
        treatment: 0/1 arm of each row.

    Returns:
        The curve, one point per distinct score plus the origin.

    Raises:
        ValueError: On invalid input (see :func:`uplift_at_k`).
    """
    return _qini(*_checked_metric_inputs(outcome, uplift, treatment))


def perfect_qini_curve(outcome: ArrayLike, treatment: ArrayLike) -> UpliftCurve:
    """Qini curve of the best possible ranking: treated responders first, control ones last.

    Control responders are ranked last because, for all we know, the treatment would have stopped
    them (scikit-uplift's ``negative_effect=True``).
    """
    y = _binary(outcome, "outcome")
    t = _binary(treatment, "treatment")
    y, _, t = _checked_metric_inputs(y, np.zeros(len(y)), t)
    return _qini(y, (y * t - y * (1 - t)).astype(float), t)


def uplift_curve(outcome: ArrayLike, uplift: ArrayLike, treatment: ArrayLike) -> UpliftCurve:
    """Uplift curve: ``(Y_t(n) / N_t(n) - Y_c(n) / N_c(n)) * n`` over the first ``n`` rows.

    Args:
        outcome: Observed 0/1 outcomes.
        uplift: Predicted uplift.
        treatment: 0/1 arm of each row.

    Returns:
        The curve, one point per distinct score plus the origin.

    Raises:
        ValueError: On invalid input (see :func:`uplift_at_k`).
    """
    return _uplift(*_checked_metric_inputs(outcome, uplift, treatment))


def perfect_uplift_curve(outcome: ArrayLike, treatment: ArrayLike) -> UpliftCurve:
    """Uplift curve of the best possible ranking (scikit-uplift's ``perfect_uplift_curve``).

    Treated responders and control non-responders first; of the two discordant groups, treated
    non-responders go before control responders unless control responders are the larger group.
    """
    y = _binary(outcome, "outcome")
    t = _binary(treatment, "treatment")
    y, _, t = _checked_metric_inputs(y, np.zeros(len(y)), t)
    control_responders = int((y * (1 - t)).sum())
    treated_non_responders = int(((1 - y) * t).sum())
    summand = y if control_responders > treated_non_responders else t
    return _uplift(y, (2 * (y == t) + summand).astype(float), t)


def _normalised_area(actual: UpliftCurve, perfect: UpliftCurve) -> float:
    # The random ranking ends where every ranking ends: at the whole sample's gain.
    n_all, end_gain = float(perfect.n_targeted[-1]), float(perfect.gain[-1])
    random_area = n_all * end_gain / 2.0
    span = perfect.area() - random_area
    if span == 0:
        return float("nan")
    return (actual.area() - random_area) / span


def qini_coefficient(outcome: ArrayLike, uplift: ArrayLike, treatment: ArrayLike) -> float:
    """Normalised area under the Qini curve (scikit-uplift's ``qini_auc_score``).

    ``(area(model) - area(random)) / (area(perfect) - area(random))``: 1 for the perfect ranking
    of :func:`perfect_qini_curve`, 0 for a random one. NaN when the perfect ranking is no better
    than random (for example no responders at all).

    Args:
        outcome: Observed 0/1 outcomes.
        uplift: Predicted uplift.
        treatment: 0/1 arm of each row.

    Returns:
        The Qini coefficient.

    Raises:
        ValueError: On invalid input (see :func:`uplift_at_k`).
    """
    y, u, t = _checked_metric_inputs(outcome, uplift, treatment)
    return _normalised_area(_qini(y, u, t), perfect_qini_curve(y, t))


def auuc(outcome: ArrayLike, uplift: ArrayLike, treatment: ArrayLike) -> float:
    """Normalised area under the uplift curve (scikit-uplift's ``uplift_auc_score``).

    Normalised like :func:`qini_coefficient`, against :func:`perfect_uplift_curve`.

    Args:
        outcome: Observed 0/1 outcomes.
        uplift: Predicted uplift.
        treatment: 0/1 arm of each row.

    Returns:
        The normalised AUUC.

    Raises:
        ValueError: On invalid input (see :func:`uplift_at_k`).
    """
    y, u, t = _checked_metric_inputs(outcome, uplift, treatment)
    return _normalised_area(_uplift(y, u, t), perfect_uplift_curve(y, t))


@dataclass(frozen=True)
class UpliftInterval:
    """A point estimate of uplift@k with its bootstrap percentile interval.

    Attributes:
        estimate: uplift@k on the rows given.
        low: Lower bound of the interval.
        high: Upper bound of the interval.
        k: Fraction targeted.
        confidence: Coverage of the interval (0.95 = 2.5th to 97.5th percentile).
        n_boot: Resamples drawn.
        n_undefined: Resamples whose top rows lacked an arm (left out of the percentiles).
    """

    estimate: float
    low: float
    high: float
    k: float
    confidence: float
    n_boot: int
    n_undefined: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def bootstrap_uplift_at_k(
    outcome: ArrayLike,
    uplift: ArrayLike,
    treatment: ArrayLike,
    k: float = DEFAULT_K,
    n_boot: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> UpliftInterval:
    """uplift@k with a percentile bootstrap interval over resampled rows.

    Rows are resampled with replacement (the model is fixed), so the interval says how much the
    figure would move on another sample of the same size, not how much refitting would move it.
    Rows are sorted by score once; sorting a resample's row positions then gives its ranking, so
    all resamples of a batch are evaluated with array operations and no per-resample sort by score.

    Args:
        outcome: Observed 0/1 outcomes.
        uplift: Predicted uplift.
        treatment: 0/1 arm of each row.
        k: Fraction targeted, in (0, 1].
        n_boot: Number of resamples (at least 2).
        confidence: Interval coverage in (0, 1).
        seed: Seed of the resampling.

    Returns:
        The point estimate and interval.

    Raises:
        ValueError: On invalid input, ``n_boot < 2``, ``confidence`` outside (0, 1), or when no
            resample has both arms among its top rows.
    """
    if n_boot < 2:
        raise ValueError(f"n_boot must be >= 2, got {n_boot}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    y, u, t = _checked_metric_inputs(outcome, uplift, treatment)
    estimate = uplift_at_k(y, u, t, k)
    n = len(y)
    n_top = _n_top(n, k)
    order = _descending(u)
    y_sorted, t_sorted = y[order], t[order]

    rng = np.random.default_rng(seed)
    batch = max(1, _MAX_BOOTSTRAP_DRAWS // n)
    stats = np.empty(n_boot, dtype=float)
    for start in range(0, n_boot, batch):  # batches of resamples bound memory; not a row loop
        size = min(batch, n_boot - start)
        # Positions in score order: sorted positions are the resample ranked by score.
        top = np.sort(rng.integers(0, n, size=(size, n)), axis=1)[:, :n_top]
        t_top, y_top = t_sorted[top], y_sorted[top]
        n_t = t_top.sum(axis=1)
        n_c = n_top - n_t
        with np.errstate(invalid="ignore", divide="ignore"):
            stats[start : start + size] = (y_top * t_top).sum(axis=1) / n_t - (
                y_top * (1 - t_top)
            ).sum(axis=1) / n_c
    undefined = ~np.isfinite(stats)
    if undefined.all():
        raise ValueError("no bootstrap resample has both arms among its top rows")
    alpha = 1.0 - confidence
    low, high = np.percentile(stats[~undefined], [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return UpliftInterval(
        estimate=estimate,
        low=float(low),
        high=float(high),
        k=k,
        confidence=confidence,
        n_boot=n_boot,
        n_undefined=int(undefined.sum()),
    )


# --------------------------------------------------------------------------------------------
# Segments
# --------------------------------------------------------------------------------------------


class Segment(StrEnum):
    """The four classic uplift segments."""

    PERSUADABLE = "persuadable"
    SURE_THING = "sure_thing"
    LOST_CAUSE = "lost_cause"
    DO_NOT_DISTURB = "do_not_disturb"


SEGMENTS: tuple[str, ...] = tuple(s.value for s in Segment)


@dataclass(frozen=True)
class SegmentThresholds:
    """Where the segment boundaries lie.

    The effect decides first, because it is what a contact changes: a customer whose predicted
    uplift is at least ``min_uplift`` is a persuadable, at most ``-min_uplift`` a do-not-disturb
    (the contact lowers the response). Customers with no material effect either way respond on
    their own (sure thing, ``P(y | control) >= response_threshold``) or not at all (lost cause).

    Attributes:
        min_uplift: Smallest absolute uplift (probability points) counted as an effect; below it
            a contact is treated as changing nothing.
        response_threshold: Control response probability from which a customer without an effect
            is a sure thing. 0.5 means "more likely than not"; for a rare outcome (Hillstrom visits
            are 15%) set it near the base rate, or nearly everyone is a lost cause.
    """

    min_uplift: float = 0.01
    response_threshold: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.min_uplift < 1:
            raise ValueError(f"min_uplift must be in [0, 1), got {self.min_uplift}")
        if not 0 < self.response_threshold < 1:
            raise ValueError(f"response_threshold must be in (0, 1), got {self.response_threshold}")


def segment_customers(
    p_treated: ArrayLike,
    p_control: ArrayLike,
    thresholds: SegmentThresholds | None = None,
) -> pd.Categorical:
    """Assign each customer to persuadable, sure thing, lost cause or do-not-disturb.

    Rules (see :class:`SegmentThresholds`), with ``uplift = p_treated - p_control``:

    * persuadable: ``uplift >= min_uplift``;
    * do_not_disturb: ``uplift <= -min_uplift``;
    * sure_thing: otherwise, if ``p_control >= response_threshold``;
    * lost_cause: otherwise.

    Args:
        p_treated: Predicted ``P(y=1 | treated)`` per customer.
        p_control: Predicted ``P(y=1 | control)`` per customer.
        thresholds: Boundaries; defaults to :class:`SegmentThresholds`.

    Returns:
        A categorical with categories :data:`SEGMENTS`, one value per customer.

    Raises:
        ValueError: If the arrays differ in length, are not 1-d, or hold values outside [0, 1].
    """
    thresholds = thresholds or SegmentThresholds()
    p1 = np.asarray(p_treated, dtype=float)
    p0 = np.asarray(p_control, dtype=float)
    if p1.ndim != 1 or p1.shape != p0.shape:
        raise ValueError(
            f"p_treated and p_control must be 1-d of equal length, got {p1.shape}, {p0.shape}"
        )
    for name, p in (("p_treated", p1), ("p_control", p0)):
        if not np.all((p >= 0) & (p <= 1)):  # NaN fails both comparisons
            raise ValueError(f"{name} must lie in [0, 1] without NaN")
    effect = p1 - p0
    labels = np.select(
        [
            effect >= thresholds.min_uplift,
            effect <= -thresholds.min_uplift,
            p0 >= thresholds.response_threshold,
        ],
        [Segment.PERSUADABLE.value, Segment.DO_NOT_DISTURB.value, Segment.SURE_THING.value],
        default=Segment.LOST_CAUSE.value,
    )
    return pd.Categorical(labels, categories=SEGMENTS)


# --------------------------------------------------------------------------------------------
# Learners
# --------------------------------------------------------------------------------------------


# Uplift is a small difference of two noisy probabilities: shallow, regularised trees keep the
# per-arm models from fitting noise that the difference would then amplify. One thread keeps
# tests and shared machines predictable.
UPLIFT_BOOSTING = BoostingParams(
    iterations=300, depth=4, learning_rate=0.05, l2_leaf_reg=10.0, thread_count=1
)


@dataclass(frozen=True)
class UpliftConfig(HoldsBoosting):
    """Settings of an uplift model.

    Attributes:
        learner: ``t`` (two models) or ``x`` (X-learner).
        boosting: CatBoost settings of every outcome classifier and effect regressor.
    """

    learner: Learner = "t"
    boosting: BoostingParams = UPLIFT_BOOSTING

    def __post_init__(self) -> None:
        if self.learner not in ("t", "x"):
            raise ValueError(f"learner must be 't' or 'x', got {self.learner!r}")

    def classifier(self) -> CatBoostClassifier:
        """An unfitted outcome classifier with these settings."""
        return self.boosting.classifier()

    def regressor(self) -> CatBoostRegressor:
        """An unfitted effect regressor with these settings."""
        return self.boosting.regressor("RMSE")


@dataclass(frozen=True, eq=False)
class _Design:
    """Checked training data: prepared features, arms and outcomes."""

    features: pd.DataFrame
    treatment: np.ndarray
    outcome: np.ndarray
    feature_names: tuple[str, ...]
    cat_features: tuple[str, ...]

    def arm(self, treated: bool) -> tuple[pd.DataFrame, np.ndarray]:
        rows = self.treatment == int(treated)
        return self.features.loc[rows], self.outcome[rows]

    def pool(self, features: pd.DataFrame, label: np.ndarray) -> Pool:
        return Pool(features, label=label, cat_features=list(self.cat_features))


def _design(
    features: pd.DataFrame,
    treatment: ArrayLike,
    outcome: ArrayLike,
    cat_features: tuple[str, ...] | list[str],
) -> _Design:
    if not isinstance(features, pd.DataFrame):
        raise ValueError(f"features must be a pandas DataFrame, got {type(features).__name__}")
    t = _binary(treatment, "treatment")
    y = _binary(outcome, "outcome")
    if not len(features) == len(t) == len(y):
        raise ValueError(
            f"features, treatment and outcome must have equal lengths, got {len(features)}, "
            f"{len(t)}, {len(y)}"
        )
    if features.shape[1] == 0:
        raise ValueError("features has no columns")
    cats = tuple(cat_features)
    unknown = [c for c in cats if c not in features.columns]
    if unknown:
        raise ValueError(f"cat_features {unknown} are not columns of features")
    _both_arms(t)
    for arm, name in ((1, "treated"), (0, "control")):
        arm_y = y[t == arm]
        if arm_y.min() == arm_y.max():
            raise ValueError(
                f"outcome is {arm_y[0]} for every {name} row; cannot learn P(y | {name})"
            )
    names = tuple(str(c) for c in features.columns)
    prepared = catboost_frame(features, names, cats).reset_index(drop=True)
    return _Design(prepared, t, y, names, cats)


@dataclass(frozen=True, eq=False)
class _OutcomeModels:
    """Two outcome classifiers, one per arm, and the features they read."""

    treated_model: CatBoostClassifier
    control_model: CatBoostClassifier
    feature_names: tuple[str, ...]
    cat_features: tuple[str, ...]
    config: UpliftConfig

    def _pool(self, frame: pd.DataFrame) -> Pool:
        prepared = catboost_frame(frame, self.feature_names, self.cat_features)
        return Pool(prepared, cat_features=list(self.cat_features))

    def predict_outcomes(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Predicted ``P(y=1 | treated)`` and ``P(y=1 | control)`` per row."""
        pool = self._pool(frame)
        return (
            np.asarray(self.treated_model.predict_proba(pool)[:, 1], dtype=float),
            np.asarray(self.control_model.predict_proba(pool)[:, 1], dtype=float),
        )

    def effect_contributions(self, frame: pd.DataFrame) -> np.ndarray:
        """SHAP contributions to the effect in log-odds: treated minus control, per feature.

        ``logit P(y | treated) - logit P(y | control)`` is the two models' base values' difference
        (about the average effect) plus the sum of these, so they explain the two probabilities
        ``predict_outcomes`` gives exactly. Shape (rows, features), model order.
        """
        pool = self._pool(frame)
        treated = self.treated_model.get_feature_importance(pool, type="ShapValues")
        control = self.control_model.get_feature_importance(pool, type="ShapValues")
        return np.asarray(treated, dtype=float)[:, :-1] - np.asarray(control, dtype=float)[:, :-1]


@dataclass(frozen=True, eq=False)
class TLearner(_OutcomeModels):
    """Two outcome classifiers, one per arm; uplift is the difference of their probabilities.

    Attributes:
        treated_model: ``P(y=1 | x)`` fitted on treated rows.
        control_model: ``P(y=1 | x)`` fitted on control rows.
        feature_names: Feature columns in model order.
        cat_features: Categorical feature columns.
        config: Settings the models were fitted with.
    """

    def predict_uplift(self, frame: pd.DataFrame) -> np.ndarray:
        """Predicted ``P(y=1 | treated) - P(y=1 | control)`` per row."""
        p_treated, p_control = self.predict_outcomes(frame)
        return p_treated - p_control


@dataclass(frozen=True, eq=False)
class XLearner(_OutcomeModels):
    """An X-learner: the T-learner's two classifiers plus one imputed-effect regressor per arm.

    ``predict_outcomes`` returns the first-stage classifiers' probabilities (used for segments);
    ``predict_uplift`` returns ``g * tau0(x) + (1 - g) * tau1(x)``, an estimate of the same
    difference that is not exactly the difference of those probabilities.

    Attributes:
        treated_model: ``mu1``, ``P(y=1 | x)`` fitted on treated rows.
        control_model: ``mu0``, ``P(y=1 | x)`` fitted on control rows.
        feature_names: Feature columns in model order.
        cat_features: Categorical feature columns.
        config: Settings the models were fitted with.
        treated_effect_model: ``tau1``, fitted on treated rows to ``y - mu0(x)``.
        control_effect_model: ``tau0``, fitted on control rows to ``mu1(x) - y``.
        treated_share: ``g``, the share of treated training rows (the known propensity of a
            randomised test).
    """

    treated_effect_model: CatBoostRegressor
    control_effect_model: CatBoostRegressor
    treated_share: float

    def predict_uplift(self, frame: pd.DataFrame) -> np.ndarray:
        """Predicted uplift per row: the propensity-weighted blend of both effect models."""
        pool = self._pool(frame)
        tau1 = np.asarray(self.treated_effect_model.predict(pool), dtype=float)
        tau0 = np.asarray(self.control_effect_model.predict(pool), dtype=float)
        # Each effect model is weighted by the other arm's share (Kuenzel et al.): tau0 imputes
        # with mu1, the better model when treated rows are the majority, and vice versa.
        g = self.treated_share
        return g * tau0 + (1.0 - g) * tau1


UpliftModel = TLearner | XLearner


def _fit_outcome_models(
    design: _Design, config: UpliftConfig
) -> tuple[CatBoostClassifier, CatBoostClassifier]:
    models = []
    for treated in (True, False):  # two arms
        x, y = design.arm(treated)
        model = config.classifier()
        model.fit(design.pool(x, y))
        models.append(model)
    return models[0], models[1]


def fit_t_learner(
    features: pd.DataFrame,
    treatment: ArrayLike,
    outcome: ArrayLike,
    cat_features: tuple[str, ...] | list[str] = (),
    config: UpliftConfig | None = None,
) -> TLearner:
    """Fit a two-model (T-learner) uplift model.

    Args:
        features: One row per customer; every column is a feature.
        treatment: 0/1 arm per row (1 = treated), from a randomised test.
        outcome: 0/1 outcome per row.
        cat_features: Columns of ``features`` that are categorical.
        config: Model settings (``learner`` is ignored); defaults to :class:`UpliftConfig`.

    Returns:
        The fitted model.

    Raises:
        ValueError: On mismatched lengths, non-binary treatment or outcome, a single arm, an arm
            with a constant outcome, or unknown categorical columns.
    """
    config = config or UpliftConfig()
    design = _design(features, treatment, outcome, cat_features)
    treated_model, control_model = _fit_outcome_models(design, config)
    return TLearner(treated_model, control_model, design.feature_names, design.cat_features, config)


def fit_x_learner(
    features: pd.DataFrame,
    treatment: ArrayLike,
    outcome: ArrayLike,
    cat_features: tuple[str, ...] | list[str] = (),
    config: UpliftConfig | None = None,
) -> XLearner:
    """Fit an X-learner (two outcome classifiers, then two imputed-effect regressors).

    Args:
        features: One row per customer; every column is a feature.
        treatment: 0/1 arm per row (1 = treated), from a randomised test.
        outcome: 0/1 outcome per row.
        cat_features: Columns of ``features`` that are categorical.
        config: Model settings (``learner`` is ignored); defaults to :class:`UpliftConfig`.

    Returns:
        The fitted model.

    Raises:
        ValueError: As :func:`fit_t_learner`.
    """
    config = config or UpliftConfig()
    design = _design(features, treatment, outcome, cat_features)
    treated_model, control_model = _fit_outcome_models(design, config)
    x1, y1 = design.arm(True)
    x0, y0 = design.arm(False)
    # Each arm's outcomes are compared with the other arm's model, which never saw these rows.
    d1 = y1 - control_model.predict_proba(design.pool(x1, y1))[:, 1]
    d0 = treated_model.predict_proba(design.pool(x0, y0))[:, 1] - y0
    effect_models = []
    for x, d in ((x1, d1), (x0, d0)):  # two arms
        model = config.regressor()
        model.fit(design.pool(x, np.asarray(d, dtype=float)))
        effect_models.append(model)
    return XLearner(
        treated_model,
        control_model,
        design.feature_names,
        design.cat_features,
        config,
        treated_effect_model=effect_models[0],
        control_effect_model=effect_models[1],
        treated_share=float(design.treatment.mean()),
    )


def fit_uplift_model(
    features: pd.DataFrame,
    treatment: ArrayLike,
    outcome: ArrayLike,
    cat_features: tuple[str, ...] | list[str] = (),
    config: UpliftConfig | None = None,
) -> UpliftModel:
    """Fit the learner named by ``config.learner`` (see :func:`fit_t_learner`)."""
    config = config or UpliftConfig()
    fit = fit_x_learner if config.learner == "x" else fit_t_learner
    return fit(features, treatment, outcome, cat_features, config)


@dataclass(frozen=True)
class UpliftChoice:
    """The settings chosen by cross-validation and every candidate's mean Qini coefficient.

    Attributes:
        config: The chosen candidate.
        candidate_qini: Mean Qini coefficient over the folds per candidate, in the order given.
    """

    config: UpliftConfig
    candidate_qini: tuple[float, ...]


def choose_uplift_config_by_cv(
    features: pd.DataFrame,
    treatment: ArrayLike,
    outcome: ArrayLike,
    candidates: Sequence[UpliftConfig],
    cat_features: tuple[str, ...] | list[str] = (),
    folds: int = 3,
    seed: int = 0,
) -> UpliftChoice:
    """The candidate learner with the highest mean Qini coefficient over folds of these rows.

    Folds are stratified by arm x outcome. Only the rows given are read, so an evaluation that
    passes its training rows never tunes on its test rows. The Qini coefficient judges the whole
    ranking; uplift@k judges one cut of it and is noisier on a validation fold.

    Args:
        features: One row per customer; every column is a feature.
        treatment: 0/1 arm per row.
        outcome: 0/1 outcome per row.
        candidates: Learner settings to compare (at least one).
        cat_features: Columns of ``features`` that are categorical.
        folds: Cross-validation folds.
        seed: Seed of the fold assignment.

    Returns:
        The best candidate and every candidate's mean Qini coefficient.

    Raises:
        ValueError: If there is no candidate, or as :func:`fit_t_learner`.
    """
    if not candidates:
        raise ValueError("no candidate settings to choose from")
    t = _binary(treatment, "treatment")
    y = _binary(outcome, "outcome")
    rows = features.reset_index(drop=True)
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(rows, 2 * t + y))
    mean_qini = []
    for candidate in candidates:  # a handful of settings, each a few fits
        qini = []
        for fit_rows, valid_rows in splits:
            model = fit_uplift_model(
                rows.iloc[fit_rows], t[fit_rows], y[fit_rows], cat_features, candidate
            )
            predicted = model.predict_uplift(rows.iloc[valid_rows])
            qini.append(qini_coefficient(y[valid_rows], predicted, t[valid_rows]))
        mean_qini.append(float(np.mean(qini)))
    return UpliftChoice(candidates[int(np.argmax(mean_qini))], tuple(mean_qini))
