"""The dbt build per stage on DuckDB against Spark local, at one size of the synthetic CRM.

    .venv/bin/python benchmarks/engines.py                        # 100k customers
    .venv/bin/python benchmarks/engines.py --customers 1000000    # 1M (about an hour here)
    .venv/bin/python benchmarks/engines.py --customers 300 --out /tmp/e.json   # smoke

The synthetic CRM is generated once (about 50 events per person, as benchmarks/scale.py) and
loaded into a DuckDB warehouse as the contract's raw tables. Both engines then build the same
dbt project from those raw tables, one stage per dbt process:

    raw            DuckDB: the generated Parquet loaded into raw.* (typed as the contract says).
                   Spark: those raw tables written as Parquet and registered as Spark tables.
    staging        dbt build of models/staging and the seeds, with their tests
    intermediate   dbt build of models/intermediate, with their tests
    marts          dbt build of models/marts, with their tests
    export         Spark only: the marts written as Parquet for readers without Spark (the
                   pipeline's training and scoring); DuckDB's marts are read in place.

Per stage: wall seconds of the dbt process (for Spark this includes starting the JVM and the
session, reported on its own as `session_start_s`, measured by `dbt debug`), the sum of the
nodes' own execution seconds from run_results.json, and the peak resident memory of this
process plus every child (dbt, and the Spark JVM it starts), sampled every 0.2 s
(benchmarks/scale.py MemorySampler). Results: benchmarks/results/engines-<customers>.json.
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
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(ROOT))

from scale import EVENT_SHARE, MemorySampler  # noqa: E402

from ml.core.privacy import pii_salt  # noqa: E402
from ml.core.spark import export_schema_parquet, spark_environment  # noqa: E402
from ml.data.contract import RAW_TABLES  # noqa: E402
from ml.synthetic.config import SyntheticConfig  # noqa: E402
from ml.synthetic.generator import generate  # noqa: E402

LAYERS = {
    "staging": ["path:models/staging", "path:seeds"],
    "intermediate": ["path:models/intermediate"],
    "marts": ["path:models/marts"],
}


def _dbt(
    arguments: list[str], target: str, env: dict[str, str], work_dir: Path, dbt_vars: dict
) -> tuple[float, float, int]:
    """Run dbt; return wall seconds, the nodes' summed execution seconds and the node count."""
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
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"dbt {' '.join(arguments)} on {target} failed:\n{done.stdout[-4000:]}")
    nodes = json.loads(results.read_text())["results"] if results.exists() else []
    return wall, sum(n["execution_time"] for n in nodes), len(nodes)


def _build(selection: list[str]) -> list[str]:
    # cautious: a test runs in the stage that builds the last of its parents.
    return ["build", "--select", *selection, "--indirect-selection", "cautious"]


def _load_raw_duckdb(raw_dir: Path, warehouse: Path) -> dict[str, int]:
    import duckdb

    rows = {}
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema if not exists raw")
        for table in RAW_TABLES.values():
            files = sorted(raw_dir.glob(f"{table.name}.parquet"))
            casts = ", ".join(f"cast({c.name} as {c.type}) as {c.name}" for c in table.columns)
            if files:
                con.execute(
                    f"create or replace table raw.{table.name} as "
                    f"select {casts} from read_parquet(?)",
                    [str(files[0])],
                )
            else:
                columns = ", ".join(f"{c.name} {c.type}" for c in table.columns)
                con.execute(f"create or replace table raw.{table.name} ({columns})")
            rows[table.name] = con.execute(f"select count(*) from raw.{table.name}").fetchone()[0]
    return rows


def run(customers: int, seed: int, home: Path) -> dict[str, Any]:
    config = SyntheticConfig(customers=customers, seed=seed, event_share=EVENT_SHARE, leads=0)
    generated = generate(config, home / "source", home / "truth")
    dbt_vars = {
        "warehouse_path": str(home / "warehouse.duckdb"),
        "max_valid_timestamp": f"{config.end_date} 23:59:59",
    }
    salt = pii_salt(home)
    spark_env = spark_environment(home / "spark", salt)
    duck_env = {**spark_env, "CRM_HOME": str(home), "CRM_DUCKDB_MEMORY_LIMIT": "6GB"}
    stages: dict[str, dict[str, dict[str, float]]] = {"duckdb": {}, "spark": {}}
    with MemorySampler() as memory:

        def stage(engine: str, name: str, function: Any) -> None:
            memory.switch(f"{engine}:{name}")
            started = time.perf_counter()
            measured = function()
            wall = time.perf_counter() - started
            entry: dict[str, float] = {"wall_s": round(wall, 2)}
            if isinstance(measured, tuple):
                entry["nodes_s"] = round(measured[1], 2)
                entry["nodes"] = measured[2]
            stages[engine][name] = entry
            memory.switch("idle")
            entry["peak_rss_gb"] = round(memory.peak_gb(f"{engine}:{name}"), 3)
            print(engine, name, entry, flush=True)

        def duckdb_dbt(arguments: list[str]) -> tuple[float, float, int]:
            return _dbt(arguments, "duckdb", duck_env, home / "dbt-duckdb", dbt_vars)

        def spark_dbt(arguments: list[str]) -> tuple[float, float, int]:
            return _dbt(arguments, "spark", spark_env, home / "dbt-spark", dbt_vars)

        def spark_raw() -> tuple[float, float, int]:
            import duckdb

            with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
                export_schema_parquet(con, "raw", home / "spark-raw")
            folder = json.dumps({"folder": str(home / "spark-raw")})
            return spark_dbt(["run-operation", "register_raw_parquet", "--args", folder])

        def spark_export() -> tuple[float, float, int]:
            arguments = json.dumps({"schemas": ["marts"], "folder": str(home / "spark-export")})
            return spark_dbt(["run-operation", "export_parquet", "--args", arguments])

        stage("duckdb", "raw", lambda: _load_raw_duckdb(home / "source", home / "warehouse.duckdb"))
        for layer, selection in LAYERS.items():
            stage("duckdb", layer, lambda s=selection: duckdb_dbt(_build(s)))
        stage("spark", "session_start", lambda: spark_dbt(["debug"]))
        stage("spark", "raw", spark_raw)
        for layer, selection in LAYERS.items():
            stage("spark", layer, lambda s=selection: spark_dbt(_build(s)))
        stage("spark", "export", spark_export)
    return {
        "customers": customers,
        "raw_rows": generated.rows,
        "seed": seed,
        "event_share": EVENT_SHARE,
        "stages": stages,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "note": "2 cores, 24 GB, shared with other sessions: timings on a loaded machine",
        },
        "spark": {"master": "local[2]", "shuffle_partitions": 2, "driver_memory": "4g"},
        "duckdb": {"threads": 2, "memory_limit": "6GB"},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the temporary CRM_HOME")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix=f"crm-engines-{args.customers}-", dir="/tmp"))
    try:
        result = run(args.customers, args.seed, home)
    finally:
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
    out = args.out or RESULTS / f"engines-{args.customers}.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
