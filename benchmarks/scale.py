"""The churn pipeline at scale: wall time and peak memory per stage, and the scaling curve.

    make bench-scale                                    # 1M customers, curve 100k / 300k / 1M
    make bench-scale BENCH_ARGS="--customers 100000"    # one smaller size (curve below it)
    CRM_BENCH_CUSTOMERS=300000 make bench-scale         # the same through the environment
    .venv/bin/python benchmarks/scale.py --customers 500 --no-curve --out /tmp/s.json  # smoke

Each size runs in a fresh process and a fresh CRM_HOME (under /tmp): the synthetic CRM is
generated, then the real Dagster job runs in process, as ``make run`` does, restricted to the
churn path (every raw table, the dbt models the churn assets need with their tests, the GX
checks, training, scoring with explanations, the Parquet export and the drift report); with
``--suite`` the whole retraining job (every model) runs instead.

Stages are Dagster steps: generation (source/crm_files), ingest (raw_tables), feature_build
(dbt build), checks (GX on raw tables and the blocking customer_features gate), training
(models/churn), scoring (serving/customer_scores: read, score, explain, validate, publish to
DuckDB and Parquet) and drift (monitoring/churn_drift). Seconds per stage come from the
Dagster event log. Peak memory per stage is the resident set of the pipeline process (its kernel
high-water mark VmHWM, reset through /proc/self/clear_refs every 0.2 s, so no spike is missed)
plus the peak of every child process alive in the interval (dbt runs as one), attributed to the
step that was running.

After the job, three measurements on the same warehouse and champion: model apply alone
(``predict_proba`` from the feature frame, and from a prebuilt CatBoost Pool), scoring with
explanations alone (``score_customers``: no database), and the drift verdict on samples of 20k
rows against the verdict on every row (Evidently both times).

Results: ``benchmarks/results/scale-<customers>.json`` per size and ``scale.json`` for the
largest size with the curve. Every figure is measured by the run; nothing is filled in by hand.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_CUSTOMERS = 1_000_000
CURVE_SIZES = (100_000, 300_000)
CURVE_MAX_GROWTH = 0.20  # time per customer may grow by at most this much over the curve
SAMPLE_SECONDS = 0.2
DRIFT_SAMPLE_ROWS = 20_000  # ml.modelling.drift.MAX_ROWS: the drift asset's sample (taken in SQL)
# The default synthetic world writes about 188 events per person (two years of history); the
# issue's 1M customers and about 50M events is 50 per person, so the benchmark keeps this share.
EVENT_SHARE = 0.266

# Dagster step key -> stage. Steps not listed (the rest of the suite with --suite) count as
# "suite"; their time is part of end_to_end_s.
STAGE_OF_STEP = {
    "source__crm_files": "generation",
    "raw_tables": "ingest",
    "raw__leads": "ingest",
    "crm_dbt_models": "feature_build",
    "raw_contract_checks": "checks",
    "marts__customer_features_customer_features_expectations": "checks",
    "models__churn": "training",
    # Scoring and publishing (DuckDB and the Parquet export) are one step since the serving-table
    # registry: ml.serving.tables.publish writes both.
    "serving__customer_scores": "scoring",
    "monitoring__churn_drift": "drift",
}
STAGES = (
    "generation",
    "ingest",
    "feature_build",
    "checks",
    "training",
    "scoring",
    "drift",
)
TARGETS = {
    "end_to_end_s": ("<=", 420.0),
    "peak_rss_gb": ("<=", 8.0),
    "feature_build_s": ("<=", 120.0),
    "incremental_day_s": ("<=", 90.0),
    "incremental_parity": ("==", True),
    "scoring_with_explanations_s": ("<=", 30.0),
    "model_apply_rows_per_s": (">=", 1_000_000.0),
    "drift_s": ("<=", 30.0),
    "drift_share_difference": ("<=", 0.02),
}
_GB = 2**30


# --------------------------------------------------------------------------------------------
# Memory: /proc, no extra dependency (psutil is not in the environment on Linux)
# --------------------------------------------------------------------------------------------


def _status_kb(pid: int | str, field_name: str) -> int:
    """A ``kB`` field of /proc/<pid>/status (0 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as children:
                found += [int(c) for c in children.read().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def _descendants(root: int) -> list[int]:
    """Every process below ``root`` (dbt and whatever it starts)."""
    found, todo = [], [root]
    while todo:
        for child in _children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


class MemorySampler:
    """Peak resident memory of this process and its children, per label (stage).

    Every ``interval`` seconds: this process's VmHWM (then reset to the current RSS, so each
    reading is the true peak of the interval) plus the VmHWM of each child process (its peak so
    far). Where clear_refs cannot be written, the current VmRSS is sampled instead.
    """

    def __init__(self, interval: float = SAMPLE_SECONDS) -> None:
        self.interval = interval
        self.label = "setup"
        self.peaks_kb: dict[str, int] = {}
        # DuckDB spills to <database>.tmp next to the warehouse when a query exceeds its limit.
        self.spill_dir: Path | None = None
        self.spill_peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)
        self.resettable = self._reset()

    def _reset(self) -> bool:
        try:
            with open("/proc/self/clear_refs", "w") as refs:
                refs.write("5")  # reset the peak RSS (VmHWM) to the current RSS
            return True
        except OSError:
            return False

    def sample(self) -> int:
        """Record one reading under the current label and return it (kB)."""
        own = _status_kb("self", "VmHWM" if self.resettable else "VmRSS")
        children = sum(_status_kb(pid, "VmHWM") for pid in _descendants(os.getpid()))
        with self._lock:
            total = own + children
            self.peaks_kb[self.label] = max(self.peaks_kb.get(self.label, 0), total)
            spilled = _folder_bytes(self.spill_dir)
            self.spill_peaks[self.label] = max(self.spill_peaks.get(self.label, 0), spilled)
            if self.resettable:
                self._reset()
        return total

    def switch(self, label: str) -> None:
        """Close the current label with a reading and attribute what follows to ``label``."""
        self.sample()
        with self._lock:
            self.label = label

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def peak_gb(self, label: str) -> float:
        return self.peaks_kb.get(label, 0) / 2**20

    def spill_gb(self, label: str) -> float:
        return self.spill_peaks.get(label, 0) / _GB


def _folder_bytes(folder: Path | None) -> int:
    """Bytes of the files in ``folder`` (0 when it does not exist)."""
    if folder is None:
        return 0
    try:
        return sum(entry.stat().st_size for entry in os.scandir(folder) if entry.is_file())
    except (FileNotFoundError, PermissionError):
        return 0


def _dbt_profile(settings: Any, top: int = 12) -> dict[str, Any]:
    """The slowest dbt nodes of the last build and the time in models against tests."""
    path = settings.dbt_target_dir / "run_results.json"
    if not path.is_file():
        return {}
    results = json.loads(path.read_text())["results"]
    kinds: dict[str, float] = {}
    for result in results:
        kind = result["unique_id"].split(".")[0]
        kinds[kind] = kinds.get(kind, 0.0) + result["execution_time"]
    slowest = sorted(results, key=lambda r: r["execution_time"], reverse=True)[:top]
    return {
        "nodes": len(results),
        "seconds_by_kind": {k: round(v, 1) for k, v in sorted(kinds.items())},
        "slowest": {r["unique_id"].split(".")[-1]: round(r["execution_time"], 1) for r in slowest},
    }


# --------------------------------------------------------------------------------------------
# One size, inside the worker process
# --------------------------------------------------------------------------------------------


@dataclass
class StepClock:
    """Start and end times of the Dagster steps, from the run's events as they happen."""

    console: TextIO
    sampler: MemorySampler
    partial: Path | None = None
    starts: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    peaks_gb: dict[str, float] = field(default_factory=dict)
    spill_gb: dict[str, float] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)

    def on_event(self, entry: Any) -> None:
        event = entry.dagster_event
        if event is None or event.step_key is None:
            return
        step, kind = event.step_key, event.event_type_value
        if kind == "STEP_START":
            self.starts[step] = entry.timestamp
            self.sampler.switch(step)
            self._say(f"{STAGE_OF_STEP.get(step, 'suite'):<13} {step} ...")
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            self.sampler.switch("between steps")
            begun = self.starts.get(step, entry.timestamp)
            self.seconds[step] = self.seconds.get(step, 0.0) + entry.timestamp - begun
            self.peaks_gb[step] = self.sampler.peak_gb(step)
            self.spill_gb[step] = self.sampler.spill_gb(step)
            state = "done" if kind == "STEP_SUCCESS" else "FAILED"
            self.states[step] = state
            self._write_partial()
            self._say(
                f"{STAGE_OF_STEP.get(step, 'suite'):<13} {step} {state} in "
                f"{self.seconds[step]:.1f} s, peak RSS {self.peaks_gb[step]:.2f} GB"
            )

    def _write_partial(self) -> None:
        """The steps finished so far, so a run stopped early still leaves its figures."""
        if self.partial is None:
            return
        steps = {
            step: {
                "stage": STAGE_OF_STEP.get(step, "suite"),
                "s": round(seconds, 2),
                "peak_rss_gb": round(self.peaks_gb[step], 3),
                "state": self.states.get(step, "done"),
            }
            for step, seconds in self.seconds.items()
        }
        self.partial.write_text(json.dumps({"finished_steps": steps}, indent=2) + "\n")

    def _say(self, text: str) -> None:
        self.console.write(f"[{datetime.now():%H:%M:%S}] {text}\n")
        self.console.flush()


