"""Estimated against realized churn performance on the synthetic CRM, with and without a planted
covariate shift: the ``synthetic.cbpe_*`` keys of ``results/quality.json``.

    .venv/bin/python benchmarks/cbpe_synthetic.py                 # both worlds, default size
    .venv/bin/python benchmarks/cbpe_synthetic.py --customers 3000 --output /tmp/cbpe.json

Per world, in a temporary ``CRM_HOME``: the pipeline's own assets up to ``models/churn`` run in
process (generate, ingest, dbt, checks, training, registration), as ``make run`` runs them. Then
a scoring run for the validation as-of date, whose labels are in: the champion scores it
(``ml.models.churn.pipeline.score``), ``serving.customer_scores`` is published, and
``ml.models.churn.monitoring.monitor_performance`` writes the estimates and, the labels being
there, the realized figures to ``monitoring.model_performance``; the figures are read back from
that table. The shifted world is the same seed with ``CRM_SYNTHETIC_COVARIATE_SHIFT`` (0.8 of the
last nine months' sign-ups on a monthly basic plan with lower engagement).

Run alone it merges its keys into ``results/quality.json`` and touches nothing else there;
``benchmarks/quality.py`` calls :func:`synthetic_cbpe` in its synthetic stage.

    .venv/bin/python benchmarks/cbpe_synthetic.py --calibration-seeds 7 42 123

runs the plain world of each seed twice, with the churn model's calibration as the pipeline
chooses it (``auto``: a Platt map fitted on the held-out newest training date is kept only if it
lowers the Brier score there) and with that map always kept (``sigmoid``), and writes
``results/cbpe-calibration.json``: whether CBPE's error comes from the probabilities' calibration.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml.core.settings import Settings  # noqa: E402

RESULTS_JSON = ROOT / "benchmarks" / "results" / "quality.json"
SHIFT = 0.8
TARGET_PLAIN = 0.02
TARGET_SHIFT = 0.03


@contextlib.contextmanager
def _environment(values: dict[str, str | None]) -> Iterator[None]:
    before = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _dbt_manifest() -> None:
    from orchestration.resources import DBT_PROJECT_DIR

    if not (DBT_PROJECT_DIR / "target" / "manifest.json").is_file():
        dbt = Path(sys.executable).parent / "dbt"
        subprocess.run(
            [str(dbt), "parse", "--profiles-dir", ".", "--quiet"], cwd=DBT_PROJECT_DIR, check=True
        )


def _train(home: Path, calibration: str | None) -> None:
    """The pipeline's assets up to ``models/churn``, in process, in ``home``; ``calibration``
    overrides the churn asset's calibration setting (its default when None)."""
    import dagster as dg

    from orchestration.definitions import defs as load_defs
    from orchestration.defs.transform.assets import crm_dbt_models

    definitions = load_defs()
    job = definitions.resolve_job_def("retraining_job")
    # All of dbt: a dbt test of a selected model can read a model left out (relationships).
    selection = (
        dg.AssetSelection.assets(["models", "churn"]) | dg.AssetSelection.assets(crm_dbt_models)
    ).upstream()
    keys = selection.resolve(definitions.resolve_asset_graph())
    log = home / "run.log"
    with (
        dg.DagsterInstance.ephemeral() as instance,
        log.open("w") as sink,
        contextlib.redirect_stdout(sink),
        contextlib.redirect_stderr(sink),
    ):
        result = job.execute_in_process(
            instance=instance,
            asset_selection=list(keys),
            run_config={
                "loggers": {"console": {"config": {"log_level": "WARNING"}}},
                **(
                    {}
                    if calibration is None
                    else {"ops": {"models__churn": {"config": {"calibration": calibration}}}}
                ),
            },
            raise_on_error=False,
        )
    if not result.success:
        raise RuntimeError(f"the pipeline failed on the synthetic CRM:\n{log.read_text()}")


