"""Score stability between two scoring runs: how far the score distribution moved (PSI) and
how many entities scored in both runs changed their band or their action.

A retrained or drifting model can keep its AUC and still move thousands of customers between
bands, which the retention team sees as a different list every week; these figures say how much.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import duckdb
import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ml.core.warehouse import table_exists, transaction


@dataclass(frozen=True)
class StabilityThresholds:
    """When a change between two runs is worth a person's look.

    Attributes:
        psi: Population stability index of the scores at which the distribution moved (0.1 to
            0.25 is commonly read as a moderate shift, above 0.25 as a major one).
        band_changed: Share of entities in both runs whose band changed.
        action_changed: Share of entities in both runs whose action changed.
        bins: Quantile bins of the previous run's scores for the PSI.
    """

    psi: float = 0.2
    band_changed: float = 0.15
    action_changed: float = 0.25
    bins: int = 10

    def __post_init__(self) -> None:
        if self.bins < 2:
            raise ValueError(f"bins must be >= 2, got {self.bins}")
        for name in ("psi", "band_changed", "action_changed"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")


def psi(reference: ArrayLike, current: ArrayLike, bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference``.

    Bins are the reference's quantiles (ties merged), so each holds about ``1 / bins`` of the
    reference; an empty bin counts as half a row of its side, so a bin one side lacks gives a
    large, finite term instead of infinity.

    Raises:
        ValueError: Either side is empty.
    """
    ref = np.asarray(reference, dtype="float64").ravel()
    cur = np.asarray(current, dtype="float64").ravel()
    if len(ref) == 0 or len(cur) == 0:
        raise ValueError("psi needs rows on both sides")
    edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1)
    cur_counts = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1)
    r = np.maximum(ref_counts, 0.5) / len(ref)
    c = np.maximum(cur_counts, 0.5) / len(cur)
    return float(np.sum((c - r) * np.log(c / r)))


def changed_share(previous: pd.Series, current: pd.Series) -> tuple[float, int]:
    """Share of the keys in both series (by index) whose value differs, and how many keys.

    Returns:
        ``(share, rows)``; the share is NaN when no key is in both.
    """
    both = previous.index.intersection(current.index)
    if len(both) == 0:
        return float("nan"), 0
    before = previous.loc[both].astype("string").fillna("(none)")
    after = current.loc[both].astype("string").fillna("(none)")
    return float((before != after).mean()), len(both)


@dataclass(frozen=True)
class Stability:
    """One stability figure between two runs.

    Attributes:
        metric: ``score_psi``, ``band_changed_share`` or ``action_changed_share``.
        value: The figure (NaN when the runs share no entity).
        threshold: Its threshold.
        rows: Entities compared (for PSI, those of the current run).
    """

    metric: str
    value: float
    threshold: float
    rows: int

    @property
    def passed(self) -> bool:
        return bool(np.isnan(self.value) or self.value < self.threshold)


def stability(
    previous: pd.DataFrame,
    current: pd.DataFrame,
    thresholds: StabilityThresholds,
    key: str,
    score: str,
    band: str | None = None,
    action: str | None = None,
) -> list[Stability]:
    """PSI of ``score`` and the changed shares of ``band`` and ``action`` between two runs.

    Args:
        previous: The previous run's rows (``key``, ``score`` and the other columns named).
        current: The current run's rows.
        thresholds: When each figure fails.
        key: The entity column (e.g. ``customer_id``).
        score: The score column.
        band: The band column, or None.
        action: The action column, or None (a frame without it skips the figure).
    """
    found = [
        Stability(
            "score_psi",
            psi(previous[score], current[score], thresholds.bins),
            thresholds.psi,
            len(current),
        ),
    ]
    for column, metric, threshold in (
        (band, "band_changed_share", thresholds.band_changed),
        (action, "action_changed_share", thresholds.action_changed),
    ):
        if column is None or column not in previous or column not in current:
            continue
        share, rows = changed_share(previous.set_index(key)[column], current.set_index(key)[column])
        found.append(Stability(metric, share, threshold, rows))
    return found