def _timed(function: Callable[[], Any]) -> tuple[Any, float]:
    began = time.perf_counter()
    value = function()
    return value, time.perf_counter() - began


def _selection(defs: Any, suite: bool) -> list[Any] | None:
    """Asset keys of the churn path: every raw table, the dbt project, the churn assets."""
    import dagster as dg

    if suite:
        return None
    from orchestration.defs.transform.assets import crm_dbt_models

    graph = defs.resolve_asset_graph()
    # The whole dbt project: a subset would leave relationship tests without their tables.
    wanted = (
        dg.AssetSelection.assets(["monitoring", "churn_drift"]).upstream()
        | dg.AssetSelection.groups("ingest")
        | dg.AssetSelection.assets(crm_dbt_models)
    )
    return sorted(wanted.resolve(graph), key=lambda key: key.to_user_string())


def _after_job_measurements(
    settings: Any, console: TextIO, drift_check: bool, full_drift: bool
) -> dict[str, Any]:
    """Model apply, scoring with explanations and drift sample-vs-full on the built warehouse."""
    from ml.core.warehouse import connect
    from ml.data.features import (
        CATEGORICAL_FEATURES,
        CHURN_FEATURES,
        read_reference_features,
        read_scoring_features,
    )
    from ml.modelling.drift import drift_report
    from ml.modelling.registry import Registry, load_champion
    from ml.models.churn.scoring import score_customers

    def say(text: str) -> None:
        console.write(f"[{datetime.now():%H:%M:%S}] {text}\n")
        console.flush()

    registry = Registry(settings.mlflow_tracking_uri, settings.mlflow_artifacts_dir)
    model, version = load_champion(registry, "churn")
    with connect(settings.warehouse_path, read_only=True, threads=settings.threads) as con:
        current, read_s = _timed(lambda: read_scoring_features(con))
        # The drift asset's sample, taken in SQL, and (for the comparison) every row.
        reference_sample, sample_read_s = _timed(
            lambda: read_reference_features(
                con, model.training_as_of_dates, max_rows=DRIFT_SAMPLE_ROWS
            )
        )
        reference, reference_read_s = (
            _timed(lambda: read_reference_features(con, model.training_as_of_dates))
            if drift_check and full_drift
            else (reference_sample, 0.0)
        )
    rows = len(current)
    out: dict[str, Any] = {"scoring_rows": rows, "read_scoring_features_s": read_s}

    proba, apply_s = _timed(lambda: model.predict_proba(current))
    pool = model.pool(model.prepare(current))
    began = time.perf_counter()
    model.booster.predict(pool, prediction_type="RawFormulaVal")
    pool_s = time.perf_counter() - began
    out["model_apply"] = {
        "rows": rows,
        "predict_proba_from_frame_s": apply_s,
        "rows_per_s_from_frame": rows / apply_s,
        "booster_predict_from_pool_s": pool_s,
        "rows_per_s_from_pool": rows / pool_s,
    }
    say(
        f"model apply: {rows / apply_s:,.0f} rows/s from the frame, "
        f"{rows / pool_s:,.0f} rows/s from a prebuilt Pool"
    )
    del pool, proba  # keep the next measurements' memory honest

    scored, explain_s = _timed(
        lambda: score_customers(model, current, "churn", version, datetime.now(UTC))
    )
    out["scoring_with_explanations"] = {"rows": len(scored), "s": explain_s}
    say(f"scoring with explanations: {len(scored):,} rows in {explain_s:.1f} s")
    del scored

    if not drift_check:
        return out
    out["drift"] = {
        "reference_rows": len(reference),
        "current_rows": rows,
        "read_reference_sample_s": sample_read_s,
        "read_reference_s": reference_read_s,
    }
    with tempfile.TemporaryDirectory(prefix="crm-drift-") as tmp:
        columns, categorical = list(CHURN_FEATURES), list(CATEGORICAL_FEATURES)
        sampled, sampled_s = _timed(
            lambda: drift_report(
                reference_sample, current, columns, categorical, Path(tmp) / "sample.html"
            )
        )
        out["drift"].update(
            {
                "sample_rows": DRIFT_SAMPLE_ROWS,
                "sampled_share": sampled.drift_share,
                "sampled_columns": list(sampled.drifted_columns),
                "sampled_s": sampled_s,
            }
        )
        say(f"drift on samples of {DRIFT_SAMPLE_ROWS:,}: share {sampled.drift_share:.3f}")
        if full_drift:
            everything = max(len(reference), rows)
            full, full_s = _timed(
                lambda: drift_report(
                    reference,
                    current,
                    columns,
                    categorical,
                    Path(tmp) / "full.html",
                    max_rows=everything,
                )
            )
            out["drift"].update(
                {
                    "full_share": full.drift_share,
                    "full_columns": list(full.drifted_columns),
                    "full_s": full_s,
                    "share_difference": abs(full.drift_share - sampled.drift_share),
                }
            )
            say(
                f"drift on every row: share {full.drift_share:.3f} in {full_s:.1f} s "
                f"(difference {out['drift']['share_difference']:.3f})"
            )
    return out


