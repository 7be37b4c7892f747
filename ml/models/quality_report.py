"""How good the models are on a team's own data: ``crm-signals evaluate <folder>``.

Every model that trains on one flat table (lead scoring, churn from a customer snapshot) is
cross-validated on the folder's export exactly as the pipeline trains it (tuning, calibration,
attributes, mapping), next to the simple baseline (``ml.modelling.baseline``) on the same folds:

* protocol: out of time when every row has a date (expanding window: each fold trains on the
  older rows and is judged on the next slice, as the model is used), else stratified k-fold;
* per fold ROC AUC, PR AUC and Brier score of the model and the baseline, their means with a 95%
  interval (t over folds: folds share rows, so the interval is a guide, not a test), and the
  model's gain over the baseline per fold;
* a calibration table of the out-of-fold predictions (deciles: predicted against observed);
* the features the fold models lean on most.

Models that need the event tables (churn from events, CLV, uplift, next product) are judged on an
out-of-time holdout by every pipeline run (their model cards); the report lists them with what
they need. Nothing is written to the warehouse: the folder is loaded into an in-memory DuckDB.
"""

from __future__ import annotations

import html
import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from scipy.stats import t as student_t
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold, TimeSeriesSplit

from ml.data.contract import CUSTOMER_SNAPSHOT_TABLE, LEADS_TABLE, Table
from ml.data.flat_tables import FlatTable, read_flat_table
from ml.data.sources import model_status, table_rows
from ml.modelling.baseline import lr_inputs, one_hot_logistic_regression
from ml.modelling.boosting import with_settings
from ml.modelling.flat_outcome import (
    FlatModelConfig,
    FlatOutcomeModel,
    feature_kinds,
    labels_of,
    time_ordered,
    train_flat_model,
)
from ml.models.catalog import MODELS
from ml.models.churn import snapshot
from ml.models.lead_scoring.model import LeadConfig, LeadModel, lead_training_frame
from ml.models.lead_scoring.pipeline import MODEL_NAME as LEAD_MODEL_NAME
from ml.models.source_check import load_source

METRICS: tuple[str, ...] = ("roc_auc", "pr_auc", "brier")
CALIBRATION_BINS = 10


@dataclass(frozen=True)
class FlatModelSpec:
    """A model that trains on one flat table, as ``evaluate`` runs it.

    Attributes:
        name: The model's registered name.
        table: Its flat table.
        model_class: Its model class (the outcome's wording and label).
        config: Its training settings, as the pipeline uses them.
        training_rows: The table's rows -> the labelled training rows.
    """

    name: str
    table: Table
    model_class: type[FlatOutcomeModel]
    config: FlatModelConfig
    training_rows: Callable[[pd.DataFrame], pd.DataFrame]


def flat_model_specs(threads: int) -> tuple[FlatModelSpec, ...]:
    """The flat-table models with the pipeline's settings and ``threads`` CatBoost threads."""
    return (
        FlatModelSpec(
            LEAD_MODEL_NAME,
            LEADS_TABLE,
            LeadModel,
            with_settings(LeadConfig(), thread_count=threads),
            lambda rows: lead_training_frame(rows)[0],
        ),
        FlatModelSpec(
            snapshot.MODEL_NAME,
            CUSTOMER_SNAPSHOT_TABLE,
            snapshot.ChurnSnapshotModel,
            with_settings(snapshot.SnapshotConfig(), thread_count=threads),
            lambda rows: snapshot.split_snapshot(rows)[0],
        ),
    )


@dataclass(frozen=True)
class Interval:
    """Mean over folds with a 95% t-interval."""

    mean: float
    low: float
    high: float
    folds: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Interval:
        array = np.asarray(values, dtype=float)
        mean = float(array.mean())
        if len(array) < 2:
            return cls(mean, mean, mean, tuple(array.round(4)))
        half = float(student_t.ppf(0.975, len(array) - 1) * array.std(ddof=1) / np.sqrt(len(array)))
        return cls(mean, mean - half, mean + half, tuple(float(v) for v in array.round(4)))

    def text(self) -> str:
        return f"{self.mean:.4f} [{self.low:.4f}, {self.high:.4f}]"


