"""Synthetic CRM generator: the embedded default data, with a hidden ground truth.

It simulates about two years of a subscription business month by month (see
docs/synthetic-world.md for the world and its dirt) and writes the raw contract tables of
``ml/data/contract.py`` into one folder, plus the truth (record -> person map and the true 90-day churn
probability of every active person on every month start) into another folder that the pipeline
never reads.

Design choices:

* Persons are simulated in fixed blocks of ``BLOCK_PERSONS``; each block has its own random
  generator seeded from ``(seed, block index)``. ``chunk_size`` only groups blocks into written row
  groups, so the data do not depend on it: chunked and unchunked runs give identical tables.
* Within a block everything is vectorised with numpy; the only Python loops run over months, event
  types and blocks.
* The latent path (engagement, tickets, plan changes, hazards) of a person is simulated for every
  month after sign-up whether or not the person churns; churn is then one draw against the
  hazards and only censors what is written. That makes the true probability at any as-of date well
  defined (``1 - prod(1 - h)`` over the realised latent path).

Where things are (this module runs the blocks, writes the files and is the command line):

* ``ml.synthetic.params``: the world's parameters (``HAZARD``, ``DIRT``, ...).
* ``ml.synthetic.config``: :class:`SyntheticConfig` and the month grid.
* ``ml.synthetic.world``: one block's persons, latent monthly path, churn and truth.
* ``ml.synthetic.rows``: one block's raw rows, one function per table (``simulate_block``).
* ``ml.synthetic.tables``: Arrow tables with global ids, and the atomic file sinks.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ml.data.contract import RAW_TABLES
from ml.synthetic.config import BLOCK_PERSONS, SyntheticConfig, month_grid
from ml.synthetic.leads import LEAD_ID_COLUMN, generate_leads_with_truth
from ml.synthetic.rows import simulate_block
from ml.synthetic.tables import (
    ERASURE_REQUESTS,
    Counters,
    Sink,
    block_tables,
    erasure_requests_table,
)

TRUTH_TABLES: tuple[str, ...] = ("record_persons", "churn_truth", "campaign_truth")
"""Files (``<name>.parquet``) written into the truth folder."""
LEADS_FILE = "leads.csv"
"""The synthetic lead export (HubSpot-style columns, loaded through a mapping like a real one)."""
LEAD_TRUTH_FILE = "lead_truth.parquet"
"""Each lead's true log-odds of conversion (truth folder)."""


@dataclass(frozen=True)
class GenerationResult:
    """What :func:`generate` wrote.

    Attributes:
        rows: Rows per raw table.
        truth_rows: Rows per truth table.
        paths: File per table name (raw and truth).
        persons: Simulated persons.
        seconds: Wall time of the run.
        churn_rate_90d: Share of active person-as-of rows that churned within 90 days (truth).
        oracle_auc: ROC AUC of the true probability against the realised churn over all truth rows
            (None when one class is missing).
        as_of_dates: The as-of dates of the truth (first of the month).
    """

    rows: dict[str, int]
    truth_rows: dict[str, int]
    paths: dict[str, Path]
    persons: int
    seconds: float
    churn_rate_90d: float
    oracle_auc: float | None = None
    as_of_dates: tuple[date, ...] = field(default_factory=tuple)