def _score_and_monitor(settings: Settings) -> dict[str, Any]:
    """A scoring run of the validation date, then the monitoring pass; figures from the table."""
    from ml.core.warehouse import connect
    from ml.data.features import read_scoring_features
    from ml.modelling.registry import load_champion, reference_probabilities
    from ml.models.churn import pipeline as churn
    from ml.models.churn.data import read_labelled_as_of_dates
    from ml.models.churn.monitoring import monitor_performance
    from ml.serving.tables import publish, serving_table
    from orchestration.resources import registry

    model, version = load_champion(registry(settings), churn.MODEL_NAME)
    with connect(settings.warehouse_path, threads=settings.threads) as con:
        as_of = read_labelled_as_of_dates(con)[-1]  # the split's validation date
        features = read_scoring_features(con, as_of)
        now = datetime.now(UTC).replace(tzinfo=None)
        scores = churn.score(model, version, features, now)
        publish(con, serving_table("customer_scores"), scores, settings.exports_dir)
        started = time.perf_counter()
        run = monitor_performance(
            con,
            settings.capacity_top_k,
            now,
            reference=reference_probabilities(registry(settings), churn.MODEL_NAME),
        )
        seconds = time.perf_counter() - started
    figures = run.estimates.set_index(["segment", "metric"])

    def pair(metric: str, segment: str = "all") -> dict[str, float]:
        row = figures.loc[(segment, metric)]
        return {
            "estimated": round(float(row["estimated"]), 4),
            "realized": round(float(row["realized"]), 4),
            "interval": [
                round(float(row["interval_low"]), 4),
                round(float(row["interval_high"]), 4),
            ],
        }

    auc = pair("roc_auc")
    segments = figures.xs("roc_auc", level="metric").dropna(subset=["realized"])
    errors = (segments["estimated"] - segments["realized"]).abs()
    return {
        "as_of": str(as_of),
        "rows": len(features),
        "model_version": version,
        "calibration": model.calibration_report.method,
        "calibration_brier": model.calibration_report.as_metrics(),
        "reference_calibration": (
            None
            if model.reference_calibrator is None
            else {
                "coef": round(model.reference_calibrator.coef, 4),
                "intercept": round(model.reference_calibrator.intercept, 4),
            }
        ),
        "roc_auc": auc,
        "auc_abs_error": round(abs(auc["estimated"] - auc["realized"]), 4),
        "precision_at_capacity": pair("precision_at_capacity"),
        "positive_rate": pair("positive_rate"),
        "brier": pair("brier"),
        "segments": len(segments),
        "segment_auc_abs_error_max": round(float(errors.max()), 4),
        "segment_auc_abs_error_median": round(float(errors.median()), 4),
        "monitoring_seconds": round(seconds, 2),
    }


def world(
    customers: int | None,
    threads: int,
    shift: float,
    seed: int | None = None,
    calibration: str | None = None,
) -> dict[str, Any]:
    """Train on one synthetic world, score its validation date, estimate and realize."""
    _dbt_manifest()
    with (
        tempfile.TemporaryDirectory(prefix="crm-cbpe-") as home,
        _environment(
            {
                "CRM_HOME": home,
                "CRM_SOURCE": None,
                "CRM_SYNTHETIC_SEED": None if seed is None else str(seed),
                "CRM_SYNTHETIC_CUSTOMERS": None if customers is None else str(customers),
                "CRM_SYNTHETIC_COVARIATE_SHIFT": str(shift),
                "CRM_THREADS": str(threads),
            }
        ),
    ):
        _train(Path(home), calibration)
        settings = Settings()
        return {
            "customers": settings.synthetic_customers,
            "seed": settings.synthetic_seed,
            "covariate_shift": shift,
        } | (_score_and_monitor(settings))


def synthetic_cbpe(
    customers: int | None, threads: int, seed: int | None = None, calibration: str | None = None
) -> dict[str, Any]:
    """The ``cbpe_*`` keys of the synthetic section of ``quality.json``."""
    plain = world(customers, threads, 0.0, seed, calibration)
    shifted = world(customers, threads, SHIFT, seed, calibration)
    return {
        "cbpe_auc_abs_error": plain["auc_abs_error"],
        "cbpe_auc_abs_error_shift": shifted["auc_abs_error"],
        "cbpe_target": f"|estimated - realized| ROC AUC <= {TARGET_PLAIN} (plain), "
        f"<= {TARGET_SHIFT} (covariate shift {SHIFT})",
        "cbpe_met": plain["auc_abs_error"] <= TARGET_PLAIN
        and shifted["auc_abs_error"] <= TARGET_SHIFT,
        "cbpe": {"plain": plain, "shift": shifted},
    }


CALIBRATIONS = ("auto", "sigmoid")


def calibration_seeds(seeds: list[int], customers: int | None, threads: int) -> dict[str, Any]:
    """The plain world of each seed under each of :data:`CALIBRATIONS`: estimated and realized
    ROC AUC, and the calibration the churn model kept."""
    runs = []
    for seed in seeds:
        for calibration in CALIBRATIONS:
            found = world(customers, threads, 0.0, seed, calibration)
            runs.append(
                {
                    "seed": seed,
                    "calibration_setting": calibration,
                    **{
                        key: found[key]
                        for key in (
                            "calibration",
                            "calibration_brier",
                            "roc_auc",
                            "auc_abs_error",
                            "positive_rate",
                            "brier",
                        )
                    },
                }
            )
    return {"measured_at": datetime.now(UTC).isoformat(timespec="seconds"), "runs": runs}


