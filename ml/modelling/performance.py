"""How a model does before its labels arrive: confidence-based performance estimation (CBPE).

A calibrated probability says how often the event happens among rows scored like this one, so
the probabilities of a scoring run alone give the *expected* confusion matrix at any threshold,
and with it the expected ROC curve, precision among the rows the team acts on, the positive rate
and the Brier score (the idea of NannyML's CBPE). The estimate holds under covariate shift (the
population moves, the probability of the outcome given the features does not); it fails when
the model is miscalibrated on today's rows (concept shift), which is what the realized figures,
once labels land, show next to the estimates.

Everything is vectorised numpy: one sort per run (ties grouped as scikit-learn's ROC does), and
the interval of each metric from ``samples`` label draws ``y ~ Bernoulli(p)`` (the spread of the
realized metric if the probabilities are right; it does not cover miscalibration). Checked
against NannyML 0.13.1 on a fixed data set (tests/fixtures/cbpe_reference/).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

METRICS: tuple[str, ...] = ("roc_auc", "precision_at_capacity", "positive_rate", "brier")
"""The metrics estimated per run: ranking (ROC AUC), the team's hit rate among the rows it acts
on, and calibration (the positive rate is calibration-in-the-large; Brier adds sharpness)."""
ALL = "all"
ReferenceProbability = Callable[[str, np.ndarray], np.ndarray]
"""``(model version, served probabilities) -> the probabilities of the event the estimate
trusts`` (``CalibratedBooster.reference_probability`` of that version)."""
_DRAW_CELLS = 16_000_000  # rows x draws held at once (128 MB of float64)
"""The segment name of every row of a run."""


@dataclass(frozen=True)
class EstimationConfig:
    """Settings of the estimation.

    Attributes:
        interval: How the interval of the realized metric is found if the probabilities are
            right (labels ``y ~ Bernoulli(p)``): ``normal`` by the delta method (exact
            covariance of the label sums, about 0.3 s at 1M rows), ``draws`` by percentiles over
            ``samples`` draws (about 30 s at 1M rows on 2 busy cores; the test holds the two
            within a few percent of each other).
        samples: Label draws of the ``draws`` interval.
        level: Coverage of the interval (0.95: the 2.5th to the 97.5th percentile).
        min_segment_rows: Rows a segment needs for its own figures.
        min_class_rows: Expected (and, for realized, observed) positives and negatives a segment
            needs for a ROC AUC, and rows in the capacity it needs for a precision.
        seed: Seed of the label draws (the same run gives the same interval).
    """

    interval: Literal["normal", "draws"] = "normal"
    samples: int = 200
    level: float = 0.95
    min_segment_rows: int = 500
    min_class_rows: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        if self.samples < 10:
            raise ValueError(f"samples must be >= 10, got {self.samples}")
        if not 0.5 < self.level < 1.0:
            raise ValueError(f"level must be in (0.5, 1), got {self.level}")
        if self.interval not in ("normal", "draws"):
            raise ValueError(f"interval must be 'normal' or 'draws', got {self.interval!r}")
        if self.min_segment_rows < 1 or self.min_class_rows < 1:
            raise ValueError("min_segment_rows and min_class_rows must be >= 1")


def _proba(values: ArrayLike) -> np.ndarray:
    p = np.asarray(values, dtype="float64").ravel()
    if np.isnan(p).any():
        raise ValueError("probabilities hold NaN")
    if ((p < 0.0) | (p > 1.0)).any():
        raise ValueError("probabilities must lie in [0, 1]")
    return p


def capacity_mask(proba: ArrayLike, capacity: int) -> np.ndarray:
    """The ``capacity`` highest scores, ties broken by position as
    ``ml.modelling.evaluation.capacity_metrics`` does (a stable sort)."""
    if capacity < 1:
        raise ValueError(f"capacity must be >= 1, got {capacity}")
    p = _proba(proba)
    mask = np.zeros(len(p), dtype=bool)
    mask[np.argsort(-p, kind="stable")[: min(capacity, len(p))]] = True
    return mask


def _roc_points(sorted_desc: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> float:
    """Trapezoidal AUC of cumulative (weighted) positives and negatives over the distinct
    thresholds of ``sorted_desc`` (a group of tied scores is one step, as in scikit-learn)."""
    ends = np.flatnonzero(np.diff(sorted_desc)) if len(sorted_desc) > 1 else np.empty(0, int)
    ends = np.r_[ends, len(sorted_desc) - 1]
    tp = np.r_[0.0, np.cumsum(pos)[ends]]
    fp = np.r_[0.0, np.cumsum(neg)[ends]]
    if tp[-1] <= 0.0 or fp[-1] <= 0.0:
        return float("nan")
    return float(np.trapezoid(tp / tp[-1], fp / fp[-1]))


def expected_roc_auc(proba: ArrayLike) -> float:
    """The area under the expected ROC curve: at every threshold, the expected true positives
    are the sum of the probabilities above it and the expected false positives the sum of their
    complements (NannyML's CBPE estimate of ROC AUC). NaN when all probabilities are 0 or 1."""
    p = _proba(proba)
    if len(p) == 0:
        return float("nan")
    s = np.sort(p)[::-1]
    return _roc_points(s, s, 1.0 - s)


def _average_ranks(sorted_asc: np.ndarray) -> np.ndarray:
    """1-based ranks of an ascending array, ties sharing their average rank."""
    n = len(sorted_asc)
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_asc)) + 1]
    sizes = np.diff(np.r_[starts, n])
    average = starts + (sizes + 1) / 2.0
    return np.repeat(average, sizes)


