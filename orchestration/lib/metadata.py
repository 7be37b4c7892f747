"""How the outcome of an ml/ step is shown on its asset in the Dagster UI."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import pandas as pd

from expectations.runner import SuiteResult
from ml.modelling.model_card import markdown_table
from ml.modelling.performance_table import TABLE as PERFORMANCE_TABLE
from ml.modelling.performance_table import MonitoringPass
from ml.modelling.registry import Registration, Training
from ml.serving.tables import Published

# Training assets carry this tag; the scoring job selects everything else.
TRAINING_TAG = {"crm/role": "training"}


def training_metadata(
    training: Training, registration: Registration
) -> dict[str, dg.RawMetadataValue]:
    """Headline figures, tables, plots, the registry's decision and the model card of a run."""
    md, html = registration.model_card
    return {
        **training.summary,
        **{name: dg.MetadataValue.md(text) for name, text in training.tables.items()},
        **{p.stem: dg.MetadataValue.path(str(p)) for p in training.candidate.plots},
        "model_version": registration.model_version,
        "alias": registration.alias,
        "promotion": registration.reason,
        "mlflow_run_id": registration.run_id,
        "model_card": dg.MetadataValue.path(str(html)),
        "model_card_markdown": dg.MetadataValue.path(str(md)),
    }


def published_metadata(
    published: Published,
    rows: pd.DataFrame,
    ranked_by: str | None = None,
    **extra: dg.RawMetadataValue,
) -> dict[str, dg.RawMetadataValue]:
    """Rows, as-of date, model version and a glimpse of a published serving table (its highest
    rows by ``ranked_by``, by default the table's own ranking column)."""
    table = published.table
    ranked_by = ranked_by or table.ranked_by
    metadata: dict[str, dg.RawMetadataValue] = {
        "dagster/row_count": published.rows,
        "table": table.qualified_name,
        "path": dg.MetadataValue.path(str(published.parquet)),
    }
    if published.as_of_date is not None:
        metadata["as_of_date"] = str(published.as_of_date)
    if "model_version" in rows.columns and len(rows):
        metadata["model_version"] = str(rows["model_version"].iloc[0])
    if table.counted_by is not None:
        counts = rows[table.counted_by].value_counts().sort_index()
        metadata[f"rows_by_{table.counted_by}"] = dg.MetadataValue.json(
            {str(k): int(v) for k, v in counts.items()}
        )
    if ranked_by is not None and len(rows):
        top = rows.nlargest(5, ranked_by)
        metadata[f"highest_{ranked_by}"] = dg.MetadataValue.md(markdown_table(top))
    return {**metadata, **extra}


def skipped(reason: str) -> dg.MaterializeResult:
    """The result of a step with nothing to do (no leads, no campaign tests)."""
    return dg.MaterializeResult(metadata={"skipped": True, "reason": reason})


def suite_metadata(result: SuiteResult) -> dict[str, dg.MetadataValue]:
    """How a Great Expectations result is shown on an asset check."""
    failed = "\n".join(
        f"| {f.expectation} | {f.column or ''} | {f.unexpected_count} | {f.observed} |"
        for f in result.failed
    )
    table = "| expectation | column | unexpected | observed |\n|---|---|---|---|\n" + failed
    return {
        "suite": dg.MetadataValue.text(result.suite_name),
        "evaluated": dg.MetadataValue.int(result.evaluated),
        "failed": dg.MetadataValue.int(len(result.failed)),
        "failures": dg.MetadataValue.md(table if result.failed else "none"),
        "seconds": dg.MetadataValue.float(round(result.seconds, 2)),
    }


def counts(values: pd.Series) -> dg.MetadataValue:
    """Value counts of a column as JSON."""
    return dg.MetadataValue.json({str(k): int(v) for k, v in values.value_counts().items()})


def table_of(rows: Mapping[str, int], key: str, value: str) -> dg.MetadataValue:
    """A mapping as a two-column Markdown table."""
    return dg.MetadataValue.md(
        markdown_table(pd.DataFrame(sorted(rows.items()), columns=[key, value])) if rows else "none"
    )


def _figure(value: float | None) -> float | dg.MetadataValue:
    return dg.MetadataValue.null() if value is None else value


def performance_metadata(
    run: MonitoringPass,
    capacity: int,
    thresholds: Mapping[str, float | None],
    realized: Mapping[str, object] | None,
    report: Path,
) -> dict[str, dg.RawMetadataValue]:
    """What a performance monitoring asset shows: the newest run's estimates, the newest
    realized figure, the thresholds its checks and the retraining sensor compare with, and the
    link to the HTML report."""
    return {
        "model_version": run.version or "none",
        "as_of_date": str(run.as_of_date),
        "estimated_roc_auc": _figure(run.figure("roc_auc")),
        "estimated_roc_auc_low": _figure(run.figure("roc_auc", column="interval_low")),
        "estimated_roc_auc_high": _figure(run.figure("roc_auc", column="interval_high")),
        "estimated_precision_at_capacity": _figure(run.figure("precision_at_capacity")),
        "estimated_positive_rate": _figure(run.figure("positive_rate")),
        "realized_as_of_date": str(realized["as_of_date"]) if realized else "none yet",
        "realized_roc_auc": _figure(float(realized["realized"]) if realized else None),  # type: ignore[arg-type]
        **{name: _figure(value) for name, value in thresholds.items()},
        "capacity": capacity,
        "segments": int(run.estimates["segment"].nunique()) if len(run.estimates) else 0,
        "realized_runs": ", ".join(f"v{v} {d}" for v, d in run.realized_runs) or "none",
        "table": PERFORMANCE_TABLE,
        "report": dg.MetadataValue.path(str(report)),
    }
