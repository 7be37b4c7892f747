"""One self-contained HTML monitoring report per run: estimated against realized performance
over time, the newest run per segment, drift and score stability.

Self-contained means one file: the plot is an inline PNG, the style inline, so the report can be
mailed or attached to a ticket. Matplotlib's object API on the Agg canvas, as the other plots.
"""

from __future__ import annotations

import base64
import html
import io
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ml.modelling.stability import Stability

PLOTTED: tuple[tuple[str, str], ...] = (
    ("roc_auc", "ROC AUC"),
    ("precision_at_capacity", "Precision at capacity"),
    ("positive_rate", "Positive rate (calibration)"),
)


@dataclass(frozen=True)
class MonitoringReport:
    """What one report shows.

    Attributes:
        model: Registered model name.
        version: Model version of the newest run.
        as_of_date: As-of date of the newest run.
        history: ``monitoring.model_performance`` rows of the model (every run).
        reference: Held-out figures the version was promoted with (e.g. ``roc_auc``).
        drift: Drift figures to show (name to value), empty when none.
        stability: Stability figures against the previous run, empty when none.
        alerts: One line per failed rule, empty when all passed.
    """

    model: str
    version: str | None
    as_of_date: date | None
    history: pd.DataFrame
    reference: Mapping[str, float] = field(default_factory=dict)
    drift: Mapping[str, object] = field(default_factory=dict)
    stability: Sequence[Stability] = ()
    alerts: Sequence[str] = ()


def _plot(history: pd.DataFrame, reference: Mapping[str, float]) -> str:
    figure = Figure(figsize=(11, 3.4))
    FigureCanvasAgg(figure)
    whole = history[history["segment"] == "all"].sort_values("as_of_date")
    for i, (metric, title) in enumerate(PLOTTED):
        ax = figure.add_subplot(1, len(PLOTTED), i + 1)
        rows = whole[whole["metric"] == metric]
        dates = pd.to_datetime(rows["as_of_date"])
        if len(rows):
            ax.fill_between(
                dates, rows["interval_low"], rows["interval_high"], alpha=0.25, label="95% interval"
            )
            ax.plot(dates, rows["estimated"], marker="o", label="estimated (no labels)")
            done = rows["realized"].notna()
            ax.plot(dates[done], rows.loc[done, "realized"], "s", color="black", label="realized")
        if metric in reference:
            ax.axhline(reference[metric], linestyle="--", color="grey", label="at promotion")
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        if i == 0:
            ax.legend(fontsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return html.escape(str(value))


def _segment_table(history: pd.DataFrame, version: str | None, as_of: date | None) -> str:
    rows = history[
        (history["version"] == version) & (pd.to_datetime(history["as_of_date"]).dt.date == as_of)
    ]
    if rows.empty:
        return "<p>No estimates yet.</p>"
    cells = []
    for segment, group in rows.groupby("segment", sort=False):
        by = {str(r["metric"]): r for r in group.to_dict("records")}
        row = [f"<td>{html.escape(str(segment))}</td>", f"<td>{int(group['row_count'].max())}</td>"]
        for metric, _ in PLOTTED:
            if metric in by:
                r = by[metric]
                row.append(
                    f"<td>{_fmt(r['estimated'])} [{_fmt(r['interval_low'])}, "
                    f"{_fmt(r['interval_high'])}]</td><td>{_fmt(r['realized'])}</td>"
                )
            else:
                row.append("<td>-</td><td>-</td>")
        cells.append(f"<tr>{''.join(row)}</tr>")
    head = "".join(f"<th>{t} estimated [95%]</th><th>{t} realized</th>" for _, t in PLOTTED)
    return f"<table><tr><th>segment</th><th>rows</th>{head}</tr>{''.join(cells)}</table>"


def render(report: MonitoringReport, generated_at: datetime) -> str:
    """The report as one HTML document."""
    alerts = (
        "<ul class='alert'>"
        + "".join(f"<li>{html.escape(a)}</li>" for a in report.alerts)
        + "</ul>"
        if report.alerts
        else "<p class='ok'>No alert: every rule passed.</p>"
    )
    drift = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in report.drift.items()
    )
    stability = "".join(
        f"<tr><td>{s.metric}</td><td>{_fmt(s.value)}</td><td>{_fmt(s.threshold)}</td>"
        f"<td>{'ok' if s.passed else 'ALERT'}</td><td>{s.rows}</td></tr>"
        for s in report.stability
    )
    plot = _plot(report.history, report.reference) if not report.history.empty else ""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Monitoring: {html.escape(report.model)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:80em}}
table{{border-collapse:collapse;font-size:0.85em}}td,th{{border:1px solid #ccc;padding:3px 6px}}
.alert{{color:#a00}}.ok{{color:#070}}</style></head><body>
<h1>Monitoring: {html.escape(report.model)} version {_fmt(report.version)}</h1>
<p>Newest scoring run: as of {_fmt(report.as_of_date)}; report written {
        generated_at:%Y-%m-%d
%H:%M} UTC. Estimates come from the calibrated probabilities alone (confidence-based
performance estimation); realized figures appear once the labels of a run have landed.</p>
<h2>Alerts</h2>{alerts}
<h2>Estimated and realized over time (all customers)</h2>
{
        f'<img alt="estimated and realized performance" src="data:image/png;base64,{plot}">'
        if plot
        else "<p>No runs yet.</p>"
    }
<h2>Newest run per segment</h2>{_segment_table(report.history, report.version, report.as_of_date)}
<h2>Drift</h2>{f"<table>{drift}</table>" if drift else "<p>No drift report.</p>"}
<h2>Score stability against the previous run</h2>
{
        f"<table><tr><th>figure</th><th>value</th><th>threshold</th><th>status</th><th>rows</th></tr>{stability}</table>"
        if stability
        else "<p>Only one run so far.</p>"
    }
</body></html>
"""


def write_report(report: MonitoringReport, path: Path, generated_at: datetime) -> Path:
    """Write :func:`render` to ``path`` atomically (readers see the old report or the new)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        tmp.write_text(render(report, generated_at), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