@dataclass(frozen=True)
class Estimate:
    """One metric of one set of rows: the estimate, its interval and, with labels, the truth.

    Attributes:
        metric: One of :data:`METRICS`.
        estimated: The CBPE estimate.
        interval_low: Lower end of the interval of the realized metric if the model is
            calibrated (``EstimationConfig.level``).
        interval_high: Upper end of that interval.
        realized: The metric on the observed labels, or None before they land.
        rows: Rows the figure is computed on (for precision: rows within the capacity).
    """

    metric: str
    estimated: float
    interval_low: float
    interval_high: float
    realized: float | None
    rows: int


def _realized(y: np.ndarray, p: np.ndarray, top: np.ndarray, min_class: int) -> dict[str, float]:
    """Realized figures of rows sorted by ascending ``p``."""
    out = {"positive_rate": float(y.mean()), "brier": float(np.mean((y - p) ** 2))}
    positives = int(y.sum())
    if min(positives, len(y) - positives) >= min_class:
        # Descending by score; tied scores form one step, so their order does not matter.
        out["roc_auc"] = _roc_points(p[::-1], y[::-1], 1.0 - y[::-1])
    if int(top.sum()) >= min_class:
        out["precision_at_capacity"] = float(y[top].mean())
    return out


MetricsOf = Callable[[np.ndarray], np.ndarray]