@dataclass(frozen=True)
class ModelEvaluation:
    """One model's cross-validation on the folder's data.

    Attributes:
        model: Registered model name.
        protocol: How the folds were made, in words.
        rows: Labelled rows evaluated; ``positive_rate`` their outcome rate.
        model_scores: Metric -> interval over folds, for the model.
        baseline_scores: The same for the baseline.
        gain: Metric -> interval of model minus baseline, fold by fold.
        calibration: Out-of-fold deciles: ``bin``, ``n``, ``mean_predicted``, ``observed_rate``.
        top_features: ``(label, share of importance)``, averaged over the fold models.
        seconds: Wall time.
    """

    model: str
    protocol: str
    rows: int
    positive_rate: float
    model_scores: dict[str, Interval]
    baseline_scores: dict[str, Interval]
    gain: dict[str, Interval]
    calibration: list[dict[str, float]]
    top_features: list[tuple[str, float]]
    seconds: float


@dataclass(frozen=True)
class QualityReport:
    """What ``evaluate`` found: per model an evaluation or why there is none."""

    source: str
    measured_at: str
    evaluations: list[ModelEvaluation]
    not_evaluated: list[tuple[str, str]]
    loads: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _folds(
    frame: pd.DataFrame, y: np.ndarray, spec: FlatModelSpec, folds: int, seed: int
) -> tuple[str, list[tuple[np.ndarray, np.ndarray]]]:
    date = spec.model_class.outcome.date_column
    if date is not None and time_ordered(frame, spec.model_class.outcome):
        order = np.argsort(pd.to_datetime(frame[date]).to_numpy(), kind="stable")
        splits = [
            (order[train], order[test])
            for train, test in TimeSeriesSplit(n_splits=folds).split(order)
        ]
        return (
            f"out of time by {date}: {folds} expanding-window folds (each trains on all older "
            "rows, judged on the next slice)",
            splits,
        )
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return (
        f"stratified {folds}-fold cross-validation (no complete date column for an "
        "out-of-time split)",
        list(splitter.split(np.zeros(len(y)), y)),
    )


def _scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
    }


def _calibration_table(y: np.ndarray, p: np.ndarray) -> list[dict[str, float]]:
    bins = pd.qcut(pd.Series(p).rank(method="first"), CALIBRATION_BINS, labels=False)
    table = (
        pd.DataFrame({"bin": bins + 1, "p": p, "y": y})
        .groupby("bin")
        .agg(n=("y", "size"), mean_predicted=("p", "mean"), observed_rate=("y", "mean"))
        .reset_index()
    )
    return [
        {
            "bin": int(row["bin"]),
            "n": int(row["n"]),
            "mean_predicted": round(float(row["mean_predicted"]), 4),
            "observed_rate": round(float(row["observed_rate"]), 4),
        }
        for row in table.to_dict("records")
    ]


