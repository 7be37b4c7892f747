"""The dbt build per stage on DuckDB against Spark local, at one size of the synthetic CRM.

    .venv/bin/python benchmarks/engines.py                        # 100k customers
    .venv/bin/python benchmarks/engines.py --customers 1000000    # 1M
    .venv/bin/python benchmarks/engines.py --customers 300 --out /tmp/e.json   # smoke

The synthetic CRM is generated once (about 50 events per person, as benchmarks/scale.py) and
loaded into a DuckDB warehouse as the contract's raw tables. Both engines then build the whole dbt
project from those raw tables (`dbt build`: every model, seed and test), one process per step:

    raw            DuckDB: the generated Parquet loaded into raw.* (typed as the contract says).
                   Spark: those raw tables written as Parquet and registered as Spark tables.
    build          dbt build; split into the stages staging, intermediate and marts by the
                   nodes' own start and end times in run_results.json (a node's stage is its
                   folder; a test belongs to the stage of the model it tests). The layers cannot
                   be built one dbt process each: the incremental scope models of intermediate
                   read the previous build's marts.
    export         Spark only: the marts written as Parquet for readers without Spark (the
                   pipeline's training and scoring); DuckDB's marts are read in place.

Per stage: seconds (a step's wall time; a build stage's span from its first node's start to its
last node's end, and the sum of its nodes' own seconds), and the peak resident memory of this
process plus every child (dbt, and the Spark JVM it starts), sampled every 0.2 s, within the
step or the stage's span. Every Spark step starts its own JVM and session (tens of seconds), inside
its figures. Results: benchmarks/results/engines-<customers>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(ROOT))

from scale import EVENT_SHARE, _descendants, _status_kb  # noqa: E402

from ml.core.privacy import pii_salt  # noqa: E402
from ml.core.spark import export_schema_parquet, spark_environment  # noqa: E402
from ml.data.contract import RAW_TABLES  # noqa: E402
from ml.synthetic.config import SyntheticConfig  # noqa: E402
from ml.synthetic.generator import generate  # noqa: E402

LAYERS = ("staging", "intermediate", "marts")
SAMPLE_SECONDS = 0.2


class MemorySeries:
    """Resident memory of this process and all its descendants, every 0.2 s, with the time."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            pids = [os.getpid(), *_descendants(os.getpid())]
            self.samples.append((time.time(), sum(_status_kb(pid, "VmRSS") for pid in pids)))

    def __enter__(self) -> MemorySeries:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak_gb(self, start: float, end: float) -> float:
        within = [kb for at, kb in self.samples if start <= at <= end]
        return round(max(within, default=0) / 2**20, 3)


def _dbt(
    arguments: list[str], target: str, env: dict[str, str], work_dir: Path, dbt_vars: dict
) -> list[dict[str, Any]]:
    """Run dbt; return the nodes of run_results.json (none for commands without results)."""
    command = [
        str(Path(sys.executable).parent / "dbt"),
        *arguments,
        "--project-dir",
        str(ROOT / "dbt_project"),
        "--profiles-dir",
        str(ROOT / "dbt_project"),
        "--target",
        target,
        "--target-path",
        str(work_dir / "target"),
        "--log-path",
        str(work_dir / "logs"),
        "--vars",
        json.dumps(dbt_vars),
    ]
    results = work_dir / "target" / "run_results.json"
    results.unlink(missing_ok=True)
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-4000:]
        raise SystemExit(f"dbt {' '.join(arguments)} on {target} failed:\n{output}")
    return json.loads(results.read_text())["results"] if results.exists() else []


def _stage_of(node: dict[str, Any], paths: dict[str, str]) -> str:
    path = paths.get(node["unique_id"], "")
    for layer in LAYERS:
        if path.startswith(f"models/{layer}/") or (layer == "staging" and path.startswith("seeds")):
            return layer
    return "marts"  # singular tests (tests/) read the incremental state and marts: they run last


def _build_stages(
    nodes: list[dict[str, Any]], manifest: Path, memory: MemorySeries
) -> dict[str, dict[str, float]]:
    """Split one dbt build into stages by the nodes' own timings."""
    parsed = json.loads(manifest.read_text())
    paths = {}
    for unique_id, node in {**parsed["nodes"], **parsed.get("unit_tests", {})}.items():
        paths[unique_id] = node.get("original_file_path", "")
        # A generic test's file is its model's yml: its folder is the model's stage.
    stages = {}
    for layer in LAYERS:
        spans = []
        own = 0.0
        for node in nodes:
            if _stage_of(node, paths) != layer:
                continue
            own += node["execution_time"]
            times = [t for t in node["timing"] if t.get("started_at") and t.get("completed_at")]
            if times:
                spans.append(
                    (
                        datetime.fromisoformat(times[0]["started_at"]).timestamp(),
                        datetime.fromisoformat(times[-1]["completed_at"]).timestamp(),
                    )
                )
        if not spans:
            continue
        start, end = min(s for s, _ in spans), max(e for _, e in spans)
        stages[layer] = {
            "span_s": round(end - start, 2),
            "nodes_s": round(own, 2),
            "nodes": sum(1 for n in nodes if _stage_of(n, paths) == layer),
            "peak_rss_gb": memory.peak_gb(start, end),
        }
    return stages


