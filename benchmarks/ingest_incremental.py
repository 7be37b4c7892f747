"""Incremental ingest on a generated CRM: cold load, one new events file, an unchanged folder.

    python -m ml.synthetic.generator --customers 20000 --out /tmp/crm
    python benchmarks/ingest_incremental.py /tmp/crm --out /tmp/ingest-incremental.json

The folder is copied to a work folder whose mapping reads events by a glob (``events*.parquet``);
the new file holds the events of one generated day (``--day``), two days later and with new ids.
Every contract table is loaded, as ``raw_tables`` does; the copy of the events file into temp
tables before its checks (``ml.data.reading``) is timed alone.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from ml.core.warehouse import connect
from ml.data.contract import RAW_TABLES
from ml.data.reading import find_files, read_source
from ml.data.sources import load_mappings, load_table


def _run(warehouse: Path, source: Path, quarantine: Path) -> dict[str, object]:
    mappings = load_mappings(source / "mapping.yaml")
    tables: dict[str, object] = {}
    start = time.perf_counter()
    with connect(warehouse, threads=2, memory_limit="6GB") as con:
        for name in RAW_TABLES:
            begin = time.perf_counter()
            load = load_table(con, mappings[name], source, quarantine)
            tables[name] = {
                "s": round(time.perf_counter() - begin, 3),
                "mode": getattr(load, "mode", "full"),  # the code before the manifest: full
                "rows_read": load.rows_read,
                "rows_loaded": load.rows_loaded,
            }
    return {"total_s": round(time.perf_counter() - start, 3), "tables": tables}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("generated", type=Path)
    parser.add_argument("--work", type=Path, default=Path("/tmp/ingest_incremental_bench"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--day", default="2026-09-29", help="the generated day to copy")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    source = args.work / "source"
    shutil.copytree(args.generated, source)
    (source / "mapping.yaml").write_text("events:\n  file: events*.parquet\n")
    warehouse, quarantine = args.work / "warehouse.duckdb", args.work / "quarantine"

    results: dict[str, object] = {"cold": _run(warehouse, source, quarantine)}
    with connect(args.work / "scratch.duckdb", threads=2, memory_limit="6GB") as con:
        events = load_mappings(source / "mapping.yaml")["events"]
        begin = time.perf_counter()
        with read_source(con, find_files(events, source), events):
            results["events_copy_into_temp_tables_s"] = round(time.perf_counter() - begin, 3)
        new_file = source / "events_2026-10-01.parquet"
        # A copy of the last full day of the generated events (the planted future-dated rows aside),
        # two days later and with new ids: one day of a CRM's activity.
        con.execute(
            "copy (select 'new-' || event_id as event_id, customer_record_id, event_type, "
            "occurred_at + interval 2 day as occurred_at from read_parquet(?) "
            "where cast(occurred_at as date) = ?) to ? (format parquet)",
            [str(source / "events.parquet"), args.day, str(new_file)],
        )
        (new_rows,) = con.execute(
            "select count(*) from read_parquet(?)", [str(new_file)]
        ).fetchone()
    results["new_events_rows"] = int(new_rows)
    results["append"] = _run(warehouse, source, quarantine)
    results["unchanged"] = _run(warehouse, source, quarantine)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