def cross_validate(
    spec: FlatModelSpec,
    table: FlatTable,
    folds: int = 5,
    seed: int = 0,
    say: Callable[[str], None] = print,
) -> ModelEvaluation:
    """Cross-validate ``spec``'s model and the baseline on the same folds of ``table``.

    Raises:
        ValueError: Too few labelled rows or a single class (the message says which).
    """
    started = datetime.now(UTC)
    training = spec.training_rows(table.rows).reset_index(drop=True)
    outcome = spec.model_class.outcome
    y = labels_of(training, outcome)
    if len(training) < 10 * folds or len(np.unique(y)) < 2:
        raise ValueError(
            f"{spec.name}: {len(training)} labelled rows with {int(y.sum())} positive: too few "
            f"for {folds} folds"
        )
    protocol, splits = _folds(training, y, spec, folds, seed)
    per_fold: dict[str, list[dict[str, float]]] = {"model": [], "baseline": []}
    out_of_fold = np.full(len(y), np.nan)
    importance: list[pd.Series] = []
    labels: dict[str, str] = {}
    for number, (fit_idx, test_idx) in enumerate(splits, start=1):
        fit = training.iloc[fit_idx].reset_index(drop=True)
        test = training.iloc[test_idx].reset_index(drop=True)
        model = train_flat_model(
            spec.model_class, fit, spec.config, table.labels, table.missing_meanings
        )
        proba = model.predict_proba(test)
        out_of_fold[test_idx] = proba
        per_fold["model"].append(_scores(y[test_idx], proba))
        kinds = feature_kinds(fit, outcome, spec.config.use_attributes)
        categorical = [n for n, k in kinds.items() if k != "number"]
        numeric = [n for n, k in kinds.items() if k == "number"]
        baseline = one_hot_logistic_regression(categorical, numeric)
        baseline.fit(lr_inputs(fit, categorical, numeric), y[fit_idx])
        baseline_proba = baseline.predict_proba(lr_inputs(test, categorical, numeric))[:, 1]
        per_fold["baseline"].append(_scores(y[test_idx], baseline_proba))
        shares = pd.Series(model.feature_importance(), dtype=float)
        importance.append(shares / shares.sum())
        labels |= {str(name): model.label(str(name)) for name in shares.index}
        say(
            f"  {spec.name} fold {number}/{len(splits)}: ROC AUC {per_fold['model'][-1]['roc_auc']:.4f}"
            f" (baseline {per_fold['baseline'][-1]['roc_auc']:.4f})"
        )
    judged = ~np.isnan(out_of_fold)
    mean_importance = pd.concat(importance, axis=1).fillna(0.0).mean(axis=1)
    top = mean_importance.sort_values(ascending=False).head(10)

    def interval(who: str, metric: str) -> Interval:
        return Interval.of([fold[metric] for fold in per_fold[who]])

    return ModelEvaluation(
        model=spec.name,
        protocol=protocol,
        rows=len(training),
        positive_rate=round(float(y.mean()), 4),
        model_scores={m: interval("model", m) for m in METRICS},
        baseline_scores={m: interval("baseline", m) for m in METRICS},
        gain={
            m: Interval.of(
                [a[m] - b[m] for a, b in zip(per_fold["model"], per_fold["baseline"], strict=True)]
            )
            for m in METRICS
        },
        calibration=_calibration_table(y[judged], out_of_fold[judged]),
        top_features=[(labels[str(n)], round(float(v), 4)) for n, v in top.items()],
        seconds=round((datetime.now(UTC) - started).total_seconds(), 1),
    )


def evaluate(
    source_dir: Path,
    mapping_path: Path | None,
    folds: int = 5,
    threads: int = 2,
    say: Callable[[str], None] = print,
) -> QualityReport:
    """Cross-validate every flat-table model the folder has data for (see the module docstring)."""
    with tempfile.TemporaryDirectory() as scratch, duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        loads = load_source(con, Path(source_dir), mapping_path, Path(scratch))
        rows = table_rows(con)
        status = dict(model_status(MODELS, rows))
        evaluations, not_evaluated = [], []
        flat = {spec.name: spec for spec in flat_model_specs(threads)}
        for needs in MODELS:
            spec = flat.get(needs.model)
            if status[needs.model] != "runs":
                not_evaluated.append((needs.model, status[needs.model]))
            elif spec is None:
                not_evaluated.append(
                    (
                        needs.model,
                        "judged out of time by every pipeline run (crm-signals run; its model "
                        "card), not by evaluate",
                    )
                )
            else:
                say(f"{spec.name}: cross-validating on {rows[spec.table.name]} rows")
                try:
                    table = read_flat_table(con, spec.table)
                    evaluations.append(cross_validate(spec, table, folds, say=say))
                except ValueError as error:
                    not_evaluated.append((needs.model, str(error)))
    return QualityReport(
        source=Path(source_dir).name,
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        evaluations=evaluations,
        not_evaluated=not_evaluated,
        loads=loads,
    )


