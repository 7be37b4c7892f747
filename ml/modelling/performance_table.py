"""``monitoring.model_performance``: estimated and realized performance of every scoring run.

One row per model, version, as-of date, segment and metric. A scoring run writes the estimate
with its interval (:func:`record_estimates`); when the labels of that as-of date land, a later
run writes the realized figure next to it (:func:`record_realized`) and leaves the estimate as
the scoring run made it, so the table shows what was believed then and what came true.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import duckdb
import pandas as pd

from ml.core.warehouse import transaction

SCHEMA = "monitoring"
TABLE = f"{SCHEMA}.model_performance"
COLUMNS: tuple[tuple[str, str], ...] = (
    ("model", "VARCHAR"),
    ("version", "VARCHAR"),
    ("as_of_date", "DATE"),
    ("segment", "VARCHAR"),
    ("metric", "VARCHAR"),
    ("estimated", "DOUBLE"),
    ("realized", "DOUBLE"),
    ("interval_low", "DOUBLE"),
    ("interval_high", "DOUBLE"),
    ("row_count", "BIGINT"),
    ("estimated_at", "TIMESTAMP"),
    ("realized_at", "TIMESTAMP"),
)
KEY: tuple[str, ...] = ("model", "version", "as_of_date", "segment", "metric")
_ESTIMATE = ("estimated", "interval_low", "interval_high", "row_count", "estimated_at")
_REALIZED = ("realized", "realized_at")


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    """Create the schema and the table when missing."""
    columns = ", ".join(f"{name} {kind}" for name, kind in COLUMNS)
    con.execute(f"create schema if not exists {SCHEMA}")
    con.execute(f"create table if not exists {TABLE} ({columns}, primary key ({', '.join(KEY)}))")


def _rows(
    model: str, version: str, as_of_date: date, figures: pd.DataFrame, at: datetime
) -> pd.DataFrame:
    """The table's rows from :func:`ml.modelling.performance.estimate_segments` output."""
    stamp = pd.Timestamp(at).tz_localize(None) if pd.Timestamp(at).tzinfo else pd.Timestamp(at)
    rows = pd.DataFrame(
        {
            "model": model,
            "version": str(version),
            "as_of_date": pd.Timestamp(as_of_date).date(),
            "segment": figures["segment"].astype(str),
            "metric": figures["metric"].astype(str),
            "estimated": figures["estimated"].astype("float64"),
            "realized": pd.to_numeric(figures["realized"], errors="coerce").astype("float64"),
            "interval_low": figures["interval_low"].astype("float64"),
            "interval_high": figures["interval_high"].astype("float64"),
            "row_count": figures["rows"].astype("int64"),
            "estimated_at": stamp,
        }
    )
    rows["realized_at"] = rows["realized"].notna().map({True: stamp, False: pd.NaT})
    return rows.astype({"realized_at": "datetime64[us]", "estimated_at": "datetime64[us]"})


def _upsert(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame, update: tuple[str, ...]) -> int:
    ensure_table(con)
    if rows.empty:
        return 0
    names = [name for name, _ in COLUMNS]
    casts = ", ".join(f"cast({name} as {kind}) as {name}" for name, kind in COLUMNS)
    sets = ", ".join(f"{name} = excluded.{name}" for name in update)
    view = "_performance_rows"
    con.register(view, rows[names])
    try:
        with transaction(con):
            con.execute(
                f"insert into {TABLE} ({', '.join(names)}) select {casts} from {view} "
                f"on conflict ({', '.join(KEY)}) do update set {sets}"
            )
    finally:
        con.unregister(view)
    return len(rows)


def record_estimates(
    con: duckdb.DuckDBPyConnection,
    model: str,
    version: str,
    as_of_date: date,
    figures: pd.DataFrame,
    at: datetime,
) -> int:
    """Write a scoring run's estimates (and realized figures, if its labels are already in).

    A second run for the same model version and as-of date replaces the estimates; a realized
    figure already stored stays when the new rows have none.

    Args:
        con: Writable warehouse connection.
        model: Registered model name.
        version: Model version that scored.
        as_of_date: As-of date of the scores.
        figures: ``estimate_segments`` output.
        at: When the estimate was made (naive UTC or aware).

    Returns:
        Rows written.
    """
    rows = _rows(model, version, as_of_date, figures, at)
    known = tuple(c for c in _REALIZED if rows["realized"].notna().any())
    return _upsert(con, rows, _ESTIMATE + known)


