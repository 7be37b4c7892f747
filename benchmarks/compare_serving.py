"""Compare the serving tables of two runs row for row (e.g. before and after a refactor).

    .venv/bin/python benchmarks/compare_serving.py BEFORE_HOME AFTER_HOME [--out FILE]

Every table of the ``serving`` schema in either warehouse is compared: the same columns (names,
order, types), the same number of rows, and the same rows (a symmetric difference in DuckDB, so
duplicates count). The times a run stamps (``scored_at``, ``decided_at``) differ between any two
runs and are left out of the row comparison; they are still compared by type. The exit code is 1
when a table differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import duckdb

RUN_TIMES = ("scored_at", "decided_at")


def _columns(con: duckdb.DuckDBPyConnection, db: str, table: str) -> list[tuple[str, str]]:
    return [
        (str(name), str(type_))
        for name, type_ in con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_catalog = ? and table_schema = 'serving' and table_name = ? "
            "order by ordinal_position",
            [db, table],
        ).fetchall()
    ]


def _tables(con: duckdb.DuckDBPyConnection, db: str) -> set[str]:
    return {
        str(name)
        for (name,) in con.execute(
            "select table_name from information_schema.tables where table_catalog = ? "
            "and table_schema = 'serving' and table_type = 'BASE TABLE'",
            [db],
        ).fetchall()
    }


def compare(before: Path, after: Path) -> dict[str, dict[str, object]]:
    """Per table: rows on each side, whether columns and rows are equal, rows differing."""
    con = duckdb.connect()
    con.execute(f"attach '{before}' as before (read_only)")
    con.execute(f"attach '{after}' as after (read_only)")
    report: dict[str, dict[str, object]] = {}
    for table in sorted(_tables(con, "before") | _tables(con, "after")):
        left, right = _columns(con, "before", table), _columns(con, "after", table)
        entry: dict[str, object] = {"columns_equal": left == right}
        if not left or not right:
            entry |= {"missing_in": "after" if not right else "before", "equal": False}
            report[table] = entry
            continue
        compared = ", ".join(f'"{name}"' for name, _ in left if name not in RUN_TIMES)
        counts = [
            con.execute(f'select count(*) from {db}.serving."{table}"').fetchall()[0][0]
            for db in ("before", "after")
        ]
        (differing,) = con.execute(
            f"""select count(*) from (
                (select {compared} from before.serving."{table}"
                 except all select {compared} from after.serving."{table}")
                union all
                (select {compared} from after.serving."{table}"
                 except all select {compared} from before.serving."{table}"))"""
        ).fetchall()[0]
        entry |= {
            "rows_before": counts[0],
            "rows_after": counts[1],
            "rows_differing": differing,
            "equal": left == right and differing == 0 and counts[0] == counts[1],
        }
        report[table] = entry
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="CRM_HOME of the first run")
    parser.add_argument("after", type=Path, help="CRM_HOME of the second run")
    parser.add_argument("--out", type=Path, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    report = compare(args.before / "warehouse.duckdb", args.after / "warehouse.duckdb")
    for table, entry in report.items():
        print(f"{table:24s} {'equal' if entry['equal'] else 'DIFFERENT'}  {entry}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(entry["equal"] for entry in report.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
