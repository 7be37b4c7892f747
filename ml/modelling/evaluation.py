"""Held-out metrics and plots of a binary model (churn, leads, next product).

Metrics come from scikit-learn; only the expected calibration error and the top-fraction
precision/lift, which scikit-learn does not provide, are computed here (vectorised). Plots use
matplotlib's object API on the Agg canvas, so no pyplot global state and no display is needed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

ECE_BINS = 10


@dataclass(frozen=True)
class EvaluationResult:
    """Metrics of probabilities against observed 0/1 labels.

    Attributes:
        roc_auc: Area under the ROC curve.
        pr_auc: Average precision (area under the precision-recall curve).
        brier: Brier score (mean squared error of the probability).
        log_loss: Mean negative log-likelihood.
        ece: Expected calibration error over 10 equal-width bins, weighted by bin size.
        precision_at_k: Churn rate among the ``top_fraction`` highest scores.
        lift_at_k: ``precision_at_k / base_rate``.
        base_rate: Churn rate of all rows.
        n: Number of rows.
        top_fraction: The fraction k used for precision and lift.
    """

    roc_auc: float
    pr_auc: float
    brier: float
    log_loss: float
    ece: float
    precision_at_k: float
    lift_at_k: float
    base_rate: float
    n: int
    top_fraction: float

    def as_metrics(self) -> dict[str, float]:
        """The result as flat MLflow metrics."""
        return {k: float(v) for k, v in asdict(self).items()}


def _checked(y_true: ArrayLike, proba: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(int)
    p = np.asarray(proba, dtype=float)
    if y.shape != p.shape or y.ndim != 1:
        raise ValueError(f"y_true and proba must be 1-d of equal length, got {y.shape}, {p.shape}")
    if len(y) == 0:
        raise ValueError("cannot evaluate zero rows")
    if np.unique(y).size < 2:
        raise ValueError("y_true holds a single class; AUC is undefined")
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("proba must lie in [0, 1] without NaN")
    return y, p


def _top_k(n: int, top_fraction: float) -> int:
    if not 0 < top_fraction <= 1:
        raise ValueError(f"top_fraction must be in (0, 1], got {top_fraction}")
    return max(1, int(np.ceil(top_fraction * n)))


def expected_calibration_error(
    y_true: ArrayLike, proba: ArrayLike, n_bins: int = ECE_BINS
) -> float:
    """Bin-size-weighted mean |observed rate - mean probability| over equal-width bins.

    Uses the same bin edges as ``sklearn.calibration.calibration_curve(strategy="uniform")``.
    """
    y, p = np.asarray(y_true, dtype=float), np.asarray(proba, dtype=float)
    bins = np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1)[1:-1], p, side="right")
    counts = np.bincount(bins, minlength=n_bins)
    sum_true = np.bincount(bins, weights=y, minlength=n_bins)
    sum_prob = np.bincount(bins, weights=p, minlength=n_bins)
    return float(np.abs(sum_true - sum_prob).sum() / counts.sum())


def capacity_metrics(y_true: ArrayLike, proba: ArrayLike, capacity: int) -> dict[str, float]:
    """Precision and lift among the ``capacity`` highest scores: what a team that can act on
    that many customers gets (ties broken by position, as a stable sort does).

    Returns:
        ``capacity``, ``precision_at_capacity``, ``lift_at_capacity``, ``recall_at_capacity``.
    """
    y, p = _checked(y_true, proba)
    if capacity < 1:
        raise ValueError(f"capacity must be >= 1, got {capacity}")
    k = min(capacity, len(y))
    top = np.argsort(-p, kind="stable")[:k]
    precision = float(y[top].mean())
    return {
        "capacity": float(k),
        "precision_at_capacity": precision,
        "lift_at_capacity": precision / float(y.mean()),
        "recall_at_capacity": float(y[top].sum() / y.sum()),
    }


def evaluate(y_true: ArrayLike, proba: ArrayLike, top_fraction: float = 0.1) -> EvaluationResult:
    """Score probabilities against labels.

    Args:
        y_true: Observed 0/1 (or bool) labels.
        proba: Predicted probabilities in [0, 1].
        top_fraction: Share of rows (highest scores first, ``ceil(top_fraction * n)`` rows)
            used for precision and lift; 0.1 is the top decile.

    Returns:
        The metrics.

    Raises:
        ValueError: On empty input, a single class, mismatched lengths or probabilities
            outside [0, 1].
    """
    y, p = _checked(y_true, proba)
    k = _top_k(len(y), top_fraction)
    # Stable sort on the negated score: ties keep input order, so the result is deterministic.
    top = np.argsort(-p, kind="stable")[:k]
    base_rate = float(y.mean())
    precision = float(y[top].mean())
    return EvaluationResult(
        roc_auc=float(roc_auc_score(y, p)),
        pr_auc=float(average_precision_score(y, p)),
        brier=float(brier_score_loss(y, p)),
        log_loss=float(log_loss(y, p, labels=[0, 1])),
        ece=expected_calibration_error(y, p),
        precision_at_k=precision,
        lift_at_k=precision / base_rate,
        base_rate=base_rate,
        n=len(y),
        top_fraction=top_fraction,
    )


def save_figure(fig: Figure, path: Path) -> Path:
    """Write a matplotlib figure as PNG on the Agg canvas (no pyplot, no display)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=100)
    return path


