"""Run one job of the pipeline from the command line and print a short summary.

``make run`` calls ``python -m orchestration.run retraining_job``. The run is recorded in
$DAGSTER_HOME, so it appears in the Dagster UI like any other run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import dagster as dg

from ml.core.settings import Settings
from orchestration.definitions import defs as load_defs

# Only problems reach the console; the summary below says what happened.
_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _step_seconds(logs: Sequence[dg.EventLogEntry]) -> dict[str, float]:
    started: dict[str, float] = {}
    seconds: dict[str, float] = defaultdict(float)
    for entry in logs:
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            started[event.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            seconds[event.step_key] += entry.timestamp - started.get(
                event.step_key, entry.timestamp
            )
    return dict(seconds)


def _materialization_metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        found[materialization.asset_key.to_user_string()] = {
            k: getattr(v, "value", v) for k, v in materialization.metadata.items()
        }
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("job", help="retraining_job or scoring_job")
    parser.add_argument(
        "--summary-json", type=Path, help="also write the summary here (used by benchmarks/)"
    )
    args = parser.parse_args(argv)

    definitions = load_defs()
    job = definitions.resolve_job_def(args.job)
    began = datetime.now()
    # dbt, MLflow and CatBoost talk a lot; their output goes to a log file, the summary to the
    # console.
    log_path = Settings().logs_dir / f"{args.job}-{began:%Y%m%dT%H%M%S}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"{args.job}: running; full log in {log_path}", flush=True)
    with (
        dg.DagsterInstance.get() as instance,
        log_path.open("w") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
    ):
        result = job.execute_in_process(instance=instance, run_config=_QUIET, raise_on_error=False)
        step_seconds = _step_seconds(instance.all_logs(result.run_id))
    wall = (datetime.now() - began).total_seconds()

    print(f"\n{args.job}: {'succeeded' if result.success else 'FAILED'} in {wall:.0f} s")
    print("\nseconds per step:")
    for step, seconds in sorted(step_seconds.items(), key=lambda kv: -kv[1]):
        print(f"  {seconds:7.1f}  {step}")
    metadata = _materialization_metadata(result)
    skipped = {key: m.get("reason", "") for key, m in metadata.items() if m.get("skipped")}
    print("\nwhat was written:")
    for key in sorted(set(metadata) - set(skipped)):
        wanted = {k: v for k, v in metadata[key].items() if k in _SUMMARY_FIELDS}
        if wanted:
            print(f"  {key}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in wanted.items()))
    if skipped:
        # A source with only some tables: say what did not run and what would enable it, once
        # per reason (a model's training and serving assets skip for the same one).
        print("\nskipped:")
        for reason in sorted(set(skipped.values())):
            assets = ", ".join(sorted(k for k, r in skipped.items() if r == reason))
            print(f"  {reason}\n    ({assets})")
    if args.summary_json:
        summary = {
            "job": args.job,
            "success": result.success,
            "wall_seconds": wall,
            "step_seconds": step_seconds,
            "metadata": metadata,
        }
        args.summary_json.write_text(json.dumps(summary, indent=2, default=str))
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure:
                error = event.step_failure_data.error
                reason = error.message.strip() if error else event.message
                print(f"\nstep {event.step_key} failed: {reason}", file=sys.stderr)
        print(f"full log: {log_path}", file=sys.stderr)
    return 0 if result.success else 1


_SUMMARY_FIELDS = (
    "dagster/row_count",
    "rows_quarantined",
    "rows_of_erased_persons_dropped",
    "new_requests",
    "records_erased",
    "rows_removed",
    "promoted",
    "roc_auc",
    "oracle_auc",
    "lift_top_decile",
    "model_version",
    "alias",
    "drift_share",
    "score_drift_share",
    "report",
    "table",
    "path",
    "published",
    "reason",
    "server",
    "score_history_rows_this_run",
    "backtest_protocol",
    "decided_by",
    "value_columns",
)


def _fmt(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    sys.exit(main())