DAYS_HELD_BACK = 2
"""Newest event days delivered one by one after the cold run. The first daily run after a cold
build also redoes the days of the persons the cold run erased (governance/erasure deletes their
raw rows after the build), so the second is the steady state the target is about; both are
recorded."""


def _hold_back_newest_days(source: Path, delivery_dir: Path) -> list[dict[str, Any]]:
    """Split the generated events: the history in ``events/``, each newest day in a file of its own.

    The mapping reads ``events/*.parquet``, so moving a held-back file there later is what a
    CRM's daily export looks like to ingest: one new file.
    """
    import duckdb

    events = source / "events.parquet"
    (source / "events").mkdir(exist_ok=True)
    delivery_dir.mkdir(parents=True, exist_ok=True)
    held = []
    with duckdb.connect() as con:
        days = [
            str(day)
            for (day,) in con.execute(
                f"select distinct cast(occurred_at as date) as day from read_parquet('{events}') "
                f"where occurred_at <= now() order by day desc limit {DAYS_HELD_BACK}"
            ).fetchall()
        ]
        for day in sorted(days):
            path = delivery_dir / f"events-{day}.parquet"
            con.execute(
                f"copy (select * from read_parquet('{events}') "
                f"where cast(occurred_at as date) = date '{day}') to '{path}'"
            )
            (rows,) = con.execute(f"select count(*) from read_parquet('{path}')").fetchone()  # type: ignore[misc]
            held.append({"day": day, "events": int(rows), "file": path})
        listed = ", ".join(f"date '{day}'" for day in days)
        con.execute(
            f"copy (select * from read_parquet('{events}') "
            f"where occurred_at is null or cast(occurred_at as date) not in ({listed})) "
            f"to '{source / 'events' / 'history.parquet'}'"
        )
    events.unlink()
    mapping = (ROOT / "examples" / "synthetic" / "mapping.yaml").read_text()
    (source / "mapping.yaml").write_text(
        mapping + "\n# The scale benchmark delivers events as one file per day.\n"
        'events:\n  file: "events/*.parquet"\n'
    )
    return held