STABILITY_TABLE = "monitoring.score_stability"


def record_stability(
    con: duckdb.DuckDBPyConnection,
    model: str,
    as_of_date: date,
    previous_as_of_date: date,
    figures: list[Stability],
    at: datetime,
) -> int:
    """Write the figures of one pair of runs to ``monitoring.score_stability`` (replacing an
    earlier pass over the same pair).

    Returns:
        Rows written.
    """
    con.execute("create schema if not exists monitoring")
    con.execute(
        f"create table if not exists {STABILITY_TABLE} (model varchar, as_of_date date, "
        "previous_as_of_date date, metric varchar, value double, threshold double, "
        "row_count bigint, measured_at timestamp, "
        "primary key (model, as_of_date, previous_as_of_date, metric))"
    )
    stamp = pd.Timestamp(at).tz_localize(None) if pd.Timestamp(at).tzinfo else pd.Timestamp(at)
    rows = [
        (model, as_of_date, previous_as_of_date, f.metric, f.value, f.threshold, f.rows, stamp)
        for f in figures
    ]
    with transaction(con):
        con.execute(
            f"delete from {STABILITY_TABLE} where model = ? and as_of_date = ? "
            "and previous_as_of_date = ?",
            [model, as_of_date, previous_as_of_date],
        )
        con.executemany(f"insert into {STABILITY_TABLE} values (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return len(rows)


@dataclass(frozen=True)
class RunColumns:
    """What the rows of one scoring run call their columns.

    Attributes:
        key: The entity column (``customer_id``, ``lead_id``).
        score: The probability the PSI is taken of.
        band: The band or grade column, or None.
        action: The action column, or None.
    """

    key: str
    score: str
    band: str | None = None
    action: str | None = None


@dataclass(frozen=True)
class ScoreStability:
    """Stability of a model's newest scoring run against the one before.

    Attributes:
        as_of_date: The newest run's as-of date.
        previous_as_of_date: The run it is compared with.
        figures: PSI of the scores and the changed shares the runs' columns allow.
    """

    as_of_date: date
    previous_as_of_date: date
    figures: tuple[Stability, ...]


def compare_newest_runs(
    con: duckdb.DuckDBPyConnection,
    model: str,
    run_dates: Sequence[date],
    rows_of: Callable[[date], pd.DataFrame],
    columns: RunColumns,
    thresholds: StabilityThresholds,
    now: datetime,
) -> ScoreStability | None:
    """Compare the two newest scoring runs of ``model`` and write ``monitoring.score_stability``.

    Args:
        con: Writable warehouse connection.
        model: Registered model name (the table's ``model``).
        run_dates: The as-of dates of its stored runs, in any order (repeats allowed).
        rows_of: One run's rows by as-of date, with the columns ``columns`` names.
        columns: The key, score, band and action columns of those rows.
        thresholds: When each figure fails.
        now: When this pass runs (written to the table).

    Returns:
        The figures, or None when fewer than two as-of dates are stored.
    """
    dates = sorted(set(run_dates))
    if len(dates) < 2:
        return None
    previous, newest = dates[-2], dates[-1]
    figures = stability(
        rows_of(previous),
        rows_of(newest),
        thresholds,
        key=columns.key,
        score=columns.score,
        band=columns.band,
        action=columns.action,
    )
    record_stability(con, model, newest, previous, figures, now)
    return ScoreStability(newest, previous, tuple(figures))


def read_latest_stability(con: duckdb.DuckDBPyConnection, model: str) -> list[Stability]:
    """The figures of the newest pair of runs of ``model`` (empty when none is stored)."""
    con.execute("create schema if not exists monitoring")
    if not table_exists(con, "monitoring", "score_stability"):
        return []
    found = con.execute(
        f"select metric, value, threshold, row_count from {STABILITY_TABLE} where model = ? "
        f"and as_of_date = (select max(as_of_date) from {STABILITY_TABLE} where model = ?) "
        "order by metric",
        [model, model],
    ).fetchall()
    return [Stability(str(m), float(v), float(t), int(r)) for m, v, t, r in found]
