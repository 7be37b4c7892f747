"""Wall time, peak memory and time per step of the whole pipeline (the retraining job).

    .venv/bin/python benchmarks/pipeline.py                 # default CRM (20k customers)
    .venv/bin/python benchmarks/pipeline.py --customers 200000

Runs the job twice in a fresh CRM_HOME: cold (no data, no model: generates the synthetic CRM,
builds everything, registers the first model) and warm (data already generated, a champion
exists). Each run is a separate process under /usr/bin/time -v; peak memory is the largest
resident set of that process or any child (dbt runs as a child). Results are printed and written
as JSON to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


def _time_v(output: str, label: str) -> str:
    match = re.search(rf"{re.escape(label)}: (.+)", output)
    if match is None:
        raise RuntimeError(f"/usr/bin/time did not report {label!r}")
    return match.group(1).strip()


def _wall_seconds(clock: str) -> float:
    # h:mm:ss or m:ss.ss
    parts = [float(p) for p in clock.split(":")]
    return sum(p * 60**i for i, p in enumerate(reversed(parts)))


def run_once(job: str, env: dict[str, str], summary_path: Path) -> dict:
    command = [
        "/usr/bin/time",
        "-v",
        sys.executable,
        "-m",
        "orchestration.run",
        job,
        "--summary-json",
        str(summary_path),
    ]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{job} failed:\n{done.stdout}\n{done.stderr}")
    summary = json.loads(summary_path.read_text())
    return {
        "wall_seconds": round(
            _wall_seconds(_time_v(done.stderr, "Elapsed (wall clock) time (h:mm:ss or m:ss)")), 1
        ),
        "peak_rss_mb": round(
            int(_time_v(done.stderr, "Maximum resident set size (kbytes)")) / 1024
        ),
        "job_seconds": round(summary["wall_seconds"], 1),
        "step_seconds": {k: round(v, 1) for k, v in summary["step_seconds"].items()},
        "churn_model": {
            k: summary["metadata"].get("models/churn", {}).get(k)
            for k in ("roc_auc", "oracle_auc", "pr_auc", "lift_top_decile", "alias")
        },
        "rows": {
            key: meta.get("dagster/row_count")
            for key, meta in summary["metadata"].items()
            if "dagster/row_count" in meta
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", action="store_true", help="keep the temporary CRM_HOME")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    env = {
        **os.environ,
        "CRM_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "CRM_SYNTHETIC_CUSTOMERS": str(args.customers),
        "CRM_SYNTHETIC_SEED": str(args.seed),
        "MPLBACKEND": "Agg",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
    }
    (home / "dagster").mkdir(parents=True)
    shutil.copy(ROOT / "orchestration" / "dagster.yaml", home / "dagster" / "dagster.yaml")
    try:
        cold = run_once("retraining_job", env, home / "cold.json")
        warm = run_once("retraining_job", env, home / "warm.json")
        scoring = run_once("scoring_job", env, home / "scoring.json")
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)

    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
            "python": platform.python_version(),
        },
        "customers": args.customers,
        "seed": args.seed,
        "retraining_cold": cold,
        "retraining_warm": warm,
        "scoring_warm": scoring,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"pipeline-{args.customers}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