def _prepare_daily_source(home: Path, console: TextIO) -> list[dict[str, Any]]:
    """Generate the synthetic CRM into ``home/source`` and hold its newest days back."""
    from ml.core.settings import Settings
    from orchestration.defs.source.assets import synthetic_config

    settings = Settings()
    source = home / "source"
    began = time.perf_counter()
    generate_synthetic = __import__("ml.synthetic.generator", fromlist=["generate"]).generate
    generate_synthetic(synthetic_config(settings), source, home / "truth")
    held = _hold_back_newest_days(source, home / "delivery")
    console.write(
        f"[{datetime.now():%H:%M:%S}] generated in {time.perf_counter() - began:.0f} s; "
        f"held back {', '.join(str(h['events']) + ' events of ' + h['day'] for h in held)}\n"
    )
    os.environ["CRM_SOURCE"] = str(source)
    os.environ.pop("CRM_MAPPING", None)
    return held


def _compare_with_full_rebuild(settings: Any, console: TextIO) -> dict[str, Any]:
    """Rebuild a copy of the warehouse from scratch with dbt and compare every relation."""
    import duckdb

    work = settings.home / "parity"
    work.mkdir(exist_ok=True)
    copy = work / "full.duckdb"
    shutil.copyfile(settings.warehouse_path, copy)
    began = time.perf_counter()
    dbt = Path(sys.executable).parent / "dbt"
    done = subprocess.run(
        [
            str(dbt),
            "build",
            "--full-refresh",
            "--exclude-resource-type",
            "test",
            "--exclude-resource-type",
            "unit_test",
            "--project-dir",
            str(ROOT / "dbt_project"),
            "--profiles-dir",
            str(ROOT / "dbt_project"),
            "--target-path",
            str(work / "target"),
            "--log-path",
            str(work / "logs"),
            "--vars",
            json.dumps({"warehouse_path": str(copy)}),
        ],
        capture_output=True,
        text=True,
        check=False,
        # the copy lives in another folder, which would otherwise get a salt of its own
        env={**os.environ, "CRM_PII_SALT": settings.salt()},
    )
    if done.returncode != 0:
        raise SystemExit(f"the full rebuild for the parity check failed:\n{done.stdout[-3000:]}")
    rebuild_s = time.perf_counter() - began
    differences: dict[str, list[int]] = {}
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        con.execute(f"attach '{copy}' as full_build (read_only)")
        catalog = settings.warehouse_path.stem
        relations = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_catalog = ? and table_schema in ('staging', 'intermediate', 'marts') "
            "and table_name not like 'int_incremental_%' and table_name not like 'int_change_%'",
            [catalog],
        ).fetchall()
        for schema, name in relations:
            mine, theirs = f"{catalog}.{schema}.{name}", f"full_build.{schema}.{name}"
            extra, missing = con.execute(
                f"select (select count(*) from (from {mine} except all from {theirs})), "
                f"(select count(*) from (from {theirs} except all from {mine}))"
            ).fetchone()  # type: ignore[misc]
            if extra or missing:
                differences[f"{schema}.{name}"] = [int(extra), int(missing)]
    copy.unlink()
    console.write(
        f"[{datetime.now():%H:%M:%S}] parity: {len(relations)} relations compared with a full "
        f"rebuild ({rebuild_s:.0f} s): {differences or 'all equal'}\n"
    )
    return {
        "parity": not differences,
        "parity_relations": len(relations),
        "parity_differences": differences,
        "full_rebuild_without_tests_s": round(rebuild_s, 1),
    }