def _normal_interval(
    p: np.ndarray,
    weights: np.ndarray,
    metrics_of: MetricsOf,
    config: EstimationConfig,
    center: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The interval of each metric around ``center`` if the labels are independent draws
    ``y ~ Bernoulli(p)``, by the delta method: the statistics are linear in the labels, so
    their covariance is exact, and each metric is a smooth function of them (numerical
    gradient)."""
    variance = p * (1.0 - p)
    mean = weights @ p
    covariance = (weights * variance) @ weights.T
    step = np.maximum(np.abs(mean), 1.0) * 1e-6
    point = metrics_of(mean[:, None])[:, 0]
    gradient = np.empty((len(point), len(mean)))
    for j in range(len(mean)):  # four statistics
        moved = mean.copy()
        moved[j] += step[j]
        gradient[:, j] = (metrics_of(moved[:, None])[:, 0] - point) / step[j]
    sd = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", gradient, covariance, gradient), 0.0))
    z = float(NormalDist().inv_cdf(0.5 + config.level / 2.0))
    return center - z * sd, center + z * sd


def _draw_interval(
    p: np.ndarray, weights: np.ndarray, metrics_of: MetricsOf, config: EstimationConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Percentiles of each metric over ``config.samples`` label draws ``y ~ Bernoulli(p)``."""
    n = len(p)
    rng = np.random.default_rng(config.seed)
    p32 = p.astype("float32")
    sums = np.empty((len(weights), config.samples))
    batch = max(1, min(config.samples, _DRAW_CELLS // max(n, 1)))
    for start in range(0, config.samples, batch):  # batches of draws, not rows
        size = min(batch, config.samples - start)
        y = (rng.random((size, n), dtype="float32") < p32).astype("float64")
        sums[:, start : start + size] = weights @ y.T
    tail = (1.0 - config.level) / 2.0 * 100.0
    draws = metrics_of(sums)
    low, high = np.nanpercentile(draws, [tail, 100.0 - tail], axis=1)
    return low, high


def estimate(
    proba: ArrayLike,
    in_capacity: ArrayLike,
    config: EstimationConfig | None = None,
    labels: ArrayLike | None = None,
) -> list[Estimate]:
    """The metrics of one set of scored rows, estimated from the probabilities, with intervals.

    Args:
        proba: Calibrated probabilities of the event.
        in_capacity: Whether each row is among those the team acts on (:func:`capacity_mask` of
            the whole run; a segment passes its rows' flags).
        config: Samples, interval level, minimum rows.
        labels: The observed 0/1 outcomes once they land, else None.

    Returns:
        One :class:`Estimate` per metric of :data:`METRICS` that has enough rows: ROC AUC needs
        ``min_class_rows`` expected positives and negatives, precision that many rows in the
        capacity. Realized figures are None where the labels have too few of a class.
    """
    config = config or EstimationConfig()
    p = _proba(proba)
    top = np.asarray(in_capacity, dtype=bool).ravel()
    if len(top) != len(p):
        raise ValueError(f"{len(p)} probabilities but {len(top)} capacity flags")
    y = None
    if labels is not None:
        y = np.asarray(labels, dtype="float64").ravel()
        if len(y) != len(p):
            raise ValueError(f"{len(p)} probabilities but {len(y)} labels")
        if not ((y == 0.0) | (y == 1.0)).all():
            raise ValueError("labels must be 0 or 1")
    order = np.argsort(p, kind="stable")
    return _estimate_sorted(p[order], top[order], None if y is None else y[order], config)


def _estimate_sorted(
    p: np.ndarray,
    top: np.ndarray,
    y: np.ndarray | None,
    config: EstimationConfig,
    served: np.ndarray | None = None,
) -> list[Estimate]:
    """:func:`estimate` of rows already sorted by ascending probability (one sort per run serves
    every segment: a segment's rows in the run's order are sorted too).

    ``p`` is the probability of the event the estimate trusts; ``served``, when given, the
    probability the rows were served with, in the same order (a monotone map of ``p``), whose
    Brier score is the one estimated and realized."""
    if len(p) == 0:
        return []
    s = p if served is None else served
    realized = {} if y is None else _realized(y, s, top, config.min_class_rows)

    n, k = len(p), int(top.sum())
    expected_pos = float(p.sum())
    with_auc = min(expected_pos, n - expected_pos) >= config.min_class_rows
    with_precision = k >= config.min_class_rows
    descending = p[::-1]
    point = {
        "roc_auc": _roc_points(descending, descending, 1.0 - descending)
        if with_auc
        else float("nan"),
        "precision_at_capacity": float(p[top].mean()) if with_precision else float("nan"),
        "positive_rate": expected_pos / n,
        # E[(s - y)^2] with y ~ Bernoulli(p): p(1 - p) + (s - p)^2.
        "brier": float(np.mean(p * (1.0 - p) + (s - p) ** 2)),
    }

    ranks = _average_ranks(p)
    # Per metric the linear statistics of the labels it is built from: the rank sum of the
    # positives (ROC AUC, Mann-Whitney), the hits within the capacity, the positives, and the
    # Brier score (the sum of p**2 over the negatives and (1 - p)**2 over the positives).
    weights = np.stack([ranks, top.astype("float64"), np.ones(n), (1.0 - s) ** 2 - s**2])
    brier_base = float(np.sum(s**2))

    def metrics_of(sums: np.ndarray) -> np.ndarray:
        rank_sum, hits, n1, brier_sum = sums
        n0 = n - n1
        with np.errstate(divide="ignore", invalid="ignore"):
            auc = np.where(
                (n1 > 0) & (n0 > 0), (rank_sum - n1 * (n1 + 1) / 2.0) / (n1 * n0), np.nan
            )
        return np.stack([auc, hits / max(k, 1), n1 / n, (brier_base + brier_sum) / n])

    if config.interval == "draws":
        low, high = _draw_interval(p, weights, metrics_of, config)
    else:
        center = np.array([point[m] for m in METRICS])
        low, high = _normal_interval(p, weights, metrics_of, config, center)
    results = []
    for i, metric in enumerate(METRICS):
        if np.isnan(point[metric]):
            continue
        results.append(
            Estimate(
                metric=metric,
                estimated=point[metric],
                interval_low=float(low[i]),
                interval_high=float(high[i]),
                realized=realized.get(metric),
                rows=k if metric == "precision_at_capacity" else n,
            )
        )
    return results


def estimate_segments(
    rows: pd.DataFrame,
    segment_columns: Sequence[str],
    capacity: int,
    config: EstimationConfig | None = None,
    proba_column: str = "probability",
    label_column: str | None = None,
    reference_column: str | None = None,
) -> pd.DataFrame:
    """Estimates for the whole run (segment ``all``) and each segment with enough rows.

    The capacity is the run's: the team acts on the ``capacity`` highest scores of all rows, and
    a segment's precision is the hit rate among its rows within them.

    Args:
        rows: One row per scored entity: the probability, the segment columns and (optional) the
            label, 0/1 or null where it has not landed.
        segment_columns: Columns whose values are segments (``plan`` gives ``plan=basic``, ...).
        capacity: Rows the team acts on per run.
        config: Estimation settings.
        proba_column: The probability column.
        label_column: The label column, or None before labels exist. Realized figures are
            computed only when every row of the set has its label.
        reference_column: The probability of the event as the model's held-out calibration
            slice says (``CalibratedBooster.reference_probability``, a monotone map of the
            served one), which the estimates then trust; the Brier score stays the served
            probabilities'. None: the served probabilities are trusted as they are.

    Returns:
        Columns ``segment``, ``metric``, ``estimated``, ``realized``, ``interval_low``,
        ``interval_high``, ``rows``; one row per segment and metric.
    """
    config = config or EstimationConfig()
    served = _proba(rows[proba_column])
    p = served if reference_column is None else _proba(rows[reference_column])
    top = capacity_mask(served, capacity) if len(p) else np.zeros(0, dtype=bool)
    labelled = None
    if label_column is not None:
        y = pd.to_numeric(rows[label_column], errors="coerce").to_numpy(dtype="float64")
        labelled = None if np.isnan(y).any() else y
    if labelled is not None and not ((labelled == 0.0) | (labelled == 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    order = np.argsort(p, kind="stable")
    p_s, top_s, served_s = p[order], top[order], served[order]
    y_s = None if labelled is None else labelled[order]

    def one(segment: str, mask: np.ndarray | None) -> list[dict[str, object]]:
        if mask is None:
            found = _estimate_sorted(p_s, top_s, y_s, config, served_s)
        else:
            found = _estimate_sorted(
                p_s[mask],
                top_s[mask],
                None if y_s is None else y_s[mask],
                config,
                served_s[mask],
            )
        return [{"segment": segment, **vars(e)} for e in found]

    records = one(ALL, None)
    for column in segment_columns:
        # Hashing, not sorting, the values: np.unique on 1M strings took 6 s.
        codes, names = pd.factorize(rows[column].astype("string").fillna("(missing)"))
        counts = np.bincount(codes, minlength=len(names))
        codes_s = codes[order]
        for i in np.argsort(names.astype(str)):
            if counts[i] >= config.min_segment_rows:
                records.extend(one(f"{column}={names[i]}", codes_s == i))
    columns = ["segment", "metric", "estimated", "realized", "interval_low", "interval_high"]
    return pd.DataFrame.from_records(records, columns=[*columns, "rows"])


def estimate_run(
    rows: pd.DataFrame,
    segment_columns: Sequence[str],
    capacity: int,
    config: EstimationConfig,
    version: str,
    reference: ReferenceProbability | None = None,
) -> pd.DataFrame:
    """:func:`estimate_segments` of one scoring run read by a model's monitor: ``probability``,
    ``label`` (null until it lands) and the segment columns that hold a value; the estimates
    trust ``reference(version, probability)`` when given, the served probabilities otherwise."""
    columns = [c for c in segment_columns if c in rows.columns and rows[c].notna().any()]
    if reference is not None:
        rows = rows.assign(reference=reference(version, rows["probability"].to_numpy(dtype=float)))
    return estimate_segments(
        rows,
        columns,
        capacity,
        config,
        label_column="label",
        reference_column=None if reference is None else "reference",
    )