def report_text(report: QualityReport) -> str:
    """The report for a terminal."""
    lines = [f"Evaluation of {report.source} ({report.measured_at})"]
    for e in report.evaluations:
        lines += [
            "",
            f"{e.model}: {e.rows} labelled rows, {e.positive_rate:.1%} positive; {e.protocol}",
            f"  {'metric':<8} {'model':<28} {'baseline (logistic regression)':<32} gain",
        ]
        for m in METRICS:
            lines.append(
                f"  {m:<8} {e.model_scores[m].text():<28} {e.baseline_scores[m].text():<32} "
                f"{e.gain[m].mean:+.4f}"
            )
        lines.append("  top features: " + ", ".join(f"{n} {v:.0%}" for n, v in e.top_features[:5]))
    if report.not_evaluated:
        lines += ["", "not evaluated:"]
        lines += [f"  {model}: {why}" for model, why in report.not_evaluated]
    return "\n".join(lines)


def _table_html(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def report_html(report: QualityReport) -> str:
    """The report as one self-contained HTML page."""
    parts = [
        "<!doctype html><meta charset='utf-8'><title>CRM Signals evaluation</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;"
        "padding:.2em .6em;text-align:right}th{background:#f3f3f3}</style>",
        f"<h1>How good the models are on {html.escape(report.source)}</h1>",
        f"<p>Measured {html.escape(report.measured_at)}. Intervals: 95% t-intervals over folds "
        "(folds share rows, so read them as a guide). Baseline: one-hot logistic regression on "
        "the same features and folds.</p>",
    ]
    for e in report.evaluations:
        parts += [
            f"<h2>{html.escape(e.model)}</h2>",
            f"<p>{e.rows} labelled rows, {e.positive_rate:.1%} positive. Protocol: "
            f"{html.escape(e.protocol)}. {e.seconds:.0f} s.</p>",
            _table_html(
                ["metric", "model", "baseline", "model - baseline"],
                [
                    [m, e.model_scores[m].text(), e.baseline_scores[m].text(), e.gain[m].text()]
                    for m in METRICS
                ],
            ),
            "<h3>Calibration (out-of-fold deciles)</h3>",
            _table_html(
                ["decile", "rows", "mean predicted", "observed rate"],
                [list(row.values()) for row in e.calibration],
            ),
            "<h3>Top features (share of importance, mean over folds)</h3>",
            _table_html(["feature", "share"], [[n, f"{v:.1%}"] for n, v in e.top_features]),
        ]
    if report.not_evaluated:
        parts += [
            "<h2>Not evaluated</h2>",
            _table_html(["model", "why"], report.not_evaluated),
        ]
    if report.loads:
        parts += [
            "<h2>What was loaded</h2>",
            _table_html(
                ["table", "file", "rows read", "loaded", "quarantined", "problems"],
                [
                    [
                        load["table"],
                        load.get("file", ""),
                        load.get("rows_read", ""),
                        load.get("rows_loaded", ""),
                        load.get("rows_quarantined", ""),
                        "; ".join(load.get("problems", [])) or load.get("error", ""),
                    ]
                    for load in report.loads
                ],
            ),
        ]
    return "\n".join(parts)


def write_report(report: QualityReport, directory: Path) -> tuple[Path, Path]:
    """``evaluation.json`` and ``evaluation.html`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path, html_path = directory / "evaluation.json", directory / "evaluation.html"
    json_path.write_text(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
    html_path.write_text(report_html(report))
    return json_path, html_path