def record_realized(
    con: duckdb.DuckDBPyConnection,
    model: str,
    version: str,
    as_of_date: date,
    figures: pd.DataFrame,
    at: datetime,
) -> int:
    """Write the realized figures of an earlier scoring run next to its estimates.

    The stored estimates stay as that run made them; a segment or metric without a stored
    estimate gets the one in ``figures`` (computed now from the same scores).

    Returns:
        Rows written.
    """
    rows = _rows(model, version, as_of_date, figures, at)
    rows = rows[rows["realized"].notna()]
    return _upsert(con, rows, _REALIZED)


def stored_runs(con: duckdb.DuckDBPyConnection, model: str) -> dict[tuple[str, date], bool]:
    """``(version, as_of_date)`` of every run of ``model`` in the table, and whether its
    realized figures are in."""
    ensure_table(con)
    found = con.execute(
        f"select version, as_of_date, bool_or(realized is not null) from {TABLE} "
        "where model = ? group by all",
        [model],
    ).fetchall()
    return {(str(v), d): bool(done) for v, d, done in found}


def latest_realized(
    con: duckdb.DuckDBPyConnection, model: str, version: str, metric: str = "roc_auc"
) -> dict[str, object] | None:
    """The newest run of ``version`` whose labels have landed, for one metric (segment
    ``all``): ``as_of_date``, ``estimated``, ``realized``, ``interval_low``,
    ``interval_high``; or None."""
    ensure_table(con)
    found = con.execute(
        f"select as_of_date, estimated, realized, interval_low, interval_high from {TABLE} "
        "where model = ? and version = ? and metric = ? and segment = 'all' "
        "and realized is not null order by as_of_date desc limit 1",
        [model, version, metric],
    ).fetchall()
    names = ("as_of_date", "estimated", "realized", "interval_low", "interval_high")
    return dict(zip(names, found[0], strict=True)) if found else None


def read_performance(con: duckdb.DuckDBPyConnection, model: str | None = None) -> pd.DataFrame:
    """The table (of one model, or all), ordered by model, as-of date, segment and metric."""
    ensure_table(con)
    where, params = ("where model = ?", [model]) if model is not None else ("", [])
    return con.execute(
        f"select * from {TABLE} {where} order by model, as_of_date, version, segment, metric",
        params,
    ).df()


@dataclass(frozen=True)
class MonitoringPass:
    """What one monitoring pass of a model wrote.

    Attributes:
        version: Model version of the newest scoring run (None when nothing is scored).
        as_of_date: Its as-of date.
        estimates: Its figures (``estimate_segments`` output; realized where labels exist).
        realized_runs: ``(version, as_of_date)`` of runs whose realized figures were written.
    """

    version: str | None
    as_of_date: date | None
    estimates: pd.DataFrame
    realized_runs: tuple[tuple[str, date], ...]

    def figure(self, metric: str, segment: str = "all", column: str = "estimated") -> float | None:
        """One figure of the newest run, or None when it was not estimated."""
        if self.estimates.empty:
            return None
        found = self.estimates[
            (self.estimates["segment"] == segment) & (self.estimates["metric"] == metric)
        ]
        value = found[column].iloc[0] if len(found) else None
        return None if value is None or pd.isna(value) else float(value)


def monitor_runs(
    con: duckdb.DuckDBPyConnection,
    model: str,
    runs: Sequence[tuple[str, date]],
    figures_of: Callable[[str, date], pd.DataFrame],
    labels_landed: Callable[[date], bool],
    now: datetime,
) -> MonitoringPass:
    """Estimate the newest scoring run of ``model`` and realize the older ones whose labels
    have landed; a run scored before the table knew it gets its estimates too.

    Args:
        con: Writable warehouse connection.
        model: Registered model name.
        runs: ``(version, as_of_date)`` of every scoring run whose scores are still stored.
        figures_of: The ``estimate_segments`` output of one run (with labels where landed).
        labels_landed: Whether the labels of an as-of date are all in.
        now: When this pass runs.
    """
    if not runs:
        return MonitoringPass(None, None, pd.DataFrame(), ())
    newest = max(runs, key=lambda run: (run[1], run[0]))
    estimates = figures_of(*newest)
    record_estimates(con, model, newest[0], newest[1], estimates, now)
    stored = stored_runs(con, model)
    realized = [newest] if estimates["realized"].notna().any() else []
    for version, as_of in sorted(runs, key=lambda run: (run[1], run[0])):
        run = (version, as_of)
        if run == newest or stored.get(run):
            continue
        if run in stored and not labels_landed(as_of):
            continue  # the estimate is stored; nothing new until the labels land
        figures = figures_of(version, as_of)
        if run not in stored:
            record_estimates(con, model, version, as_of, figures, now)
        elif figures["realized"].notna().any():
            record_realized(con, model, version, as_of, figures, now)
        if figures["realized"].notna().any():
            realized.append(run)
    return MonitoringPass(newest[0], newest[1], estimates, tuple(realized))