def speed(rows: int = 1_000_000) -> dict[str, Any]:
    """Seconds of the estimation at ``rows`` rows: the core, with segments, and a whole churn
    monitoring pass (DuckDB joins of scores, features, segments, labels; the table written)."""
    import duckdb
    import numpy as np
    import pandas as pd

    from ml.modelling.performance import capacity_mask, estimate, estimate_segments
    from ml.models.churn.monitoring import monitor_performance

    rng = np.random.default_rng(0)
    p = rng.beta(1.3, 6.0, rows)
    frame = pd.DataFrame(
        {
            "customer_id": np.char.add("c", np.arange(rows).astype(str)),
            "as_of_date": pd.Timestamp("2026-09-01").date(),
            "churn_probability": p,
            "model_version": "1",
            "plan": rng.choice(["basic", "standard", "premium"], rows),
            "contract_type": rng.choice(["month-to-month", "one-year", "two-year"], rows),
            "country_code": rng.choice(["DE", "FR", "NL", "AT", "unknown"], rows),
            "segment_name": rng.choice(["a", "b", "c", "d", "e"], rows),
            "churned": rng.random(rows) < p,
            "label_available": True,
        }
    )
    out: dict[str, Any] = {"rows": rows}
    started = time.perf_counter()
    estimate(p, capacity_mask(p, 500), labels=frame["churned"].to_numpy())
    out["estimate_seconds"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    segments = estimate_segments(
        frame.rename(columns={"churn_probability": "probability", "churned": "label"}),
        ["plan", "contract_type", "country_code", "segment_name"],
        500,
        label_column="label",
    )
    out["segments"] = int(segments["segment"].nunique())
    out["estimate_segments_seconds"] = round(time.perf_counter() - started, 2)
    with duckdb.connect() as con:
        con.execute("create schema serving; create schema marts")
        con.execute(
            "create table serving.customer_scores as select customer_id, as_of_date, "
            "churn_probability, model_version from frame"
        )
        con.execute(
            "create table marts.customer_features as select customer_id, as_of_date, plan, "
            "contract_type, country_code from frame"
        )
        con.execute(
            "create table serving.customer_segments as select customer_id, as_of_date, "
            "segment_name from frame"
        )
        con.execute(
            "create table marts.churn_labels as select customer_id, as_of_date, churned, "
            "label_available from frame"
        )
        started = time.perf_counter()
        monitor_performance(con, 500, datetime.now(UTC).replace(tzinfo=None))
        out["monitoring_pass_seconds"] = round(time.perf_counter() - started, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=None, help="synthetic persons")
    parser.add_argument("--threads", type=int, default=2, help="CatBoost threads")
    parser.add_argument("--output", type=Path, default=None, help="JSON path (default: merge)")
    parser.add_argument("--speed", action="store_true", help="only time 1M rows (cbpe_speed)")
    parser.add_argument("--seed", type=int, default=None, help="generator seed (default 42)")
    parser.add_argument(
        "--calibration",
        choices=("auto", "none", "sigmoid", "isotonic"),
        default=None,
        help="the churn model's calibration setting (default: the asset's)",
    )
    parser.add_argument(
        "--calibration-seeds",
        type=int,
        nargs="+",
        default=None,
        help="only compare the calibration settings on these seeds (cbpe-calibration.json)",
    )
    args = parser.parse_args()
    if args.calibration_seeds is not None:
        out = args.output or RESULTS_JSON.with_name("cbpe-calibration.json")
        runs: list[dict[str, Any]] = []
        for seed in args.calibration_seeds:  # written after each seed: a long run keeps its part
            found = calibration_seeds([seed], args.customers, args.threads)
            runs += found["runs"]
            out.write_text(json.dumps(found | {"runs": runs}, indent=2) + "\n")
            print(json.dumps(found["runs"], indent=2), flush=True)
        return
    figures = (
        {"cbpe_speed": speed()}
        if args.speed
        else synthetic_cbpe(args.customers, args.threads, args.seed, args.calibration)
        | {"cbpe_speed": speed()}
    )
    if args.output is not None:
        args.output.write_text(json.dumps(figures, indent=2) + "\n")
        print(json.dumps(figures, indent=2))
        return
    report = json.loads(RESULTS_JSON.read_text())
    report.setdefault("synthetic", {}).update(figures)
    RESULTS_JSON.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps(figures, indent=2))
    print(f"merged the cbpe keys into {RESULTS_JSON}")


if __name__ == "__main__":
    main()