def _run_job(
    job: Any,
    clock: StepClock,
    log_path: Path,
    selection: list[Any] | None,
    run_config: dict[str, Any] | None = None,
) -> tuple[Any, float, dict[str, dict[str, Any]]]:
    """Execute ``job`` in process, its log in ``log_path``, the step times in ``clock``.

    Returns the result, the wall seconds and each materialized asset's metadata.
    """
    import dagster as dg

    run_id = str(uuid.uuid4())
    with (
        dg.DagsterInstance.get() as instance,
        log_path.open("w") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
    ):
        instance.add_event_listener(run_id, clock.on_event)
        began = time.time()
        result = job.execute_in_process(
            instance=instance,
            run_config=run_config or {"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
            asset_selection=selection,
            run_id=run_id,
            raise_on_error=False,
        )
        seconds = time.time() - began
        metadata = {
            event.materialization.asset_key.to_user_string(): {
                k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()
            }
            for event in result.get_asset_materialization_events()
        }
    return result, seconds, metadata


def _incremental_day(
    args: argparse.Namespace,
    settings: Any,
    job: Any,
    selection: list[Any] | None,
    held: dict[str, Any],
    sampler: MemorySampler,
    parity: bool,
) -> dict[str, Any]:
    """Deliver the held-back day as a new file and run the daily path: no training."""
    console = sys.stdout
    delivery = held["file"]
    shutil.move(delivery, settings.source_dir / "events" / delivery.name)
    daily_selection = [key for key in selection or [] if key.to_user_string() != "models/churn"]
    # The steps have the same names every day: start each day's peaks afresh.
    sampler.peaks_kb.clear()
    sampler.spill_peaks.clear()
    clock = StepClock(console=console, sampler=sampler)
    clock._say(f"incremental day: {held['events']:,} new events of {held['day']}")
    log_path = settings.logs_dir / f"scale-{args.customers}-{held['day']}.log"
    result, seconds, _ = _run_job(job, clock, log_path, daily_selection)
    if not result.success:
        raise SystemExit(f"the incremental day failed; see {log_path}")
    import duckdb

    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        scope = con.execute(
            "select full_rebuild, rebuild_after, "
            "(select count(*) from intermediate.int_incremental_changed_customers), "
            "(select count(*) from intermediate.int_incremental_changed_days) "
            "from intermediate.int_incremental_scope"
        ).fetchone()
        # why a day reached back: rewritten history, or the other days of a changed day's keys
        history = con.execute(
            "select list(activity_date order by activity_date) filter (where history_rewrite), "
            "min(activity_date) filter (where not raw_changed), "
            "count(*) filter (where not raw_changed) "
            "from intermediate.int_incremental_changed_days"
        ).fetchone()
    assert scope is not None and history is not None
    full_rebuild, rebuild_after, persons, days = scope
    rewritten, first_copy_day, copy_days = history
    steps = {step: round(s, 2) for step, s in clock.seconds.items()}
    clock._say(f"incremental day done in {seconds:.1f} s: {steps}")
    out: dict[str, Any] = {
        "s": round(seconds, 1),
        "new_events": held["events"],
        "day": held["day"],
        "steps_s": steps,
        "peak_rss_gb": round(max(clock.peaks_gb.values(), default=0.0), 3),
        "peak_spill_gb": round(max(clock.spill_gb.values(), default=0.0), 3),
        "dbt_profile": _dbt_profile(settings),
        "scope": {
            "full_rebuild": bool(full_rebuild),
            "rebuild_after": str(rebuild_after),
            "changed_persons": int(persons),
            "changed_days": int(days),
            "history_rewritten_days": [str(d) for d in (rewritten or [])][:10],
            "copy_days": int(copy_days),
            "first_copy_day": str(first_copy_day) if first_copy_day else None,
        },
    }
    if parity:
        out.update(_compare_with_full_rebuild(settings, console))
    return out


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    """Run the pipeline once for ``args.customers`` (the environment is already set)."""
    console = sys.stdout
    probe_before = cpu_probe_s()
    held = (
        None
        if args.no_incremental_day
        else _prepare_daily_source(Path(os.environ["CRM_HOME"]), console)
    )
    began = time.time()
    with MemorySampler() as sampler:
        sampler.switch("import")
        import dagster  # noqa: F401  (imported here so the "import" stage measures it)

        from ml.core.settings import Settings
        from orchestration.definitions import defs as load_defs

        settings = Settings()
        sampler.spill_dir = Path(f"{settings.warehouse_path}.tmp")
        defs = load_defs()
        job = defs.resolve_job_def("retraining_job")
        selection = _selection(defs, args.suite)
        import_s = time.time() - began
        clock = StepClock(
            console=console, sampler=sampler, partial=args.out.with_suffix(".partial.json")
        )
        run_config: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        if args.training_as_of_dates:
            run_config["ops"] = {
                "models__churn": {"config": {"training_as_of_dates": args.training_as_of_dates}}
            }
        log_path = settings.logs_dir / f"scale-{args.customers}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        clock._say(f"{args.customers:,} customers in {settings.home}; log {log_path}")
        result, job_s, metadata = _run_job(job, clock, log_path, selection, run_config)
        if not result.success:
            failed = [e.step_key for e in result.all_events if e.is_step_failure]
            raise SystemExit(f"the pipeline failed in {failed}; see {log_path}")
        sampler.switch("after the job")
        build_profile = _dbt_profile(settings)
        extras = (
            {}
            if args.skip_extras
            else _after_job_measurements(
                settings,
                console,
                drift_check=not args.no_drift_check,
                full_drift=not args.no_full_drift,
            )
        )
        days = [
            _incremental_day(
                args, settings, job, selection, day, sampler, parity=last and not args.no_parity
            )
            for last, day in ((i == len(held) - 1, d) for i, d in enumerate(held or []))
        ]
        daily = {**days[-1], "first_day_after_cold_build": days[0]} if days else None
    result = _summarise(
        args, settings, clock, sampler, metadata, extras, import_s, job_s, daily, build_profile
    )
    result["machine"]["cpu_probe_s"] = {"before": probe_before, "after": cpu_probe_s()}
    return result


def _summarise(
    args: argparse.Namespace,
    settings: Any,
    clock: StepClock,
    sampler: MemorySampler,
    metadata: dict[str, dict[str, Any]],
    extras: dict[str, Any],
    import_s: float,
    job_s: float,
    daily: dict[str, Any] | None = None,
    build_profile: dict[str, Any] | None = None,
) -> dict[str, Any]:
    stages: dict[str, dict[str, float]] = {}
    for step, seconds in clock.seconds.items():
        stage = STAGE_OF_STEP.get(step, "suite")
        entry = stages.setdefault(stage, {"s": 0.0, "peak_rss_gb": 0.0, "steps": {}})  # type: ignore[dict-item]
        entry["s"] += seconds
        entry["peak_rss_gb"] = max(entry["peak_rss_gb"], clock.peaks_gb[step])
        entry["peak_spill_gb"] = max(entry.get("peak_spill_gb", 0.0), clock.spill_gb[step])
        entry["steps"][step] = round(seconds, 2)  # type: ignore[index]
    for entry in stages.values():
        entry["s"] = round(entry["s"], 2)
        entry["peak_rss_gb"] = round(entry["peak_rss_gb"], 3)
        entry["peak_spill_gb"] = round(entry["peak_spill_gb"], 3)
    rows = {
        key: meta["dagster/row_count"]
        for key, meta in metadata.items()
        if meta.get("dagster/row_count") is not None
    }
    after_generation = [s for s in stages if s != "generation"]
    # The whole job (run set-up included) but the generation step: the targets' "after generation".
    end_to_end = job_s - stages.get("generation", {}).get("s", 0.0)
    apply = extras.get("model_apply", {})
    churn = metadata.get("models/churn", {})
    drift_meta = metadata.get("monitoring/churn_drift", {})
    result: dict[str, Any] = {
        "customers": args.customers,
        "events": rows.get("raw/events"),
        "end_to_end_s": round(end_to_end, 1),
        "peak_rss_gb": round(max(stages[s]["peak_rss_gb"] for s in after_generation), 3),
        "scoring_rows_per_s": round(apply["rows_per_s_from_frame"]) if apply else None,
        "stages": {name: stages[name] for name in (*STAGES, "suite") if name in stages},
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "seed": args.seed,
        "event_share": args.event_share,
        # DuckDB's memory limit of the run (spill above it): the curve compares sizes run with
        # different limits only if it says so
        "duckdb_memory_limit": settings.duckdb_memory_limit,
        "events_per_customer": round((rows.get("raw/events") or 0) / args.customers, 1),
        "scope": "whole retraining job (--suite)" if args.suite else "churn path",
        "training": {
            "as_of_dates": args.training_as_of_dates or "asset default (12)",
            "training_as_of_dates": churn.get("training_as_of_dates"),
            "validation_rows": churn.get("validation_rows"),
            "roc_auc": churn.get("roc_auc"),
            "oracle_auc": churn.get("oracle_auc"),
        },
        "drift_report": {
            "drift_share": drift_meta.get("drift_share"),
            "reference_rows": drift_meta.get("reference_rows"),
            "current_rows": drift_meta.get("current_rows"),
        },
        "rows": rows,
        "job_s_including_generation": round(job_s, 1),
        "definitions_load_s": round(import_s, 1),
        "memory_method": (
            "VmHWM of the pipeline process reset every "
            f"{SAMPLE_SECONDS} s (/proc/self/clear_refs) plus VmHWM of each child process"
            if sampler.resettable
            else f"VmRSS of the pipeline process every {SAMPLE_SECONDS} s plus VmHWM of children"
        ),
        "after_job": _rounded(extras),
    }
    if apply:
        result["model_apply_rows_per_s"] = round(apply["rows_per_s_from_pool"])
    result["feature_build_s"] = stages.get("feature_build", {}).get("s")
    result["feature_build_profile"] = build_profile or {}
    if daily:
        result["incremental_day"] = daily
        result["incremental_parity"] = daily.pop("parity", None)
    result["targets"] = _targets(result)
    return result


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    after = result.get("after_job", {})
    observed = {
        "end_to_end_s": result["end_to_end_s"],
        "peak_rss_gb": result["peak_rss_gb"],
        "feature_build_s": result["feature_build_s"],
        "incremental_day_s": result.get("incremental_day", {}).get("s"),
        "incremental_parity": result.get("incremental_parity"),
        "scoring_with_explanations_s": after.get("scoring_with_explanations", {}).get("s"),
        "model_apply_rows_per_s": result.get("model_apply_rows_per_s"),
        "drift_s": result["stages"].get("drift", {}).get("s"),
        "drift_share_difference": after.get("drift", {}).get("share_difference"),
    }
    checked = {}
    for name, (op, threshold) in TARGETS.items():
        value = observed[name]
        if value is None:
            met = None
        elif op == "==":
            met = value == threshold
        else:
            met = value <= threshold if op == "<=" else value >= threshold
        shown = str(threshold).lower() if isinstance(threshold, bool) else f"{threshold:g}"
        checked[name] = {"observed": value, "target": f"{op} {shown}", "met": met}
    return checked


def cpu_probe_s() -> float:
    """Seconds of one fixed DuckDB query on 2 threads (hashing 400M integers): the CPU's speed.

    The machine is a VM whose speed varies with its neighbours: the same build took 1.8 times as
    long an hour apart with nothing else running here. A run records this before and after. It
    sees the CPU only: on 2026-12-05 it read 1.7 s through a run whose untouched steps took up
    to 2x as long as two hours earlier, so that slowdown was elsewhere (the disk, likely).
    """
    import duckdb

    with duckdb.connect() as con:
        con.execute("set threads = 2")
        began = time.perf_counter()
        con.execute("select sum(hash(i)) from range(400000000) t(i)").fetchall()
        return round(time.perf_counter() - began, 2)


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / _GB),
        "python": platform.python_version(),
        "platform": platform.platform(),
        # whether other work shared the cores (about 2 when only this benchmark runs)
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


