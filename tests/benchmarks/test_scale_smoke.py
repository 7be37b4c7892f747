"""The scale benchmark (benchmarks/scale.py) at a tiny size, so it keeps working between runs.

It runs the real pipeline once in a subprocess (the settings are read from ``CRM_*`` variables
when the definitions load, so the run needs its own process) and checks that every stage reports
time and memory. Speed itself is never asserted here; benchmarks/RESULTS.md records it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCALE = ROOT / "benchmarks" / "scale.py"
STAGES = (
    "generation",
    "ingest",
    "feature_build",
    "checks",
    "training",
    "scoring",  # publishing (DuckDB and Parquet) is part of the scoring step
    "drift",
)


@pytest.mark.slow
def test_scale_benchmark_reports_every_stage(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    done = subprocess.run(
        [
            sys.executable,
            str(SCALE),
            "--customers",
            "500",
            "--no-curve",
            "--no-drift-check",
            # tests/data/test_incremental_parity.py proves parity; here the day only has to run
            "--no-parity",
            "--home",
            str(tmp_path / "home"),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    result = json.loads(out.read_text())

    for key in ("customers", "events", "end_to_end_s", "peak_rss_gb", "scoring_rows_per_s"):
        assert result[key] > 0, key
    assert result["customers"] == 500
    # The benchmark's event volume: about 50 per customer, as the issue sizes it (1M / 50M).
    assert 35 < result["events_per_customer"] < 65
    assert result["events"] == result["rows"]["raw/events"]
    for stage in STAGES:
        assert result["stages"][stage]["s"] > 0, stage
        assert result["stages"][stage]["peak_rss_gb"] > 0, stage
    assert result["peak_rss_gb"] >= max(
        result["stages"][s]["peak_rss_gb"] for s in STAGES if s != "generation"
    )
    assert result["machine"]["cpus"] > 0 and result["measured_at"]
    assert set(result["targets"]) >= {
        "end_to_end_s",
        "peak_rss_gb",
        "feature_build_s",
        "incremental_day_s",
        "incremental_parity",
    }
    assert result["feature_build_s"] == result["stages"]["feature_build"]["s"]
    # The incremental day: the newest day's events arrive as one new file after the cold run,
    # and the daily path (no training) recomputes only what they reach.
    day = result["incremental_day"]
    assert day["s"] > 0 and day["new_events"] > 0
    assert day["steps_s"]["crm_dbt_models"] > 0 and "models__churn" not in day["steps_s"]
    assert day["scope"]["full_rebuild"] is False
    # recomputed from the lookback (3 days before the new day), not from the start of history
    newest = date.fromisoformat(day["day"])
    assert newest - timedelta(days=3) <= date.fromisoformat(day["scope"]["rebuild_after"]) < newest
    assert result["incremental_parity"] is None  # not measured with --no-parity
    # Long runs show progress: a line when each stage's step starts and when it is done.
    finished = [line for line in done.stdout.splitlines() if " done in " in line]
    assert {line.split()[1] for line in finished} >= set(STAGES)