def _chunks(config: SyntheticConfig) -> Iterator[list[int]]:
    """Blocks grouped into chunks of about ``chunk_size`` persons."""
    n_blocks = -(-config.customers // BLOCK_PERSONS)
    per_chunk = max(1, -(-config.chunk_size // BLOCK_PERSONS))
    for start in range(0, n_blocks, per_chunk):
        yield list(range(start, min(n_blocks, start + per_chunk)))


def generate(config: SyntheticConfig, raw_dir: Path, truth_dir: Path) -> GenerationResult:
    """Simulate the synthetic CRM and write the raw contract tables and the hidden truth.

    Raw tables go to ``raw_dir/<table>.<parquet|csv>`` (columns in the order of
    ``ml.data.contract.RAW_TABLES``); the truth goes to ``truth_dir/record_persons.parquet`` and
    ``truth_dir/churn_truth.parquet``. Every file is written under a temporary name and renamed
    when all files are complete, so a crash never leaves a half-written file under a final name.
    A file of the other raw format for the same table is removed so the folder holds one source.

    Args:
        config: What to generate.
        raw_dir: Folder for the raw tables (created if missing).
        truth_dir: Folder for the truth (created if missing); the pipeline never reads it.

    Returns:
        Row counts, paths, timing, the truth's churn rate and oracle AUC.
    """
    started = time.perf_counter()
    raw_dir.mkdir(parents=True, exist_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    grid = month_grid(config)
    ext = "parquet" if config.file_format == "parquet" else "csv"
    unit = "us" if config.file_format == "parquet" else "s"
    sinks: dict[str, Sink] = {
        name: Sink(raw_dir / f"{name}.{ext}", config.file_format)
        for name in RAW_TABLES
        if name != ERASURE_REQUESTS
    }
    sinks.update({name: Sink(truth_dir / f"{name}.parquet", "parquet") for name in TRUTH_TABLES})
    counters = Counters()
    chunks = list(_chunks(config))
    positives = 0.0
    truth_rows = 0
    auc_parts: list[tuple[np.ndarray, np.ndarray]] = []
    try:
        bar = _progress(config, sum(len(ch) for ch in chunks))
        for chunk in chunks:
            parts: dict[str, list[pa.Table]] = {name: [] for name in sinks}
            for block in chunk:
                blk = simulate_block(config, grid, block, block * BLOCK_PERSONS)
                positives += float(blk.truth["churned"].sum())
                truth_rows += len(blk.truth["churned"])
                auc_parts.append((blk.truth["probability"], blk.truth["churned"]))
                for name, tbl in block_tables(blk, counters, grid, unit).items():
                    parts[name].append(tbl)
                if bar is not None:
                    bar.update(1)
            for name, tables in parts.items():
                sinks[name].write(pa.concat_tables(tables))
        if bar is not None:
            bar.close()
        requests = erasure_requests_table(config, counters.records, unit)
        sinks[ERASURE_REQUESTS] = Sink(raw_dir / f"{ERASURE_REQUESTS}.{ext}", config.file_format)
        sinks[ERASURE_REQUESTS].write(requests)
        for sink in sinks.values():
            sink.close()
        for sink in sinks.values():
            sink.commit()
    except BaseException:
        for sink in sinks.values():
            sink.discard()
        raise
    # Ingest refuses a table with two candidate files, so stale files of other formats go.
    for name in RAW_TABLES:
        for other in ("parquet", "csv", "csv.gz"):
            if other != ext:
                (raw_dir / f"{name}.{other}").unlink(missing_ok=True)
    if config.leads:
        _write_leads(config, raw_dir, truth_dir)
    probs = np.concatenate([p for p, _ in auc_parts])
    labels = np.concatenate([y for _, y in auc_parts])
    return GenerationResult(
        rows={name: sinks[name].rows for name in RAW_TABLES},
        truth_rows={name: sinks[name].rows for name in TRUTH_TABLES},
        paths={name: sink.final for name, sink in sinks.items()},
        persons=counters.persons,
        seconds=time.perf_counter() - started,
        churn_rate_90d=positives / truth_rows if truth_rows else 0.0,
        oracle_auc=_auc(probs, labels),
        as_of_dates=grid.as_of_dates,
    )


def _write_leads(config: SyntheticConfig, raw_dir: Path, truth_dir: Path) -> None:
    """The lead export as CSV (as CRMs export it) and each lead's true log-odds, atomically."""
    export, true_logit = generate_leads_with_truth(
        config.leads, config.seed, config.start_date, config.end_date
    )
    final = raw_dir / LEADS_FILE
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    export.to_csv(tmp, index=False, date_format="%Y-%m-%d %H:%M:%S")
    truth = pa.table(
        {"lead_id": pa.array(export[LEAD_ID_COLUMN].astype(str)), "true_logit": true_logit}
    )
    pq.write_table(truth, truth_dir / LEAD_TRUTH_FILE)
    os.replace(tmp, final)


def _progress(config: SyntheticConfig, total: int) -> Any:
    if not config.progress:
        return None
    from tqdm import tqdm  # imported lazily: only the CLI shows a bar

    return tqdm(total=total, unit="block", desc=f"synthetic CRM ({BLOCK_PERSONS} persons/block)")


def _auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """ROC AUC via the rank-sum formula (ties get average ranks); no sklearn import needed."""
    pos = int(labels.sum())
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(len(scores))
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[labels].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m ml.synthetic.generator --customers N --seed S --out DIR``."""
    parser = argparse.ArgumentParser(
        prog="python -m ml.synthetic.generator",
        description="Generate the synthetic CRM (raw + truth).",
    )
    parser.add_argument("--customers", type=int, default=SyntheticConfig.customers)
    parser.add_argument("--seed", type=int, default=SyntheticConfig.seed)
    parser.add_argument("--out", type=Path, required=True, help="Folder for the raw tables.")
    parser.add_argument(
        "--truth", type=Path, default=None, help="Folder for the truth (default: OUT/../truth)."
    )
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--chunk-size", type=int, default=SyntheticConfig.chunk_size)
    parser.add_argument("--start-date", type=date.fromisoformat, default=SyntheticConfig.start_date)
    parser.add_argument("--end-date", type=date.fromisoformat, default=SyntheticConfig.end_date)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--event-share",
        type=float,
        default=SyntheticConfig.event_share,
        help="Share of the simulated events written (1.0: all, about 188 per person).",
    )
    args = parser.parse_args(argv)
    config = SyntheticConfig(
        customers=args.customers,
        seed=args.seed,
        start_date=args.start_date,
        end_date=args.end_date,
        chunk_size=args.chunk_size,
        file_format=args.format,
        progress=not args.no_progress,
        event_share=args.event_share,
    )
    out: Path = args.out.expanduser().resolve()
    truth: Path = args.truth.expanduser().resolve() if args.truth else out.parent / "truth"
    result = generate(config, out, truth)
    # A tiny world can lack churners (or stayers): then there is no AUC to show.
    auc = "n/a" if result.oracle_auc is None else f"{result.oracle_auc:.3f}"
    print(
        f"{result.persons} persons in {result.seconds:.1f} s; "
        + ", ".join(f"{k} {v}" for k, v in result.rows.items())
        + f"; churn within 90 days {result.churn_rate_90d:.3f}; oracle AUC {auc}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