def _load_raw_duckdb(raw_dir: Path, warehouse: Path) -> dict[str, int]:
    import duckdb

    rows = {}
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema if not exists raw")
        for table in RAW_TABLES.values():
            file = raw_dir / f"{table.name}.parquet"
            if file.exists():
                casts = ", ".join(f"cast({c.name} as {c.type}) as {c.name}" for c in table.columns)
                con.execute(
                    f"create or replace table raw.{table.name} as "
                    f"select {casts} from read_parquet(?)",
                    [str(file)],
                )
            else:
                columns = ", ".join(f"{c.name} {c.type}" for c in table.columns)
                con.execute(f"create or replace table raw.{table.name} ({columns})")
            (rows[table.name],) = con.execute(f"select count(*) from raw.{table.name}").fetchone()
    return rows


def run(
    customers: int, seed: int, home: Path, save: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    config = SyntheticConfig(customers=customers, seed=seed, event_share=EVENT_SHARE, leads=0)
    generated = generate(config, home / "source", home / "truth")
    dbt_vars = {
        "warehouse_path": str(home / "warehouse.duckdb"),
        "max_valid_timestamp": f"{config.end_date} 23:59:59",
    }
    spark_env = spark_environment(home / "spark", pii_salt(home))
    duck_env = {**spark_env, "CRM_HOME": str(home), "CRM_DUCKDB_MEMORY_LIMIT": "6GB"}
    stages: dict[str, dict[str, dict[str, float]]] = {"duckdb": {}, "spark": {}}

    def result(complete: bool) -> dict[str, Any]:
        return _result(customers, seed, stages, generated.rows, complete)

    with MemorySeries() as memory:

        def step(engine: str, name: str, function: Callable[[], Any]) -> Any:
            start = time.time()
            outcome = function()
            end = time.time()
            entry = {"wall_s": round(end - start, 2), "peak_rss_gb": memory.peak_gb(start, end)}
            stages[engine][name] = entry
            print(engine, name, entry, flush=True)
            save(result(complete=False))
            return outcome

        def build(engine: str, env: dict[str, str]) -> None:
            work_dir = home / f"dbt-{engine}"
            nodes = step(engine, "build", lambda: _dbt(["build"], engine, env, work_dir, dbt_vars))
            failed = [n["unique_id"] for n in nodes if n["status"] in ("error", "fail")]
            if failed:
                raise SystemExit(f"{engine}: nodes failed: {failed}")
            stages[engine].update(
                _build_stages(nodes, work_dir / "target" / "manifest.json", memory)
            )
            print(engine, {k: stages[engine][k] for k in LAYERS if k in stages[engine]}, flush=True)

        def spark_raw() -> None:
            import duckdb

            with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
                export_schema_parquet(con, "raw", home / "spark-raw")
            folder = json.dumps({"folder": str(home / "spark-raw")})
            _dbt(
                ["run-operation", "register_raw_parquet", "--args", folder],
                "spark",
                spark_env,
                home / "dbt-spark-operations",
                dbt_vars,
            )

        def spark_export() -> None:
            arguments = json.dumps({"schemas": ["marts"], "folder": str(home / "spark-export")})
            _dbt(
                ["run-operation", "export_parquet", "--args", arguments],
                "spark",
                spark_env,
                home / "dbt-spark-operations",
                dbt_vars,
            )

        step("duckdb", "raw", lambda: _load_raw_duckdb(home / "source", home / "warehouse.duckdb"))
        build("duckdb", duck_env)
        step("spark", "raw", spark_raw)
        build("spark", spark_env)
        step("spark", "export", spark_export)
    return result(complete=True)


def _result(customers: int, seed: int, stages: dict, rows: dict, complete: bool) -> dict[str, Any]:
    return {
        "customers": customers,
        "complete": complete,
        "raw_rows": rows,
        "seed": seed,
        "event_share": EVENT_SHARE,
        "stages": stages,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            # Whether other work shared the cores: the 1-minute load average when the result is
            # written (about 2 here when only this benchmark runs on the 2 cores).
            "load_average_1m": round(os.getloadavg()[0], 2),
        },
        "spark": {"master": "local[2]", "shuffle_partitions": 2, "driver_memory": "4g"},
        "duckdb": {"threads": 2, "memory_limit": "6GB"},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary CRM_HOME")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix=f"crm-engines-{args.customers}-", dir="/tmp"))
    out = args.out or RESULTS / f"engines-{args.customers}.json"

    def save(result: dict[str, Any]) -> None:
        # After every step, so a run stopped part-way keeps what it measured ("complete": false).
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")

    try:
        save(run(args.customers, args.seed, home, save))
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