# --------------------------------------------------------------------------------------------
# The parent: one worker process per size, then the curve
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _home(customers: int, home: Path | None, keep: bool) -> Iterator[Path]:
    path = home or Path(tempfile.mkdtemp(prefix=f"crm-scale-{customers}-", dir="/tmp"))
    path.mkdir(parents=True, exist_ok=True)
    try:
        yield path
    finally:
        if home is None and not keep:
            shutil.rmtree(path, ignore_errors=True)


def run_size(args: argparse.Namespace, customers: int, out: Path) -> dict[str, Any]:
    """Run one size in a fresh worker process and return its result."""
    home_arg = args.home if customers == args.customers else None
    with _home(customers, home_arg, args.keep) as home:
        dagster_home = home / "dagster"
        dagster_home.mkdir(exist_ok=True)
        shutil.copy(ROOT / "orchestration" / "dagster.yaml", dagster_home / "dagster.yaml")
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "CRM_HOME": str(home),
            "DAGSTER_HOME": str(dagster_home),
            "CRM_SOURCE": "synthetic",
            "CRM_SYNTHETIC_CUSTOMERS": str(customers),
            "CRM_SYNTHETIC_SEED": str(args.seed),
            "CRM_SYNTHETIC_EVENT_SHARE": str(args.event_share),
            "CRM_THREADS": str(args.threads),
            "MPLBACKEND": "Agg",
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
        }
        if args.duckdb_memory_limit:
            env["CRM_DUCKDB_MEMORY_LIMIT"] = args.duckdb_memory_limit
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--worker",
            "--customers",
            str(customers),
            "--seed",
            str(args.seed),
            "--event-share",
            str(args.event_share),
            "--out",
            str(out),
        ]
        for flag in (
            "suite",
            "skip_extras",
            "no_drift_check",
            "no_full_drift",
            "no_incremental_day",
            "no_parity",
        ):
            if getattr(args, flag):
                command.append("--" + flag.replace("_", "-"))
        if args.training_as_of_dates:
            command += ["--training-as-of-dates", str(args.training_as_of_dates)]
        done = subprocess.run(command, cwd=ROOT, env=env)
        if done.returncode != 0:
            raise SystemExit(f"{customers:,} customers: the worker failed ({done.returncode})")
    return json.loads(out.read_text())