def plot_calibration_curve(y_true: ArrayLike, proba: ArrayLike, path: Path) -> Path:
    """Reliability diagram (10 equal-width bins) with the score histogram, as a PNG.

    Args:
        y_true: Observed 0/1 labels.
        proba: Predicted probabilities.
        path: Where to write the PNG (parent folders are created).

    Returns:
        ``path``.
    """
    y, p = _checked(y_true, proba)
    observed, predicted = calibration_curve(y, p, n_bins=ECE_BINS, strategy="uniform")
    fig = Figure(figsize=(6, 6))
    ax, hist = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    ax.plot(predicted, observed, marker="o", label="model")
    ax.set_ylabel("observed churn rate")
    ax.set_title(f"Calibration (ECE {expected_calibration_error(y, p):.3f}, n={len(y)})")
    ax.legend(loc="upper left")
    hist.hist(p, bins=np.linspace(0, 1, 41), color="tab:blue")
    hist.set_xlabel("predicted churn probability")
    hist.set_ylabel("rows")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_lift_chart(y_true: ArrayLike, proba: ArrayLike, path: Path) -> Path:
    """Lift per score decile (decile 1 = highest scores) against the base rate, as a PNG.

    Args:
        y_true: Observed 0/1 labels.
        proba: Predicted probabilities.
        path: Where to write the PNG (parent folders are created).

    Returns:
        ``path``.
    """
    y, p = _checked(y_true, proba)
    ranked = y[np.argsort(-p, kind="stable")]
    deciles = np.arange(len(ranked)) * 10 // len(ranked)
    rate = np.bincount(deciles, weights=ranked, minlength=10) / np.maximum(
        np.bincount(deciles, minlength=10), 1
    )
    lift = rate / y.mean()
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    ax.bar(np.arange(1, 11), lift, color="tab:orange")
    ax.axhline(1.0, linestyle="--", color="grey", label="random")
    ax.set_xticks(np.arange(1, 11))
    ax.set_xlabel("score decile (1 = highest risk)")
    ax.set_ylabel("lift (churn rate / base rate)")
    ax.set_title(f"Lift by decile (base rate {y.mean():.3f}, n={len(y)})")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def plot_shap_summary(
    shap: np.ndarray,
    features: pd.DataFrame,
    path: Path,
    max_features: int = 12,
    max_rows: int = 3000,
    seed: int = 0,
) -> tuple[Path, dict[str, float]]:
    """SHAP summary (beeswarm-style) of a model version and its global importance.

    One row of dots per feature, the features with the largest mean |SHAP| on top; a dot is one
    customer at its contribution, coloured by the feature's value (low blue to high red; grey
    for categories and missing values). The importance is the mean |SHAP| per feature, in
    log-odds, over all rows given.

    Args:
        shap: SHAP values, rows x features, columns in the order of ``features``.
        features: The rows' feature values (same order).
        path: PNG to write.
        max_features: Features shown.
        max_rows: Rows drawn (a fixed random sample; the importance uses all rows).
        seed: Seed of the sample and the vertical jitter.

    Returns:
        The PNG path and ``{feature: mean |SHAP|}``, largest first.
    """
    if shap.shape != features.shape:
        raise ValueError(f"shap {shap.shape} and features {features.shape} differ in shape")
    importance = np.abs(shap).mean(axis=0)
    order = np.argsort(-importance, kind="stable")
    names = [str(features.columns[i]) for i in order]
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(shap), size=min(max_rows, len(shap)), replace=False)
    shown = order[:max_features][::-1]  # the most important on top
    fig = Figure(figsize=(7.5, 0.45 * len(shown) + 1.5))
    ax = fig.add_subplot()
    for y, column in enumerate(shown):  # a dozen features, never rows
        values = pd.to_numeric(features.iloc[rows, column], errors="coerce").to_numpy(float)
        finite = np.isfinite(values)
        colour = np.full(len(rows), 0.5)
        if finite.any():
            lo, hi = np.nanpercentile(values, [5, 95])
            colour[finite] = np.clip((values[finite] - lo) / (hi - lo or 1.0), 0, 1)
        jitter = rng.uniform(-0.3, 0.3, len(rows))
        ax.scatter(shap[rows, column], y + jitter, c=colour, cmap="coolwarm", s=4, alpha=0.6)
        ax.scatter(shap[rows, column][~finite], (y + jitter)[~finite], c="lightgrey", s=4)
    ax.axvline(0.0, color="grey", linewidth=0.8)
    ax.set_yticks(range(len(shown)), [str(features.columns[c]) for c in shown])
    ax.set_xlabel("SHAP contribution (log-odds; right raises the score)")
    ax.set_title("SHAP summary: colour = feature value, low (blue) to high (red)")
    fig.tight_layout()
    return save_figure(fig, path), {
        names[i]: float(importance[order[i]]) for i in range(len(order))
    }