def _curve(results: list[dict[str, Any]]) -> dict[str, Any]:
    points = sorted(results, key=lambda r: r["customers"])
    base = points[0]["end_to_end_s"] / points[0]["customers"]
    rows = []
    previous = base
    for point in points:
        per = point["end_to_end_s"] / point["customers"]
        rows.append(
            {
                "customers": point["customers"],
                "events": point["events"],
                "end_to_end_s": point["end_to_end_s"],
                "peak_rss_gb": point["peak_rss_gb"],
                "s_per_customer": round(per, 7),
                "growth_vs_smallest": round(per / base - 1.0, 3),
                # fixed costs make small sizes dear per customer: growth shows between neighbours
                "growth_vs_previous_size": round(per / previous - 1.0, 3),
                "cpu_probe_s": point.get("machine", {}).get("cpu_probe_s"),
                "duckdb_memory_limit": point.get("duckdb_memory_limit"),
                "stages_s": {name: stage["s"] for name, stage in point["stages"].items()},
            }
        )
        previous = per
    worst = max(max(r["growth_vs_smallest"], r["growth_vs_previous_size"]) for r in rows)
    return {
        "points": rows,
        "check": {
            "max_growth_of_time_per_customer": worst,
            "target": f"<= {CURVE_MAX_GROWTH:g}",
            "met": worst <= CURVE_MAX_GROWTH,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--customers",
        type=int,
        default=int(os.environ.get("CRM_BENCH_CUSTOMERS", DEFAULT_CUSTOMERS)),
        help="synthetic persons of the largest run (default: $CRM_BENCH_CUSTOMERS or 1,000,000)",
    )
    parser.add_argument(
        "--curve",
        default=None,
        help="comma-separated smaller sizes for the scaling curve "
        "(default: 100000,300000 where below --customers)",
    )
    parser.add_argument("--no-curve", action="store_true", help="run --customers only")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--event-share",
        type=float,
        default=EVENT_SHARE,
        help="share of the simulated events the generator writes (CRM_SYNTHETIC_EVENT_SHARE; "
        f"default {EVENT_SHARE}: about 50 per customer; 1.0: the default world, about 188)",
    )
    parser.add_argument("--threads", type=int, default=2, help="CRM_THREADS (DuckDB, CatBoost)")
    parser.add_argument("--duckdb-memory-limit", default=None, help="CRM_DUCKDB_MEMORY_LIMIT")
    parser.add_argument(
        "--training-as-of-dates",
        type=int,
        default=None,
        help="train on the newest N monthly snapshots instead of the asset default (sampling)",
    )
    parser.add_argument("--suite", action="store_true", help="run every model, not the churn path")
    parser.add_argument("--skip-extras", action="store_true", help="no measurements after the job")
    parser.add_argument(
        "--no-drift-check", action="store_true", help="skip the drift sample-vs-full comparison"
    )
    parser.add_argument(
        "--no-full-drift", action="store_true", help="compare with samples only, not every row"
    )
    parser.add_argument(
        "--no-incremental-day",
        action="store_true",
        help="skip the incremental day (the newest day of events delivered after the cold run)",
    )
    parser.add_argument(
        "--no-parity",
        action="store_true",
        help="skip comparing the incremental warehouse with a full dbt rebuild",
    )
    parser.add_argument("--home", type=Path, default=None, help="CRM_HOME of the largest run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary CRM_HOMEs")
    parser.add_argument("--out", type=Path, default=None, help="JSON of the largest run")
    parser.add_argument(
        "--assemble",
        action="store_true",
        help="run nothing: write scale.json from results/scale-<N>.json of the sizes given "
        "(--customers and --curve), with the curve",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        result = run_worker(args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        args.out.with_suffix(".partial.json").unlink(missing_ok=True)  # the run is complete
        return 0

    if args.no_curve:
        sizes: list[int] = []
    elif args.curve:
        sizes = [int(s) for s in args.curve.split(",") if s.strip()]
    else:
        sizes = [s for s in CURVE_SIZES if s < args.customers]
    sizes = sorted({*sizes, args.customers})
    final = args.out or RESULTS / "scale.json"
    results = []
    incomplete: dict[int, Any] = {}
    if args.assemble:
        # Sizes run as separate invocations (e.g. the largest with other flags or stopped early).
        sizes = [s for s in sizes if (RESULTS / f"scale-{s}.json").exists()]
        results = [json.loads((RESULTS / f"scale-{s}.json").read_text()) for s in sizes]
        # the main result is --customers when it ran (a larger size may have run cold only)
        args.customers = args.customers if args.customers in sizes else max(sizes)
        # A larger size stopped before the end leaves only the steps it finished.
        incomplete = {
            int(path.stem.split("-")[1].split(".")[0]): json.loads(path.read_text())
            for path in RESULTS.glob("scale-*.partial.json")
            if int(path.stem.split("-")[1].split(".")[0]) > args.customers
        }
    for customers in [] if args.assemble else sizes:
        out = (
            final
            if customers == args.customers and args.out
            else RESULTS / f"scale-{customers}.json"
        )
        print(f"[{datetime.now():%H:%M:%S}] scale run: {customers:,} customers", flush=True)
        results.append(run_size(args, customers, out))
    main_result = next(r for r in results if r["customers"] == args.customers)
    if args.assemble and incomplete:
        main_result["incomplete_runs"] = {str(size): run for size, run in incomplete.items()}
    if len(results) > 1:
        curve = _curve(results)
        main_result["curve"] = curve["points"]
        main_result["curve_check"] = curve["check"]
    final.parent.mkdir(parents=True, exist_ok=True)
    final.write_text(json.dumps(main_result, indent=2, default=str) + "\n")
    _print_summary(main_result)
    print(f"written to {final}")
    return 0


def _print_summary(result: dict[str, Any]) -> None:
    print(f"\n{result['customers']:,} customers, {result['events']:,} events")
    print(
        f"end to end after generation {result['end_to_end_s']:.0f} s, peak RSS "
        f"{result['peak_rss_gb']:.2f} GB"
    )
    for name, stage in result["stages"].items():
        print(
            f"  {name:<14} {stage['s']:8.1f} s  {stage['peak_rss_gb']:6.2f} GB"
            f"  {stage.get('peak_spill_gb', 0.0):6.2f} GB spilled"
        )
    for name, target in result["targets"].items():
        state = {True: "met", False: "MISSED", None: "not measured"}[target["met"]]
        print(f"  target {name}: {target['observed']} ({target['target']}) {state}")
    if "curve_check" in result:
        curve = result["curve_check"]
        print(
            f"  curve: time per customer grows by at most {curve['max_growth_of_time_per_customer']:+.1%}"
            f" ({curve['target']}) {'met' if curve['met'] else 'MISSED'}"
        )


if __name__ == "__main__":
    sys.exit(main())
